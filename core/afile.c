/* Async files for asyncio tasks: libuv fs requests on its thread pool,
 * each a refcounted operation with one waiting task. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "afile.h"
#include "clock.h"
#include "error.h"
#include "loop.h"

struct braid_afile {
    int fd;   /* -1 once closed (or handed to a close operation) */
    int refs; /* the caller's and each running operation's */
};

enum { OP_OPEN, OP_READ, OP_WRITE, OP_SIZE, OP_CLOSE };

struct braid_fsop {
    uv_fs_t req;
    int kind, refs; /* the caller's and libuv's (until the callback) */
    int done;
    int64_t result;
    braid_afile_t *file; /* the file operated on, or the one opened */
    braid_waiter_t *waiter;
    char *buf;
    size_t len;
};

static void afile_unref(braid_afile_t *f)
{
    if (!f || --f->refs > 0)
        return;
    if (f->fd >= 0)
        close(f->fd);
    free(f);
}

void braid_afile_release(braid_afile_t *f)
{
    afile_unref(f);
}

int braid_afile_fd(const braid_afile_t *f)
{
    return f->fd;
}

static void fsop_unref(braid_fsop_t *op)
{
    if (--op->refs > 0)
        return;
    afile_unref(op->file);
    free(op->buf);
    free(op);
}

static void on_fs(uv_fs_t *req)
{
    braid_fsop_t *op = req->data;
    op->done = 1;
    op->result = req->result;
    if (op->kind == OP_OPEN && req->result >= 0) {
        braid_afile_t *f = malloc(sizeof *f);
        if (f) {
            f->fd = (int)req->result;
            f->refs = 1;
            op->file = f;
            op->result = 0;
        } else {
            close((int)req->result);
            op->result = UV_ENOMEM;
        }
    }
    if (op->kind == OP_SIZE && req->result >= 0)
        op->result = (int64_t)req->statbuf.st_size;
    uv_fs_req_cleanup(req);
    if (op->waiter) {
        braid_waiter_t *w = op->waiter;
        op->waiter = NULL;
        braid_waiter_wake_local(w);
    }
    fsop_unref(op);
}

static braid_fsop_t *fsop_new(int kind, braid_afile_t *f, size_t buflen)
{
    braid_fsop_t *op = calloc(1, sizeof *op);
    if (!op)
        return NULL;
    if (buflen) {
        op->buf = malloc(buflen);
        if (!op->buf) {
            free(op);
            return NULL;
        }
    }
    op->kind = kind;
    op->refs = 2;
    op->req.data = op;
    if (f) {
        f->refs++;
        op->file = f;
    }
    return op;
}

/* The operation started (rc 0), or is freed. */
static int fsop_started(braid_fsop_t *op, int rc, braid_fsop_t **out)
{
    if (rc < 0) {
        afile_unref(op->file);
        free(op->buf);
        free(op);
        return rc;
    }
    *out = op;
    return 0;
}

int braid_fsop_open(uv_loop_t *uv, const char *path, int flags, int mode, braid_fsop_t **out)
{
    braid_fsop_t *op = fsop_new(OP_OPEN, NULL, 0);
    if (!op)
        return UV_ENOMEM;
    return fsop_started(op, uv_fs_open(uv, &op->req, path, flags, mode, on_fs), out);
}

int braid_fsop_read(uv_loop_t *uv, braid_afile_t *f, size_t len, int64_t off, braid_fsop_t **out)
{
    if (f->fd < 0)
        return UV_EBADF;
    braid_fsop_t *op = fsop_new(OP_READ, f, len ? len : 1);
    if (!op)
        return UV_ENOMEM;
    uv_buf_t b = uv_buf_init(op->buf, (unsigned)len);
    return fsop_started(op, uv_fs_read(uv, &op->req, f->fd, &b, 1, off, on_fs), out);
}

int braid_fsop_write(uv_loop_t *uv, braid_afile_t *f, const void *data, size_t len, int64_t off,
                     braid_fsop_t **out)
{
    if (f->fd < 0)
        return UV_EBADF;
    braid_fsop_t *op = fsop_new(OP_WRITE, f, len ? len : 1);
    if (!op)
        return UV_ENOMEM;
    memcpy(op->buf, data, len);
    op->len = len;
    uv_buf_t b = uv_buf_init(op->buf, (unsigned)len);
    return fsop_started(op, uv_fs_write(uv, &op->req, f->fd, &b, 1, off, on_fs), out);
}

int braid_fsop_size(uv_loop_t *uv, braid_afile_t *f, braid_fsop_t **out)
{
    if (f->fd < 0)
        return UV_EBADF;
    braid_fsop_t *op = fsop_new(OP_SIZE, f, 0);
    if (!op)
        return UV_ENOMEM;
    return fsop_started(op, uv_fs_fstat(uv, &op->req, f->fd, on_fs), out);
}

int braid_fsop_close(uv_loop_t *uv, braid_afile_t *f, braid_fsop_t **out)
{
    if (f->fd < 0)
        return UV_EBADF;
    braid_fsop_t *op = fsop_new(OP_CLOSE, NULL, 0);
    if (!op)
        return UV_ENOMEM;
    int fd = f->fd;
    int rc = uv_fs_close(uv, &op->req, fd, on_fs);
    if (rc == 0)
        f->fd = -1;
    return fsop_started(op, rc, out);
}

int braid_fsop_wait(braid_fsop_t *op, braid_waiter_t *w)
{
    if (op->done) {
        if (op->waiter == w)
            op->waiter = NULL;
        return 0;
    }
    if (!w || !w->notify)
        return UV_EBUSY;
    if (atomic_load(&w->cancelled)) {
        if (op->waiter == w)
            op->waiter = NULL;
        return BRAID_ECANCELLED;
    }
    if (op->waiter && op->waiter != w)
        return UV_EBUSY;
    op->waiter = w;
    w->deadline = BRAID_FOREVER;
    return BRAID_ESUSPEND;
}

int64_t braid_fsop_result(braid_fsop_t *op, const char **data, size_t *len, braid_afile_t **file)
{
    if (op->kind == OP_READ && op->result >= 0) {
        if (data)
            *data = op->buf;
        if (len)
            *len = (size_t)op->result;
    }
    if (op->kind == OP_OPEN && op->file && file) {
        *file = op->file;
        op->file = NULL;
    }
    return op->result;
}

void braid_fsop_release(braid_fsop_t *op)
{
    if (!op)
        return;
    op->waiter = NULL;
    if (!op->done)
        uv_cancel((uv_req_t *)&op->req);
    fsop_unref(op);
}
