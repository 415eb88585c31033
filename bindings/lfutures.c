/* braid.futures' C half: the Future box over core/future.h, wait sets,
 * callback delivery, and the module table (ThreadPoolExecutor is in
 * lexecutor.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "future.h"
#include "lfutures.h"
#include "lstate.h"
#include "trace.h"

static const char INBOX_KEY = 'i'; /* registry: linbox_t userdata of this state */
static const char CBS_KEY = 'b';   /* registry: {[id] = {fn, future box}} */

#define WAITSET_META "braid.futures.waitset"

/* ------------------------------------------------------------------ */
/* Per-state inbox and done callbacks                                  */
/* ------------------------------------------------------------------ */

typedef struct linbox {
    braid_inbox_t *ib;
    lua_Integer next_id;
    int delivering; /* callbacks run one at a time, never nested */
} linbox_t;

static int linbox_gc(lua_State *L)
{
    linbox_t *b = lua_touserdata(L, 1);
    if (b->ib) {
        braid_inbox_close(b->ib);
        braid_inbox_release(b->ib);
        b->ib = NULL;
    }
    return 0;
}

/* The state's inbox, or NULL if it never registered a callback. */
static linbox_t *state_linbox(lua_State *L)
{
    linbox_t *b = NULL;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &INBOX_KEY) == LUA_TUSERDATA)
        b = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return b && b->ib ? b : NULL;
}

/* The inbox a wait should watch: none while a callback runs (delivery
 * does not nest, so waking for it would only spin). */
static braid_inbox_t *state_inbox(lua_State *L)
{
    linbox_t *b = state_linbox(L);
    return b && !b->delivering ? b->ib : NULL;
}

/* Prints a callback's error to stderr, like Python's logger does.
 * Stack: error value on top (popped). */
static void report_callback_error(lua_State *L)
{
    lbraid_push_traceback(L, -1);
    const char *tb = lua_tostring(L, -1);
    const char *msg = tb ? tb : luaL_tolstring(L, -2, NULL);
    fprintf(stderr, "exception calling callback for future:\n%s\n", msg);
    fflush(stderr);
    lua_settop(L, lua_gettop(L) - (tb ? 2 : 3));
}

/* Runs callback `id` (removing it). Stack: unchanged. */
static void run_callback(lua_State *L, lua_Integer id)
{
    luaL_checkstack(L, 6, "callbacks");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &CBS_KEY);
    if (lua_rawgeti(L, -1, id) != LUA_TTABLE) {
        lua_pop(L, 2);
        return;
    }
    lua_pushnil(L);
    lua_rawseti(L, -3, id);
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    if (lbraid_pcall(L, 1, 0) != LUA_OK)
        report_callback_error(L);
    lua_pop(L, 2);
}

/* The poll hook (lbraid_ctx(L)->poll): runs delivered callbacks. */
static void lfutures_poll(lua_State *L)
{
    linbox_t *b = state_linbox(L);
    if (!b || b->delivering)
        return;
    braid_future_t *f;
    uint64_t id;
    b->delivering = 1;
    while (braid_inbox_take(b->ib, &f, &id)) {
        braid_future_release(f); /* the box in the callback entry holds one */
        run_callback(L, (lua_Integer)id);
    }
    b->delivering = 0;
}

static linbox_t *ensure_linbox(lua_State *L)
{
    linbox_t *b = state_linbox(L);
    if (b)
        return b;
    b = lua_newuserdatauv(L, sizeof *b, 0);
    b->ib = NULL;
    b->next_id = 0;
    b->delivering = 0;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, linbox_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    int rc = braid_inbox_new(&b->ib);
    if (rc)
        lbraid_core_error(L, rc, "add_done_callback");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &INBOX_KEY);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &CBS_KEY);
    lbraid_ctx(L)->poll = lfutures_poll;
    return b;
}

/* ------------------------------------------------------------------ */
/* Future                                                              */
/* ------------------------------------------------------------------ */

/* The Future methods' upvalues: the Future metatable and its address (the
 * fast check of box 1: a box with exactly that metatable is ours, with no
 * registry lookup) and the state context (light userdata, bound on first
 * use). A function registered without them sees none and takes the full
 * check. */
#define UP_META lua_upvalueindex(1)
#define UP_META_ADDR lua_upvalueindex(2)
#define UP_CTX lua_upvalueindex(3)
#define FUTURE_NUPS 3

static braid_future_t *lfuture_check(lua_State *L, int idx)
{
    if (lua_getmetatable(L, idx)) {
        int ours = lua_topointer(L, -1) == lua_touserdata(L, UP_META_ADDR);
        lua_pop(L, 1);
        if (ours) {
            lbraid_box_t *box = lua_touserdata(L, idx);
            if (box->obj)
                return (braid_future_t *)box->obj;
        }
    }
    return (braid_future_t *)lbraid_check_object(L, idx, &braid_future_type);
}

/* This state's context: the upvalue when bound, else looked up (and bound
 * when the running function has the upvalue). */
static lbraid_ctx_t *lfuture_ctx(lua_State *L)
{
    lbraid_ctx_t *ctx = lua_touserdata(L, UP_CTX);
    if (!ctx) {
        ctx = lbraid_ctx(L);
        if (lua_type(L, UP_CTX) == LUA_TNIL) {
            lua_pushlightuserdata(L, ctx);
            lua_replace(L, UP_CTX);
        }
    }
    return ctx;
}

int lfutures_push_seq(lua_State *L, const uint8_t *data, size_t len)
{
    if (len == 1 && data[0] == 0)
        return 0;
    if (len >= 2 && data[0] == 1) { /* count 1: one value, maybe a scalar */
        lbraid_decode(L, data + 1, len - 1);
        return 1;
    }
    return lbraid_decode_seq(L, data, len);
}

/* futures.Future() (+): a future not tied to an executor. */
static int lfutures_future(lua_State *L)
{
    braid_future_t *f;
    int rc = braid_future_new(&f);
    if (rc)
        return lbraid_core_error(L, rc, "Future");
    lbraid_push_object(L, (braid_object_t *)f);
    braid_future_release(f);
    return 1;
}

/* Waits until f is done. Returns 0, or BRAID_ETIMEOUT; raises Cancelled
 * when the thread is cancelled. Runs this state's callbacks meanwhile. */
static int lfuture_wait(lua_State *L, braid_future_t *f, int64_t deadline)
{
    for (;;) {
        if (braid_future_done(f))
            return 0;
        braid_inbox_t *ib = state_inbox(L);
        int rc;
        if (!ib) {
            rc = braid_future_wait(f, deadline);
        } else {
            braid_waitset_t *ws;
            rc = braid_waitset_new(&ws, &f, 1, ib);
            if (rc)
                return lbraid_core_error(L, rc, "wait");
            size_t idx;
            rc = braid_waitset_next(ws, deadline, &idx);
            braid_waitset_free(ws);
            if (rc == BRAID_EAGAIN) {
                lfutures_poll(L);
                continue;
            }
        }
        if (rc == 0 || rc == BRAID_ETIMEOUT)
            return rc;
        return lbraid_core_error(L, rc, NULL);
    }
}

/* Raises the error of a done future that was cancelled or failed in the
 * pool (BrokenExecutor); returns if it has an ordinary outcome. */
static void raise_core_outcome(lua_State *L, int code, const char *msg)
{
    if (code == BRAID_ECANCELLED)
        lbraid_error(L, "Cancelled", "the future was cancelled");
    if (code == BRAID_EBROKEN)
        lbraid_error(L, "BrokenExecutor", "%s", msg);
    if (code)
        lbraid_error(L, braid_errkind(code), "%s", msg);
}

/* Reads the outcome of the done future at 1; rc is its wait's code
 * (BRAID_ETIMEOUT raises Timeout). */
static void lfuture_finished(lua_State *L, int rc, const braid_buf_t **out, int *failed, int *code,
                             const char **msg)
{
    if (rc == BRAID_ETIMEOUT)
        lbraid_error(L, "Timeout", "the future did not finish in time");
    if (rc)
        lbraid_core_error(L, rc, NULL);
    braid_future_t *f = (braid_future_t *)((lbraid_box_t *)lua_touserdata(L, 1))->obj;
    braid_future_outcome(f, out, failed, code, msg);
}

static int lfuture_result_done(lua_State *L, int rc)
{
    const braid_buf_t *out;
    int failed, code;
    const char *msg;
    lfuture_finished(L, rc, &out, &failed, &code, &msg);
    if (braid_trace_enabled()) {
        braid_future_t *f = (braid_future_t *)((lbraid_box_t *)lua_touserdata(L, 1))->obj;
        if (braid_future_traced(f))
            braid_trace_flow(
                0, "result", braid_trace_flow_id(((braid_object_t *)f)->id, 2), braid_clock_now());
    }
    raise_core_outcome(L, code, msg);
    lua_settop(L, 1);
    if (!failed)
        return lfutures_push_seq(L, out->data, out->len);
    return lbraid_push_outcome(L, out, failed);
}

static int lfuture_exception_done(lua_State *L, int rc);

/* Inside an asyncio task the wait suspends only the task. Stack: 1 the
 * future's box, 2 the deadline. */
static int lfuture_wait_op(lua_State *L)
{
    braid_future_t *f = (braid_future_t *)((lbraid_box_t *)lua_touserdata(L, 1))->obj;
    return braid_future_wait(f, (int64_t)lua_tointeger(L, 2));
}

static const lbraid_waitop_t lfuture_result_wait = {lfuture_wait_op, lfuture_result_done};
static const lbraid_waitop_t lfuture_exception_wait = {lfuture_wait_op, lfuture_exception_done};

/* Waits (timeout at 2) for the future at 1 to finish, then wo->done. */
static int lfuture_await(lua_State *L, const lbraid_waitop_t *wo)
{
    braid_future_t *f = lfuture_check(L, 1);
    int64_t deadline = lbraid_opt_deadline(L, 2);
    lbraid_ctx_t *ctx = lfuture_ctx(L);
    if (ctx->poll)
        ctx->poll(L);
    if (braid_future_done(f)) /* no wait: lfuture_wait's answer */
        return wo->done(L, 0);
    if (ctx->loop_running) {
        lua_settop(L, 1);
        lua_pushinteger(L, (lua_Integer)deadline);
        return lbraid_wait(L, wo);
    }
    return wo->done(L, lfuture_wait(L, f, deadline));
}

/* f:result(timeout) -> the call's results, or raises its error. */
static int lfuture_result(lua_State *L)
{
    return lfuture_await(L, &lfuture_result_wait);
}

/* f:exception(timeout) -> the error value, or nil on success. */
static int lfuture_exception(lua_State *L)
{
    return lfuture_await(L, &lfuture_exception_wait);
}

static int lfuture_exception_done(lua_State *L, int rc)
{
    const braid_buf_t *out;
    int failed, code;
    const char *msg;
    lfuture_finished(L, rc, &out, &failed, &code, &msg);
    if (code == BRAID_ECANCELLED)
        raise_core_outcome(L, code, msg);
    lua_settop(L, 1);
    if (!failed) {
        lua_pushnil(L);
        return 1;
    }
    if (code) {
        lbraid_push_error(L, code == BRAID_EBROKEN ? "BrokenExecutor" : braid_errkind(code), msg);
        return 1;
    }
    int n = lbraid_decode_seq(L, out->data, out->len);
    if (n >= 2 && lua_isstring(L, 3))
        lbraid_set_traceback(L, 2, lua_tostring(L, 3));
    lua_settop(L, 2);
    return 1;
}

static int lfuture_cancel(lua_State *L)
{
    lua_pushboolean(L, braid_future_cancel(lfuture_check(L, 1)));
    return 1;
}

static int lfuture_cancelled(lua_State *L)
{
    lua_pushboolean(L, braid_future_state(lfuture_check(L, 1)) == BRAID_FUTURE_CANCELLED);
    return 1;
}

static int lfuture_running(lua_State *L)
{
    lua_pushboolean(L, braid_future_state(lfuture_check(L, 1)) == BRAID_FUTURE_RUNNING);
    return 1;
}

static int lfuture_done(lua_State *L)
{
    lua_pushboolean(L, braid_future_done(lfuture_check(L, 1)));
    return 1;
}

/* f:add_done_callback(fn): fn(f) runs in this state once f is done. */
static int lfuture_add_done_callback(lua_State *L)
{
    braid_future_t *f = lfuture_check(L, 1);
    luaL_checkany(L, 2);
    if (!lua_isfunction(L, 2) && !luaL_getmetafield(L, 2, "__call"))
        luaL_typeerror(L, 2, "callable");
    lua_settop(L, 2);
    linbox_t *b = ensure_linbox(L);
    lua_Integer id = ++b->next_id;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &CBS_KEY);
    lua_createtable(L, 2, 0);
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, id);
    lua_pop(L, 1);
    int rc = braid_future_add_callback(f, b->ib, (uint64_t)id);
    if (rc == 1) { /* already done: at once, with delivery held off */
        int was = b->delivering;
        b->delivering = 1;
        run_callback(L, id);
        b->delivering = was;
    } else if (rc < 0) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &CBS_KEY);
        lua_pushnil(L);
        lua_rawseti(L, -2, id);
        return lbraid_core_error(L, rc, "add_done_callback");
    }
    return 0;
}

int lfutures_encode_seq_body(lua_State *L)
{
    braid_buf_t *buf = lua_touserdata(L, 1);
    lbraid_encode_seq(L, 2, lua_gettop(L) - 1, buf, "result");
    return 0;
}

/* f:set_result(...) (+, for code implementing executors and for tests). */
static int lfuture_set_result(lua_State *L)
{
    braid_future_t *f = lfuture_check(L, 1);
    braid_buf_t *buf = lbraid_push_buf(L);
    lbraid_encode_seq(L, 2, lua_gettop(L) - 2, buf, "result");
    int rc = braid_future_set_outcome(f, buf, 0);
    if (rc)
        return lbraid_error(L, "InvalidState", "the future is already done");
    return 0;
}

/* f:set_exception(err) (+). */
static int lfuture_set_exception(lua_State *L)
{
    braid_future_t *f = lfuture_check(L, 1);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    lbraid_push_traceback(L, 2);
    braid_buf_t *buf = lbraid_push_buf(L);
    lbraid_encode_seq(L, 2, 2, buf, "exception");
    int rc = braid_future_set_outcome(f, buf, 1);
    if (rc)
        return lbraid_error(L, "InvalidState", "the future is already done");
    return 0;
}

/* f:set_running_or_notify_cancel() (+). */
static int lfuture_set_running(lua_State *L)
{
    int rc = braid_future_set_running(lfuture_check(L, 1));
    if (rc < 0)
        return lbraid_error(L, "RuntimeError", "Future in unexpected state");
    lua_pushboolean(L, rc);
    return 1;
}

static int lfuture_tostring(lua_State *L)
{
    braid_future_t *f = lfuture_check(L, 1);
    static const char *const names[] = {"pending", "running", "cancelled", "finished"};
    int s = braid_future_state(f);
    const char *extra = "";
    if (s == BRAID_FUTURE_FINISHED) {
        int failed, code;
        braid_future_outcome(f, NULL, &failed, &code, NULL);
        extra = failed ? " raised" : " returned";
    }
    lua_pushfstring(L, "braid.Future: %p (state=%s%s)", (void *)f, names[s], extra);
    return 1;
}

/* ------------------------------------------------------------------ */
/* Wait sets (wait, as_completed)                                      */
/* ------------------------------------------------------------------ */

typedef struct lwaitset {
    braid_waitset_t *ws;
} lwaitset_t;

static int lwaitset_gc(lua_State *L)
{
    lwaitset_t *w = lua_touserdata(L, 1);
    braid_waitset_free(w->ws);
    w->ws = NULL;
    return 0;
}

/* futures._waitset(list) -> waitset over the futures in list[1..n]. */
static int lfutures_waitset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    lwaitset_t *w = lua_newuserdatauv(L, sizeof *w, 0);
    w->ws = NULL;
    luaL_setmetatable(L, WAITSET_META);
    braid_future_t **fs = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *fs, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        braid_object_t *o = lbraid_to_object(L, -1);
        if (!o || o->type != &braid_future_type)
            return luaL_error(L, "fs[%d] is not a braid.Future", (int)i);
        fs[i - 1] = (braid_future_t *)o;
        lua_pop(L, 1);
    }
    int rc = braid_waitset_new(&w->ws, fs, (size_t)n, state_inbox(L));
    if (rc)
        return lbraid_core_error(L, rc, "wait");
    lua_pop(L, 1);
    return 1;
}

/* ws:next(timeout) -> index (1-based) of the next done future; nil on
 * timeout; false when every future was reported. */
static int lwaitset_next(lua_State *L)
{
    lwaitset_t *w = luaL_checkudata(L, 1, WAITSET_META);
    int64_t deadline = lbraid_opt_deadline(L, 2);
    if (!w->ws)
        return luaL_error(L, "waitset is closed");
    lbraid_poll(L);
    for (;;) {
        size_t idx;
        int rc = braid_waitset_next(w->ws, deadline, &idx);
        if (rc == BRAID_EAGAIN) {
            lfutures_poll(L);
            continue;
        }
        if (rc == 0)
            lua_pushinteger(L, (lua_Integer)idx + 1);
        else if (rc == BRAID_ETIMEOUT)
            lua_pushnil(L);
        else if (rc == BRAID_EEMPTY)
            lua_pushboolean(L, 0);
        else
            return lbraid_core_error(L, rc, NULL);
        return 1;
    }
}

static int lwaitset_remaining(lua_State *L)
{
    lwaitset_t *w = luaL_checkudata(L, 1, WAITSET_META);
    lua_pushinteger(L, w->ws ? (lua_Integer)braid_waitset_remaining(w->ws) : 0);
    return 1;
}

/* ------------------------------------------------------------------ */
/* Module helpers                                                      */
/* ------------------------------------------------------------------ */

/* futures._id(x) -> a light userdata naming the braid object, or nil. */
static int lfutures_id(lua_State *L)
{
    braid_object_t *o = lbraid_to_object(L, 1);
    if (!o || o->type != &braid_future_type)
        return 0;
    lua_pushlightuserdata(L, o);
    return 1;
}

/* futures._raise(err, traceback): raises err with its remote traceback. */
static int lfutures_raise(lua_State *L)
{
    lua_settop(L, 2);
    if (lua_isstring(L, 2))
        lbraid_set_traceback(L, 1, lua_tostring(L, 2));
    lua_settop(L, 1);
    return lua_error(L);
}

/* futures._set_traced(f): a recorded job's end drew an arrow to f's
 * result() (a process pool's worker), so result() draws its end. */
static int lfutures_set_traced(lua_State *L)
{
    braid_future_set_traced(lfuture_check(L, 1));
    return 0;
}

/* futures._state(f) -> "pending" | "running" | "cancelled" | "finished",
 * and for finished: whether it failed (not cancelled). */
static int lfutures_state(lua_State *L)
{
    braid_future_t *f = lfuture_check(L, 1);
    static const char *const names[] = {"pending", "running", "cancelled", "finished"};
    int s = braid_future_state(f);
    lua_pushstring(L, names[s]);
    if (s == BRAID_FUTURE_FINISHED) {
        int failed;
        braid_future_outcome(f, NULL, &failed, NULL, NULL);
        lua_pushboolean(L, failed);
        return 2;
    }
    return 1;
}

static const luaL_Reg future_methods[] = {
    {"cancel", lfuture_cancel},
    {"cancelled", lfuture_cancelled},
    {"running", lfuture_running},
    {"done", lfuture_done},
    {"result", lfuture_result},
    {"exception", lfuture_exception},
    {"add_done_callback", lfuture_add_done_callback},
    {"set_result", lfuture_set_result},
    {"set_exception", lfuture_set_exception},
    {"set_running_or_notify_cancel", lfuture_set_running},
    {NULL, NULL},
};

static const luaL_Reg waitset_methods[] = {
    {"next", lwaitset_next},
    {"remaining", lwaitset_remaining},
    {"close", lwaitset_gc},
    {NULL, NULL},
};

static const luaL_Reg futures_funcs[] = {
    {"Future", lfutures_future},
    {"_waitset", lfutures_waitset},
    {"_id", lfutures_id},
    {"_raise", lfutures_raise},
    {"_state", lfutures_state},
    {"_set_traced", lfutures_set_traced},
    {NULL, NULL},
};

int lbraid_open_futures(lua_State *L)
{
    luaL_newmetatable(L, WAITSET_META);
    luaL_newlib(L, waitset_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, lwaitset_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, lwaitset_gc);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);

    luaL_newlib(L, futures_funcs);
    lbraid_newmeta(L, &braid_future_type, future_methods);
    lua_getfield(L, -1, "__index"); /* the methods again, with upvalues */
    lua_pushvalue(L, -2);
    lua_pushlightuserdata(L, (void *)lua_topointer(L, -1));
    lua_pushnil(L); /* the context, on first use */
    luaL_setfuncs(L, future_methods, FUTURE_NUPS);
    lua_pop(L, 1);
    lua_pushcfunction(L, lfuture_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_getfield(L, -1, "__index");
    lua_setfield(L, -3, "_Future_methods");
    lua_pop(L, 1);
    lexecutor_open(L, -1);
    return 1;
}