/* Child processes: posix_spawn or fork, a pidfd per child for waiting with
 * a deadline, and the table of children that nothing leaves unreaped. */
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "process.h"
#include "thread.h"

extern char **environ;

/* A waiting thread looks at its cancellation this often. */
#define WAIT_SLICE_MS 50

struct braid_proc {
    atomic_int refs;
    pid_t pid;
    int pidfd; /* -1 once reaped */
    int chan;  /* owner's descriptor, closed at reap; -1 none */
    int daemon;
    pthread_mutex_t mu; /* guards reaped/status/pidfd/chan */
    int reaped, status; /* raw wait status once reaped */
};

/* The table of unreaped children; each entry holds one reference.
 * Lock order: table_mu, then a child's mu. */
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static braid_proc_t **table;
static size_t table_n, table_cap;

static braid_proc_t *proc_new(pid_t pid)
{
    braid_proc_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    atomic_init(&p->refs, 1);
    p->pid = pid;
    p->chan = -1;
    pthread_mutex_init(&p->mu, NULL);
    p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (p->pidfd >= 0)
        fcntl(p->pidfd, F_SETFD, FD_CLOEXEC);
    return p;
}

/* Adds p to the table (one more reference). 0 or BRAID_ENOMEM. */
static int table_add(braid_proc_t *p)
{
    int rc = 0;
    pthread_mutex_lock(&table_mu);
    if (table_n == table_cap) {
        size_t ncap = table_cap ? table_cap * 2 : 16;
        braid_proc_t **n = realloc(table, ncap * sizeof *n);
        if (!n)
            rc = BRAID_ENOMEM;
        else {
            table = n;
            table_cap = ncap;
        }
    }
    if (!rc) {
        braid_proc_retain(p);
        table[table_n++] = p;
    }
    pthread_mutex_unlock(&table_mu);
    return rc;
}

static void table_remove(braid_proc_t *p)
{
    int found = 0;
    pthread_mutex_lock(&table_mu);
    for (size_t i = 0; i < table_n; i++) {
        if (table[i] == p) {
            table[i] = table[--table_n];
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&table_mu);
    if (found)
        braid_proc_release(p);
}

/* Adds a started child to the table and hands it out; a child that cannot
 * be tracked is killed and reaped, never left running or unreaped. */
static int track_child(pid_t pid, braid_proc_t **out)
{
    braid_proc_t *p = proc_new(pid);
    if (!p || table_add(p)) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        braid_proc_release(p);
        return BRAID_ENOMEM;
    }
    *out = p;
    return 0;
}

/* ---- spawn ----
 * posix_spawn's child (glibc) walks all 64 signals with two sigaction calls
 * each before its exec, ~130 system calls while the parent waits. A braid
 * worker needs none of that: the child below starts with every signal
 * blocked (so no handler of the parent can run on its borrowed memory),
 * sets up fds 0 and 3, puts back the default action of the four signals a
 * parent commonly ignores and execs; the worker unblocks its signals first
 * thing (braid_proc_unblock_signals). Raw system calls only: nothing in
 * the child may take a lock or go through a sanitizer's interceptors. */

/* Sanitizers instrument the child's code, and their shadow memory is the
 * parent's: there the worker is started by posix_spawn (which they
 * intercept), its signal mask already empty. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SPAWN_CLONE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SPAWN_CLONE 0
#endif
#endif
#ifndef SPAWN_CLONE
#define SPAWN_CLONE 1
#endif

typedef struct spawn_req {
    const char *path;
    char *const *argv;
    int chan;
    volatile int err; /* errno of the failed step, read after the child is gone */
} spawn_req_t;

struct ksigaction { /* the kernel's rt_sigaction layout */
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};

static int spawn_child(void *arg)
{
    spawn_req_t *r = arg;
    static const int dfl[] = {SIGPIPE, SIGTERM, SIGINT, SIGCHLD};
    struct ksigaction sa = {SIG_DFL, 0, NULL, 0};
    for (size_t i = 0; i < sizeof dfl / sizeof dfl[0]; i++)
        syscall(SYS_rt_sigaction, dfl[i], &sa, NULL, sizeof sa.mask);
    long fd = syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY);
    /* dup3, not dup2 (which arm64 lacks): fd != 0 and chan != 3 here */
    if (fd < 0 || (fd != 0 && (syscall(SYS_dup3, fd, 0, 0) < 0 || syscall(SYS_close, fd) < 0)) ||
        syscall(SYS_dup3, r->chan, 3, 0) < 0) {
        r->err = errno ? errno : EBADF;
        syscall(SYS_exit, 127);
    }
    syscall(SYS_execve, r->path, r->argv, environ);
    r->err = errno ? errno : ENOEXEC;
    syscall(SYS_exit, 127);
    return 127;
}

void braid_proc_unblock_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
}

/* clone(CLONE_VM | CLONE_VFORK): returns when the child has exec'd or
 * exited; 0 and *pid, or an errno. */
static int spawn_masked(const char *path, char *const argv[], int chan, pid_t *pid)
{
    /* the child's stack, in this frame: the parent sleeps until the exec */
    _Alignas(16) char stack[8192];
    spawn_req_t r = {path, argv, chan, 0};
    /* every signal, C library's own included (pthread_sigmask keeps those) */
    uint64_t all = ~(uint64_t)0, old;
    if (syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, &old, sizeof all) != 0)
        return errno;
    pid_t p = clone(spawn_child, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &r);
    int err = p < 0 ? errno : r.err;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, sizeof old);
    if (p > 0 && err) { /* exec failed: the child exited with 127 */
        while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (err)
        return err;
    *pid = p;
    return 0;
}

static int spawn_posix(const char *path, char *const argv[], int chan, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, chan, 3);
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGCHLD);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int err = posix_spawn(pid, path, &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return err;
}

static int spawn_here(const char *path, char *const argv[], int chan, int flags, pid_t *pid)
{
    return SPAWN_CLONE && (flags & BRAID_SPAWN_MASKED) ? spawn_masked(path, argv, chan, pid)
                                                       : spawn_posix(path, argv, chan, pid);
}

/* ---- the spawner thread ----
 * The kernel sends a child its parent-death signal (PR_SET_PDEATHSIG, which
 * every braid child asks for) when the *thread* that started it ends, not
 * the process (prctl(2)); a braid thread's OS thread ends with the thread,
 * or when it idles out of the pool. So only the main thread starts a child
 * itself: other threads hand the start to this thread, which lives as long
 * as the process. One start at a time (each is a few hundred us). */

typedef struct spawn_job {
    const char *path;
    char *const *argv;
    int chan, flags, err, done;
    pid_t pid;
} spawn_job_t;

static pthread_mutex_t spawner_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t spawner_posted = PTHREAD_COND_INITIALIZER;
static pthread_cond_t spawner_done = PTHREAD_COND_INITIALIZER;
static spawn_job_t *spawner_job; /* posted, not yet taken */
static int spawner_up;

static void *spawner_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&spawner_mu);
    for (;;) {
        while (!spawner_job)
            pthread_cond_wait(&spawner_posted, &spawner_mu);
        spawn_job_t *j = spawner_job;
        spawner_job = NULL;
        pthread_mutex_unlock(&spawner_mu);
        j->err = spawn_here(j->path, j->argv, j->chan, j->flags, &j->pid);
        pthread_mutex_lock(&spawner_mu);
        j->done = 1;
        pthread_cond_broadcast(&spawner_done);
    }
    return NULL;
}

int braid_proc_is_main_thread(void)
{
    return (pid_t)syscall(SYS_gettid) == getpid();
}

/* Starts the child from the main thread or the spawner. If the spawner
 * cannot be started, from this thread (the child then ends with it). */
static int spawn_lasting(const char *path, char *const argv[], int chan, int flags, pid_t *pid)
{
    if (braid_proc_is_main_thread())
        return spawn_here(path, argv, chan, flags, pid);
    spawn_job_t j = {path, argv, chan, flags, 0, 0, 0};
    pthread_mutex_lock(&spawner_mu);
    if (!spawner_up) {
        pthread_t t;
        pthread_attr_t at;
        sigset_t all, old;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 256 * 1024);
        sigfillset(&all); /* signals are for the threads that run Lua */
        pthread_sigmask(SIG_SETMASK, &all, &old);
        spawner_up = pthread_create(&t, &at, spawner_main, NULL) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&at);
        if (!spawner_up) {
            pthread_mutex_unlock(&spawner_mu);
            return spawn_here(path, argv, chan, flags, pid);
        }
    }
    while (spawner_job) /* another start is posted: it goes first */
        pthread_cond_wait(&spawner_done, &spawner_mu);
    spawner_job = &j;
    pthread_cond_signal(&spawner_posted);
    while (!j.done)
        pthread_cond_wait(&spawner_done, &spawner_mu);
    pthread_mutex_unlock(&spawner_mu);
    *pid = j.pid;
    return j.err;
}

int braid_proc_spawn(const char *path, char *const argv[], int chan, int flags, braid_proc_t **out)
{
    *out = NULL;
    if (access(path, X_OK) != 0)
        return BRAID_EOS; /* told here even where posix_spawn cannot (valgrind) */
    int tmp = -1;
    if (chan == 3) { /* dup2(3, 3) would keep CLOEXEC on old C libraries */
        tmp = fcntl(chan, F_DUPFD_CLOEXEC, 4);
        if (tmp < 0)
            return BRAID_EOS;
        chan = tmp;
    }
    pid_t pid;
    int err = spawn_lasting(path, argv, chan, flags, &pid);
    if (tmp >= 0)
        close(tmp);
    if (err) {
        errno = err;
        return BRAID_EOS;
    }
    return track_child(pid, out);
}

/* In a fork child: forget the parent's children and close their channels. */
static void table_forget(void)
{
    for (size_t i = 0; i < table_n; i++) {
        braid_proc_t *p = table[i];
        if (p->chan >= 0)
            close(p->chan);
        if (p->pidfd >= 0)
            close(p->pidfd);
        p->chan = p->pidfd = -1;
        p->reaped = 1; /* not our child here: never wait for it */
    }
    /* the entries' references leak into the child on purpose: handles in
     * the copied Lua state may still point at them */
    table_n = 0;
}

int braid_proc_fork(braid_proc_t **out)
{
    *out = NULL;
    fflush(NULL);
    braid__thread_before_fork();
    pthread_mutex_lock(&table_mu); /* no table update in flight at fork */
    pid_t pid = fork();
    braid__thread_after_fork(pid == 0);
    if (pid == 0) {
        pthread_mutex_init(&table_mu, NULL);
        table_forget();
        /* no spawner here: the first start from a thread makes one */
        pthread_mutex_init(&spawner_mu, NULL);
        pthread_cond_init(&spawner_posted, NULL);
        pthread_cond_init(&spawner_done, NULL);
        spawner_job = NULL;
        spawner_up = 0;
        return 0;
    }
    pthread_mutex_unlock(&table_mu);
    if (pid < 0)
        return BRAID_EOS;
    return track_child(pid, out);
}

/* Reaps p if it has exited (blocking waitpid when block). Returns 1 when
 * reaped. Takes p->mu. */
static int proc_reap(braid_proc_t *p, int block)
{
    pthread_mutex_lock(&p->mu);
    if (!p->reaped) {
        int st;
        pid_t r;
        do
            r = waitpid(p->pid, &st, block ? 0 : WNOHANG);
        while (r < 0 && errno == EINTR);
        if (r == p->pid || (r < 0 && errno == ECHILD)) {
            p->reaped = 1;
            p->status = r == p->pid ? st : 0;
            if (p->pidfd >= 0)
                close(p->pidfd);
            if (p->chan >= 0)
                close(p->chan);
            p->pidfd = p->chan = -1;
        }
    }
    int done = p->reaped;
    pthread_mutex_unlock(&p->mu);
    if (done)
        table_remove(p);
    return done;
}

int braid_proc_poll(braid_proc_t *p)
{
    return proc_reap(p, 0);
}

int braid_proc_wait(braid_proc_t *p, int64_t deadline, braid_waiter_t *w)
{
    for (;;) {
        if (proc_reap(p, 0))
            return 0;
        if (w && atomic_load(&w->cancelled))
            return BRAID_ECANCELLED;
        if (w && w->interruptible && braid_waiter_take_interrupt()) {
            braid_waiter_interrupt(); /* leave it for the caller to see */
            return BRAID_EINTR;
        }
        int ms = WAIT_SLICE_MS;
        if (deadline != BRAID_FOREVER) {
            int64_t left = deadline - braid_clock_now();
            if (left <= 0)
                return BRAID_ETIMEOUT;
            if (left / 1000000 < ms)
                ms = (int)((left + 999999) / 1000000);
        }
        pthread_mutex_lock(&p->mu);
        int fd = p->pidfd >= 0 ? dup(p->pidfd) : -1; /* a reaper may close it */
        pthread_mutex_unlock(&p->mu);
        if (fd < 0) {
            struct timespec ts = {0, 1000000}; /* no pidfd: poll every ms */
            nanosleep(&ts, NULL);
            continue;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        poll(&pfd, 1, ms);
        close(fd);
    }
}

int braid_proc_signal(braid_proc_t *p, int sig)
{
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    if (!p->reaped && kill(p->pid, sig) != 0 && errno != ESRCH)
        rc = BRAID_EOS;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

pid_t braid_proc_pid(const braid_proc_t *p)
{
    return p->pid;
}

int braid_proc_exitcode(braid_proc_t *p)
{
    pthread_mutex_lock(&p->mu);
    int code = INT32_MIN;
    if (p->reaped) {
        if (WIFSIGNALED(p->status))
            code = -WTERMSIG(p->status);
        else
            code = WEXITSTATUS(p->status);
    }
    pthread_mutex_unlock(&p->mu);
    return code;
}

void braid_proc_set_chan(braid_proc_t *p, int fd)
{
    pthread_mutex_lock(&p->mu);
    if (p->reaped && fd >= 0)
        close(fd);
    else
        p->chan = fd;
    pthread_mutex_unlock(&p->mu);
}

int braid_proc_chan(const braid_proc_t *p)
{
    return p->chan;
}

void braid_proc_set_daemon(braid_proc_t *p, int daemon)
{
    p->daemon = daemon;
}

void braid_proc_retain(braid_proc_t *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void braid_proc_release(braid_proc_t *p)
{
    if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* the table holds a reference until reaped, so p was reaped (or is a
     * forgotten parent's child in a fork child) */
    if (p->pidfd >= 0)
        close(p->pidfd);
    if (p->chan >= 0)
        close(p->chan);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* A retained snapshot of the table. */
static braid_proc_t **table_snapshot(size_t *n)
{
    pthread_mutex_lock(&table_mu);
    braid_proc_t **a = table_n ? malloc(table_n * sizeof *a) : NULL;
    *n = a ? table_n : 0;
    for (size_t i = 0; i < *n; i++) {
        a[i] = table[i];
        braid_proc_retain(a[i]);
    }
    pthread_mutex_unlock(&table_mu);
    return a;
}

braid_proc_t **braid_proc_children(size_t *n)
{
    size_t all;
    braid_proc_t **a = table_snapshot(&all);
    size_t k = 0;
    for (size_t i = 0; i < all; i++) {
        if (proc_reap(a[i], 0))
            braid_proc_release(a[i]);
        else
            a[k++] = a[i];
    }
    *n = k;
    if (!k) {
        free(a);
        return NULL;
    }
    return a;
}

size_t braid_proc_count(void)
{
    pthread_mutex_lock(&table_mu);
    size_t n = table_n;
    pthread_mutex_unlock(&table_mu);
    return n;
}

void braid_proc_finish_all(int64_t deadline)
{
    size_t n;
    braid_proc_t **a = table_snapshot(&n);
    for (size_t i = 0; i < n; i++)
        if (a[i]->daemon)
            braid_proc_signal(a[i], SIGTERM);
    for (size_t i = 0; i < n; i++) {
        if (braid_proc_wait(a[i], deadline, NULL) != 0) {
            braid_proc_signal(a[i], SIGKILL);
            braid_proc_wait(a[i], BRAID_FOREVER, NULL);
        }
        braid_proc_release(a[i]);
    }
    free(a);
}
