/* Codec round trip, raw-C limit: a minimal Lua C API serializer copying the same
 * table and 5-upvalue function between two lua_States, with none of braid's checks. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "copier.h" /* the serializer both floors share */

/* the same shapes as roundtrip.lua */
static const char *const make_values =
    "local records = {}\n"
    "for i = 1, 100 do\n"
    "  records[i] = {id = i, name = 'user' .. i, email = 'user' .. i .. '@example.com',\n"
    "    active = i % 2 == 0, score = i * 1.5, balance = -i * 100,\n"
    "    tags = {'alpha', 'beta', 'gamma'}, pos = {x = i, y = i * 2},\n"
    "    history = {i, i + 1, i + 2, i + 3},\n"
    "    meta = {created = 1700000000 + i, note = 'note ' .. i}}\n"
    "end\n"
    "local count, rate, label, weights, enabled = 7, 0.25, 'scaled', {1, 2, 3, 4}, true\n"
    "local function fn(x)\n"
    "  if not enabled then return x end\n"
    "  local s = 0\n"
    "  for i = 1, #weights do s = s + weights[i] * x end\n"
    "  return label, s * rate + count\n"
    "end\n"
    "return records, fn\n";

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

    /* sanity: the copied function works in the other state */
    enc(src, -1, &b);
    const char *p = b.p;
    dec(dst, &p);
    lua_pushinteger(dst, 2);
    lua_call(dst, 1, 2);
    if (lua_tonumber(dst, -1) != 12.0) {
        fprintf(stderr, "function copy is wrong\n");
        return 1;
    }
    lua_pop(dst, 2);

    lua_pushvalue(src, -2); /* records */
    measure(src, dst, &b, 0.1);
    printf("RESULT table_roundtrip %.1f\n", measure(src, dst, &b, 0.8));
    lua_pop(src, 1);
    printf("RESULT function_roundtrip %.1f\n", measure(src, dst, &b, 0.8));
    free(b.p);
    lua_close(src);
    lua_close(dst);
    return 0;
}
