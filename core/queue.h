/* Thread-safe queues of encoded values (FIFO, LIFO, priority, simple) with
 * Python 3.13's queue semantics; usable from Lua bindings and host threads. */
#ifndef BRAID_QUEUE_H
#define BRAID_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "object.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum braid_queue_kind {
    BRAID_QUEUE_FIFO = 0, /* queue.Queue */
    BRAID_QUEUE_LIFO,     /* queue.LifoQueue */
    BRAID_QUEUE_PRIORITY, /* queue.PriorityQueue: smallest first, ties FIFO */
    BRAID_QUEUE_SIMPLE    /* queue.SimpleQueue: unbounded FIFO, no tasks/shutdown */
} braid_queue_kind_t;

/* A queue is a braid object: braid_object_retain/release on &q->obj (or the
 * helpers below). Every function here is thread-safe unless noted. */
typedef struct braid_queue braid_queue_t;

/* One object type per kind, so each has its own Lua metatable
 * ("braid.Queue", "braid.LifoQueue", "braid.PriorityQueue",
 * "braid.SimpleQueue", all registered by module "braid.queue"). */
extern const braid_object_type_t braid_queue_types[4];

/* The kind of obj if it is a queue, else -1. */
int braid_queue_kind_of(const braid_object_t *obj);

/* Deadlines for put/get/join: an absolute braid_clock time, BRAID_FOREVER,
 * or BRAID_QUEUE_NOWAIT (do not block at all). */
#define BRAID_QUEUE_NOWAIT 0

/* Creates a queue of the given kind; maxsize <= 0 means unbounded (SIMPLE
 * ignores maxsize). *out receives the caller's reference.
 * Returns 0, BRAID_EINVAL (bad kind) or BRAID_ENOMEM. */
int braid_queue_new(braid_queue_kind_t kind, long maxsize, braid_queue_t **out);
void braid_queue_retain(braid_queue_t *q);
void braid_queue_release(braid_queue_t *q); /* NULL is ignored */

/* Puts an encoded item. On success the item's contents (bytes and object
 * references) are taken over by the queue and *item is left empty: len 0,
 * no objects, though a small item is copied and its allocation kept for
 * reuse, so the caller always braid_buf_free()s *item in the end. On
 * failure *item is untouched and still owned by the caller.
 * Blocks while the queue is full until deadline. Returns 0,
 * BRAID_EFULL (full at the deadline / NOWAIT), BRAID_ESHUTDOWN,
 * BRAID_ETYPE (PRIORITY: item not comparable with the queued ones),
 * BRAID_ECANCELLED (the calling thread's waiter was cancelled),
 * BRAID_ENOMEM. SIMPLE queues never block. */
int braid_queue_put(braid_queue_t *q, braid_buf_t *item, int64_t deadline);

/* Takes the next item into *out, which must hold no value (fresh, freed or
 * reset; its capacity is reused); the caller then owns it and must
 * braid_buf_free it. On failure *out holds no value either.
 * Blocks while empty until deadline. Returns 0, BRAID_EEMPTY,
 * BRAID_ESHUTDOWN (shut down and empty), BRAID_ECANCELLED, BRAID_ENOMEM. */
int braid_queue_get(braid_queue_t *q, braid_buf_t *out, int64_t deadline);

/* Marks one task done. Returns 0 or BRAID_EINVAL (called more times than
 * items were put). BRAID_EINVAL on a SIMPLE queue. */
int braid_queue_task_done(braid_queue_t *q);
/* Blocks until every item put has been marked done. Returns 0,
 * BRAID_ETIMEOUT or BRAID_ECANCELLED. */
int braid_queue_join(braid_queue_t *q, int64_t deadline);

/* Shuts the queue down: later puts fail with BRAID_ESHUTDOWN, gets drain
 * what is left then fail; with immediate, queued items are dropped (and
 * counted as done). Wakes every blocked caller. No-op on SIMPLE. */
void braid_queue_shutdown(braid_queue_t *q, int immediate);

/* Snapshots (may be stale as soon as they return). */
size_t braid_queue_qsize(braid_queue_t *q);
int braid_queue_empty(braid_queue_t *q);
int braid_queue_full(braid_queue_t *q);
long braid_queue_maxsize(const braid_queue_t *q);
int braid_queue_is_shutdown(braid_queue_t *q);
long braid_queue_unfinished(braid_queue_t *q);

#ifdef __cplusplus
}
#endif
#endif
