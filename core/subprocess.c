/* Child processes on an asyncio loop (subprocess.h). Children start with
 * posix_spawn (glibc runs it as a vfork-style clone: no page tables are
 * copied, which libuv's fork-based uv_spawn pays on every start) and their
 * exit is watched through a pidfd polled by the loop (a timer polling
 * waitid where pidfds are missing, before Linux 5.3). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "loop.h"
#include "subprocess.h"

extern char **environ;

#define REAP_POLL_MS 5 /* the timer fallback's period */

struct braid_process {
    braid_handle_owner_t owner; /* first: the loop's stray-handle close */
    union {
        uv_handle_t h;
        uv_poll_t poll;
        uv_timer_t timer;
    } u;
    int pidfd; /* -1: the timer watches instead */
    int refs;  /* the caller's and the open handle's */
    int exited, closing, rc, pid;
    braid_waiter_t **waiters;
    size_t nwait, capwait;
};

static void proc_unref(braid_process_t *p)
{
    if (--p->refs > 0)
        return;
    free(p->waiters);
    free(p);
}

static void on_close(uv_handle_t *h)
{
    braid_process_t *p = h->data;
    if (p->pidfd >= 0)
        close(p->pidfd);
    p->pidfd = -1;
    proc_unref(p);
}

/* Reaps the child if it exited: wakes the waiters, closes the watcher. */
static void reap(braid_process_t *p)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG) != 0) {
        if (errno == EINTR)
            return;
        si.si_pid = p->pid; /* reaped by someone else (ECHILD): call it 0 */
        si.si_code = CLD_EXITED;
        si.si_status = 0;
    }
    if (si.si_pid == 0)
        return; /* still running */
    p->exited = 1;
    p->rc = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
    size_t n = p->nwait;
    p->nwait = 0;
    for (size_t i = 0; i < n; i++)
        braid_waiter_wake_local(p->waiters[i]);
    p->closing = 1;
    uv_close(&p->u.h, on_close);
}

static void on_pidfd(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    reap(h->data);
}

static void on_reap_timer(uv_timer_t *h)
{
    reap(h->data);
}

/* The child's stdio as file actions: dup2 each descriptor into place. */
static int stdio_actions(posix_spawn_file_actions_t *fa, const int fds[3])
{
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0 && posix_spawn_file_actions_adddup2(fa, fds[i], i) != 0)
            return UV_ENOMEM;
    return 0;
}

/* The program's path: file itself when it has a slash, else the first
 * executable regular file of that name along PATH (the parent's, as
 * posix_spawnp would). Looking here rather than in the child spares the
 * child one failing execve per PATH entry, and reports a missing program
 * even where the child cannot tell us (valgrind runs vfork as fork). */
static int resolve_program(const char *file, const char *cwd, char *buf, size_t cap,
                           const char **out)
{
    struct stat st;
    if (cwd) { /* the child's directory must exist (reported here too) */
        if (stat(cwd, &st) != 0)
            return uv_translate_sys_error(errno);
        if (!S_ISDIR(st.st_mode))
            return UV_ENOTDIR;
        if (file[0] != '/' && strchr(file, '/')) { /* relative to cwd: the child looks */
            *out = file;
            return 0;
        }
    }
    if (strchr(file, '/')) {
        if (stat(file, &st) != 0)
            return uv_translate_sys_error(errno);
        if (!S_ISREG(st.st_mode) || access(file, X_OK) != 0)
            return UV_EACCES;
        *out = file;
        return 0;
    }
    if (!*file)
        return UV_ENOENT;
    const char *path = getenv("PATH");
    if (!path)
        path = "/bin:/usr/bin";
    int rc = UV_ENOENT;
    size_t flen = strlen(file);
    for (const char *p = path;; p++) {
        const char *e = strchr(p, ':');
        size_t dlen = e ? (size_t)(e - p) : strlen(p);
        if (dlen + flen + 2 <= cap) {
            if (dlen == 0) { /* an empty entry is the current directory */
                memcpy(buf, file, flen + 1);
            } else {
                memcpy(buf, p, dlen);
                buf[dlen] = '/';
                memcpy(buf + dlen + 1, file, flen + 1);
            }
            if (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
                if (access(buf, X_OK) == 0) {
                    *out = buf;
                    return 0;
                }
                rc = UV_EACCES;
            }
        }
        if (!e)
            return rc;
        p = e;
    }
}

static int spawn_child(const char *file, char **args, char **env, const char *cwd, const int fds[3],
                       pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    if (posix_spawn_file_actions_init(&fa) != 0)
        return UV_ENOMEM;
    if (posix_spawnattr_init(&at) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return UV_ENOMEM;
    }
    int rc = stdio_actions(&fa, fds);
    if (rc == 0 && cwd && posix_spawn_file_actions_addchdir_np(&fa, cwd) != 0)
        rc = UV_ENOMEM;
    /* as libuv does: signals default and unblocked in the child */
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    if (rc == 0 &&
        (posix_spawnattr_setsigdefault(&at, &all) != 0 ||
         posix_spawnattr_setsigmask(&at, &none) != 0 ||
         posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK) != 0))
        rc = UV_EINVAL;
    char buf[PATH_MAX];
    const char *prog = NULL;
    if (rc == 0)
        rc = resolve_program(file, cwd, buf, sizeof buf, &prog);
    if (rc == 0) {
        int e = posix_spawn(pid, prog, &fa, &at, args, env ? env : environ);
        if (e != 0)
            rc = -e; /* libuv codes are negative errno values */
    }
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* Starts watching p's child on uv: a pidfd poll, else the timer. */
static int watch_child(uv_loop_t *uv, braid_process_t *p)
{
    p->u.h.data = p;
#ifdef SYS_pidfd_open
    p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
#else
    p->pidfd = -1;
#endif
    if (p->pidfd >= 0) {
        fcntl(p->pidfd, F_SETFD, FD_CLOEXEC);
        int rc = uv_poll_init(uv, &p->u.poll, p->pidfd);
        if (rc == 0) {
            p->u.h.data = p;
            return uv_poll_start(&p->u.poll, UV_READABLE, on_pidfd);
        }
        close(p->pidfd);
        p->pidfd = -1;
    }
    int rc = uv_timer_init(uv, &p->u.timer);
    if (rc)
        return rc;
    p->u.h.data = p;
    return uv_timer_start(&p->u.timer, on_reap_timer, REAP_POLL_MS, REAP_POLL_MS);
}

int braid_process_spawn(uv_loop_t *uv, const char *file, char **args, char **env, const char *cwd,
                        const int stdio[3], braid_stream_t *pipes[3], braid_process_t **out)
{
    braid_process_t *p = calloc(1, sizeof *p);
    if (!p)
        return UV_ENOMEM;
    p->pidfd = -1;
    int child[3] = {-1, -1, -1}, parent[3] = {-1, -1, -1};
    int fds[3] = {-1, -1, -1}; /* what the child gets as 0, 1, 2 (-1: ours) */
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        pipes[i] = NULL;
        if (stdio[i] == BRAID_STDIO_PIPE) {
            int sv[2];
            if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
                rc = uv_translate_sys_error(errno);
                break;
            }
            parent[i] = sv[0];
            child[i] = fds[i] = sv[1];
        } else if (stdio[i] == BRAID_STDIO_DEVNULL) {
            child[i] = fds[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
            if (child[i] < 0) {
                rc = uv_translate_sys_error(errno);
                break;
            }
        } else if (stdio[i] == BRAID_STDIO_STDOUT && i == 2) {
            fds[2] = fds[1] >= 0 ? fds[1] : 1;
        }
    }
    pid_t pid = 0;
    if (rc == 0)
        rc = spawn_child(file, args, env, cwd, fds, &pid);
    for (int i = 0; i < 3; i++)
        if (child[i] >= 0)
            close(child[i]);
    if (rc == 0) {
        p->pid = (int)pid;
        rc = watch_child(uv, p);
        if (rc) { /* cannot watch it: don't leave it running unseen */
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            if (p->u.h.loop) {
                p->refs = 1;
                p->exited = p->closing = 1;
                uv_close(&p->u.h, on_close);
                p = NULL;
            }
        }
    }
    for (int i = 0; i < 3 && rc == 0; i++)
        if (parent[i] >= 0) {
            rc = braid_stream_open_fd(uv, parent[i], &pipes[i]);
            if (rc == 0)
                parent[i] = -1;
        }
    for (int i = 0; i < 3; i++)
        if (parent[i] >= 0)
            close(parent[i]);
    if (p) {
        p->owner.on_close = on_close;
        p->owner.magic = BRAID_HANDLE_MAGIC;
    }
    if (rc) {
        for (int i = 0; i < 3; i++) {
            braid_stream_release(pipes[i]);
            pipes[i] = NULL;
        }
        if (p && p->u.h.loop)
            p->refs = 1; /* the child runs on: its watcher keeps reaping it */
        else
            free(p);
        return rc;
    }
    p->refs = 2;
    *out = p;
    return 0;
}

int braid_process_pid(const braid_process_t *p)
{
    return p->pid;
}

int braid_process_wait(braid_process_t *p, braid_waiter_t *w)
{
    for (size_t i = 0; i < p->nwait; i++)
        if (p->waiters[i] == w) {
            if (p->exited || atomic_load(&w->cancelled)) {
                p->waiters[i] = p->waiters[--p->nwait];
                break;
            }
            return BRAID_ESUSPEND;
        }
    if (p->exited)
        return 0;
    if (!w || !w->notify)
        return UV_EBUSY;
    if (atomic_load(&w->cancelled))
        return BRAID_ECANCELLED;
    if (p->nwait == p->capwait) {
        size_t cap = p->capwait ? p->capwait * 2 : 2;
        braid_waiter_t **v = realloc(p->waiters, cap * sizeof *v);
        if (!v)
            return UV_ENOMEM;
        p->waiters = v;
        p->capwait = cap;
    }
    p->waiters[p->nwait++] = w;
    w->deadline = BRAID_FOREVER;
    return BRAID_ESUSPEND;
}

int braid_process_returncode(const braid_process_t *p, int *rc)
{
    if (p->exited)
        *rc = p->rc;
    return p->exited;
}

int braid_process_kill(braid_process_t *p, int signum)
{
    if (p->exited || p->closing)
        return 0;
    /* not reaped yet, so the pid is still this child's */
    return kill(p->pid, signum) == 0 ? 0 : uv_translate_sys_error(errno);
}

void braid_process_release(braid_process_t *p)
{
    if (p)
        proc_unref(p);
}
