/* luv on the running asyncio loop: `require "luv"` inside a braid program
 * finds luv's C module itself, and before opening it hands luv the running
 * loop's uv loop (luv's luv_set_loop), so luv handles and braid tasks share
 * one libuv loop. asyncio.run rebinds a luv opened earlier for its run and
 * gives it back its own loop afterwards. Symbols are looked up with dlsym:
 * braid does not link luv. The Lua half is scripts/braid/asyncio_luv.lua. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

#include "lbraid.h"
#include "loop.h"

#define FALLBACK_META "braid.asyncio.luvloop"
#define LUVF_CALLBACK_NOEXIT 0x01 /* luv.h's: report a callback's error, don't exit */

typedef int (*luv_pcall_fn)(lua_State *L, int nargs, int nresults, int flags);

static struct {
    pthread_mutex_t mu;
    int loaded;
    lua_CFunction open;
    void (*set_loop)(lua_State *L, uv_loop_t *loop);
    void (*set_callback)(lua_State *L, luv_pcall_fn pcall);
    uv_loop_t *(*get_loop)(lua_State *L);
    luv_pcall_fn cfpcall;
} api = {PTHREAD_MUTEX_INITIALIZER, 0, NULL, NULL, NULL, NULL, NULL};

/* luv's default callback runner exits the process on an error in a
 * callback; braid's reports it and goes on. */
static int luv_pcall(lua_State *L, int nargs, int nresults, int flags)
{
    return api.cfpcall(L, nargs, nresults, flags | LUVF_CALLBACK_NOEXIT);
}

/* _luv_load(path): dlopens luv's C module and finds its API (once per
 * process); raises ImportError-like errors when it is not luv */
static int lluv_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    pthread_mutex_lock(&api.mu);
    if (!api.loaded) {
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            pthread_mutex_unlock(&api.mu);
            return luaL_error(
                L, "error loading module 'luv' from file '%s':\n\t%s", path, dlerror());
        }
        api.open = (lua_CFunction)dlsym(h, "luaopen_luv");
        *(void **)&api.set_loop = dlsym(h, "luv_set_loop");
        *(void **)&api.set_callback = dlsym(h, "luv_set_callback");
        *(void **)&api.get_loop = dlsym(h, "luv_loop");
        *(void **)&api.cfpcall = dlsym(h, "luv_cfpcall");
        if (!api.open || !api.set_loop || !api.set_callback || !api.get_loop || !api.cfpcall) {
            pthread_mutex_unlock(&api.mu);
            return luaL_error(L, "'%s' is not a luv module with luv_set_loop (luv >= 1.9)", path);
        }
        api.loaded = 1; /* the library stays loaded, as Lua's C modules do */
    }
    pthread_mutex_unlock(&api.mu);
    return 0;
}

static lua_State *main_thread(lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    lua_State *m = lua_tothread(L, -1);
    lua_pop(L, 1);
    return m;
}

/* _luv_open(loop box or nil) -> luv module, luv's loop (light userdata):
 * opens luv on the running loop, or (nil) on a loop of luv's own */
static int lluv_open(lua_State *L)
{
    if (!api.loaded)
        return luaL_error(L, "luv is not loaded");
    lua_State *m = main_thread(L);
    if (!lua_isnoneornil(L, 1))
        api.set_loop(m, braid_loop_uv(lasyncio_check_loop(L, 1)));
    api.set_callback(m, luv_pcall);
    lua_pushcfunction(L, api.open);
    lua_call(L, 0, 1);
    lua_pushlightuserdata(L, api.get_loop(m));
    return 2;
}

/* _luv_bind(loop box | light userdata uv loop) -> the uv loop luv had */
static int lluv_bind(lua_State *L)
{
    if (!api.loaded)
        return 0;
    lua_State *m = main_thread(L);
    uv_loop_t *prev = api.get_loop(m);
    uv_loop_t *uv =
        lua_islightuserdata(L, 1) ? lua_touserdata(L, 1) : braid_loop_uv(lasyncio_check_loop(L, 1));
    api.set_loop(m, uv);
    lua_pushlightuserdata(L, prev);
    return 1;
}

/* a uv loop for a luv first opened on an asyncio loop, once that run ended */
static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int fallback_gc(lua_State *L)
{
    uv_loop_t *uv = luaL_checkudata(L, 1, FALLBACK_META);
    if (uv->data) { /* initialised */
        uv_walk(uv, close_any, NULL);
        uv_run(uv, UV_RUN_DEFAULT);
        uv_loop_close(uv);
        uv->data = NULL;
    }
    return 0;
}

/* _luv_fallback() -> userdata holding a uv loop, its pointer */
static int lluv_fallback(lua_State *L)
{
    uv_loop_t *uv = lua_newuserdatauv(L, sizeof *uv, 0);
    uv->data = NULL;
    if (luaL_newmetatable(L, FALLBACK_META)) {
        lua_pushcfunction(L, fallback_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    int rc = uv_loop_init(uv);
    if (rc)
        return luaL_error(L, "uv_loop_init: %s", uv_strerror(rc));
    uv->data = uv;
    lua_pushlightuserdata(L, uv);
    return 2;
}

static const luaL_Reg lluv_funcs[] = {
    {"_luv_load", lluv_load},
    {"_luv_open", lluv_open},
    {"_luv_bind", lluv_bind},
    {"_luv_fallback", lluv_fallback},
    {NULL, NULL},
};

void lluv_register(lua_State *L)
{
    luaL_setfuncs(L, lluv_funcs, 0);
}
