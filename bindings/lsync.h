/* The primitives' half of braid.threading (lsync.c), and the helpers the
 * threads' half shares with it. Not installed. */
#ifndef BRAID_LSYNC_H
#define BRAID_LSYNC_H

#include "lbraid.h"
#include "sync.h"

#define TIMEOUT_MAX 9223372036.0

/* Adds Lock, RLock, Condition, Semaphore, BoundedSemaphore, Event and
 * Barrier to the module table at mod, and their method tables to the
 * table at methods (for the Lua half's with/guard). Stack: unchanged. */
void lsync_open(lua_State *L, int mod, int methods);
/* Registers the metatable of one of those types alone, its method table
 * in methods[key] unless methods is 0. Returns 0 if type is not one of
 * them. Stack: unchanged. */
int lsync_open_meta(lua_State *L, int methods, const braid_object_type_t *type);
/* Registers the metatable of a braid object type, keeping its method
 * table in methods[key] (methods 0: the type alone, without its module:
 * a method table filled on demand, lbraid_newmeta_lazy); the methods get the
 * metatable as upvalue 1 and its address (light userdata) as upvalue 2
 * (for the fast check of their box). Stack: unchanged. */
void lsync_add_meta(lua_State *L, int methods, const char *key, const braid_object_type_t *type,
                    const luaL_Reg *fns);
/* Pushes a new box for obj (dropping the creation reference), or raises
 * the core error rc. Returns 1. */
int lsync_push_new(lua_State *L, int rc, braid_object_t *obj);

/* Inside an asyncio loop, blocking waits go through lbraid_wait with the
 * stack laid out as 1 the object's box, 2 the deadline. */
void *lsync_box_at1(lua_State *L);
int64_t lsync_deadline_at2(lua_State *L);
/* Whether this state runs an asyncio loop (waits must go through lbraid_wait). */
int lsync_in_loop(lua_State *L);
/* Lays out the stack as above and runs wo through lbraid_wait. */
int lsync_wait_in_loop(lua_State *L, int64_t deadline, const lbraid_waitop_t *wo);

/* Boxes (lsync.c, lsync_signal.c). */
/* Whether the value at idx has the metatable whose address the running
 * method carries as upvalue 2 (add_meta; upvalue 1 anchors that
 * metatable): two pointer reads, no generic equality. A function without
 * upvalues sees NULL there: never ours. Leaves the metatable, if any, on
 * the stack. */
static inline int lsync_box_ours(lua_State *L, int idx)
{
    return lua_getmetatable(L, idx) &&
           lua_topointer(L, -1) == lua_touserdata(L, lua_upvalueindex(2));
}

/* The object in the box at idx: a box with exactly our metatable is ours,
 * with no registry lookup; anything else takes lbraid_check_object's
 * checks and errors. Stack: unchanged. */
static inline braid_object_t *lsync_box_check(lua_State *L, int idx,
                                              const braid_object_type_t *type)
{
    int top = lua_gettop(L);
    int ours = lsync_box_ours(L, idx);
    lua_settop(L, top);
    if (ours) {
        lbraid_box_t *box = lua_touserdata(L, idx);
        if (box->obj)
            return box->obj;
    }
    return lbraid_check_object(L, idx, type);
}

/* Maps a wait's result: 0 → true, timeout → false, else raises. */
static inline int lsync_push_acquired(lua_State *L, int rc)
{
    if (rc == 0 || rc == BRAID_ETIMEOUT) {
        lua_pushboolean(L, rc == 0);
        return 1;
    }
    return lbraid_core_error(L, rc, NULL);
}

/* lsync_signal.c: the constructors and method tables lsync.c registers. */
int lsync_sem_new(lua_State *L);
int lsync_bounded_sem_new(lua_State *L);
int lsync_event_new(lua_State *L);
int lsync_barrier_new(lua_State *L);
/* Barrier's __index: methods (upvalue 1), then parties, n_waiting, broken. */
int lsync_barrier_index(lua_State *L);
extern const luaL_Reg lsync_sem_methods[], lsync_event_methods[], lsync_barrier_methods[];

#endif
