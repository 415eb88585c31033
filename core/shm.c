/* Shared objects across processes: memfd segments and sockets with ids
 * that mean the same object everywhere, and messages passing their fds. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "shm.h"

static void shm_destroy(braid_object_t *obj)
{
    braid_shm_t *s = (braid_shm_t *)obj;
    if (s->rb) {
        for (size_t i = 0; i < s->rb->nfds; i++)
            close(s->rb->fds[i]);
        free(s->rb->data);
        free(s->rb);
    }
    pthread_mutex_destroy(&s->rmu);
    pthread_mutex_destroy(&s->wmu);
    if (s->mem)
        munmap(s->mem, s->size);
    if (s->fd >= 0)
        close(s->fd);
    free(s);
}

const braid_object_type_t braid_shm_types[BRAID_SHM_NKINDS] = {
    {"braid.mp.Lock", "braid.multiprocessing", shm_destroy},
    {"braid.mp.RLock", "braid.multiprocessing", shm_destroy},
    {"braid.mp.Semaphore", "braid.multiprocessing", shm_destroy},
    {"braid.mp.Event", "braid.multiprocessing", shm_destroy},
    {"braid.mp.Value", "braid.multiprocessing", shm_destroy},
    {"braid.mp.Connection", "braid.multiprocessing", shm_destroy},
    {"braid.mp.Ring", "braid.multiprocessing", shm_destroy},
};

braid_shm_t *braid_shm_of(braid_object_t *obj)
{
    if (obj && obj->type >= braid_shm_types && obj->type < braid_shm_types + BRAID_SHM_NKINDS)
        return (braid_shm_t *)obj;
    return NULL;
}

/* Ids of shared objects: top bit, creating pid, a counter. Unique among the
 * processes alive together, the same in every process that has the object. */
static uint64_t next_id(void)
{
    static atomic_uint counter;
    return (1ULL << 63) | ((uint64_t)(uint32_t)getpid() << 32) |
           (atomic_fetch_add(&counter, 1) + 1);
}

static int shm_make(int kind, int fd, size_t size, int flags, uint64_t id, braid_shm_t **out)
{
    *out = NULL;
    braid_shm_t *s = calloc(1, sizeof *s);
    if (!s)
        return BRAID_ENOMEM;
    s->kind = kind;
    s->fd = fd;
    pthread_mutex_init(&s->rmu, NULL);
    pthread_mutex_init(&s->wmu, NULL);
    s->size = size;
    s->flags = flags;
    if (size) {
        s->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (s->mem == MAP_FAILED) {
            free(s);
            return BRAID_EOS;
        }
    }
    if (braid_object_init_id(&s->base, &braid_shm_types[kind], id) != 0) {
        if (s->mem)
            munmap(s->mem, size);
        pthread_mutex_destroy(&s->rmu);
        pthread_mutex_destroy(&s->wmu);
        free(s);
        return BRAID_ENOMEM;
    }
    *out = s;
    return 0;
}

int braid_shm_new(int kind, size_t size, braid_shm_t **out)
{
    *out = NULL;
    int fd = memfd_create("braid", MFD_CLOEXEC);
    if (fd < 0)
        return BRAID_EOS;
    fchmod(fd, 0600);
    if (ftruncate(fd, (off_t)size) != 0) {
        close(fd);
        return BRAID_EOS;
    }
    int rc = shm_make(kind, fd, size, 0, next_id(), out);
    if (rc)
        close(fd);
    return rc;
}

int braid_shm_new_conn(int fd, int flags, braid_shm_t **out)
{
    return shm_make(BRAID_SHM_CONN, fd, 0, flags, next_id(), out);
}

int braid_shm_view(braid_shm_t *s, int kind, braid_shm_t **out)
{
    int fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return BRAID_EOS;
    int rc = shm_make(kind, fd, s->size, 0, next_id(), out);
    if (rc)
        close(fd);
    return rc;
}

int braid_shm_import(int kind, uint64_t id, size_t size, int flags, int fd, braid_shm_t **out)
{
    *out = NULL;
    braid_object_t *o = braid_object_lookup(id);
    if (o) {
        close(fd);
        braid_shm_t *s = braid_shm_of(o);
        if (!s || s->kind != kind) {
            braid_object_release(o);
            return BRAID_ECORRUPT;
        }
        *out = s;
        return 0;
    }
    if (kind < 0 || kind >= BRAID_SHM_NKINDS || (kind == BRAID_SHM_CONN) != (size == 0)) {
        close(fd);
        return BRAID_ECORRUPT;
    }
    int rc = shm_make(kind, fd, size, flags, id, out);
    if (rc)
        close(fd);
    return rc;
}

/* ---- messages ---- */

/* Wire: u32 len, u32 nobjs, nobjs * {u64 id, u32 kind, u32 flags, u64 size},
 * zeros up to BRAID_MSG_MIN bytes in all (braid__msg_pad), len bytes; the
 * nobjs descriptors ride on the first bytes (SCM_RIGHTS). */
typedef struct desc {
    uint64_t id;
    uint32_t kind, flags;
    uint64_t size;
} desc_t;

int braid_fd_send_all(int sock, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(sock, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return BRAID_EOS;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int braid__msg_head(const braid_buf_t *buf, braid_object_t **bad, uint8_t **head, size_t *hlen,
                    int *fds)
{
    if (buf->len > UINT32_MAX)
        return BRAID_ETOOBIG;
    for (size_t i = 0; i < buf->nobjs; i++) {
        if (!braid_shm_of(buf->objs[i])) {
            if (bad)
                *bad = buf->objs[i];
            return BRAID_ETYPE;
        }
    }
    if (buf->nobjs > MAX_FDS)
        return BRAID_ETOOBIG;
    size_t dlen = 8 + buf->nobjs * sizeof(desc_t);
    *hlen = dlen + braid__msg_pad(dlen, buf->len);
    uint8_t *h = *head = malloc(*hlen);
    if (!h)
        return BRAID_ENOMEM;
    memset(h + dlen, 0, *hlen - dlen);
    uint32_t len32 = (uint32_t)buf->len, nobj32 = (uint32_t)buf->nobjs;
    memcpy(h, &len32, 4);
    memcpy(h + 4, &nobj32, 4);
    for (size_t i = 0; i < buf->nobjs; i++) {
        braid_shm_t *s = (braid_shm_t *)buf->objs[i];
        desc_t d = {s->base.id, (uint32_t)s->kind, (uint32_t)s->flags, s->size};
        memcpy(h + 8 + i * sizeof d, &d, sizeof d);
        fds[i] = s->fd;
    }
    return 0;
}

ssize_t braid__msg_sendmsg(int sock, const void *a, size_t alen, const void *b, size_t blen,
                           const int *fds, size_t nfds, int flags)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    } cm;
    memset(&cm, 0, sizeof cm);
    struct iovec iov[2] = {{(void *)a, alen}, {(void *)b, blen}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = blen ? 2 : 1};
    if (nfds) {
        mh.msg_control = cm.b;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ssize_t w;
    do
        w = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
    while (w < 0 && errno == EINTR);
    return w;
}

int braid_msg_send(int sock, const braid_buf_t *buf, braid_object_t **bad)
{
    uint8_t *head;
    size_t hlen;
    int fds[MAX_FDS];
    int rc = braid__msg_head(buf, bad, &head, &hlen, fds);
    if (rc)
        return rc;
    /* one sendmsg for header and bytes (the descriptors ride on its first
     * byte); the rest, if the socket took only part, with send */
    ssize_t w = braid__msg_sendmsg(sock, head, hlen, buf->data, buf->len, fds, buf->nobjs, 0);
    if (w < 0)
        rc = BRAID_EOS;
    size_t off = w > 0 ? (size_t)w : 0;
    if (!rc && off < hlen)
        rc = braid_fd_send_all(sock, head + off, hlen - off);
    if (!rc)
        rc = braid_fd_send_all(sock,
                               buf->data + (off > hlen ? off - hlen : 0),
                               buf->len - (off > hlen ? off - hlen : 0));
    free(head);
    return rc;
}

int braid_fd_wait(int fd, int64_t deadline, braid_waiter_t *w)
{
    for (;;) {
        if (w && atomic_load(&w->cancelled))
            return BRAID_ECANCELLED;
        if (w && w->interruptible && braid_waiter_take_interrupt()) {
            braid_waiter_interrupt();
            return BRAID_EINTR;
        }
        int ms = 50;
        if (deadline != BRAID_FOREVER) {
            int64_t left = deadline - braid_clock_now();
            if (left <= 0)
                ms = 0;
            else if (left / 1000000 < ms)
                ms = (int)((left + 999999) / 1000000);
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, ms);
        if (r > 0)
            return 1;
        if (ms == 0 || (deadline != BRAID_FOREVER && braid_clock_now() >= deadline))
            return 0;
    }
}

/* Receives into dst (up to n bytes, at least one), appending descriptors
 * to rb's queue. Returns bytes, 0 at EOF, or -1 (errno). */
static ssize_t recv_some(int sock, braid_rbuf_t *rb, void *dst, size_t n, int flags)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    } cm;
    struct iovec iov = {dst, n};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof cm.b};
    ssize_t r;
    do
        r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
    while (r < 0 && errno == EINTR);
    if (r > 0) {
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int *in = (int *)CMSG_DATA(c);
            for (size_t i = 0; i < k; i++) {
                if (rb->nfds < MAX_FDS)
                    rb->fds[rb->nfds++] = in[i];
                else
                    close(in[i]);
            }
        }
    }
    return r;
}

/* Reads exactly n bytes through rb (its bytes first; small reads refill
 * it when rb->cap is nonzero). Only the wait for a message's first byte
 * (first) is timed. */
static int recv_full(int sock, braid_rbuf_t *rb, void *p, size_t n, int64_t deadline,
                     braid_waiter_t *w, int first)
{
    uint8_t *b = p;
    int got_any = 0;
    while (n > 0) {
        if (rb->pos < rb->len) {
            size_t k = rb->len - rb->pos < n ? rb->len - rb->pos : n;
            memcpy(b, rb->data + rb->pos, k);
            rb->pos += k;
            b += k;
            n -= k;
            got_any = 1;
            continue;
        }
        /* the first byte: taken at once when there (no poll), else waited
         * for in slices (cancellation, deadline) */
        int flags = first && !got_any ? MSG_DONTWAIT : 0;
        ssize_t r;
        if (rb->cap && n < rb->cap) {
            rb->pos = rb->len = 0;
            r = recv_some(sock, rb, rb->data, rb->cap, flags);
            if (r > 0)
                rb->len = (size_t)r;
        } else {
            r = recv_some(sock, rb, b, n, flags);
            if (r > 0) {
                b += r;
                n -= (size_t)r;
            }
        }
        if (r < 0 && flags && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int ready = braid_fd_wait(sock, deadline, w);
            if (ready == 0)
                return BRAID_ETIMEOUT;
            if (ready < 0)
                return ready;
            continue;
        }
        if (r < 0)
            return BRAID_EOS;
        if (r == 0)
            return first && !got_any ? BRAID_EEOF : BRAID_ECORRUPT;
        got_any = 1;
    }
    return 0;
}

/* Copies stream bytes [a, b) of the message to dst: those below
 * BRAID_MSG_MIN from h (read already), the rest from the socket (ranges
 * come in order and, past h, without gaps). */
static int msg_range(int sock, braid_rbuf_t *rb, const uint8_t *h, size_t a, size_t b, void *dst,
                     int64_t deadline, braid_waiter_t *w)
{
    uint8_t *d = dst;
    if (a < BRAID_MSG_MIN) {
        size_t k = (b < BRAID_MSG_MIN ? b : BRAID_MSG_MIN) - a;
        memcpy(d, h + a, k);
        d += k;
        a += k;
    }
    return a < b ? recv_full(sock, rb, d, b - a, deadline, w, 0) : 0;
}

int braid_msg_recv_rb(int sock, braid_rbuf_t *rb, braid_buf_t *out, int64_t deadline,
                      braid_waiter_t *w)
{
    braid_buf_reset(out);
    /* a small message whole in one read: no message is shorter */
    uint8_t h[BRAID_MSG_MIN];
    int rc = recv_full(sock, rb, h, BRAID_MSG_MIN, deadline, w, 1);
    uint32_t len = 0, nobjs = 0;
    desc_t *ds = NULL;
    size_t dlen = 8, pad = 0;
    if (!rc) {
        memcpy(&len, h, 4);
        memcpy(&nobjs, h + 4, 4);
        if (nobjs > MAX_FDS)
            rc = BRAID_ECORRUPT;
        dlen = 8 + (size_t)nobjs * sizeof(desc_t);
        pad = braid__msg_pad(dlen, len);
    }
    if (!rc && nobjs) {
        ds = malloc(nobjs * sizeof *ds);
        rc = ds ? msg_range(sock, rb, h, 8, dlen, ds, deadline, w) : BRAID_ENOMEM;
    }
    if (!rc) {
        if (out->cap < len) {
            uint8_t *d = realloc(out->data, len ? len : 1);
            if (!d)
                rc = BRAID_ENOMEM;
            else {
                out->data = d;
                out->cap = len;
            }
        }
        if (!rc)
            rc = msg_range(sock, rb, h, dlen + pad, dlen + pad + len, out->data, deadline, w);
        if (!rc)
            out->len = len;
    }
    if (!rc && rb->nfds < nobjs)
        rc = BRAID_ECORRUPT;
    /* this message's descriptors are the first nobjs of the queue */
    int fds[MAX_FDS];
    size_t take = rc ? 0 : nobjs;
    memcpy(fds, rb->fds, take * sizeof(int));
    memmove(rb->fds, rb->fds + take, (rb->nfds - take) * sizeof(int));
    rb->nfds -= take;
    size_t used = 0;
    for (uint32_t i = 0; !rc && i < nobjs; i++) {
        braid_shm_t *s;
        used++;
        rc = braid_shm_import(
            (int)ds[i].kind, ds[i].id, (size_t)ds[i].size, (int)ds[i].flags, fds[i], &s);
        if (!rc) {
            /* out keeps the reference the import gave */
            if (out->nobjs == out->objcap) {
                size_t nc = out->objcap ? out->objcap * 2 : 8;
                braid_object_t **no = realloc(out->objs, nc * sizeof *no);
                if (!no) {
                    braid_object_release(&s->base);
                    rc = BRAID_ENOMEM;
                    break;
                }
                out->objs = no;
                out->objcap = nc;
            }
            out->objs[out->nobjs++] = &s->base;
        }
    }
    for (size_t i = used; i < take; i++)
        close(fds[i]);
    free(ds);
    if (rc)
        braid_buf_reset(out);
    return rc;
}

int braid_msg_recv(int sock, braid_buf_t *out, int64_t deadline, braid_waiter_t *w)
{
    braid_rbuf_t rb;
    memset(&rb, 0, sizeof rb); /* unbuffered: reads no byte past the message */
    int rc = braid_msg_recv_rb(sock, &rb, out, deadline, w);
    for (size_t i = 0; i < rb.nfds; i++)
        close(rb.fds[i]);
    return rc;
}

int braid_conn_recv(braid_shm_t *c, braid_buf_t *out, int64_t deadline, braid_waiter_t *w)
{
    pthread_mutex_lock(&c->rmu);
    /* No read-ahead (cap 0): other processes may read the same socket
     * next (a Queue's consumers), so no byte past this message is taken. */
    if (!c->rb)
        c->rb = calloc(1, sizeof *c->rb);
    int rc = c->rb ? braid_msg_recv_rb(c->fd, c->rb, out, deadline, w) : BRAID_ENOMEM;
    pthread_mutex_unlock(&c->rmu);
    return rc;
}

int braid_conn_poll(braid_shm_t *c, int64_t deadline, braid_waiter_t *w)
{
    pthread_mutex_lock(&c->rmu);
    int buffered = c->rb && c->rb->pos < c->rb->len;
    pthread_mutex_unlock(&c->rmu);
    if (buffered)
        return 1;
    return braid_fd_wait(c->fd, deadline, w);
}
