/* braid.futures' ThreadPoolExecutor: the worker threads' Lua states (the
 * task-function cache, running a task, its results or error) and the
 * executor box over core/executor.h. The Future half is lfutures.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor.h"
#include "future.h"
#include "ldump.h"
#include "lfutures.h"
#include "lstate.h"
#include "trace.h"

/* Worker-side cache of decoded task functions, keyed by chunk MAC. */
#define FN_CACHE_MAX 64

/* ------------------------------------------------------------------ */
/* Workers: one long-lived Lua state per worker thread                 */
/* ------------------------------------------------------------------ */

typedef struct exud {
    char *path, *cpath;
    braid_buf_t init; /* initializer, initargs... (empty: none) */
} exud_t;

typedef struct wctx {
    lua_State *L;
    int ncached;
} wctx_t;

static const char FNCACHE_KEY = 'k'; /* worker registry: mac -> function */
static atomic_int fn_cache_off;      /* futures._fn_cache(false), for bench/ */

static void exud_free(void *p)
{
    exud_t *u = p;
    free(u->path);
    free(u->cpath);
    braid_buf_free(&u->init);
    free(u);
}

static int init_body(lua_State *L)
{
    exud_t *u = lua_touserdata(L, 1);
    lua_settop(L, 0);
    int n = lbraid_decode_seq(L, u->init.data, u->init.len);
    lua_call(L, n - 1, 0);
    return 0;
}

static int worker_start(void *ud, int index, void **wctxp, char **errmsg)
{
    (void)index;
    exud_t *u = ud;
    lua_State *L = lbraid_newstate(NULL);
    if (!L) {
        *errmsg = strdup("out of memory creating a worker state");
        return BRAID_ENOMEM;
    }
    wctx_t *w = calloc(1, sizeof *w);
    if (!w) {
        lua_close(L);
        return BRAID_ENOMEM;
    }
    w->L = L;
    *wctxp = w;
    lua_gc(L, LUA_GCGEN, 0, 0);
    lbraid_ctx(L); /* binds this thread's waiter */
    lbraid_dump_attach(L, LDUMP_WORKER);
    lua_getglobal(L, "package");
    if (u->path) {
        lua_pushstring(L, u->path);
        lua_setfield(L, -2, "path");
    }
    if (u->cpath) {
        lua_pushstring(L, u->cpath);
        lua_setfield(L, -2, "cpath");
    }
    lua_pop(L, 1);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &FNCACHE_KEY);
    if (u->init.len) {
        lua_pushcfunction(L, init_body);
        lua_pushlightuserdata(L, u);
        if (lbraid_pcall(L, 1, 0) != LUA_OK) {
            lbraid_push_traceback(L, -1);
            const char *tb = lua_tostring(L, -1);
            fprintf(
                stderr, "Exception in initializer:\n%s\n", tb ? tb : luaL_tolstring(L, -2, NULL));
            fflush(stderr);
            lua_settop(L, 0);
            *errmsg = strdup("A thread initializer failed, the thread pool is not usable anymore");
            return BRAID_EINVAL;
        }
    }
    return 0;
}

/* Pushes the task function encoded in data[0..n). A function whose only
 * upvalue is _ENV (or that has none) is the same in every call: it is
 * decoded once per worker and found again by its chunk's MAC. */
static void push_task_fn(lua_State *L, wctx_t *w, const uint8_t *data, size_t n)
{
    braid_reader_t r;
    braid_reader_init(&r, data, n);
    uint64_t mac = 0;
    int cacheable = 0;
    if (braid_reader_u8(&r) == BRAID_T_FUNC) {
        size_t clen;
        braid_reader_str(&r, &clen);
        mac = braid_reader_u64(&r);
        uint64_t nup = braid_reader_varint(&r);
        if (nup == 0) {
            cacheable = 1;
        } else if (nup == 1 && braid_reader_u8(&r) == BRAID_T_MODULE) {
            size_t mlen;
            const uint8_t *m = braid_reader_str(&r, &mlen);
            cacheable = m && mlen == 2 && memcmp(m, "_G", 2) == 0;
        }
        cacheable = cacheable && !r.err && !atomic_load(&fn_cache_off);
    }
    if (cacheable) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &FNCACHE_KEY);
        if (lua_rawgeti(L, -1, (lua_Integer)mac) == LUA_TFUNCTION) {
            lua_remove(L, -2);
            return;
        }
        lua_pop(L, 2);
    }
    lbraid_decode(L, data, n);
    if (cacheable && lua_isfunction(L, -1)) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &FNCACHE_KEY);
        if (++w->ncached > FN_CACHE_MAX) {
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushvalue(L, -1);
            lua_rawsetp(L, LUA_REGISTRYINDEX, &FNCACHE_KEY);
            w->ncached = 1;
        }
        lua_pushvalue(L, -2);
        lua_rawseti(L, -2, (lua_Integer)mac);
        lua_pop(L, 1);
    }
}

/* Runs a task: call = [function][argument sequence], aux = the length of
 * the function part, and encodes its results into out: one protected
 * call for the whole task. Stack effect: none (it is a pcall body). */
static int run_body(lua_State *L)
{
    const braid_buf_t *call = lua_touserdata(L, 1);
    size_t aux = (size_t)lua_tointeger(L, 2);
    wctx_t *w = lua_touserdata(L, 3);
    braid_buf_t *out = lua_touserdata(L, 4);
    lua_settop(L, 0);
    push_task_fn(L, w, call->data, aux);
    if (braid_trace_enabled())
        lbraid_trace_job_name(L, 1);
    int n = lfutures_push_seq(L, call->data + aux, call->len - aux);
    lua_call(L, n, LUA_MULTRET);
    lbraid_encode_seq(L, 1, lua_gettop(L), out, "result");
    return 0;
}

static int worker_run(void *wp, const braid_buf_t *call, size_t aux, braid_buf_t *out)
{
    wctx_t *w = wp;
    lua_State *L = w->L;
    lua_settop(L, 0);
    if (aux > call->len) {
        lbraid_push_error(L, "ValueError", "malformed task");
        lua_pushnil(L);
    } else {
        lua_pushcfunction(L, run_body);
        lua_pushlightuserdata(L, (void *)call);
        lua_pushinteger(L, (lua_Integer)aux);
        lua_pushlightuserdata(L, w);
        lua_pushlightuserdata(L, out);
        if (lbraid_pcall(L, 4, 0) == LUA_OK)
            return 0;
        braid_buf_reset(out); /* a result that could not cross: send that error */
        lbraid_push_traceback(L, -1);
    }
    /* stack: ..., error value, traceback */
    int top = lua_gettop(L);
    if (braid_trace_enabled())
        lbraid_trace_error(L, top - 1);
    lua_pushcfunction(L, lfutures_encode_seq_body);
    lua_pushlightuserdata(L, out);
    lua_pushvalue(L, top - 1);
    lua_pushvalue(L, top);
    if (lbraid_pcall(L, 3, 0) != LUA_OK) {
        braid_buf_reset(out);
        const char *msg = lua_tostring(L, -1);
        lua_pushcfunction(L, lfutures_encode_seq_body);
        lua_pushlightuserdata(L, out);
        lbraid_push_error(L, "TypeError", msg ? msg : "error value cannot cross");
        lua_pushnil(L);
        if (lbraid_pcall(L, 3, 0) != LUA_OK)
            braid_buf_reset(out);
    }
    lua_settop(L, 0);
    return 1;
}

static void worker_stop(void *wp)
{
    wctx_t *w = wp;
    if (!w)
        return;
    lua_close(w->L);
    free(w);
}

static const braid_executor_ops_t thread_ops = {worker_start, worker_run, worker_stop, exud_free};

/* ------------------------------------------------------------------ */
/* ThreadPoolExecutor                                                  */
/* ------------------------------------------------------------------ */

static braid_executor_t *lexecutor_check(lua_State *L, int idx)
{
    return (braid_executor_t *)lbraid_check_object(L, idx, &braid_executor_type);
}

static char *dup_package_field(lua_State *L, const char *k)
{
    char *s = NULL;
    lua_getglobal(L, "package");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, k);
        if (lua_isstring(L, -1))
            s = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return s;
}

/* ThreadPoolExecutor(max_workers) or ThreadPoolExecutor{max_workers=,
 * initializer=, initargs=, thread_name_prefix=}. */
static int lexecutor_new(lua_State *L)
{
    static atomic_int counter;
    lua_Integer max_workers = 0;
    int have_max = 0;
    const char *prefix = NULL;
    lua_settop(L, 1);
    int init = 0, initargs = 0;
    if (lua_istable(L, 1)) {
        lua_getfield(L, 1, "max_workers");
        lua_getfield(L, 1, "thread_name_prefix");
        lua_getfield(L, 1, "initializer");
        lua_getfield(L, 1, "initargs");
        init = 4;
        initargs = 5;
        lua_getfield(L, 1, "name");
        if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(
                L, "bad option 'name' (string expected, got %s)", luaL_typename(L, -1));
        lua_pop(L, 1);
        if (!lua_isnil(L, 2)) {
            if (!lua_isinteger(L, 2))
                return luaL_error(L, "max_workers must be an integer");
            max_workers = lua_tointeger(L, 2);
            have_max = 1;
        }
        if (!lua_isnil(L, 3))
            prefix = luaL_checkstring(L, 3);
    } else if (!lua_isnoneornil(L, 1)) {
        max_workers = luaL_checkinteger(L, 1);
        have_max = 1;
    }
    if (!have_max) {
        long cpus = 1;
        lua_getglobal(L, "require");
        lua_pushliteral(L, "braid");
        lua_call(L, 1, 1);
        lua_getfield(L, -1, "cpu_count");
        if (lua_isfunction(L, -1)) {
            lua_call(L, 0, 1);
            cpus = (long)luaL_optinteger(L, -1, 1);
            lua_pop(L, 1);
        } else {
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        max_workers = cpus + 4 < 32 ? cpus + 4 : 32;
    }
    if (max_workers <= 0)
        return lbraid_error(L, "ValueError", "max_workers must be greater than 0");
    if (max_workers > 100000)
        return lbraid_error(L, "ValueError", "max_workers is too large");
    char pbuf[64];
    if (!prefix) {
        snprintf(pbuf, sizeof pbuf, "ThreadPoolExecutor-%d", atomic_fetch_add(&counter, 1));
        prefix = pbuf;
    }
    braid_buf_t *initbuf = lbraid_push_buf(L);
    if (init && !lua_isnil(L, init)) {
        if (!lua_isfunction(L, init))
            return lbraid_error(L, "TypeError", "initializer must be a callable");
        lua_pushvalue(L, init);
        int n = 1;
        if (!lua_isnil(L, initargs)) {
            luaL_checktype(L, initargs, LUA_TTABLE);
            lua_getfield(L, initargs, "n");
            lua_Integer na = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : luaL_len(L, initargs);
            lua_pop(L, 1);
            luaL_checkstack(L, (int)na + 4, "too many initargs");
            for (lua_Integer i = 1; i <= na; i++)
                lua_rawgeti(L, initargs, i);
            n += (int)na;
        }
        lbraid_encode_seq(L, lua_gettop(L) - n + 1, n, initbuf, "initargs");
        lua_pop(L, n);
    }
    exud_t *u = calloc(1, sizeof *u);
    if (!u)
        return lbraid_core_error(L, BRAID_ENOMEM, NULL);
    u->path = dup_package_field(L, "path");
    u->cpath = dup_package_field(L, "cpath");
    braid_buf_move(&u->init, initbuf);
    braid_executor_t *ex;
    int rc = braid_executor_new(&ex, (int)max_workers, prefix, &thread_ops, u);
    if (rc)
        return lbraid_core_error(L, rc, "ThreadPoolExecutor");
    lbraid_apply_name(L, 1, (braid_object_t *)ex);
    lbraid_push_object(L, (braid_object_t *)ex);
    braid_executor_release(ex);
    return 1;
}

/* The executor methods' upvalues: the executor metatable and its address
 * (the fast check of box 1: two pointer reads), the Future metatable
 * (the new future's box), the state context (light userdata, bound on the first submit: lbraid_ctx
 * binds the calling thread's waiter) and submit's call buffer. */
#define UP_META lua_upvalueindex(1)
#define UP_FUTURE_META lua_upvalueindex(2)
#define UP_CTX lua_upvalueindex(3)
#define UP_CALLBUF lua_upvalueindex(4)
#define UP_META_ADDR lua_upvalueindex(5) /* the executor metatable's address */
#define EXECUTOR_NUPS 5

/* submit's own call buffer, reused by every submit in this state (no
 * scratch box to look up and close per call). owner: the frame address of
 * the submit using it, NULL when free. A submit whose encode
 * raised leaves it set; a later one takes it over when its own frame is
 * not deeper on the C stack than that one was (the stack grows down), so
 * that one has ended. A submit nested inside another (a metamethod run
 * while encoding) is deeper, and uses a scratch buffer. */
/* memo: the function submitted last and its encoding (a burst submits
 * the same one over and over); the box's user value anchors the function
 * (lbraid_encode_memo says when the bytes still hold). */
typedef struct callbuf {
    braid_buf_t buf;
    const char *owner;
    lbraid_fnmemo_t memo;
    const void *meta;  /* the executor metatable's address (as UP_META_ADDR) */
    lbraid_ctx_t *ctx; /* the state context (as UP_CTX), NULL until the first submit */
} callbuf_t;

static int callbuf_gc(lua_State *L)
{
    callbuf_t *c = lua_touserdata(L, 1);
    braid_buf_free(&c->buf);
    braid_buf_free(&c->memo.bytes);
    c->memo.fn = NULL;
    return 0;
}

static void push_callbuf(lua_State *L)
{
    callbuf_t *c = lua_newuserdatauv(L, sizeof *c, 1);
    braid_buf_init(&c->buf);
    c->owner = NULL;
    c->memo.fn = NULL;
    braid_buf_init(&c->memo.bytes);
    c->meta = NULL;
    c->ctx = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, callbuf_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
}

/* ex:submit(fn, ...) -> Future */
static int lexecutor_submit(lua_State *L)
{
    braid_executor_t *ex = NULL;
    callbuf_t *cb = lua_touserdata(L, UP_CALLBUF); /* also the metatable address, the context */
    if (lua_getmetatable(L, 1)) {
        if (lua_topointer(L, -1) == cb->meta)
            ex = (braid_executor_t *)((lbraid_box_t *)lua_touserdata(L, 1))->obj;
        lua_pop(L, 1);
    }
    if (!ex)
        ex = lexecutor_check(L, 1);
    if (!lua_isfunction(L, 2) && !luaL_getmetafield(L, 2, "__call"))
        luaL_typeerror(L, 2, "function");
    lbraid_ctx_t *ctx = cb->ctx;
    if (!ctx) {
        ctx = cb->ctx = lbraid_ctx(L);
        lua_pushlightuserdata(L, ctx);
        lua_replace(L, UP_CTX);
    }
    if (ctx->poll)
        ctx->poll(L);
    int n = lua_gettop(L);
    /* the machine frame, not a local's address: a sanitizer's fake stack
     * may place locals anywhere */
    const char *here = __builtin_frame_address(0);
    braid_buf_t *call;
    if (!cb->owner || (uintptr_t)here >= (uintptr_t)cb->owner) {
        cb->owner = here;
        call = &cb->buf;
        braid_buf_reset(call);
    } else {
        cb = NULL;
        call = lbraid_take_scratch(L);
    }
    if (cb) {
        const void *had = cb->memo.fn;
        if (lbraid_encode_memo(L, 2, call, &cb->memo, "fn") && cb->memo.fn != had) {
            lua_pushvalue(L, 2); /* anchor the memo's function */
            lua_setiuservalue(L, UP_CALLBUF, 1);
        }
    } else {
        lbraid_encode(L, 2, call, "fn");
    }
    size_t aux = call->len;
    lbraid_encode_seq(L, 3, n - 2, call, "args");
    braid_future_t *f;
    int rc = braid_executor_submit(ex, call, aux, &f);
    if (cb) {
        braid_buf_reset(call); /* ours again, or the spare task's buffer swapped in */
        cb->owner = NULL;
    }
    if (rc == BRAID_ESHUTDOWN)
        return lbraid_error(L, "RuntimeError", "cannot schedule new futures after shutdown");
    if (rc == BRAID_EBROKEN) {
        const char *msg;
        braid_executor_broken(ex, &msg);
        return lbraid_error(L, "BrokenExecutor", "%s", msg);
    }
    if (rc)
        return lbraid_core_error(L, rc, "submit");
    lbraid_push_new_object(L, (braid_object_t *)f, UP_FUTURE_META);
    braid_future_release(f);
    return 1;
}

/* ex:shutdown(wait=true, cancel_futures=false) */
static int lexecutor_shutdown(lua_State *L)
{
    braid_executor_t *ex = lexecutor_check(L, 1);
    int wait = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
    int cancel = lua_toboolean(L, 3);
    lbraid_poll(L);
    int rc = braid_executor_shutdown(ex, wait, cancel, BRAID_FOREVER);
    if (rc)
        return lbraid_core_error(L, rc, "shutdown");
    lbraid_poll(L);
    return 0;
}

static int lexecutor_max_workers(lua_State *L)
{
    lua_pushinteger(L, braid_executor_max_workers(lexecutor_check(L, 1)));
    return 1;
}

static int lexecutor_nthreads(lua_State *L)
{
    lua_pushinteger(L, braid_executor_nthreads(lexecutor_check(L, 1)));
    return 1;
}

static int lexecutor_broken(lua_State *L)
{
    const char *msg;
    int b = braid_executor_broken(lexecutor_check(L, 1), &msg);
    lua_pushboolean(L, b);
    return 1;
}

/* futures._fn_cache(on): turns the workers' function cache on or off
 * (process-wide; for measuring its effect). */
static int lexecutor_fn_cache(lua_State *L)
{
    atomic_store(&fn_cache_off, !lua_toboolean(L, 1));
    return 0;
}

static const luaL_Reg executor_methods[] = {
    {"submit", lexecutor_submit},
    {"shutdown", lexecutor_shutdown},
    {"_max_workers", lexecutor_max_workers},
    {"_threads", lexecutor_nthreads},
    {"_broken", lexecutor_broken},
    {NULL, NULL},
};

void lexecutor_open(lua_State *L, int mod)
{
    mod = lua_absindex(L, mod);
    lua_pushcfunction(L, lexecutor_new);
    lua_setfield(L, mod, "ThreadPoolExecutor");
    lua_pushcfunction(L, lexecutor_fn_cache);
    lua_setfield(L, mod, "_fn_cache");
    lbraid_newmeta(L, &braid_executor_type, NULL);
    lua_getfield(L, -1, "__index");
    lua_pushvalue(L, -2);
    luaL_getmetatable(L, braid_future_type.name); /* lfutures.c registered it */
    lua_pushnil(L);                               /* the context, on the first submit */
    push_callbuf(L);
    ((callbuf_t *)lua_touserdata(L, -1))->meta = lua_topointer(L, -4);
    lua_pushlightuserdata(L, (void *)lua_topointer(L, -4));
    luaL_setfuncs(L, executor_methods, EXECUTOR_NUPS);
    lua_setfield(L, mod, "_Executor_methods");
    lua_setfield(L, mod, "_Executor_meta");
}
