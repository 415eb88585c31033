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
 * table in methods[key] (methods 0: not kept); the methods get the
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

#endif
