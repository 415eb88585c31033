/* Byte streams on an asyncio loop (stream.h): libuv TCP/pipe handles, a
 * read buffer with a limit, a write queue with water marks, listeners and
 * name resolution, waking task waiters from libuv's callbacks. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "loop.h"
#include "stream.h"

/* Waiters of one condition: usually one task, a few for drain/close. */
typedef struct wlist {
    braid_waiter_t **v;
    size_t n, cap;
} wlist_t;

struct braid_stream {
    braid_handle_owner_t owner; /* first: the loop's stray-handle close */
    union {
        uv_handle_t h;
        uv_stream_t s;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } u;
    int kind, refs; /* the caller's and the open handle's */
    int listener, connecting, connected, conn_status;
    int closing, close_pending, closed, shut;
    int reading, eof, read_err, write_err, pending_accept, accept_err;
    char *rb; /* read buffer: rb[rstart..rend) */
    size_t rstart, rend, rcap, limit;
    size_t want; /* what the waiting reader needs buffered (read(-1): all) */
    size_t wqueued, high, low;
    int paused;
    char *path; /* a pipe listener's path: unlinked when closed */
    uv_connect_t creq;
    uv_shutdown_t sreq;
    wlist_t readers, drainers, closers, acceptors, connectors;
};

typedef struct wreq {
    uv_write_t req;
    braid_stream_t *s;
    size_t len;
    char data[];
} wreq_t;

struct braid_resolve {
    uv_getaddrinfo_t req;
    struct addrinfo *res;
    int status, done, refs;
    wlist_t waiters;
};

/* ---- waiter lists ---- */

static void wl_remove(wlist_t *l, braid_waiter_t *w)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i] == w) {
            l->v[i] = l->v[--l->n];
            return;
        }
}

/* Records w (a task waiter) as waiting, or forgets it when it was cancelled. */
static int wl_park(wlist_t *l, braid_waiter_t *w)
{
    if (!w || !w->notify)
        return UV_EBUSY;
    if (atomic_load(&w->cancelled)) {
        wl_remove(l, w);
        return BRAID_ECANCELLED;
    }
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i] == w)
            return BRAID_ESUSPEND;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 2;
        braid_waiter_t **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return UV_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = w;
    w->deadline = BRAID_FOREVER;
    return BRAID_ESUSPEND;
}

static int wl_ready(wlist_t *l, braid_waiter_t *w)
{
    if (w)
        wl_remove(l, w);
    return 0;
}

static void wl_wake(wlist_t *l)
{
    size_t n = l->n;
    l->n = 0;
    for (size_t i = 0; i < n; i++)
        braid_waiter_wake_local(l->v[i]);
}

static void wl_free(wlist_t *l)
{
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* ---- lifetime ---- */

static void stream_unref(braid_stream_t *s)
{
    if (--s->refs > 0)
        return;
    free(s->rb);
    free(s->path);
    wl_free(&s->readers);
    wl_free(&s->drainers);
    wl_free(&s->closers);
    wl_free(&s->acceptors);
    wl_free(&s->connectors);
    free(s);
}

static void wake_all(braid_stream_t *s)
{
    wl_wake(&s->readers);
    wl_wake(&s->drainers);
    wl_wake(&s->closers);
    wl_wake(&s->acceptors);
    wl_wake(&s->connectors);
}

static void on_close(uv_handle_t *h)
{
    braid_stream_t *s = (braid_stream_t *)h->data;
    s->closed = 1;
    s->closing = 1;
    s->eof = 1;
    if (s->path) {
        unlink(s->path);
        free(s->path);
        s->path = NULL;
    }
    wake_all(s);
    stream_unref(s);
}

static void do_close(braid_stream_t *s)
{
    s->closing = 1;
    s->close_pending = 0;
    if (!uv_is_closing(&s->u.h))
        uv_close(&s->u.h, on_close);
}

/* Writing to a socket the peer closed raises SIGPIPE, which kills the
 * process by default: ignore it (as Python does at startup) unless the
 * program installed a handler of its own; the write then fails with EPIPE. */
static pthread_once_t sigpipe_once = PTHREAD_ONCE_INIT;

static void ignore_sigpipe(void)
{
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
}

int braid_stream_new(uv_loop_t *uv, int kind, int family, int reuseport, braid_stream_t **out)
{
    pthread_once(&sigpipe_once, ignore_sigpipe);
    braid_stream_t *s = calloc(1, sizeof *s);
    if (!s)
        return UV_ENOMEM;
    int rc;
    if (kind == BRAID_STREAM_TCP) {
        rc = uv_tcp_init_ex(uv, &s->u.tcp, (unsigned)family);
        if (rc == 0 && reuseport) {
            uv_os_fd_t fd;
            int one = 1;
            if (uv_fileno(&s->u.h, &fd) != 0 ||
                setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
                rc = UV_EINVAL;
            if (rc) {
                s->refs = 1;
                s->owner.on_close = on_close;
                s->owner.magic = BRAID_HANDLE_MAGIC;
                s->u.h.data = s;
                uv_close(&s->u.h, on_close);
                return rc;
            }
        }
    } else {
        rc = uv_pipe_init(uv, &s->u.pipe, 0);
    }
    if (rc) {
        free(s);
        return rc;
    }
    s->owner.on_close = on_close;
    s->owner.magic = BRAID_HANDLE_MAGIC;
    s->u.h.data = s;
    s->kind = kind;
    s->refs = 2;
    s->limit = 65536;
    s->high = 65536;
    s->low = 16384;
    *out = s;
    return 0;
}

void braid_stream_release(braid_stream_t *s)
{
    if (!s)
        return;
    if (!s->closed)
        do_close(s);
    stream_unref(s);
}

int braid_stream_kind(const braid_stream_t *s)
{
    return s->kind;
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    braid_stream_t *s = (braid_stream_t *)h->data;
    if (s->rstart == s->rend)
        s->rstart = s->rend = 0;
    if (s->rcap - s->rend < 65536) {
        if (s->rstart > 0 && s->rstart >= s->rcap / 2) {
            memmove(s->rb, s->rb + s->rstart, s->rend - s->rstart);
            s->rend -= s->rstart;
            s->rstart = 0;
        }
        if (s->rcap - s->rend < 65536) {
            size_t cap = s->rcap ? s->rcap * 2 : 65536;
            while (cap - s->rend < 65536)
                cap *= 2;
            char *rb = realloc(s->rb, cap);
            if (!rb) {
                *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
                return;
            }
            s->rb = rb;
            s->rcap = cap;
        }
    }
    *buf = uv_buf_init(s->rb + s->rend, (unsigned)(s->rcap - s->rend));
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    braid_stream_t *s = (braid_stream_t *)h->data;
    if (n > 0) {
        s->rend += (size_t)n;
        size_t have = s->rend - s->rstart;
        if (have > 2 * s->limit && have >= s->want) { /* back-pressure on the peer */
            uv_read_stop(h);
            s->reading = 0;
        }
    } else if (n < 0) {
        if (n != UV_EOF)
            s->read_err = (int)n;
        s->eof = 1;
        uv_read_stop(h);
        s->reading = 0;
    }
    wl_wake(&s->readers);
}

static int start_reading(braid_stream_t *s)
{
    if (s->reading || s->eof || s->closing || !s->connected)
        return 0;
    int rc = uv_read_start(&s->u.s, on_alloc, on_read);
    if (rc) {
        s->read_err = rc;
        s->eof = 1;
        return rc;
    }
    s->reading = 1;
    return 0;
}

int braid_stream_read_wait(braid_stream_t *s, size_t want, const char *sep, size_t seplen,
                           braid_waiter_t *w)
{
    if (s->readers.n && s->readers.v[0] != w)
        return UV_EBUSY;
    size_t have = s->rend - s->rstart;
    s->want = 0;
    if (s->eof || s->closed)
        return wl_ready(&s->readers, w);
    if (sep) {
        if (have > s->limit ||
            (have >= seplen && memmem(s->rb + s->rstart, have, sep, seplen) != NULL))
            return wl_ready(&s->readers, w);
    } else if (have >= want && have > 0) {
        return wl_ready(&s->readers, w);
    }
    s->want = sep ? 0 : want;
    if (have <= s->limit || have < s->want)
        start_reading(s);
    if (s->eof)
        return wl_ready(&s->readers, w);
    int rc = wl_park(&s->readers, w);
    if (rc != BRAID_ESUSPEND)
        s->want = 0;
    return rc;
}

const char *braid_stream_peek(braid_stream_t *s, size_t *len)
{
    *len = s->rend - s->rstart;
    return s->rb ? s->rb + s->rstart : "";
}

void braid_stream_consume(braid_stream_t *s, size_t n)
{
    size_t have = s->rend - s->rstart;
    s->rstart += n < have ? n : have;
    if (s->rstart == s->rend)
        s->rstart = s->rend = 0;
    if (s->rend - s->rstart <= s->limit)
        start_reading(s);
}

int braid_stream_at_eof(const braid_stream_t *s)
{
    return (s->eof || s->closed) && s->rend == s->rstart;
}

int braid_stream_read_error(const braid_stream_t *s)
{
    return s->read_err;
}

void braid_stream_set_limit(braid_stream_t *s, size_t limit)
{
    s->limit = limit ? limit : 1;
}

size_t braid_stream_limit(const braid_stream_t *s)
{
    return s->limit;
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status)
{
    wreq_t *wr = (wreq_t *)req;
    braid_stream_t *s = wr->s;
    s->wqueued -= wr->len;
    free(wr);
    if (status < 0 && status != UV_ECANCELED && !s->write_err)
        s->write_err = status;
    if ((s->paused && s->wqueued <= s->low) || s->write_err) {
        s->paused = 0;
        wl_wake(&s->drainers);
    }
    if (s->close_pending && (s->wqueued == 0 || s->write_err))
        do_close(s);
}

int braid_stream_write(braid_stream_t *s, const void *data, size_t len)
{
    if (s->write_err)
        return s->write_err;
    if (s->closing || s->shut || !s->connected)
        return UV_EPIPE;
    if (len == 0)
        return 0;
    size_t off = 0;
    if (s->wqueued == 0) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write(&s->u.s, &b, 1);
        if (n == (int)len)
            return 0;
        if (n < 0 && n != UV_EAGAIN) {
            s->write_err = n;
            return n;
        }
        if (n > 0)
            off = (size_t)n;
    }
    size_t rest = len - off;
    wreq_t *wr = malloc(sizeof *wr + rest);
    if (!wr)
        return UV_ENOMEM;
    wr->s = s;
    wr->len = rest;
    memcpy(wr->data, (const char *)data + off, rest);
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)rest);
    int rc = uv_write(&wr->req, &s->u.s, &b, 1, on_write);
    if (rc) {
        free(wr);
        s->write_err = rc;
        return rc;
    }
    s->wqueued += rest;
    if (s->wqueued > s->high)
        s->paused = 1;
    return 0;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    braid_stream_t *s = (braid_stream_t *)req->data;
    if (status < 0 && status != UV_ECANCELED && !s->write_err)
        s->write_err = status;
}

int braid_stream_shutdown(braid_stream_t *s)
{
    if (s->write_err)
        return s->write_err;
    if (s->closing || !s->connected)
        return UV_EPIPE;
    if (s->shut)
        return 0;
    s->sreq.data = s;
    int rc = uv_shutdown(&s->sreq, &s->u.s, on_shutdown);
    if (rc)
        return rc;
    s->shut = 1;
    return 0;
}

int braid_stream_drain_wait(braid_stream_t *s, braid_waiter_t *w)
{
    if (s->write_err) {
        wl_remove(&s->drainers, w);
        return s->write_err;
    }
    if (s->closed) {
        wl_remove(&s->drainers, w);
        return UV_ECONNRESET;
    }
    if (!s->paused)
        return wl_ready(&s->drainers, w);
    return wl_park(&s->drainers, w);
}

int braid_stream_drain_ready(const braid_stream_t *s)
{
    return !s->write_err && !s->closed && !s->paused;
}

void braid_stream_set_water(braid_stream_t *s, size_t high, size_t low)
{
    s->high = high;
    s->low = low <= high ? low : high;
    if (s->paused && s->wqueued <= s->low) {
        s->paused = 0;
        wl_wake(&s->drainers);
    } else if (s->wqueued > s->high) {
        s->paused = 1;
    }
}

size_t braid_stream_write_size(const braid_stream_t *s)
{
    return s->wqueued;
}

/* ---- closing ---- */

void braid_stream_close(braid_stream_t *s)
{
    if (s->closing || s->close_pending)
        return;
    if (s->reading) {
        uv_read_stop(&s->u.s);
        s->reading = 0;
    }
    if (s->wqueued > 0 && !s->write_err) {
        s->close_pending = 1; /* flush first */
        return;
    }
    do_close(s);
}

int braid_stream_is_closing(const braid_stream_t *s)
{
    return s->closing || s->close_pending;
}

int braid_stream_close_wait(braid_stream_t *s, braid_waiter_t *w)
{
    if (s->closed)
        return wl_ready(&s->closers, w);
    return wl_park(&s->closers, w);
}

int braid_stream_open_fd(uv_loop_t *uv, int fd, braid_stream_t **out)
{
    braid_stream_t *s;
    int rc = braid_stream_new(uv, BRAID_STREAM_PIPE, AF_UNSPEC, 0, &s);
    if (rc)
        return rc;
    rc = uv_pipe_open(&s->u.pipe, fd);
    if (rc) {
        braid_stream_release(s);
        return rc;
    }
    s->connected = 1;
    *out = s;
    return 0;
}

/* ---- connecting ---- */

static void on_connect(uv_connect_t *req, int status)
{
    braid_stream_t *s = (braid_stream_t *)req->data;
    s->connecting = 0;
    s->conn_status = status;
    if (status == 0) {
        s->connected = 1;
        start_reading(s);
    }
    wl_wake(&s->connectors);
}

int braid_stream_connect(braid_stream_t *s, const struct sockaddr *sa, const char *path)
{
    if (s->connecting || s->connected || s->listener || s->closing)
        return UV_EBUSY;
    s->creq.data = s;
    if (s->kind == BRAID_STREAM_TCP) {
        int rc = uv_tcp_connect(&s->creq, &s->u.tcp, sa, on_connect);
        if (rc)
            return rc;
    } else {
        uv_pipe_connect(&s->creq, &s->u.pipe, path, on_connect);
    }
    s->connecting = 1;
    return 0;
}

int braid_stream_connect_wait(braid_stream_t *s, braid_waiter_t *w)
{
    if (s->connecting && !s->closed)
        return wl_park(&s->connectors, w);
    wl_remove(&s->connectors, w);
    if (s->connected)
        return 0;
    return s->conn_status ? s->conn_status : UV_ECANCELED;
}

/* ---- listening ---- */

static void on_connection(uv_stream_t *h, int status)
{
    braid_stream_t *s = (braid_stream_t *)h->data;
    if (status < 0)
        s->accept_err = status;
    else
        s->pending_accept = 1; /* libuv stops accepting until we take it */
    wl_wake(&s->acceptors);
}

int braid_stream_listen(braid_stream_t *s, const struct sockaddr *sa, const char *path, int backlog)
{
    int rc;
    if (s->kind == BRAID_STREAM_TCP) {
        rc = uv_tcp_bind(&s->u.tcp, sa, sa->sa_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    } else {
        rc = uv_pipe_bind(&s->u.pipe, path);
        if (rc == 0 && !(s->path = strdup(path)))
            rc = UV_ENOMEM;
    }
    if (rc == 0)
        rc = uv_listen(&s->u.s, backlog, on_connection);
    if (rc == 0)
        s->listener = 1;
    return rc;
}

int braid_stream_accept_wait(braid_stream_t *s, braid_waiter_t *w)
{
    if (s->pending_accept || s->accept_err || s->closing)
        return wl_ready(&s->acceptors, w);
    return wl_park(&s->acceptors, w);
}

int braid_stream_accept(braid_stream_t *s, braid_stream_t **out)
{
    if (s->closing)
        return UV_ECANCELED;
    if (s->accept_err) {
        int rc = s->accept_err;
        s->accept_err = 0;
        return rc;
    }
    if (!s->pending_accept)
        return UV_EAGAIN;
    braid_stream_t *c;
    int rc = braid_stream_new(s->u.h.loop, s->kind, AF_UNSPEC, 0, &c);
    if (rc)
        return rc;
    s->pending_accept = 0;
    rc = uv_accept(&s->u.s, &c->u.s);
    if (rc) {
        braid_stream_release(c);
        return rc;
    }
    c->connected = 1;
    start_reading(c);
    *out = c;
    return 0;
}

int braid_stream_name(braid_stream_t *s, int peer, struct sockaddr_storage *ss, char *path,
                      size_t pathlen)
{
    if (s->closing)
        return UV_EBADF;
    if (s->kind == BRAID_STREAM_TCP) {
        int len = sizeof *ss;
        return peer ? uv_tcp_getpeername(&s->u.tcp, (struct sockaddr *)ss, &len)
                    : uv_tcp_getsockname(&s->u.tcp, (struct sockaddr *)ss, &len);
    }
    size_t n = pathlen;
    int rc = peer ? uv_pipe_getpeername(&s->u.pipe, path, &n)
                  : uv_pipe_getsockname(&s->u.pipe, path, &n);
    if (rc == 0 && n < pathlen)
        path[n] = 0;
    return rc;
}

/* ---- name resolution ---- */

static void resolve_unref(braid_resolve_t *r)
{
    if (--r->refs > 0)
        return;
    if (r->res)
        uv_freeaddrinfo(r->res);
    wl_free(&r->waiters);
    free(r);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    braid_resolve_t *r = (braid_resolve_t *)req->data;
    r->done = 1;
    r->status = status;
    r->res = res;
    wl_wake(&r->waiters);
    resolve_unref(r);
}

int braid_resolve_new(uv_loop_t *uv, const char *host, const char *port, int passive,
                      braid_resolve_t **out)
{
    braid_resolve_t *r = calloc(1, sizeof *r);
    if (!r)
        return UV_ENOMEM;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    r->req.data = r;
    r->refs = 2;
    int rc = uv_getaddrinfo(uv, &r->req, on_resolved, host, port, &hints);
    if (rc) {
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int braid_resolve_wait(braid_resolve_t *r, braid_waiter_t *w)
{
    if (r->done)
        return wl_ready(&r->waiters, w);
    return wl_park(&r->waiters, w);
}

int braid_resolve_result(braid_resolve_t *r, const struct addrinfo **res)
{
    *res = r->res;
    return r->status;
}

void braid_resolve_release(braid_resolve_t *r)
{
    if (!r)
        return;
    if (!r->done)
        uv_cancel((uv_req_t *)&r->req);
    r->waiters.n = 0;
    resolve_unref(r);
}
