/* braid.threading's Semaphore, BoundedSemaphore, Event and Barrier boxes
 * over core/sync.h (registered by lsync.c); inside an asyncio task their
 * waits suspend only the task. */
#include <string.h>

#include "lsync.h"

/* acquire(blocking=true, timeout=nil) of Semaphore. */
static int64_t sem_deadline(lua_State *L, int idx)
{
    int blocking = lua_isnoneornil(L, idx) ? 1 : lua_toboolean(L, idx);
    if (!blocking) {
        if (!lua_isnoneornil(L, idx + 1))
            lbraid_error(L, "ValueError", "can't specify timeout for non-blocking acquire");
        return braid_clock_now();
    }
    return lbraid_opt_deadline(L, idx + 1);
}

/* ---- Semaphore / BoundedSemaphore ---- */

static braid_sem_t *lsem_check(lua_State *L, int idx)
{
    return (braid_sem_t *)lsync_box_check(L, idx, &braid_sem_type);
}

static int sem_new(lua_State *L, int bounded)
{
    static const char *const keys[] = {"value"};
    lbraid_unpack_opts(L, keys, 1);
    lua_Integer v = luaL_optinteger(L, 1, 1);
    if (v < 0)
        return lbraid_error(L, "ValueError", "semaphore initial value must be >= 0");
    braid_sem_t *s = NULL;
    int rc = braid_sem_new(&s, (long)v, bounded);
    return lsync_push_new(L, rc, (braid_object_t *)s);
}

int lsync_sem_new(lua_State *L)
{
    return sem_new(L, 0);
}

int lsync_bounded_sem_new(lua_State *L)
{
    return sem_new(L, 1);
}

static int lsem_acquire_op(lua_State *L)
{
    return braid_sem_acquire(lsync_box_at1(L), lsync_deadline_at2(L));
}

static const lbraid_waitop_t lsem_wait = {lsem_acquire_op, lsync_push_acquired};

static int lsem_acquire(lua_State *L)
{
    braid_sem_t *s = lsem_check(L, 1);
    int64_t deadline = sem_deadline(L, 2);
    lbraid_poll(L);
    if (lsync_in_loop(L))
        return lsync_wait_in_loop(L, deadline, &lsem_wait);
    return lsync_push_acquired(L, braid_sem_acquire(s, deadline));
}

static int lsem_release(lua_State *L)
{
    braid_sem_t *s = lsem_check(L, 1);
    lua_Integer n = luaL_optinteger(L, 2, 1);
    if (n < 1)
        return lbraid_error(L, "ValueError", "n must be one or more");
    if (braid_sem_release(s, (long)n) != 0)
        return lbraid_error(L, "ValueError", "Semaphore released too many times");
    return 0;
}

static int lsem_value(lua_State *L)
{
    lua_pushinteger(L, braid_sem_value(lsem_check(L, 1)));
    return 1;
}

static int lsem_bounded(lua_State *L)
{
    lua_pushboolean(L, braid_sem_bounded(lsem_check(L, 1)));
    return 1;
}

const luaL_Reg lsync_sem_methods[] = {
    {"acquire", lsem_acquire},
    {"release", lsem_release},
    {"_value", lsem_value},
    {"_bounded", lsem_bounded},
    {NULL, NULL},
};

/* ---- Event ---- */

static braid_event_t *levent_check(lua_State *L, int idx)
{
    return (braid_event_t *)lsync_box_check(L, idx, &braid_event_type);
}

int lsync_event_new(lua_State *L)
{
    lbraid_unpack_opts(L, NULL, 0);
    braid_event_t *e = NULL;
    int rc = braid_event_new(&e);
    return lsync_push_new(L, rc, (braid_object_t *)e);
}

static int levent_set(lua_State *L)
{
    braid_event_set(levent_check(L, 1));
    return 0;
}

static int levent_clear(lua_State *L)
{
    braid_event_clear(levent_check(L, 1));
    return 0;
}

static int levent_is_set(lua_State *L)
{
    lua_pushboolean(L, braid_event_is_set(levent_check(L, 1)));
    return 1;
}

static int levent_wait_done(lua_State *L, int rc)
{
    if (rc < 0)
        return lbraid_core_error(L, rc, NULL);
    lua_pushboolean(L, rc);
    return 1;
}

static int levent_wait_core(lua_State *L)
{
    return braid_event_wait(lsync_box_at1(L), lsync_deadline_at2(L));
}

static const lbraid_waitop_t levent_wait_op = {levent_wait_core, levent_wait_done};

static int levent_wait(lua_State *L)
{
    braid_event_t *e = levent_check(L, 1);
    if (braid_event_is_set(e)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    int64_t deadline = lbraid_opt_deadline(L, 2);
    lbraid_poll(L);
    if (lsync_in_loop(L))
        return lsync_wait_in_loop(L, deadline, &levent_wait_op);
    return levent_wait_done(L, braid_event_wait(e, deadline));
}

const luaL_Reg lsync_event_methods[] = {
    {"set", levent_set},
    {"clear", levent_clear},
    {"is_set", levent_is_set},
    {"wait", levent_wait},
    {NULL, NULL},
};

/* ---- Barrier ----
 * The action is encoded in the barrier (it runs in whichever thread
 * arrives last); each state decodes it once into the box's user value. */

static braid_barrier_t *lbarrier_check(lua_State *L, int idx)
{
    return (braid_barrier_t *)lbraid_check_object(L, idx, &braid_barrier_type);
}

/* Barrier(parties, action=nil, timeout=nil) */
int lsync_barrier_new(lua_State *L)
{
    static const char *const keys[] = {"parties", "action", "timeout"};
    lbraid_unpack_opts(L, keys, 3);
    int opts = lua_type(L, 4) == LUA_TTABLE ? 4 : 0;
    lua_settop(L, opts ? 4 : 3);
    lua_Integer parties = luaL_checkinteger(L, 1);
    if (!lua_isnil(L, 2) && !lua_isfunction(L, 2)) {
        if (!luaL_getmetafield(L, 2, "__call"))
            return luaL_typeerror(L, 2, "callable");
        lua_pop(L, 1);
    }
    double timeout = lua_isnoneornil(L, 3) ? -1 : (double)luaL_checknumber(L, 3);
    if (parties < 1)
        return lbraid_error(L, "ValueError", "parties must be >= 1");
    braid_buf_t *action = lbraid_push_buf(L);
    if (!lua_isnoneornil(L, 2))
        lbraid_encode(L, 2, action, "action");
    braid_barrier_t *b = NULL;
    int rc = braid_barrier_new(&b, (long)parties);
    if (rc)
        return lbraid_core_error(L, rc, NULL);
    braid_barrier_set_extra(b, action, timeout);
    if (opts)
        lbraid_apply_name(L, opts, (braid_object_t *)b);
    return lsync_push_new(L, 0, (braid_object_t *)b);
}

/* Decodes the braid_buf_t at arg 1 (light userdata). Stack: +1. */
static int ldecode_one(lua_State *L)
{
    const braid_buf_t *b = lua_touserdata(L, 1);
    lbraid_decode(L, b->data, b->len);
    return 1;
}

/* Runs the action (if any) as the last arrival; stack effect 0 or raises. */
static void barrier_action(lua_State *L, braid_barrier_t *b)
{
    const braid_buf_t *action = braid_barrier_action(b);
    int ok = 1;
    if (action->len) {
        if (lua_getiuservalue(L, 1, 1) != LUA_TFUNCTION && !lua_istable(L, -1)) {
            lua_pop(L, 1);
            lua_pushcfunction(L, ldecode_one);
            lua_pushlightuserdata(L, (void *)action);
            if (lbraid_pcall(L, 1, 1) != LUA_OK) {
                braid_barrier_finish(b, 0);
                lua_error(L);
            }
            lua_pushvalue(L, -1);
            lua_setiuservalue(L, 1, 1);
        }
        ok = lbraid_pcall(L, 0, 0) == LUA_OK;
    }
    int rc = braid_barrier_finish(b, ok);
    if (!ok)
        lua_error(L);
    if (rc)
        lbraid_error(L, "BrokenBarrier", "barrier is broken");
}

static int lbarrier_wait(lua_State *L)
{
    braid_barrier_t *b = lbarrier_check(L, 1);
    int64_t deadline;
    if (lua_isnoneornil(L, 2))
        deadline = braid_clock_deadline(braid_barrier_timeout(b));
    else
        deadline = lbraid_opt_deadline(L, 2);
    lbraid_poll(L);
    long idx = 0;
    int rc = braid_barrier_wait(b, deadline, &idx);
    if (rc == BRAID_EBROKEN)
        return lbraid_error(L, "BrokenBarrier", "barrier is broken");
    if (rc)
        return lbraid_core_error(L, rc, NULL);
    if (idx == braid_barrier_parties(b) - 1)
        barrier_action(L, b);
    lua_pushinteger(L, idx);
    return 1;
}

static int lbarrier_abort(lua_State *L)
{
    braid_barrier_abort(lbarrier_check(L, 1));
    return 0;
}

static int lbarrier_reset(lua_State *L)
{
    braid_barrier_reset(lbarrier_check(L, 1));
    return 0;
}

const luaL_Reg lsync_barrier_methods[] = {
    {"wait", lbarrier_wait},
    {"abort", lbarrier_abort},
    {"reset", lbarrier_reset},
    {NULL, NULL},
};

/* __index: methods, then the attributes parties, n_waiting, broken. */
int lsync_barrier_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
        return 1;
    braid_barrier_t *b = lbarrier_check(L, 1);
    const char *k = lua_tostring(L, 2);
    if (!k)
        return 1;
    if (strcmp(k, "parties") == 0)
        lua_pushinteger(L, braid_barrier_parties(b));
    else if (strcmp(k, "n_waiting") == 0)
        lua_pushinteger(L, braid_barrier_n_waiting(b));
    else if (strcmp(k, "broken") == 0)
        lua_pushboolean(L, braid_barrier_broken(b));
    else
        lua_pushnil(L);
    return 1;
}
