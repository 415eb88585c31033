/* Queues of encoded values: a ring (FIFO/simple), a stack (LIFO) or a binary
 * heap (priority), one mutex, and waiter lists for getters/putters/joiners. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "queue.h"
#include "trace.h"
#include "waiter.h"

/* Items of up to INLINE_MAX bytes that name no objects (every integer,
 * float, boolean and string of up to 13 bytes) are copied into the entry
 * itself: no allocation per item, 24 bytes per queued item, and the
 * caller's buffers keep their capacity. Bigger items are moved into a
 * buffer of their own, allocated before the lock is taken. */
#define INLINE_MAX 15
#define NOT_INLINE 0xff

typedef struct entry {
    uint64_t seq; /* LIFO, PRIORITY: insertion order (the put's number); in a
                   * heap it breaks ties first-in first-out */
    union {
        uint8_t bytes[INLINE_MAX];
        braid_buf_t *buf; /* when ilen == NOT_INLINE */
    } u;
    uint8_t ilen; /* inline length, or NOT_INLINE */
} entry_t;

static int fits_inline(const braid_buf_t *item)
{
    return item->len <= INLINE_MAX && item->nobjs == 0;
}

static const uint8_t *entry_data(const entry_t *e, size_t *len)
{
    if (e->ilen == NOT_INLINE) {
        *len = e->u.buf->len;
        return e->u.buf->data;
    }
    *len = e->ilen;
    return e->u.bytes;
}

static void entry_free(entry_t *e)
{
    if (e->ilen == NOT_INLINE) {
        braid_buf_free(e->u.buf);
        free(e->u.buf);
    }
}

/* Fills e from item, leaving item empty (capacity kept when copied); an
 * item that does not fit inline is already in *big, whose ownership moves
 * to the entry. */
static void entry_fill(entry_t *e, braid_buf_t *item, braid_buf_t **big)
{
    if (*big) {
        e->ilen = NOT_INLINE;
        e->u.buf = *big;
        *big = NULL;
    } else {
        memcpy(e->u.bytes, item->data, item->len);
        e->ilen = (uint8_t)item->len;
        item->len = 0;
    }
}

/* Empties e into out, which is empty with capacity >= INLINE_MAX; a big
 * item's buffer goes to *moved instead (installed in out after the lock). */
static void entry_take(entry_t *e, braid_buf_t *out, braid_buf_t **moved)
{
    if (e->ilen == NOT_INLINE) {
        *moved = e->u.buf;
    } else {
        memcpy(out->data, e->u.bytes, e->ilen);
        out->len = e->ilen;
    }
}

/* Everything below maxsize is guarded by mu. Lock order: mu -> waiter mu
 * (taken inside braid_waitlist_* wake-ups); nothing else is taken under mu.
 * Layout: the read-only header, then the lock with what every put and get
 * writes in one cache line of its own, then the rest, so a hand-off between
 * two cores moves as few lines as possible. */
#define LINE 64

struct braid_queue {
    braid_object_t obj;
    braid_queue_kind_t kind;
    long maxsize; /* > 0: bounded */
    _Alignas(LINE) pthread_mutex_t mu;
    size_t head;         /* FIFO/SIMPLE ring start */
    atomic_size_t count; /* written under mu; read without it to spin (count_of) */
    int shutdown;
    _Alignas(LINE) entry_t *items;
    size_t cap;          /* power of two (or 0 before the first put) */
    uint64_t nput, nget; /* items stored / taken (a ring: the k-th get takes the k-th put) */
    long unfinished;
    braid_waitlist_t getters, putters, joiners;
    int64_t counter_ts;   /* tracing: when the depth counter was last written (under mu) */
    size_t counter_depth; /* and the depth it said */
};

static void queue_destroy(braid_object_t *obj);

static inline size_t count_of(const braid_queue_t *q)
{
    return atomic_load_explicit(&q->count, memory_order_relaxed);
}

static inline void count_set(braid_queue_t *q, size_t n)
{
    atomic_store_explicit(&q->count, n, memory_order_relaxed);
}

const braid_object_type_t braid_queue_types[4] = {
    {"braid.Queue", "braid.queue", queue_destroy},
    {"braid.LifoQueue", "braid.queue", queue_destroy},
    {"braid.PriorityQueue", "braid.queue", queue_destroy},
    {"braid.SimpleQueue", "braid.queue", queue_destroy},
};

int braid_queue_kind_of(const braid_object_t *obj)
{
    if (!obj)
        return -1;
    for (int k = 0; k < 4; k++)
        if (obj->type == &braid_queue_types[k])
            return k;
    return -1;
}

/* Frees n entries of a detached ring/array (outside the lock). */
static void free_entries(entry_t *items, size_t cap, size_t head, size_t n, int ring)
{
    for (size_t i = 0; i < n; i++)
        entry_free(&items[ring ? (head + i) & (cap - 1) : i]);
    free(items);
}

static int is_ring(const braid_queue_t *q)
{
    return q->kind == BRAID_QUEUE_FIFO || q->kind == BRAID_QUEUE_SIMPLE;
}

static void queue_destroy(braid_object_t *obj)
{
    braid_queue_t *q = (braid_queue_t *)obj;
    free_entries(q->items, q->cap, q->head, count_of(q), is_ring(q));
    pthread_mutex_destroy(&q->mu);
    free(q);
}

/* The depth counter is written at most once per COUNTER_NS per queue, and
 * always when the depth comes back to 0: a fast stream of items would
 * otherwise spend most of its tracing cost on counters. */
#define COUNTER_NS 10000

/* Under mu: whether this put or get writes the depth counter. */
static int counter_due(braid_queue_t *q, size_t depth, int64_t now)
{
    if (now - q->counter_ts < COUNTER_NS && (depth != 0 || q->counter_depth == 0))
        return 0;
    q->counter_ts = now;
    q->counter_depth = depth;
    return 1;
}

/* A put (or get) of item k leaving depth items: the flow arrow from the
 * put to the get that takes the item, and the depth counter if due. */
static void queue_traced(braid_queue_t *q, int put, uint64_t k, size_t depth, int64_t now,
                         int counter)
{
    braid_trace_flow(put,
                     put ? "put" : "get",
                     braid_trace_flow_id((q->obj.id & 0x3fffff) << 28 | (k & 0xfffffff), 3),
                     now);
    if (!counter)
        return;
    char name[BRAID_NAME_MAX + 16] = "queue ";
    braid_object_label(&q->obj, name + 6, sizeof name - 6);
    braid_trace_arg_t a = {"depth", 'i', NULL, (int64_t)depth};
    braid_trace_counter(name, now, &a, 1);
}

int braid_queue_new(braid_queue_kind_t kind, long maxsize, braid_queue_t **out)
{
    *out = NULL;
    if ((int)kind < 0 || (int)kind > BRAID_QUEUE_SIMPLE)
        return BRAID_EINVAL;
    braid_queue_t *q = aligned_alloc(LINE, sizeof *q);
    if (!q)
        return BRAID_ENOMEM;
    memset(q, 0, sizeof *q);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
    /* short critical sections: spin a little before sleeping in the kernel */
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    int rc = pthread_mutex_init(&q->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    if (rc != 0) {
        free(q);
        return BRAID_EOS;
    }
    q->kind = kind;
    braid_waitlist_init(&q->getters, &q->obj, "get");
    braid_waitlist_init(&q->putters, &q->obj, "put");
    braid_waitlist_init(&q->joiners, &q->obj, "join");
    q->maxsize = kind == BRAID_QUEUE_SIMPLE || maxsize < 0 ? 0 : maxsize;
    if (braid_object_init(&q->obj, &braid_queue_types[kind]) != 0) {
        pthread_mutex_destroy(&q->mu);
        free(q);
        return BRAID_ENOMEM;
    }
    *out = q;
    return 0;
}

void braid_queue_retain(braid_queue_t *q)
{
    braid_object_retain(&q->obj);
}

void braid_queue_release(braid_queue_t *q)
{
    if (q)
        braid_object_release(&q->obj);
}

/* Makes room for one more entry. Called with mu held. */
static int reserve(braid_queue_t *q)
{
    size_t count = count_of(q);
    if (count < q->cap)
        return 0;
    size_t ncap = q->cap ? q->cap * 2 : 16;
    if (ncap < q->cap)
        return BRAID_ENOMEM;
    size_t bytes = (ncap * sizeof(entry_t) + LINE - 1) & ~(size_t)(LINE - 1);
    entry_t *n = aligned_alloc(LINE, bytes); /* an entry per line */
    if (!n)
        return BRAID_ENOMEM;
    if (is_ring(q)) {
        for (size_t i = 0; i < count; i++)
            n[i] = q->items[(q->head + i) & (q->cap - 1)];
        q->head = 0;
    } else if (count) {
        memcpy(n, q->items, count * sizeof *n);
    }
    free(q->items);
    q->items = n;
    q->cap = ncap;
    return 0;
}

/* Heap order: smaller value first, then smaller seq. A pair the codec
 * cannot order (only possible between items never compared at put time)
 * falls back to seq, so the heap stays consistent and get never fails. */
static int heap_less(const entry_t *a, const entry_t *b)
{
    int c;
    size_t alen, blen;
    const uint8_t *ad = entry_data(a, &alen), *bd = entry_data(b, &blen);
    if (braid_codec_compare(ad, alen, bd, blen, &c) != 0)
        c = 0;
    return c < 0 || (c == 0 && a->seq < b->seq);
}

/* Inserts into the heap: finds the slot first (comparisons can fail with
 * BRAID_ETYPE, leaving the heap untouched), then shifts. Room reserved. */
static int heap_push(braid_queue_t *q, braid_buf_t *item, braid_buf_t **big)
{
    const braid_buf_t *v = *big ? *big : item; /* where the item's bytes are */
    size_t i = count_of(q);
    while (i > 0) {
        size_t p = (i - 1) / 2;
        size_t plen;
        const uint8_t *pd = entry_data(&q->items[p], &plen);
        int c, rc = braid_codec_compare(v->data, v->len, pd, plen, &c);
        if (rc != 0)
            return rc == BRAID_ECORRUPT ? BRAID_ECORRUPT : BRAID_ETYPE;
        if (c >= 0)
            break; /* equal keys: the newer one (largest seq) stays below */
        i = p;
    }
    /* everything on the path from the new leaf up to i moves down one level */
    size_t j = count_of(q);
    while (j != i) {
        size_t p = (j - 1) / 2;
        q->items[j] = q->items[p];
        j = p;
    }
    q->items[i].seq = q->nput;
    entry_fill(&q->items[i], item, big);
    count_set(q, count_of(q) + 1);
    return 0;
}

static void heap_pop(braid_queue_t *q, braid_buf_t *out, braid_buf_t **moved)
{
    entry_t *h = q->items;
    entry_take(&h[0], out, moved);
    size_t n = count_of(q) - 1;
    count_set(q, n);
    if (n == 0)
        return;
    entry_t last = h[n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, m;
        if (l >= n)
            break;
        m = l + 1 < n && heap_less(&h[l + 1], &h[l]) ? l + 1 : l;
        if (!heap_less(&h[m], &last))
            break;
        h[i] = h[m];
        i = m;
    }
    h[i] = last;
}

/* Stores the item (room reserved). Returns 0 or BRAID_ETYPE/ECORRUPT. */
static int store(braid_queue_t *q, braid_buf_t *item, braid_buf_t **big)
{
    switch (q->kind) {
    case BRAID_QUEUE_PRIORITY:
        return heap_push(q, item, big);
    case BRAID_QUEUE_LIFO:
        q->items[count_of(q)].seq = q->nput;
        entry_fill(&q->items[count_of(q)], item, big);
        count_set(q, count_of(q) + 1);
        return 0;
    default:
        entry_fill(&q->items[(q->head + count_of(q)) & (q->cap - 1)], item, big);
        count_set(q, count_of(q) + 1);
        return 0;
    }
}

/* Takes the next item; returns the number of the put that stored it. */
static uint64_t take(braid_queue_t *q, braid_buf_t *out, braid_buf_t **moved)
{
    uint64_t k;
    switch (q->kind) {
    case BRAID_QUEUE_PRIORITY:
        k = q->items[0].seq;
        heap_pop(q, out, moved);
        return k;
    case BRAID_QUEUE_LIFO:
        count_set(q, count_of(q) - 1);
        k = q->items[count_of(q)].seq;
        entry_take(&q->items[count_of(q)], out, moved);
        return k;
    default:
        entry_take(&q->items[q->head], out, moved);
        q->head = (q->head + 1) & (q->cap - 1);
        count_set(q, count_of(q) - 1);
        return q->nget; /* a ring: the k-th get takes the k-th put */
    }
}

static int is_full(const braid_queue_t *q)
{
    return q->maxsize > 0 && count_of(q) >= (size_t)q->maxsize;
}

/* How long a get that finds the queue empty (a put that finds it full)
 * watches the count, lock released, before it joins the wait list. When a
 * producer and a consumer run at the same pace the queue is empty (or
 * full) every other moment; waiting on the list then costs both sides a
 * wake-up per item, while the next item is a fraction of a microsecond
 * away. */
#define SPIN_NS 4000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* Spins (mu not held) until the queue has items (want_items) or room, or
 * SPIN_NS pass; returns whether it saw the change. */
static int spin_for(const braid_queue_t *q, int want_items)
{
    if (!braid_waiter_may_spin())
        return 0;
    int64_t end = braid_clock_now() + SPIN_NS;
    for (unsigned i = 1;; i++) {
        size_t c = count_of(q);
        if (want_items ? c > 0 : c < (size_t)q->maxsize)
            return 1;
        cpu_relax();
        if (i % 16 == 0 && braid_clock_now() >= end)
            return 0;
    }
}

int braid_queue_put(braid_queue_t *q, braid_buf_t *item, int64_t deadline)
{
    int rc = 0;
    braid_buf_t *big = NULL; /* the item, when it does not fit in an entry */
    if (!fits_inline(item)) {
        if (!(big = malloc(sizeof *big)))
            return BRAID_ENOMEM;
        braid_buf_init(big);
        braid_buf_move(big, item);
    }
    pthread_mutex_lock(&q->mu);
    if (q->shutdown) {
        rc = BRAID_ESHUTDOWN;
        goto out;
    }
    for (int spun = 0; is_full(q);) {
        if (deadline == BRAID_QUEUE_NOWAIT) {
            rc = BRAID_EFULL;
            goto out;
        }
        if (!spun) {
            spun = 1;
            pthread_mutex_unlock(&q->mu);
            spin_for(q, 0);
            pthread_mutex_lock(&q->mu);
            if (q->shutdown) {
                rc = BRAID_ESHUTDOWN;
                goto out;
            }
            continue;
        }
        rc = braid_waitlist_wait(&q->putters, &q->mu, deadline, NULL);
        if (q->shutdown) {
            rc = BRAID_ESHUTDOWN;
            goto out;
        }
        if (rc == BRAID_ETIMEOUT) {
            rc = is_full(q) ? BRAID_EFULL : 0;
            if (rc)
                goto out;
        } else if (rc != 0) {
            goto out;
        }
    }
    if ((rc = reserve(q)) != 0 || (rc = store(q, item, &big)) != 0)
        goto out;
    if (q->kind != BRAID_QUEUE_SIMPLE)
        q->unfinished++;
    uint64_t k = q->nput++;
    if (q->getters.head)
        braid_waitlist_wake_one(&q->getters, 0);
    if (braid_trace_enabled()) {
        size_t depth = count_of(q);
        int64_t now = braid_clock_now(); /* under the lock: the put precedes its get */
        int counter = counter_due(q, depth, now);
        pthread_mutex_unlock(&q->mu);
        queue_traced(q, 1, k, depth, now, counter);
        pthread_mutex_lock(&q->mu);
    }
out:
    pthread_mutex_unlock(&q->mu);
    if (big) { /* not stored: the caller keeps its item */
        braid_buf_move(item, big);
        free(big);
    }
    return rc;
}

int braid_queue_get(braid_queue_t *q, braid_buf_t *out, int64_t deadline)
{
    int rc = 0;
    braid_buf_t *moved = NULL;
    if (out->cap < INLINE_MAX) {
        /* room for an inline item, reserved before taking the lock */
        static const uint8_t zeros[INLINE_MAX];
        braid_buf_put_bytes(out, zeros, INLINE_MAX);
        if (out->err)
            return BRAID_ENOMEM;
    }
    out->len = 0;
    pthread_mutex_lock(&q->mu);
    for (int spun = 0; count_of(q) == 0;) {
        if (q->shutdown) {
            rc = BRAID_ESHUTDOWN;
            goto out;
        }
        if (deadline == BRAID_QUEUE_NOWAIT) {
            rc = BRAID_EEMPTY;
            goto out;
        }
        if (!spun) {
            spun = 1;
            pthread_mutex_unlock(&q->mu);
            spin_for(q, 1);
            pthread_mutex_lock(&q->mu);
            continue;
        }
        rc = braid_waitlist_wait(&q->getters, &q->mu, deadline, NULL);
        if (count_of(q))
            break; /* an item arrived: it is ours even if the deadline passed */
        if (rc == BRAID_ETIMEOUT) {
            rc = q->shutdown ? BRAID_ESHUTDOWN : BRAID_EEMPTY;
            goto out;
        }
        if (rc != 0)
            goto out;
    }
    rc = 0;
    uint64_t k = take(q, out, &moved);
    q->nget++;
    if (q->putters.head)
        braid_waitlist_wake_one(&q->putters, 0);
    if (braid_trace_enabled()) {
        size_t depth = count_of(q);
        int64_t now = braid_clock_now();
        int counter = counter_due(q, depth, now);
        pthread_mutex_unlock(&q->mu);
        queue_traced(q, 0, k, depth, now, counter);
        pthread_mutex_lock(&q->mu);
    }
out:
    pthread_mutex_unlock(&q->mu);
    if (moved) {
        braid_buf_free(out);
        braid_buf_move(out, moved);
        free(moved);
    }
    return rc;
}

int braid_queue_task_done(braid_queue_t *q)
{
    int rc = 0;
    pthread_mutex_lock(&q->mu);
    if (q->kind == BRAID_QUEUE_SIMPLE || q->unfinished <= 0) {
        rc = BRAID_EINVAL;
    } else if (--q->unfinished == 0) {
        braid_waitlist_wake_all(&q->joiners, 0);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int braid_queue_join(braid_queue_t *q, int64_t deadline)
{
    int rc = 0;
    pthread_mutex_lock(&q->mu);
    while (q->unfinished > 0) {
        if (deadline == BRAID_QUEUE_NOWAIT) {
            rc = BRAID_ETIMEOUT;
            break;
        }
        rc = braid_waitlist_wait(&q->joiners, &q->mu, deadline, NULL);
        if (q->unfinished == 0) {
            rc = 0;
            break;
        }
        if (rc != 0)
            break;
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void braid_queue_shutdown(braid_queue_t *q, int immediate)
{
    if (q->kind == BRAID_QUEUE_SIMPLE)
        return;
    entry_t *dropped = NULL;
    size_t cap = 0, head = 0, n = 0;
    pthread_mutex_lock(&q->mu);
    q->shutdown = 1;
    if (immediate) {
        /* detach the storage; the items are freed outside the lock */
        dropped = q->items;
        cap = q->cap;
        head = q->head;
        n = count_of(q);
        q->items = NULL;
        q->cap = q->head = 0;
        count_set(q, 0);
        q->unfinished -= (long)n;
        if (q->unfinished < 0)
            q->unfinished = 0;
        braid_waitlist_wake_all(&q->joiners, 0);
    }
    braid_waitlist_wake_all(&q->getters, 0);
    braid_waitlist_wake_all(&q->putters, 0);
    pthread_mutex_unlock(&q->mu);
    if (dropped)
        free_entries(dropped, cap, head, n, is_ring(q));
}

size_t braid_queue_qsize(braid_queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = count_of(q);
    pthread_mutex_unlock(&q->mu);
    return n;
}

int braid_queue_empty(braid_queue_t *q)
{
    return braid_queue_qsize(q) == 0;
}

int braid_queue_full(braid_queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    int f = is_full(q);
    pthread_mutex_unlock(&q->mu);
    return f;
}

long braid_queue_maxsize(const braid_queue_t *q)
{
    return q->maxsize;
}

int braid_queue_is_shutdown(braid_queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    int s = q->shutdown;
    pthread_mutex_unlock(&q->mu);
    return s;
}

long braid_queue_unfinished(braid_queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    long n = q->unfinished;
    pthread_mutex_unlock(&q->mu);
    return n;
}
