/* Per-state plumbing: new states, the state context, protected calls that
 * keep tracebacks, whole-line print, timeouts and cancellation checks. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "braid.h"
#include "arena.h"
#include "blockcache.h"
#include "lbraid.h"
#include "lpreload.h"
#include "lstate.h"

static const char CTX_KEY = 'c'; /* registry: full userdata lbraid_ctx_t */
static const char TB_KEY = 't';  /* registry: error value -> traceback */

lbraid_ctx_t *lbraid_ctx(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &CTX_KEY) == LUA_TUSERDATA) {
        lbraid_ctx_t *ctx = lua_touserdata(L, -1);
        lua_pop(L, 1);
        return ctx;
    }
    lua_pop(L, 1);
    lbraid_ctx_t *ctx = lua_newuserdatauv(L, sizeof *ctx, 0);
    memset(ctx, 0, sizeof *ctx);
    ctx->waiter = braid_waiter_current();
    lua_rawsetp(L, LUA_REGISTRYINDEX, &CTX_KEY);
    return ctx;
}

/* print that writes each line with one write(2), so lines from different
 * threads never interleave mid-line. */
static int lstate_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_addchar(&b, '\n');
    luaL_pushresult(&b);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    flockfile(stdout);
    fflush(stdout); /* earlier io.write output goes first */
    while (len > 0) {
        ssize_t w = write(fileno(stdout), s, len);
        if (w < 0)
            break;
        s += w;
        len -= (size_t)w;
    }
    funlockfile(stdout);
    return 0;
}

void lbraid_install_print(lua_State *L)
{
    lua_pushcfunction(L, lstate_print);
    lua_setglobal(L, "print");
}

/* ---- the host's state hook (braid.h: braid_set_state_init) ---- */

static braid_state_init_fn init_fn;
static void *init_ud;

void braid_set_state_init(braid_state_init_fn fn, void *ud)
{
    init_fn = fn;
    init_ud = ud;
}

static int init_call(lua_State *L)
{
    init_fn(L, lua_touserdata(L, 1));
    return 0;
}

/* Runs the host's hook in a new state, protected; an error is reported. */
static void run_state_init(lua_State *L)
{
    if (!init_fn)
        return;
    lua_pushcfunction(L, init_call);
    lua_pushlightuserdata(L, init_ud);
    if (lbraid_pcall(L, 1, 0) != LUA_OK) {
        fprintf(
            stderr, "braid: the host's state init hook failed: %s\n", luaL_tolstring(L, -1, NULL));
        fflush(stderr);
    }
    lua_settop(L, 0);
}

lua_State *lbraid_newstate(lua_State *from)
{
    lua_State *L = luaL_newstate();
    if (!L)
        return NULL;
    luaL_openlibs(L);
    lbraid_preload(L);
    lbraid_install_print(L);
    if (from) {
        static const char *const keys[] = {"path", "cpath"};
        for (int i = 0; i < 2; i++) {
            lua_getglobal(from, "package");
            lua_getfield(from, -1, keys[i]);
            const char *v = lua_tostring(from, -1);
            if (v) {
                lua_getglobal(L, "package");
                lua_pushstring(L, v);
                lua_setfield(L, -2, keys[i]);
                lua_pop(L, 1);
            }
            lua_pop(from, 2);
        }
    }
    run_state_init(L);
    return L;
}

/* ---- states for braid threads ----
 * Their blocks come from a per-state region (core/arena.c), so lua_newstate
 * needs luaL_newstate's panic and warning functions, which lauxlib keeps
 * static. */

static int lstate_panic(lua_State *L)
{
    const char *msg =
        lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error object is not a string";
    fprintf(stderr, "PANIC: unprotected error in call to Lua API (%s)\n", msg);
    fflush(stderr);
    return 0;
}

static void warn_off(void *ud, const char *msg, int tocont);
static void warn_on(void *ud, const char *msg, int tocont);

static int warn_control(lua_State *L, const char *msg, int tocont)
{
    if (tocont || *(msg++) != '@')
        return 0;
    if (strcmp(msg, "off") == 0)
        lua_setwarnf(L, warn_off, L);
    else if (strcmp(msg, "on") == 0)
        lua_setwarnf(L, warn_on, L);
    return 1;
}

static void warn_off(void *ud, const char *msg, int tocont)
{
    warn_control(ud, msg, tocont);
}

static void warn_cont(void *ud, const char *msg, int tocont)
{
    lua_State *L = ud;
    fprintf(stderr, "%s", msg);
    fflush(stderr);
    if (tocont) {
        lua_setwarnf(L, warn_cont, L);
    } else {
        fprintf(stderr, "\n");
        fflush(stderr);
        lua_setwarnf(L, warn_on, L);
    }
}

static void warn_on(void *ud, const char *msg, int tocont)
{
    if (warn_control(ud, msg, tocont))
        return;
    fprintf(stderr, "Lua warning: ");
    warn_cont(ud, msg, tocont);
}

/* luaL_openlibs into a _G and a package.loaded made at the size the
 * libraries fill (_G: 36 names; loaded: 10 libraries, then braid's
 * modules), not grown (rehashed) a doubling at a time. Replacing the
 * globals table before anything has run is unobservable: nothing holds
 * the empty one lua_newstate made. */
static void open_stdlibs(lua_State *L)
{
    lua_createtable(L, 0, 40);
    lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_createtable(L, 0, 16);
    lua_setfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    luaL_openlibs(L);
}

lua_State *lbraid_newstate_thread(void)
{
    braid_arena_t *a = braid_arena_new();
    if (!a)
        return NULL;
    lua_State *L = lua_newstate(braid_arena_alloc, a);
    if (!L) {
        braid_arena_free(a);
        return NULL;
    }
    lua_atpanic(L, lstate_panic);
    lua_setwarnf(L, warn_off, L);
    /* everything made here stays alive: no collection while opening */
    lua_gc(L, LUA_GCSTOP);
    open_stdlibs(L);
    lbraid_preload(L);
    lbraid_install_print(L);
    lua_gc(L, LUA_GCRESTART);
    /* Everything made so far is alive: as after a full collection (which
     * would free nothing), the first cycle starts once the state has grown
     * by its own size (the default pause, 200%), not at the next
     * allocation (a step that only marks live objects, ~16k instructions
     * in every new thread). A negative step is a credit: lua_gc adds it to
     * the collector's debt. */
    lua_gc(L, LUA_GCSTEP, -lua_gc(L, LUA_GCCOUNT));
    run_state_init(L);
    return L;
}

void lbraid_state_learn(lua_State *L)
{
    void *a;
    if (lua_getallocf(L, &a) == braid_arena_alloc)
        braid_arena_learn(a);
}

void lbraid_closestate_thread(lua_State *L)
{
    void *a;
    lua_getallocf(L, &a);
    lua_close(L);
    braid_arena_free(a);
}

lua_State *lbraid_newstate_main(void)
{
    braid_bcache_t *c = braid_bcache_new();
    if (!c)
        return NULL;
    lua_State *L = lua_newstate(braid_bcache_alloc, c);
    if (!L) {
        braid_bcache_free(c);
        return NULL;
    }
    lua_atpanic(L, lstate_panic);
    lua_setwarnf(L, warn_off, L);
    return L;
}

void lbraid_closestate_main(lua_State *L)
{
    void *c;
    lua_getallocf(L, &c);
    lua_close(L);
    braid_bcache_free(c);
}

/* ---- tracebacks ---- */

void lbraid_set_traceback(lua_State *L, int idx, const char *tb)
{
    idx = lua_absindex(L, idx);
    if (lbraid_is_error(L, idx, NULL)) {
        if (lua_getfield(L, idx, "traceback") == LUA_TNIL) {
            lua_pushstring(L, tb);
            lua_setfield(L, idx, "traceback");
        }
        lua_pop(L, 1);
        return;
    }
    if (lua_isnil(L, idx))
        return;
    lbraid_push_weak_table(L, &TB_KEY, "k");
    /* strings and numbers are never collected from a weak table: bound it */
    lua_getfield(L, -1, "\1count");
    lua_Integer count = lua_tointeger(L, -1) + 1;
    lua_pop(L, 1);
    if (count > 256) {
        lua_pop(L, 1);
        lua_pushnil(L);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &TB_KEY);
        lbraid_set_traceback(L, idx, tb);
        return;
    }
    lua_pushinteger(L, count);
    lua_setfield(L, -2, "\1count");
    lua_pushvalue(L, idx);
    lua_pushstring(L, tb);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

void lbraid_push_traceback(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (lbraid_is_error(L, idx, NULL)) {
        lua_getfield(L, idx, "traceback");
        return;
    }
    if (lua_isnil(L, idx) || lua_rawgetp(L, LUA_REGISTRYINDEX, &TB_KEY) != LUA_TTABLE) {
        lua_pushnil(L);
        if (!lua_isnil(L, idx))
            lua_remove(L, -2);
        return;
    }
    lua_pushvalue(L, idx);
    lua_rawget(L, -2);
    lua_remove(L, -2);
}

static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    lbraid_set_traceback(L, 1, lua_tostring(L, -1));
    lua_settop(L, 1);
    return 1;
}

int lbraid_pcall(lua_State *L, int nargs, int nresults)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    int status = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    return status;
}

/* ---- calls into braid ---- */

void lbraid_poll(lua_State *L)
{
    lbraid_ctx_t *ctx = lbraid_ctx(L);
    if (ctx->poll)
        ctx->poll(L);
}

int64_t lbraid_opt_deadline(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return BRAID_FOREVER;
    lua_Number t = luaL_checknumber(L, idx);
    if (t != t)
        luaL_argerror(L, idx, "timeout is NaN");
    return braid_clock_deadline((double)t);
}

void lbraid_check_cancel(lua_State *L)
{
    lbraid_ctx_t *ctx = lbraid_ctx(L);
    if (ctx->waiter && braid_waiter_take_cancel(ctx->waiter))
        lbraid_error(L, "Cancelled", "the thread was cancelled");
}

/* ---- buffers owned by the Lua stack ---- */

static int lstate_buf_gc(lua_State *L)
{
    braid_buf_free(lua_touserdata(L, 1));
    return 0;
}

braid_buf_t *lbraid_push_buf(lua_State *L)
{
    braid_buf_t *b = lua_newuserdatauv(L, sizeof *b, 0);
    braid_buf_init(b);
    if (luaL_newmetatable(L, "braid.buffer")) {
        lua_pushcfunction(L, lstate_buf_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, lstate_buf_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    return b;
}

/* ---- scratch buffers, reused per state ---- */

static const char SCRATCH_KEY = 's'; /* registry: array of free scratch boxes */
#define SCRATCH_CACHE 4

/* __close: empties the buffer (keeping its memory) and returns the box to
 * this state's cache. */
static int lstate_scratch_close(lua_State *L)
{
    braid_buf_reset(lua_touserdata(L, 1));
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &SCRATCH_KEY) == LUA_TTABLE) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        if (n < SCRATCH_CACHE) {
            lua_pushvalue(L, 1);
            lua_rawseti(L, -2, n + 1);
        }
    }
    return 0;
}

braid_buf_t *lbraid_take_scratch(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &SCRATCH_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, SCRATCH_CACHE, 0);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &SCRATCH_KEY);
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    braid_buf_t *b;
    if (n > 0) {
        lua_rawgeti(L, -1, n);
        lua_pushnil(L);
        lua_rawseti(L, -3, n);
        b = lua_touserdata(L, -1);
    } else {
        b = lua_newuserdatauv(L, sizeof *b, 0);
        braid_buf_init(b);
        if (luaL_newmetatable(L, "braid.scratch")) {
            lua_pushcfunction(L, lstate_buf_gc);
            lua_setfield(L, -2, "__gc");
            lua_pushcfunction(L, lstate_scratch_close);
            lua_setfield(L, -2, "__close");
        }
        lua_setmetatable(L, -2);
    }
    lua_remove(L, -2);
    lua_toclose(L, -1);
    return b;
}

/* ---- running an encoded call in a state ---- */

/* Body of lbraid_run_call: decodes fn, args and calls; stack effect: all
 * results of the call. */
static int run_call_body(lua_State *L)
{
    const braid_buf_t *call = lua_touserdata(L, 1);
    lua_settop(L, 0);
    int n = lbraid_decode_seq(L, call->data, call->len);
    lua_call(L, n - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* Encodes the results on the stack above `base` into out. */
static int encode_results(lua_State *L)
{
    braid_buf_t *out = lua_touserdata(L, 1);
    lbraid_encode_seq(L, 2, lua_gettop(L) - 1, out, "result");
    return 0;
}

int lbraid_run_call(lua_State *L, const braid_buf_t *call, braid_buf_t *out)
{
    int base = lua_gettop(L);
    lua_pushcfunction(L, run_call_body);
    lua_pushlightuserdata(L, (void *)call);
    int status = lbraid_pcall(L, 1, LUA_MULTRET);
    if (status == LUA_OK) {
        int nres = lua_gettop(L) - base;
        lua_pushcfunction(L, encode_results);
        lua_insert(L, base + 1);
        lua_pushlightuserdata(L, out);
        lua_insert(L, base + 2);
        status = lbraid_pcall(L, nres + 1, 0);
        if (status == LUA_OK) {
            lua_settop(L, base);
            return 0;
        }
        braid_buf_reset(out); /* a result could not cross: send that error */
    }
    lbraid_encode_failure(L, -1, out);
    lua_settop(L, base);
    return 1;
}

void lbraid_encode_failure(lua_State *L, int erridx, braid_buf_t *out)
{
    int base = lua_gettop(L);
    erridx = lua_absindex(L, erridx);
    braid_buf_reset(out);
    lua_pushcfunction(L, encode_results);
    lua_pushlightuserdata(L, out);
    lua_pushvalue(L, erridx);
    lbraid_push_traceback(L, erridx);
    if (lbraid_pcall(L, 3, 0) != LUA_OK) {
        /* the error value itself cannot cross: send what it says instead */
        braid_buf_reset(out);
        const char *msg = luaL_tolstring(L, erridx, NULL);
        lua_pushcfunction(L, encode_results);
        lua_pushlightuserdata(L, out);
        lbraid_push_error(L, "TypeError", msg);
        lbraid_push_traceback(L, erridx);
        if (lbraid_pcall(L, 3, 0) != LUA_OK)
            braid_buf_reset(out);
    }
    lua_settop(L, base);
}

int lbraid_push_outcome(lua_State *L, const braid_buf_t *out, int failed)
{
    int base = lua_gettop(L);
    int n = lbraid_decode_seq(L, out->data, out->len);
    if (!failed)
        return n;
    if (n < 1)
        return lbraid_error(L, "RuntimeError", "remote call failed without an error value");
    if (n >= 2 && lua_isstring(L, base + 2))
        lbraid_set_traceback(L, base + 1, lua_tostring(L, base + 2));
    lua_settop(L, base + 1);
    return lua_error(L);
}
