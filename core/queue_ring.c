/* Bounded FIFO queues on a lock-free ring (Vyukov's bounded MPMC queue:
 * a sequence number per slot, the producers' and the consumers' indexes on
 * cache lines of their own). The queue's mutex and wait lists serve only
 * the slow path, when a get finds the ring empty or a put finds it full.
 *
 * No lost wake-up, and no fence on the fast path: a put claims its slot
 * with a sequentially consistent compare-and-swap on q->enq, then reads
 * q->gwait; if set, it takes mu and wakes one getter once the item is
 * published. A getter about to wait sets q->gwait, then (under mu) tries
 * the ring again and reads q->enq: if a put has claimed a slot that no get
 * has taken, that put may have read the flag too early, so the getter does
 * not sleep but yields and looks again (the put is a few instructions from
 * publishing); otherwise any later put sees the flag. Gets and putters do
 * the same with q->deq and q->pwait. A woken getter that takes an item
 * while more are queued and getters still wait wakes the next one (and so
 * for putters), so items never sit while a getter sleeps.
 *
 * Shutdown sets RING_SHUT in q->enq, so every put that claimed a slot did
 * so before it; a get reports ShutDown only when every claimed slot has
 * been taken. */
#include <sched.h>

#include "clock.h"
#include "error.h"
#include "queue_impl.h"
#include "trace.h"

static inline slot_t *slot_at(braid_queue_t *q, uint64_t pos)
{
    return &q->slots[q->rmask ? pos & q->rmask : pos % q->rcap];
}

int braid__ring_init(braid_queue_t *q)
{
    uint64_t n = (uint64_t)q->maxsize;
    size_t bytes = ((size_t)n * sizeof(slot_t) + LINE - 1) & ~(size_t)(LINE - 1);
    q->slots = aligned_alloc(LINE, bytes);
    if (!q->slots)
        return BRAID_ENOMEM;
    memset(q->slots, 0, bytes);
    for (uint64_t i = 0; i < n; i++)
        atomic_init(&q->slots[i].seq, i);
    q->rcap = n;
    q->rmask = (n & (n - 1)) == 0 ? n - 1 : 0;
    atomic_init(&q->enq, 0);
    atomic_init(&q->deq, 0);
    return 0;
}

/* Frees the items left and the ring (no other thread uses the queue). */
void braid__ring_free(braid_queue_t *q)
{
    uint64_t end = atomic_load(&q->enq) & ~RING_SHUT;
    for (uint64_t pos = atomic_load(&q->deq); pos < end; pos++)
        payload_free(&slot_at(q, pos)->p);
    free(q->slots);
    q->slots = NULL;
}

/* Claims the slot for the next put: 0 (*pos set), BRAID_EFULL or
 * BRAID_ESHUTDOWN. */
static int claim_put(braid_queue_t *q, uint64_t *out)
{
    uint64_t pos = atomic_load_explicit(&q->enq, memory_order_relaxed);
    for (;;) {
        if (pos & RING_SHUT)
            return BRAID_ESHUTDOWN;
        slot_t *s = slot_at(q, pos);
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        int64_t dif = (int64_t)(seq - pos);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(
                    &q->enq, &pos, pos + 1, memory_order_seq_cst, memory_order_relaxed)) {
                *out = pos;
                return 0;
            }
        } else if (dif < 0) {
            return BRAID_EFULL;
        } else {
            pos = atomic_load_explicit(&q->enq, memory_order_relaxed);
        }
    }
}

/* Claims the slot of the next get: 0 (*pos set) or BRAID_EEMPTY (nothing
 * published at the head, though a put may be writing it). */
static int claim_get(braid_queue_t *q, uint64_t *out)
{
    uint64_t pos = atomic_load_explicit(&q->deq, memory_order_relaxed);
    for (;;) {
        slot_t *s = slot_at(q, pos);
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        int64_t dif = (int64_t)(seq - (pos + 1));
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(
                    &q->deq, &pos, pos + 1, memory_order_seq_cst, memory_order_relaxed)) {
                *out = pos;
                return 0;
            }
        } else if (dif < 0) {
            return BRAID_EEMPTY;
        } else {
            pos = atomic_load_explicit(&q->deq, memory_order_relaxed);
        }
    }
}

/* Shut down, and every put that claimed a slot has been taken. */
static int shut_and_drained(braid_queue_t *q)
{
    uint64_t e = atomic_load_explicit(&q->enq, memory_order_acquire);
    return (e & RING_SHUT) && (e & ~RING_SHUT) == atomic_load(&q->deq);
}

size_t braid__ring_size(braid_queue_t *q)
{
    uint64_t d = atomic_load(&q->deq); /* first: the difference stays >= 0 */
    uint64_t e = atomic_load(&q->enq) & ~RING_SHUT;
    uint64_t n = e > d ? e - d : 0;
    return (size_t)(n < q->rcap ? n : q->rcap);
}

/* Wakes one waiter of l (whose flag was seen set after our claim). */
static void wake_waiter(braid_queue_t *q, atomic_int *flag, braid_waitlist_t *l)
{
    pthread_mutex_lock(&q->mu);
    if (l->head)
        braid_waitlist_wake_one(l, 0);
    braid__queue_flag(flag, l);
    pthread_mutex_unlock(&q->mu);
}

/* Spins (no lock) until the ring has an item at its head (want_items) or a
 * free slot at its tail, or it is shut down, or SPIN_NS pass. */
static void spin_for(braid_queue_t *q, int want_items)
{
    if (!braid_waiter_may_spin())
        return;
    int64_t end = braid_clock_now() + SPIN_NS;
    for (unsigned i = 1;; i++) {
        uint64_t pos = atomic_load_explicit(want_items ? &q->deq : &q->enq, memory_order_relaxed);
        if (pos & RING_SHUT)
            return;
        uint64_t seq = atomic_load_explicit(&slot_at(q, pos)->seq, memory_order_relaxed);
        if (seq == pos + (uint64_t)want_items)
            return;
        braid_cpu_relax();
        if (i % 16 == 0 && braid_clock_now() >= end)
            return;
    }
}

/* The slow paths, after setting their flag and finding the ring empty
 * (getter) or full (putter), mu held: whether no put (get) is between its
 * claim and its publish (release), so the flag is seen by the next one and
 * the caller may wait. If one is, it may have read the flag before we set
 * it: yields, mu released, and returns 0 (look again); past the deadline
 * it returns 1 all the same (the wait then times out at once). */
static int settled(braid_queue_t *q, int getter, int64_t deadline)
{
    uint64_t e = atomic_load(&q->enq) & ~RING_SHUT, d = atomic_load(&q->deq);
    if (getter ? e == d : e - d >= q->rcap)
        return 1;
    if (deadline != BRAID_FOREVER && braid_clock_now() >= deadline)
        return 1;
    pthread_mutex_unlock(&q->mu);
    sched_yield();
    pthread_mutex_lock(&q->mu);
    return 0;
}

/* The put slow path: the ring was full. Returns 0 with *pos claimed, or an
 * error (BRAID_ESUSPEND: a task waiter is linked on putters). */
static int put_wait(braid_queue_t *q, int64_t deadline, uint64_t *pos)
{
    spin_for(q, 0);
    int rc = claim_put(q, pos);
    if (rc != BRAID_EFULL)
        return rc;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        atomic_store(&q->pwait, 1);
        if ((rc = claim_put(q, pos)) != BRAID_EFULL)
            break;
        if (!settled(q, 0, deadline))
            continue;
        rc = braid_waitlist_wait(&q->putters, &q->mu, deadline, NULL);
        braid__queue_flag(&q->pwait, &q->putters);
        if (rc == BRAID_ETIMEOUT) {
            rc = claim_put(q, pos); /* room at the deadline is still ours */
            break;
        }
        if (rc != 0)
            break;
    }
    if (rc == 0 && q->putters.head && braid__ring_size(q) < q->rcap) {
        braid_waitlist_wake_one(&q->putters, 0); /* room for them too */
        braid__queue_flag(&q->pwait, &q->putters);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int braid__ring_put(braid_queue_t *q, braid_buf_t *item, braid_buf_t **big, int64_t deadline)
{
    uint64_t pos;
    int rc = claim_put(q, &pos);
    if (rc == BRAID_EFULL && deadline != BRAID_QUEUE_NOWAIT)
        rc = put_wait(q, deadline, &pos);
    if (rc)
        return rc;
    int wake = atomic_load(&q->gwait); /* after the claim: see the top */
    slot_t *s = slot_at(q, pos);
    /* counted before the item is visible: its task_done may follow at once */
    atomic_fetch_add_explicit(&q->unfinished, 1, memory_order_relaxed);
    int64_t now = 0;
    int arrow = braid_trace_enabled() && braid__queue_arrow(q, &now);
    payload_fill(&s->p, item, big, arrow);
    atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
    if (wake)
        wake_waiter(q, &q->gwait, &q->getters);
    if (arrow)
        braid__queue_traced(q, 1, pos, braid__ring_size(q), now);
    return 0;
}

/* The get slow path: the ring was empty. Returns 0 with *pos claimed, or
 * an error (BRAID_ESUSPEND: a task waiter is linked on getters). */
static int get_wait(braid_queue_t *q, int64_t deadline, uint64_t *pos)
{
    spin_for(q, 1);
    if (claim_get(q, pos) == 0)
        return 0;
    int rc;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        atomic_store(&q->gwait, 1);
        if ((rc = claim_get(q, pos)) == 0)
            break;
        if (shut_and_drained(q)) {
            rc = BRAID_ESHUTDOWN;
            break;
        }
        if (!settled(q, 1, deadline))
            continue;
        rc = braid_waitlist_wait(&q->getters, &q->mu, deadline, NULL);
        braid__queue_flag(&q->gwait, &q->getters);
        if (rc == BRAID_ETIMEOUT) {
            if (claim_get(q, pos) == 0)
                rc = 0; /* an item at the deadline is still ours */
            else
                rc = shut_and_drained(q) ? BRAID_ESHUTDOWN : BRAID_EEMPTY;
            break;
        }
        if (rc != 0)
            break;
    }
    if (rc == 0 && q->getters.head && braid__ring_size(q) > 0) {
        braid_waitlist_wake_one(&q->getters, 0); /* items for them too */
        braid__queue_flag(&q->gwait, &q->getters);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int braid__ring_get(braid_queue_t *q, braid_buf_t *out, braid_buf_t **moved, int64_t deadline)
{
    uint64_t pos;
    int rc = claim_get(q, &pos);
    if (rc) {
        if (deadline != BRAID_QUEUE_NOWAIT)
            rc = get_wait(q, deadline, &pos);
        else if (shut_and_drained(q))
            rc = BRAID_ESHUTDOWN;
        if (rc)
            return rc;
    }
    int wake = atomic_load(&q->pwait); /* after the claim: see the top */
    slot_t *s = slot_at(q, pos);
    int arrow = payload_take(&s->p, out, moved) && braid_trace_enabled();
    int64_t now = arrow ? braid_clock_now() : 0; /* after the item was seen */
    atomic_store_explicit(&s->seq, pos + q->rcap, memory_order_release);
    if (wake)
        wake_waiter(q, &q->pwait, &q->putters);
    if (arrow)
        braid__queue_traced(q, 0, pos, braid__ring_size(q), now);
    else if (braid_trace_enabled() && braid__queue_said_depth(q) &&
             atomic_load_explicit(&slot_at(q, pos + 1)->seq, memory_order_relaxed) != pos + 2)
        braid__queue_emptied(q); /* the next slot holds no item: the queue is empty */
    return 0;
}

size_t braid__ring_shutdown(braid_queue_t *q, int immediate)
{
    uint64_t end = atomic_fetch_or(&q->enq, RING_SHUT) & ~RING_SHUT;
    if (!immediate)
        return 0;
    size_t n = 0;
    for (;;) {
        uint64_t pos;
        if (claim_get(q, &pos) == 0) {
            slot_t *s = slot_at(q, pos);
            payload_free(&s->p);
            atomic_store_explicit(&s->seq, pos + q->rcap, memory_order_release);
            n++;
        } else if (atomic_load(&q->deq) >= end) {
            return n; /* every claimed put has been taken (by us or a get) */
        } else {
            sched_yield(); /* a put that claimed its slot is still writing it */
        }
    }
}
