/* The one waiter abstraction: every blocking primitive parks callers as
 * waiters on its wait list; timeouts, cancellation and wake-ups all go here. */
#ifndef BRAID_WAITER_H
#define BRAID_WAITER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "object.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct braid_waiter braid_waiter_t;
typedef struct braid_waitlist braid_waitlist_t;

struct braid_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;    /* on CLOCK_MONOTONIC */
    atomic_int signaled;  /* set by braid_waiter_wake, cleared by prepare */
    atomic_int cancelled; /* a pending cancellation request */
    /* Non-NULL: this waiter is not an OS thread (e.g. an asyncio task);
     * wake calls notify(w) instead of signalling the condvar. */
    void (*notify)(braid_waiter_t *w);
    void *data; /* owner's payload (e.g. the task) */
    /* Wait-list links and payload: guarded by the lock of the primitive
     * whose list the waiter is on. */
    braid_waiter_t *next, *prev;
    int linked;
    intptr_t token; /* primitive-specific: requested count, result... */
    /* Set by the owner: park also returns BRAID_EINTR on braid_waiter_interrupt
     * (the braid executable marks its main thread, for Ctrl-C). */
    int interruptible;
    /* Task waiters (notify set) never park: a wait that would block links
     * the waiter, records where, and returns BRAID_ESUSPEND; the task
     * suspends until notify, its deadline or a cancellation, then calls
     * braid_waiter_settle and repeats the same call, which picks up the
     * outcome. Touched only by the owning loop's thread (and, for list and
     * woken, under *list_mu). */
    int async_state; /* BRAID_WAIT_IDLE / _PENDING / _RESUMED */
    int woken;       /* after settle: a waker unlinked us (and set token) */
    braid_waitlist_t *list;
    pthread_mutex_t *list_mu;
    int64_t deadline; /* of the pending wait */
    /* A count the primitive keeps while the waiter is linked (a lock's
     * waiter count): settle decrements it, as the call returning would. */
    atomic_int *settle_count;
    /* The wait record: what this waiter is blocked on, for the trace and
     * the dump. Set by the owner when a blocking wait begins (in
     * braid_waitlist_wait from the list's owner/op, or braid_waiter_begin)
     * and cleared when it ends; read from any thread with
     * braid_waiter_record. blocked_op is a static string ("acquire", "get",
     * "put", "wait", "join", "result", "sleep", "idle", ...), NULL while
     * not blocked; blocked_on is the object (NULL for sleep and for waits
     * on no object), alive while the record is set since the waiting call
     * holds a reference; blocked_since is braid_clock_now() at the start
     * (set by park when it reads the clock; before that a negative number
     * unique to the record, which braid_waiter_record reports as now),
     * blocked_deadline the wait's deadline (BRAID_FOREVER: no timeout).
     * A task waiter's record stays set while the task is suspended on the
     * wait. */
    _Atomic(const braid_object_t *) blocked_on;
    _Atomic(const char *) blocked_op;
    _Atomic int64_t blocked_since, blocked_deadline;
    uint64_t record_seq; /* the owner's count of its wait records */
};

/* A snapshot of a waiter's wait record. */
typedef struct braid_wait_record {
    const braid_object_t *on;
    const char *op; /* NULL: not blocked */
    int64_t since, deadline;
} braid_wait_record_t;

enum { BRAID_WAIT_IDLE, BRAID_WAIT_PENDING, BRAID_WAIT_RESUMED };

struct braid_waitlist {
    braid_waiter_t *head, *tail;
    /* What a wait on this list is (copied into the wait record): the
     * object that owns the list (may be NULL) and a static op name. */
    const braid_object_t *owner;
    const char *op;
};

/* Initialises an empty wait list owned by owner, whose waits are op. */
static inline void braid_waitlist_init(braid_waitlist_t *l, const braid_object_t *owner,
                                       const char *op)
{
    l->head = l->tail = NULL;
    l->owner = owner;
    l->op = op;
}

/* Initialise/destroy a waiter. init returns 0 or BRAID_EOS. */
int braid_waiter_init(braid_waiter_t *w);
void braid_waiter_destroy(braid_waiter_t *w);

/* The calling OS thread's waiter: the one installed with set_current, or
 * one created on first use and freed at thread exit. NULL only on OOM. */
braid_waiter_t *braid_waiter_current(void);
void braid_waiter_set_current(braid_waiter_t *w);
/* Installs w (a task waiter, or the previous value) as the current waiter
 * for the calls a task makes, without the running-thread accounting of
 * set_current; returns the previous one (possibly NULL). */
braid_waiter_t *braid_waiter_swap_current(braid_waiter_t *w);
/* The current waiter if there is one, else NULL (never creates one). */
braid_waiter_t *braid_waiter_peek_current(void);

/* Sets / clears the wait record of w for a blocking wait that does not go
 * through braid_waitlist_wait (e.g. sleep: braid_waiter_park directly).
 * end reports the outcome (0, BRAID_ETIMEOUT, BRAID_ECANCELLED...) to the
 * trace. */
void braid_waiter_begin(braid_waiter_t *w, const braid_object_t *on, const char *op,
                        int64_t deadline);
void braid_waiter_end(braid_waiter_t *w, int rc);
/* Snapshots w's wait record; thread-safe (a record changing meanwhile is
 * read again). Returns 1 if w is blocked (out->op non-NULL), else 0. */
int braid_waiter_record(const braid_waiter_t *w, braid_wait_record_t *out);

/* Whether a thread may spin a few microseconds on a condition of its own
 * (before waiting on a list): there is more than one core and no more of
 * our threads are running than there are cores. */
int braid_waiter_may_spin(void);
/* One round of a spin-wait: the CPU's pause hint. */
static inline void braid_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}
/* Clears the signal before the waiter goes onto a wait list. */
void braid_waiter_prepare(braid_waiter_t *w);
/* Spins briefly, then blocks until signaled, the deadline passes or a
 * cancellation is pending. Returns 0, BRAID_ETIMEOUT or BRAID_ECANCELLED
 * (or BRAID_EINTR for an interruptible waiter).
 * Contract: after park returns, the caller re-takes the primitive's lock
 * and unlinks itself if still linked (a waiter unlinked by a waker counts as
 * woken whatever park returned) — this also keeps the waiter alive until
 * the waker is done with it. */
int braid_waiter_park(braid_waiter_t *w, int64_t deadline);
/* Marks the waiter signaled and wakes it. Call with the primitive's lock
 * held, after unlinking it. */
void braid_waiter_wake(braid_waiter_t *w);

/* Requests cancellation: the waiter's current or next park returns
 * BRAID_ECANCELLED. Thread-safe, callable from any thread. */
void braid_waiter_cancel(braid_waiter_t *w);
/* Consumes a pending cancellation: returns 1 if there was one. */
int braid_waiter_take_cancel(braid_waiter_t *w);

/* Makes the current or next park of every interruptible waiter return
 * BRAID_EINTR. Async-signal-safe: it only stores a flag, which parked
 * interruptible waiters poll every few tens of milliseconds. */
void braid_waiter_interrupt(void);
/* Consumes a pending interrupt: returns 1 if there was one. */
int braid_waiter_take_interrupt(void);

/* A task waiter whose wait returned BRAID_ESUSPEND, once notified (or
 * its deadline passed, or it was cancelled): takes the primitive's lock,
 * unlinks it if still linked, and marks it resumed, so the repeated call's
 * wait returns 0 (woken: whatever the waker handed over is ours) or
 * BRAID_ETIMEOUT/BRAID_ECANCELLED, or links it again (a stray wake-up).
 * No-op unless pending. Call with no primitive lock held. */
void braid_waiter_settle(braid_waiter_t *w);
/* Whether the current call is a task's repeat after a woken settle: the
 * primitive must not take its fast path (it may already own a hand-off). */
static inline int braid_waiter_resumed_woken(const braid_waiter_t *w)
{
    return w && w->async_state == BRAID_WAIT_RESUMED && w->woken;
}

/* Wait lists (caller holds the primitive's lock). */
void braid_waitlist_push(braid_waitlist_t *l, braid_waiter_t *w);
void braid_waitlist_remove(braid_waitlist_t *l, braid_waiter_t *w);
/* Unlinks and returns the oldest waiter, or NULL. */
braid_waiter_t *braid_waitlist_pop(braid_waitlist_t *l);

/* Waits on a wait list guarded by mu (held on entry and on return): links
 * the current thread's waiter, parks until woken/deadline/cancel, unlinks.
 * Returns 0 when woken by a waker, else BRAID_ETIMEOUT/BRAID_ECANCELLED,
 * or BRAID_ESUSPEND for a task waiter (linked; mu still held): the caller
 * returns it at once, changing nothing else.
 * *token_io is stored in the waiter before parking and read back after. */
int braid_waitlist_wait(braid_waitlist_t *l, pthread_mutex_t *mu, int64_t deadline,
                        intptr_t *token_io);
/* Wakes the oldest waiter, storing token in it; returns 1 if one was woken. */
int braid_waitlist_wake_one(braid_waitlist_t *l, intptr_t token);
/* Wakes every waiter; returns how many. */
int braid_waitlist_wake_all(braid_waitlist_t *l, intptr_t token);

#ifdef __cplusplus
}
#endif
#endif
