/* braid.asyncio, C half: the loop box (core/loop.h), task waiters, one
 * pass of the loop, and the markers tasks exchange with it. The scheduler
 * itself is Lua (scripts/braid/asyncio.lua). */
#include <stddef.h>
#include <string.h>

#include "lbraid.h"
#include "ldump.h"
#include "loop.h"

#define LOOP_META "braid.asyncio.loop"
#define WAITER_META "braid.asyncio.waiter"
#define WOKEN_MAX 256
/* A loop blocked with nothing to do still looks at its thread's
 * cancellation, Ctrl-C and thread-level callbacks this often. */
#define POLL_NS 50000000

static const char LOOP_TAG; /* every loop box holds its address */

typedef struct lloop {
    braid_loop_t *loop;
    const char *tag;   /* &LOOP_TAG: run_once's cheap check */
    lbraid_ctx_t *ctx; /* its state's context: run_once reads it each pass */
} lloop_t;

/* The loop box at idx (by size and tag, as run_once checks it each pass:
 * a lookup of the metatable by name costs more than a pass's own C). */
static lloop_t *lloop_box(lua_State *L, int idx)
{
    lloop_t *b = lbraid_to_tagged(L, idx, sizeof *b, offsetof(lloop_t, tag), &LOOP_TAG);
    return b ? b : luaL_checkudata(L, idx, LOOP_META); /* raises */
}

static braid_loop_t *lloop_check(lua_State *L, int idx)
{
    lloop_t *b = lloop_box(L, idx);
    if (!b->loop)
        luaL_argerror(L, idx, "loop is closed");
    return b->loop;
}

braid_loop_t *lasyncio_check_loop(lua_State *L, int idx)
{
    return lloop_check(L, idx);
}

/* loop_new() -> loop box */
static int lasyncio_loop_new(lua_State *L)
{
    lloop_t *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->loop = NULL; /* inert until the loop exists */
    b->tag = &LOOP_TAG;
    b->ctx = lbraid_ctx(L);
    luaL_setmetatable(L, LOOP_META);
    int rc = braid_loop_new(&b->loop);
    if (rc)
        return lbraid_core_error(L, rc, "event loop");
    return 1;
}

static int lloop_close(lua_State *L)
{
    lloop_t *b = luaL_checkudata(L, 1, LOOP_META);
    braid_loop_free(b->loop);
    b->loop = NULL;
    return 0;
}

/* run_once(loop, timeout or nil, woken, spin) -> n, why: runs one pass of
 * the uv loop (timeout seconds, nil: until woken; spin: tasks wait on other
 * threads, watch for them briefly first), runs thread-level callbacks,
 * stores the ids of woken tasks in woken[1..n]; why is "cancel" when this
 * OS thread was cancelled, "interrupt" on Ctrl-C, else nil. */
static int lasyncio_run_once(lua_State *L)
{
    lloop_t *b = lloop_box(L, 1);
    braid_loop_t *loop = b->loop;
    if (!loop)
        return luaL_argerror(L, 1, "loop is closed");
    int64_t timeout = -1;
    if (!lua_isnoneornil(L, 2)) {
        lua_Number t = luaL_checknumber(L, 2);
        timeout = t <= 0 ? 0 : t > 1e9 ? -1 : (int64_t)(t * 1e9);
    }
    luaL_checktype(L, 3, LUA_TTABLE);
    if (timeout < 0 || timeout > POLL_NS)
        timeout = POLL_NS;
    int rc = braid_loop_run_once(loop, timeout, lua_toboolean(L, 4));
    if (rc)
        return lbraid_core_error(L, rc, "event loop");
    int64_t ids[WOKEN_MAX];
    size_t n = braid_loop_take_woken(loop, ids, WOKEN_MAX);
    for (size_t i = 0; i < n; i++) {
        lua_pushinteger(L, (lua_Integer)ids[i]);
        lua_rawseti(L, 3, (lua_Integer)i + 1);
    }
    if (n == WOKEN_MAX)
        braid_loop_wakeup(loop); /* more to take on the next pass */
    lua_pushinteger(L, (lua_Integer)n);
    if (b->ctx->poll) /* lbraid_poll, without its registry lookup */
        b->ctx->poll(L);
    braid_waiter_t *w = b->ctx->waiter;
    if (w && w->interruptible && braid_waiter_take_interrupt()) {
        lua_pushliteral(L, "interrupt");
        return 2;
    }
    if (w && braid_waiter_take_cancel(w)) {
        lua_pushliteral(L, "cancel");
        return 2;
    }
    return 1;
}

static int lasyncio_wakeup(lua_State *L)
{
    braid_loop_wakeup(lloop_check(L, 1));
    return 0;
}

/* ---- task waiters ---- */

static const char WAITER_TAG; /* every waiter box holds its address */

typedef struct lwaiter {
    braid_task_waiter_t tw; /* first: lbraid_wait reads a braid_waiter_t */
    int live;
    const char *tag; /* &WAITER_TAG: _resume's cheap check */
} lwaiter_t;

/* waiter(loop, id) -> task waiter box */
static int lasyncio_waiter(lua_State *L)
{
    braid_loop_t *loop = lloop_check(L, 1);
    lua_Integer id = luaL_checkinteger(L, 2);
    lwaiter_t *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->live = 0;
    b->tag = &WAITER_TAG;
    luaL_setmetatable(L, WAITER_META);
    if (braid_task_waiter_init(&b->tw, loop, (int64_t)id) != 0)
        return lbraid_core_error(L, BRAID_EOS, "task waiter");
    b->live = 1;
    return 1;
}

static int lwaiter_gc(lua_State *L)
{
    lwaiter_t *b = luaL_checkudata(L, 1, WAITER_META);
    if (b->live) {
        b->live = 0;
        braid_task_waiter_destroy(&b->tw);
    }
    return 0;
}

/* settle(w): a task being torn down while its wait is pending unlinks. */
static int lasyncio_settle(lua_State *L)
{
    lwaiter_t *b = luaL_checkudata(L, 1, WAITER_META);
    if (b->live) {
        braid_waiter_settle(&b->tw.w);
        b->tw.w.async_state = BRAID_WAIT_IDLE;
    }
    return 0;
}

/* set_traceback(err, tb): braid.traceback(err) returns tb from now on. */
static int lasyncio_set_traceback(lua_State *L)
{
    lbraid_set_traceback(L, 1, luaL_checkstring(L, 2));
    return 0;
}

/* set_running(flag): marks this state as running a loop (or not). */
static int lasyncio_set_running(lua_State *L)
{
    lbraid_ctx(L)->loop_running = lua_toboolean(L, 1);
    return 0;
}

/* _live_loops() -> how many event loops exist in the process (tests). */
static int lasyncio_live_loops(lua_State *L)
{
    lua_pushinteger(L, braid_loop_count());
    return 1;
}

/* _take_interrupt() -> whether a Ctrl-C is pending for this (interruptible)
 * thread, consuming it: the REPL's line tasks poll it from a count hook. */
static int lasyncio_take_interrupt(lua_State *L)
{
    braid_waiter_t *w = lbraid_ctx(L)->waiter;
    lua_pushboolean(L, w && w->interruptible && braid_waiter_take_interrupt());
    return 1;
}

static int lasyncio_set_task_hook(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lbraid_set_task_hook(L, 1);
    return 0;
}

/* _resume(co, waiter box or nil, ...) -> as coroutine.resume(co, ...):
 * one step of a task, with its waiter set as the stepping one (waits
 * find it without the task hook) for exactly the time co runs. One call
 * instead of coroutine.resume between two calls that set and clear it. */
static int lasyncio_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    int narg = lua_gettop(L) - 2;
    if (co == L) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "cannot resume non-suspended coroutine");
        return 2;
    }
    if (!lua_checkstack(co, narg)) { /* (lua_resume checks co's status) */
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "too many arguments to resume");
        return 2;
    }
    lwaiter_t *b = lbraid_to_tagged(L, 2, sizeof *b, offsetof(lwaiter_t, tag), &WAITER_TAG);
    if (b && !b->live)
        b = NULL;
    lua_xmove(L, co, narg);
    if (b)
        lbraid_task_stepping(co, &b->tw.w);
    int nres;
    int rc = lua_resume(co, L, narg, &nres);
    lbraid_task_stepping(NULL, NULL);
    if (rc == LUA_OK || rc == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushboolean(L, 0);
            lua_pushliteral(L, "too many results to resume");
            return 2;
        }
        lua_pushboolean(L, 1);
        lua_xmove(co, L, nres);
        return nres + 1;
    }
    lua_pushboolean(L, 0);
    lua_xmove(co, L, 1); /* the error */
    return 2;
}

static const luaL_Reg lloop_meta[] = {
    {"__gc", lloop_close},
    {"__close", lloop_close},
    {NULL, NULL},
};

static const luaL_Reg lwaiter_meta[] = {
    {"__gc", lwaiter_gc},
    {NULL, NULL},
};

static const luaL_Reg lasyncio_funcs[] = {
    {"_loop_new", lasyncio_loop_new},
    {"_loop_close", lloop_close},
    {"_run_once", lasyncio_run_once},
    {"_wakeup", lasyncio_wakeup},
    {"_waiter", lasyncio_waiter},
    {"_settle", lasyncio_settle},
    {"_set_task_hook", lasyncio_set_task_hook},
    {"_resume", lasyncio_resume},
    {"_set_traceback", lasyncio_set_traceback},
    {"_set_running", lasyncio_set_running},
    {"_live_loops", lasyncio_live_loops},
    {"_take_interrupt", lasyncio_take_interrupt},
    {NULL, NULL},
};

int lbraid_open_asyncio(lua_State *L)
{
    if (luaL_newmetatable(L, LOOP_META))
        luaL_setfuncs(L, lloop_meta, 0);
    lua_pop(L, 1);
    if (luaL_newmetatable(L, WAITER_META))
        luaL_setfuncs(L, lwaiter_meta, 0);
    lua_pop(L, 1);
    lbraid_dump_follow_resume(lasyncio_resume);
    luaL_newlib(L, lasyncio_funcs);
    lstreams_register(L);
    lua_pushlightuserdata(L, lbraid_marker_thread_wait());
    lua_setfield(L, -2, "THREAD_WAIT");
    lua_pushlightuserdata(L, lbraid_marker_cancel());
    lua_setfield(L, -2, "CANCEL");
    lua_pushlightuserdata(L, lbraid_marker_defer_cancel());
    lua_setfield(L, -2, "DEFER_CANCEL");
    return 1;
}
