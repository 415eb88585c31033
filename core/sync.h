/* Thread synchronization primitives as shared braid objects: Lock, RLock,
 * Condition, Semaphore/BoundedSemaphore, Event and Barrier, on core/waiter.h. */
#ifndef BRAID_SYNC_H
#define BRAID_SYNC_H

#include <stdint.h>

#include "codec.h"
#include "object.h"

#ifdef __cplusplus
extern "C" {
#endif

/* All blocking calls take an absolute deadline (core/clock.h; BRAID_FOREVER
 * waits forever; a deadline already passed never blocks) and return
 * BRAID_ECANCELLED when the calling thread's waiter is cancelled. Every
 * object is created with one reference (braid_object_release frees it) and
 * every function is thread-safe. A struct pointer converts to its
 * braid_object_t header by a cast. */

typedef struct braid_lock braid_lock_t;
typedef struct braid_rlock braid_rlock_t;
typedef struct braid_cond braid_cond_t;
typedef struct braid_sem braid_sem_t;
typedef struct braid_event braid_event_t;
typedef struct braid_barrier braid_barrier_t;

extern const braid_object_type_t braid_lock_type;
extern const braid_object_type_t braid_rlock_type;
extern const braid_object_type_t braid_cond_type;
extern const braid_object_type_t braid_sem_type;
extern const braid_object_type_t braid_event_type;
extern const braid_object_type_t braid_barrier_type;

/* A process-unique id for the calling OS thread (never 0, never reused):
 * the owner identity of RLocks. */
uint64_t braid_sync_self(void);
/* Internal (core/thread.c): the calling OS thread starts running another
 * braid thread, which must not inherit the previous one's identity. */
void braid__sync_forget_self(void);

/* ---- Lock: not reentrant, released by any thread ---- */

/* Returns 0 or BRAID_ENOMEM/BRAID_EOS. */
int braid_lock_new(braid_lock_t **out);
/* 0 (acquired), BRAID_ETIMEOUT or BRAID_ECANCELLED. Uncontended: one CAS. */
int braid_lock_acquire(braid_lock_t *l, int64_t deadline);
/* 0, or BRAID_ESTATE when the lock is not held. */
int braid_lock_release(braid_lock_t *l);
int braid_lock_locked(braid_lock_t *l);

/* ---- RLock: reentrant, owned by the acquiring OS thread ---- */

int braid_rlock_new(braid_rlock_t **out);
int braid_rlock_acquire(braid_rlock_t *l, int64_t deadline);
/* 0, or BRAID_ENOTOWNER when the caller does not own it. */
int braid_rlock_release(braid_rlock_t *l);
int braid_rlock_locked(braid_rlock_t *l);
int braid_rlock_is_owned(braid_rlock_t *l);
/* The caller's recursion count (0 when another thread owns it). */
long braid_rlock_count(braid_rlock_t *l);

/* ---- Condition over a Lock or an RLock ---- */

/* lock must be a braid_lock_t or braid_rlock_t header (retained);
 * BRAID_EINVAL otherwise. */
int braid_cond_new(braid_cond_t **out, braid_object_t *lock);
/* The condition's lock (borrowed). */
braid_object_t *braid_cond_lock(braid_cond_t *c);
/* Whether the caller may wait/notify: RLock owned by it, Lock held. */
int braid_cond_is_owned(braid_cond_t *c);
/* Releases the lock, waits for a notify, re-acquires the lock (always, even
 * when cancelled). Returns 1 notified, 0 timed out, BRAID_ENOTOWNER when
 * the lock is not owned (nothing done) or BRAID_ECANCELLED (lock re-held). */
int braid_cond_wait(braid_cond_t *c, int64_t deadline);
/* Wakes up to n waiters, oldest first; returns how many or BRAID_ENOTOWNER. */
/* braid_cond_wait in halves, for waiters that suspend in between (asyncio
 * tasks): release_and_wait returns BRAID_ENOTOWNER (nothing done) or the
 * wait's code (0 notified, BRAID_ETIMEOUT, BRAID_ECANCELLED, BRAID_ESUSPEND)
 * with the lock released and an RLock's count in *saved (-1 when nothing
 * was released: not owned, or already cancelled); wait_again repeats
 * a suspended wait; reacquire takes the lock back (a task may get
 * BRAID_ESUSPEND or BRAID_ECANCELLED: call again) and restores the count. */
int braid_cond_release_and_wait(braid_cond_t *c, int64_t deadline, long *saved);
int braid_cond_wait_again(braid_cond_t *c, int64_t deadline);
int braid_cond_reacquire(braid_cond_t *c, long saved);
int braid_cond_notify(braid_cond_t *c, long n);
int braid_cond_notify_all(braid_cond_t *c);

/* ---- Semaphore / BoundedSemaphore (FIFO hand-off) ---- */

/* value >= 0 (else BRAID_EINVAL); bounded: release beyond value fails. */
int braid_sem_new(braid_sem_t **out, long value, int bounded);
/* 0, BRAID_ETIMEOUT or BRAID_ECANCELLED. */
int braid_sem_acquire(braid_sem_t *s, int64_t deadline);
/* Adds n >= 1 permits; BRAID_EINVAL if bounded and that would exceed the
 * initial value (nothing released). */
int braid_sem_release(braid_sem_t *s, long n);
long braid_sem_value(braid_sem_t *s);
int braid_sem_bounded(braid_sem_t *s);

/* ---- Event ---- */

int braid_event_new(braid_event_t **out);
void braid_event_set(braid_event_t *e);
void braid_event_clear(braid_event_t *e);
int braid_event_is_set(braid_event_t *e);
/* 1 when set (or woken by a set), 0 timed out, BRAID_ECANCELLED. */
int braid_event_wait(braid_event_t *e, int64_t deadline);

/* ---- Barrier ---- */

/* parties >= 1 (else BRAID_EINVAL). */
int braid_barrier_new(braid_barrier_t **out, long parties);
/* Arrives; stores the arrival index (0..parties-1) in *index. The last
 * arrival (index parties-1) returns at once with the barrier held in its
 * "action" phase: it must call braid_barrier_finish(ok) (after running the
 * action, if any) to release the others. Returns 0, BRAID_EBROKEN (broken,
 * reset while waiting, or this wait timed out — which breaks it) or
 * BRAID_ECANCELLED (which breaks it too). */
int braid_barrier_wait(braid_barrier_t *b, int64_t deadline, long *index);
/* Ends the action phase: ok releases everyone for the next cycle, !ok
 * breaks the barrier. Returns 0 or BRAID_EBROKEN if the barrier was reset
 * or aborted meanwhile. */
int braid_barrier_finish(braid_barrier_t *b, int ok);
void braid_barrier_abort(braid_barrier_t *b);
void braid_barrier_reset(braid_barrier_t *b);
/* The binding's payload: the encoded action (moved in; NULL for none) and
 * the default timeout in seconds (negative: none). Set once, before the
 * barrier is shared; read-only afterwards. */
void braid_barrier_set_extra(braid_barrier_t *b, braid_buf_t *action, double timeout);
const braid_buf_t *braid_barrier_action(braid_barrier_t *b);
double braid_barrier_timeout(braid_barrier_t *b);
long braid_barrier_parties(braid_barrier_t *b);
long braid_barrier_n_waiting(braid_barrier_t *b);
int braid_barrier_broken(braid_barrier_t *b);

#ifdef __cplusplus
}
#endif
#endif
