/* The live dump, in each state: every state reports its own thread (what it
 * is blocked on, its traceback across coroutines, its asyncio tasks) in its
 * own OS thread; braid.dump(). Collecting and printing: ldump_print.c. */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dump.h"
#include "lbraid.h"
#include "ldump.h"
#include "thread.h"

#define MAX_FRAMES 40 /* per coroutine */
#define MAX_COROS 16  /* nesting followed through resume/wrap */

/* ---- a growable text buffer (no Lua state needed) ---- */

void ldump_printf(ldump_buf_t *b, const char *fmt, ...)
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
static _Atomic(lua_CFunction) co_resume, co_wrap, task_resume[2];

void lbraid_dump_follow_resume(lua_CFunction f)
{
    for (int i = 0; i < 2; i++) {
        lua_CFunction none = NULL;
        if (atomic_load(&task_resume[i]) == f ||
            atomic_compare_exchange_strong(&task_resume[i], &none, f))
            return;
    }
}

static int is_resume(lua_CFunction f)
{
    return f == atomic_load(&co_resume) || f == atomic_load(&task_resume[0]) ||
           f == atomic_load(&task_resume[1]);
}

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
    if (f && is_resume(f)) {
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
static void add_frames(ldump_buf_t *b, lua_State *co, int from)
{
    lua_Debug ar;
    int level = from;
    for (; level - from < MAX_FRAMES && lua_getstack(co, level, &ar); level++) {
        lua_getinfo(co, "Slnt", &ar);
        if (ar.currentline <= 0)
            ldump_printf(b, "\n\t%s: in ", ar.short_src);
        else
            ldump_printf(b, "\n\t%s:%d: in ", ar.short_src, ar.currentline);
        if (ar.namewhat && *ar.namewhat)
            ldump_printf(b,
                         "%s '%s'",
                         strcmp(ar.namewhat, "global") == 0 ? "function" : ar.namewhat,
                         ar.name ? ar.name : "?");
        else if (*ar.what == 'm')
            ldump_printf(b, "main chunk");
        else if (*ar.what != 'C')
            ldump_printf(b, "function <%s:%d>", ar.short_src, ar.linedefined);
        else
            ldump_printf(b, "?");
        if (ar.istailcall)
            ldump_printf(b, "\n\t(...tail calls...)");
    }
    if (lua_getstack(co, level, &ar))
        ldump_printf(b, "\n\t...");
}

/* The traceback of the thread whose root state is root: the innermost
 * running coroutine first, then the ones that resumed it. skip: frames of
 * the innermost to leave out. */
static void add_traceback(ldump_buf_t *b, lua_State *root, int skip)
{
    lua_State *chain[MAX_COROS];
    int n = 0;
    for (lua_State *co = root; co && n < MAX_COROS; co = running_child(co))
        chain[n++] = co;
    lua_Debug ar;
    if (!lua_getstack(chain[n - 1], skip, &ar) && n == 1) {
        ldump_printf(b, "\n  (no Lua code running)");
        return;
    }
    ldump_printf(b, "\n  stack traceback:");
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
static void add_wait(ldump_buf_t *b, braid_waiter_t *w)
{
    braid_wait_record_t r;
    if (!w || !braid_waiter_record(w, &r))
        return;
    if (r.on && r.on->type == &braid_thread_type) {
        char *name = braid_thread_name((braid_thread_t *)r.on);
        ldump_printf(b, " on Thread \"%s\"", name ? name : "?");
        free(name);
    } else if (r.on && braid_object_name(r.on)) {
        ldump_printf(b, " on %s \"%s\"", braid_object_kind(r.on), braid_object_name(r.on));
    } else if (r.on) {
        char label[64];
        ldump_printf(b, " on %s", braid_object_label(r.on, label, sizeof label));
    }
    int64_t now = braid_clock_now();
    ldump_printf(b, " in %s for %.2f s, ", r.op, (double)(now - r.since) / 1e9);
    if (r.deadline == BRAID_FOREVER)
        ldump_printf(b, "no timeout");
    else
        ldump_printf(
            b, "timeout in %.2f s", r.deadline > now ? (double)(r.deadline - now) / 1e9 : 0.0);
}

/* The first line of a report: the thread's state (running is what to say
 * of a running thread, NULL for a parked one). */
static void add_state(ldump_buf_t *b, ldump_state_t *ld, const char *running)
{
    lua_Debug ar;
    int idle = !lua_getstack(ld->L, 0, &ar);
    braid_waiter_t *w = running ? NULL : ld->slot->waiter;
    if (ld->kind == LDUMP_WORKER) {
        char job[256];
        job_of(ld->L, job, sizeof job);
        if (idle || !*job) {
            ldump_printf(b, "idle in pool");
            return;
        }
        ldump_printf(b, "%s job %s", running ? running : "blocked in", job);
        if (w)
            ldump_printf(b, ":");
    } else {
        ldump_printf(b, "%s", running ? running : idle ? "idle" : "blocked");
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
static void add_tasks(ldump_buf_t *b, lua_State *L)
{
    if (!lbraid_ctx(L)->loop_running || !lua_checkstack(L, 4))
        return;
    int top = lua_gettop(L);
    lua_pushcfunction(L, tasks_body);
    if (lua_pcall(L, 0, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
        ldump_printf(b, "\n%s", lua_tostring(L, -1));
    lua_settop(L, top);
}

/* ---- reports ---- */

/* A running state's report, from the hook (or braid.dump): L runs now. */
static void report_running(braid_dump_slot_t *s, lua_State *L, int skip, const char *what)
{
    ldump_state_t *ld = s->data;
    ldump_buf_t b = {0};
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
    ldump_buf_t b = {0};
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
            ldump_buf_t b = {0};
            add_state(&b, ld, "running");
            add_traceback(&b, ld->L, 0);
            add_tasks(&b, L);
            report = b.p;
        } else {
            self = NULL;
        }
    }
    ldump_print(self, report);
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
