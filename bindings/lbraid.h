/* Internal API shared by the binding files: errors, object boxes, the Lua
 * side of the codec, arguments; and (lstate.h) new states and per-state
 * context. Not installed. */
#ifndef BRAID_LBRAID_H
#define BRAID_LBRAID_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "clock.h"
#include "codec.h"
#include "error.h"
#include "object.h"
#include "waiter.h"

#define BRAID_EXPORT __attribute__((visibility("default")))

/* ---- errors (lerror.c) ---- */

/* Pushes a new braid.Error {kind=, message=} (traceback/cause unset). */
void lbraid_push_error(lua_State *L, const char *kind, const char *message);
/* Raises a braid.Error of the given kind; never returns. */
int lbraid_error(lua_State *L, const char *kind, const char *fmt, ...);
/* Raises the braid.Error a core error code maps to (braid_errkind), with
 * message "<what>: <braid_strerror>" or just the strerror if what is NULL.
 * BRAID_ECANCELLED raises Cancelled. Never returns. */
int lbraid_core_error(lua_State *L, int code, const char *what);
/* Pushes the braid.Error metatable (braid.Error), creating it once. */
int lbraid_open_error(lua_State *L);
/* Pushes the braid.trace table (ltrace.c). */
void lbraid_open_trace(lua_State *L);
/* Tracing on: names the running job after the function at idx
 * ("source:line"). */
void lbraid_trace_job_name(lua_State *L, int idx);
/* Tracing on: an "error" instant for the error value at idx. */
void lbraid_trace_error(lua_State *L, int idx);
/* True if the value at idx is a braid.Error (of kind, when kind != NULL). */
int lbraid_is_error(lua_State *L, int idx, const char *kind);

/* ---- object boxes (lobject.c) ---- */

/* A userdata box holding exactly one reference (NULL once closed).
 * unfiled: not yet in this state's boxes table (lbraid_push_new_object);
 * filed the first time its object leaves the box (lbraid_to_object). */
typedef struct lbraid_box {
    braid_object_t *obj;
    int unfiled;
} lbraid_box_t;

/* Creates the metatable for a braid object type (named type->name) with
 * methods in __index, plus __gc, __close (drops the reference), __tostring,
 * __name, and a marker so the codec can send boxes by reference. Extra
 * metamethods can be set on the table left on the stack. Stack: +1. */
void lbraid_newmeta(lua_State *L, const braid_object_type_t *type, const luaL_Reg *methods);
/* The same; self_up: each method gets the metatable as upvalue 1 and its
 * address as upvalue 2. */
void lbraid_newmeta_up(lua_State *L, const braid_object_type_t *type, const luaL_Reg *methods,
                       int self_up);
/* The same for a type registered alone (lbraid_load_meta): its method
 * table starts empty and makes each C method on its first lookup; a key
 * that is none of them requires type->module (whose script may add it)
 * and is looked up in the method table that registers. methods must
 * outlive the state (a static list). */
void lbraid_newmeta_lazy(lua_State *L, const braid_object_type_t *type, const luaL_Reg *methods,
                         int self_up);
/* Pushes a new box holding a new reference to obj (retains). Loads
 * type->module first if its metatable is not registered yet. Stack: +1. */
void lbraid_push_object(lua_State *L, braid_object_t *obj);
/* Pushes this state's weak table of boxes (object id -> box). Stack: +1. */
void lbraid_push_boxes(lua_State *L);
/* lbraid_push_object for an object this state cannot have a box for yet
 * (just created here), with its type's metatable at meta: no lookups. The
 * box has no user value and is left out of the boxes table until its
 * object is handed on (lbraid_to_object), the only way it can come back
 * to be pushed again. Stack: +1. */
void lbraid_push_new_object(lua_State *L, braid_object_t *obj, int meta);
/* Pushes the registry table stored under key, creating it with the weak
 * mode ("k", "v" or "kv") on first use. Stack: +1. */
void lbraid_push_weak_table(lua_State *L, const void *key, const char *mode);
/* The object in the box at idx, checked against type; raises an argument
 * error otherwise (and a ValueError if the box was closed). */
braid_object_t *lbraid_check_object(lua_State *L, int idx, const braid_object_type_t *type);
/* Any braid object at idx, or NULL. */
braid_object_t *lbraid_to_object(lua_State *L, int idx);
/* The full userdata at idx if it is size bytes long and holds tag (a
 * static address only its maker stores) at offset; else NULL. A check for
 * hot paths, cheaper than luaL_checkudata's lookup of the metatable by name. */
void *lbraid_to_tagged(lua_State *L, int idx, size_t size, size_t offset, const char *tag);
/* Constructor options: if argument 1 is a plain table, replaces the
 * arguments by its fields keys[0..n-1] (the positional form) followed by
 * the table itself at n+1; checks its name= is a string or nil. Otherwise
 * leaves the arguments as they are. */
void lbraid_unpack_opts(lua_State *L, const char *const *keys, int n);
/* Names obj from the name= field of the table at idx, if any. */
void lbraid_apply_name(lua_State *L, int idx, braid_object_t *obj);

/* ---- codec (lcodec_enc.c, lcodec_dec.c) ---- */

/* Encodes the value at idx into buf (appending). On a value that cannot
 * cross, raises TypeError naming its path, rooted at `root` ("args"). */
void lbraid_encode(lua_State *L, int idx, braid_buf_t *buf, const char *root);
/* Appends the integer v exactly as lbraid_encode writes an integer value
 * (for fast paths that already know the type). */
void lbraid_encode_integer(braid_buf_t *buf, lua_Integer v);
/* A function's encoding kept by a caller that encodes the same function
 * over and over (submit in a burst). fn is the function's address while
 * the memo holds it; the caller keeps that function alive (else another
 * object could take its address). lbraid_memo_free frees its buffer. */
typedef struct lbraid_fnmemo {
    const void *fn;
    void *ctx; /* the state's encoder context */
    int env;   /* the function's one upvalue is _ENV (else it has none) */
    braid_buf_t bytes;
} lbraid_fnmemo_t;
/* lbraid_encode for the value at idx, through memo: when memo holds that
 * function and what its encoding depended on still holds (the module map is
 * current and does not name it; its _ENV upvalue, if any, is a table),
 * appends the kept bytes; else encodes it and keeps its bytes when it is a
 * Lua function the encoder writes from its cached info alone (no upvalue
 * but _ENV, no non-standard global). Returns 1 when memo holds the
 * function at idx afterwards (the caller anchors it), else 0. */
int lbraid_encode_memo(lua_State *L, int idx, braid_buf_t *buf, lbraid_fnmemo_t *memo,
                       const char *root);
/* Encodes n values starting at idx as one sequence (shared references
 * across them kept). Paths are root[1], root[2]... */
void lbraid_encode_seq(lua_State *L, int idx, int n, braid_buf_t *buf, const char *root);
/* Decodes one value and pushes it; raises ValueError on malformed input
 * and on stale object references. Stack: +1. */
void lbraid_decode(lua_State *L, const void *data, size_t len);
/* Decodes a sequence and pushes its values; returns how many. */
int lbraid_decode_seq(lua_State *L, const void *data, size_t len);

/* ---- blocking calls inside asyncio tasks (lwait.c) ---- */

/* A blocking call in two halves: op performs the core wait (reading its
 * arguments from fixed stack slots) and returns the core code; done turns
 * the code into the call's results (pushing them, returning how many) or
 * raises. Both may be called more than once per call (op) and must use
 * absolute stack indices: extra values may sit above the arguments. */
typedef struct lbraid_waitop {
    int (*op)(lua_State *L);
    int (*done)(lua_State *L, int rc);
} lbraid_waitop_t;
/* Runs wo: outside a task, op blocks the OS thread as usual; inside an
 * asyncio task (L is a task's coroutine), op's waits use the task's waiter
 * and a wait that would block yields the coroutine to its loop, which
 * resumes it when the wait can be completed, and op is repeated. Returns
 * as a lua_CFunction does (a yield, or done's count). */
int lbraid_wait(lua_State *L, const lbraid_waitop_t *wo);
/* The running task's waiter when L is the coroutine of the task its loop
 * is running now, else NULL. */
braid_waiter_t *lbraid_task_waiter(lua_State *L);
/* Installs the function at idx as the task hook: called with a coroutine,
 * it returns the task waiter userdata (a braid_waiter_t first) or nil. */
void lbraid_set_task_hook(lua_State *L, int idx);
/* The loop steps the task running in co, whose waiter is w (NULL: not
 * made yet), or (co NULL) has ended the step: what lbraid_task_waiter
 * returns for co without asking the hook. */
void lbraid_task_stepping(lua_State *co, braid_waiter_t *w);
/* Light userdata markers exchanged with the loop: a task yields
 * (THREAD_WAIT, deadline in seconds or nil) while its waiter is pending and
 * (DEFER_CANCEL, err) to hand a cancellation back; the loop resumes a
 * suspended call with (CANCEL, err) to cancel it. */
void *lbraid_marker_thread_wait(void);
void *lbraid_marker_cancel(void);
void *lbraid_marker_defer_cancel(void);

/* ---- asyncio streams (lasyncio.c, lstreams.c) ---- */

struct braid_loop;
/* The core loop of the asyncio loop box at idx (raises if closed). */
struct braid_loop *lasyncio_check_loop(lua_State *L, int idx);
/* Adds the stream functions to the asyncio C table on top of the stack. */
void lstreams_register(lua_State *L);
struct braid_stream;
/* Pushes a box owning s (the caller's reference moves into it). */
void lstreams_push(lua_State *L, struct braid_stream *s);
/* Raises the braid.Error for libuv code rc: ConnectionError or OSError with
 * .errno (the errno name) and .code, message "<what>: <strerror>". */
int lstreams_raise(lua_State *L, int rc, const char *what);
/* Adds the name resolution functions (lresolve.c) to the table on top. */
void lresolve_register(lua_State *L);
/* Adds the subprocess functions (lsubprocess.c) to the table on top. */
void lsubprocess_register(lua_State *L);
/* Adds the async file functions (lfiles.c) to the table on top. */
void lfiles_register(lua_State *L);
/* Adds the luv interop functions (lluv.c) to the table on top. */
void lluv_register(lua_State *L);

/* ---- arguments ---- */

/* Timeout argument: nil or negative -> BRAID_FOREVER, number -> deadline. */
int64_t lbraid_opt_deadline(lua_State *L, int idx);
/* Raises Cancelled if a cancellation is pending for this state's thread
 * (consuming it). */
void lbraid_check_cancel(lua_State *L);

#include "lstate.h"

#endif
