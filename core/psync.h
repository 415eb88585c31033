/* Process-shared lock, semaphore and event words: they live in shared
 * memory, wait on futexes, and survive the death of a process holding them. */
#ifndef BRAID_PSYNC_H
#define BRAID_PSYNC_H

#include <stdatomic.h>
#include <stdint.h>

#include "waiter.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returned by braid_plock_acquire when the previous owner (a thread, in
 * this or another process) died holding the lock: the caller now owns it. */
#define BRAID_PLOCK_OWNER_DIED 1

/* A lock (recursive = RLock). Zeroed memory is an unlocked lock. */
typedef struct braid_plock {
    /* 0 free, else the holder's tid, with BRAID_PLOCK_WAITERS when some
     * thread may be asleep on it: taken and owned in one atomic step, so a
     * holder killed at any instruction is known by its tid */
    atomic_uint state;
    uint32_t unused;
    atomic_uint count; /* recursion depth (RLock) */
    uint32_t pad;
} braid_plock_t;
#define BRAID_PLOCK_WAITERS 0x80000000u

/* Acquires until deadline. Returns 0, BRAID_PLOCK_OWNER_DIED,
 * BRAID_ETIMEOUT, BRAID_ECANCELLED/BRAID_EINTR (w's). An RLock held by the
 * caller is re-entered. No system call when uncontended. */
int braid_plock_acquire(braid_plock_t *l, int recursive, int64_t deadline, braid_waiter_t *w);
/* Acquires without waiting: 0 or BRAID_EAGAIN. */
int braid_plock_try(braid_plock_t *l, int recursive);
/* Releases. BRAID_ENOTOWNER if unlocked (or, recursive, not the caller's). */
int braid_plock_release(braid_plock_t *l, int recursive);
/* Makes the calling thread the holder of a lock another thread of this
 * process acquired (a queue's feeder finishing a message). */
void braid_plock_adopt(braid_plock_t *l);
/* 1 if locked (by anyone). */
int braid_plock_locked(braid_plock_t *l);
/* 1 if the calling thread holds it (recursive locks). */
int braid_plock_is_mine(braid_plock_t *l);

/* A counting semaphore; max 0 = unbounded. */
typedef struct braid_psem {
    atomic_uint value;
    atomic_uint waiters;
    uint32_t max;
    uint32_t pad;
} braid_psem_t;

void braid_psem_init(braid_psem_t *s, unsigned value, unsigned max);
/* 0, BRAID_ETIMEOUT, BRAID_ECANCELLED/BRAID_EINTR. */
int braid_psem_acquire(braid_psem_t *s, int64_t deadline, braid_waiter_t *w);
/* Adds n; BRAID_EINVAL if a bounded semaphore would exceed its maximum. */
int braid_psem_release(braid_psem_t *s, unsigned n);

/* An event flag. */
typedef struct braid_pevent {
    atomic_uint flag;
    atomic_uint waiters;
} braid_pevent_t;

void braid_pevent_set(braid_pevent_t *e);
void braid_pevent_clear(braid_pevent_t *e);
/* Waits until set; returns 1 if set, 0 on timeout, or BRAID_ECANCELLED/BRAID_EINTR. */
int braid_pevent_wait(braid_pevent_t *e, int64_t deadline, braid_waiter_t *w);

/* Whether process/thread id is alive (a zombie is not). */
int braid__id_alive(int id);

#ifdef __cplusplus
}
#endif
#endif
