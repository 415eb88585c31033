/* Child processes on an asyncio loop (subprocess.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "loop.h"
#include "subprocess.h"

struct braid_process {
    braid_handle_owner_t owner; /* first: the loop's stray-handle close */
    uv_process_t proc;
    int refs; /* the caller's and the open handle's */
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
    proc_unref(p);
}

static void on_child_exit(uv_process_t *h, int64_t status, int signum)
{
    braid_process_t *p = h->data;
    p->exited = 1;
    p->rc = signum ? -signum : (int)status;
    size_t n = p->nwait;
    p->nwait = 0;
    for (size_t i = 0; i < n; i++)
        braid_waiter_wake_local(p->waiters[i]);
    p->closing = 1;
    uv_close((uv_handle_t *)h, on_close);
}

int braid_process_spawn(uv_loop_t *uv, const char *file, char **args, char **env, const char *cwd,
                        const int stdio[3], braid_stream_t *pipes[3], braid_process_t **out)
{
    braid_process_t *p = calloc(1, sizeof *p);
    if (!p)
        return UV_ENOMEM;
    uv_stdio_container_t io[3];
    int child[3] = {-1, -1, -1}, parent[3] = {-1, -1, -1};
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        pipes[i] = NULL;
        io[i].flags = UV_INHERIT_FD;
        io[i].data.fd = i;
        if (stdio[i] == BRAID_STDIO_PIPE) {
            int sv[2];
            if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
                rc = uv_translate_sys_error(errno);
                break;
            }
            parent[i] = sv[0];
            child[i] = sv[1];
            io[i].data.fd = sv[1];
        } else if (stdio[i] == BRAID_STDIO_DEVNULL) {
            child[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
            if (child[i] < 0) {
                rc = uv_translate_sys_error(errno);
                break;
            }
            io[i].data.fd = child[i];
        } else if (stdio[i] == BRAID_STDIO_STDOUT && i == 2) {
            io[i].data.fd = io[1].data.fd;
        }
    }
    if (rc == 0) {
        uv_process_options_t o;
        memset(&o, 0, sizeof o);
        o.exit_cb = on_child_exit;
        o.file = file;
        o.args = args;
        o.env = env;
        o.cwd = cwd;
        o.stdio_count = 3;
        o.stdio = io;
        p->proc.data = p;
        rc = uv_spawn(uv, &p->proc, &o);
        if (rc) { /* libuv made a handle all the same: close it */
            p->refs = 1;
            p->closing = 1;
            uv_close((uv_handle_t *)&p->proc, on_close);
            p = NULL;
        }
    }
    for (int i = 0; i < 3; i++)
        if (child[i] >= 0)
            close(child[i]);
    for (int i = 0; i < 3 && rc == 0; i++)
        if (parent[i] >= 0) {
            rc = braid_stream_open_fd(uv, parent[i], &pipes[i]);
            if (rc == 0)
                parent[i] = -1;
        }
    for (int i = 0; i < 3; i++)
        if (parent[i] >= 0)
            close(parent[i]);
    if (rc) {
        for (int i = 0; i < 3; i++) {
            braid_stream_release(pipes[i]);
            pipes[i] = NULL;
        }
        if (p) { /* the child runs on: keep reaping it */
            p->owner.on_close = on_close;
            p->owner.magic = BRAID_HANDLE_MAGIC;
            p->refs = 1;
        }
        return rc;
    }
    p->owner.on_close = on_close;
    p->owner.magic = BRAID_HANDLE_MAGIC;
    p->refs = 2;
    p->pid = p->proc.pid;
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
    return uv_process_kill(&p->proc, signum);
}

void braid_process_release(braid_process_t *p)
{
    if (p)
        proc_unref(p);
}
