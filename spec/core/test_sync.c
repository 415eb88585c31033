/* Core tests for core/sync: Lock, RLock, Condition, Semaphore, Event and
 * Barrier semantics, timeouts, cancellation and many-thread races. */
#include <pthread.h>
#include <stdlib.h>

#include "check.h"
#include "clock.h"
#include "error.h"
#include "sync.h"
#include "waiter.h"

#define MS 1000000LL
#define NT 8

static int64_t in_ms(long ms)
{
    return braid_clock_now() + ms * MS;
}

static void spawn(pthread_t *ts, int n, void *(*fn)(void *), void *arg)
{
    for (int i = 0; i < n; i++)
        pthread_create(&ts[i], NULL, fn, arg);
}

static void joinall(pthread_t *ts, int n)
{
    for (int i = 0; i < n; i++)
        pthread_join(ts[i], NULL);
}

/* ---- Lock ---- */

static void test_lock_basic(void)
{
    braid_lock_t *l;
    CHECK(braid_lock_new(&l) == 0);
    CHECK(!braid_lock_locked(l));
    CHECK(braid_lock_release(l) == BRAID_ESTATE);
    CHECK(braid_lock_acquire(l, BRAID_FOREVER) == 0);
    CHECK(braid_lock_locked(l));
    CHECK(braid_lock_acquire(l, braid_clock_now()) == BRAID_ETIMEOUT);
    int64_t t0 = braid_clock_now();
    CHECK(braid_lock_acquire(l, in_ms(50)) == BRAID_ETIMEOUT);
    CHECK(braid_clock_now() - t0 >= 45 * MS);
    CHECK(braid_lock_release(l) == 0);
    CHECK(braid_lock_acquire(l, braid_clock_now()) == 0);
    CHECK(braid_lock_release(l) == 0);
    braid_object_release((braid_object_t *)l);
}

static struct {
    braid_lock_t *lock;
    braid_rlock_t *rlock;
    long counter;
} race;

static void *lock_racer(void *p)
{
    (void)p;
    for (int i = 0; i < 20000; i++) {
        braid_lock_acquire(race.lock, BRAID_FOREVER);
        race.counter++;
        braid_lock_release(race.lock);
    }
    return NULL;
}

static void *timed_racer(void *p)
{
    (void)p;
    for (int i = 0; i < 2000; i++) {
        if (braid_lock_acquire(race.lock, braid_clock_now() + 1000) == 0) {
            race.counter++;
            braid_lock_release(race.lock);
        } else {
            braid_lock_acquire(race.lock, BRAID_FOREVER);
            race.counter++;
            braid_lock_release(race.lock);
        }
    }
    return NULL;
}

static void test_lock_race(void)
{
    pthread_t ts[NT];
    CHECK(braid_lock_new(&race.lock) == 0);
    race.counter = 0;
    spawn(ts, NT, lock_racer, NULL);
    joinall(ts, NT);
    CHECK(race.counter == NT * 20000L);
    race.counter = 0;
    spawn(ts, NT, timed_racer, NULL);
    joinall(ts, NT);
    CHECK(race.counter == NT * 2000L);
    CHECK(!braid_lock_locked(race.lock));
    braid_object_release((braid_object_t *)race.lock);
}

/* a thread blocked in some call, cancelled through its waiter */
typedef struct blocked {
    braid_waiter_t *_Atomic w;
    int (*call)(void *);
    void *arg;
    int rc;
} blocked_t;

static void *blocked_main(void *p)
{
    blocked_t *b = p;
    atomic_store(&b->w, braid_waiter_current());
    b->rc = b->call(b->arg);
    braid_waiter_take_cancel(braid_waiter_current());
    return NULL;
}

static int cancel_blocked(int (*call)(void *), void *arg)
{
    blocked_t b = {.call = call, .arg = arg, .rc = 12345};
    pthread_t t;
    pthread_create(&t, NULL, blocked_main, &b);
    while (!atomic_load(&b.w))
        braid_clock_sleep_until(in_ms(1));
    braid_clock_sleep_until(in_ms(20)); /* let it park; correctness does not depend on it */
    braid_waiter_cancel(atomic_load(&b.w));
    pthread_join(t, NULL);
    return b.rc;
}

static int call_lock_acquire(void *l)
{
    return braid_lock_acquire(l, BRAID_FOREVER);
}

static void test_lock_cancel(void)
{
    braid_lock_t *l;
    braid_lock_new(&l);
    braid_lock_acquire(l, BRAID_FOREVER);
    CHECK(cancel_blocked(call_lock_acquire, l) == BRAID_ECANCELLED);
    CHECK(braid_lock_release(l) == 0);
    CHECK(!braid_lock_locked(l));
    braid_object_release((braid_object_t *)l);
}

/* ---- RLock ---- */

static void *rlock_racer(void *p)
{
    (void)p;
    for (int i = 0; i < 10000; i++) {
        braid_rlock_acquire(race.rlock, BRAID_FOREVER);
        braid_rlock_acquire(race.rlock, BRAID_FOREVER);
        race.counter++;
        braid_rlock_release(race.rlock);
        braid_rlock_release(race.rlock);
    }
    return NULL;
}

static int other_rlock_release(void *l)
{
    return braid_rlock_release(l);
}

static void *other_call(void *p)
{
    blocked_t *b = p;
    b->rc = b->call(b->arg);
    return NULL;
}

static int in_other_thread(int (*call)(void *), void *arg)
{
    blocked_t b = {.call = call, .arg = arg};
    pthread_t t;
    pthread_create(&t, NULL, other_call, &b);
    pthread_join(t, NULL);
    return b.rc;
}

static int other_rlock_try(void *l)
{
    return braid_rlock_acquire(l, braid_clock_now());
}

static int other_rlock_count(void *l)
{
    return (int)braid_rlock_count(l) + 10 * braid_rlock_locked(l);
}

static void test_rlock(void)
{
    braid_rlock_t *l;
    CHECK(braid_rlock_new(&l) == 0);
    CHECK(braid_rlock_release(l) == BRAID_ENOTOWNER);
    CHECK(braid_rlock_count(l) == 0);
    braid_rlock_acquire(l, BRAID_FOREVER);
    braid_rlock_acquire(l, BRAID_FOREVER);
    braid_rlock_acquire(l, BRAID_FOREVER);
    CHECK(braid_rlock_count(l) == 3);
    CHECK(braid_rlock_is_owned(l));
    CHECK(in_other_thread(other_rlock_release, l) == BRAID_ENOTOWNER);
    CHECK(in_other_thread(other_rlock_try, l) == BRAID_ETIMEOUT);
    CHECK(in_other_thread(other_rlock_count, l) == 10);
    braid_rlock_release(l);
    CHECK(braid_rlock_count(l) == 2);
    braid_rlock_release(l);
    braid_rlock_release(l);
    CHECK(!braid_rlock_locked(l));
    CHECK(braid_rlock_release(l) == BRAID_ENOTOWNER);

    race.rlock = l;
    race.counter = 0;
    pthread_t ts[NT];
    spawn(ts, NT, rlock_racer, NULL);
    joinall(ts, NT);
    CHECK(race.counter == NT * 10000L);
    braid_object_release((braid_object_t *)l);
}

/* ---- Condition ---- */

static struct {
    braid_cond_t *c;
    braid_lock_t *lock;
    int ready, woken, items;
    braid_event_t *go;
} cv;

static void *cond_waiter(void *p)
{
    (void)p;
    braid_lock_acquire(cv.lock, BRAID_FOREVER);
    cv.ready++;
    int r = braid_cond_wait(cv.c, BRAID_FOREVER);
    if (r == 1)
        cv.woken++;
    braid_lock_release(cv.lock);
    return NULL;
}

static int waiting_count(void)
{
    braid_lock_acquire(cv.lock, BRAID_FOREVER);
    int r = cv.ready;
    braid_lock_release(cv.lock);
    return r;
}

static void test_cond_notify(void)
{
    braid_lock_new(&cv.lock);
    CHECK(braid_cond_new(&cv.c, (braid_object_t *)cv.lock) == 0);
    braid_cond_t *bad;
    CHECK(braid_cond_new(&bad, NULL) == BRAID_EINVAL);
    CHECK(braid_cond_wait(cv.c, BRAID_FOREVER) == BRAID_ENOTOWNER);
    CHECK(braid_cond_notify(cv.c, 1) == BRAID_ENOTOWNER);
    cv.ready = cv.woken = 0;
    pthread_t ts[5];
    spawn(ts, 5, cond_waiter, NULL);
    while (waiting_count() < 5)
        braid_clock_sleep_until(in_ms(1));
    /* every waiter is on the list once ready==5 and the lock is free */
    braid_lock_acquire(cv.lock, BRAID_FOREVER);
    CHECK(braid_cond_notify(cv.c, 3) == 3);
    CHECK(cv.woken == 0); /* they need the lock back first */
    braid_lock_release(cv.lock);
    for (;;) {
        braid_lock_acquire(cv.lock, BRAID_FOREVER);
        int w = cv.woken;
        braid_lock_release(cv.lock);
        if (w == 3)
            break;
        braid_clock_sleep_until(in_ms(1));
    }
    braid_lock_acquire(cv.lock, BRAID_FOREVER);
    CHECK(braid_cond_notify_all(cv.c) == 2);
    braid_lock_release(cv.lock);
    joinall(ts, 5);
    CHECK(cv.woken == 5);
    /* timeout: lock re-held */
    braid_lock_acquire(cv.lock, BRAID_FOREVER);
    int64_t t0 = braid_clock_now();
    CHECK(braid_cond_wait(cv.c, in_ms(50)) == 0);
    CHECK(braid_clock_now() - t0 >= 45 * MS);
    CHECK(braid_lock_locked(cv.lock));
    CHECK(braid_cond_notify(cv.c, 1) == 0);
    braid_lock_release(cv.lock);
    braid_object_release((braid_object_t *)cv.c);
    braid_object_release((braid_object_t *)cv.lock);
}

static int call_cond_wait_rlock(void *p)
{
    braid_cond_t *c = p;
    braid_rlock_t *l = (braid_rlock_t *)braid_cond_lock(c);
    braid_rlock_acquire(l, BRAID_FOREVER);
    braid_rlock_acquire(l, BRAID_FOREVER);
    int rc = braid_cond_wait(c, BRAID_FOREVER);
    /* lock re-held with its recursion count */
    int ok = braid_rlock_count(l) == 2;
    braid_rlock_release(l);
    braid_rlock_release(l);
    return ok ? rc : -999;
}

static void test_cond_rlock_cancel(void)
{
    braid_rlock_t *l;
    braid_cond_t *c;
    braid_rlock_new(&l);
    braid_cond_new(&c, (braid_object_t *)l);
    CHECK(cancel_blocked(call_cond_wait_rlock, c) == BRAID_ECANCELLED);
    CHECK(!braid_rlock_locked(l));
    braid_object_release((braid_object_t *)c);
    braid_object_release((braid_object_t *)l);
}

/* producer/consumer through a condition, many rounds */
static void *consumer(void *p)
{
    long *got = p;
    for (;;) {
        braid_lock_acquire(cv.lock, BRAID_FOREVER);
        while (cv.items == 0 && cv.ready == 0)
            braid_cond_wait(cv.c, BRAID_FOREVER);
        if (cv.items == 0) {
            braid_lock_release(cv.lock);
            return NULL;
        }
        cv.items--;
        (*got)++;
        braid_lock_release(cv.lock);
    }
}

static void test_cond_prodcons(void)
{
    braid_lock_new(&cv.lock);
    braid_cond_new(&cv.c, (braid_object_t *)cv.lock);
    cv.items = 0;
    cv.ready = 0; /* used as "done" */
    long got[4] = {0};
    pthread_t ts[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&ts[i], NULL, consumer, &got[i]);
    for (int i = 0; i < 20000; i++) {
        braid_lock_acquire(cv.lock, BRAID_FOREVER);
        cv.items++;
        braid_cond_notify(cv.c, 1);
        braid_lock_release(cv.lock);
    }
    braid_lock_acquire(cv.lock, BRAID_FOREVER);
    cv.ready = 1;
    braid_cond_notify_all(cv.c);
    braid_lock_release(cv.lock);
    joinall(ts, 4);
    CHECK(got[0] + got[1] + got[2] + got[3] == 20000);
    braid_object_release((braid_object_t *)cv.c);
    braid_object_release((braid_object_t *)cv.lock);
}

/* ---- Semaphore ---- */

static struct {
    braid_sem_t *s;
    atomic_int inside, max_inside, passed;
} sm;

static void *sem_user(void *p)
{
    (void)p;
    for (int i = 0; i < 2000; i++) {
        braid_sem_acquire(sm.s, BRAID_FOREVER);
        int n = atomic_fetch_add(&sm.inside, 1) + 1;
        int m = atomic_load(&sm.max_inside);
        while (n > m && !atomic_compare_exchange_weak(&sm.max_inside, &m, n))
            ;
        atomic_fetch_sub(&sm.inside, 1);
        braid_sem_release(sm.s, 1);
    }
    return NULL;
}

static void *sem_taker(void *p)
{
    (void)p;
    for (int i = 0; i < 2; i++) {
        if (braid_sem_acquire(sm.s, BRAID_FOREVER) != 0)
            return NULL;
        atomic_fetch_add(&sm.passed, 1);
    }
    return NULL;
}

static int call_sem_acquire(void *s)
{
    return braid_sem_acquire(s, BRAID_FOREVER);
}

static void test_semaphore(void)
{
    braid_sem_t *s;
    CHECK(braid_sem_new(&s, -1, 0) == BRAID_EINVAL);
    CHECK(braid_sem_new(&s, 2, 0) == 0);
    CHECK(braid_sem_acquire(s, braid_clock_now()) == 0);
    CHECK(braid_sem_acquire(s, braid_clock_now()) == 0);
    CHECK(braid_sem_acquire(s, braid_clock_now()) == BRAID_ETIMEOUT);
    int64_t t0 = braid_clock_now();
    CHECK(braid_sem_acquire(s, in_ms(50)) == BRAID_ETIMEOUT);
    CHECK(braid_clock_now() - t0 >= 45 * MS);
    CHECK(braid_sem_release(s, 0) == BRAID_EINVAL);
    CHECK(braid_sem_release(s, 5) == 0); /* unbounded: beyond the start */
    CHECK(braid_sem_value(s) == 5);
    braid_object_release((braid_object_t *)s);

    CHECK(braid_sem_new(&s, 1, 1) == 0);
    CHECK(braid_sem_release(s, 1) == BRAID_EINVAL);
    braid_sem_acquire(s, BRAID_FOREVER);
    CHECK(braid_sem_release(s, 2) == BRAID_EINVAL);
    CHECK(braid_sem_release(s, 1) == 0);
    braid_object_release((braid_object_t *)s);

    /* bounded guard: never more than 3 inside */
    braid_sem_new(&sm.s, 3, 1);
    atomic_store(&sm.inside, 0);
    atomic_store(&sm.max_inside, 0);
    pthread_t ts[NT];
    spawn(ts, NT, sem_user, NULL);
    joinall(ts, NT);
    CHECK(atomic_load(&sm.max_inside) <= 3);
    CHECK(braid_sem_value(sm.s) == 3);
    braid_object_release((braid_object_t *)sm.s);

    /* Semaphore(7), one taken, 10 threads x 2 acquires: exactly 6 pass,
     * then 7 releases admit exactly 7 more */
    braid_sem_new(&sm.s, 7, 0);
    braid_sem_acquire(sm.s, BRAID_FOREVER);
    atomic_store(&sm.passed, 0);
    pthread_t tt[10];
    spawn(tt, 10, sem_taker, NULL);
    while (atomic_load(&sm.passed) < 6)
        braid_clock_sleep_until(in_ms(1));
    braid_clock_sleep_until(in_ms(20));
    CHECK(atomic_load(&sm.passed) == 6);
    braid_sem_release(sm.s, 7);
    while (atomic_load(&sm.passed) < 13)
        braid_clock_sleep_until(in_ms(1));
    braid_clock_sleep_until(in_ms(20));
    CHECK(atomic_load(&sm.passed) == 13);
    braid_sem_release(sm.s, 7);
    joinall(tt, 10);
    CHECK(atomic_load(&sm.passed) == 20);
    CHECK(braid_sem_value(sm.s) == 0);
    braid_object_release((braid_object_t *)sm.s);

    braid_sem_new(&s, 0, 0);
    CHECK(cancel_blocked(call_sem_acquire, s) == BRAID_ECANCELLED);
    CHECK(braid_sem_value(s) == 0);
    braid_object_release((braid_object_t *)s);
}

/* ---- Event ---- */

static struct {
    braid_event_t *e;
    atomic_int woke_true;
} ev;

static void *event_waiter(void *p)
{
    (void)p;
    if (braid_event_wait(ev.e, BRAID_FOREVER) == 1)
        atomic_fetch_add(&ev.woke_true, 1);
    return NULL;
}

static int call_event_wait(void *e)
{
    return braid_event_wait(e, BRAID_FOREVER);
}

static void test_event(void)
{
    braid_event_new(&ev.e);
    CHECK(!braid_event_is_set(ev.e));
    CHECK(braid_event_wait(ev.e, braid_clock_now()) == 0);
    int64_t t0 = braid_clock_now();
    CHECK(braid_event_wait(ev.e, in_ms(50)) == 0);
    CHECK(braid_clock_now() - t0 >= 45 * MS);
    braid_event_set(ev.e);
    CHECK(braid_event_is_set(ev.e));
    CHECK(braid_event_wait(ev.e, braid_clock_now()) == 1);
    braid_event_clear(ev.e);
    CHECK(!braid_event_is_set(ev.e));
    for (int round = 0; round < 50; round++) {
        atomic_store(&ev.woke_true, 0);
        pthread_t ts[NT];
        spawn(ts, NT, event_waiter, NULL);
        if (round & 1)
            braid_clock_sleep_until(in_ms(1));
        /* set then clear: the waiters present wake with true; late ones
         * are caught by the next pulse */
        while (atomic_load(&ev.woke_true) < NT) {
            braid_event_set(ev.e);
            braid_event_clear(ev.e);
            braid_clock_sleep_until(in_ms(1));
        }
        joinall(ts, NT);
        CHECK(atomic_load(&ev.woke_true) == NT);
    }
    CHECK(cancel_blocked(call_event_wait, ev.e) == BRAID_ECANCELLED);
    braid_object_release((braid_object_t *)ev.e);
}

/* ---- Barrier ---- */

static struct {
    braid_barrier_t *b;
    atomic_int seen[NT];
    atomic_int actions, broken;
    int cycles;
} br;

static void *barrier_party(void *p)
{
    (void)p;
    for (int c = 0; c < br.cycles; c++) {
        long idx;
        int rc = braid_barrier_wait(br.b, BRAID_FOREVER, &idx);
        if (rc) {
            atomic_fetch_add(&br.broken, 1);
            return NULL;
        }
        if (idx == braid_barrier_parties(br.b) - 1) {
            atomic_fetch_add(&br.actions, 1);
            braid_barrier_finish(br.b, 1);
        }
        atomic_fetch_add(&br.seen[idx], 1);
    }
    return NULL;
}

static void *barrier_timed(void *p)
{
    long idx;
    int rc = braid_barrier_wait(br.b, p ? in_ms(30) : BRAID_FOREVER, &idx);
    if (rc == BRAID_EBROKEN)
        atomic_fetch_add(&br.broken, 1);
    return NULL;
}

static void test_barrier(void)
{
    CHECK(braid_barrier_new(&br.b, 0) == BRAID_EINVAL);
    CHECK(braid_barrier_new(&br.b, NT) == 0);
    br.cycles = 200;
    atomic_store(&br.actions, 0);
    atomic_store(&br.broken, 0);
    for (int i = 0; i < NT; i++)
        atomic_store(&br.seen[i], 0);
    pthread_t ts[NT];
    spawn(ts, NT, barrier_party, NULL);
    joinall(ts, NT);
    CHECK(atomic_load(&br.actions) == 200);
    CHECK(atomic_load(&br.broken) == 0);
    for (int i = 0; i < NT; i++)
        CHECK(atomic_load(&br.seen[i]) == 200);
    CHECK(braid_barrier_n_waiting(br.b) == 0);
    CHECK(!braid_barrier_broken(br.b));

    /* a timed-out waiter breaks it for everyone */
    pthread_t a, b2;
    pthread_create(&a, NULL, barrier_timed, NULL);
    pthread_create(&b2, NULL, barrier_timed, (void *)1);
    pthread_join(a, NULL);
    pthread_join(b2, NULL);
    CHECK(atomic_load(&br.broken) == 2);
    CHECK(braid_barrier_broken(br.b));
    long idx;
    CHECK(braid_barrier_wait(br.b, BRAID_FOREVER, &idx) == BRAID_EBROKEN);
    braid_barrier_reset(br.b);
    CHECK(!braid_barrier_broken(br.b));

    /* abort wakes waiters with BROKEN */
    atomic_store(&br.broken, 0);
    spawn(ts, 3, barrier_timed, NULL);
    while (braid_barrier_n_waiting(br.b) < 3)
        braid_clock_sleep_until(in_ms(1));
    braid_barrier_abort(br.b);
    joinall(ts, 3);
    CHECK(atomic_load(&br.broken) == 3);
    braid_barrier_reset(br.b);

    /* reset while waiting: waiters broken, barrier usable after */
    atomic_store(&br.broken, 0);
    spawn(ts, 3, barrier_timed, NULL);
    while (braid_barrier_n_waiting(br.b) < 3)
        braid_clock_sleep_until(in_ms(1));
    braid_barrier_reset(br.b);
    joinall(ts, 3);
    CHECK(atomic_load(&br.broken) == 3);
    CHECK(!braid_barrier_broken(br.b));
    br.cycles = 10;
    spawn(ts, NT, barrier_party, NULL);
    joinall(ts, NT);
    CHECK(atomic_load(&br.broken) == 3);
    braid_object_release((braid_object_t *)br.b);

    /* Barrier(1) passes at once; a failed action breaks it */
    braid_barrier_new(&br.b, 1);
    CHECK(braid_barrier_wait(br.b, BRAID_FOREVER, &idx) == 0 && idx == 0);
    CHECK(braid_barrier_finish(br.b, 0) == 0);
    CHECK(braid_barrier_broken(br.b));
    braid_object_release((braid_object_t *)br.b);
}

int main(void)
{
    long before = braid_object_count();
    RUN(test_lock_basic);
    RUN(test_lock_race);
    RUN(test_lock_cancel);
    RUN(test_rlock);
    RUN(test_cond_notify);
    RUN(test_cond_rlock_cancel);
    RUN(test_cond_prodcons);
    RUN(test_semaphore);
    RUN(test_event);
    RUN(test_barrier);
    CHECK(braid_object_count() == before);
    return CHECK_DONE();
}
