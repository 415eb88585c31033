/* Lua 5.4's dumped chunks (ldump.c layout, lopcodes.h opcodes), for the
 * codec: which globals a function reads (the encoder sends those along), and
 * the "maker" chunks the decoder splices a verified function into. */
#include <string.h>

#include "lbraid.h"
#include "lcodec.h"

/* Lua 5.4 dump format (ldump.c): header, then functions recursively. */
typedef struct chunk {
    const unsigned char *p, *end;
    int err;
} chunk_t;

static size_t ck_size(chunk_t *c)
{
    size_t x = 0;
    for (int i = 0; i < 10; i++) {
        if (c->p >= c->end) {
            c->err = 1;
            return 0;
        }
        int b = *c->p++;
        x = (x << 7) | (b & 0x7f);
        if (b & 0x80)
            return x;
    }
    c->err = 1;
    return 0;
}

static const unsigned char *ck_skip(chunk_t *c, size_t n)
{
    if (c->err || (size_t)(c->end - c->p) < n) {
        c->err = 1;
        return NULL;
    }
    const unsigned char *q = c->p;
    c->p += n;
    return q;
}

static const char *ck_string(chunk_t *c, size_t *len)
{
    size_t n = ck_size(c);
    *len = n ? n - 1 : 0;
    return n ? (const char *)ck_skip(c, n - 1) : NULL;
}

/* The globals every state has (luaL_openlibs): never copied, and the only
 * fields of _G that cross by name. */
int lbraid_is_standard_global(const char *name)
{
    static const char *const names[] = {
        "_G",       "_VERSION",     "assert",   "collectgarbage", "coroutine",
        "debug",    "dofile",       "error",    "getmetatable",   "io",
        "ipairs",   "load",         "loadfile", "math",           "next",
        "os",       "package",      "pairs",    "pcall",          "print",
        "rawequal", "rawget",       "rawlen",   "rawset",         "require",
        "select",   "setmetatable", "string",   "table",          "tonumber",
        "tostring", "type",         "utf8",     "warn",           "xpcall",
        NULL};
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Reading a dumped chunk: which globals does a function name?        */
/* ------------------------------------------------------------------ */

#define OP_GETTABUP 11 /* lopcodes.h: R[A] := UpValue[B][K[C]:shortstring] */

/* Walks one function; appends to the table at `names` every K[C] string
 * of a GETTABUP whose upvalue B is named _ENV. Uses scratch Lua stack. */
static void ck_function(lua_State *L, chunk_t *c, int names)
{
    size_t n, len;
    ck_string(c, &len); /* source */
    ck_size(c);         /* linedefined */
    ck_size(c);         /* lastlinedefined */
    ck_skip(c, 3);      /* numparams, is_vararg, maxstacksize */
    size_t ncode = ck_size(c);
    const unsigned char *code = ck_skip(c, ncode * 4);
    size_t nk = ck_size(c);
    if (c->err || nk > (size_t)(c->end - c->p))
        return (void)(c->err = 1);
    lua_createtable(L, (int)nk, 0); /* constants: strings or false */
    int ks = lua_gettop(L);
    for (size_t i = 0; i < nk && !c->err; i++) {
        const unsigned char *tt = ck_skip(c, 1);
        if (!tt)
            break;
        switch (*tt) {
        case 0x03: /* LUA_VNUMINT */
        case 0x13: /* LUA_VNUMFLT */
            ck_skip(c, 8);
            lua_pushboolean(L, 0);
            break;
        case 0x04:   /* LUA_VSHRSTR */
        case 0x14: { /* LUA_VLNGSTR */
            const char *s = ck_string(c, &len);
            if (s)
                lua_pushlstring(L, s, len);
            else
                lua_pushboolean(L, 0);
            break;
        }
        default: /* nil, false, true */
            lua_pushboolean(L, 0);
        }
        lua_rawseti(L, ks, (lua_Integer)i);
    }
    n = ck_size(c); /* upvalues: instack, idx, kind */
    ck_skip(c, n * 3);
    size_t nprotos = ck_size(c);
    for (size_t i = 0; i < nprotos && !c->err; i++)
        ck_function(L, c, names);
    n = ck_size(c); /* lineinfo */
    ck_skip(c, n);
    n = ck_size(c); /* abslineinfo */
    for (size_t i = 0; i < n && !c->err; i++) {
        ck_size(c);
        ck_size(c);
    }
    n = ck_size(c); /* locvars */
    for (size_t i = 0; i < n && !c->err; i++) {
        ck_string(c, &len);
        ck_size(c);
        ck_size(c);
    }
    size_t nupnames = ck_size(c);
    int env[256];
    memset(env, 0, sizeof env);
    for (size_t i = 0; i < nupnames && !c->err; i++) {
        const char *s = ck_string(c, &len);
        if (i < 256 && s && len == 4 && memcmp(s, "_ENV", 4) == 0)
            env[i] = 1;
    }
    for (size_t pc = 0; code && !c->err && pc < ncode; pc++) {
        uint32_t ins;
        memcpy(&ins, code + 4 * pc, 4);
        if ((ins & 0x7f) != OP_GETTABUP || !env[(ins >> 16) & 0xff])
            continue;
        if (lua_rawgeti(L, ks, (ins >> 24) & 0xff) == LUA_TSTRING) {
            lua_pushboolean(L, 1);
            lua_rawset(L, names);
        } else {
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* Pushes a sequence of the global names the dumped chunk reads. */
void lbraid_chunk_globals(lua_State *L, const char *data, size_t len)
{
    lua_newtable(L);
    int set = lua_gettop(L);
    chunk_t c = {(const unsigned char *)data, (const unsigned char *)data + len, 0};
    /* header: signature 4, version, format, LUAC_DATA 6, 3 sizes, int 8, num 8 */
    ck_skip(&c, 4 + 1 + 1 + 6 + 3 + 8 + 8);
    ck_skip(&c, 1); /* number of upvalues of the main closure */
    if (!c.err)
        ck_function(L, &c, set);
    lua_newtable(L);
    lua_Integer i = 0;
    lua_pushnil(L);
    while (lua_next(L, set)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, ++i);
    }
    lua_remove(L, set);
}

#define OP_LOADNIL 8   /* R[A], ..., R[A+B] := nil */
#define OP_RETURN 70   /* return R[A], ..., R[A+B-2]; k: close upvalues */
#define OP_CLOSURE 79  /* R[A] := closure(KPROTO[Bx]) */
#define DUMP_HEADER 31 /* signature .. LUAC_NUM, then 1 byte: main's nups */

static void put_dump_size(braid_buf_t *b, size_t x)
{
    uint8_t tmp[10];
    int n = 0;
    do {
        tmp[n++] = (uint8_t)(x & 0x7f);
        x >>= 7;
    } while (x);
    tmp[0] |= 0x80; /* ldump.c: most significant group first, last marked */
    while (n > 0)
        braid_buf_put_u8(b, tmp[--n]);
}

static void put_instruction(braid_buf_t *b, uint32_t ins)
{
    for (int i = 0; i < 4; i++)
        braid_buf_put_u8(b, (uint8_t)(ins >> (8 * i)));
}

/* Writes into b the maker chunk for the dumped function in data (already
 * authenticated). Returns its number of upvalues, or -1 when the chunk is
 * not laid out as expected (then the caller loads it directly). */
int lbraid_chunk_maker(braid_buf_t *b, const uint8_t *data, size_t len)
{
#if LUA_VERSION_NUM != 504
    return -1; /* the opcodes and layout below are Lua 5.4's */
#endif
    if (len < DUMP_HEADER + 1 || data[4] != 0x54 || data[5] != 0 || data[12] != 4 ||
        data[13] != 8 || data[14] != 8)
        return -1;
    chunk_t c = {data + DUMP_HEADER + 1, data + len, 0};
    size_t slen;
    ck_string(&c, &slen); /* source */
    ck_size(&c);          /* linedefined */
    ck_size(&c);          /* lastlinedefined */
    ck_skip(&c, 3);       /* numparams, is_vararg, maxstacksize */
    ck_skip(&c, ck_size(&c) * 4);
    size_t nk = ck_size(&c);
    for (size_t i = 0; i < nk && !c.err; i++) {
        const unsigned char *tt = ck_skip(&c, 1);
        if (!tt)
            break;
        switch (*tt) {
        case 0x00: /* nil */
        case 0x01: /* false */
        case 0x11: /* true */
            break;
        case 0x03: /* LUA_VNUMINT */
        case 0x13: /* LUA_VNUMFLT */
            ck_skip(&c, 8);
            break;
        case 0x04: /* LUA_VSHRSTR */
        case 0x14: /* LUA_VLNGSTR */
            ck_string(&c, &slen);
            break;
        default:
            c.err = 1;
        }
    }
    size_t nups = ck_size(&c);
    const unsigned char *ups = ck_skip(&c, nups * 3);
    if (c.err || nups > 250)
        return -1;
    /* header, main closure with no upvalues */
    braid_buf_put_bytes(b, data, DUMP_HEADER);
    braid_buf_put_u8(b, 0);
    put_dump_size(b, 3); /* source "=?" */
    braid_buf_put_bytes(b, "=?", 2);
    put_dump_size(b, 0);                      /* linedefined */
    put_dump_size(b, 0);                      /* lastlinedefined */
    braid_buf_put_u8(b, 0);                   /* numparams */
    braid_buf_put_u8(b, 0);                   /* is_vararg */
    braid_buf_put_u8(b, (uint8_t)(nups + 2)); /* maxstacksize */
    put_dump_size(b, nups ? 3 : 2);
    if (nups) /* LOADNIL 0 nups-1 */
        put_instruction(b, OP_LOADNIL | (uint32_t)(nups - 1) << 16);
    /* CLOSURE nups 0; RETURN nups 2 0 k */
    put_instruction(b, OP_CLOSURE | (uint32_t)nups << 7);
    put_instruction(b, OP_RETURN | (uint32_t)nups << 7 | 1u << 15 | 2u << 16);
    put_dump_size(b, 0); /* constants */
    put_dump_size(b, 0); /* upvalues */
    put_dump_size(b, 1); /* protos: the chunk's function, upvalue i := local i */
    size_t at = (size_t)(ups - data);
    braid_buf_put_bytes(b, data + DUMP_HEADER + 1, at - DUMP_HEADER - 1);
    for (size_t i = 0; i < nups; i++) {
        braid_buf_put_u8(b, 1); /* instack */
        braid_buf_put_u8(b, (uint8_t)i);
        braid_buf_put_u8(b, 0); /* VDKREG */
    }
    braid_buf_put_bytes(b, data + at + 3 * nups, len - at - 3 * nups);
    for (int i = 0; i < 4; i++) /* lineinfo, abslineinfo, locvars, upvalue names */
        put_dump_size(b, 0);
    return (int)nups;
}
