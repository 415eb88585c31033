/* The inside of a braid queue, shared by core/queue.c (the locked kinds and
 * everything common) and core/queue_ring.c (bounded FIFO on a lock-free
 * ring). Not a public header. */
#ifndef BRAID_QUEUE_IMPL_H
#define BRAID_QUEUE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"
#include "waiter.h"

/* Items of up to INLINE_MAX bytes that name no objects (every integer,
 * float, boolean and string of up to 13 bytes) are copied into the entry
 * itself: no allocation per item, and the caller's buffers keep their
 * capacity. Bigger items are moved into a buffer of their own, allocated
 * before the lock is taken (or the slot claimed). */
#define INLINE_MAX 15
#define NOT_INLINE 0x7f
/* ilen's top bit: the put of this item recorded a flow arrow (tracing),
 * so the get that takes it records the arrow's end */
#define PAYLOAD_ARROW 0x80

typedef struct payload {
    union {
        uint8_t bytes[INLINE_MAX];
        braid_buf_t *buf; /* when ilen == NOT_INLINE */
    } u;
    uint8_t ilen; /* inline length, or NOT_INLINE; | PAYLOAD_ARROW */
} payload_t;

typedef struct entry {
    uint64_t seq; /* LIFO, PRIORITY: insertion order (the put's number); in a
                   * heap it breaks ties first-in first-out */
    payload_t p;
} entry_t;

/* A ring slot (bounded FIFO): seq is Vyukov's sequence number. For the
 * put of number pos into slot pos % cap: seq == pos means free for it,
 * pos + 1 means holding its item, pos + cap free for the next lap. */
typedef struct slot {
    _Atomic uint64_t seq;
    payload_t p;
} slot_t;

/* enq's top bit: shut down (no put can claim a slot any more). */
#define RING_SHUT ((uint64_t)1 << 63)
/* Bounded FIFO queues with 2..RING_MAX slots use the ring (allocated whole
 * at creation, 32 bytes a slot; one slot cannot tell "holds put k" from
 * "free for put k + 1"); others grow under the lock. */
#define RING_MAX 16384

#define LINE 64

/* Locked kinds: everything from mu down is guarded by mu. Lock order: mu
 * -> waiter mu (taken inside braid_waitlist_* wake-ups); nothing else is
 * taken under mu. Ring queues use mu and the wait lists only on the slow
 * path (empty/full). Layout: read-only header; the ring's producer index
 * and consumer index on lines of their own; the lock, what a locked put
 * or get writes, and the "someone waits" flags (read by every ring put and
 * get, written only on the slow path) together; then the rest. */
struct braid_queue {
    braid_object_t obj;
    braid_queue_kind_t kind;
    long maxsize;                        /* > 0: bounded */
    slot_t *slots;                       /* non-NULL: a ring queue */
    uint64_t rcap, rmask;                /* ring: slots; rcap - 1 if a power of two, else 0 */
    _Alignas(LINE) _Atomic uint64_t enq; /* ring: puts claimed (| RING_SHUT) */
    atomic_long unfinished;              /* items put and not task_done (both kinds) */
    /* tracing, written by puts: puts seen, one in arrow_stride (a power of
     * two) records its arrow; the last such put's time; fast samples in a row */
    _Atomic uint64_t arrow_n;
    _Atomic int64_t arrow_ts;
    atomic_uint arrow_stride, arrow_fast, arrow_slow;
    _Alignas(LINE) _Atomic uint64_t deq; /* ring: gets claimed */
    _Alignas(LINE) pthread_mutex_t mu;
    atomic_int gwait, pwait, jwait; /* getters/putters/joiners may be linked */
    atomic_int shutdown;
    size_t head;         /* locked FIFO/SIMPLE ring start */
    atomic_size_t count; /* written under mu; read without it to spin (count_of) */
    _Alignas(LINE) entry_t *items;
    size_t cap;          /* power of two (or 0 before the first put) */
    uint64_t nput, nget; /* items stored / taken (a ring: the k-th get takes the k-th put) */
    braid_waitlist_t getters, putters, joiners;
    _Atomic int64_t counter_ts;  /* tracing: when the depth counter was last written */
    atomic_size_t counter_depth; /* and the depth it said */
};

static inline int fits_inline(const braid_buf_t *item)
{
    return item->len <= INLINE_MAX && item->nobjs == 0;
}

static inline unsigned payload_len(const payload_t *e)
{
    return e->ilen & ~PAYLOAD_ARROW;
}

static inline const uint8_t *payload_data(const payload_t *e, size_t *len)
{
    if (payload_len(e) == NOT_INLINE) {
        *len = e->u.buf->len;
        return e->u.buf->data;
    }
    *len = payload_len(e);
    return e->u.bytes;
}

static inline void payload_free(payload_t *e)
{
    if (payload_len(e) == NOT_INLINE) {
        braid_buf_free(e->u.buf);
        free(e->u.buf);
    }
}

/* Fills e from item, leaving item empty (capacity kept when copied); an
 * item that does not fit inline is already in *big, whose ownership moves
 * to the entry. arrow: the put recorded a flow arrow. */
static inline void payload_fill(payload_t *e, braid_buf_t *item, braid_buf_t **big, int arrow)
{
    uint8_t flag = arrow ? PAYLOAD_ARROW : 0;
    if (*big) {
        e->ilen = NOT_INLINE | flag;
        e->u.buf = *big;
        *big = NULL;
    } else {
        memcpy(e->u.bytes, item->data, item->len);
        e->ilen = (uint8_t)item->len | flag;
        item->len = 0;
    }
}

/* Empties e into out, which is empty with capacity >= INLINE_MAX; a big
 * item's buffer goes to *moved instead (installed in out after the lock).
 * Returns whether the item's put recorded a flow arrow. */
static inline int payload_take(const payload_t *e, braid_buf_t *out, braid_buf_t **moved)
{
    unsigned len = payload_len(e);
    if (len == NOT_INLINE) {
        *moved = e->u.buf;
    } else {
        memcpy(out->data, e->u.bytes, len);
        out->len = len;
    }
    return (e->ilen & PAYLOAD_ARROW) != 0;
}

/* How long a get that finds the queue empty (a put that finds it full)
 * watches it, lock released, before it joins the wait list. When a
 * producer and a consumer run at the same pace the queue is empty (or
 * full) every other moment; waiting on the list then costs both sides a
 * wake-up per item, while the next item is a fraction of a microsecond
 * away. */
#define SPIN_NS 4000

/* queue.c, tracing on: whether this put records a flow arrow (every put,
 * unless the queue streams faster than one item per ARROW_GAP_NS: then
 * one put in a stride, see queue.c), and if so its time in *now. */
int braid__queue_arrow(braid_queue_t *q, int64_t *now);
/* queue.c: tracing of a put (or get) of item number k leaving depth items,
 * stamped now (taken before the put's item is visible, after the get's
 * item was seen, so each flow arrow points forward). */
void braid__queue_traced(braid_queue_t *q, int put, uint64_t k, size_t depth, int64_t now);
/* queue.c, tracing on: a get that recorded no arrow still brings the depth
 * counter back to 0 when it empties the queue after the counter last said
 * more (said_depth: a cheap check first, then the size). */
int braid__queue_said_depth(braid_queue_t *q);
void braid__queue_emptied(braid_queue_t *q);
/* queue.c: sets or clears *flag from whether l has waiters (mu held). */
static inline void braid__queue_flag(atomic_int *flag, const braid_waitlist_t *l)
{
    atomic_store_explicit(flag, l->head != NULL, memory_order_relaxed);
}

/* queue_ring.c */
int braid__ring_init(braid_queue_t *q);
void braid__ring_free(braid_queue_t *q);
int braid__ring_put(braid_queue_t *q, braid_buf_t *item, braid_buf_t **big, int64_t deadline);
int braid__ring_get(braid_queue_t *q, braid_buf_t *out, braid_buf_t **moved, int64_t deadline);
size_t braid__ring_size(braid_queue_t *q);
/* Marks the ring shut down; with immediate, drops every item (waiting for
 * puts that claimed a slot before to finish) and returns how many. */
size_t braid__ring_shutdown(braid_queue_t *q, int immediate);

#endif
