/* A connection's feeder (Python's Queue feeder thread): messages a writer
 * could not send at once go, in order, to a thread that sends each one
 * under the queue's process-shared write lock, so put never waits for the
 * reader. Lock order: a connection's wmu, then feed_mu. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "psync.h"
#include "shm.h"

/* mpring.c's internals */
typedef struct braid_ring braid_ring_t;
braid_ring_t *braid__ring_of(braid_shm_t *s);
int braid__ring_item(braid_ring_t *r, size_t len);
int braid__ring_open(braid_ring_t *r);
void braid__ring_wait_room(braid_ring_t *r, size_t len);
int braid__ring_write(braid_ring_t *r, const uint8_t *p, size_t len);
void braid__ring_count(braid_ring_t *r, int undo);

typedef struct braid_feed_item {
    struct braid_feed_item *next;
    size_t len, off;
    int held;              /* the writer left the lock held for us (a partial send) */
    braid_shm_t *lock;     /* retained */
    braid_object_t **objs; /* retained until sent: their fds ride on byte 0 */
    braid_shm_t *ring;     /* retained: bytes are an item for this ring (no header) */
    size_t nobjs;
    uint8_t bytes[]; /* the whole message still to send: header then data */
} feed_item_t;

#define FEED_BATCH 64 /* messages a feeder sends with one lock hold */

static pthread_mutex_t feed_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t feed_cv = PTHREAD_COND_INITIALIZER; /* a feeder finished */
static int feed_active;                                   /* running feeders (joinable ones) */

static void item_free(feed_item_t *it)
{
    for (size_t i = 0; i < it->nobjs; i++)
        braid_object_release(it->objs[i]);
    free(it->objs);
    if (it->ring)
        braid_object_release(&it->ring->base);
    braid_object_release(&it->lock->base);
    free(it);
}

/* Sends the rest of it on sock (blocking); the descriptors go with byte 0. */
static int item_send(int sock, feed_item_t *it)
{
    if (it->off == 0 && it->nobjs) {
        int fds[MAX_FDS];
        for (size_t i = 0; i < it->nobjs; i++)
            fds[i] = ((braid_shm_t *)it->objs[i])->fd;
        ssize_t w = braid__msg_sendmsg(sock, it->bytes, it->len, NULL, 0, fds, it->nobjs, 0);
        if (w < 0)
            return BRAID_EOS;
        it->off = (size_t)w;
    }
    return braid_fd_send_all(sock, it->bytes + it->off, it->len - it->off);
}

/* Sends batch[0..n) on sock, in order, with as few system calls as the
 * socket allows (the first one's descriptors ride on its byte 0). */
static int batch_send(int sock, feed_item_t **batch, size_t n)
{
    size_t i = 0;
    if (batch[0]->nobjs && batch[0]->off == 0) {
        int rc = item_send(sock, batch[0]);
        if (rc)
            return rc;
        i = 1;
    }
    while (i < n) {
        struct iovec iov[FEED_BATCH];
        size_t k = 0;
        for (size_t j = i; j < n; j++, k++)
            iov[k] = (struct iovec){batch[j]->bytes + batch[j]->off, batch[j]->len - batch[j]->off};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = k};
        ssize_t w = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd p = {.fd = sock, .events = POLLOUT};
                poll(&p, 1, -1);
                continue;
            }
            return BRAID_EOS;
        }
        size_t left = (size_t)w;
        while (i < n && left >= batch[i]->len - batch[i]->off) {
            left -= batch[i]->len - batch[i]->off;
            batch[i]->off = batch[i]->len;
            i++;
        }
        if (i < n)
            batch[i]->off += left;
    }
    return 0;
}

/* Writes ring items batch[0..n) (the write lock held) into their ring,
 * waiting for room; or, while the queue's items travel on the socket,
 * sends each as a message. A reader found sleeping gets a wake. */
static void ring_feed(int sock, feed_item_t **batch, size_t n)
{
    braid_ring_t *r = braid__ring_of(batch[0]->ring);
    for (size_t i = 0; i < n; i++) {
        feed_item_t *it = batch[i];
        for (;;) {
            if (!braid__ring_open(r)) {
                uint8_t h[BRAID_MSG_MIN];
                uint32_t len32 = (uint32_t)it->len;
                size_t hlen = 8 + braid__msg_pad(8, it->len);
                memset(h, 0, sizeof h);
                memcpy(h, &len32, 4);
                braid__ring_count(r, 0);
                if (braid_fd_send_all(sock, h, hlen) == 0)
                    braid_fd_send_all(sock, it->bytes, it->len);
                break;
            }
            int wr = braid__ring_write(r, it->bytes, it->len);
            if (wr == 2) {
                uint8_t z[BRAID_MSG_MIN];
                memset(z, 0, sizeof z);
                braid_fd_send_all(sock, z, sizeof z);
            }
            if (wr)
                break;
            braid__ring_wait_room(r, it->len);
        }
    }
}

static void *feeder_main(void *arg)
{
    braid_shm_t *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->wmu);
        feed_item_t *it = c->whead;
        if (!it) {
            c->wbusy = 0;
            int joinable = !c->wnojoin;
            pthread_mutex_unlock(&c->wmu);
            pthread_mutex_lock(&feed_mu);
            if (joinable)
                feed_active--;
            pthread_cond_broadcast(&feed_cv);
            pthread_mutex_unlock(&feed_mu);
            braid_object_release(&c->base);
            return NULL;
        }
        /* a batch from the head, under one lock; the items stay listed
         * while they are sent, so later puts queue behind them */
        feed_item_t *batch[FEED_BATCH];
        size_t n = 0;
        for (feed_item_t *p = it; p && n < FEED_BATCH; p = p->next) {
            if (n > 0 && (p->lock != it->lock || p->nobjs || p->held || p->ring != it->ring))
                break;
            batch[n++] = p;
        }
        pthread_mutex_unlock(&c->wmu);
        braid_plock_t *l = it->lock->mem;
        if (it->held)
            braid_plock_adopt(l);
        else
            braid_plock_acquire(l, 0, BRAID_FOREVER, NULL); /* an owner that died: ours */
        if (it->ring)
            ring_feed(c->fd, batch, n);
        else
            batch_send(c->fd, batch, n); /* the reader gone (EPIPE): nobody wants them */
        braid_plock_release(l, 0);
        pthread_mutex_lock(&c->wmu);
        c->whead = batch[n - 1]->next;
        if (!c->whead)
            c->wtail = NULL;
        pthread_mutex_unlock(&c->wmu);
        for (size_t i = 0; i < n; i++)
            item_free(batch[i]);
    }
}

/* A copy of the message (from byte off) for the feeder; NULL if no memory. */
static feed_item_t *item_new(braid_shm_t *lock, const braid_buf_t *buf, const uint8_t *head,
                             size_t hlen, size_t off, int held)
{
    size_t total = hlen + buf->len;
    feed_item_t *it = malloc(sizeof *it + total);
    if (!it)
        return NULL;
    memset(it, 0, sizeof *it);
    if (hlen)
        memcpy(it->bytes, head, hlen);
    if (buf->len)
        memcpy(it->bytes + hlen, buf->data, buf->len);
    it->len = total;
    it->off = off;
    it->held = held;
    if (off == 0 && buf->nobjs) {
        it->objs = malloc(buf->nobjs * sizeof *it->objs);
        if (!it->objs) {
            free(it);
            return NULL;
        }
        for (size_t i = 0; i < buf->nobjs; i++) {
            braid_object_retain(buf->objs[i]);
            it->objs[i] = buf->objs[i];
        }
        it->nobjs = buf->nobjs;
    }
    it->lock = lock;
    braid_object_retain(&lock->base);
    return it;
}

/* A forked child inherits the counts and lists of feeders it does not
 * have: it starts with none (the parent sends its own items). */
static void forget_feeders(void)
{
    feed_active = 0;
}

/* This process's id without a system call per put: cached, forgotten in
 * a forked child. */
static atomic_int cached_pid;
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;

static void pid_forget(void)
{
    atomic_store_explicit(&cached_pid, 0, memory_order_relaxed);
}

static void pid_watch_forks(void)
{
    pthread_atfork(NULL, NULL, pid_forget);
}

static pid_t my_pid(void)
{
    pid_t p = atomic_load_explicit(&cached_pid, memory_order_relaxed);
    if (!p) {
        pthread_once(&pid_once, pid_watch_forks);
        p = getpid();
        atomic_store_explicit(&cached_pid, p, memory_order_relaxed);
    }
    return p;
}

static void fork_check(braid_shm_t *c)
{
    pid_t me = my_pid();
    if (c->wpid != me) {
        c->wpid = me;
        while (c->whead) { /* the parent's, inherited: it sends them itself */
            feed_item_t *it = c->whead;
            c->whead = it->next;
            item_free(it);
        }
        c->wtail = NULL;
        c->wbusy = 0;
        c->wnojoin = 0;
    }
}

static void flush_at_exit(void)
{
    braid_feed_flush_all(BRAID_FOREVER);
}

static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static void register_exit(void)
{
    atexit(flush_at_exit); /* exit() waits for the feeders, as Python's */
    pthread_atfork(NULL, NULL, forget_feeders);
}

/* Queues it on c and makes sure a feeder runs; c->wmu is held. */
static int enqueue(braid_shm_t *c, feed_item_t *it)
{
    if (c->wtail)
        c->wtail->next = it;
    else
        c->whead = it;
    c->wtail = it;
    if (c->wbusy)
        return 0;
    pthread_once(&exit_once, register_exit);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 64 * 1024);
    braid_object_retain(&c->base);
    c->wbusy = 1;
    pthread_mutex_lock(&feed_mu);
    if (!c->wnojoin)
        feed_active++;
    pthread_mutex_unlock(&feed_mu);
    int rc = pthread_create(&t, &at, feeder_main, c);
    pthread_attr_destroy(&at);
    if (rc != 0) { /* no thread: send here, waiting, as before the feeder */
        c->wbusy = 0;
        pthread_mutex_lock(&feed_mu);
        if (!c->wnojoin)
            feed_active--;
        pthread_mutex_unlock(&feed_mu);
        braid_object_release(&c->base);
        return BRAID_ENOMEM;
    }
    return 0;
}

/* A wake for a reader sleeping on c's socket (an empty message), sent
 * under the write lock l and c->wmu. A full socket needs none (the reader
 * has bytes to read); a part sent leaves the rest, and the lock, to the
 * feeder: returns 1 then. */
static int send_wake(braid_shm_t *c, braid_shm_t *lock)
{
    uint8_t z[BRAID_MSG_MIN];
    memset(z, 0, sizeof z);
    ssize_t w = braid__msg_sendmsg(c->fd, z, sizeof z, NULL, 0, NULL, 0, MSG_DONTWAIT);
    if (w <= 0 || w == (ssize_t)sizeof z)
        return 0;
    braid_buf_t none = {0};
    feed_item_t *it = item_new(lock, &none, z, sizeof z, (size_t)w, 1);
    if (it && enqueue(c, it) == 0)
        return 1;
    if (it) { /* no feeder: it was alone on the list */
        c->whead = c->wtail = NULL;
        item_free(it);
    }
    return 0; /* the stream is broken, as after any partial message */
}

int braid_conn_put(braid_shm_t *c, braid_shm_t *lock, const braid_buf_t *buf, braid_object_t **bad)
{
    return braid_conn_put_ring(c, lock, NULL, buf, bad);
}

int braid_conn_put_ring(braid_shm_t *c, braid_shm_t *lock, braid_shm_t *ring,
                        const braid_buf_t *buf, braid_object_t **bad)
{
    uint8_t *head, small[BRAID_MSG_MIN];
    size_t hlen;
    int fds[MAX_FDS];
    int rc;
    braid_ring_t *r = ring ? braid__ring_of(ring) : NULL;
    if (ring && !r)
        return BRAID_ECORRUPT;
    braid_plock_t *l = lock->mem;
    int locked = 0;
    if (r && buf->nobjs == 0 && braid__ring_item(r, buf->len)) {
        pthread_mutex_lock(&c->wmu);
        fork_check(c);
        int open = 0;
        if (!c->whead && braid_plock_try(l, 0) == 0) {
            locked = 1;
            open = braid__ring_open(r);
            int wr = open ? braid__ring_write(r, buf->data, buf->len) : 0;
            if (wr) {
                if (wr == 2 && send_wake(c, lock))
                    locked = 0; /* the feeder releases it */
                if (locked)
                    braid_plock_release(l, 0);
                pthread_mutex_unlock(&c->wmu);
                return 0;
            }
        }
        if (!locked || open) { /* the lock or the feeder busy, or no room: the feeder's */
            if (locked)
                braid_plock_release(l, 0);
            braid_buf_t plain = {.data = buf->data, .len = buf->len};
            feed_item_t *it = item_new(lock, &plain, NULL, 0, 0, 0);
            if (it) {
                braid_object_retain(&ring->base);
                it->ring = ring;
            }
            rc = it ? enqueue(c, it) : BRAID_ENOMEM;
            if (rc && it) {
                c->whead = c->wtail = NULL;
                item_free(it);
            }
            pthread_mutex_unlock(&c->wmu);
            return rc;
        }
        /* the queue is on the socket: this item too, the lock kept */
    } else {
        pthread_mutex_lock(&c->wmu);
        fork_check(c);
    }
    if (buf->nobjs == 0 && buf->len <= UINT32_MAX) { /* the common case: no malloc */
        uint32_t len32 = (uint32_t)buf->len, zero = 0;
        memcpy(small, &len32, 4);
        memcpy(small + 4, &zero, 4);
        hlen = 8 + braid__msg_pad(8, buf->len);
        memset(small + 8, 0, hlen - 8);
        head = small;
    } else if ((rc = braid__msg_head(buf, bad, &head, &hlen, fds)) != 0) {
        if (locked)
            braid_plock_release(l, 0);
        pthread_mutex_unlock(&c->wmu);
        return rc;
    }
    if (r)
        braid__ring_count(r, 0); /* before it can arrive: no writer uses the ring now */
    size_t off = 0;
    int held = 0;
    if (locked || (!c->whead && braid_plock_try(l, 0) == 0)) {
        ssize_t w = braid__msg_sendmsg(
            c->fd, head, hlen, buf->data, buf->len, fds, buf->nobjs, MSG_DONTWAIT);
        if (w == (ssize_t)(hlen + buf->len)) {
            braid_plock_release(l, 0);
            pthread_mutex_unlock(&c->wmu);
            if (head != small)
                free(head);
            return 0;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            int err = errno;
            braid_plock_release(l, 0);
            if (r)
                braid__ring_count(r, 1);
            pthread_mutex_unlock(&c->wmu);
            if (head != small)
                free(head);
            errno = err;
            return BRAID_EOS;
        }
        off = w > 0 ? (size_t)w : 0;
        held = 1; /* the feeder finishes this message under our lock */
    }
    feed_item_t *it = item_new(lock, buf, head, hlen, off, held);
    rc = it ? enqueue(c, it) : BRAID_ENOMEM;
    if (rc && it) /* no feeder was running, so it was alone: send it here */
        c->whead = c->wtail = NULL;
    if (rc && !it && r && off == 0)
        braid__ring_count(r, 1); /* not sent */
    pthread_mutex_unlock(&c->wmu);
    if (head != small)
        free(head);
    if (rc && it) {
        if (!held)
            braid_plock_acquire(l, 0, BRAID_FOREVER, NULL);
        rc = item_send(c->fd, it);
        braid_plock_release(l, 0);
        item_free(it);
    } else if (rc && held) {
        braid_plock_release(l, 0); /* a partial message: the stream is broken */
    }
    return rc;
}

/* Waits on feed_cv (feed_mu held) for a feeder to finish, or 20 ms. */
static void wait_a_while(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 20 * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&feed_cv, &feed_mu, &ts);
}

int braid_conn_flush(braid_shm_t *c, int64_t deadline)
{
    for (;;) {
        pthread_mutex_lock(&c->wmu);
        fork_check(c);
        int busy = c->wbusy;
        pthread_mutex_unlock(&c->wmu);
        if (!busy)
            return 0;
        if (deadline != BRAID_FOREVER && braid_clock_now() >= deadline)
            return BRAID_ETIMEOUT;
        pthread_mutex_lock(&feed_mu);
        wait_a_while();
        pthread_mutex_unlock(&feed_mu);
    }
}

void braid_feed_flush_all(int64_t deadline)
{
    pthread_mutex_lock(&feed_mu);
    while (feed_active > 0) {
        if (deadline != BRAID_FOREVER && braid_clock_now() >= deadline)
            break;
        wait_a_while();
    }
    pthread_mutex_unlock(&feed_mu);
}

void braid_conn_nojoin(braid_shm_t *c)
{
    pthread_mutex_lock(&c->wmu);
    fork_check(c);
    if (!c->wnojoin) {
        c->wnojoin = 1;
        if (c->wbusy) {
            pthread_mutex_lock(&feed_mu);
            feed_active--;
            pthread_cond_broadcast(&feed_cv);
            pthread_mutex_unlock(&feed_mu);
        }
    }
    pthread_mutex_unlock(&c->wmu);
}
