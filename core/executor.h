/* Executors: a pool of worker threads taking encoded calls from a FIFO and
 * finishing their futures; what a worker runs is plugged in (Lua states). */
#ifndef BRAID_EXECUTOR_H
#define BRAID_EXECUTOR_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "future.h"
#include "object.h"
#include "thread.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct braid_executor braid_executor_t;

/* What the workers run. Every hook is called in a worker thread, except
 * free. A process- or MPI-backed runner plugs in here. */
typedef struct braid_executor_ops {
    /* Called once in each new worker before its first task. On success
     * stores the worker's context in *wctx and returns 0; otherwise
     * returns an error and may set *errmsg (malloc'd, freed by the
     * executor): the pool is broken (BRAID_EBROKEN for pending and later
     * submits). */
    int (*worker_start)(void *ud, int index, void **wctx, char **errmsg);
    /* Runs one call (call + aux as given to submit), writing the outcome
     * into out (empty on entry); returns 1 if it failed. */
    int (*run)(void *wctx, const braid_buf_t *call, size_t aux, braid_buf_t *out);
    /* Called when the worker exits (also after a failed start, with the
     * *wctx it left). */
    void (*worker_stop)(void *wctx);
    /* Frees ud when the pool is gone (any thread). May be NULL. */
    void (*free)(void *ud);
} braid_executor_ops_t;

/* "braid.ThreadPoolExecutor", module "braid.futures". */
extern const braid_object_type_t braid_executor_type;

/* A new executor with up to max_workers threads (started on demand),
 * named "<prefix>_<i>". ops and ud are kept (ud freed with ops->free when
 * the pool is gone, even if this call fails). Returns 0, BRAID_EINVAL
 * (max_workers < 1), BRAID_ENOMEM. The executor is a braid object;
 * dropping its last reference shuts it down without waiting. */
int braid_executor_new(braid_executor_t **out, int max_workers, const char *prefix,
                       const braid_executor_ops_t *ops, void *ud);
void braid_executor_retain(braid_executor_t *ex);
void braid_executor_release(braid_executor_t *ex);

/* Queues a call (its contents MOVED or copied in on success, leaving call empty but
 * maybe holding memory for the next one: braid_buf_free it when done;
 * untouched on failure)
 * and returns its future in *out (the caller's reference). Starts a worker
 * when none is idle and fewer than max_workers run. Returns 0,
 * BRAID_ESHUTDOWN (after shutdown), BRAID_EBROKEN (pool broken),
 * BRAID_ENOMEM, BRAID_EOS (no thread could be started and none runs). */
int braid_executor_submit(braid_executor_t *ex, braid_buf_t *call, size_t aux,
                          braid_future_t **out);
/* Stops accepting work; with cancel_futures cancels the queued calls;
 * wakes idle workers so they exit once the queue is empty. With wait,
 * joins the workers (not the calling one) until deadline: returns 0,
 * BRAID_ETIMEOUT or BRAID_ECANCELLED. Callable any number of times. */
int braid_executor_shutdown(braid_executor_t *ex, int wait, int cancel_futures, int64_t deadline);
/* Whether the pool is broken; *msg (may be NULL) gets the reason, valid
 * while ex is referenced. */
int braid_executor_broken(braid_executor_t *ex, const char **msg);
int braid_executor_is_shutdown(braid_executor_t *ex);
int braid_executor_max_workers(braid_executor_t *ex);
/* Worker threads started so far (a snapshot). */
int braid_executor_nthreads(braid_executor_t *ex);
/* Calls queued and not yet taken by a worker (a snapshot). */
size_t braid_executor_pending(braid_executor_t *ex);

/* What a live dump shows of one executor (a snapshot, valid during the
 * visit only). */
typedef struct braid_executor_view {
    const char *prefix; /* its workers' name prefix */
    const char *name;   /* the executor's name (braid_object_set_name) or NULL */
    int max_workers, nthreads, busy, shutdown, broken;
    size_t pending;
    braid_thread_t *const *threads; /* nthreads workers, borrowed */
} braid_executor_view_t;
/* Calls fn once per live executor with its view, then call_fn for each of
 * its queued calls, oldest first (at most max_calls; NULL: none). Both run
 * under the executor's lock: they may only read, copy and take thread
 * locks (braid_thread_name). */
void braid_executor_visit(void (*fn)(void *ud, const braid_executor_view_t *v),
                          void (*call_fn)(void *ud, const braid_buf_t *call, size_t aux),
                          size_t max_calls, void *ud);

/* Shuts down every live executor (finishing queued work) and joins their
 * workers: what the program does at exit, like Python's
 * threading._register_atexit hook. Returns 0, BRAID_ETIMEOUT or
 * BRAID_ECANCELLED. Also runs from an atexit handler. */
int braid_executor_shutdown_all(int64_t deadline);
/* The same for the executors created in one braid_thread_group (0: all). */
int braid_executor_shutdown_group(uint64_t group, int64_t deadline);

#ifdef __cplusplus
}
#endif
#endif
