/* A multiprocessing Queue's byte ring: a shared-memory segment beside the
 * queue's socket. A put of an item without objects copies its bytes into
 * the ring (no system call) while nothing of the queue travels on the
 * socket; a reader takes them with no system call either, and sleeps on
 * the socket only when the ring and the socket are empty: the writer that
 * then fills the ring sends it a wake message (an empty one).
 *
 * Order: a writer uses the ring only while `sock` (messages counted onto
 * the socket, not yet taken) is 0, so every item in the ring precedes
 * every item on the socket, and the reader empties the ring first. A
 * writer killed between counting a message and sending it leaves `sock`
 * above 0: the queue then runs on the socket alone, as without a ring.
 * Records are published by a store of `tail` after their bytes, taken by
 * a store of `head` after they were copied out: a process killed midway
 * leaves no partial record. */
#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "shm.h"

#define RING_CAP (128 * 1024) /* bytes of records; a power of two */

typedef struct braid_ring {
    _Atomic uint64_t tail; /* bytes published (writers, under the write lock) */
    uint8_t pad0[56];
    _Atomic uint64_t head;     /* bytes taken (readers, under the read lock) */
    _Atomic uint32_t sleepers; /* a reader sleeps on the socket */
    uint8_t pad1[52];
    _Atomic uint32_t sock; /* messages counted onto the socket, not taken */
    uint32_t cap;
    _Atomic uint32_t room; /* a writer's feeder waits for room (a futex word) */
    uint8_t pad2[52];
    uint8_t data[];
} braid_ring_t;

size_t braid_ring_size(void)
{
    return sizeof(braid_ring_t) + RING_CAP;
}

void braid_ring_init(braid_shm_t *s)
{
    if (s->kind == BRAID_SHM_RING && s->size >= braid_ring_size())
        ((braid_ring_t *)s->mem)->cap = RING_CAP;
}

/* The ring of a segment, or NULL if it is not a well-formed one. */
braid_ring_t *braid__ring_of(braid_shm_t *s)
{
    if (!s || s->kind != BRAID_SHM_RING || s->size < sizeof(braid_ring_t))
        return NULL;
    braid_ring_t *r = s->mem;
    uint32_t cap = r->cap;
    if (!cap || cap & (cap - 1) || sizeof(braid_ring_t) + cap > s->size)
        return NULL;
    return r;
}

static void copy_in(braid_ring_t *r, uint64_t pos, const void *p, size_t n)
{
    size_t off = (size_t)(pos & (r->cap - 1)), k = r->cap - off < n ? r->cap - off : n;
    memcpy(r->data + off, p, k);
    memcpy(r->data, (const uint8_t *)p + k, n - k);
}

static void copy_out(braid_ring_t *r, uint64_t pos, void *p, size_t n)
{
    size_t off = (size_t)(pos & (r->cap - 1)), k = r->cap - off < n ? r->cap - off : n;
    memcpy(p, r->data + off, k);
    memcpy((uint8_t *)p + k, r->data, n - k);
}

static size_t rec_size(size_t len)
{
    return 8 + ((len + 7) & ~(size_t)7);
}

/* Whether len bytes are for the ring: small enough (and not empty). */
int braid__ring_item(braid_ring_t *r, size_t len)
{
    return len > 0 && len <= r->cap / 8;
}

/* Whether the queue's items go to the ring now (the caller holds the write
 * lock): nothing is on the socket before them. */
int braid__ring_open(braid_ring_t *r)
{
    return atomic_load(&r->sock) == 0;
}

/* A feeder's wait (write lock held) until the ring may have room for len
 * bytes, or 50 ms (the caller tries again). */
void braid__ring_wait_room(braid_ring_t *r, size_t len)
{
    atomic_store(&r->room, 1);
    uint64_t tail = atomic_load(&r->tail), head = atomic_load(&r->head);
    if (r->cap - (tail - head) >= rec_size(len))
        return;
    struct timespec ts = {0, 50 * 1000000};
    syscall(SYS_futex, (unsigned *)&r->room, FUTEX_WAIT, 1, &ts, NULL, 0);
}

/* Appends one record (write lock held); 0 when the ring has no room.
 * Returns 2 when a reader sleeps and must be woken (the flag is taken). */
int braid__ring_write(braid_ring_t *r, const uint8_t *p, size_t len)
{
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t need = rec_size(len);
    if (r->cap - (tail - head) < need)
        return 0;
    uint64_t h = (uint64_t)len;
    copy_in(r, tail, &h, 8);
    copy_in(r, tail + 8, p, len);
    atomic_store(&r->tail, tail + need); /* seq_cst: against sleepers below */
    if (atomic_load(&r->sleepers) && atomic_exchange(&r->sleepers, 0))
        return 2;
    return 1;
}

/* One message counted onto the socket (or, undo 1, not sent after all). */
void braid__ring_count(braid_ring_t *r, int undo)
{
    if (undo)
        atomic_fetch_sub(&r->sock, 1);
    else
        atomic_fetch_add(&r->sock, 1);
}

/* Takes the ring's first record into out: 1, 0 when empty, or an error. */
static int ring_take(braid_ring_t *r, braid_buf_t *out)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head == tail)
        return 0;
    uint64_t len;
    copy_out(r, head, &len, 8);
    if (tail - head > r->cap || len == 0 || rec_size(len) > tail - head)
        return BRAID_ECORRUPT;
    braid_buf_reset(out);
    if (out->cap < len) {
        uint8_t *d = realloc(out->data, len);
        if (!d)
            return BRAID_ENOMEM;
        out->data = d;
        out->cap = len;
    }
    copy_out(r, head + 8, out->data, len);
    out->len = len;
    atomic_store(&r->head, head + rec_size(len)); /* seq_cst: against room */
    if (atomic_load(&r->room) && atomic_exchange(&r->room, 0))
        syscall(SYS_futex, (unsigned *)&r->room, FUTEX_WAKE, 1, NULL, NULL, 0);
    return 1;
}

/* A socket message; wakes (empty ones) are skipped: 0 or an error. */
static int sock_take(braid_shm_t *c, braid_ring_t *r, braid_buf_t *out, int64_t deadline,
                     braid_waiter_t *w, int *got)
{
    *got = 0;
    int rc = braid_conn_recv(c, out, deadline, w);
    if (rc)
        return rc;
    if (out->len == 0 && out->nobjs == 0)
        return 0; /* a wake */
    uint32_t n = atomic_load(&r->sock);
    while (n > 0 && !atomic_compare_exchange_weak(&r->sock, &n, n - 1))
        ;
    *got = 1;
    return 0;
}

int braid_ring_get(braid_shm_t *c, braid_shm_t *ring, braid_buf_t *out, int64_t deadline,
                   braid_waiter_t *w)
{
    braid_ring_t *r = braid__ring_of(ring);
    if (!r)
        return braid_conn_recv(c, out, deadline, w);
    for (;;) {
        int rc = ring_take(r, out);
        if (rc)
            return rc < 0 ? rc : 0;
        int got = 0;
        if (atomic_load(&r->sock) > 0) {
            rc = sock_take(c, r, out, deadline, w, &got);
            if (rc || got)
                return rc;
            continue;
        }
        if (deadline != BRAID_FOREVER && braid_clock_now() >= deadline)
            return BRAID_ETIMEOUT; /* a get_nowait: no wake wanted */
        /* both empty: sleep on the socket; a writer that fills the ring
         * after this store sees it and sends a wake */
        atomic_store(&r->sleepers, 1);
        if (atomic_load(&r->tail) != atomic_load(&r->head) || atomic_load(&r->sock) > 0)
            continue;
        rc = braid_fd_wait(c->fd, deadline, w);
        if (rc == 0)
            return BRAID_ETIMEOUT;
        if (rc < 0)
            return rc;
        if (atomic_load(&r->tail) != atomic_load(&r->head) || atomic_load(&r->sock) > 0)
            continue;
        /* readable with nothing counted: a wake, or the writers' end */
        rc = sock_take(c, r, out, deadline, w, &got);
        if (rc || got)
            return rc;
    }
}
