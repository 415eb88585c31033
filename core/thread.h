/* OS threads as shared braid objects: start with a C entry function, join
 * with a deadline, names, idents, daemon flag, cancellation, the registry. */
#ifndef BRAID_THREAD_H
#define BRAID_THREAD_H

#include <stdint.h>

#include "codec.h"
#include "object.h"
#include "waiter.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct braid_thread braid_thread_t;

/* Runs in the new OS thread, whose current waiter is already the thread's
 * own (braid_thread_waiter). */
typedef void (*braid_thread_fn)(braid_thread_t *t, void *arg);
/* Called under the thread's mutex by braid_thread_cancel (any thread). */
typedef void (*braid_thread_cancel_fn)(void *data);

enum { BRAID_THREAD_NEW, BRAID_THREAD_RUNNING, BRAID_THREAD_DONE };

extern const braid_object_type_t braid_thread_type;

/* A new, unstarted thread object. name NULL means "Thread-N" with the next
 * process-wide number. Returns 0 or BRAID_ENOMEM/BRAID_EOS. */
int braid_thread_new(braid_thread_t **out, const char *name, int daemon);
/* Starts the OS thread running fn(t, arg). BRAID_ESTATE if already started
 * (or not a startable thread), BRAID_EOS if the OS refuses (fn not run).
 * The thread is in the registry (enumerate) when this returns. */
int braid_thread_start(braid_thread_t *t, braid_thread_fn fn, void *arg);
/* Waits until the thread has finished (fn returned). BRAID_ESTATE when it
 * was never started or is the calling thread; BRAID_ETIMEOUT;
 * BRAID_ECANCELLED. */
int braid_thread_join(braid_thread_t *t, int64_t deadline);
/* BRAID_THREAD_NEW / _RUNNING / _DONE (the main thread is RUNNING). */
int braid_thread_state(braid_thread_t *t);
int braid_thread_is_alive(braid_thread_t *t);

/* A malloc'd copy of the name (caller frees), NULL on OOM. */
char *braid_thread_name(braid_thread_t *t);
/* Returns 0 or BRAID_ENOMEM. */
int braid_thread_set_name(braid_thread_t *t, const char *name);
int braid_thread_daemon(braid_thread_t *t);
/* BRAID_ESTATE once started. */
int braid_thread_set_daemon(braid_thread_t *t, int daemon);
/* pthread_self() of the thread as an integer; 0 before start. */
uint64_t braid_thread_ident(braid_thread_t *t);
/* The kernel thread id; 0 before start. Waits for a just-started thread
 * to record it. */
long braid_thread_native_id(braid_thread_t *t);
/* The thread's own waiter (only for threads started by braid). */
braid_waiter_t *braid_thread_waiter(braid_thread_t *t);

/* Asks the thread to stop: sets the flag, cancels its waiter (its current
 * or next braid wait returns BRAID_ECANCELLED) and calls the cancel hook.
 * BRAID_ESTATE for threads not started by braid or already finished. */
int braid_thread_cancel(braid_thread_t *t);
int braid_thread_cancel_requested(braid_thread_t *t);
/* Installs (fn != NULL) or removes the cancel hook; the thread itself does
 * this around the lifetime of whatever the hook touches. */
void braid_thread_set_cancel_hook(braid_thread_t *t, braid_thread_cancel_fn fn, void *data);

/* Payloads for the binding, moved into the thread object. `self` is the
 * thread's encoded description (immutable once started, readable by any
 * state); `args` is the start payload, read by the thread itself. Both only
 * before start (BRAID_ESTATE after). */
int braid_thread_set_payload(braid_thread_t *t, braid_buf_t *self, braid_buf_t *args);
/* The encoded description (empty if none); valid while t is referenced and
 * started. */
const braid_buf_t *braid_thread_self_buf(braid_thread_t *t);
/* The start payload; for the running thread only. */
braid_buf_t *braid_thread_args_buf(braid_thread_t *t);
/* Stores the outcome (called by the thread before its entry returns): the
 * buffer is moved; tb may be NULL. */
void braid_thread_set_result(braid_thread_t *t, braid_buf_t *result, int failed, const char *tb);
/* After join: the outcome (pointers valid while t is referenced). Returns
 * 0, or BRAID_ESTATE if the thread has not finished. */
int braid_thread_result(braid_thread_t *t, const braid_buf_t **result, int *failed,
                        const char **tb);

/* Prepared resources: `prep` builds what a thread needs before it can run
 * (the binding: a fresh Lua state; it must never run user code), `discard`
 * frees one. A helper OS thread keeps a few ready, builds the next one
 * while threads run and, after 2 s without takers, frees them and exits.
 * Setting the same pair again is a no-op. */
typedef void *(*braid_thread_prep_fn)(void);
typedef void (*braid_thread_discard_fn)(void *res);
void braid_thread_set_prep(braid_thread_prep_fn prep, braid_thread_discard_fn discard);
/* A prepared resource, now the caller's, or NULL if none is ready (then
 * the caller builds its own); asks the helper for the next one. */
void *braid_thread_take_prepared(void);
/* Internal (thread_pool.c, thread_prep.c): keeps braid's shared library mapped
 * for OS threads that outlive a host's lua_close. */
void braid__thread_pin_library(void);
/* Internal (process.c): a fork waits for the preparer's build in hand and
 * for exiting workers; after it, child = 1 in the child (the forking
 * thread alone there, no preparer, no parked worker), 0 in the parent. */
void braid__thread_before_fork(void);
void braid__thread_after_fork(int child);
/* Internal (thread.c): the preparer's part of the two above. */
void braid__thread_prep_before_fork(void);
void braid__thread_prep_after_fork(int child);

/* The calling OS thread's thread object (borrowed, never NULL except on
 * OOM): the braid thread running it, the main thread, or a "Dummy-N"
 * object for a foreign thread. */
braid_thread_t *braid_thread_current(void);
/* The process's main thread object (borrowed). */
braid_thread_t *braid_thread_main(void);
/* Alive threads: the main thread first, then started threads in start
 * order. *out is malloc'd, each entry retained; free with
 * braid_thread_list_free. */
int braid_thread_enumerate(braid_thread_t ***out, size_t *n);
void braid_thread_list_free(braid_thread_t **list, size_t n);
long braid_thread_active_count(void);
/* Joins every running non-daemon thread (other than the caller), including
 * ones started meanwhile. Returns 0, BRAID_ETIMEOUT or BRAID_ECANCELLED. */
int braid_thread_join_nondaemon(int64_t deadline);
/* The calling OS thread's group: a braid thread's is the group of the
 * thread that created it; any other OS thread (the main thread, a host's
 * thread) is a group of its own. Embedders shut down one group at a time. */
uint64_t braid_thread_group(void);
/* braid_thread_join_nondaemon for the threads of one group (0: all). */
int braid_thread_join_nondaemon_group(uint64_t group, int64_t deadline);

#ifdef __cplusplus
}
#endif
#endif
