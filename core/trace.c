/* Sessions and the crash paths: start/stop, BRAID_TRACE, child processes
 * (which write "<path>.<pid>.part" chunks that the parent appends before
 * closing the JSON), fork, exit and fatal signals. Recording is in
 * trace_record.c, formatting and the flusher in trace_json.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "fdio.h"
#include "trace_int.h"

atomic_int braid__trace_on;
_Atomic(tbuf_t *) trace__all;
size_t trace__buf_size = TRACE_DEFAULT_BUF;
int trace__pid;
int64_t trace__started_at;
atomic_ullong trace__session;
atomic_int trace__closed;
atomic_int trace__fatal_tid;
static atomic_int every_arrow; /* BRAID_TRACE_ARROWS=all */
_Thread_local char trace__tls_name[64];

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* start/stop */
static int fd = -1;
static int child; /* writing a chunk for the parent's file */
static char path[4096], part_path[4200];
static char proc_name[256];
static char crash_scratch[TRACE_JSON_SCRATCH], crash_rbuf[TRACE_JSON_SCRATCH]; /* on_fatal's */

static const char CLOSING[] =
    "\n],\"displayTimeUnit\":\"ms\",\"otherData\":{\"tool\":\"braid\"}}\n";

static int gettid_(void)
{
    return (int)syscall(SYS_gettid);
}

int trace__out_fd(void)
{
    if (fd < 0 && child && part_path[0])
        fd = open(part_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd;
}

static _Thread_local char tls_job[TRACE_STR_MAX];

void braid_trace_set_job_name(const char *name)
{
    snprintf(tls_job, sizeof tls_job, "%s", name ? name : "");
}

const char *braid_trace_job_name(void)
{
    return tls_job[0] ? tls_job : "job";
}

int braid_trace_every_arrow(void)
{
    return atomic_load_explicit(&every_arrow, memory_order_relaxed);
}

int64_t braid_trace_started_at(void)
{
    return trace__started_at;
}

/* ---- sessions ---- */

static void header(void)
{
    static const char first[] =
        "{\"traceEvents\":[\n{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":";
    static const char next[] = ",\n{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":";
    char buf[1024];
    trace_out_t o = {buf, buf + sizeof buf};
    if (!child)
        trace__put_raw(&o, first, sizeof first - 1);
    else
        trace__put_raw(&o, next, sizeof next - 1);
    trace__put_int(&o, trace__pid);
    trace__put_raw(&o, ",\"tid\":", 7);
    trace__put_int(&o, trace__pid);
    trace__put_raw(&o, ",\"args\":{\"name\":", 16);
    trace__put_str(&o, proc_name, TRACE_STR_MAX);
    trace__put_raw(&o, "}}", 2);
    braid_write_all(trace__out_fd(), buf, (size_t)(o.p - buf));
}

static void on_fatal(int sig)
{
    /* async-signal-safe: write the closing once, then die as we would */
    int zero = 0;
    if (!child && fd >= 0 && !atomic_load(&trace__closed) &&
        atomic_compare_exchange_strong(&trace__fatal_tid, &zero, gettid_())) {
        trace__flusher_quiesce(); /* from now on only this thread writes */
        /* what was spilled and what the threads buffered (a half the
         * flusher is formatting is lost) */
        trace__spill_format(fd, crash_scratch, crash_rbuf, sizeof crash_rbuf);
        trace__spill_unlink();
        for (tbuf_t *b = atomic_load(&trace__all); b; b = b->next) {
            size_t len = atomic_load(&b->len);
            if (atomic_load(&b->used) && len <= trace__buf_size)
                trace__write_json(fd, b->cur, len, trace__pid, b->tid, crash_scratch);
        }
        if (!atomic_exchange(&trace__closed, 1) && write(fd, CLOSING, sizeof CLOSING - 1) < 0)
            fd = -1;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_fatal(void)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTERM};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
            !(old.sa_flags & SA_SIGINFO)) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_fatal;
            sigemptyset(&sa.sa_mask);
            sa.sa_flags = SA_RESETHAND;
            sigaction(sigs[i], &sa, NULL);
        }
    }
}

static void at_exit(void)
{
    braid_trace_stop();
}

static void atfork_child(void)
{
    if (!atomic_load(&braid__trace_on) && !child)
        return;
    /* this process's copy: the other threads and the flusher are gone */
    pthread_mutex_init(&mu, NULL);
    trace__flusher_after_fork();
    trace__buffers_after_fork();
    child = 1;
    fd = -1;
    trace__pid = getpid();
    trace__tls_name[0] = 0; /* the forking thread is this process's main thread */
    snprintf(part_path, sizeof part_path, "%s.%d.part", path, trace__pid);
    snprintf(proc_name, sizeof proc_name, "worker %d", trace__pid);
    trace__spill_reset(path, trace__pid);
    atomic_fetch_add(&trace__session, 1);
    if (atomic_load(&braid__trace_on))
        header();
}

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void install_hooks(void)
{
    atexit(at_exit);
    pthread_atfork(NULL, NULL, atfork_child);
}

static int start(const char *p, const char *name, int as_child)
{
    pthread_mutex_lock(&mu);
    if (atomic_load(&braid__trace_on)) {
        pthread_mutex_unlock(&mu);
        return BRAID_EINVAL;
    }
    const char *arrows = getenv("BRAID_TRACE_ARROWS");
    atomic_store(&every_arrow, arrows && strcmp(arrows, "all") == 0);
    const char *bs = getenv("BRAID_TRACE_BUFFER");
    if (bs && atol(bs) >= 4 * TRACE_REC_MAX && !atomic_load(&trace__all))
        trace__buf_size = (size_t)atol(bs);
    trace__pid = getpid();
    child = as_child;
    snprintf(path, sizeof path, "%s", p);
    if (as_child) {
        snprintf(part_path, sizeof part_path, "%s.%d.part", path, trace__pid);
        fd = -1;
    } else {
        part_path[0] = 0;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            pthread_mutex_unlock(&mu);
            return BRAID_EOS;
        }
        char pidbuf[24];
        snprintf(pidbuf, sizeof pidbuf, "%d", trace__pid);
        setenv("BRAID_TRACE", path, 1);
        setenv("BRAID_TRACE_PARENT", pidbuf, 1);
    }
    if (name)
        snprintf(proc_name, sizeof proc_name, "%s", name);
    else
        snprintf(proc_name, sizeof proc_name, "%s %d", as_child ? "worker" : "braid", trace__pid);
    atomic_store(&trace__closed, 0);
    atomic_store(&trace__fatal_tid, 0);
    trace__spill_reset(path, trace__pid);
    trace__started_at = braid_clock_now();
    atomic_fetch_add(&trace__session, 1);
    header();
    pthread_once(&hooks_once, install_hooks);
    if (!as_child)
        install_fatal();
    atomic_store(&braid__trace_on, 1);
    pthread_mutex_unlock(&mu);
    return 0;
}

int braid_trace_start(const char *p, const char *name)
{
    return start(p, name, 0);
}

void braid_trace_set_process_name(const char *name)
{
    if (!name)
        return;
    snprintf(proc_name, sizeof proc_name, "%s", name);
    if (atomic_load(&braid__trace_on))
        header(); /* another process_name event: the last one names it */
}

const char *braid_trace_path(void)
{
    return atomic_load(&braid__trace_on) ? path : NULL;
}

/* Appends the children's chunks "<path>.<pid>.part" and removes them. */
static void merge_parts(void)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    const char *base = path;
    if (slash) {
        *slash = 0;
        base = path + (slash - dir) + 1;
    } else {
        snprintf(dir, sizeof dir, ".");
    }
    if (!dir[0])
        snprintf(dir, sizeof dir, "/");
    size_t bl = strlen(base);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char buf[65536], full[8300];
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n <= bl + 6 || strncmp(e->d_name, base, bl) != 0 || e->d_name[bl] != '.' ||
            strcmp(e->d_name + n - 5, ".part") != 0)
            continue;
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        int in = open(full, O_RDONLY | O_CLOEXEC);
        if (in < 0)
            continue;
        ssize_t r;
        while ((r = read(in, buf, sizeof buf)) > 0)
            braid_write_all(fd, buf, (size_t)r);
        close(in);
        unlink(full);
    }
    closedir(d);
}

int braid_trace_stop(void)
{
    if (!atomic_load(&braid__trace_on))
        return BRAID_EINVAL;
    if (gettid_() == trace__pid) /* the main thread's run, for what it did outside slices */
        braid_trace_slice("thread",
                          trace__tls_name[0] ? trace__tls_name : "MainThread",
                          trace__started_at,
                          braid_clock_now(),
                          NULL,
                          0);
    if (!atomic_exchange(&braid__trace_on, 0))
        return BRAID_EINVAL;
    for (tbuf_t *b = atomic_load(&trace__all); b; b = b->next)
        for (int i = 0; atomic_load(&b->busy); i++)
            if (i > 64)
                sched_yield();
    trace__flusher_finish(); /* every half handed to it is written */
    trace__buffers_drain();
    trace__spill_finish(trace__out_fd());
    if (!child) {
        merge_parts();
        if (!atomic_exchange(&trace__closed, 1))
            braid_write_all(fd, CLOSING, sizeof CLOSING - 1);
        unsetenv("BRAID_TRACE");
        unsetenv("BRAID_TRACE_PARENT");
    }
    if (fd >= 0)
        close(fd);
    fd = -1;
    return 0;
}

void braid_trace_flush_child(void)
{
    if (child)
        braid_trace_stop();
}

static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void init_env(void)
{
    const char *p = getenv("BRAID_TRACE");
    if (!p || !*p || atomic_load(&braid__trace_on))
        return;
    const char *parent = getenv("BRAID_TRACE_PARENT");
    int as_child = parent && atoi(parent) > 0 && atoi(parent) != getpid();
    start(p, NULL, as_child);
}

void braid_trace_init_from_env(void)
{
    pthread_once(&env_once, init_env);
}
