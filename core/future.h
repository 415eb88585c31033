/* Futures: a shared object moving PENDING -> RUNNING -> FINISHED/CANCELLED
 * once, holding an encoded outcome; waits, wait sets and per-state inboxes. */
#ifndef BRAID_FUTURE_H
#define BRAID_FUTURE_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "object.h"
#include "waiter.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct braid_future braid_future_t;
typedef struct braid_inbox braid_inbox_t;
typedef struct braid_waitset braid_waitset_t;

enum {
    BRAID_FUTURE_PENDING = 0,
    BRAID_FUTURE_RUNNING,
    BRAID_FUTURE_CANCELLED,
    BRAID_FUTURE_FINISHED
};

/* "braid.Future", registered by module "braid.futures". */
extern const braid_object_type_t braid_future_type;

/* A new PENDING future; *out holds the caller's reference. Returns 0 or
 * BRAID_ENOMEM. Every function below is thread-safe. */
int braid_future_new(braid_future_t **out);
void braid_future_retain(braid_future_t *f);
void braid_future_release(braid_future_t *f); /* NULL is ignored */

/* Current state (a snapshot). */
int braid_future_state(braid_future_t *f);
/* Done = FINISHED or CANCELLED. */
int braid_future_done(braid_future_t *f);

/* Python's cancel(): PENDING -> CANCELLED (waking waiters, queueing
 * callbacks) and returns 1; already CANCELLED -> 1; RUNNING/FINISHED -> 0. */
int braid_future_cancel(braid_future_t *f);
/* Python's set_running_or_notify_cancel(): PENDING -> RUNNING, returns 1;
 * CANCELLED -> returns 0 (the runner must skip the work); any other state
 * -> BRAID_ESTATE. */
int braid_future_set_running(braid_future_t *f);
/* Finishes the future with an encoded outcome (results, or with failed
 * set, the error value and its traceback as lbraid_run_call writes them).
 * On success the buffer's contents are MOVED into the future. Returns 0,
 * or BRAID_ESTATE if the future is already done (nothing moved: the first
 * outcome is kept). */
int braid_future_set_outcome(braid_future_t *f, braid_buf_t *out, int failed);
/* The same, except that a small outcome naming no object is copied into
 * the future and out keeps its memory (emptied), for the next call's
 * outcome; a bigger one is moved as above. On BRAID_ESTATE out is
 * untouched. */
int braid_future_finish(braid_future_t *f, braid_buf_t *out, int failed);
/* Finishes the future with a core failure instead of an encoded value
 * (e.g. BRAID_EBROKEN with "A thread initializer failed..."); msg is
 * copied (NULL: braid_strerror(code)). BRAID_ESTATE if already done. */
int braid_future_set_error(braid_future_t *f, int code, const char *msg);

/* Blocks until the future is done or the deadline passes. Returns 0,
 * BRAID_ETIMEOUT or BRAID_ECANCELLED (the calling thread was cancelled). */
/* Marks / tells whether the job that finished f drew a trace flow to it. */
void braid_future_set_traced(braid_future_t *f);
int braid_future_traced(braid_future_t *f);
int braid_future_wait(braid_future_t *f, int64_t deadline);

/* After done: the outcome. out, failed: the encoded outcome (empty when
 * cancelled or failed with a core error); code: 0, BRAID_ECANCELLED
 * (cancelled) or the set_error code; msg: set_error's message or NULL.
 * The pointers stay valid while f is referenced (a done future never
 * changes). Returns 0 or BRAID_ESTATE when not done. Any pointer may be
 * NULL. */
int braid_future_outcome(braid_future_t *f, const braid_buf_t **out, int *failed, int *code,
                         const char **msg);

/* Registers a done callback to be delivered through inbox with id:
 * when f becomes done, (f, id) is posted to inbox (in registration order).
 * Returns 0 when registered, 1 if f is already done (nothing registered:
 * the caller runs the callback at once), or BRAID_ENOMEM. */
int braid_future_add_callback(braid_future_t *f, braid_inbox_t *inbox, uint64_t id);

/* ---- inboxes: the callbacks waiting to run in one Lua state ---- */

/* A new inbox with one reference. Returns 0 or BRAID_ENOMEM. */
int braid_inbox_new(braid_inbox_t **out);
void braid_inbox_retain(braid_inbox_t *ib);
void braid_inbox_release(braid_inbox_t *ib); /* NULL is ignored */
/* Refuses later posts and drops queued entries (their state is gone). */
void braid_inbox_close(braid_inbox_t *ib);
/* Takes the oldest delivery: returns 1 and sets *f (a reference the
 * caller releases) and *id, or 0 when empty. */
int braid_inbox_take(braid_inbox_t *ib, braid_future_t **f, uint64_t *id);
/* Whether deliveries are queued (a snapshot). */
int braid_inbox_pending(braid_inbox_t *ib);

/* ---- wait sets: waiting on many futures (wait, as_completed) ---- */

/* Watches fs[0..n) (duplicates allowed; each index is reported once) and,
 * when inbox is not NULL, that inbox. Retains the futures. Returns 0 or
 * BRAID_ENOMEM. Used by one thread at a time. */
int braid_waitset_new(braid_waitset_t **out, braid_future_t *const *fs, size_t n,
                      braid_inbox_t *inbox);
/* Returns the index of the next future to become done, in completion
 * order (those done already first, in index order): 0 and *index set;
 * BRAID_EAGAIN when the inbox received a delivery (run the callbacks,
 * then call again); BRAID_EEMPTY when every index was reported;
 * BRAID_ETIMEOUT; BRAID_ECANCELLED. */
int braid_waitset_next(braid_waitset_t *ws, int64_t deadline, size_t *index);
/* How many futures were not yet reported by next. */
size_t braid_waitset_remaining(braid_waitset_t *ws);
/* Stops watching and frees (releases the futures). NULL is ignored. */
void braid_waitset_free(braid_waitset_t *ws);

#ifdef __cplusplus
}
#endif
#endif
