/* Queues of encoded values: a growing ring (unbounded FIFO/simple), a stack
 * (LIFO) or a binary heap (priority) under one mutex, with waiter lists for
 * getters/putters/joiners; bounded FIFO queues run on the lock-free ring of
 * queue_ring.c and come here for what is common (tasks, shutdown, sizes). */
#include "clock.h"
#include "error.h"
#include "queue_impl.h"
#include "trace.h"

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
        payload_free(&items[ring ? (head + i) & (cap - 1) : i].p);
    free(items);
}

static int is_ring(const braid_queue_t *q)
{
    return q->kind == BRAID_QUEUE_FIFO || q->kind == BRAID_QUEUE_SIMPLE;
}

static void queue_destroy(braid_object_t *obj)
{
    braid_queue_t *q = (braid_queue_t *)obj;
    if (q->slots)
        braid__ring_free(q);
    free_entries(q->items, q->cap, q->head, count_of(q), is_ring(q));
    pthread_mutex_destroy(&q->mu);
    free(q);
}

/* The depth counter is written at most once per COUNTER_NS per queue, and
 * always when the depth comes back to 0: a fast stream of items would
 * otherwise spend most of its tracing cost on counters. */
#define COUNTER_NS 10000

/* Whether this put or get writes the depth counter (racing ones: the one
 * that moves counter_ts does). */
static int counter_due(braid_queue_t *q, size_t depth, int64_t now)
{
    int64_t ts = atomic_load_explicit(&q->counter_ts, memory_order_relaxed);
    if (now - ts < COUNTER_NS &&
        (depth != 0 || atomic_load_explicit(&q->counter_depth, memory_order_relaxed) == 0))
        return 0;
    if (!atomic_compare_exchange_strong_explicit(
            &q->counter_ts, &ts, now, memory_order_relaxed, memory_order_relaxed))
        return 0;
    atomic_store_explicit(&q->counter_depth, depth, memory_order_relaxed);
    return 1;
}

static void queue_counter(braid_queue_t *q, size_t depth, int64_t now)
{
    char name[BRAID_NAME_MAX + 16] = "queue ";
    braid_object_label(&q->obj, name + 6, sizeof name - 6);
    braid_trace_arg_t a = {"depth", 'i', NULL, (int64_t)depth};
    braid_trace_counter(name, now, &a, 1);
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
    if (counter)
        queue_counter(q, depth, now);
}

void braid__queue_traced(braid_queue_t *q, int put, uint64_t k, size_t depth, int64_t now)
{
    queue_traced(q, put, k, depth, now, counter_due(q, depth, now));
}

int braid__queue_said_depth(braid_queue_t *q)
{
    return atomic_load_explicit(&q->counter_depth, memory_order_relaxed) != 0;
}

void braid__queue_emptied(braid_queue_t *q)
{
    int64_t now = braid_clock_now();
    if (counter_due(q, 0, now))
        queue_counter(q, 0, now);
}

/* Flow arrows on a fast stream. Reading the clock costs about as much as
 * a whole put on this kind of VM (~0.1 us), so an arrow on every item of
 * a queue streaming millions a second would cut its rate by more than
 * half (docs/tracing.md, Overhead). When the puts
 * that record arrows come less than ARROW_GAP_NS apart ARROW_FAST times in
 * a row, only one put in twice as many records its arrow (the others read
 * no clock); when they come more than 4 gaps apart ARROW_SLOW times in a
 * row, twice as many again. One slow gap is not enough: a stream whose
 * consumer parks now and then (a full or empty queue) would otherwise
 * halve its stride at every park and record arrows for most of its items.
 * A burst of fewer than ARROW_FAST items, and any slower stream, keeps an
 * arrow per item; BRAID_TRACE_ARROWS=all keeps them always. */
#define ARROW_GAP_NS 10000
#define ARROW_FAST 64
#define ARROW_SLOW 4
#define ARROW_STRIDE_MAX 4096

int braid__queue_arrow(braid_queue_t *q, int64_t *now)
{
    if (braid_trace_every_arrow()) {
        *now = braid_clock_now();
        return 1;
    }
    unsigned stride = atomic_load_explicit(&q->arrow_stride, memory_order_relaxed);
    uint64_t n = atomic_fetch_add_explicit(&q->arrow_n, 1, memory_order_relaxed);
    if (stride > 1 && (n & (stride - 1)) != 0)
        return 0;
    int64_t t = braid_clock_now();
    int64_t gap = t - atomic_exchange_explicit(&q->arrow_ts, t, memory_order_relaxed);
    *now = t;
    /* racing puts may adapt the stride twice: it stays a power of two */
    if (gap < ARROW_GAP_NS) {
        unsigned fast = atomic_fetch_add_explicit(&q->arrow_fast, 1, memory_order_relaxed) + 1;
        if (fast >= ARROW_FAST && stride < ARROW_STRIDE_MAX) {
            atomic_store_explicit(&q->arrow_stride, stride ? stride * 2 : 2, memory_order_relaxed);
            atomic_store_explicit(&q->arrow_fast, 0, memory_order_relaxed);
        }
        atomic_store_explicit(&q->arrow_slow, 0, memory_order_relaxed);
    } else {
        atomic_store_explicit(&q->arrow_fast, 0, memory_order_relaxed);
        if (gap > 4 * ARROW_GAP_NS && stride > 1 &&
            atomic_fetch_add_explicit(&q->arrow_slow, 1, memory_order_relaxed) + 1 >= ARROW_SLOW) {
            atomic_store_explicit(&q->arrow_stride, stride / 2, memory_order_relaxed);
            atomic_store_explicit(&q->arrow_slow, 0, memory_order_relaxed);
        }
    }
    return 1;
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
    if ((kind == BRAID_QUEUE_FIFO && q->maxsize >= 2 && q->maxsize <= RING_MAX &&
         braid__ring_init(q) != 0) ||
        braid_object_init(&q->obj, &braid_queue_types[kind]) != 0) {
        free(q->slots);
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
    const uint8_t *ad = payload_data(&a->p, &alen), *bd = payload_data(&b->p, &blen);
    if (braid_codec_compare(ad, alen, bd, blen, &c) != 0)
        c = 0;
    return c < 0 || (c == 0 && a->seq < b->seq);
}

/* Inserts into the heap: finds the slot first (comparisons can fail with
 * BRAID_ETYPE, leaving the heap untouched), then shifts. Room reserved. */
static int heap_push(braid_queue_t *q, braid_buf_t *item, braid_buf_t **big, int arrow)
{
    const braid_buf_t *v = *big ? *big : item; /* where the item's bytes are */
    size_t i = count_of(q);
    while (i > 0) {
        size_t p = (i - 1) / 2;
        size_t plen;
        const uint8_t *pd = payload_data(&q->items[p].p, &plen);
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
    payload_fill(&q->items[i].p, item, big, arrow);
    count_set(q, count_of(q) + 1);
    return 0;
}

/* Returns whether the item's put recorded a flow arrow. */
static int heap_pop(braid_queue_t *q, braid_buf_t *out, braid_buf_t **moved)
{
    entry_t *h = q->items;
    int arrow = payload_take(&h[0].p, out, moved);
    size_t n = count_of(q) - 1;
    count_set(q, n);
    if (n == 0)
        return arrow;
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
    return arrow;
}

/* Stores the item (room reserved); arrow: its put records a flow arrow.
 * Returns 0 or BRAID_ETYPE/ECORRUPT. */
static int store(braid_queue_t *q, braid_buf_t *item, braid_buf_t **big, int arrow)
{
    switch (q->kind) {
    case BRAID_QUEUE_PRIORITY:
        return heap_push(q, item, big, arrow);
    case BRAID_QUEUE_LIFO:
        q->items[count_of(q)].seq = q->nput;
        payload_fill(&q->items[count_of(q)].p, item, big, arrow);
        count_set(q, count_of(q) + 1);
        return 0;
    default:
        payload_fill(&q->items[(q->head + count_of(q)) & (q->cap - 1)].p, item, big, arrow);
        count_set(q, count_of(q) + 1);
        return 0;
    }
}

/* Takes the next item; returns the number of the put that stored it, and
 * in *arrow whether that put recorded a flow arrow. */
static uint64_t take(braid_queue_t *q, braid_buf_t *out, braid_buf_t **moved, int *arrow)
{
    uint64_t k;
    switch (q->kind) {
    case BRAID_QUEUE_PRIORITY:
        k = q->items[0].seq;
        *arrow = heap_pop(q, out, moved);
        return k;
    case BRAID_QUEUE_LIFO:
        count_set(q, count_of(q) - 1);
        k = q->items[count_of(q)].seq;
        *arrow = payload_take(&q->items[count_of(q)].p, out, moved);
        return k;
    default:
        *arrow = payload_take(&q->items[q->head].p, out, moved);
        q->head = (q->head + 1) & (q->cap - 1);
        count_set(q, count_of(q) - 1);
        return q->nget; /* a ring: the k-th get takes the k-th put */
    }
}

static int is_full(const braid_queue_t *q)
{
    return q->maxsize > 0 && count_of(q) >= (size_t)q->maxsize;
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
        braid_cpu_relax();
        if (i % 16 == 0 && braid_clock_now() >= end)
            return 0;
    }
}

/* braid_queue_put for the locked kinds; mu held on entry and return. */
static int locked_put(braid_queue_t *q, braid_buf_t *item, braid_buf_t **big, int64_t deadline)
{
    int rc;
    if (atomic_load_explicit(&q->shutdown, memory_order_relaxed))
        return BRAID_ESHUTDOWN;
    for (int spun = 0; is_full(q);) {
        if (deadline == BRAID_QUEUE_NOWAIT)
            return BRAID_EFULL;
        if (!spun) {
            spun = 1;
            pthread_mutex_unlock(&q->mu);
            spin_for(q, 0);
            pthread_mutex_lock(&q->mu);
            if (atomic_load_explicit(&q->shutdown, memory_order_relaxed))
                return BRAID_ESHUTDOWN;
            continue;
        }
        rc = braid_waitlist_wait(&q->putters, &q->mu, deadline, NULL);
        if (atomic_load_explicit(&q->shutdown, memory_order_relaxed))
            return BRAID_ESHUTDOWN;
        if (rc == BRAID_ETIMEOUT) {
            if (is_full(q))
                return BRAID_EFULL;
        } else if (rc != 0) {
            return rc;
        }
    }
    int64_t now = 0;
    int arrow = braid_trace_enabled() &&
                braid__queue_arrow(q, &now); /* under the lock: the put precedes its get */
    if ((rc = reserve(q)) != 0 || (rc = store(q, item, big, arrow)) != 0)
        return rc;
    if (q->kind != BRAID_QUEUE_SIMPLE)
        atomic_fetch_add_explicit(&q->unfinished, 1, memory_order_relaxed);
    uint64_t k = q->nput++;
    if (q->getters.head)
        braid_waitlist_wake_one(&q->getters, 0);
    if (arrow) {
        size_t depth = count_of(q);
        int counter = counter_due(q, depth, now);
        pthread_mutex_unlock(&q->mu);
        queue_traced(q, 1, k, depth, now, counter);
        pthread_mutex_lock(&q->mu);
    }
    return 0;
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
    if (q->slots) {
        rc = braid__ring_put(q, item, &big, deadline);
    } else {
        pthread_mutex_lock(&q->mu);
        rc = locked_put(q, item, &big, deadline);
        pthread_mutex_unlock(&q->mu);
    }
    if (big) { /* not stored: the caller keeps its item */
        braid_buf_move(item, big);
        free(big);
    }
    return rc;
}

/* braid_queue_get for the locked kinds; mu held on entry and return. */
static int locked_get(braid_queue_t *q, braid_buf_t *out, braid_buf_t **moved, int64_t deadline)
{
    int rc;
    for (int spun = 0; count_of(q) == 0;) {
        if (atomic_load_explicit(&q->shutdown, memory_order_relaxed))
            return BRAID_ESHUTDOWN;
        if (deadline == BRAID_QUEUE_NOWAIT)
            return BRAID_EEMPTY;
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
        if (rc == BRAID_ETIMEOUT)
            return atomic_load_explicit(&q->shutdown, memory_order_relaxed) ? BRAID_ESHUTDOWN
                                                                            : BRAID_EEMPTY;
        if (rc != 0)
            return rc;
    }
    int arrow;
    uint64_t k = take(q, out, moved, &arrow);
    q->nget++;
    if (q->putters.head)
        braid_waitlist_wake_one(&q->putters, 0);
    if (arrow && braid_trace_enabled()) {
        size_t depth = count_of(q);
        int64_t now = braid_clock_now();
        int counter = counter_due(q, depth, now);
        pthread_mutex_unlock(&q->mu);
        queue_traced(q, 0, k, depth, now, counter);
        pthread_mutex_lock(&q->mu);
    } else if (braid_trace_enabled() && braid__queue_said_depth(q) && count_of(q) == 0) {
        braid__queue_emptied(q);
    }
    return 0;
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
    if (q->slots) {
        rc = braid__ring_get(q, out, &moved, deadline);
    } else {
        pthread_mutex_lock(&q->mu);
        rc = locked_get(q, out, &moved, deadline);
        pthread_mutex_unlock(&q->mu);
    }
    if (moved) {
        braid_buf_free(out);
        braid_buf_move(out, moved);
        free(moved);
    }
    return rc;
}

/* After unfinished went down to 0: wakes the joiners, if any may wait
 * (a full fence orders the count before the read of the flag). */
static void wake_joiners(braid_queue_t *q)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (!atomic_load_explicit(&q->jwait, memory_order_relaxed))
        return;
    pthread_mutex_lock(&q->mu);
    braid_waitlist_wake_all(&q->joiners, 0);
    braid__queue_flag(&q->jwait, &q->joiners);
    pthread_mutex_unlock(&q->mu);
}

int braid_queue_task_done(braid_queue_t *q)
{
    if (q->kind == BRAID_QUEUE_SIMPLE)
        return BRAID_EINVAL;
    long u = atomic_load_explicit(&q->unfinished, memory_order_relaxed);
    do {
        if (u <= 0)
            return BRAID_EINVAL;
    } while (!atomic_compare_exchange_weak(&q->unfinished, &u, u - 1));
    if (u == 1)
        wake_joiners(q);
    return 0;
}

int braid_queue_join(braid_queue_t *q, int64_t deadline)
{
    int rc = 0;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        atomic_store_explicit(&q->jwait, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load(&q->unfinished) <= 0) {
            rc = 0;
            break;
        }
        if (deadline == BRAID_QUEUE_NOWAIT) {
            rc = BRAID_ETIMEOUT;
            break;
        }
        rc = braid_waitlist_wait(&q->joiners, &q->mu, deadline, NULL);
        braid__queue_flag(&q->jwait, &q->joiners);
        if (atomic_load(&q->unfinished) <= 0) {
            rc = 0;
            break;
        }
        if (rc != 0)
            break;
    }
    braid__queue_flag(&q->jwait, &q->joiners);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* Counts n dropped items as done (never below 0); wakes joiners at 0. */
static void drop_unfinished(braid_queue_t *q, size_t n)
{
    long u = atomic_load(&q->unfinished);
    while (!atomic_compare_exchange_weak(&q->unfinished, &u, u > (long)n ? u - (long)n : 0))
        ;
}

void braid_queue_shutdown(braid_queue_t *q, int immediate)
{
    if (q->kind == BRAID_QUEUE_SIMPLE)
        return;
    entry_t *dropped = NULL;
    size_t cap = 0, head = 0, n = 0;
    atomic_store(&q->shutdown, 1);
    if (q->slots) {
        n = braid__ring_shutdown(q, immediate);
        if (immediate)
            drop_unfinished(q, n);
    }
    pthread_mutex_lock(&q->mu); /* a locked get or put sees it under mu */
    if (immediate && !q->slots) {
        /* detach the storage; the items are freed outside the lock */
        dropped = q->items;
        cap = q->cap;
        head = q->head;
        n = count_of(q);
        q->items = NULL;
        q->cap = q->head = 0;
        count_set(q, 0);
        drop_unfinished(q, n);
    }
    if (immediate) {
        braid_waitlist_wake_all(&q->joiners, 0);
        braid__queue_flag(&q->jwait, &q->joiners);
    }
    braid_waitlist_wake_all(&q->getters, 0);
    braid_waitlist_wake_all(&q->putters, 0);
    braid__queue_flag(&q->gwait, &q->getters);
    braid__queue_flag(&q->pwait, &q->putters);
    pthread_mutex_unlock(&q->mu);
    if (dropped)
        free_entries(dropped, cap, head, n, is_ring(q));
}

size_t braid_queue_qsize(braid_queue_t *q)
{
    if (q->slots)
        return braid__ring_size(q);
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
    return q->maxsize > 0 && braid_queue_qsize(q) >= (size_t)q->maxsize;
}

long braid_queue_maxsize(const braid_queue_t *q)
{
    return q->maxsize;
}

int braid_queue_is_shutdown(braid_queue_t *q)
{
    return atomic_load(&q->shutdown);
}

long braid_queue_unfinished(braid_queue_t *q)
{
    return atomic_load(&q->unfinished);
}
