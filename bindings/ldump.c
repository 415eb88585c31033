/* The live dump: every state reports its own thread (what it is blocked on,
 * its traceback across coroutines, its asyncio tasks) in its own OS thread;
 * braid.dump(), SIGQUIT and the dump-after timer collect and print them. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dump.h"
#include "executor.h"
#include "lbraid.h"
#include "ldump.h"
#include "thread.h"

/* How long a dump waits for the threads' own reports: a thread running C
 * code that does not return by then is shown without a traceback. */
#define DUMP_WAIT_NS 1000000000LL
#define MAX_FRAMES 40 /* per coroutine */
#define MAX_COROS 16  /* nesting followed through resume/wrap */
#define MAX_QUEUED 10 /* queued jobs listed per executor */
#define NO_REPORT "not answering (in a C call, or running Lua code inside a coroutine)"

/* ---- a growable text buffer (no Lua state needed) ---- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf_t;

static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->n;
        int k = vsnprintf(b->p ? b->p + b->n : NULL, room, fmt, ap);
        va_end(ap);
        if (k < 0)
            return;
        if ((size_t)k < room) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 512;
        while (cap - b->n <= (size_t)k)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return; /* out of memory: the text stops here */
        b->p = p;
        b->cap = cap;
    }
}

/* ---- the per-state slot data ---- */

typedef struct ldump_state {
    lua_State *L; /* the state's main thread */
    int kind;
    pthread_mutex_t mu; /* the saved hook (dumper vs owner) */
    lua_Hook prev;
    int prevmask, prevcount, saved;
    braid_dump_slot_t *slot;
} ldump_state_t;

static const char SLOT_KEY = 'd'; /* registry: the state's slot box (__gc detaches) */

/* coroutine.resume and the functions coroutine.wrap makes, to follow a
 * thread's stack into the coroutine it is running */
static _Atomic(lua_CFunction) co_resume, co_wrap;

static void ldump_hook(lua_State *L, lua_Debug *ar);

/* A dumper asks: the count hook makes a running state report at its next
 * instruction; a hook already there (Ctrl-C, cancel, a debugger) is put
 * back first. Registry lock held. */
static void ldump_request(braid_dump_slot_t *s)
{
    ldump_state_t *ld = s->data;
    pthread_mutex_lock(&ld->mu);
    lua_Hook h = lua_gethook(ld->L);
    if (h != ldump_hook) {
        ld->prev = h;
        ld->prevmask = lua_gethookmask(ld->L);
        ld->prevcount = lua_gethookcount(ld->L);
        ld->saved = 1;
        lua_sethook(ld->L, ldump_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
    }
    pthread_mutex_unlock(&ld->mu);
}

/* Puts back the hook ldump_request replaced, on L and on the state. */
static void ldump_unhook(ldump_state_t *ld, lua_State *L)
{
    pthread_mutex_lock(&ld->mu);
    lua_Hook h = ld->saved ? ld->prev : NULL;
    int mask = ld->saved ? ld->prevmask : 0, count = ld->saved ? ld->prevcount : 0;
    if (lua_gethook(ld->L) == ldump_hook) {
        lua_sethook(ld->L, h, mask, count);
        ld->saved = 0;
    }
    if (L != ld->L && lua_gethook(L) == ldump_hook)
        lua_sethook(L, h, mask, count); /* a coroutine made while it was set */
    pthread_mutex_unlock(&ld->mu);
}

/* ---- tracebacks across coroutines, read without running Lua code ---- */

/* The coroutine that co is running now (co's innermost frame is resume or
 * a wrap function), or NULL. */
static lua_State *running_child(lua_State *co)
{
    lua_Debug ar;
    lua_State *child = NULL;
    if (!lua_getstack(co, 0, &ar) || !lua_checkstack(co, 2))
        return NULL;
    lua_getinfo(co, "f", &ar);
    lua_CFunction f = lua_tocfunction(co, -1);
    if (f && f == atomic_load(&co_resume)) {
        if (lua_getlocal(co, &ar, 1)) {
            child = lua_tothread(co, -1);
            lua_pop(co, 1);
        }
    } else if (f && f == atomic_load(&co_wrap)) {
        if (lua_getupvalue(co, -1, 1)) {
            child = lua_tothread(co, -1);
            lua_pop(co, 1);
        }
    }
    lua_pop(co, 1);
    return child == co ? NULL : child;
}

/* Appends co's frames from level `from`, as luaL_traceback writes them. */
static void add_frames(sbuf_t *b, lua_State *co, int from)
{
    lua_Debug ar;
    int level = from;
    for (; level - from < MAX_FRAMES && lua_getstack(co, level, &ar); level++) {
        lua_getinfo(co, "Slnt", &ar);
        if (ar.currentline <= 0)
            sb_printf(b, "\n\t%s: in ", ar.short_src);
        else
            sb_printf(b, "\n\t%s:%d: in ", ar.short_src, ar.currentline);
        if (ar.namewhat && *ar.namewhat)
            sb_printf(b,
                      "%s '%s'",
                      strcmp(ar.namewhat, "global") == 0 ? "function" : ar.namewhat,
                      ar.name ? ar.name : "?");
        else if (*ar.what == 'm')
            sb_printf(b, "main chunk");
        else if (*ar.what != 'C')
            sb_printf(b, "function <%s:%d>", ar.short_src, ar.linedefined);
        else
            sb_printf(b, "?");
        if (ar.istailcall)
            sb_printf(b, "\n\t(...tail calls...)");
    }
    if (lua_getstack(co, level, &ar))
        sb_printf(b, "\n\t...");
}

/* The traceback of the thread whose root state is root: the innermost
 * running coroutine first, then the ones that resumed it. skip: frames of
 * the innermost to leave out. */
static void add_traceback(sbuf_t *b, lua_State *root, int skip)
{
    lua_State *chain[MAX_COROS];
    int n = 0;
    for (lua_State *co = root; co && n < MAX_COROS; co = running_child(co))
        chain[n++] = co;
    lua_Debug ar;
    if (!lua_getstack(chain[n - 1], skip, &ar) && n == 1) {
        sb_printf(b, "\n  (no Lua code running)");
        return;
    }
    sb_printf(b, "\n  stack traceback:");
    for (int i = n - 1; i >= 0; i--)
        add_frames(b, chain[i], i == n - 1 ? skip : 0);
}

/* The source:line of the outermost Lua function on root's stack (a pool
 * worker's job), or "" */
static void job_of(lua_State *root, char *out, size_t n)
{
    lua_Debug ar;
    out[0] = '\0';
    for (int level = 0; lua_getstack(root, level, &ar); level++) {
        lua_getinfo(root, "S", &ar);
        if (*ar.what != 'C')
            snprintf(out, n, "%s:%d", ar.short_src, ar.linedefined);
    }
}

/* Appends what the waiter w (its owner's, read by the owner) is blocked
 * on: ` on Lock "db" in acquire for 1.50 s, no timeout`. */
static void add_wait(sbuf_t *b, braid_waiter_t *w)
{
    braid_wait_record_t r;
    if (!w || !braid_waiter_record(w, &r))
        return;
    if (r.on && r.on->type == &braid_thread_type) {
        char *name = braid_thread_name((braid_thread_t *)r.on);
        sb_printf(b, " on Thread \"%s\"", name ? name : "?");
        free(name);
    } else if (r.on && braid_object_name(r.on)) {
        sb_printf(b, " on %s \"%s\"", braid_object_kind(r.on), braid_object_name(r.on));
    } else if (r.on) {
        char label[64];
        sb_printf(b, " on %s", braid_object_label(r.on, label, sizeof label));
    }
    int64_t now = braid_clock_now();
    sb_printf(b, " in %s for %.2f s, ", r.op, (double)(now - r.since) / 1e9);
    if (r.deadline == BRAID_FOREVER)
        sb_printf(b, "no timeout");
    else
        sb_printf(
            b, "timeout in %.2f s", r.deadline > now ? (double)(r.deadline - now) / 1e9 : 0.0);
}

/* The first line of a report: the thread's state (running is what to say
 * of a running thread, NULL for a parked one). */
static void add_state(sbuf_t *b, ldump_state_t *ld, const char *running)
{
    lua_Debug ar;
    int idle = !lua_getstack(ld->L, 0, &ar);
    braid_waiter_t *w = running ? NULL : ld->slot->waiter;
    if (ld->kind == LDUMP_WORKER) {
        char job[256];
        job_of(ld->L, job, sizeof job);
        if (idle || !*job) {
            sb_printf(b, "idle in pool");
            return;
        }
        sb_printf(b, "%s job %s", running ? running : "blocked in", job);
        if (w)
            sb_printf(b, ":");
    } else {
        sb_printf(b, "%s", running ? running : idle ? "idle" : "blocked");
    }
    add_wait(b, w);
}

/* ---- asyncio tasks of a loop running in the state (Lua code) ---- */

static int tasks_body(lua_State *L)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    if (lua_getfield(L, -1, "braid.asyncio") != LUA_TTABLE)
        return 0;
    if (lua_getfield(L, -1, "_dump_tasks") != LUA_TFUNCTION)
        return 0;
    lua_call(L, 0, 1);
    return 1;
}

/* Appends the running loop's tasks (run in L, protected; errors ignored). */
static void add_tasks(sbuf_t *b, lua_State *L)
{
    if (!lbraid_ctx(L)->loop_running || !lua_checkstack(L, 4))
        return;
    int top = lua_gettop(L);
    lua_pushcfunction(L, tasks_body);
    if (lua_pcall(L, 0, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
        sb_printf(b, "\n%s", lua_tostring(L, -1));
    lua_settop(L, top);
}

/* ---- reports ---- */

/* A running state's report, from the hook (or braid.dump): L runs now. */
static void report_running(braid_dump_slot_t *s, lua_State *L, int skip, const char *what)
{
    ldump_state_t *ld = s->data;
    sbuf_t b = {0};
    add_state(&b, ld, what);
    add_traceback(&b, ld->L, skip);
    add_tasks(&b, L);
    braid_dump_post(s, b.p ? b.p : "running");
    free(b.p);
}

static void ldump_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    braid_dump_slot_t *s = braid_dump_current();
    ldump_state_t *ld = s ? s->data : NULL;
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    int mine = ld && lua_tothread(L, -1) == ld->L;
    lua_pop(L, 1);
    if (!mine) { /* a state that no longer reports on this thread */
        lua_sethook(L, NULL, 0, 0);
        return;
    }
    ldump_unhook(ld, L);
    if (braid_dump_wanted(s))
        report_running(s, L, 0, "running");
    if (ld->kind == LDUMP_THREAD)
        lbraid_check_cancel(L); /* a cancel's hook may have been replaced by ours */
}

/* A parked owner's report (braid_waiter_park calls this through
 * braid_dump_serve_pending): its wait and its stack, read without running
 * any Lua code. */
static void ldump_serve(braid_dump_slot_t *s)
{
    ldump_state_t *ld = s->data;
    ldump_unhook(ld, ld->L);
    sbuf_t b = {0};
    add_state(&b, ld, NULL);
    add_traceback(&b, ld->L, 0);
    braid_dump_post(s, b.p ? b.p : "blocked");
    free(b.p);
}

static int ldump_slot_gc(lua_State *L)
{
    ldump_state_t *ld = lua_touserdata(L, 1);
    if (ld->slot) {
        braid_dump_detach(ld->slot);
        ld->slot = NULL;
        pthread_mutex_destroy(&ld->mu);
    }
    return 0;
}

/* Finds coroutine.resume and a wrap function (once per process). */
static int find_co_functions(lua_State *L)
{
    lua_getglobal(L, "coroutine");
    lua_getfield(L, -1, "resume");
    atomic_store(&co_resume, lua_tocfunction(L, -1));
    lua_getfield(L, -2, "wrap");
    lua_pushcfunction(L, find_co_functions);
    lua_call(L, 1, 1);
    atomic_store(&co_wrap, lua_tocfunction(L, -1));
    return 0;
}

static pthread_once_t serve_once = PTHREAD_ONCE_INIT;

static void set_serve(void)
{
    braid_dump_set_serve(ldump_serve);
}

static int attach_body(lua_State *L)
{
    int kind = (int)lua_tointeger(L, 1);
    if (!atomic_load(&co_resume)) {
        lua_pushcfunction(L, find_co_functions);
        lua_pcall(L, 0, 0, 0);
    }
    ldump_state_t *ld = lua_newuserdatauv(L, sizeof *ld, 0);
    memset(ld, 0, sizeof *ld);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, ldump_slot_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    ld->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    ld->kind = kind;
    if (pthread_mutex_init(&ld->mu, NULL) != 0)
        return 0;
    ld->slot = braid_dump_attach(ld, ldump_request, lbraid_ctx(L)->waiter);
    if (!ld->slot) {
        pthread_mutex_destroy(&ld->mu);
        return 0;
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, &SLOT_KEY);
    return 0;
}

void lbraid_dump_attach(lua_State *L, int kind)
{
    pthread_once(&serve_once, set_serve);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &SLOT_KEY) != LUA_TNIL) {
        lua_pop(L, 1);
        return; /* this state reports already */
    }
    lua_pop(L, 1);
    if (kind == LDUMP_MAIN && braid_dump_current())
        return;
    lua_pushcfunction(L, attach_body);
    lua_pushinteger(L, kind);
    lua_pcall(L, 1, 0, 0) == LUA_OK ? (void)0 : lua_pop(L, 1);
}

/* ---- assembling and printing a dump ---- */

static const char *thread_state(int s)
{
    return s == BRAID_THREAD_RUNNING ? "alive" : s == BRAID_THREAD_DONE ? "finished" : "new";
}

static void add_thread_head(sbuf_t *b, braid_thread_t *t)
{
    char *name = braid_thread_name(t);
    sb_printf(b,
              "\nThread \"%s\" (ident %llu, native id %ld",
              name ? name : "?",
              (unsigned long long)braid_thread_ident(t),
              braid_thread_native_id(t));
    if (braid_thread_daemon(t))
        sb_printf(b, ", daemon");
    sb_printf(b, "): ");
    free(name);
}

/* The first line of a report (its state), copied into out. */
static void first_line(const char *report, char *out, size_t n)
{
    size_t k = strcspn(report, "\n");
    if (k >= n)
        k = n - 1;
    memcpy(out, report, k);
    out[k] = '\0';
}

typedef struct ex_ctx {
    sbuf_t *b;
    braid_dump_entry_t *e;
    size_t n;
    size_t listed;
} ex_ctx_t;

/* "source:line" of the function at the start of an encoded call (the
 * codec's function: a lua_dump chunk, which starts with the source name
 * and the line the function is defined at), or "?". */
static void describe_call(const uint8_t *p, size_t n, char *out, size_t outn)
{
    snprintf(out, outn, "?");
    braid_reader_t r;
    braid_reader_init(&r, p, n);
    if (braid_reader_u8(&r) != BRAID_T_FUNC)
        return;
    size_t clen;
    const uint8_t *c = braid_reader_str(&r, &clen);
    /* header: signature 4, version, format, LUAC_DATA 6, three sizes, then
     * a lua_Integer and a lua_Number, then the upvalue count */
    if (r.err || !c || clen < 16 || memcmp(c, LUA_SIGNATURE, 4) != 0)
        return;
    size_t i = 15 + (size_t)c[13] + (size_t)c[14] + 1;
    size_t len = 0, line = 0;
    int k;
    for (k = 0; i < clen && k < 8; k++) { /* the source's size + 1 */
        len = (len << 7) | (c[i] & 0x7f);
        if (c[i++] & 0x80)
            break;
    }
    if (len == 0 || i + len - 1 > clen)
        return;
    const char *src = (const char *)c + i;
    size_t slen = len - 1;
    i += slen;
    for (k = 0; i < clen && k < 8; k++) {
        line = (line << 7) | (c[i] & 0x7f);
        if (c[i++] & 0x80)
            break;
    }
    if (slen > 0 && (*src == '@' || *src == '='))
        src++, slen--;
    if (slen > 120)
        src += slen - 120, slen = 120;
    snprintf(out, outn, "%.*s:%zu", (int)slen, src, line);
}

static void ex_view(void *ud, const braid_executor_view_t *v)
{
    ex_ctx_t *x = ud;
    sb_printf(x->b,
              "\nExecutor \"%s\" (max_workers %d, %d thread%s, %d busy, %zu queued%s%s)",
              v->name ? v->name : v->prefix,
              v->max_workers,
              v->nthreads,
              v->nthreads == 1 ? "" : "s",
              v->busy,
              v->pending,
              v->shutdown ? ", shut down" : "",
              v->broken ? ", broken" : "");
    for (int i = 0; i < v->nthreads; i++) {
        const char *state = "no report";
        char line[300];
        for (size_t j = 0; j < x->n; j++) {
            if (x->e[j].thread == v->threads[i] && x->e[j].report) {
                first_line(x->e[j].report, line, sizeof line);
                state = line;
            }
        }
        if (!braid_thread_is_alive(v->threads[i]))
            state = "exited";
        char *name = braid_thread_name(v->threads[i]);
        sb_printf(x->b, "\n  worker %s: %s", name ? name : "?", state);
        free(name);
    }
    x->listed = 0;
    if (v->pending)
        sb_printf(x->b, "\n  queued jobs, oldest first:");
    if (v->pending > MAX_QUEUED)
        x->listed = v->pending - MAX_QUEUED; /* shown as "... and N more" */
}

static void ex_call(void *ud, const braid_buf_t *call, size_t aux)
{
    ex_ctx_t *x = ud;
    char d[160];
    (void)aux; /* the function comes first in every executor's calls */
    describe_call(call->data, call->len, d, sizeof d);
    sb_printf(x->b, "\n    %s", d);
}

/* Builds the whole dump text from the collected entries. */
static void format_dump(sbuf_t *b, braid_dump_entry_t *e, size_t n)
{
    sb_printf(b, "==== braid dump: process %ld ====", (long)getpid());
    braid_thread_t **ts = NULL;
    size_t nt = 0;
    if (braid_thread_enumerate(&ts, &nt) != 0)
        nt = 0;
    char *shown = calloc(n ? n : 1, 1);
    for (size_t i = 0; i < nt; i++) {
        add_thread_head(b, ts[i]);
        int found = 0;
        for (size_t j = 0; j < n; j++) {
            if (e[j].thread != ts[i] || (shown && shown[j]))
                continue;
            if (found)
                sb_printf(b, "\n  another state on this thread: ");
            found = 1;
            if (shown)
                shown[j] = 1;
            sb_printf(b,
                      "%s",
                      e[j].report ? e[j].report
                                  : "running C code (no report within the dump's bound)");
        }
        if (!found)
            sb_printf(b, "%s (no Lua state)", thread_state(braid_thread_state(ts[i])));
    }
    for (size_t j = 0; j < n; j++) { /* states of threads braid did not start */
        if ((shown && shown[j]) || !e[j].thread)
            continue;
        add_thread_head(b, e[j].thread);
        sb_printf(b, "%s", e[j].report ? e[j].report : NO_REPORT);
    }
    free(shown);
    braid_thread_list_free(ts, nt);
    ex_ctx_t x = {b, e, n, 0};
    braid_executor_visit(ex_view, ex_call, MAX_QUEUED, &x);
    sb_printf(b, "\n==== end of braid dump ====\n");
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Collects (self reporting self_report) and prints one dump. */
static void dump_print(braid_dump_slot_t *self, const char *self_report)
{
    braid_dump_entry_t *e = NULL;
    size_t n = 0;
    braid_dump_collect(self, self_report, DUMP_WAIT_NS, &e, &n);
    sbuf_t b = {0};
    format_dump(&b, e, n);
    braid_dump_entries_free(e, n);
    if (b.p) {
        flockfile(stderr);
        fflush(stderr);
        write_all(STDERR_FILENO, b.p, b.n);
        funlockfile(stderr);
    }
    free(b.p);
}

void lbraid_dump_run(lua_State *L)
{
    braid_dump_slot_t *self = braid_dump_current();
    ldump_state_t *ld = self ? self->data : NULL;
    char *report = NULL;
    if (L && ld) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
        int mine = lua_tothread(L, -1) == ld->L;
        lua_pop(L, 1);
        if (mine) {
            sbuf_t b = {0};
            add_state(&b, ld, "running");
            add_traceback(&b, ld->L, 0);
            add_tasks(&b, L);
            report = b.p;
        } else {
            self = NULL;
        }
    }
    dump_print(self, report);
    free(report);
}

/* ---- braid.dump() ---- */

static int ldump_dump(lua_State *L)
{
    lbraid_dump_run(L);
    return 0;
}

lua_CFunction lbraid_dump_fn(void)
{
    return ldump_dump;
}

/* ---- the helper threads: SIGQUIT's watcher, the dump-after timer ----
 * Both run this library's code at any time: keep it mapped even if a Lua
 * host unloads braid.so. */

static void pin_library(void)
{
    Dl_info info;
    if (dladdr((void *)pin_library, &info) && info.dli_fname)
        (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

static int start_detached(void *(*fn)(void *), void *arg, pthread_t *out)
{
    pthread_attr_t at;
    pthread_attr_init(&at);
    if (!out)
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(out ? out : &t, &at, fn, arg);
    pthread_attr_destroy(&at);
    return rc;
}

static int quit_pipe[2] = {-1, -1};
static int timer_forked; /* in a forked child: no timer thread to stop */

/* A forked child has neither helper thread: SIGQUIT kills it as usual
 * (not writing the parent's pipe) and exit does not wait for the timer. */
static void helpers_atfork_child(void)
{
    if (quit_pipe[0] >= 0) {
        signal(SIGQUIT, SIG_DFL);
        close(quit_pipe[0]);
        close(quit_pipe[1]);
        quit_pipe[0] = quit_pipe[1] = -1;
    }
    timer_forked = 1;
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void install_atfork(void)
{
    pthread_atfork(NULL, NULL, helpers_atfork_child);
}

static void on_sigquit(int sig)
{
    (void)sig;
    int saved = errno;
    char c = 1;
    ssize_t w = write(quit_pipe[1], &c, 1); /* a full pipe: a dump is pending anyway */
    (void)w;
    errno = saved;
}

static void *quit_main(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        char c[16];
        ssize_t r = read(quit_pipe[0], c, sizeof c);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return NULL;
        dump_print(NULL, NULL);
    }
}

void lbraid_dump_install_sigquit(void)
{
    if (quit_pipe[0] >= 0 || pipe2(quit_pipe, O_CLOEXEC) != 0)
        return;
    fcntl(quit_pipe[1], F_SETFL, O_NONBLOCK);
    pin_library();
    pthread_once(&atfork_once, install_atfork);
    if (start_detached(quit_main, NULL, NULL) != 0)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigquit;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGQUIT, &sa, NULL);
}

static pthread_mutex_t timer_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t timer_cv;
static int timer_started, timer_stop;
static int64_t timer_deadline;
static pthread_t timer_thread;

static void *timer_main(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_mutex_lock(&timer_mu);
    while (!timer_stop && braid_clock_now() < timer_deadline) {
        struct timespec ts = {.tv_sec = timer_deadline / 1000000000,
                              .tv_nsec = timer_deadline % 1000000000};
        pthread_cond_timedwait(&timer_cv, &timer_mu, &ts);
    }
    int fire = !timer_stop;
    pthread_mutex_unlock(&timer_mu);
    if (fire)
        dump_print(NULL, NULL);
    return NULL;
}

/* At exit: the program ended in time, no dump. */
static void timer_atexit(void)
{
    if (timer_forked)
        return;
    pthread_mutex_lock(&timer_mu);
    timer_stop = 1;
    pthread_cond_signal(&timer_cv);
    pthread_mutex_unlock(&timer_mu);
    pthread_join(timer_thread, NULL);
}

void lbraid_dump_after(double secs)
{
    pthread_mutex_lock(&timer_mu);
    if (timer_started || !(secs >= 0)) {
        pthread_mutex_unlock(&timer_mu);
        return;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&timer_cv, &ca);
    pthread_condattr_destroy(&ca);
    timer_deadline = braid_clock_deadline(secs);
    pin_library();
    pthread_once(&atfork_once, install_atfork);
    if (start_detached(timer_main, NULL, &timer_thread) == 0) {
        timer_started = 1;
        atexit(timer_atexit);
    }
    pthread_mutex_unlock(&timer_mu);
}

void lbraid_dump_from_env(void)
{
    const char *v = getenv("BRAID_DUMP_AFTER");
    if (!v || !*v)
        return;
    char *end;
    double secs = strtod(v, &end);
    if (*end || !(secs >= 0)) {
        fprintf(stderr, "braid: BRAID_DUMP_AFTER: not a number of seconds: '%s'\n", v);
        return;
    }
    lbraid_dump_after(secs);
}
