/* New Lua states, the per-state context, protected calls and the buffers
 * that carry encoded calls (lstate.c). Not installed. */
#ifndef BRAID_LSTATE_H
#define BRAID_LSTATE_H

#include <lua.h>

#include "codec.h"
#include "object.h"
#include "waiter.h"

/* Per-state context, stored in the registry. */
typedef struct lbraid_ctx {
    braid_waiter_t *waiter; /* the OS thread's waiter (cancellation) */
    braid_object_t *thread; /* the braid thread running this state, or NULL */
    int main;               /* the state of the main thread/host */
    /* Runs callbacks queued for this state; set by the module that queues
     * them (futures). NULL when there is nothing to deliver. */
    void (*poll)(lua_State *L);
    /* An asyncio loop is running in this state: blocking calls check
     * whether they run inside a task (lbraid_wait). */
    int loop_running;
} lbraid_ctx_t;

/* Replaces the global print with one that writes each line whole. */
void lbraid_install_print(lua_State *L);
/* A new state with the standard libraries, braid preloaded, whole-line
 * print, and package.path/cpath copied from `from` (may be NULL).
 * Returns NULL when out of memory. */
lua_State *lbraid_newstate(lua_State *from);
/* The same for a braid thread (no package paths copied), its blocks in a
 * per-state region (arena.h): close it with lbraid_closestate_thread
 * only. May be built on one OS thread and used on another. NULL when out
 * of memory. */
lua_State *lbraid_newstate_thread(void);
void lbraid_closestate_thread(lua_State *L);
/* Tells L's arena (if it has one) that what it has touched so far is what
 * the next thread states will touch too (braid_arena_learn). */
void lbraid_state_learn(lua_State *L);
/* A bare state (no libraries) for the braid executable's main thread, its
 * freed small blocks kept for reuse (core/blockcache.h): close it with
 * lbraid_closestate_main only. NULL when out of memory. */
lua_State *lbraid_newstate_main(void);
void lbraid_closestate_main(lua_State *L);
/* The state's context (created on first use). */
lbraid_ctx_t *lbraid_ctx(lua_State *L);
/* lua_pcall with a message handler that records the traceback: on error
 * the error value is on the stack and braid.traceback(err) returns the
 * traceback. Returns the lua_pcall status. */
int lbraid_pcall(lua_State *L, int nargs, int nresults);
/* Stores tb as the traceback of the error value at idx. */
void lbraid_set_traceback(lua_State *L, int idx, const char *tb);
/* Pushes the traceback recorded for the value at idx, or nil. */
void lbraid_push_traceback(lua_State *L, int idx);
/* Runs callbacks queued for this state (see futures). Call on entry to any
 * blocking braid call. */
void lbraid_poll(lua_State *L);

/* Pushes a userdata holding an empty braid_buf_t that is freed by __gc, so
 * a buffer being filled is not leaked when an encode raises. Move its
 * contents out (braid_buf_move) to keep them. Stack: +1. */
braid_buf_t *lbraid_push_buf(lua_State *L);
/* Pushes a to-be-closed box holding an empty buffer, reused per state:
 * closing it (lua_pop/lua_closeslot, or an error unwinding) empties it and
 * keeps its memory for the next use. Move contents out to keep them.
 * Stack: +1. */
braid_buf_t *lbraid_take_scratch(lua_State *L);
/* Runs an encoded call (a sequence: fn, args...) in L, protected. On
 * success encodes the results as a sequence into out and returns 0; on
 * error encodes (error value, traceback) into out and returns 1. Never
 * raises; leaves L's stack as it was. */
int lbraid_run_call(lua_State *L, const braid_buf_t *call, braid_buf_t *out);
/* Writes the failure outcome of lbraid_run_call into out: the error value
 * at erridx and its traceback, or a TypeError saying what the error was if
 * the value cannot cross. Never raises; leaves the stack as it was. */
void lbraid_encode_failure(lua_State *L, int erridx, braid_buf_t *out);
/* Decodes an outcome written by lbraid_run_call: pushes the results and
 * returns their count, or (failed) re-raises the error value with its
 * remote traceback recorded for braid.traceback. */
int lbraid_push_outcome(lua_State *L, const braid_buf_t *out, int failed);

#endif
