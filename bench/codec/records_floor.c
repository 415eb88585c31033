/* records_roundtrip, raw-C limit: roundtrip.c's minimal Lua C API serializer
 * copying records.lua's 1,000 records between two lua_States, with none of
 * braid's checks (no shared references, no validation). */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* No cycle or shared-reference tracking, no error paths, no validation of the
 * input, no metatables, no modules by name: the floor under any codec that
 * rebuilds these values in another state. */

typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

static void buf_put(buf_t *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        while (b->len + n > b->cap)
            b->cap = b->cap ? b->cap * 2 : 4096;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_u8(buf_t *b, uint8_t v) { buf_put(b, &v, 1); }
static void put_u32(buf_t *b, uint32_t v) { buf_put(b, &v, 4); }

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud)
{
    (void)L;
    buf_put(ud, p, n);
    return 0;
}

enum { T_NIL, T_FALSE, T_TRUE, T_INT, T_FLT, T_STR, T_TAB, T_FN };

static void enc(lua_State *L, int idx, buf_t *b)
{
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        put_u8(b, lua_toboolean(L, idx) ? T_TRUE : T_FALSE);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            lua_Integer i = lua_tointeger(L, idx);
            put_u8(b, T_INT);
            buf_put(b, &i, sizeof i);
        } else {
            lua_Number d = lua_tonumber(L, idx);
            put_u8(b, T_FLT);
            buf_put(b, &d, sizeof d);
        }
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        put_u8(b, T_STR);
        put_u32(b, (uint32_t)n);
        buf_put(b, s, n);
        break;
    }
    case LUA_TTABLE: {
        uint32_t narr = (uint32_t)lua_rawlen(L, idx), total = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            total++;
            lua_pop(L, 1);
        }
        put_u8(b, T_TAB);
        put_u32(b, narr);
        put_u32(b, total - narr);
        put_u32(b, total);
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            enc(L, -2, b);
            enc(L, -1, b);
            lua_pop(L, 1);
        }
        break;
    }
    case LUA_TFUNCTION: {
        put_u8(b, T_FN);
        size_t at = b->len;
        put_u32(b, 0);
        lua_pushvalue(L, idx);
        lua_dump(L, dump_writer, b, 1);
        lua_pop(L, 1);
        uint32_t n = (uint32_t)(b->len - at - 4);
        memcpy(b->p + at, &n, 4);
        int nup = 0;
        while (lua_getupvalue(L, idx, nup + 1)) {
            lua_pop(L, 1);
            nup++;
        }
        put_u8(b, (uint8_t)nup);
        for (int i = 1; i <= nup; i++) {
            lua_getupvalue(L, idx, i);
            enc(L, -1, b);
            lua_pop(L, 1);
        }
        break;
    }
    default:
        put_u8(b, T_NIL);
    }
}

static uint32_t get_u32(const char **p)
{
    uint32_t v;
    memcpy(&v, *p, 4);
    *p += 4;
    return v;
}

/* pushes the value at *p onto L and advances *p */
static void dec(lua_State *L, const char **p)
{
    uint8_t tag = (uint8_t)*(*p)++;
    switch (tag) {
    case T_FALSE:
    case T_TRUE:
        lua_pushboolean(L, tag == T_TRUE);
        break;
    case T_INT: {
        lua_Integer i;
        memcpy(&i, *p, sizeof i);
        *p += sizeof i;
        lua_pushinteger(L, i);
        break;
    }
    case T_FLT: {
        lua_Number d;
        memcpy(&d, *p, sizeof d);
        *p += sizeof d;
        lua_pushnumber(L, d);
        break;
    }
    case T_STR: {
        uint32_t n = get_u32(p);
        lua_pushlstring(L, *p, n);
        *p += n;
        break;
    }
    case T_TAB: {
        uint32_t narr = get_u32(p), nrec = get_u32(p), total = get_u32(p);
        lua_createtable(L, (int)narr, (int)nrec);
        for (uint32_t i = 0; i < total; i++) {
            dec(L, p);
            dec(L, p);
            lua_rawset(L, -3);
        }
        break;
    }
    case T_FN: {
        uint32_t n = get_u32(p);
        luaL_loadbufferx(L, *p, n, "=fn", "b");
        *p += n;
        int nup = (uint8_t)*(*p)++;
        for (int i = 1; i <= nup; i++) {
            dec(L, p);
            lua_setupvalue(L, -2, i);
        }
        break;
    }
    default:
        lua_pushnil(L);
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* round-trips the value on top of src into dst until `seconds` pass; ops/s */
static double measure(lua_State *src, lua_State *dst, buf_t *b, double seconds)
{
    long ops = 0;
    double t0 = now();
    do {
        for (int i = 0; i < 64; i++) {
            b->len = 0;
            enc(src, -1, b);
            const char *p = b->p;
            dec(dst, &p);
            lua_pop(dst, 1);
        }
        ops += 64;
    } while (now() - t0 < seconds);
    return (double)ops / (now() - t0);
}

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
