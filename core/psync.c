/* Process-shared lock, semaphore and event on futex words in shared memory.
 * Waits sleep in slices so cancellation and dead owners are noticed. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "dump.h"
#include "psync.h"

/* A waiter re-checks cancellation and the owner this often. */
#define SLICE_NS 50000000LL

static _Thread_local int my_tid;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* A forked child's only thread must not keep its parent's thread id. */
static void forget_tid(void)
{
    my_tid = 0;
}

static void install_atfork(void)
{
    pthread_atfork(NULL, NULL, forget_tid);
}

static int tid(void)
{
    if (!my_tid) {
        pthread_once(&atfork_once, install_atfork);
        my_tid = (int)syscall(SYS_gettid);
    }
    return my_tid;
}

/* Shared (not FUTEX_PRIVATE) futex: the word is in memory mapped by
 * several processes. */
/* Returns 1 when the slice ran out (not woken, not changed, no signal). */
static int futex_wait(atomic_uint *addr, unsigned val, int64_t deadline)
{
    int64_t left = SLICE_NS;
    if (deadline != BRAID_FOREVER) {
        int64_t d = deadline - braid_clock_now();
        if (d < left)
            left = d > 0 ? d : 0;
    }
    struct timespec ts = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
    long r = syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT, val, &ts, NULL, 0);
    return r < 0 && errno == ETIMEDOUT;
}

static void futex_wake(atomic_uint *addr, int n)
{
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* 0 to keep waiting, else the code that ends the wait. */
static int wait_check(int64_t deadline, braid_waiter_t *w)
{
    if (w && atomic_load(&w->cancelled))
        return BRAID_ECANCELLED;
    if (w && w->interruptible && braid_waiter_take_interrupt()) {
        braid_waiter_interrupt();
        return BRAID_EINTR;
    }
    if (deadline != BRAID_FOREVER && braid_clock_now() >= deadline)
        return BRAID_ETIMEOUT;
    braid_dump_serve_pending(); /* a live dump's request, seen once a slice */
    return 0;
}

int braid__id_alive(int id)
{
    if (id <= 0)
        return 1; /* unknown: assume alive */
    if (kill(id, 0) != 0 && errno == ESRCH)
        return 0;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", id);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *rp = NULL;
    for (char *p = buf; *p; p++)
        if (*p == ')')
            rp = p;
    if (rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'))
        return 0;
    return 1;
}

/* ---- lock ---- */

static inline int holder(unsigned state)
{
    return (int)(state & ~BRAID_PLOCK_WAITERS);
}

int braid_plock_acquire(braid_plock_t *l, int recursive, int64_t deadline, braid_waiter_t *w)
{
    unsigned me = (unsigned)tid();
    unsigned s = 0;
    if (atomic_compare_exchange_strong(&l->state, &s, me))
        goto got;
    if (recursive && holder(s) == (int)me) {
        atomic_fetch_add(&l->count, 1);
        return 0;
    }
    /* Whether the holder is alive costs system calls (kill, /proc): asked
     * only after a whole slice passed without a release, or before giving
     * up (a dead holder's lock is taken even by acquire(false)). */
    int ask = 0;
    for (;;) {
        s = atomic_load(&l->state);
        if (s == 0) { /* others may sleep on it still: keep the flag */
            if (atomic_compare_exchange_strong(&l->state, &s, me | BRAID_PLOCK_WAITERS))
                goto got;
            continue;
        }
        if (!(s & BRAID_PLOCK_WAITERS)) {
            if (!atomic_compare_exchange_strong(&l->state, &s, s | BRAID_PLOCK_WAITERS))
                continue;
            s |= BRAID_PLOCK_WAITERS;
        }
        if (ask && !braid__id_alive(holder(s)) &&
            atomic_compare_exchange_strong(&l->state, &s, me | BRAID_PLOCK_WAITERS)) {
            atomic_store(&l->count, 1);
            return BRAID_PLOCK_OWNER_DIED; /* locked still: now ours */
        }
        int rc = wait_check(deadline, w);
        if (rc == BRAID_ETIMEOUT && !ask) {
            ask = 1;
            continue;
        }
        if (rc)
            return rc;
        ask = futex_wait(&l->state, s, deadline);
    }
got:
    /* a plain store: the CAS above ordered it after the taking */
    atomic_store_explicit(&l->count, 1, memory_order_relaxed);
    return 0;
}

int braid_plock_try(braid_plock_t *l, int recursive)
{
    unsigned s = 0;
    if (atomic_compare_exchange_strong(&l->state, &s, (unsigned)tid())) {
        atomic_store_explicit(&l->count, 1, memory_order_relaxed);
        return 0;
    }
    if (recursive && holder(s) == tid()) {
        atomic_fetch_add(&l->count, 1);
        return 0;
    }
    return BRAID_EAGAIN;
}

int braid_plock_release(braid_plock_t *l, int recursive)
{
    unsigned s = atomic_load(&l->state);
    if (s == 0)
        return BRAID_ENOTOWNER;
    if (recursive) {
        if (holder(s) != tid())
            return BRAID_ENOTOWNER;
        if (atomic_fetch_sub(&l->count, 1) > 1)
            return 0;
    }
    if (atomic_exchange(&l->state, 0) & BRAID_PLOCK_WAITERS)
        futex_wake(&l->state, 1);
    return 0;
}

void braid_plock_adopt(braid_plock_t *l)
{
    unsigned me = (unsigned)tid(), s = atomic_load(&l->state);
    while (s != 0 && !atomic_compare_exchange_weak(&l->state, &s, (s & BRAID_PLOCK_WAITERS) | me))
        ;
}

int braid_plock_locked(braid_plock_t *l)
{
    return atomic_load(&l->state) != 0;
}

int braid_plock_is_mine(braid_plock_t *l)
{
    return holder(atomic_load(&l->state)) == tid();
}

/* ---- semaphore ---- */

void braid_psem_init(braid_psem_t *s, unsigned value, unsigned max)
{
    atomic_init(&s->value, value);
    atomic_init(&s->waiters, 0);
    s->max = max;
}

int braid_psem_acquire(braid_psem_t *s, int64_t deadline, braid_waiter_t *w)
{
    for (;;) {
        unsigned v = atomic_load(&s->value);
        while (v > 0)
            if (atomic_compare_exchange_weak(&s->value, &v, v - 1))
                return 0;
        int rc = wait_check(deadline, w);
        if (rc)
            return rc;
        atomic_fetch_add(&s->waiters, 1);
        futex_wait(&s->value, 0, deadline);
        atomic_fetch_sub(&s->waiters, 1);
    }
}

int braid_psem_release(braid_psem_t *s, unsigned n)
{
    unsigned v = atomic_load(&s->value);
    do {
        if (s->max && v + n > s->max)
            return BRAID_EINVAL;
    } while (!atomic_compare_exchange_weak(&s->value, &v, v + n));
    if (atomic_load(&s->waiters))
        futex_wake(&s->value, n > INT_MAX ? INT_MAX : (int)n);
    return 0;
}

/* ---- event ---- */

void braid_pevent_set(braid_pevent_t *e)
{
    atomic_store(&e->flag, 1);
    if (atomic_load(&e->waiters))
        futex_wake(&e->flag, INT_MAX);
}

void braid_pevent_clear(braid_pevent_t *e)
{
    atomic_store(&e->flag, 0);
}

int braid_pevent_wait(braid_pevent_t *e, int64_t deadline, braid_waiter_t *w)
{
    for (;;) {
        if (atomic_load(&e->flag))
            return 1;
        int rc = wait_check(deadline, w);
        if (rc == BRAID_ETIMEOUT)
            return 0;
        if (rc)
            return rc;
        atomic_fetch_add(&e->waiters, 1);
        futex_wait(&e->flag, 0, deadline);
        atomic_fetch_sub(&e->waiters, 1);
    }
}
