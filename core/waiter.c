/* Waiters park OS threads with a short adaptive spin, then a condvar with a
 * monotonic deadline. Lock order: primitive lock -> waiter mu. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "dump.h"
#include "error.h"
#include "trace.h"
#include "waiter.h"

/* How often a parked interruptible waiter looks at the interrupt flag. */
#define INTERRUPT_POLL_NS 50000000

static atomic_int interrupt_pending; /* lock-free: set from signal handlers */

void braid_waiter_interrupt(void)
{
    atomic_store(&interrupt_pending, 1);
}

int braid_waiter_take_interrupt(void)
{
    return atomic_exchange(&interrupt_pending, 0);
}

/* The spin policy. Cross-core wake-ups through the kernel cost tens of
 * microseconds; a hand-off seen while spinning costs far less, but a spin
 * burns a core that another runnable thread may need.
 * - Normally a waiter spins for SPIN_MAX_NS on a relaxed load, calling
 *   sched_yield every SPIN_CHECK rounds: that hands the core to a thread of
 *   ours that a wake-up put on this core (or to one of our many threads
 *   when there are more than cores), and costs nothing on a quiet machine.
 * - On a busy machine a sched_yield gives the core to another process for
 *   its whole time slice and the hand-off goes unseen for milliseconds. A
 *   yield that took YIELD_BAD_NS or more while no more of our threads were
 *   running than there are cores (so someone else's thread ran) turns
 *   yielding off in the whole process for YIELD_OFF_NS.
 * - With yields off a waiter spins without yielding, for a window of its
 *   own between SPIN_MIN_NS and SPIN_MAX_NS: a spin that ran out halves it,
 *   one that saw the signal late in the window doubles it, and every
 *   SPIN_PROBE-th wait at the minimum tries the full window again. It does
 *   not spin at all while more of our threads are running (not parked)
 *   than there are cores, and it parks at once when it finds it was
 *   descheduled (a gap of YIELD_BAD_NS between two looks at the clock): a
 *   parked thread gets the scheduler's wake-up preference, a spinning one
 *   waits for its next turn. */
#define SPIN_MIN_NS 1000
#define SPIN_MAX_NS 20000
#define SPIN_PROBE 16
#define SPIN_CHECK 64
#define YIELD_BAD_NS 50000
#define YIELD_OFF_NS 100000000

static atomic_llong yield_off_until; /* monotonic ns */
/* Threads with a current waiter that are not parked in the condvar. */
static atomic_int running;
static int ncpu; /* online cores, set once */
static pthread_once_t ncpu_once = PTHREAD_ONCE_INIT;
static _Thread_local int counted; /* this thread is in `running` */
static _Thread_local int spin_ns = SPIN_MAX_NS;
static _Thread_local unsigned spin_probe;

static void read_ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    ncpu = n > 0 && n < 1 << 20 ? (int)n : 1;
}

static void count_thread(int on)
{
    if (on == counted)
        return;
    counted = on;
    atomic_fetch_add_explicit(&running, on ? 1 : -1, memory_order_relaxed);
}

int braid_waiter_init(braid_waiter_t *w)
{
    pthread_condattr_t ca;
    if (pthread_mutex_init(&w->mu, NULL) != 0)
        return BRAID_EOS;
    if (pthread_condattr_init(&ca) != 0 || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&w->cv, &ca) != 0) {
        pthread_mutex_destroy(&w->mu);
        return BRAID_EOS;
    }
    pthread_condattr_destroy(&ca);
    atomic_init(&w->signaled, 0);
    atomic_init(&w->cancelled, 0);
    w->notify = NULL;
    w->data = NULL;
    w->next = w->prev = NULL;
    w->linked = 0;
    w->token = 0;
    w->interruptible = 0;
    w->async_state = BRAID_WAIT_IDLE;
    w->woken = 0;
    w->list = NULL;
    w->list_mu = NULL;
    w->deadline = 0;
    w->settle_count = NULL;
    atomic_init(&w->blocked_on, NULL);
    atomic_init(&w->blocked_op, NULL);
    atomic_init(&w->blocked_since, 0);
    atomic_init(&w->blocked_deadline, 0);
    w->record_seq = 0;
    return 0;
}

void braid_waiter_destroy(braid_waiter_t *w)
{
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

static _Thread_local braid_waiter_t *current;
static pthread_key_t owned_key;
static pthread_once_t owned_once = PTHREAD_ONCE_INIT;

static void free_owned(void *p)
{
    if (current == p) {
        current = NULL;
        count_thread(0);
    }
    braid_waiter_destroy(p);
    free(p);
}

static void make_key(void)
{
    pthread_key_create(&owned_key, free_owned);
}

braid_waiter_t *braid_waiter_current(void)
{
    if (current)
        return current;
    pthread_once(&owned_once, make_key);
    /* the thread's own waiter, made once (set_current(NULL) returns here) */
    braid_waiter_t *w = pthread_getspecific(owned_key);
    if (!w) {
        w = malloc(sizeof *w);
        if (!w || braid_waiter_init(w) != 0) {
            free(w);
            return NULL;
        }
        pthread_setspecific(owned_key, w);
    }
    current = w;
    count_thread(1);
    return w;
}

void braid_waiter_set_current(braid_waiter_t *w)
{
    current = w;
    count_thread(w != NULL);
}

braid_waiter_t *braid_waiter_swap_current(braid_waiter_t *w)
{
    braid_waiter_t *prev = current;
    current = w;
    return prev;
}

braid_waiter_t *braid_waiter_peek_current(void)
{
    return current;
}

int braid_waiter_may_spin(void)
{
    pthread_once(&ncpu_once, read_ncpu);
    return ncpu > 1 && atomic_load_explicit(&running, memory_order_relaxed) <= ncpu;
}

void braid_waiter_prepare(braid_waiter_t *w)
{
    atomic_store_explicit(&w->signaled, 0, memory_order_relaxed);
}

static int park_blocking(braid_waiter_t *w, int64_t deadline);

int braid_waiter_park(braid_waiter_t *w, int64_t deadline)
{
    if (atomic_load(&w->cancelled))
        return BRAID_ECANCELLED;
    if (w->interruptible && atomic_load(&interrupt_pending))
        return BRAID_EINTR;
    if (atomic_load_explicit(&w->signaled, memory_order_acquire))
        return 0;
    if (deadline != BRAID_FOREVER && braid_clock_now() >= deadline)
        return BRAID_ETIMEOUT;
    pthread_once(&ncpu_once, read_ncpu);
    int64_t start = braid_clock_now(), now = start;
    if (atomic_load_explicit(&w->blocked_since, memory_order_relaxed) < 0) /* record's start */
        atomic_store_explicit(&w->blocked_since, start, memory_order_release);
    int may_yield = start >= atomic_load_explicit(&yield_off_until, memory_order_relaxed);
    int window = SPIN_MAX_NS;
    if (!may_yield) {
        window = spin_ns;
        if (window == SPIN_MIN_NS && ++spin_probe % SPIN_PROBE == 0)
            window = SPIN_MAX_NS;
        if (atomic_load_explicit(&running, memory_order_relaxed) > ncpu)
            window = 0;
    }
    int64_t spin_end = start + window;
    for (unsigned i = 1; window; i++) {
        if (atomic_load_explicit(&w->signaled, memory_order_acquire)) {
            if (!may_yield && 2 * (now - start) >= spin_ns)
                spin_ns = spin_ns * 2 < SPIN_MAX_NS ? spin_ns * 2 : SPIN_MAX_NS;
            return 0;
        }
        if (i % SPIN_CHECK != 0)
            continue;
        int64_t t = braid_clock_now();
        if (t - now >= YIELD_BAD_NS) { /* descheduled, or a yield ran long */
            if (!may_yield)
                break;
            if (atomic_load_explicit(&running, memory_order_relaxed) <= ncpu) {
                atomic_store_explicit(&yield_off_until, t + YIELD_OFF_NS, memory_order_relaxed);
                break;
            }
        }
        now = t;
        if (now >= spin_end || now >= deadline) {
            if (!may_yield)
                spin_ns = spin_ns / 2 > SPIN_MIN_NS ? spin_ns / 2 : SPIN_MIN_NS;
            break;
        }
        if (may_yield)
            sched_yield();
    }
    return park_blocking(w, deadline);
}

/* The condvar half of park. */
static int park_blocking(braid_waiter_t *w, int64_t deadline)
{
    int rc = 0;
    int c = counted;
    if (c)
        atomic_fetch_sub_explicit(&running, 1, memory_order_relaxed);
    pthread_mutex_lock(&w->mu);
    while (!atomic_load(&w->signaled)) {
        if (atomic_load(&w->cancelled)) {
            rc = BRAID_ECANCELLED;
            break;
        }
        if (w->interruptible && atomic_load(&interrupt_pending)) {
            rc = BRAID_EINTR;
            break;
        }
        if (braid__dump_wanted(w)) { /* report for a live dump, then park again */
            pthread_mutex_unlock(&w->mu);
            braid__dump_serve_parked();
            pthread_mutex_lock(&w->mu);
            continue;
        }
        int64_t until = deadline;
        if (w->interruptible) {
            int64_t poll = braid_clock_now() + INTERRUPT_POLL_NS;
            until = poll < deadline ? poll : deadline;
        }
        if (until == BRAID_FOREVER) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT &&
            !atomic_load(&w->signaled) && until == deadline) {
            rc = BRAID_ETIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&w->mu);
    if (c)
        atomic_fetch_add_explicit(&running, 1, memory_order_relaxed);
    return rc;
}

void braid_waiter_wake(braid_waiter_t *w)
{
    if (w->notify) {
        atomic_store_explicit(&w->signaled, 1, memory_order_release);
        w->notify(w);
        return;
    }
    pthread_mutex_lock(&w->mu);
    atomic_store_explicit(&w->signaled, 1, memory_order_release);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void braid_waiter_cancel(braid_waiter_t *w)
{
    if (w->notify) {
        atomic_store(&w->cancelled, 1);
        w->notify(w);
        return;
    }
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->cancelled, 1);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int braid_waiter_take_cancel(braid_waiter_t *w)
{
    return atomic_exchange(&w->cancelled, 0);
}

/* ---- wait records ---- */

void braid_waiter_begin(braid_waiter_t *w, const braid_object_t *on, const char *op,
                        int64_t deadline)
{
    /* since first (readers use it as the record's version), op last. A
     * thread's wait reads no clock here: since is a fresh negative number
     * until park takes the time it reads anyway (a wait that ends before
     * that blocked for no time); a task never parks, so its wait is timed
     * now. */
    int64_t since = w->notify ? braid_clock_now() : -(int64_t)(++w->record_seq);
    atomic_store_explicit(&w->blocked_since, since, memory_order_relaxed);
    atomic_store_explicit(&w->blocked_on, on, memory_order_relaxed);
    atomic_store_explicit(&w->blocked_deadline, deadline, memory_order_relaxed);
    atomic_store_explicit(&w->blocked_op, op ? op : "wait", memory_order_release);
}

void braid_waiter_end(braid_waiter_t *w, int rc)
{
    if (braid_trace_enabled() && !w->notify) { /* a task's wait is no slice of its thread */
        int64_t since = atomic_load_explicit(&w->blocked_since, memory_order_relaxed);
        braid_trace_wait(atomic_load_explicit(&w->blocked_on, memory_order_relaxed),
                         atomic_load_explicit(&w->blocked_op, memory_order_relaxed),
                         since < 0 ? braid_clock_now() : since,
                         atomic_load_explicit(&w->blocked_deadline, memory_order_relaxed),
                         rc);
    }
    atomic_store_explicit(&w->blocked_op, NULL, memory_order_release);
}

int braid_waiter_record(const braid_waiter_t *w, braid_wait_record_t *out)
{
    braid_waiter_t *m = (braid_waiter_t *)w;
    int64_t since = 0;
    for (int i = 0; i < 8; i++) {
        since = atomic_load_explicit(&m->blocked_since, memory_order_acquire);
        out->op = atomic_load_explicit(&m->blocked_op, memory_order_acquire);
        out->on = atomic_load_explicit(&m->blocked_on, memory_order_relaxed);
        out->deadline = atomic_load_explicit(&m->blocked_deadline, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&m->blocked_since, memory_order_relaxed) == since)
            break;
    }
    /* not parked yet (still between the list and the park): since now */
    out->since = since < 0 ? braid_clock_now() : since;
    if (!out->op)
        out->on = NULL;
    return out->op != NULL;
}

void braid_waitlist_push(braid_waitlist_t *l, braid_waiter_t *w)
{
    w->next = NULL;
    w->prev = l->tail;
    if (l->tail)
        l->tail->next = w;
    else
        l->head = w;
    l->tail = w;
    w->linked = 1;
}

void braid_waitlist_remove(braid_waitlist_t *l, braid_waiter_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        l->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        l->tail = w->prev;
    w->next = w->prev = NULL;
    w->linked = 0;
}

braid_waiter_t *braid_waitlist_pop(braid_waitlist_t *l)
{
    braid_waiter_t *w = l->head;
    if (w)
        braid_waitlist_remove(l, w);
    return w;
}

void braid_waiter_settle(braid_waiter_t *w)
{
    if (w->async_state != BRAID_WAIT_PENDING)
        return;
    pthread_mutex_lock(w->list_mu);
    w->woken = !w->linked;
    if (w->linked)
        braid_waitlist_remove(w->list, w);
    pthread_mutex_unlock(w->list_mu);
    if (w->settle_count) {
        atomic_fetch_sub(w->settle_count, 1);
        w->settle_count = NULL;
    }
    w->async_state = BRAID_WAIT_RESUMED;
}

/* braid_waitlist_wait for a task waiter: never parks. */
static int wait_async(braid_waitlist_t *l, pthread_mutex_t *mu, int64_t deadline,
                      intptr_t *token_io, braid_waiter_t *w)
{
    if (w->async_state == BRAID_WAIT_RESUMED) {
        w->async_state = BRAID_WAIT_IDLE;
        if (w->woken) {
            if (token_io)
                *token_io = w->token;
            braid_waiter_end(w, 0);
            return 0;
        }
        if (atomic_load(&w->cancelled)) {
            braid_waiter_end(w, BRAID_ECANCELLED);
            return BRAID_ECANCELLED;
        }
        if (deadline != BRAID_FOREVER && braid_clock_now() >= deadline) {
            braid_waiter_end(w, BRAID_ETIMEOUT);
            return BRAID_ETIMEOUT;
        }
    } else if (atomic_load(&w->cancelled)) {
        return BRAID_ECANCELLED;
    }
    braid_waiter_prepare(w);
    w->token = token_io ? *token_io : 0;
    braid_waitlist_push(l, w);
    if (!atomic_load_explicit(&w->blocked_op, memory_order_relaxed))
        braid_waiter_begin(w, l->owner, l->op, deadline);
    w->list = l;
    w->list_mu = mu;
    w->deadline = deadline;
    w->async_state = BRAID_WAIT_PENDING;
    return BRAID_ESUSPEND;
}

int braid_waitlist_wait(braid_waitlist_t *l, pthread_mutex_t *mu, int64_t deadline,
                        intptr_t *token_io)
{
    braid_waiter_t *w = braid_waiter_current();
    if (!w)
        return BRAID_ENOMEM;
    if (w->notify)
        return wait_async(l, mu, deadline, token_io, w);
    if (atomic_load(&w->cancelled))
        return BRAID_ECANCELLED;
    braid_waiter_prepare(w);
    w->token = token_io ? *token_io : 0;
    braid_waitlist_push(l, w);
    braid_waiter_begin(w, l->owner, l->op, deadline);
    pthread_mutex_unlock(mu);
    int rc = braid_waiter_park(w, deadline);
    pthread_mutex_lock(mu);
    if (w->linked)
        braid_waitlist_remove(l, w);
    else
        rc = 0; /* a waker got to us first: we own what it handed over */
    braid_waiter_end(w, rc);
    if (token_io)
        *token_io = w->token;
    return rc;
}

int braid_waitlist_wake_one(braid_waitlist_t *l, intptr_t token)
{
    braid_waiter_t *w = braid_waitlist_pop(l);
    if (!w)
        return 0;
    w->token = token;
    braid_waiter_wake(w);
    return 1;
}

int braid_waitlist_wake_all(braid_waitlist_t *l, intptr_t token)
{
    int n = 0;
    while (braid_waitlist_wake_one(l, token))
        n++;
    return n;
}
