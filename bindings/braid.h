/* braid's embedding API, the whole contract between braid and a C host:
 * opening braid in a host's Lua state, shutting it down, and C functions
 * through which the host's own threads feed scripts without a lua_State.
 *
 * Build a host with `cc host.c $(pkg-config --cflags --libs braid)`.
 *
 * Threads and states. A lua_State is only ever touched by one OS thread at
 * a time; braid never touches the host's state from another thread. Every
 * thread a script starts (threading.Thread, a pool worker) runs its own
 * fresh state. The braid_host_* functions below touch no lua_State at all:
 * any OS thread may call them, at any time, on a handle it holds.
 *
 * Errors. Nothing in braid calls exit() or abort() on a runtime error: a
 * failing call returns a negative code (below) or raises a Lua error in the
 * calling state. An uncaught error in a braid thread goes to
 * threading.excepthook (print the traceback on stderr by default), which a
 * host can replace from Lua: `require("braid.threading").excepthook = fn`.
 * Lua's own panic (an error outside any protected call, e.g. a host calling
 * lua_call unprotected) is Lua's business, as always. */
#ifndef BRAID_H
#define BRAID_H

#include <stddef.h>

#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef BRAID_EXPORT
#define BRAID_EXPORT __attribute__((visibility("default")))
#endif

/* Result codes: 0 is success, failures are negative. The same values as
 * braid's core (core/error.h); braid_host_strerror names them. */
#ifndef BRAID_ERROR_H
#define BRAID_ERROR_H
enum {
    BRAID_OK = 0,
    BRAID_ENOMEM = -1,     /* out of memory */
    BRAID_ETIMEOUT = -2,   /* the timeout passed */
    BRAID_ECANCELLED = -3, /* the calling braid thread was cancelled */
    BRAID_EEMPTY = -4,     /* get: nothing arrived in time */
    BRAID_EFULL = -5,      /* put: no room in time */
    BRAID_ESHUTDOWN = -6,  /* the queue was shut down */
    BRAID_EBROKEN = -7,
    BRAID_EINVAL = -8, /* a bad argument */
    BRAID_ESTATE = -9, /* e.g. the future is already done */
    BRAID_ENOTOWNER = -10,
    BRAID_ECORRUPT = -11, /* malformed encoded value */
    BRAID_ETOOBIG = -12,
    BRAID_ESTALE = -13,
    BRAID_EOS = -14,
    BRAID_EAGAIN = -15,
    BRAID_ETYPE = -16, /* a value of the wrong type (get_scalar: not a scalar) */
    BRAID_EINTR = -17,
    BRAID_ESUSPEND = -18, /* internal: a wait inside an asyncio task suspends it */
    BRAID_EEOF = -19,     /* a pipe or connection reached its end */
};
const char *braid_strerror(int err);
const char *braid_errkind(int err);
#endif

/* ---- opening and closing braid in a host state ---- */

/* Preloads every braid module into L (package.preload), so `require
 * "braid"`, `require "braid.threading"`, ... work, and installs the
 * whole-line print (a line printed by one thread is never split by
 * another's). Call after luaL_openlibs, from the thread owning L.
 * Returns 0. */
BRAID_EXPORT int braid_openlibs(lua_State *L);

/* Like Python at exit: shuts down the executors (pools) created from the
 * calling OS thread and the threads it started, finishing their queued
 * work, then joins their non-daemon threads, waiting at most timeout
 * seconds in all (negative: forever). Threads and pools started from
 * another host thread (say, with its own lua_State) are left alone, so
 * independent host states shut down independently. Call it from the thread
 * owning L, before lua_close(L). Returns 1 when everything finished, 0 if
 * something was still running at the timeout (then do not lua_close a
 * state those threads use; their own states are separate and stay valid). */
BRAID_EXPORT int braid_shutdown(lua_State *L, double timeout);

/* A host function run in every state braid creates for a thread or a pool
 * worker, after the standard libraries and braid are opened: the place to
 * open the host's own libraries (luaL_requiref, package.preload, ...), so
 * that code a script sends to a thread finds them. It runs in protected
 * mode on the new state's OS thread; an error it raises is reported on
 * stderr and the state is used anyway. Set it before any script starts a
 * thread; NULL removes it. One hook per process; not thread-safe against
 * threads being started at the same time. */
typedef void (*braid_state_init_fn)(lua_State *L, void *ud);
BRAID_EXPORT void braid_set_state_init(braid_state_init_fn fn, void *ud);

/* ---- handles that host threads use ----
 * A handle is one counted reference to a braid object (a Queue, Future or
 * Event) that scripts see as the usual Lua object. Take one from a value in
 * a state (braid_host_to*, from the thread owning that state), or create a
 * queue in C and give scripts a box for it (braid_host_push). Each handle
 * is released exactly once with braid_host_release, from any thread. */
typedef struct braid_queue braid_queue_t;
typedef struct braid_future braid_future_t;
typedef struct braid_event braid_event_t;

/* The object at idx as a new handle, or NULL if it is not one (a Queue of
 * any kind: Queue, LifoQueue, PriorityQueue, SimpleQueue). */
BRAID_EXPORT braid_queue_t *braid_host_toqueue(lua_State *L, int idx);
BRAID_EXPORT braid_future_t *braid_host_tofuture(lua_State *L, int idx);
BRAID_EXPORT braid_event_t *braid_host_toevent(lua_State *L, int idx);
/* Pushes the Lua object for a handle (a queue, future or event) onto L's
 * stack; the handle stays the caller's. From the thread owning L. */
BRAID_EXPORT void braid_host_push(lua_State *L, void *handle);
/* Drops a handle (any of the three kinds; NULL is ignored). Thread-safe. */
BRAID_EXPORT void braid_host_release(void *handle);
/* A new queue.Queue (maxsize <= 0: unbounded) as a handle, or NULL when
 * out of memory. */
BRAID_EXPORT braid_queue_t *braid_host_queue_new(long maxsize);

/* ---- values host threads send and receive ----
 * A scalar is what C can say without Lua: nil, a boolean, an integer, a
 * float, or a string (bytes, any content). Richer values (tables, ...)
 * travel as encoded bytes: what `braid.encode(v)` returns in a script,
 * which `braid.decode(s)` turns back into a value. Braid objects inside
 * encoded bytes are named by id and not kept alive by the bytes: decoding
 * after the last reference went away raises a ValueError. */
typedef enum braid_scalar_type {
    BRAID_NIL = 0,
    BRAID_BOOLEAN,
    BRAID_INTEGER,
    BRAID_NUMBER,
    BRAID_STRING
} braid_scalar_type_t;

typedef struct braid_scalar {
    braid_scalar_type_t type;
    union {
        int boolean;
        long long integer;
        double number;
        struct {
            const char *ptr; /* received: malloc'd, NUL-terminated extra */
            size_t len;
        } string;
    } v;
} braid_scalar_t;

/* Frees the string a get filled in (no-op for other types; safe twice). */
BRAID_EXPORT void braid_scalar_free(braid_scalar_t *s);

/* Timeouts are in seconds: negative waits forever, 0 does not block.
 * Handles must be live (not NULL, not released). Every call below is
 * thread-safe and touches no lua_State; called from a
 * braid thread, a cancellation of that thread ends the wait
 * (BRAID_ECANCELLED). */

/* Puts a scalar (a string's bytes are copied). Returns 0, BRAID_EFULL,
 * BRAID_ESHUTDOWN, BRAID_ETYPE (priority queue: not comparable with what
 * is queued), BRAID_EINVAL (bad type) or BRAID_ENOMEM. */
BRAID_EXPORT int braid_host_queue_put(braid_queue_t *q, const braid_scalar_t *v, double timeout);
/* Puts an encoded value (the bytes are checked and copied). Also returns
 * BRAID_ECORRUPT for bytes that are not one encoded value. */
BRAID_EXPORT int braid_host_queue_put_encoded(braid_queue_t *q, const void *data, size_t len,
                                              double timeout);
/* Takes the next item as a scalar into *out (free a string with
 * braid_scalar_free). Returns 0, BRAID_EEMPTY, BRAID_ESHUTDOWN (shut down
 * and drained), BRAID_ETYPE (the item is not a scalar: it is dropped; use
 * get_encoded on queues that carry tables) or BRAID_ENOMEM. */
BRAID_EXPORT int braid_host_queue_get(braid_queue_t *q, braid_scalar_t *out, double timeout);
/* Takes the next item as encoded bytes: *data is malloc'd (free() it),
 * *len its length. Returns as braid_host_queue_get, never BRAID_ETYPE. */
BRAID_EXPORT int braid_host_queue_get_encoded(braid_queue_t *q, void **data, size_t *len,
                                              double timeout);
/* queue.shutdown(immediate): later puts fail, gets drain then fail. */
BRAID_EXPORT void braid_host_queue_shutdown(braid_queue_t *q, int immediate);

/* Completes a Future: result() then returns the value (a scalar, or the
 * decoded bytes); set_exception makes result() raise message (a string).
 * Returns 0, BRAID_ESTATE (already done: the first outcome stays),
 * BRAID_ECORRUPT (bytes) or BRAID_ENOMEM. Done-callbacks run in the states
 * that registered them, as for any future. */
BRAID_EXPORT int braid_host_future_set_result(braid_future_t *f, const braid_scalar_t *v);
BRAID_EXPORT int braid_host_future_set_result_encoded(braid_future_t *f, const void *data,
                                                      size_t len);
BRAID_EXPORT int braid_host_future_set_exception(braid_future_t *f, const char *message);

/* Event.set() / clear() / is_set(). */
BRAID_EXPORT void braid_host_event_set(braid_event_t *e);
BRAID_EXPORT void braid_host_event_clear(braid_event_t *e);
BRAID_EXPORT int braid_host_event_is_set(braid_event_t *e);

/* A message for a result code; never NULL. */
BRAID_EXPORT const char *braid_host_strerror(int code);

/* Entry point for stock lua5.4 (`require "braid"` finds braid.so). */
BRAID_EXPORT int luaopen_braid(lua_State *L);

#ifdef __cplusplus
}
#endif
#endif
