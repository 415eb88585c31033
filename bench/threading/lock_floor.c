/* The floor under lock_acquire_release: stock Lua 5.4 running the same loop
 * as lock.lua (two method calls per iteration on a full userdata, methods
 * looked up through its metatable's __index table) where both methods are
 * empty C functions. No Lock can be faster from Lua through the C API. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>

static int empty(lua_State *L)
{
    (void)L;
    return 0;
}

static const char *loop =
    "local l, clock, N = ...\n"
    "for _ = 1, 100000 do l:acquire(); l:release() end\n"
    "local t0 = clock()\n"
    "for _ = 1, N do l:acquire(); l:release() end\n"
    "return N / (clock() - t0)\n";

#include <time.h>
static int clock_s(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + ts.tv_nsec * 1e-9);
    return 1;
}

int main(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_loadstring(L, loop) != LUA_OK)
        return 1;
    lua_newuserdatauv(L, 16, 0);
    lua_createtable(L, 0, 1); /* metatable */
    lua_createtable(L, 0, 2); /* methods */
    lua_pushcfunction(L, empty);
    lua_setfield(L, -2, "acquire");
    lua_pushcfunction(L, empty);
    lua_setfield(L, -2, "release");
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_pushcfunction(L, clock_s);
    lua_pushinteger(L, 5000000);
    if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        return 1;
    }
    printf("RESULT lock_acquire_release %.0f\n", lua_tonumber(L, -1));
    lua_close(L);
    return 0;
}
