/* braid.threading's primitives: Lock, RLock and Condition boxes over
 * core/sync.h (Semaphore, Event and Barrier are in lsync_signal.c), and
 * the module's registration; inside an asyncio task their waits suspend
 * only the task. */
#include <string.h>

#include "lsync.h"

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

/* ---- inside asyncio tasks ----
 * A state running an asyncio loop sends its blocking waits through
 * lbraid_wait, so a wait inside a task suspends only the task. Stack while
 * waiting: 1 the object's box, 2 the deadline. */

void *lsync_box_at1(lua_State *L)
{
    return ((lbraid_box_t *)lua_touserdata(L, 1))->obj;
}

int64_t lsync_deadline_at2(lua_State *L)
{
    return (int64_t)lua_tointeger(L, 2);
}

int lsync_in_loop(lua_State *L)
{
    return lbraid_ctx(L)->loop_running;
}

int lsync_wait_in_loop(lua_State *L, int64_t deadline, const lbraid_waitop_t *wo)
{
    lua_settop(L, 1);
    lua_pushinteger(L, (lua_Integer)deadline);
    return lbraid_wait(L, wo);
}

/* ---- Lock ---- */

/* The Lock box this OS thread last checked with lsync_box_ours, remembered so
 * the next acquire/release on it skips the metatable check (one pointer
 * compare instead of lua_getmetatable, lua_topointer and an upvalue read).
 * A remembered box is a Lock box that was alive when remembered; it stays
 * one until its __gc, the only way its memory is freed, and every Lock
 * box's __gc bumps lock_gc_epoch, which forgets all remembered boxes (a
 * __gc on another thread included: the free and any reuse of the memory
 * are ordered after the bump). */
static atomic_uint_fast64_t lock_gc_epoch;
typedef struct lock_seen {
    const void *box;
    uint_fast64_t epoch;
} lock_seen_t;
static _Thread_local lock_seen_t lock_seen;

/* The lock in the Lock box at 1 if this thread remembers that box, else
 * NULL. Stack: unchanged. */
static inline braid_lock_t *lock_seen_at1(lua_State *L)
{
    lbraid_box_t *box = lua_touserdata(L, 1);
    lock_seen_t *s = &lock_seen;
    if (box && box == s->box &&
        s->epoch == atomic_load_explicit(&lock_gc_epoch, memory_order_relaxed))
        return (braid_lock_t *)box->obj; /* NULL after its __gc (resurrected) */
    return NULL;
}

static void lock_remember_at1(lua_State *L)
{
    lock_seen.epoch = atomic_load_explicit(&lock_gc_epoch, memory_order_relaxed);
    lock_seen.box = lua_touserdata(L, 1);
}

static int llock_gc(lua_State *L)
{
    atomic_fetch_add_explicit(&lock_gc_epoch, 1, memory_order_relaxed);
    lbraid_box_t *box = lua_touserdata(L, 1);
    if (box && box->obj) {
        braid_object_release(box->obj);
        box->obj = NULL;
    }
    return 0;
}

static braid_lock_t *llock_check(lua_State *L, int idx)
{
    return (braid_lock_t *)lsync_box_check(L, idx, &braid_lock_type);
}

int lsync_push_new(lua_State *L, int rc, braid_object_t *obj)
{
    if (rc)
        return lbraid_core_error(L, rc, NULL);
    if (lua_gettop(L) > 0)
        lbraid_apply_name(L, lua_gettop(L), obj); /* an options table on top */
    lbraid_push_object(L, obj);
    braid_object_release(obj);
    return 1;
}

static int llock_new(lua_State *L)
{
    lbraid_unpack_opts(L, NULL, 0);
    braid_lock_t *l = NULL;
    int rc = braid_lock_new(&l);
    return lsync_push_new(L, rc, (braid_object_t *)l);
}

static int llock_acquire_op(lua_State *L)
{
    return braid_lock_acquire(lsync_box_at1(L), lsync_deadline_at2(L));
}

static const lbraid_waitop_t llock_wait = {llock_acquire_op, lsync_push_acquired};

static int llock_acquire(lua_State *L)
{
    /* uncontended fast path: our box (metatable is upvalue 1, left on the
     * stack under the result), then one CAS (deadline 0 has passed: no
     * clock read), no poll */
    if (lua_gettop(L) == 1) {
        braid_lock_t *l = lock_seen_at1(L);
        if (l && braid_lock_acquire(l, 0) == 0) {
            lua_pushboolean(L, 1);
            return 1;
        }
        if (!l && lsync_box_ours(L, 1)) {
            lbraid_box_t *box = lua_touserdata(L, 1);
            if (box->obj) {
                lock_remember_at1(L);
                if (braid_lock_acquire((braid_lock_t *)box->obj, 0) == 0) {
                    lua_pushboolean(L, 1);
                    return 1;
                }
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
    if (lsync_in_loop(L))
        return lsync_wait_in_loop(L, deadline, &llock_wait);
    return lsync_push_acquired(L, braid_lock_acquire(l, deadline));
}

static int llock_release(lua_State *L)
{
    braid_lock_t *l = lock_seen_at1(L);
    if (l && braid_lock_release(l) == 0)
        return 0; /* fast path: a remembered box, held */
    if (!l && lsync_box_ours(L, 1)) {
        lbraid_box_t *box = lua_touserdata(L, 1);
        if (box->obj) {
            lock_remember_at1(L);
            if (braid_lock_release((braid_lock_t *)box->obj) == 0)
                return 0; /* our box, held */
        }
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
    return (braid_rlock_t *)lsync_box_check(L, idx, &braid_rlock_type);
}

static int lrlock_new(lua_State *L)
{
    lbraid_unpack_opts(L, NULL, 0);
    braid_rlock_t *l = NULL;
    int rc = braid_rlock_new(&l);
    return lsync_push_new(L, rc, (braid_object_t *)l);
}

static int lrlock_acquire_op(lua_State *L)
{
    return braid_rlock_acquire(lsync_box_at1(L), lsync_deadline_at2(L));
}

static const lbraid_waitop_t lrlock_wait = {lrlock_acquire_op, lsync_push_acquired};

static int lrlock_acquire(lua_State *L)
{
    braid_rlock_t *l = lrlock_check(L, 1);
    int64_t deadline = lock_deadline(L, 2);
    if (deadline != BRAID_FOREVER || braid_rlock_acquire(l, 0) != 0) {
        lbraid_poll(L);
        if (lsync_in_loop(L))
            return lsync_wait_in_loop(L, deadline, &lrlock_wait);
        return lsync_push_acquired(L, braid_rlock_acquire(l, deadline));
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
    return (braid_cond_t *)lsync_box_check(L, idx, &braid_cond_type);
}

/* Condition(lock=RLock()) */
static int lcond_new(lua_State *L)
{
    static const char *const keys[] = {"lock"};
    lbraid_unpack_opts(L, keys, 1);
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
    return lsync_push_new(L, rc, (braid_object_t *)c);
}

static int lcond_acquire(lua_State *L)
{
    braid_object_t *lock = braid_cond_lock(lcond_check(L, 1));
    int64_t deadline = lock_deadline(L, 2);
    lbraid_poll(L);
    if (lsync_in_loop(L)) { /* the lock's own wait, with its box at 1 */
        lua_settop(L, 0);
        lbraid_push_object(L, lock);
        return lsync_wait_in_loop(
            L, deadline, lock->type == &braid_rlock_type ? &lrlock_wait : &llock_wait);
    }
    if (lock->type == &braid_rlock_type)
        return lsync_push_acquired(L, braid_rlock_acquire((braid_rlock_t *)lock, deadline));
    return lsync_push_acquired(L, braid_lock_acquire((braid_lock_t *)lock, deadline));
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
    braid_cond_t *c = lsync_box_at1(L);
    int64_t deadline = lsync_deadline_at2(L);
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
    if (lsync_in_loop(L)) {
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

static const luaL_Reg lsync_funcs[] = {
    {"Lock", llock_new},
    {"RLock", lrlock_new},
    {"Condition", lcond_new},
    {"Semaphore", lsync_sem_new},
    {"BoundedSemaphore", lsync_bounded_sem_new},
    {"Event", lsync_event_new},
    {"Barrier", lsync_barrier_new},
    {NULL, NULL},
};

/* Registers a metatable and keeps its method table in methods[name]
 * (methods 0: the type alone, its methods made on demand). The methods
 * get the metatable as upvalue 1 and its address as upvalue 2, for
 * lsync_box_check's fast path. */
void lsync_add_meta(lua_State *L, int methods, const char *key, const braid_object_type_t *type,
                    const luaL_Reg *fns)
{
    if (!methods) {
        lbraid_newmeta_lazy(L, type, fns, 1);
    } else {
        lbraid_newmeta_up(L, type, fns, 1);
        lua_getfield(L, -1, "__index");
        lua_setfield(L, methods, key);
    }
    lua_pop(L, 1);
}

static const struct {
    const char *key;
    const braid_object_type_t *type;
    const luaL_Reg *fns;
} lsync_types[] = {
    {"Lock", &braid_lock_type, llock_methods},
    {"RLock", &braid_rlock_type, lrlock_methods},
    {"Condition", &braid_cond_type, lcond_methods},
    {"Semaphore", &braid_sem_type, lsync_sem_methods},
    {"Event", &braid_event_type, lsync_event_methods},
    {"Barrier", &braid_barrier_type, lsync_barrier_methods},
};

int lsync_open_meta(lua_State *L, int methods, const braid_object_type_t *type)
{
    size_t i = 0, n = sizeof lsync_types / sizeof *lsync_types;
    while (i < n && lsync_types[i].type != type)
        i++;
    if (i == n)
        return 0;
    if (type == &braid_lock_type) { /* its own __gc: see lock_seen */
        lsync_add_meta(L, methods, lsync_types[i].key, type, lsync_types[i].fns);
        luaL_getmetatable(L, type->name);
        lua_pushcfunction(L, llock_gc);
        lua_setfield(L, -2, "__gc");
        lua_pop(L, 1);
        return 1;
    }
    if (type != &braid_barrier_type) {
        lsync_add_meta(L, methods, lsync_types[i].key, type, lsync_types[i].fns);
        return 1;
    }
    lbraid_newmeta(L, &braid_barrier_type, lsync_barrier_methods);
    lua_getfield(L, -1, "__index");
    if (methods) {
        lua_pushvalue(L, -1);
        lua_setfield(L, methods, "Barrier");
    }
    lua_pushcclosure(L, lsync_barrier_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    return 1;
}

void lsync_open(lua_State *L, int mod, int methods)
{
    lua_pushvalue(L, mod);
    luaL_setfuncs(L, lsync_funcs, 0);
    lua_pop(L, 1);
    for (size_t i = 0; i < sizeof lsync_types / sizeof *lsync_types; i++)
        lsync_open_meta(L, methods, lsync_types[i].type);
}
