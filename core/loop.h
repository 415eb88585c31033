/* One libuv event loop per OS thread for braid.asyncio, and task waiters:
 * the core waiters of tasks, which a waker on any thread queues on their
 * loop's woken list and wakes the loop with uv_async_send. */
#ifndef BRAID_LOOP_H
#define BRAID_LOOP_H

#include <stdint.h>
#include <uv.h>

#include "waiter.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct braid_loop braid_loop_t;

/* A task's waiter. Owned by the loop's thread; other threads only reach it
 * through braid_waiter_wake/cancel while it is linked on a wait list. */
typedef struct braid_task_waiter {
    braid_waiter_t w; /* first: a braid_waiter_t * converts back by a cast */
    braid_loop_t *loop;
    int64_t id; /* the task's id in its loop */
    int queued; /* on the loop's woken list (under the loop's lock) */
    struct braid_task_waiter *prev, *next;
} braid_task_waiter_t;

/* A new loop (uv loop, wake-up handle, timer). Returns 0, BRAID_ENOMEM or
 * BRAID_EOS. Only the creating thread may run it. */
int braid_loop_new(braid_loop_t **out);
/* Drops the owner's reference: the loop closes its handles and is freed
 * when its last task waiter is destroyed too. No task waiter of it may be
 * pending on a wait list by then. NULL is ignored. */
void braid_loop_free(braid_loop_t *loop);
/* The libuv loop (for I/O handles that live on it). */
uv_loop_t *braid_loop_uv(braid_loop_t *loop);

/* How many libuv handles besides its own the loop holds (open or closing:
 * streams, listeners), for leak checks. */
int braid_loop_handle_count(braid_loop_t *loop);

/* Runs one pass of the uv loop: timeout_ns < 0 waits until something
 * wakes it, 0 does not block, otherwise waits at most that long; with spin
 * (tasks wait on other threads) it first watches the woken list briefly.
 * Returns 0 or BRAID_EOS. */
int braid_loop_run_once(braid_loop_t *loop, int64_t timeout_ns, int spin);
/* How many loops exist in the process (for leak checks). */
int braid_loop_count(void);

/* Wakes a blocked run_once from any thread. */
void braid_loop_wakeup(braid_loop_t *loop);
/* Moves up to max woken task waiters into tws (oldest first); returns how
 * many. Each stays valid until it is destroyed (on the loop's thread). */
size_t braid_loop_take_woken(braid_loop_t *loop, braid_task_waiter_t **tws, size_t max);

/* braid_waiter_wake for a waker running inside the loop's own pass (a
 * libuv callback on the loop's thread): a task waiter of that loop is
 * queued without waking the loop through its async handle. */
void braid_waiter_wake_local(braid_waiter_t *w);

/* Initialises tw as a waiter of task `id` on loop (holding a reference
 * to the loop). Returns 0 or BRAID_EOS. */
int braid_task_waiter_init(braid_task_waiter_t *tw, braid_loop_t *loop, int64_t id);
/* Settles tw (unlinking it from any wait list), drops it from the woken
 * list, and destroys it. Call on the loop's thread. */
void braid_task_waiter_destroy(braid_task_waiter_t *tw);

#ifdef __cplusplus
}
#endif
#endif
