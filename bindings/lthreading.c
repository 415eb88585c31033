/* braid.threading, C half: Lock, RLock, Condition, Semaphore, Event and
 * Barrier boxes, and OS threads each running their own Lua state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lbraid.h"
#include "sync.h"
#include "thread.h"

#define TIMEOUT_MAX 9223372036.0

static const char HOOK_KEY = 'h'; /* registry: excepthook handed over by the starter */

/* ---- arguments ---- */

/* acquire(blocking=true, timeout=-1) of Lock/RLock, with Python's checks.
 * Returns the deadline. */
static int64_t lock_deadline(lua_State *L, int idx)
{
    int blocking = lua_isnoneornil(L, idx) ? 1 : lua_toboolean(L, idx);
    lua_Number timeout = luaL_optnumber(L, idx + 1, -1);
    if (!blocking && timeout != -1)
        lbraid_error(L, "ValueError", "can't specify a timeout for a non-blocking call");
    if (timeout < 0 && timeout != -1)
        lbraid_error(L, "ValueError", "timeout value must be a non-negative number");
    if (timeout != timeout)
        luaL_argerror(L, idx + 1, "timeout is NaN");
    if (!blocking)
        return braid_clock_now();
    if (timeout == -1)
        return BRAID_FOREVER;
    if (timeout > TIMEOUT_MAX)
        lbraid_error(L, "ValueError", "timeout value is too large");
    return braid_clock_deadline((double)timeout);
}

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

/* Maps a wait's result: 0 → true, timeout → false, else raises. */
static int push_acquired(lua_State *L, int rc)
{
    if (rc == 0 || rc == BRAID_ETIMEOUT) {
        lua_pushboolean(L, rc == 0);
        return 1;
    }
    return lbraid_core_error(L, rc, NULL);
}

/* ---- inside asyncio tasks ----
 * A state running an asyncio loop sends its blocking waits through
 * lbraid_wait, so a wait inside a task suspends only the task. Stack while
 * waiting: 1 the object's box, 2 the deadline. */

static void *box_at1(lua_State *L)
{
    return ((lbraid_box_t *)lua_touserdata(L, 1))->obj;
}

static int64_t deadline_at2(lua_State *L)
{
    return (int64_t)lua_tointeger(L, 2);
}

static int in_loop(lua_State *L)
{
    return lbraid_ctx(L)->loop_running;
}

static int wait_in_loop(lua_State *L, int64_t deadline, const lbraid_waitop_t *wo)
{
    lua_settop(L, 1);
    lua_pushinteger(L, (lua_Integer)deadline);
    return lbraid_wait(L, wo);
}

/* ---- boxes ---- */

/* The object in the box at idx. Methods carry their type's metatable as
 * upvalue 1 (add_meta): a box with exactly that metatable is ours, with no
 * registry lookup; anything else takes lbraid_check_object's checks and
 * errors. (A function without upvalues sees none here and falls back.) */
static braid_object_t *box_check(lua_State *L, int idx, const braid_object_type_t *type)
{
    if (lua_getmetatable(L, idx)) {
        int ours = lua_rawequal(L, -1, lua_upvalueindex(1));
        lua_pop(L, 1);
        if (ours) {
            lbraid_box_t *box = lua_touserdata(L, idx);
            if (box->obj)
                return box->obj;
        }
    }
    return lbraid_check_object(L, idx, type);
}

/* ---- Lock ---- */

static braid_lock_t *llock_check(lua_State *L, int idx)
{
    return (braid_lock_t *)box_check(L, idx, &braid_lock_type);
}

static int push_new(lua_State *L, int rc, braid_object_t *obj)
{
    if (rc)
        return lbraid_core_error(L, rc, NULL);
    lbraid_push_object(L, obj);
    braid_object_release(obj);
    return 1;
}

static int llock_new(lua_State *L)
{
    braid_lock_t *l = NULL;
    int rc = braid_lock_new(&l);
    return push_new(L, rc, (braid_object_t *)l);
}

static int llock_acquire_op(lua_State *L)
{
    return braid_lock_acquire(box_at1(L), deadline_at2(L));
}

static const lbraid_waitop_t llock_wait = {llock_acquire_op, push_acquired};

static int llock_acquire(lua_State *L)
{
    /* uncontended fast path: our box (metatable is upvalue 1, left on the
     * stack under the result), then one CAS (deadline 0 has passed: no
     * clock read), no poll */
    if (lua_gettop(L) == 1) {
        if (lua_getmetatable(L, 1) && lua_rawequal(L, -1, lua_upvalueindex(1))) {
            lbraid_box_t *box = lua_touserdata(L, 1);
            if (box->obj && braid_lock_acquire((braid_lock_t *)box->obj, 0) == 0) {
                lua_pushboolean(L, 1);
                return 1;
            }
        }
        lua_settop(L, 1);
    }
    braid_lock_t *l = llock_check(L, 1);
    if (lua_gettop(L) == 1 && braid_lock_acquire(l, 0) == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    int64_t deadline = lock_deadline(L, 2);
    lbraid_poll(L);
    if (in_loop(L))
        return wait_in_loop(L, deadline, &llock_wait);
    return push_acquired(L, braid_lock_acquire(l, deadline));
}

static int llock_release(lua_State *L)
{
    if (lua_getmetatable(L, 1) && lua_rawequal(L, -1, lua_upvalueindex(1))) {
        lbraid_box_t *box = lua_touserdata(L, 1);
        if (box->obj && braid_lock_release((braid_lock_t *)box->obj) == 0)
            return 0; /* fast path: our box, held */
    }
    if (braid_lock_release(llock_check(L, 1)) != 0)
        return lbraid_error(L, "RuntimeError", "release unlocked lock");
    return 0;
}

static int llock_locked(lua_State *L)
{
    lua_pushboolean(L, braid_lock_locked(llock_check(L, 1)));
    return 1;
}

static const luaL_Reg llock_methods[] = {
    {"acquire", llock_acquire},
    {"release", llock_release},
    {"locked", llock_locked},
    {NULL, NULL},
};

/* ---- RLock ---- */

static braid_rlock_t *lrlock_check(lua_State *L, int idx)
{
    return (braid_rlock_t *)box_check(L, idx, &braid_rlock_type);
}

static int lrlock_new(lua_State *L)
{
    braid_rlock_t *l = NULL;
    int rc = braid_rlock_new(&l);
    return push_new(L, rc, (braid_object_t *)l);
}

static int lrlock_acquire_op(lua_State *L)
{
    return braid_rlock_acquire(box_at1(L), deadline_at2(L));
}

static const lbraid_waitop_t lrlock_wait = {lrlock_acquire_op, push_acquired};

static int lrlock_acquire(lua_State *L)
{
    braid_rlock_t *l = lrlock_check(L, 1);
    int64_t deadline = lock_deadline(L, 2);
    if (deadline != BRAID_FOREVER || braid_rlock_acquire(l, 0) != 0) {
        lbraid_poll(L);
        if (in_loop(L))
            return wait_in_loop(L, deadline, &lrlock_wait);
        return push_acquired(L, braid_rlock_acquire(l, deadline));
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int lrlock_release(lua_State *L)
{
    if (braid_rlock_release(lrlock_check(L, 1)) != 0)
        return lbraid_error(L, "RuntimeError", "cannot release un-acquired lock");
    return 0;
}

static int lrlock_locked(lua_State *L)
{
    lua_pushboolean(L, braid_rlock_locked(lrlock_check(L, 1)));
    return 1;
}

static int lrlock_is_owned(lua_State *L)
{
    lua_pushboolean(L, braid_rlock_is_owned(lrlock_check(L, 1)));
    return 1;
}

static int lrlock_count(lua_State *L)
{
    lua_pushinteger(L, braid_rlock_count(lrlock_check(L, 1)));
    return 1;
}

static const luaL_Reg lrlock_methods[] = {
    {"acquire", lrlock_acquire},
    {"release", lrlock_release},
    {"locked", lrlock_locked},
    {"_is_owned", lrlock_is_owned},
    {"_recursion_count", lrlock_count},
    {NULL, NULL},
};

/* ---- Condition ---- */

static braid_cond_t *lcond_check(lua_State *L, int idx)
{
    return (braid_cond_t *)box_check(L, idx, &braid_cond_type);
}

/* Condition(lock=RLock()) */
static int lcond_new(lua_State *L)
{
    braid_object_t *lock = NULL;
    int own = 0;
    if (lua_isnoneornil(L, 1)) {
        braid_rlock_t *rl;
        int rc = braid_rlock_new(&rl);
        if (rc)
            return lbraid_core_error(L, rc, NULL);
        lock = (braid_object_t *)rl;
        own = 1;
    } else {
        lock = lbraid_to_object(L, 1);
        if (!lock || (lock->type != &braid_lock_type && lock->type != &braid_rlock_type))
            return luaL_typeerror(L, 1, "braid.Lock or braid.RLock");
    }
    braid_cond_t *c = NULL;
    int rc = braid_cond_new(&c, lock);
    if (own)
        braid_object_release(lock);
    return push_new(L, rc, (braid_object_t *)c);
}

static int lcond_acquire(lua_State *L)
{
    braid_object_t *lock = braid_cond_lock(lcond_check(L, 1));
    int64_t deadline = lock_deadline(L, 2);
    lbraid_poll(L);
    if (in_loop(L)) { /* the lock's own wait, with its box at 1 */
        lua_settop(L, 0);
        lbraid_push_object(L, lock);
        return wait_in_loop(
            L, deadline, lock->type == &braid_rlock_type ? &lrlock_wait : &llock_wait);
    }
    if (lock->type == &braid_rlock_type)
        return push_acquired(L, braid_rlock_acquire((braid_rlock_t *)lock, deadline));
    return push_acquired(L, braid_lock_acquire((braid_lock_t *)lock, deadline));
}

static int lcond_release(lua_State *L)
{
    braid_object_t *lock = braid_cond_lock(lcond_check(L, 1));
    if (lock->type == &braid_rlock_type) {
        if (braid_rlock_release((braid_rlock_t *)lock) != 0)
            return lbraid_error(L, "RuntimeError", "cannot release un-acquired lock");
    } else if (braid_lock_release((braid_lock_t *)lock) != 0) {
        return lbraid_error(L, "RuntimeError", "release unlocked lock");
    }
    return 0;
}

static int lcond_wait_done(lua_State *L, int rc)
{
    if (rc == BRAID_ENOTOWNER)
        return lbraid_error(L, "RuntimeError", "cannot wait on un-acquired lock");
    if (rc < 0)
        return lbraid_core_error(L, rc, NULL);
    lua_pushboolean(L, rc);
    return 1;
}

/* In a task, a state machine over the halves of braid_cond_wait. Stack:
 * 1 box, 2 deadline, 3 phase (0 start, 1 waiting, 2 re-acquiring),
 * 4 the RLock count saved, 5 the wait's outcome, 6 a cancellation that
 * arrived while re-acquiring (re-raised once the lock is held). */
static int lcond_wait_op(lua_State *L)
{
    braid_cond_t *c = box_at1(L);
    int64_t deadline = deadline_at2(L);
    int phase = (int)lua_tointeger(L, 3);
    int rc;
    if (phase < 2) {
        long saved = (long)lua_tointeger(L, 4);
        rc = phase == 0 ? braid_cond_release_and_wait(c, deadline, &saved)
                        : braid_cond_wait_again(c, deadline);
        if (phase == 0) {
            if (saved < 0)
                return rc; /* not owned or cancelled: nothing released */
            lua_pushinteger(L, saved);
            lua_replace(L, 4);
        }
        if (rc == BRAID_ESUSPEND) {
            lua_pushinteger(L, 1);
            lua_replace(L, 3);
            return rc;
        }
        lua_pushinteger(L, rc == 0 ? 1 : rc == BRAID_ETIMEOUT ? 0 : rc);
        lua_replace(L, 5);
        lua_pushinteger(L, 2);
        lua_replace(L, 3);
    }
    for (;;) {
        rc = braid_cond_reacquire(c, (long)lua_tointeger(L, 4));
        if (rc != BRAID_ECANCELLED)
            break;
        braid_waiter_take_cancel(braid_waiter_peek_current());
        lua_pushboolean(L, 1);
        lua_replace(L, 6);
    }
    if (rc)
        return rc; /* suspended: the lock is re-acquired on a later call */
    if (lua_toboolean(L, 6))
        return BRAID_ECANCELLED;
    return (int)lua_tointeger(L, 5);
}

static const lbraid_waitop_t lcond_wait_op_t = {lcond_wait_op, lcond_wait_done};

static int lcond_wait(lua_State *L)
{
    braid_cond_t *c = lcond_check(L, 1);
    int64_t deadline = lbraid_opt_deadline(L, 2);
    lbraid_poll(L);
    if (in_loop(L)) {
        lua_settop(L, 1);
        lua_pushinteger(L, (lua_Integer)deadline);
        lua_pushinteger(L, 0);
        lua_pushinteger(L, 0);
        lua_pushinteger(L, 0);
        lua_pushboolean(L, 0);
        return lbraid_wait(L, &lcond_wait_op_t);
    }
    return lcond_wait_done(L, braid_cond_wait(c, deadline));
}

static int lcond_notify(lua_State *L)
{
    braid_cond_t *c = lcond_check(L, 1);
    lua_Integer n = luaL_optinteger(L, 2, 1);
    int rc = braid_cond_notify(c, n < 0 ? 0 : (long)n);
    if (rc == BRAID_ENOTOWNER)
        return lbraid_error(L, "RuntimeError", "cannot notify on un-acquired lock");
    return 0;
}

static int lcond_notify_all(lua_State *L)
{
    if (braid_cond_notify_all(lcond_check(L, 1)) == BRAID_ENOTOWNER)
        return lbraid_error(L, "RuntimeError", "cannot notify on un-acquired lock");
    return 0;
}

static int lcond_is_owned(lua_State *L)
{
    lua_pushboolean(L, braid_cond_is_owned(lcond_check(L, 1)));
    return 1;
}

static int lcond_lock(lua_State *L)
{
    lbraid_push_object(L, braid_cond_lock(lcond_check(L, 1)));
    return 1;
}

static const luaL_Reg lcond_methods[] = {
    {"acquire", lcond_acquire},
    {"release", lcond_release},
    {"wait", lcond_wait},
    {"notify", lcond_notify},
    {"notify_all", lcond_notify_all},
    {"_is_owned", lcond_is_owned},
    {"_lock", lcond_lock},
    {NULL, NULL},
};

/* ---- Semaphore / BoundedSemaphore ---- */

static braid_sem_t *lsem_check(lua_State *L, int idx)
{
    return (braid_sem_t *)box_check(L, idx, &braid_sem_type);
}

static int sem_new(lua_State *L, int bounded)
{
    lua_Integer v = luaL_optinteger(L, 1, 1);
    if (v < 0)
        return lbraid_error(L, "ValueError", "semaphore initial value must be >= 0");
    braid_sem_t *s = NULL;
    int rc = braid_sem_new(&s, (long)v, bounded);
    return push_new(L, rc, (braid_object_t *)s);
}

static int lsem_new(lua_State *L)
{
    return sem_new(L, 0);
}

static int lsem_new_bounded(lua_State *L)
{
    return sem_new(L, 1);
}

static int lsem_acquire_op(lua_State *L)
{
    return braid_sem_acquire(box_at1(L), deadline_at2(L));
}

static const lbraid_waitop_t lsem_wait = {lsem_acquire_op, push_acquired};

static int lsem_acquire(lua_State *L)
{
    braid_sem_t *s = lsem_check(L, 1);
    int64_t deadline = sem_deadline(L, 2);
    lbraid_poll(L);
    if (in_loop(L))
        return wait_in_loop(L, deadline, &lsem_wait);
    return push_acquired(L, braid_sem_acquire(s, deadline));
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

static const luaL_Reg lsem_methods[] = {
    {"acquire", lsem_acquire},
    {"release", lsem_release},
    {"_value", lsem_value},
    {"_bounded", lsem_bounded},
    {NULL, NULL},
};

/* ---- Event ---- */

static braid_event_t *levent_check(lua_State *L, int idx)
{
    return (braid_event_t *)box_check(L, idx, &braid_event_type);
}

static int levent_new(lua_State *L)
{
    braid_event_t *e = NULL;
    int rc = braid_event_new(&e);
    return push_new(L, rc, (braid_object_t *)e);
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
    return braid_event_wait(box_at1(L), deadline_at2(L));
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
    if (in_loop(L))
        return wait_in_loop(L, deadline, &levent_wait_op);
    return levent_wait_done(L, braid_event_wait(e, deadline));
}

static const luaL_Reg levent_methods[] = {
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
static int lbarrier_new(lua_State *L)
{
    lua_settop(L, 3);
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
    return push_new(L, 0, (braid_object_t *)b);
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

static const luaL_Reg lbarrier_methods[] = {
    {"wait", lbarrier_wait},
    {"abort", lbarrier_abort},
    {"reset", lbarrier_reset},
    {NULL, NULL},
};

/* __index: methods, then the attributes parties, n_waiting, broken. */
static int lbarrier_index(lua_State *L)
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

/* ---- threads ---- */

static braid_thread_t *lthread_check(lua_State *L, int idx)
{
    return (braid_thread_t *)lbraid_check_object(L, idx, &braid_thread_type);
}

/* _new(name|nil, daemon) -> handle */
static int lthread_new(lua_State *L)
{
    const char *name = luaL_optstring(L, 1, NULL);
    int daemon = lua_toboolean(L, 2);
    braid_thread_t *t = NULL;
    int rc = braid_thread_new(&t, name, daemon);
    return push_new(L, rc, (braid_object_t *)t);
}

typedef struct start_info {
    char *path, *cpath;
} start_info_t;

static char *dup_package_field(lua_State *L, const char *key)
{
    char *s = NULL;
    lua_getglobal(L, "package");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, key);
        if (lua_type(L, -1) == LUA_TSTRING)
            s = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return s;
}

/* The thread's state asked to stop: raise Cancelled at the next instruction
 * (only if the cancellation is still pending: a blocked call may have
 * delivered it already). */
static void lthread_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    lbraid_check_cancel(L);
}

/* Called by braid_thread_cancel from another OS thread, under the thread's
 * mutex, while the state is alive (as lua.c does from a signal handler). */
static void lthread_interrupt(void *data)
{
    lua_sethook((lua_State *)data, lthread_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* Body of a thread, protected. Upvalue-free; arg 1: the braid_thread_t.
 * Decodes (self, excepthook) and (args..., target) and calls target(args)
 * or, for a Thread with fields or a subclass, threading._run(handle, self,
 * target, args...). Returns the results. */
static int lthread_body(lua_State *L)
{
    braid_thread_t *t = lua_touserdata(L, 1);
    lua_settop(L, 0);
    const braid_buf_t *sb = braid_thread_self_buf(t);
    if (sb->len) {
        int n = lbraid_decode_seq(L, sb->data, sb->len);
        lua_settop(L, lua_gettop(L) - n + 2); /* self, hook */
        lua_rawsetp(L, LUA_REGISTRYINDEX, &HOOK_KEY);
    } else {
        lua_pushnil(L);
    }
    /* stack: self|nil */
    braid_buf_t *ab = braid_thread_args_buf(t);
    int n = lbraid_decode_seq(L, ab->data, ab->len);
    braid_buf_free(ab);
    /* stack: self, args(n-1)..., target */
    lbraid_check_cancel(L);
    if (lua_isnil(L, 1)) {
        lua_insert(L, 2); /* nil, target, args... */
        lua_call(L, n - 1, LUA_MULTRET);
        return lua_gettop(L) - 1;
    }
    lua_insert(L, 2); /* self, target, args... */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "braid.threading");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "_run");
    lua_remove(L, -2);
    lua_insert(L, 1); /* _run, self, target, args... */
    lbraid_push_object(L, (braid_object_t *)t);
    lua_insert(L, 2); /* _run, handle, self, target, args... */
    lua_call(L, n + 2, LUA_MULTRET);
    return lua_gettop(L);
}

/* Encodes the values above arg 1 (a braid_buf_t*) as a sequence. */
static int lthread_encode(lua_State *L)
{
    braid_buf_t *out = lua_touserdata(L, 1);
    lbraid_encode_seq(L, 2, lua_gettop(L) - 1, out, "result");
    return 0;
}

/* Writes "Exception in thread NAME:" and the traceback to stderr. */
static int lthread_default_hook(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "exc_value");
    if (lbraid_is_error(L, -1, "Cancelled"))
        return 0; /* a requested stop is not reported */
    const char *name = NULL;
    char *cname = NULL;
    if (lua_getfield(L, 1, "thread") != LUA_TNIL) {
        lua_getfield(L, -1, "name");
        name = lua_tostring(L, -1);
    }
    if (!name) {
        braid_thread_t *cur = braid_thread_current();
        cname = cur ? braid_thread_name(cur) : NULL;
        name = cname ? cname : "?";
    }
    const char *tb = NULL;
    if (lua_getfield(L, 1, "exc_traceback") == LUA_TSTRING)
        tb = lua_tostring(L, -1);
    else
        tb = luaL_tolstring(L, 2, NULL);
    flockfile(stderr);
    fprintf(stderr, "Exception in thread %s:\n%s\n", name, tb);
    fflush(stderr);
    funlockfile(stderr);
    free(cname);
    return 0;
}

/* Calls hook({exc_value=, exc_traceback=, thread=}) for the error at the top;
 * the thread object comes from threading.current_thread(). Arg 1: the error,
 * arg 2: traceback, arg 3: the hook. */
static int lthread_call_hook(lua_State *L)
{
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "exc_value");
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "exc_traceback");
    lua_getglobal(L, "require");
    lua_pushliteral(L, "braid.threading");
    if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
        lua_getfield(L, -1, "current_thread");
        if (lua_pcall(L, 0, 1, 0) == LUA_OK)
            lua_setfield(L, -3, "thread");
        else
            lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_pushvalue(L, 3);
    lua_insert(L, -2);
    lua_call(L, 1, 0);
    return 0;
}

/* Reports the failure (error value at the top) through the excepthook in
 * force for this thread. Stack effect: 0. */
static void lthread_report(lua_State *L)
{
    int err = lua_gettop(L);
    /* hook: this state's threading.excepthook if reassigned, else the one
     * handed over at start, else the default */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_getfield(L, -1, "braid.threading");
    int hook = 0;
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "excepthook");
        lua_getfield(L, -2, "__excepthook");
        if (!lua_isnil(L, -2) && !lua_rawequal(L, -1, -2)) {
            lua_pop(L, 1);
            hook = lua_gettop(L);
        } else {
            lua_pop(L, 2);
        }
    }
    if (!hook) {
        if (lua_rawgetp(L, LUA_REGISTRYINDEX, &HOOK_KEY) != LUA_TNIL) {
            hook = lua_gettop(L);
        } else {
            lua_pop(L, 1);
            lua_pushcfunction(L, lthread_default_hook);
            hook = lua_gettop(L);
        }
    }
    lua_pushcfunction(L, lthread_call_hook);
    lua_pushvalue(L, err);
    lbraid_push_traceback(L, err);
    lua_pushvalue(L, hook);
    if (lbraid_pcall(L, 3, 0) != LUA_OK) {
        lbraid_push_traceback(L, -1);
        const char *msg = lua_tostring(L, -1) ? lua_tostring(L, -1) : luaL_tolstring(L, -2, NULL);
        flockfile(stderr);
        fprintf(stderr, "Exception in threading.excepthook:\n%s\n", msg);
        fflush(stderr);
        funlockfile(stderr);
    }
    lua_settop(L, err);
}

/* Thread states built ahead of time by core/thread.c's preparer: the
 * standard libraries and braid preloaded, nothing else (no user code). */
static void *lthread_prep(void)
{
    return lbraid_newstate_thread();
}

static void lthread_discard(void *L)
{
    lbraid_closestate_thread(L);
}

/* The new OS thread: its own state, the body, the outcome, the report. */
static void lthread_entry(braid_thread_t *t, void *arg)
{
    start_info_t *si = arg;
    braid_buf_t out;
    braid_buf_init(&out);
    lua_State *L = braid_thread_take_prepared();
    if (!L)
        L = lbraid_newstate_thread();
    if (!L) {
        free(si->path);
        free(si->cpath);
        free(si);
        fprintf(stderr, "Exception in thread: cannot create a Lua state (out of memory)\n");
        braid_thread_set_result(t, &out, 1, NULL);
        return;
    }
    lua_getglobal(L, "package");
    if (si->path) {
        lua_pushstring(L, si->path);
        lua_setfield(L, -2, "path");
    }
    if (si->cpath) {
        lua_pushstring(L, si->cpath);
        lua_setfield(L, -2, "cpath");
    }
    lua_pop(L, 1);
    free(si->path);
    free(si->cpath);
    free(si);
    lbraid_ctx_t *ctx = lbraid_ctx(L);
    ctx->thread = (braid_object_t *)t;
    ctx->waiter = braid_thread_waiter(t);
    braid_thread_set_cancel_hook(t, lthread_interrupt, L);

    lua_pushcfunction(L, lthread_body);
    lua_pushlightuserdata(L, t);
    int failed = lbraid_pcall(L, 1, LUA_MULTRET) != LUA_OK;
    if (!failed) {
        lua_pushcfunction(L, lthread_encode);
        lua_insert(L, 1);
        lua_pushlightuserdata(L, &out);
        lua_insert(L, 2);
        if (lbraid_pcall(L, lua_gettop(L) - 1, 0) != LUA_OK) {
            braid_buf_reset(&out);
            failed = 1; /* a result that cannot cross: report that */
        }
    }
    if (failed) {
        lua_settop(L, 1);
        lthread_report(L);
        lbraid_encode_failure(L, 1, &out);
    }
    braid_thread_set_result(t, &out, failed, NULL);
    braid_thread_set_cancel_hook(t, NULL, NULL);
    lbraid_closestate_thread(L);
    braid_buf_free(&out);
}

/* _start(handle, selfcopy|nil, hook|nil, target, args|nil) */
static int lthread_start(lua_State *L)
{
    braid_thread_t *t = lthread_check(L, 1);
    lua_settop(L, 5);
    if (braid_thread_state(t) != BRAID_THREAD_NEW)
        return lbraid_error(L, "RuntimeError", "threads can only be started once");
    braid_buf_t *self = lbraid_push_buf(L); /* 6 */
    braid_buf_t *args = lbraid_push_buf(L); /* 7 */
    if (!lua_isnil(L, 2) || !lua_isnil(L, 3))
        lbraid_encode_seq(L, 2, 2, self, "thread");
    /* args..., target: the args keep their own paths (args[i]) */
    lua_Integer n = 0;
    if (lua_istable(L, 5)) {
        if (lua_getfield(L, 5, "n") == LUA_TNUMBER)
            n = lua_tointeger(L, -1);
        else
            n = (lua_Integer)lua_rawlen(L, 5);
        lua_pop(L, 1);
    } else if (!lua_isnil(L, 5)) {
        return luaL_typeerror(L, 5, "table");
    }
    if (n < 0 || n > 100000)
        return luaL_argerror(L, 5, "bad args.n");
    luaL_checkstack(L, (int)n + 4, "too many arguments");
    int base = lua_gettop(L) + 1;
    for (lua_Integer i = 1; i <= n; i++)
        lua_geti(L, 5, i);
    lua_pushvalue(L, 4);
    lbraid_encode_seq(L, base, (int)n + 1, args, "args");
    lua_settop(L, 7);
    start_info_t *si = calloc(1, sizeof *si);
    if (!si)
        return lbraid_core_error(L, BRAID_ENOMEM, NULL);
    si->path = dup_package_field(L, "path");
    si->cpath = dup_package_field(L, "cpath");
    int rc = braid_thread_set_payload(t, self, args);
    if (rc == 0)
        rc = braid_thread_start(t, lthread_entry, si);
    if (rc) {
        free(si->path);
        free(si->cpath);
        free(si);
        if (rc == BRAID_ESTATE)
            return lbraid_error(L, "RuntimeError", "threads can only be started once");
        return lbraid_error(L, "RuntimeError", "can't start new thread");
    }
    return 0;
}

static int lthread_join_op(lua_State *L)
{
    return braid_thread_join(box_at1(L), deadline_at2(L));
}

static int lthread_join_done(lua_State *L, int rc)
{
    if (rc && rc != BRAID_ETIMEOUT)
        return lbraid_core_error(L, rc, NULL);
    return 0;
}

static int lthread_result_done(lua_State *L, int rc);

static const lbraid_waitop_t lthread_join_wait = {lthread_join_op, lthread_join_done};
static const lbraid_waitop_t lthread_result_wait = {lthread_join_op, lthread_result_done};

/* Checks a join of the thread at 1 (timeout at 2) and runs it with wo. */
static int lthread_do_join(lua_State *L, const lbraid_waitop_t *wo)
{
    braid_thread_t *t = lthread_check(L, 1);
    int64_t deadline = lbraid_opt_deadline(L, 2);
    if (t == braid_thread_current())
        return lbraid_error(L, "RuntimeError", "cannot join current thread");
    if (braid_thread_state(t) == BRAID_THREAD_NEW)
        return lbraid_error(L, "RuntimeError", "cannot join thread before it is started");
    lbraid_poll(L);
    if (in_loop(L))
        return wait_in_loop(L, deadline, wo);
    return wo->done(L, braid_thread_join(t, deadline));
}

/* _join(handle, timeout) */
static int lthread_join(lua_State *L)
{
    return lthread_do_join(L, &lthread_join_wait);
}

/* _result(handle, timeout): the target's results, or its error re-raised */
static int lthread_result(lua_State *L)
{
    return lthread_do_join(L, &lthread_result_wait);
}

static int lthread_result_done(lua_State *L, int rc)
{
    lthread_join_done(L, rc);
    braid_thread_t *t = box_at1(L);
    const braid_buf_t *out;
    int failed;
    const char *tb;
    if (braid_thread_result(t, &out, &failed, &tb) != 0)
        return lbraid_error(L, "Timeout", "thread did not finish in time");
    lua_settop(L, 0);
    if (out->len == 0)
        return failed ? lbraid_error(L, "RuntimeError", "thread failed") : 0;
    return lbraid_push_outcome(L, out, failed);
}

static int lthread_is_alive(lua_State *L)
{
    lua_pushboolean(L, braid_thread_is_alive(lthread_check(L, 1)));
    return 1;
}

static int lthread_started(lua_State *L)
{
    lua_pushboolean(L, braid_thread_state(lthread_check(L, 1)) != BRAID_THREAD_NEW);
    return 1;
}

static int lthread_name(lua_State *L)
{
    char *n = braid_thread_name(lthread_check(L, 1));
    if (!n)
        return lbraid_core_error(L, BRAID_ENOMEM, NULL);
    lua_pushstring(L, n);
    free(n);
    return 1;
}

static int lthread_set_name(lua_State *L)
{
    braid_thread_t *t = lthread_check(L, 1);
    const char *n = luaL_tolstring(L, 2, NULL);
    if (braid_thread_set_name(t, n))
        return lbraid_core_error(L, BRAID_ENOMEM, NULL);
    return 0;
}

static int lthread_daemon(lua_State *L)
{
    lua_pushboolean(L, braid_thread_daemon(lthread_check(L, 1)));
    return 1;
}

static int lthread_set_daemon(lua_State *L)
{
    if (braid_thread_set_daemon(lthread_check(L, 1), lua_toboolean(L, 2)))
        return lbraid_error(L, "RuntimeError", "cannot set daemon status of active thread");
    return 0;
}

static int lthread_ident(lua_State *L)
{
    uint64_t id = braid_thread_ident(lthread_check(L, 1));
    if (id)
        lua_pushinteger(L, (lua_Integer)id);
    else
        lua_pushnil(L);
    return 1;
}

static int lthread_native_id(lua_State *L)
{
    long id = braid_thread_native_id(lthread_check(L, 1));
    if (id)
        lua_pushinteger(L, id);
    else
        lua_pushnil(L);
    return 1;
}

static int lthread_cancel(lua_State *L)
{
    braid_thread_t *t = lthread_check(L, 1);
    if (braid_thread_state(t) == BRAID_THREAD_NEW)
        return lbraid_error(L, "RuntimeError", "cannot cancel a thread before it is started");
    int rc = braid_thread_cancel(t);
    lua_pushboolean(L, rc == 0);
    return 1;
}

static int lthread_id(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)((braid_object_t *)lthread_check(L, 1))->id);
    return 1;
}

/* _selfcopy(handle) -> the thread's description decoded here, or nil */
static int lthread_selfcopy(lua_State *L)
{
    braid_thread_t *t = lthread_check(L, 1);
    if (braid_thread_state(t) == BRAID_THREAD_NEW)
        return 0;
    const braid_buf_t *sb = braid_thread_self_buf(t);
    if (!sb->len)
        return 0;
    int top = lua_gettop(L);
    lbraid_decode_seq(L, sb->data, sb->len);
    lua_settop(L, top + 1);
    return 1;
}

static int lthread_current(lua_State *L)
{
    braid_thread_t *t = braid_thread_current();
    if (!t)
        return lbraid_core_error(L, BRAID_ENOMEM, NULL);
    lbraid_push_object(L, (braid_object_t *)t);
    return 1;
}

static int lthread_main(lua_State *L)
{
    braid_thread_t *t = braid_thread_main();
    if (!t)
        return lbraid_core_error(L, BRAID_ENOMEM, NULL);
    lbraid_push_object(L, (braid_object_t *)t);
    return 1;
}

static int lthread_enumerate(lua_State *L)
{
    braid_thread_t **list;
    size_t n;
    if (braid_thread_enumerate(&list, &n))
        return lbraid_core_error(L, BRAID_ENOMEM, NULL);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lbraid_push_object(L, (braid_object_t *)list[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    braid_thread_list_free(list, n);
    return 1;
}

static int lthread_active_count(lua_State *L)
{
    lua_pushinteger(L, braid_thread_active_count());
    return 1;
}

static int lthread_get_ident(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)(uint64_t)pthread_self());
    return 1;
}

static int lthread_get_native_id(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)gettid());
    return 1;
}

static int lthread_in_thread(lua_State *L)
{
    lua_pushboolean(L, lbraid_ctx(L)->thread != NULL);
    return 1;
}

static int lthread_monotonic(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)braid_clock_now() / 1e9);
    return 1;
}

static const luaL_Reg lthread_handle_methods[] = {{NULL, NULL}};

static const luaL_Reg lthreading_funcs[] = {
    {"Lock", llock_new},
    {"RLock", lrlock_new},
    {"Condition", lcond_new},
    {"Semaphore", lsem_new},
    {"BoundedSemaphore", lsem_new_bounded},
    {"Event", levent_new},
    {"Barrier", lbarrier_new},
    {"active_count", lthread_active_count},
    {"get_ident", lthread_get_ident},
    {"get_native_id", lthread_get_native_id},
    {"__excepthook", lthread_default_hook},
    {"_new", lthread_new},
    {"_start", lthread_start},
    {"_join", lthread_join},
    {"_result", lthread_result},
    {"_is_alive", lthread_is_alive},
    {"_started", lthread_started},
    {"_name", lthread_name},
    {"_set_name", lthread_set_name},
    {"_daemon", lthread_daemon},
    {"_set_daemon", lthread_set_daemon},
    {"_ident", lthread_ident},
    {"_native_id", lthread_native_id},
    {"_cancel", lthread_cancel},
    {"_id", lthread_id},
    {"_selfcopy", lthread_selfcopy},
    {"_current", lthread_current},
    {"_main", lthread_main},
    {"_enumerate", lthread_enumerate},
    {"_in_thread", lthread_in_thread},
    {"_monotonic", lthread_monotonic},
    {NULL, NULL},
};

/* Registers a metatable and keeps its method table in methods[name]
 * (for the Lua half to add with/guard). The methods get the metatable as
 * upvalue 1, for box_check's fast path. */
static void add_meta(lua_State *L, int methods, const char *key, const braid_object_type_t *type,
                     const luaL_Reg *fns)
{
    lbraid_newmeta(L, type, fns);
    lua_getfield(L, -1, "__index");
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, fns, 1);
    lua_setfield(L, methods, key);
    lua_pop(L, 1);
}

int lbraid_open_threading(lua_State *L)
{
    luaL_newlib(L, lthreading_funcs);
    int mod = lua_gettop(L);
    lua_newtable(L);
    int methods = lua_gettop(L);
    add_meta(L, methods, "Lock", &braid_lock_type, llock_methods);
    add_meta(L, methods, "RLock", &braid_rlock_type, lrlock_methods);
    add_meta(L, methods, "Condition", &braid_cond_type, lcond_methods);
    add_meta(L, methods, "Semaphore", &braid_sem_type, lsem_methods);
    add_meta(L, methods, "Event", &braid_event_type, levent_methods);
    add_meta(L, methods, "ThreadHandle", &braid_thread_type, lthread_handle_methods);
    lbraid_newmeta(L, &braid_barrier_type, lbarrier_methods);
    lua_getfield(L, -1, "__index");
    lua_pushvalue(L, -1);
    lua_setfield(L, methods, "Barrier");
    lua_pushcclosure(L, lbarrier_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_setfield(L, mod, "__methods");
    lua_pushnumber(L, TIMEOUT_MAX);
    lua_setfield(L, mod, "TIMEOUT_MAX");
    braid_thread_set_prep(lthread_prep, lthread_discard);
    return 1;
}
