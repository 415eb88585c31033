/* braid.asyncio, C half: the loop box (core/loop.h), task waiters, one
 * pass of the loop (waking the tasks of woken waiters), the ready queue's
 * run with the fast path of a step, and the markers tasks exchange with
 * it. The rest of the scheduler is Lua (scripts/braid/asyncio.lua,
 * asyncio_tasks.lua). */
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

static const char WAITER_TAG; /* every waiter box holds its address */

typedef struct lwaiter {
    braid_task_waiter_t tw; /* first: lbraid_wait reads a braid_waiter_t, the
                               loop's woken list gives a braid_task_waiter_t */
    int live;
    const char *tag; /* &WAITER_TAG: _resume's cheap check */
    /* Woken from C and queued while its wait (no deadline) stays filed:
     * task._wait is still THREAD_WAIT and waiting[id] still the task,
     * until it steps (and waits again, mostly) or wake() takes it. */
    int ready;
} lwaiter_t;

/* The task fields the scheduler's C functions read and set, held as
 * their upvalues (lua_getfield would intern the C string at each use). */
enum { K_CO = 1, K_SLOW, K_W, K_WAIT, K_ID, K_TIMER, K_CANCELLED, K_Q, K_QN, NKEYS = K_QN };
static const char *const KEYS[NKEYS] = {
    "co", "_slow", "_w", "_wait", "id", "_timer", "cancelled", "q", "qn"};

/* pushes t[key] (raw) and returns its type; t an absolute index */
static int get_key(lua_State *L, int t, int key)
{
    lua_pushvalue(L, lua_upvalueindex(key));
    return lua_rawget(L, t);
}

/* t[key] = false, or the marker m */
static void set_key(lua_State *L, int t, int key, void *m)
{
    lua_pushvalue(L, lua_upvalueindex(key));
    if (m)
        lua_pushlightuserdata(L, m);
    else
        lua_pushboolean(L, 0);
    lua_rawset(L, t);
}

/* Unfiles the THREAD_WAIT of the task at t on its waiter b: task._wait =
 * false, waiting[id] = nil (at index waiting), b no longer ready. Its
 * timer, if any, is the caller's. */
static void unfile(lua_State *L, int t, int waiting, lwaiter_t *b)
{
    b->ready = 0;
    set_key(L, t, K_WAIT, NULL);
    lua_pushnil(L);
    lua_rawseti(L, waiting, (lua_Integer)b->tw.id);
}

/* Queues the task of tw (waiting[id]) on q at qn + 1 if it still waits
 * on tw: wake() of asyncio_tasks.lua for THREAD_WAIT, in C. A wait with no
 * deadline (no timer) stays filed, the waiter marked ready (fast_step or
 * wake() unfiles it); one with a timer is unfiled now. Returns qn. */
static lua_Integer wake_waiting(lua_State *L, int waiting, int q, lua_Integer qn,
                                braid_task_waiter_t *tw)
{
    if (lua_rawgeti(L, waiting, (lua_Integer)tw->id) != LUA_TTABLE) {
        lua_pop(L, 1);
        return qn; /* its task waits no more (ended, or woken otherwise) */
    }
    lwaiter_t *b = (lwaiter_t *)tw;
    int t = lua_gettop(L);
    if (b->ready) { /* queued already */
        lua_pop(L, 1);
        return qn;
    }
    if (tw->w.deadline == BRAID_FOREVER) {
        b->ready = 1;
    } else {
        get_key(L, t, K_WAIT);
        int waits = lua_touserdata(L, -1) == lbraid_marker_thread_wait();
        lua_pop(L, 1);
        if (!waits) {
            lua_pop(L, 1);
            return qn;
        }
        unfile(L, t, waiting, b);
        if (get_key(L, t, K_TIMER) == LUA_TTABLE) { /* its deadline's timer goes */
            lua_pushvalue(L, lua_upvalueindex(K_CANCELLED));
            lua_pushboolean(L, 1);
            lua_rawset(L, t + 1);
            set_key(L, t, K_TIMER, NULL);
        }
        lua_pop(L, 1);
    }
    lua_rawseti(L, q, ++qn); /* (pops the task) */
    return qn;
}

/* run_once(loop box, timeout or nil, waiting, loop) -> why: runs
 * one pass of the uv loop (timeout seconds, nil: until woken; when tasks
 * wait on their waiters, watch for them briefly first), runs thread-level
 * callbacks, and appends the tasks of waiting (by id) whose waiters were
 * woken to the loop's ready queue (loop.q, loop.qn: read after the pass,
 * whose callbacks, luv's, may queue tasks too); why is "cancel" when this
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
    luaL_checktype(L, 4, LUA_TTABLE);
    if (timeout < 0 || timeout > POLL_NS)
        timeout = POLL_NS;
    lua_settop(L, 4);
    lua_pushnil(L);
    int spin = lua_next(L, 3) != 0; /* a task waits on its waiter */
    lua_settop(L, 4);
    int rc = braid_loop_run_once(loop, timeout, spin);
    if (rc)
        return lbraid_core_error(L, rc, "event loop");
    if (b->ctx->poll) /* lbraid_poll, without its registry lookup */
        b->ctx->poll(L);
    /* Taken after the callbacks: they run Lua, whose collector may free a
     * waiter box, and a box leaves the woken list when freed only while it
     * is on it. Nothing below runs the collector. */
    braid_task_waiter_t *tws[WOKEN_MAX];
    size_t n = braid_loop_take_woken(loop, tws, WOKEN_MAX);
    if (n == WOKEN_MAX)
        braid_loop_wakeup(loop); /* more to take on the next pass */
    if (n > 0) {
        lua_settop(L, 4);
        get_key(L, 4, K_Q); /* 5 */
        get_key(L, 4, K_QN);
        lua_Integer qn = lua_tointeger(L, 6);
        for (size_t i = 0; i < n; i++)
            qn = wake_waiting(L, 3, 5, qn, tws[i]);
        lua_pushvalue(L, lua_upvalueindex(K_QN));
        lua_pushinteger(L, qn);
        lua_rawset(L, 4);
    }
    braid_waiter_t *w = b->ctx->waiter;
    if (w && w->interruptible && braid_waiter_take_interrupt()) {
        lua_pushliteral(L, "interrupt");
        return 1;
    }
    if (w && braid_waiter_take_cancel(w)) {
        lua_pushliteral(L, "cancel");
        return 1;
    }
    return 0;
}

static int lasyncio_wakeup(lua_State *L)
{
    braid_loop_wakeup(lloop_check(L, 1));
    return 0;
}

/* ---- task waiters ---- */

/* waiter(loop, id) -> task waiter box */
static int lasyncio_waiter(lua_State *L)
{
    braid_loop_t *loop = lloop_check(L, 1);
    lua_Integer id = luaL_checkinteger(L, 2);
    lwaiter_t *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->live = 0;
    b->ready = 0;
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

/* _ready(w) -> whether the task of waiter box w was woken from C and is
 * queued or running, its wait filed still (wake_waiting); _unready(w)
 * clears that (the caller unfiles the wait) and returns it. */
static int waiter_ready(lua_State *L, int clear)
{
    lwaiter_t *b = lbraid_to_tagged(L, 1, sizeof *b, offsetof(lwaiter_t, tag), &WAITER_TAG);
    if (!b)
        b = luaL_checkudata(L, 1, WAITER_META);
    lua_pushboolean(L, b->ready);
    if (clear)
        b->ready = 0;
    return 1;
}

static int lasyncio_ready(lua_State *L)
{
    return waiter_ready(L, 0);
}

static int lasyncio_unready(lua_State *L)
{
    return waiter_ready(L, 1);
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

/* Calls fn (a Lua function at fi) with the loop and the task at 10, then
 * nargs values pushed after them by the caller. */
static void call_with_task(lua_State *L, int fi, int nargs)
{
    lua_pushvalue(L, fi);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 10);
    lua_rotate(L, -3 - nargs, 3);
    lua_call(L, 2 + nargs, 0);
}

/* cur[1] = the task before run_ready's steps (at 4), if a fast step left
 * its own task there; *set is then 0. */
static void restore_cur(lua_State *L, int *set)
{
    if (*set) {
        lua_pushvalue(L, 4);
        lua_rawseti(L, 6, 1);
        *set = 0;
    }
}

/* One step of the task at 10 (its coroutine at 11), already known not to
 * be slow: resumed with (nil, nil) as step() of asyncio_tasks.lua would
 * resume it; a wait on its waiter with no deadline is filed here (a ready
 * one, woken from C, is filed still), every other outcome goes to
 * after(loop, task, ok, r1, r2, r3). The task stays cur[1] after a step
 * that filed its wait (*set = 1: the next step replaces it, and run_ready
 * restores the one before ahead of any other Lua it calls and at its end),
 * which saves two table writes a step. */
static void fast_step(lua_State *L, lua_State *co, int *set)
{
    get_key(L, 10, K_W);
    lwaiter_t *b = lbraid_to_tagged(L, -1, sizeof *b, offsetof(lwaiter_t, tag), &WAITER_TAG);
    if (b && !b->live)
        b = NULL;
    lua_pop(L, 1);
    lua_pushvalue(L, 10); /* the current task while it runs */
    lua_rawseti(L, 6, 1);
    lua_copy(L, 11, 1); /* where dumps look for the coroutine resumed */
    int nres = 0, rc = LUA_ERRRUN;
    if (co != L && lua_checkstack(co, 2)) {
        lua_pushnil(co);
        lua_pushnil(co);
        if (b)
            lbraid_task_stepping(co, &b->tw.w);
        rc = lua_resume(co, L, 2, &nres);
        lbraid_task_stepping(NULL, NULL);
    } else {
        lua_pushliteral(co, "cannot resume non-suspended coroutine");
    }
    *set = 1;
    /* woken from C, its wait filed still (read after the step: only an
     * unfiling clears it meanwhile) */
    int ready = b && b->ready;
    if (rc != LUA_OK && rc != LUA_YIELD) {
        restore_cur(L, set);
        if (ready)
            unfile(L, 10, 5, b);
        lua_pushboolean(L, 0);
        lua_xmove(co, L, 1); /* the error */
        call_with_task(L, 8, 2);
        return;
    }
    if (nres >= 1 && nres <= 2 && lua_touserdata(co, -nres) == lbraid_marker_thread_wait() &&
        (nres == 1 || lua_isnil(co, -1))) {
        if (get_key(L, 10, K_SLOW) != LUA_TBOOLEAN || !lua_toboolean(L, -1)) {
            lua_pop(L, 1);
            lua_pop(co, nres);
            if (ready) { /* filed still: nothing to set */
                b->ready = 0;
                return;
            }
            set_key(L, 10, K_WAIT, lbraid_marker_thread_wait()); /* task._wait = THREAD_WAIT */
            if (b) { /* waiting[task.id] = task (its waiter's id) */
                lua_pushvalue(L, 10);
                lua_rawseti(L, 5, (lua_Integer)b->tw.id);
            } else { /* (its first wait made the waiter) */
                get_key(L, 10, K_ID);
                lua_pushvalue(L, 10);
                lua_rawset(L, 5);
            }
            return;
        }
        lua_pop(L, 1);
    }
    restore_cur(L, set);
    if (ready)
        unfile(L, 10, 5, b);
    lua_pushboolean(L, 1);
    if (nres > 3) {
        lua_pop(co, nres - 3);
        nres = 3;
    }
    lua_xmove(co, L, nres);
    call_with_task(L, 8, 1 + nres);
}

/* run_ready(nil, loop, q, n, waiting, cur, step, after, call) runs the n
 * entries of q (emptying it): a task through fast_step, or through
 * step(loop, task) when its _slow is true; any other entry (a Handle)
 * through call(handle). cur[1] is the current task (false: none), set
 * around each fast step. Slot 1 holds the coroutine being resumed, as
 * _resume's argument 1 does (dumps follow it; it is stale between steps,
 * when run_ready is never the innermost frame a dump reads). */
static int lasyncio_run_ready(lua_State *L)
{
    lua_settop(L, 9);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_Integer n = luaL_checkinteger(L, 4);
    luaL_checktype(L, 5, LUA_TTABLE);
    luaL_checktype(L, 6, LUA_TTABLE);
    luaL_checkstack(L, 16, "run_ready"); /* for the slots at 10.. below */
    lua_rawgeti(L, 6, 1);                /* the current task around the steps, at 4 (n's) */
    lua_replace(L, 4);
    int set = 0; /* cur[1] holds a fast step's task, not 4 */
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 3, i); /* 10: the entry */
        lua_pushnil(L);
        lua_rawseti(L, 3, i);
        int istask = lua_type(L, 10) == LUA_TTABLE && get_key(L, 10, K_CO) == LUA_TTHREAD;
        if (!istask) {
            restore_cur(L, &set);
            lua_settop(L, 10);
            lua_pushvalue(L, 9);
            lua_insert(L, 10);
            lua_call(L, 1, 0);
            continue;
        }
        lua_settop(L, 11); /* 11: its coroutine */
        if (get_key(L, 10, K_SLOW) == LUA_TBOOLEAN && lua_toboolean(L, -1)) {
            lua_pop(L, 1);
            restore_cur(L, &set);
            call_with_task(L, 7, 0);
        } else {
            lua_pop(L, 1);
            fast_step(L, lua_tothread(L, 11), &set);
        }
        lua_settop(L, 9);
    }
    restore_cur(L, &set);
    lua_pushnil(L);
    lua_replace(L, 1);
    return 0;
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

/* the scheduler's, with the KEYS as upvalues */
static const luaL_Reg lasyncio_sched[] = {
    {"_run_once", lasyncio_run_once},
    {"_run_ready", lasyncio_run_ready},
    {NULL, NULL},
};

static const luaL_Reg lasyncio_funcs[] = {
    {"_loop_new", lasyncio_loop_new},
    {"_loop_close", lloop_close},
    {"_wakeup", lasyncio_wakeup},
    {"_waiter", lasyncio_waiter},
    {"_settle", lasyncio_settle},
    {"_ready", lasyncio_ready},
    {"_unready", lasyncio_unready},
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
    lbraid_dump_follow_resume(lasyncio_run_ready);
    luaL_newlib(L, lasyncio_funcs);
    for (int i = 0; i < NKEYS; i++)
        lua_pushstring(L, KEYS[i]);
    luaL_setfuncs(L, lasyncio_sched, NKEYS);
    lstreams_register(L);
    lua_pushlightuserdata(L, lbraid_marker_thread_wait());
    lua_setfield(L, -2, "THREAD_WAIT");
    lua_pushlightuserdata(L, lbraid_marker_cancel());
    lua_setfield(L, -2, "CANCEL");
    lua_pushlightuserdata(L, lbraid_marker_defer_cancel());
    lua_setfield(L, -2, "DEFER_CANCEL");
    return 1;
}
