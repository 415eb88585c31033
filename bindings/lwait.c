/* Blocking braid calls inside asyncio tasks: a core wait that would block
 * suspends only the task (the coroutine yields to its loop), never the OS
 * thread; the loop resumes it when the waiter is woken, times out or the
 * task is cancelled, and the call is repeated to pick up the outcome. */
#include "lbraid.h"

static const char HOOK_KEY = 'k'; /* registry: fn(co) -> task waiter userdata or nil */
static const char THREAD_WAIT = 'w';
static const char CANCEL = 'c';
static const char DEFER_CANCEL = 'd';

void *lbraid_marker_thread_wait(void)
{
    return (void *)&THREAD_WAIT;
}

void *lbraid_marker_cancel(void)
{
    return (void *)&CANCEL;
}

void *lbraid_marker_defer_cancel(void)
{
    return (void *)&DEFER_CANCEL;
}

void lbraid_set_task_hook(lua_State *L, int idx)
{
    lua_pushvalue(L, idx);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &HOOK_KEY);
}

/* The task this OS thread's loop is stepping: its coroutine and waiter,
 * set by the loop around each step of a task that has a waiter (else by
 * the step's first wait), so that waits skip the ctx lookup and the call
 * of the Lua hook. */
static _Thread_local struct {
    lua_State *co;
    braid_waiter_t *w;
} stepping;

void lbraid_task_stepping(lua_State *co, braid_waiter_t *w)
{
    stepping.co = co;
    stepping.w = w;
}

braid_waiter_t *lbraid_task_waiter(lua_State *L)
{
    if (stepping.co == L)
        return stepping.w;
    if (!lbraid_ctx(L)->loop_running)
        return NULL;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &HOOK_KEY) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        return NULL;
    }
    if (!lua_pushthread(L)) {
        lua_call(L, 1, 1);
    } else { /* the main coroutine is never a task */
        lua_pop(L, 2);
        return NULL;
    }
    braid_waiter_t *w = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (w)
        lbraid_task_stepping(L, w);
    return w;
}

/* ctx: the slot holding the count of the results below it (the loop
 * resumes with values of its own above it). */
static int defer_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    int n = (int)lua_tointeger(L, (int)ctx);
    lua_settop(L, (int)ctx - 1);
    return n;
}

/* Stack: [call's own slots..., wo, tw, err | resume values]; ctx is the
 * index of err: nil, or the Cancelled error the loop resumed us with (it
 * stays there while the call finishes, e.g. re-acquires a lock). */
static int wait_k(lua_State *L, int status, lua_KContext ctx)
{
    int errslot = (int)ctx;
    const lbraid_waitop_t *wo = lua_touserdata(L, errslot - 2);
    braid_waiter_t *tw = lua_touserdata(L, errslot - 1);
    if (status == LUA_YIELD) {
        if (lua_gettop(L) > errslot && lua_touserdata(L, errslot + 1) == &CANCEL) {
            atomic_store(&tw->cancelled, 1);
            lua_pushvalue(L, errslot + 2);
            lua_replace(L, errslot);
        }
        lua_settop(L, errslot);
        braid_waiter_settle(tw);
    }
    braid_waiter_t *prev = braid_waiter_swap_current(tw);
    int rc = wo->op(L);
    braid_waiter_swap_current(prev);
    if (rc == BRAID_ESUSPEND) {
        lua_pushlightuserdata(L, (void *)&THREAD_WAIT);
        if (tw->deadline == BRAID_FOREVER)
            lua_pushnil(L);
        else
            lua_pushnumber(L, (lua_Number)tw->deadline / 1e9);
        return lua_yieldk(L, 2, ctx, wait_k);
    }
    tw->async_state = BRAID_WAIT_IDLE;
    braid_waiter_take_cancel(tw);
    if (lua_isnil(L, errslot))
        return wo->done(L, rc);
    if (rc != 0) { /* cancelled (or failed meanwhile): raise the cancellation */
        lua_pushvalue(L, errslot);
        return lua_error(L);
    }
    /* the wait succeeded before the cancellation could stop it: keep what
     * it got, and have the loop deliver the cancellation at the task's
     * next suspension */
    int n = wo->done(L, rc);
    lua_pushinteger(L, n);
    int nslot = lua_gettop(L);
    lua_pushlightuserdata(L, (void *)&DEFER_CANCEL);
    lua_pushvalue(L, errslot);
    return lua_yieldk(L, 2, nslot, defer_k);
}

int lbraid_wait(lua_State *L, const lbraid_waitop_t *wo)
{
    braid_waiter_t *tw = lbraid_task_waiter(L);
    if (!tw)
        return wo->done(L, wo->op(L));
    luaL_checkstack(L, 8, "wait");
    lua_pushlightuserdata(L, (void *)wo);
    lua_pushlightuserdata(L, tw);
    lua_pushnil(L);
    return wait_k(L, LUA_OK, lua_gettop(L));
}
