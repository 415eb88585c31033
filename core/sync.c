/* Lock, RLock, Condition, Semaphore, Event and Barrier. Each keeps one mutex
 * and wait list; Lock and RLock add an atomic fast path in front of them.
 * Lock order: condition mu -> lock mu -> waiter mu. */
#include <stdlib.h>

#include "clock.h"
#include "error.h"
#include "sync.h"
#include "waiter.h"

static _Thread_local uint64_t self_id;
static atomic_uint_fast64_t next_self_id = 1;

uint64_t braid_sync_self(void)
{
    if (!self_id)
        self_id = atomic_fetch_add(&next_self_id, 1);
    return self_id;
}

void braid__sync_forget_self(void)
{
    self_id = 0;
}

static int deadline_passed(int64_t deadline)
{
    return deadline != BRAID_FOREVER && braid_clock_now() >= deadline;
}

/* ---- the lock core shared by Lock and RLock ----
 * state 0/1 is the lock itself. A blocked acquirer counts itself in nwait
 * (under mu) before its last CAS; release stores 0 and then wakes one
 * waiter if nwait > 0. Both are seq_cst, so either the acquirer's CAS sees
 * 0 or the releaser sees the waiter. Woken waiters retry (barging allowed,
 * as in CPython); one that gives up passes its wake-up on. */
typedef struct lockcore {
    atomic_int state;
    atomic_int nwait;
    pthread_mutex_t mu;
    braid_waitlist_t wl;
} lockcore_t;

static int core_init(lockcore_t *c, const braid_object_t *owner)
{
    atomic_init(&c->state, 0);
    atomic_init(&c->nwait, 0);
    braid_waitlist_init(&c->wl, owner, "acquire");
    return pthread_mutex_init(&c->mu, NULL) ? BRAID_EOS : 0;
}

static int core_try(lockcore_t *c)
{
    int z = 0;
    return atomic_compare_exchange_strong(&c->state, &z, 1);
}

static int core_acquire_slow(lockcore_t *c, int64_t deadline)
{
    int rc;
    pthread_mutex_lock(&c->mu);
    atomic_fetch_add(&c->nwait, 1);
    for (;;) {
        if (core_try(c)) {
            rc = 0;
            break;
        }
        rc = braid_waitlist_wait(&c->wl, &c->mu, deadline, NULL);
        if (rc == BRAID_ESUSPEND) { /* a task: nwait counts it until it settles */
            braid_waiter_peek_current()->settle_count = &c->nwait;
            pthread_mutex_unlock(&c->mu);
            return rc;
        }
        if (rc) {
            if (rc == BRAID_ETIMEOUT && core_try(c))
                rc = 0;
            break;
        }
    }
    atomic_fetch_sub(&c->nwait, 1);
    if (rc && atomic_load(&c->state) == 0 && c->wl.head)
        braid_waitlist_wake_one(&c->wl, 0);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int core_acquire(lockcore_t *c, int64_t deadline)
{
    if (core_try(c))
        return 0;
    if (deadline_passed(deadline))
        return BRAID_ETIMEOUT;
    /* a short spin for a lock that is about to be released */
    for (int i = 0; i < 64; i++) {
        if (atomic_load_explicit(&c->state, memory_order_relaxed) == 0 && core_try(c))
            return 0;
    }
    return core_acquire_slow(c, deadline);
}

static int core_release(lockcore_t *c)
{
    if (atomic_exchange(&c->state, 0) == 0)
        return BRAID_ESTATE;
    if (atomic_load(&c->nwait) > 0) {
        pthread_mutex_lock(&c->mu);
        braid_waitlist_wake_one(&c->wl, 0);
        pthread_mutex_unlock(&c->mu);
    }
    return 0;
}

/* Acquires ignoring cancellation (Condition re-acquiring its lock); a
 * cancellation that arrives meanwhile is re-posted afterwards. */
static void core_acquire_uncancellable(lockcore_t *c)
{
    braid_waiter_t *w = braid_waiter_current();
    int taken = 0;
    while (core_acquire(c, BRAID_FOREVER) != 0) {
        if (w && braid_waiter_take_cancel(w))
            taken = 1;
    }
    if (taken)
        braid_waiter_cancel(w);
}

/* ---- Lock ---- */

struct braid_lock {
    braid_object_t obj;
    lockcore_t core;
};

static void lock_destroy(braid_object_t *o)
{
    braid_lock_t *l = (braid_lock_t *)o;
    pthread_mutex_destroy(&l->core.mu);
    free(l);
}

const braid_object_type_t braid_lock_type = {"braid.Lock", "braid.threading", lock_destroy};

int braid_lock_new(braid_lock_t **out)
{
    braid_lock_t *l = malloc(sizeof *l);
    if (!l)
        return BRAID_ENOMEM;
    if (core_init(&l->core, &l->obj)) {
        free(l);
        return BRAID_EOS;
    }
    if (braid_object_init(&l->obj, &braid_lock_type)) {
        pthread_mutex_destroy(&l->core.mu);
        free(l);
        return BRAID_ENOMEM;
    }
    *out = l;
    return 0;
}

int braid_lock_acquire(braid_lock_t *l, int64_t deadline)
{
    return core_acquire(&l->core, deadline);
}

int braid_lock_release(braid_lock_t *l)
{
    return core_release(&l->core);
}

int braid_lock_locked(braid_lock_t *l)
{
    return atomic_load(&l->core.state) != 0;
}

/* ---- RLock ---- */

struct braid_rlock {
    braid_object_t obj;
    lockcore_t core;
    atomic_uint_fast64_t owner; /* written only by the owner */
    long count;                 /* touched only by the owner */
};

static void rlock_destroy(braid_object_t *o)
{
    braid_rlock_t *l = (braid_rlock_t *)o;
    pthread_mutex_destroy(&l->core.mu);
    free(l);
}

const braid_object_type_t braid_rlock_type = {"braid.RLock", "braid.threading", rlock_destroy};

int braid_rlock_new(braid_rlock_t **out)
{
    braid_rlock_t *l = malloc(sizeof *l);
    if (!l)
        return BRAID_ENOMEM;
    if (core_init(&l->core, &l->obj)) {
        free(l);
        return BRAID_EOS;
    }
    atomic_init(&l->owner, 0);
    l->count = 0;
    if (braid_object_init(&l->obj, &braid_rlock_type)) {
        pthread_mutex_destroy(&l->core.mu);
        free(l);
        return BRAID_ENOMEM;
    }
    *out = l;
    return 0;
}

int braid_rlock_acquire(braid_rlock_t *l, int64_t deadline)
{
    uint64_t me = braid_sync_self();
    if (atomic_load_explicit(&l->owner, memory_order_relaxed) == me) {
        l->count++;
        return 0;
    }
    int rc = core_acquire(&l->core, deadline);
    if (rc == 0) {
        atomic_store_explicit(&l->owner, me, memory_order_relaxed);
        l->count = 1;
    }
    return rc;
}

int braid_rlock_release(braid_rlock_t *l)
{
    if (atomic_load_explicit(&l->owner, memory_order_relaxed) != braid_sync_self())
        return BRAID_ENOTOWNER;
    if (--l->count == 0) {
        atomic_store_explicit(&l->owner, 0, memory_order_relaxed);
        core_release(&l->core);
    }
    return 0;
}

int braid_rlock_locked(braid_rlock_t *l)
{
    return atomic_load(&l->core.state) != 0;
}

int braid_rlock_is_owned(braid_rlock_t *l)
{
    return atomic_load_explicit(&l->owner, memory_order_relaxed) == braid_sync_self();
}

long braid_rlock_count(braid_rlock_t *l)
{
    return braid_rlock_is_owned(l) ? l->count : 0;
}

/* ---- Condition ---- */

struct braid_cond {
    braid_object_t obj;
    braid_object_t *lock;
    pthread_mutex_t mu;
    braid_waitlist_t wl;
};

static void cond_destroy(braid_object_t *o)
{
    braid_cond_t *c = (braid_cond_t *)o;
    braid_object_release(c->lock);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

const braid_object_type_t braid_cond_type = {"braid.Condition", "braid.threading", cond_destroy};

int braid_cond_new(braid_cond_t **out, braid_object_t *lock)
{
    if (!lock || (lock->type != &braid_lock_type && lock->type != &braid_rlock_type))
        return BRAID_EINVAL;
    braid_cond_t *c = malloc(sizeof *c);
    if (!c)
        return BRAID_ENOMEM;
    if (pthread_mutex_init(&c->mu, NULL)) {
        free(c);
        return BRAID_EOS;
    }
    braid_waitlist_init(&c->wl, &c->obj, "wait");
    if (braid_object_init(&c->obj, &braid_cond_type)) {
        pthread_mutex_destroy(&c->mu);
        free(c);
        return BRAID_ENOMEM;
    }
    braid_object_retain(lock);
    c->lock = lock;
    *out = c;
    return 0;
}

braid_object_t *braid_cond_lock(braid_cond_t *c)
{
    return c->lock;
}

int braid_cond_is_owned(braid_cond_t *c)
{
    if (c->lock->type == &braid_rlock_type)
        return braid_rlock_is_owned((braid_rlock_t *)c->lock);
    return braid_lock_locked((braid_lock_t *)c->lock);
}

/* Condition wait in halves, so an asyncio task can suspend between them
 * (a thread runs them back to back in braid_cond_wait).
 * release_and_wait: checks ownership, releases the lock (an RLock's count
 * saved in *saved) and waits; the lock stays released whatever it returns
 * except BRAID_ENOTOWNER. wait_again: a task's repeat of the wait after it
 * was resumed. reacquire: takes the lock back (a task waiter may get
 * BRAID_ESUSPEND: call again) and restores the count; a thread ignores
 * cancellation here, which is re-posted afterwards. */
int braid_cond_release_and_wait(braid_cond_t *c, int64_t deadline, long *saved)
{
    *saved = -1; /* nothing released */
    if (!braid_cond_is_owned(c))
        return BRAID_ENOTOWNER;
    braid_waiter_t *w = braid_waiter_current();
    if (!w)
        return BRAID_ENOMEM;
    if (atomic_load(&w->cancelled))
        return BRAID_ECANCELLED;
    *saved = 0;
    /* Take mu before releasing the lock: a notifier needs the lock and
     * then mu, so it cannot notify before we are on the list. */
    pthread_mutex_lock(&c->mu);
    if (c->lock->type == &braid_rlock_type) {
        braid_rlock_t *rl = (braid_rlock_t *)c->lock;
        *saved = rl->count;
        rl->count = 0;
        atomic_store_explicit(&rl->owner, 0, memory_order_relaxed);
        core_release(&rl->core);
    } else {
        core_release(&((braid_lock_t *)c->lock)->core);
    }
    int rc = braid_waitlist_wait(&c->wl, &c->mu, deadline, NULL);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int braid_cond_wait_again(braid_cond_t *c, int64_t deadline)
{
    pthread_mutex_lock(&c->mu);
    int rc = braid_waitlist_wait(&c->wl, &c->mu, deadline, NULL);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int braid_cond_reacquire(braid_cond_t *c, long saved)
{
    int is_r = c->lock->type == &braid_rlock_type;
    lockcore_t *core = is_r ? &((braid_rlock_t *)c->lock)->core : &((braid_lock_t *)c->lock)->core;
    braid_waiter_t *w = braid_waiter_peek_current();
    if (w && w->notify) {
        int rc = core_acquire(core, BRAID_FOREVER);
        if (rc)
            return rc; /* BRAID_ESUSPEND, or BRAID_ECANCELLED: the caller retries */
    } else {
        core_acquire_uncancellable(core);
    }
    if (is_r) {
        braid_rlock_t *rl = (braid_rlock_t *)c->lock;
        atomic_store_explicit(&rl->owner, braid_sync_self(), memory_order_relaxed);
        rl->count = saved;
    }
    return 0;
}

int braid_cond_wait(braid_cond_t *c, int64_t deadline)
{
    long saved;
    int rc = braid_cond_release_and_wait(c, deadline, &saved);
    if (saved < 0)
        return rc; /* nothing was released */
    braid_cond_reacquire(c, saved);
    if (rc == 0)
        return 1;
    if (rc == BRAID_ETIMEOUT)
        return 0;
    return rc;
}

int braid_cond_notify(braid_cond_t *c, long n)
{
    if (!braid_cond_is_owned(c))
        return BRAID_ENOTOWNER;
    int woken = 0;
    pthread_mutex_lock(&c->mu);
    while (n-- > 0 && braid_waitlist_wake_one(&c->wl, 0))
        woken++;
    pthread_mutex_unlock(&c->mu);
    return woken;
}

int braid_cond_notify_all(braid_cond_t *c)
{
    if (!braid_cond_is_owned(c))
        return BRAID_ENOTOWNER;
    pthread_mutex_lock(&c->mu);
    int woken = braid_waitlist_wake_all(&c->wl, 0);
    pthread_mutex_unlock(&c->mu);
    return woken;
}

/* ---- Semaphore: release hands permits straight to the oldest waiters, so
 * value > 0 implies nobody waits and a woken waiter owns its permit. ---- */

struct braid_sem {
    braid_object_t obj;
    pthread_mutex_t mu;
    braid_waitlist_t wl;
    long value, initial;
    int bounded;
};

static void sem_destroy(braid_object_t *o)
{
    braid_sem_t *s = (braid_sem_t *)o;
    pthread_mutex_destroy(&s->mu);
    free(s);
}

const braid_object_type_t braid_sem_type = {"braid.Semaphore", "braid.threading", sem_destroy};

int braid_sem_new(braid_sem_t **out, long value, int bounded)
{
    if (value < 0)
        return BRAID_EINVAL;
    braid_sem_t *s = malloc(sizeof *s);
    if (!s)
        return BRAID_ENOMEM;
    if (pthread_mutex_init(&s->mu, NULL)) {
        free(s);
        return BRAID_EOS;
    }
    braid_waitlist_init(&s->wl, &s->obj, "acquire");
    s->value = s->initial = value;
    s->bounded = bounded;
    if (braid_object_init(&s->obj, &braid_sem_type)) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return BRAID_ENOMEM;
    }
    *out = s;
    return 0;
}

int braid_sem_acquire(braid_sem_t *s, int64_t deadline)
{
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    /* a task repeating its call after a release handed it a permit goes
     * straight to the wait, which reports the hand-off */
    if (braid_waiter_resumed_woken(braid_waiter_peek_current()))
        rc = braid_waitlist_wait(&s->wl, &s->mu, deadline, NULL);
    else if (s->value > 0)
        s->value--;
    else if (deadline_passed(deadline))
        rc = BRAID_ETIMEOUT;
    else
        rc = braid_waitlist_wait(&s->wl, &s->mu, deadline, NULL);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int braid_sem_release(braid_sem_t *s, long n)
{
    if (n < 1)
        return BRAID_EINVAL;
    pthread_mutex_lock(&s->mu);
    if (s->bounded && s->value + n > s->initial) {
        pthread_mutex_unlock(&s->mu);
        return BRAID_EINVAL;
    }
    while (n > 0 && braid_waitlist_wake_one(&s->wl, 0))
        n--;
    s->value += n;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

long braid_sem_value(braid_sem_t *s)
{
    pthread_mutex_lock(&s->mu);
    long v = s->value;
    pthread_mutex_unlock(&s->mu);
    return v;
}

int braid_sem_bounded(braid_sem_t *s)
{
    return s->bounded;
}

/* ---- Event ---- */

struct braid_event {
    braid_object_t obj;
    atomic_int flag;
    pthread_mutex_t mu;
    braid_waitlist_t wl;
};

static void event_destroy(braid_object_t *o)
{
    braid_event_t *e = (braid_event_t *)o;
    pthread_mutex_destroy(&e->mu);
    free(e);
}

const braid_object_type_t braid_event_type = {"braid.Event", "braid.threading", event_destroy};

int braid_event_new(braid_event_t **out)
{
    braid_event_t *e = malloc(sizeof *e);
    if (!e)
        return BRAID_ENOMEM;
    if (pthread_mutex_init(&e->mu, NULL)) {
        free(e);
        return BRAID_EOS;
    }
    atomic_init(&e->flag, 0);
    braid_waitlist_init(&e->wl, &e->obj, "wait");
    if (braid_object_init(&e->obj, &braid_event_type)) {
        pthread_mutex_destroy(&e->mu);
        free(e);
        return BRAID_ENOMEM;
    }
    *out = e;
    return 0;
}

void braid_event_set(braid_event_t *e)
{
    pthread_mutex_lock(&e->mu);
    atomic_store(&e->flag, 1);
    braid_waitlist_wake_all(&e->wl, 1);
    pthread_mutex_unlock(&e->mu);
}

void braid_event_clear(braid_event_t *e)
{
    pthread_mutex_lock(&e->mu);
    atomic_store(&e->flag, 0);
    pthread_mutex_unlock(&e->mu);
}

int braid_event_is_set(braid_event_t *e)
{
    return atomic_load(&e->flag);
}

int braid_event_wait(braid_event_t *e, int64_t deadline)
{
    if (atomic_load(&e->flag))
        return 1;
    pthread_mutex_lock(&e->mu);
    int rc = 1;
    if (!atomic_load(&e->flag)) {
        if (deadline_passed(deadline) && !braid_waiter_resumed_woken(braid_waiter_peek_current())) {
            rc = 0;
        } else {
            rc = braid_waitlist_wait(&e->wl, &e->mu, deadline, NULL);
            if (rc == 0)
                rc = 1; /* woken by set(), even if cleared since */
            else if (rc == BRAID_ETIMEOUT)
                rc = atomic_load(&e->flag);
        }
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* ---- Barrier: arrivals count up under mu; the last one runs the action
 * and finish() wakes the cycle's waiters with PASS, or everyone is woken
 * with BROKEN. Each cycle has its own generation number. ---- */

enum { B_FILLING, B_ACTION, B_BROKEN };
enum { TOK_PASS = 1, TOK_BROKEN = 2 };

struct braid_barrier {
    braid_object_t obj;
    pthread_mutex_t mu;
    braid_waitlist_t wl;    /* parties waiting for the cycle to complete */
    braid_waitlist_t enter; /* extra arrivals during the action phase */
    long parties, count;
    int state;
    uint64_t gen;
    uint64_t action_by; /* braid_sync_self() of the action runner */
    braid_buf_t action;
    double timeout;
};

static void barrier_destroy(braid_object_t *o)
{
    braid_barrier_t *b = (braid_barrier_t *)o;
    pthread_mutex_destroy(&b->mu);
    braid_buf_free(&b->action);
    free(b);
}

const braid_object_type_t braid_barrier_type = {
    "braid.Barrier", "braid.threading", barrier_destroy};

int braid_barrier_new(braid_barrier_t **out, long parties)
{
    if (parties < 1)
        return BRAID_EINVAL;
    braid_barrier_t *b = malloc(sizeof *b);
    if (!b)
        return BRAID_ENOMEM;
    if (pthread_mutex_init(&b->mu, NULL)) {
        free(b);
        return BRAID_EOS;
    }
    braid_waitlist_init(&b->wl, &b->obj, "wait");
    braid_waitlist_init(&b->enter, &b->obj, "wait");
    b->parties = parties;
    b->count = 0;
    b->state = B_FILLING;
    b->gen = 0;
    b->action_by = 0;
    braid_buf_init(&b->action);
    b->timeout = -1;
    if (braid_object_init(&b->obj, &braid_barrier_type)) {
        pthread_mutex_destroy(&b->mu);
        free(b);
        return BRAID_ENOMEM;
    }
    *out = b;
    return 0;
}

/* mu held */
static void barrier_break(braid_barrier_t *b)
{
    b->state = B_BROKEN;
    b->count = 0;
    b->gen++;
    braid_waitlist_wake_all(&b->wl, TOK_BROKEN);
    braid_waitlist_wake_all(&b->enter, 0);
}

int braid_barrier_wait(braid_barrier_t *b, int64_t deadline, long *index)
{
    int rc = 0;
    pthread_mutex_lock(&b->mu);
    while (b->state == B_ACTION) {
        rc = braid_waitlist_wait(&b->enter, &b->mu, deadline, NULL);
        if (rc)
            goto fail;
    }
    if (b->state == B_BROKEN) {
        rc = BRAID_EBROKEN;
        goto out;
    }
    long idx = b->count++;
    *index = idx;
    if (idx == b->parties - 1) {
        b->state = B_ACTION;
        b->action_by = braid_sync_self();
        goto out;
    }
    intptr_t tok = 0;
    rc = braid_waitlist_wait(&b->wl, &b->mu, deadline, &tok);
    if (rc == 0) {
        rc = tok == TOK_PASS ? 0 : BRAID_EBROKEN;
        goto out;
    }
fail:
    /* timed out or cancelled while waiting: that breaks the barrier */
    barrier_break(b);
    if (rc == BRAID_ETIMEOUT)
        rc = BRAID_EBROKEN;
out:
    pthread_mutex_unlock(&b->mu);
    return rc;
}

int braid_barrier_finish(braid_barrier_t *b, int ok)
{
    int rc = 0;
    pthread_mutex_lock(&b->mu);
    if (b->state != B_ACTION || b->action_by != braid_sync_self()) {
        rc = BRAID_EBROKEN;
    } else if (ok) {
        b->state = B_FILLING;
        b->count = 0;
        b->gen++;
        braid_waitlist_wake_all(&b->wl, TOK_PASS);
        braid_waitlist_wake_all(&b->enter, 0);
    } else {
        barrier_break(b);
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

void braid_barrier_abort(braid_barrier_t *b)
{
    pthread_mutex_lock(&b->mu);
    barrier_break(b);
    pthread_mutex_unlock(&b->mu);
}

void braid_barrier_reset(braid_barrier_t *b)
{
    pthread_mutex_lock(&b->mu);
    braid_waitlist_wake_all(&b->wl, TOK_BROKEN);
    b->state = B_FILLING;
    b->count = 0;
    b->gen++;
    braid_waitlist_wake_all(&b->enter, 0);
    pthread_mutex_unlock(&b->mu);
}

void braid_barrier_set_extra(braid_barrier_t *b, braid_buf_t *action, double timeout)
{
    if (action) {
        braid_buf_free(&b->action);
        braid_buf_move(&b->action, action);
    }
    b->timeout = timeout;
}

const braid_buf_t *braid_barrier_action(braid_barrier_t *b)
{
    return &b->action;
}

double braid_barrier_timeout(braid_barrier_t *b)
{
    return b->timeout;
}

long braid_barrier_parties(braid_barrier_t *b)
{
    return b->parties;
}

long braid_barrier_n_waiting(braid_barrier_t *b)
{
    pthread_mutex_lock(&b->mu);
    long n = b->state == B_FILLING ? b->count : 0;
    pthread_mutex_unlock(&b->mu);
    return n;
}

int braid_barrier_broken(braid_barrier_t *b)
{
    pthread_mutex_lock(&b->mu);
    int r = b->state == B_BROKEN;
    pthread_mutex_unlock(&b->mu);
    return r;
}
