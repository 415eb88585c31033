/* The live dump, collected: the reports of every state in thread order,
 * the executors and their jobs, printed whole to stderr; and the threads
 * that dump on SIGQUIT and after --dump-on-timeout / BRAID_DUMP_AFTER. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dump.h"
#include "executor.h"
#include "fdio.h"
#include "lbraid.h"
#include "ldump.h"
#include "thread.h"

/* How long a dump waits for the threads' own reports: a thread running C
 * code that does not return by then is shown without a traceback. */
#define DUMP_WAIT_NS 1000000000LL
#define MAX_QUEUED 10 /* queued jobs listed per executor */
#define NO_REPORT "not answering (in a C call, or running Lua code inside a coroutine)"

/* ---- assembling and printing a dump ---- */

static const char *thread_state(int s)
{
    return s == BRAID_THREAD_RUNNING ? "alive" : s == BRAID_THREAD_DONE ? "finished" : "new";
}

static void add_thread_head(ldump_buf_t *b, braid_thread_t *t)
{
    char *name = braid_thread_name(t);
    ldump_printf(b,
                 "\nThread \"%s\" (ident %llu, native id %ld",
                 name ? name : "?",
                 (unsigned long long)braid_thread_ident(t),
                 braid_thread_native_id(t));
    if (braid_thread_daemon(t))
        ldump_printf(b, ", daemon");
    ldump_printf(b, "): ");
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
    ldump_buf_t *b;
    braid_dump_entry_t *e;
    size_t n;
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
    ldump_printf(x->b,
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
        ldump_printf(x->b, "\n  worker %s: %s", name ? name : "?", state);
        free(name);
    }
    if (v->pending > MAX_QUEUED)
        ldump_printf(x->b, "\n  queued jobs, the oldest %d:", MAX_QUEUED);
    else if (v->pending)
        ldump_printf(x->b, "\n  queued jobs, oldest first:");
}

static void ex_call(void *ud, const braid_buf_t *call, size_t aux)
{
    ex_ctx_t *x = ud;
    char d[160];
    (void)aux; /* the function comes first in every executor's calls */
    describe_call(call->data, call->len, d, sizeof d);
    ldump_printf(x->b, "\n    %s", d);
}

/* Builds the whole dump text from the collected entries. */
static void format_dump(ldump_buf_t *b, braid_dump_entry_t *e, size_t n)
{
    ldump_printf(b, "==== braid dump: process %ld ====", (long)getpid());
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
                ldump_printf(b, "\n  another state on this thread: ");
            found = 1;
            if (shown)
                shown[j] = 1;
            ldump_printf(b,
                         "%s",
                         e[j].report ? e[j].report
                                     : "running C code (no report within the dump's bound)");
        }
        if (!found)
            ldump_printf(b, "%s (no Lua state)", thread_state(braid_thread_state(ts[i])));
    }
    for (size_t j = 0; j < n; j++) { /* states of threads braid did not start */
        if ((shown && shown[j]) || !e[j].thread)
            continue;
        add_thread_head(b, e[j].thread);
        ldump_printf(b, "%s", e[j].report ? e[j].report : NO_REPORT);
    }
    free(shown);
    braid_thread_list_free(ts, nt);
    ex_ctx_t x = {b, e, n};
    braid_executor_visit(ex_view, ex_call, MAX_QUEUED, &x);
    ldump_printf(b, "\n==== end of braid dump ====\n");
}

/* Collects (self reporting self_report) and prints one dump. */
void ldump_print(braid_dump_slot_t *self, const char *self_report)
{
    braid_dump_entry_t *e = NULL;
    size_t n = 0;
    braid_dump_collect(self, self_report, DUMP_WAIT_NS, &e, &n);
    ldump_buf_t b = {0};
    format_dump(&b, e, n);
    braid_dump_entries_free(e, n);
    if (b.p) {
        flockfile(stderr);
        fflush(stderr);
        braid_write_all(STDERR_FILENO, b.p, b.n);
        funlockfile(stderr);
    }
    free(b.p);
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
/* The quit watcher and the timer while they run: idle helpers holding no
 * lock, which fork's "other threads" warning does not count. */
static atomic_int helpers_running;

int lbraid_dump_helpers(void)
{
    return atomic_load(&helpers_running);
}

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
    atomic_store(&helpers_running, 0);
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
        ldump_print(NULL, NULL);
    }
}

void lbraid_dump_install_sigquit(void)
{
    if (quit_pipe[0] >= 0 || pipe2(quit_pipe, O_CLOEXEC) != 0)
        return;
    fcntl(quit_pipe[1], F_SETFL, O_NONBLOCK);
    pin_library();
    pthread_once(&atfork_once, install_atfork);
    atomic_fetch_add(&helpers_running, 1);
    if (start_detached(quit_main, NULL, NULL) != 0) {
        atomic_fetch_sub(&helpers_running, 1);
        return;
    }
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
        ldump_print(NULL, NULL);
    atomic_fetch_sub(&helpers_running, 1);
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
    atomic_fetch_add(&helpers_running, 1);
    if (start_detached(timer_main, NULL, &timer_thread) != 0) {
        atomic_fetch_sub(&helpers_running, 1);
    } else {
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
