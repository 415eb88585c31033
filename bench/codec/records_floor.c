/* records_roundtrip, raw-C limit: roundtrip.c's minimal Lua C API serializer
 * copying records.lua's 1,000 records between two lua_States, with none of
 * braid's checks (no shared references, no validation). */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "copier.h" /* the serializer both floors share */

/* the same shape as records.lua */
static const char *const make_values =
    "local recs = {}\n"
    "for i = 1, 1000 do recs[i] = {id = i, name = 'user' .. i, vals = {i, i * 0.5, true}} end\n"
    "return recs\n";
int main(void)
{
    lua_State *src = luaL_newstate(), *dst = luaL_newstate();
    luaL_openlibs(src);
    luaL_openlibs(dst);
    if (luaL_dostring(src, make_values) != 0) {
        fprintf(stderr, "%s\n", lua_tostring(src, -1));
        return 1;
    }
    buf_t b = {0};
    measure(src, dst, &b, 0.1);
    printf("RESULT records_roundtrip %.1f\n", measure(src, dst, &b, 0.8));
    free(b.p);
    lua_close(src);
    lua_close(dst);
    return 0;
}
