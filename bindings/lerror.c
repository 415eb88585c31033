/* braid.Error objects (API.md §0): tables {kind, message, traceback, cause}
 * whose metatable is braid.Error; raised for Python's named exceptions. */
#include <stdarg.h>
#include <string.h>

#include "lbraid.h"

#define ERROR_META "braid.Error"

static int lerror_tostring(lua_State *L)
{
    lua_getfield(L, 1, "kind");
    lua_getfield(L, 1, "message");
    lua_pushfstring(L, "%s: %s", luaL_optstring(L, -2, "Error"), luaL_optstring(L, -1, ""));
    return 1;
}

/* braid.Error.is(err [, kind]) */
static int lerror_is(lua_State *L)
{
    lua_pushboolean(L, lbraid_is_error(L, 1, luaL_optstring(L, 2, NULL)));
    return 1;
}

/* braid.Error.new(kind, message [, cause]) -> error object (not raised) */
static int lerror_new(lua_State *L)
{
    lua_settop(L, 3);
    lbraid_push_error(L, luaL_checkstring(L, 1), luaL_optstring(L, 2, ""));
    if (!lua_isnoneornil(L, 3)) {
        lua_pushvalue(L, 3);
        lua_setfield(L, -2, "cause");
    }
    return 1;
}

/* Pushes the braid.Error metatable, creating it on first use. Stack: +1. */
static void push_meta(lua_State *L)
{
    if (luaL_newmetatable(L, ERROR_META)) {
        lua_pushcfunction(L, lerror_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, lerror_is);
        lua_setfield(L, -2, "is");
        lua_pushcfunction(L, lerror_new);
        lua_setfield(L, -2, "new");
    }
}

int lbraid_open_error(lua_State *L)
{
    push_meta(L);
    return 1;
}

void lbraid_push_error(lua_State *L, const char *kind, const char *message)
{
    lua_createtable(L, 0, 4);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    push_meta(L);
    lua_setmetatable(L, -2);
}

int lbraid_error(lua_State *L, const char *kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *msg = lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lbraid_push_error(L, kind, msg);
    return lua_error(L);
}

int lbraid_core_error(lua_State *L, int code, const char *what)
{
    if (code == BRAID_EINTR) { /* Ctrl-C in the braid executable, like lua.c */
        braid_waiter_take_interrupt();
        lua_sethook(L, NULL, 0, 0);
        return luaL_error(L, "interrupted!");
    }
    if (code == BRAID_ECANCELLED) {
        lbraid_ctx_t *ctx = lbraid_ctx(L);
        if (ctx->waiter)
            braid_waiter_take_cancel(ctx->waiter); /* delivered once */
        return lbraid_error(L, "Cancelled", "the thread was cancelled");
    }
    if (what)
        return lbraid_error(L, braid_errkind(code), "%s: %s", what, braid_strerror(code));
    return lbraid_error(L, braid_errkind(code), "%s", braid_strerror(code));
}

int lbraid_is_error(lua_State *L, int idx, const char *kind)
{
    if (!lua_istable(L, idx) || !lua_getmetatable(L, idx))
        return 0;
    luaL_getmetatable(L, ERROR_META);
    int is = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (is && kind) {
        lua_getfield(L, idx, "kind");
        const char *k = lua_tostring(L, -1);
        is = k && strcmp(k, kind) == 0;
        lua_pop(L, 1);
    }
    return is;
}
