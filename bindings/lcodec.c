/* The Lua half of the codec (API.md §1): walks Lua values into the byte
 * format of core/codec.h and rebuilds them in another state. */
#include <stdlib.h>
#include <string.h>

#include "lbraid.h"

/* ------------------------------------------------------------------ */
/* Module map: value -> how the receiver finds it by name              */
/* ------------------------------------------------------------------ */

static const char FCACHE_KEY = 'f'; /* registry: weak func -> fninfo box */

/* The globals every state has (luaL_openlibs): never copied, and the only
 * fields of _G that cross by name. */
static int is_standard_global(const char *name)
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

/* map[value] = value if absent; leaves the stack as it was. */
static void map_add(lua_State *L, int map, int key, int value)
{
    lua_pushvalue(L, key);
    if (lua_rawget(L, map) == LUA_TNIL) {
        lua_pushvalue(L, key);
        lua_pushvalue(L, value);
        lua_rawset(L, map);
    }
    lua_pop(L, 1);
}

/* Maps the module at `mod` named `name`: the module itself -> "name", and
 * each function/userdata field f -> {"name", "key"}. */
static void map_module(lua_State *L, int map, int name, int mod)
{
    int is_g = strcmp(lua_tostring(L, name), "_G") == 0;
    int t = lua_type(L, mod);
    if (t == LUA_TFUNCTION || t == LUA_TUSERDATA || t == LUA_TTABLE)
        map_add(L, map, mod, name);
    if (t != LUA_TTABLE)
        return;
    lua_pushnil(L);
    while (lua_next(L, mod)) {
        int k = lua_gettop(L) - 1, vt = lua_type(L, -1);
        /* user globals live in _G too: only the standard ones are the same
         * in every state */
        int wanted = is_g ? lua_iscfunction(L, -1) && lua_type(L, k) == LUA_TSTRING &&
                                is_standard_global(lua_tostring(L, k))
                          : (vt == LUA_TFUNCTION || vt == LUA_TUSERDATA || vt == LUA_TTABLE);
        if (wanted && lua_type(L, k) == LUA_TSTRING) {
            lua_createtable(L, 2, 0);
            lua_pushvalue(L, name);
            lua_rawseti(L, -2, 1);
            lua_pushvalue(L, k);
            lua_rawseti(L, -2, 2);
            map_add(L, map, k + 1, k + 2);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
}

/* The encoder's state kept per Lua state between encodes, so a small
 * encode allocates nothing: the map of tables, functions and strings
 * already written, by address -> REF index (short strings are interned, so
 * equal ones share an address), which also maps each upvalue id written
 * -> -(function ref * 256 + upvalue number) - 1; and the module map with the
 * signature of package.loaded it was built from. Every object in the map
 * is anchored (pushed on a Lua thread) for the whole encode, so an address
 * cannot be reused by a new object while the map holds it. A nested encode
 * (a __gc or an __index running during one) gets a context of its own. */
typedef struct encctx {
    const void **keys;
    lua_Integer *refs;
    size_t *used; /* slots in use, in insertion order, to clear them */
    size_t cap, count;
    int busy;
    int modvalid;
    lua_Integer modsig;
    /* addresses of the module map's keys (open addressing, NULL = empty),
     * so most tables and functions are ruled out without a map lookup */
    const void **modkeys;
    size_t modcap;
} encctx_t;

static size_t seen_slot(const void *p, size_t cap);

/* Rebuilds ctx->modkeys from the map at `map`; on allocation failure the
 * set is left empty, which only turns every probe into a map lookup. */
static void modkeys_build(lua_State *L, encctx_t *ctx, int map)
{
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, map)) {
        n++;
        lua_pop(L, 1);
    }
    size_t cap = 16;
    while (cap < 2 * n + 2)
        cap *= 2;
    free(ctx->modkeys);
    ctx->modkeys = calloc(cap, sizeof *ctx->modkeys);
    ctx->modcap = ctx->modkeys ? cap : 0;
    if (!ctx->modkeys)
        return;
    lua_pushnil(L);
    while (lua_next(L, map)) {
        const void *p = lua_topointer(L, -2);
        size_t j = seen_slot(p, cap);
        while (ctx->modkeys[j] && ctx->modkeys[j] != p)
            j = (j + 1) & (cap - 1);
        ctx->modkeys[j] = p;
        lua_pop(L, 1);
    }
}

/* False when p is surely not a key of the module map. */
static inline int modkeys_may_have(const encctx_t *ctx, const void *p)
{
    if (!ctx->modkeys)
        return 1;
    for (size_t j = seen_slot(p, ctx->modcap); ctx->modkeys[j]; j = (j + 1) & (ctx->modcap - 1))
        if (ctx->modkeys[j] == p)
            return 1;
    return 0;
}

/* Pushes the module map for this state (kept in the encoder context at
 * box), rebuilt when package.loaded changed size or any module's identity
 * (modules are not expected to change their fields after loading).
 * Stack: +1. */
static void push_modmap(lua_State *L, encctx_t *ctx, int box)
{
    lua_Unsigned sig = 0;
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    int loaded = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, loaded)) {
        /* count and identities: a module replaced by another (busted's
         * insulation re-requires them) must rebuild the map too */
        sig = sig * 31u + 1u + (lua_Unsigned)(uintptr_t)lua_topointer(L, -1);
        lua_pop(L, 1);
    }
    if (ctx->modvalid && ctx->modsig == (lua_Integer)sig &&
        lua_getiuservalue(L, box, 2) == LUA_TTABLE) {
        lua_replace(L, loaded);
        return;
    }
    lua_settop(L, loaded);
    lua_newtable(L);
    int map = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, loaded)) {
        if (lua_type(L, -2) == LUA_TSTRING)
            map_module(L, map, lua_gettop(L) - 1, lua_gettop(L));
        lua_pop(L, 1);
    }
    lua_pushvalue(L, map);
    lua_setiuservalue(L, box, 2);
    modkeys_build(L, ctx, map);
    ctx->modvalid = 1;
    ctx->modsig = (lua_Integer)sig;
    lua_replace(L, loaded);
}

/* ------------------------------------------------------------------ */
/* Reading a dumped chunk: which globals does a function name?        */
/* ------------------------------------------------------------------ */

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
static void chunk_globals(lua_State *L, const char *data, size_t len)
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

/* ------------------------------------------------------------------ */
/* Encoder                                                             */
/* ------------------------------------------------------------------ */

typedef struct seg {
    int kind; /* 0 string key, 1 integer key, 2 other key, 3 upvalue, 4 global, 5 metatable,
               * 6 none (the root), 7 the key at stack index i (resolved on error) */
    const char *s;
    size_t len;
    lua_Integer i;
} seg_t;

typedef struct enc {
    lua_State *L;
    braid_buf_t *buf;
    encctx_t *ctx;
    int box;           /* abs index of ctx's userdata */
    lua_State *anchor; /* every value in ctx's seen map, pushed here */
    int nanchored;
    int overflow;        /* whether the box's uservalue 3 anchors the rest */
    int modmap;          /* abs index */
    const void *errmeta; /* braid.Error's metatable, once looked up */
    int errmeta_known;
    lua_Integer nrefs;
    int depth;
    const char *root;
    seg_t path[BRAID_CODEC_MAX_DEPTH + 2];
} enc_t;

/* The encoder's hot writes, inline when the buffer has room (after a write
 * error the bytes no longer matter: the encode raises at the end). */
static inline void put_tag_varint(braid_buf_t *b, uint8_t tag, uint64_t v)
{
    if (b->cap - b->len < 11) {
        braid_buf_put_u8(b, tag);
        braid_buf_put_varint(b, v);
        return;
    }
    uint8_t *p = b->data + b->len;
    *p++ = tag;
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    b->len = (size_t)(p - b->data);
}

static inline void put_tag(braid_buf_t *b, uint8_t tag)
{
    if (b->len < b->cap)
        b->data[b->len++] = tag;
    else
        braid_buf_put_u8(b, tag);
}

static inline void put_tag_str(braid_buf_t *b, uint8_t tag, const char *s, size_t n)
{
    if (b->cap - b->len < 11 || b->cap - b->len - 11 < n) {
        braid_buf_put_u8(b, tag);
        braid_buf_put_str(b, s, n);
        return;
    }
    put_tag_varint(b, tag, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static int writer(lua_State *L, const void *p, size_t sz, void *ud)
{
    (void)L;
    braid_buf_put_bytes(ud, p, sz);
    return 0;
}

/* Turns a kind-7 segment (stack index of a key) into a printable one. */
static void enc_key_segment(lua_State *L, seg_t *s)
{
    int keyidx = (int)s->i;
    switch (lua_type(L, keyidx)) {
    case LUA_TSTRING:
        s->kind = 0;
        s->s = lua_tolstring(L, keyidx, &s->len);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, keyidx)) {
            s->kind = 1;
            s->i = lua_tointeger(L, keyidx);
            break;
        }
        /* fall through */
    default:
        s->kind = 2;
    }
}

/* Raises TypeError "cannot transfer <what> at <path>". */
static int enc_fail(enc_t *e, const char *what)
{
    lua_State *L = e->L;
    e->ctx->busy = 0;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, e->root);
    for (int d = 0; d < e->depth; d++) {
        seg_t *s = &e->path[d];
        if (s->kind == 7) /* a table key, still on the stack: resolve it now */
            enc_key_segment(L, s);
        switch (s->kind) {
        case 0: {
            int ident = s->len > 0 && !(s->s[0] >= '0' && s->s[0] <= '9');
            for (size_t k = 0; k < s->len && ident; k++) {
                char ch = s->s[k];
                ident = ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                        (ch >= '0' && ch <= '9');
            }
            if (ident) {
                luaL_addchar(&b, '.');
                luaL_addlstring(&b, s->s, s->len);
            } else {
                luaL_addstring(&b, "[\"");
                luaL_addlstring(&b, s->s, s->len);
                luaL_addstring(&b, "\"]");
            }
            break;
        }
        case 1:
            lua_pushfstring(L, "[%I]", (LUAI_UACINT)s->i);
            luaL_addvalue(&b);
            break;
        case 2:
            luaL_addstring(&b, "[?]");
            break;
        case 3:
            luaL_addstring(&b, ".<upvalue ");
            luaL_addlstring(&b, s->s, s->len);
            luaL_addchar(&b, '>');
            break;
        case 4:
            luaL_addstring(&b, ".<global ");
            luaL_addlstring(&b, s->s, s->len);
            luaL_addchar(&b, '>');
            break;
        case 5:
            luaL_addstring(&b, ".<metatable>");
            break;
        default:
            break;
        }
    }
    luaL_pushresult(&b);
    return lbraid_error(L, "TypeError", "cannot transfer %s at %s", what, lua_tostring(L, -1));
}

static void enc_value(enc_t *e, int idx);

static const char ECTX_KEY = 'e'; /* registry: the state's encctx_t box */
#define ENC_KEEP_SLOTS 65536      /* larger maps are freed after the encode */

static void encctx_free(encctx_t *c)
{
    free(c->keys);
    free(c->refs);
    free(c->used);
    c->keys = NULL;
    c->refs = NULL;
    c->used = NULL;
    c->cap = c->count = 0;
}

static int encctx_gc(lua_State *L)
{
    encctx_t *c = lua_touserdata(L, 1);
    encctx_free(c);
    free(c->modkeys);
    c->modkeys = NULL;
    return 0;
}

/* Empties the map, keeping its memory unless it grew large. */
static void encctx_clear(encctx_t *c)
{
    for (size_t i = 0; i < c->count; i++)
        c->keys[c->used[i]] = NULL;
    c->count = 0;
    if (c->cap > ENC_KEEP_SLOTS)
        encctx_free(c);
}

/* Pushes a new context box (uservalue 1: anchor thread, 2: module map,
 * 3: overflow anchors). */
static encctx_t *encctx_new(lua_State *L)
{
    encctx_t *c = lua_newuserdatauv(L, sizeof *c, 3);
    memset(c, 0, sizeof *c);
    if (luaL_newmetatable(L, "braid.encoder")) {
        lua_pushcfunction(L, encctx_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_newthread(L);
    lua_setiuservalue(L, -2, 1);
    return c;
}

static size_t seen_slot(const void *p, size_t cap)
{
    uintptr_t h = (uintptr_t)p;
    h ^= h >> 17;
    h *= (uintptr_t)0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 7) & (cap - 1);
}

static void seen_grow(enc_t *e)
{
    encctx_t *m = e->ctx;
    size_t ncap = m->cap ? m->cap * 2 : 64;
    const void **keys = calloc(ncap, sizeof *keys);
    lua_Integer *refs = malloc(ncap * sizeof *refs);
    size_t *used = malloc(ncap / 2 * sizeof *used);
    if (!keys || !refs || !used) {
        free(keys);
        free(refs);
        free(used);
        m->busy = 0;
        lbraid_core_error(e->L, BRAID_ENOMEM, "encode");
    }
    for (size_t i = 0; i < m->count; i++) {
        size_t old = m->used[i];
        size_t j = seen_slot(m->keys[old], ncap);
        while (keys[j])
            j = (j + 1) & (ncap - 1);
        keys[j] = m->keys[old];
        refs[j] = m->refs[old];
        used[i] = j;
    }
    free(m->keys);
    free(m->refs);
    free(m->used);
    m->keys = keys;
    m->refs = refs;
    m->used = used;
    m->cap = ncap;
}

/* The ref recorded for p, or found = 0. */
static lua_Integer seen_find(encctx_t *m, const void *p, int *found)
{
    if (m->count) {
        for (size_t j = seen_slot(p, m->cap); m->keys[j]; j = (j + 1) & (m->cap - 1)) {
            if (m->keys[j] == p) {
                *found = 1;
                return m->refs[j];
            }
        }
    }
    *found = 0;
    return 0;
}

/* Records p -> ref (p not yet in the map). */
static void seen_add(enc_t *e, const void *p, lua_Integer ref)
{
    encctx_t *m = e->ctx;
    if ((m->count + 1) * 2 > m->cap)
        seen_grow(e);
    size_t j = seen_slot(p, m->cap);
    while (m->keys[j])
        j = (j + 1) & (m->cap - 1);
    m->keys[j] = p;
    m->refs[j] = ref;
    m->used[m->count++] = j;
}

/* Keeps the value at idx alive until the encode ends. */
static void enc_anchor(enc_t *e, int idx)
{
    lua_State *L = e->L;
    if (!e->overflow && e->nanchored % 64 == 0 && !lua_checkstack(e->anchor, 64)) {
        lua_newtable(L); /* the thread's stack is full: a table takes the rest */
        lua_setiuservalue(L, e->box, 3);
        e->overflow = 1;
    }
    if (e->overflow) {
        lua_getiuservalue(L, e->box, 3);
        lua_pushvalue(L, idx);
        lua_rawseti(L, -2, (lua_Integer)e->nanchored + 1);
        lua_pop(L, 1);
    } else {
        lua_pushvalue(L, idx);
        lua_xmove(L, e->anchor, 1);
    }
    e->nanchored++;
}

/* If the value at idx was seen, writes a REF and returns 1; else records it. */
static int enc_seen(enc_t *e, int idx)
{
    const void *p = lua_topointer(e->L, idx);
    int found;
    lua_Integer ref = seen_find(e->ctx, p, &found);
    if (found) {
        put_tag_varint(e->buf, BRAID_T_REF, (uint64_t)ref);
        return 1;
    }
    seen_add(e, p, e->nrefs++);
    enc_anchor(e, idx);
    return 0;
}

/* Writes MODULE/MODFIELD if the value is reachable by module name. */
static int enc_by_name(enc_t *e, int idx)
{
    lua_State *L = e->L;
    if (!e->modmap) {
        push_modmap(L, e->ctx, e->box);
        e->modmap = lua_gettop(L);
    }
    int t = LUA_TNIL;
    if (modkeys_may_have(e->ctx, lua_topointer(L, idx))) {
        lua_pushvalue(L, idx);
        t = lua_rawget(L, e->modmap);
    } else {
        lua_pushnil(L);
    }
    size_t n;
    const char *s;
    if (t == LUA_TSTRING) {
        s = lua_tolstring(L, -1, &n);
        braid_buf_put_u8(e->buf, BRAID_T_MODULE);
        braid_buf_put_str(e->buf, s, n);
    } else if (t == LUA_TTABLE) {
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        braid_buf_put_u8(e->buf, BRAID_T_MODFIELD);
        s = lua_tolstring(L, -2, &n);
        braid_buf_put_str(e->buf, s, n);
        s = lua_tolstring(L, -1, &n);
        braid_buf_put_str(e->buf, s, n);
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    if (t == LUA_TSTRING || t == LUA_TTABLE)
        return 1;
    /* braid.Error is every state's, loaded or not: errors must always cross */
    if (!lua_istable(L, idx))
        return 0;
    if (!e->errmeta_known) {
        luaL_getmetatable(L, "braid.Error");
        e->errmeta = lua_topointer(L, -1); /* anchored by the registry */
        e->errmeta_known = 1;
        lua_pop(L, 1);
    }
    int is_error_meta = e->errmeta && lua_topointer(L, idx) == e->errmeta;
    if (is_error_meta) {
        braid_buf_put_u8(e->buf, BRAID_T_MODFIELD);
        braid_buf_put_str(e->buf, "braid", 5);
        braid_buf_put_str(e->buf, "Error", 5);
    }
    return is_error_meta;
}

static void enc_table(enc_t *e, int idx)
{
    lua_State *L = e->L;
    if (enc_by_name(e, idx) || enc_seen(e, idx))
        return;
    if (!lua_checkstack(L, 12))
        enc_fail(e, "a value nested too deeply");
    lua_Integer narr = (lua_Integer)lua_rawlen(L, idx);
    uint64_t nhash = 0;
    int hasmeta = lua_getmetatable(L, idx);
    if (hasmeta)
        lua_pop(L, 1);
    put_tag_varint(e->buf, BRAID_T_TABLE, (uint64_t)narr);
    /* the hash count is patched in once known: a varint padded to 5 bytes */
    size_t nhash_at = e->buf->len;
    braid_buf_put_bytes(e->buf, "\x80\x80\x80\x80\x00", 5);
    braid_buf_put_u8(e->buf, (uint8_t)hasmeta);
    for (lua_Integer i = 1; i <= narr; i++) {
        lua_rawgeti(L, idx, i);
        e->path[e->depth].kind = 1;
        e->path[e->depth].i = i;
        enc_value(e, lua_gettop(L));
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int k = lua_gettop(L) - 1;
        lua_Integer ik;
        if (narr == 0 || !lua_isinteger(L, k) || (ik = lua_tointeger(L, k)) < 1 || ik > narr) {
            e->path[e->depth].kind = 7;
            e->path[e->depth].i = k;
            enc_value(e, k);
            enc_value(e, k + 1);
            nhash++;
        }
        lua_pop(L, 1);
    }
    if (nhash >> 35)
        enc_fail(e, "a table with too many keys");
    if (!e->buf->err)
        for (int i = 0; i < 5; i++)
            e->buf->data[nhash_at + i] =
                (uint8_t)(((nhash >> (7 * i)) & 0x7f) | (i < 4 ? 0x80 : 0));
    if (hasmeta) {
        lua_getmetatable(L, idx);
        e->path[e->depth].kind = 5;
        enc_value(e, lua_gettop(L));
        lua_pop(L, 1);
    }
}

/* What encoding a Lua function needs, cached per function (the box's
 * uservalue 1 anchors the chunk string, 2 the names in globals). */
typedef struct fninfo {
    const char *chunk;
    size_t len;
    uint64_t mac;
    int nups;
    int env;      /* number of the upvalue named _ENV, or 0 */
    int nglobals; /* globals it reads that are not the standard ones */
} fninfo_t;

/* Pushes the fninfo box of the Lua function at idx. */
static fninfo_t *push_fninfo(enc_t *e, int idx)
{
    lua_State *L = e->L;
    lbraid_push_weak_table(L, &FCACHE_KEY, "k");
    lua_pushvalue(L, idx);
    if (lua_rawget(L, -2) == LUA_TUSERDATA) {
        lua_remove(L, -2);
        return lua_touserdata(L, -1);
    }
    lua_pop(L, 1);
    fninfo_t *fi = lua_newuserdatauv(L, sizeof *fi, 2);
    memset(fi, 0, sizeof *fi);
    braid_buf_t *dump = lbraid_push_buf(L);
    lua_pushvalue(L, idx);
    lua_dump(L, writer, dump, 0);
    lua_pop(L, 1);
    if (dump->err) {
        e->ctx->busy = 0;
        lbraid_core_error(L, dump->err, "encode");
    }
    lua_pushlstring(L, (const char *)dump->data, dump->len);
    lua_remove(L, -2);
    fi->chunk = lua_tolstring(L, -1, &fi->len);
    fi->mac = braid_codec_mac(fi->chunk, fi->len);
    chunk_globals(L, fi->chunk, fi->len);
    lua_Integer nnames = (lua_Integer)lua_rawlen(L, -1), kept = 0;
    for (lua_Integer i = 1; i <= nnames; i++) {
        lua_rawgeti(L, -1, i);
        if (is_standard_global(lua_tostring(L, -1)))
            lua_pop(L, 1);
        else
            lua_rawseti(L, -2, ++kept);
    }
    for (lua_Integer i = kept + 1; i <= nnames; i++) {
        lua_pushnil(L);
        lua_rawseti(L, -2, i);
    }
    fi->nglobals = (int)kept;
    lua_setiuservalue(L, -3, 2);
    lua_setiuservalue(L, -2, 1);
    lua_Debug ar;
    lua_pushvalue(L, idx);
    lua_getinfo(L, ">u", &ar);
    fi->nups = ar.nups;
    for (int i = 1; i <= fi->nups && !fi->env; i++) {
        const char *name = lua_getupvalue(L, idx, i);
        if (name && strcmp(name, "_ENV") == 0)
            fi->env = i;
        lua_pop(L, 1);
    }
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
    lua_remove(L, -2);
    return fi;
}

static void enc_function(enc_t *e, int idx)
{
    lua_State *L = e->L;
    if (!lua_checkstack(L, 12))
        enc_fail(e, "a value nested too deeply");
    if (enc_by_name(e, idx) || enc_seen(e, idx))
        return;
    if (lua_iscfunction(L, idx))
        enc_fail(e, "a C function not reachable by module name");
    lua_Integer myref = e->nrefs - 1; /* enc_seen just numbered it */
    fninfo_t *fi = push_fninfo(e, idx);
    int info = lua_gettop(L);
    braid_buf_put_u8(e->buf, BRAID_T_FUNC);
    braid_buf_put_str(e->buf, fi->chunk, fi->len);
    braid_buf_put_u64(e->buf, fi->mac);
    braid_buf_put_varint(e->buf, (uint64_t)fi->nups);
    int env = 0; /* stack index of _ENV's value, which becomes the receiver's globals */
    for (int i = 1; i <= fi->nups; i++) {
        const char *name = lua_getupvalue(L, idx, i);
        if (i == fi->env && lua_istable(L, -1)) {
            env = lua_gettop(L);
            braid_buf_put_u8(e->buf, BRAID_T_MODULE);
            braid_buf_put_str(e->buf, "_G", 2);
            continue; /* keep the env on the stack for the globals below */
        }
        /* an upvalue shared with a function written earlier stays shared */
        const void *id = lua_upvalueid(L, idx, i);
        int found;
        lua_Integer at = seen_find(e->ctx, id, &found);
        if (found) {
            at = -at - 1;
            braid_buf_put_u8(e->buf, BRAID_T_UPREF);
            braid_buf_put_varint(e->buf, (uint64_t)(at >> 8));
            braid_buf_put_varint(e->buf, (uint64_t)(at & 0xff));
            lua_pop(L, 1);
            continue;
        }
        seen_add(e, id, -(myref * 256 + i) - 1);
        seg_t *s = &e->path[e->depth];
        s->kind = 3;
        s->s = name && *name ? name : "?";
        s->len = strlen(s->s);
        enc_value(e, lua_gettop(L));
        lua_pop(L, 1);
    }
    /* globals it reads that are not the standard ones every state has */
    if (!fi->nglobals) {
        braid_buf_put_u8(e->buf, 0);
        lua_settop(L, info - 1);
        return;
    }
    lua_getiuservalue(L, info, 2);
    int names = lua_gettop(L);
    lua_Integer nnames = fi->nglobals, count = 0;
    if (!env)
        lua_pushglobaltable(L), env = lua_gettop(L);
    lua_newtable(L);
    int keep = lua_gettop(L);
    for (lua_Integer i = 1; i <= nnames; i++) {
        lua_rawgeti(L, names, i);
        lua_pushvalue(L, -1);
        if (lua_gettable(L, env) == LUA_TNIL) {
            lua_pop(L, 2);
            continue;
        }
        lua_rawseti(L, keep, ++count * 2);
        lua_rawseti(L, keep, count * 2 - 1);
    }
    braid_buf_put_varint(e->buf, (uint64_t)count);
    for (lua_Integer i = 1; i <= count; i++) {
        lua_rawgeti(L, keep, 2 * i - 1);
        lua_rawgeti(L, keep, 2 * i);
        seg_t *s = &e->path[e->depth];
        s->kind = 4;
        s->s = lua_tolstring(L, -2, &s->len);
        enc_value(e, lua_gettop(L) - 1);
        enc_value(e, lua_gettop(L));
        lua_pop(L, 2);
    }
    lua_settop(L, info - 1);
}

/* Writes a nil, boolean, number or string (of Lua type `type`) at idx as
 * itself; returns 0, writing nothing, for other types. */
static inline int put_scalar(lua_State *L, int idx, int type, braid_buf_t *buf)
{
    switch (type) {
    case LUA_TNIL:
        put_tag(buf, BRAID_T_NIL);
        return 1;
    case LUA_TBOOLEAN:
        put_tag(buf, lua_toboolean(L, idx) ? BRAID_T_TRUE : BRAID_T_FALSE);
        return 1;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) { /* (tointegerx would take 3.0 too) */
            int64_t v = (int64_t)lua_tointeger(L, idx);
            put_tag_varint(buf, BRAID_T_INT, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
        } else {
            braid_buf_put_u8(buf, BRAID_T_FLOAT);
            braid_buf_put_f64(buf, (double)lua_tonumber(L, idx));
        }
        return 1;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        put_tag_str(buf, BRAID_T_STR, s, n);
        return 1;
    }
    default:
        return 0;
    }
}

static void enc_value(enc_t *e, int idx)
{
    lua_State *L = e->L;
    if (e->depth >= BRAID_CODEC_MAX_DEPTH)
        enc_fail(e, "a value nested too deeply");
    e->depth++;
    int type = lua_type(L, idx);
    if (type == LUA_TSTRING && lua_rawlen(L, idx) >= BRAID_CODEC_MEMO_MIN && enc_seen(e, idx)) {
        e->depth--; /* a repeated string: written as a back-reference */
        return;
    }
    if (put_scalar(L, idx, type, e->buf)) {
        e->depth--;
        return;
    }
    switch (type) {
    case LUA_TTABLE:
        enc_table(e, idx);
        break;
    case LUA_TFUNCTION:
        enc_function(e, idx);
        break;
    case LUA_TUSERDATA: {
        braid_object_t *obj = lbraid_to_object(L, idx);
        if (obj)
            braid_buf_put_object(e->buf, obj);
        else if (!enc_by_name(e, idx))
            enc_fail(e, lua_pushfstring(L, "a %s", luaL_typename(L, idx)));
        break;
    }
    case LUA_TTHREAD:
        enc_fail(e, "a coroutine");
        break;
    default:
        enc_fail(e, lua_pushfstring(L, "a %s", luaL_typename(L, idx)));
    }
    e->depth--;
}

static void enc_run(lua_State *L, int idx, int n, braid_buf_t *buf, const char *root, int seq)
{
    enc_t e;
    int top = lua_gettop(L);
    idx = lua_absindex(L, idx);
    e.L = L;
    e.buf = buf;
    e.modmap = 0;
    e.errmeta = NULL;
    e.errmeta_known = 0;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &ECTX_KEY) != LUA_TUSERDATA) {
        lua_pop(L, 1);
        encctx_new(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &ECTX_KEY);
    }
    e.ctx = lua_touserdata(L, -1);
    if (e.ctx->busy) { /* an encode running inside another one */
        lua_pop(L, 1);
        e.ctx = encctx_new(L);
    }
    e.box = lua_gettop(L);
    e.ctx->busy = 1;
    encctx_clear(e.ctx); /* after an error, the last encode could not */
    lua_getiuservalue(L, e.box, 1);
    e.anchor = lua_tothread(L, -1);
    lua_pop(L, 1);
    lua_settop(e.anchor, 0);
    e.nanchored = 0;
    e.overflow = 0;
    e.nrefs = 0;
    e.depth = 0;
    e.root = root;
    /* path[d] names the value encoded at depth d + 1 */
    if (seq) {
        braid_buf_put_varint(buf, (uint64_t)n);
        for (int i = 0; i < n; i++) {
            e.path[0].kind = 1;
            e.path[0].i = i + 1;
            enc_value(&e, idx + i);
        }
    } else {
        e.path[0].kind = 6;
        enc_value(&e, idx);
    }
    encctx_clear(e.ctx);
    lua_settop(e.anchor, 0);
    if (e.overflow) {
        lua_pushnil(L);
        lua_setiuservalue(L, e.box, 3);
    }
    e.ctx->busy = 0;
    lua_settop(L, top);
    if (buf->err)
        lbraid_core_error(L, buf->err, "encode");
}

/* Scalars are the most common items of queues and results: write them
 * without setting up an encoder. Returns 0 for other types. */
static int enc_scalar(lua_State *L, int idx, braid_buf_t *buf)
{
    if (!put_scalar(L, idx, lua_type(L, idx), buf))
        return 0;
    if (buf->err)
        lbraid_core_error(L, buf->err, "encode");
    return 1;
}

void lbraid_encode(lua_State *L, int idx, braid_buf_t *buf, const char *root)
{
    if (!enc_scalar(L, idx, buf))
        enc_run(L, idx, 1, buf, root, 0);
}

void lbraid_encode_seq(lua_State *L, int idx, int n, braid_buf_t *buf, const char *root)
{
    enc_run(L, idx, n, buf, root, 1);
}

/* ------------------------------------------------------------------ */
/* Decoder                                                             */
/* ------------------------------------------------------------------ */

typedef struct dec {
    lua_State *L;
    braid_reader_t r;
    int refs;        /* abs index: the first DEC_STACK_REFS targets, one slot each;
                      * then a Lua thread whose stack holds the next DEC_THREAD_REFS
                      * (ref i at stack index i - DEC_STACK_REFS + 1); then the table
                      * holding the rest (ref i at i - DEC_STACK_REFS - DEC_THREAD_REFS + 1) */
    lua_State *more; /* that thread, once there are more than DEC_STACK_REFS */
    lua_Integer nrefs;
    int depth;
} dec_t;

static int dec_fail(dec_t *d, int code)
{
    return lbraid_core_error(d->L, code ? code : BRAID_ECORRUPT, "decode");
}

static void dec_value(dec_t *d);

#define DEC_STACK_REFS 8       /* back-reference targets kept in stack slots */
#define DEC_THREAD_REFS 500000 /* then on a thread's stack (< LUAI_MAXSTACK) */
#define DEC_REF_SLOTS (DEC_STACK_REFS + 2)

/* Each state keeps one thread for the refs of large decodes, so a decode
 * allocates no table of refs (the thread's stack keeps its size). A decode
 * takes it out of the registry and puts it back emptied when it ends: a
 * nested decode, or one after an error, gets a new one. */
static const char DREFS_KEY = 'r';

/* Takes the state's refs thread (or makes one) into slot d->refs + DEC_STACK_REFS. */
static void dec_take_more(dec_t *d)
{
    lua_State *L = d->L;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &DREFS_KEY) == LUA_TTHREAD) {
        lua_pushnil(L);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &DREFS_KEY);
    } else {
        lua_pop(L, 1);
        lua_newthread(L);
    }
    d->more = lua_tothread(L, -1);
    lua_replace(L, d->refs + DEC_STACK_REFS);
}

/* Empties the refs thread and gives it back to the state. */
static void dec_give_more(dec_t *d)
{
    if (!d->more)
        return;
    lua_settop(d->more, 0);
    lua_pushvalue(d->L, d->refs + DEC_STACK_REFS);
    lua_rawsetp(d->L, LUA_REGISTRYINDEX, &DREFS_KEY);
}

/* Records the value on top as the next back-reference target. */
static void dec_ref(dec_t *d)
{
    lua_State *L = d->L;
    lua_Integer i = d->nrefs++;
    if (i < DEC_STACK_REFS) {
        lua_copy(L, -1, d->refs + (int)i);
        return;
    }
    i -= DEC_STACK_REFS;
    if (i < DEC_THREAD_REFS) {
        if (i % 256 == 0) {
            if (i == 0)
                dec_take_more(d);
            if (!lua_checkstack(d->more, 256))
                dec_fail(d, BRAID_ENOMEM);
        }
        lua_pushvalue(L, -1);
        lua_xmove(L, d->more, 1);
        return;
    }
    int t = d->refs + DEC_STACK_REFS + 1;
    i -= DEC_THREAD_REFS;
    if (i == 0) {
        lua_newtable(L);
        lua_replace(L, t);
    }
    lua_pushvalue(L, -1);
    lua_rawseti(L, t, i + 1);
}

/* Pushes back-reference target i (< d->nrefs). */
static void dec_push_ref(dec_t *d, lua_Integer i)
{
    if (i < DEC_STACK_REFS) {
        lua_pushvalue(d->L, d->refs + (int)i);
        return;
    }
    i -= DEC_STACK_REFS;
    if (i < DEC_THREAD_REFS) {
        lua_pushvalue(d->more, (int)i + 1);
        lua_xmove(d->more, d->L, 1);
    } else {
        lua_rawgeti(d->L, d->refs + DEC_STACK_REFS + 1, i - DEC_THREAD_REFS + 1);
    }
}

/* Pushes package.loaded[name], requiring it when absent. */
static void dec_module(dec_t *d, const uint8_t *s, size_t n)
{
    lua_State *L = d->L;
    if (n == 2 && memcmp(s, "_G", 2) == 0) {
        lua_pushglobaltable(L);
        return;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushlstring(L, (const char *)s, n);
    if (lua_rawget(L, -2) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_getglobal(L, "require");
        lua_pushlstring(L, (const char *)s, n);
        lua_call(L, 1, 1);
    }
    lua_remove(L, -2);
}

/* Makes upvalue n of the function at f share an upvalue of a function
 * decoded earlier (UPREF ref upvalue). */
static void dec_upref(dec_t *d, int f, int n)
{
    lua_State *L = d->L;
    braid_reader_u8(&d->r);
    uint64_t ref = braid_reader_varint(&d->r), m = braid_reader_varint(&d->r);
    if (d->r.err || ref >= (uint64_t)d->nrefs || m < 1 || m > 255)
        dec_fail(d, BRAID_ECORRUPT);
    dec_push_ref(d, (lua_Integer)ref);
    if (lua_type(L, -1) != LUA_TFUNCTION || lua_iscfunction(L, -1) ||
        !lua_getupvalue(L, -1, (int)m))
        dec_fail(d, BRAID_ECORRUPT);
    lua_pop(L, 1);
    lua_upvaluejoin(L, f, n, -1, (int)m);
    lua_pop(L, 1);
}

/* ---- loading function chunks ----
 *
 * lua_load parses a chunk and allocates its prototypes on every call, and
 * the chunk's MAC must be checked before it: together most of a function's
 * decode. So each state keeps the chunks it verified recently, each with a
 * "maker": a loaded function whose only job is to return a new closure of
 * the chunk's function with fresh upvalues:
 *
 *     local u1, ..., un; return function(...) <the chunk's code> end
 *
 * built by splicing the chunk's function, as it stands in the dump, into a
 * tiny dumped main function (Lua 5.4 dump format, as the globals scan above
 * reads it; opcodes from lopcodes.h). A chunk byte-identical to one seen
 * before is then one memcmp and one call. Bytes whose MAC was not verified
 * are never loaded: only verified chunks enter the cache. */

#define FN_CACHE_SLOTS 64  /* direct-mapped by MAC */
#define FN_CACHE_MAX 32768 /* larger chunks are loaded every time */
#define OP_LOADNIL 8       /* R[A], ..., R[A+B] := nil */
#define OP_RETURN 70       /* return R[A], ..., R[A+B-2]; k: close upvalues */
#define OP_CLOSURE 79      /* R[A] := closure(KPROTO[Bx]) */
#define DUMP_HEADER 31     /* signature .. LUAC_NUM, then 1 byte: main's nups */

static const char DCACHE_KEY = 'd'; /* registry: the state's fncache_t box */

typedef struct fncache {
    struct {
        uint64_t mac;
        const char *chunk; /* bytes of the string anchored in the uservalue */
        size_t len;
        int nups;
    } slot[FN_CACHE_SLOTS];
} fncache_t;

/* Pushes the state's cache box (uservalue 1: {[2i+1]=chunk, [2i+2]=maker}). */
static fncache_t *push_fncache(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &DCACHE_KEY) == LUA_TUSERDATA)
        return lua_touserdata(L, -1);
    lua_pop(L, 1);
    fncache_t *c = lua_newuserdatauv(L, sizeof *c, 1);
    memset(c, 0, sizeof *c);
    lua_createtable(L, 2 * FN_CACHE_SLOTS, 0);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &DCACHE_KEY);
    return c;
}

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
static int build_maker(braid_buf_t *b, const uint8_t *data, size_t len)
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

/* Pushes a new closure of the function chunk s (whose claimed MAC is mac)
 * with fresh upvalues; returns its number of upvalues. Raises on a bad MAC. */
static int dec_load_function(dec_t *d, const uint8_t *s, size_t n, uint64_t mac)
{
    lua_State *L = d->L;
    fncache_t *c = push_fncache(L);
    int slot = (int)(mac % FN_CACHE_SLOTS);
    lua_getiuservalue(L, -1, 1);
    lua_remove(L, -2);
    if (c->slot[slot].mac == mac && c->slot[slot].len == n && c->slot[slot].chunk &&
        memcmp(c->slot[slot].chunk, s, n) == 0) {
        int nups = c->slot[slot].nups;
        lua_rawgeti(L, -1, 2 * slot + 2);
        lua_remove(L, -2);
        lua_call(L, 0, 1);
        return nups;
    }
    if (braid_codec_mac(s, n) != mac)
        dec_fail(d, BRAID_ECORRUPT);
    braid_buf_t *b = lbraid_push_buf(L);
    int nups = n <= FN_CACHE_MAX ? build_maker(b, s, n) : -1;
    if (b->err)
        lbraid_core_error(L, b->err, "decode");
    if (nups < 0 || luaL_loadbufferx(L, (const char *)b->data, b->len, "=?", "b") != LUA_OK) {
        /* not a layout the maker can take: load it as it is, uncached */
        lua_settop(L, lua_gettop(L) - (nups < 0 ? 2 : 3));
        if (luaL_loadbufferx(L, (const char *)s, n, "=?", "b") != LUA_OK)
            lua_error(L);
        lua_Debug ar;
        lua_pushvalue(L, -1);
        lua_getinfo(L, ">u", &ar);
        return ar.nups;
    }
    /* cache: [2i+1] = chunk (anchors the bytes), [2i+2] = maker */
    c->slot[slot].chunk = NULL; /* (the array part is presized: no raising below) */
    lua_pushlstring(L, (const char *)s, n);
    const char *anchored = lua_tostring(L, -1);
    lua_rawseti(L, -4, 2 * slot + 1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -4, 2 * slot + 2);
    c->slot[slot].chunk = anchored;
    c->slot[slot].len = n;
    c->slot[slot].mac = mac;
    c->slot[slot].nups = nups;
    lua_call(L, 0, 1);
    lua_replace(L, -3);
    lua_pop(L, 1);
    return nups;
}

/* Inline fast path of braid_reader_varint: one-byte varints (the core's
 * reader handles the rest and every error). */
static inline uint64_t rd_varint(braid_reader_t *r)
{
    if (r->p < r->end && *r->p < 0x80)
        return *r->p++;
    return braid_reader_varint(r);
}

/* Pushes the scalar (nil, boolean, number, string) that follows a tag read
 * from r. Returns 1, 0 when tag is not a scalar's (nothing read), or -1 on
 * malformed input (nothing pushed). */
static inline int dec_scalar_value(lua_State *L, uint8_t tag, braid_reader_t *r)
{
    switch (tag) {
    case BRAID_T_NIL:
        lua_pushnil(L);
        return 1;
    case BRAID_T_FALSE:
    case BRAID_T_TRUE:
        lua_pushboolean(L, tag == BRAID_T_TRUE);
        return 1;
    case BRAID_T_INT: {
        uint64_t u = rd_varint(r);
        if (r->err)
            return -1;
        lua_pushinteger(L, (lua_Integer)((int64_t)(u >> 1) ^ -(int64_t)(u & 1)));
        return 1;
    }
    case BRAID_T_FLOAT: {
        double f = braid_reader_f64(r);
        if (r->err)
            return -1;
        lua_pushnumber(L, (lua_Number)f);
        return 1;
    }
    case BRAID_T_STR: {
        size_t n = (size_t)rd_varint(r);
        if (r->err || n > (size_t)(r->end - r->p))
            return -1;
        lua_pushlstring(L, (const char *)r->p, n);
        r->p += n;
        return 1;
    }
    default:
        return 0;
    }
}

static void dec_value(dec_t *d)
{
    lua_State *L = d->L;
    braid_reader_t *r = &d->r;
    size_t n;
    const uint8_t *s;
    if (++d->depth > BRAID_CODEC_MAX_DEPTH)
        dec_fail(d, BRAID_ETOOBIG);
    if (d->depth % 8 == 0)
        luaL_checkstack(L, 40, "decode"); /* each level uses at most 5 slots */
    if (r->err || r->p >= r->end)
        dec_fail(d, BRAID_ECORRUPT);
    uint8_t tag = *r->p++;
    int scalar = dec_scalar_value(L, tag, r);
    if (scalar < 0)
        dec_fail(d, BRAID_ECORRUPT);
    if (scalar) {
        if (tag == BRAID_T_STR && lua_rawlen(L, -1) >= BRAID_CODEC_MEMO_MIN)
            dec_ref(d);
        d->depth--;
        return;
    }
    switch (tag) {
    case BRAID_T_REF: {
        uint64_t i = rd_varint(r);
        if (r->err || i >= (uint64_t)d->nrefs)
            dec_fail(d, BRAID_ECORRUPT);
        dec_push_ref(d, (lua_Integer)i);
        break;
    }
    case BRAID_T_TABLE: {
        uint64_t na = braid_reader_count(r, 1), nh = braid_reader_count(r, 2);
        uint8_t hasmeta = braid_reader_u8(r);
        if (r->err || hasmeta > 1)
            dec_fail(d, BRAID_ECORRUPT);
        lua_createtable(L, na > INT32_MAX ? 0 : (int)na, nh > INT32_MAX ? 0 : (int)nh);
        dec_ref(d);
        int t = lua_gettop(L);
        for (uint64_t i = 1; i <= na; i++) {
            dec_value(d);
            lua_rawseti(L, t, (lua_Integer)i);
        }
        for (uint64_t i = 0; i < nh; i++) {
            dec_value(d);
            dec_value(d);
            int kt = lua_type(L, -2);
            if (kt == LUA_TNIL || (kt == LUA_TNUMBER && lua_tonumber(L, -2) != lua_tonumber(L, -2)))
                dec_fail(d, BRAID_ECORRUPT); /* nil or NaN key */
            lua_rawset(L, t);
        }
        if (hasmeta) {
            dec_value(d);
            if (!lua_istable(L, -1))
                dec_fail(d, BRAID_ECORRUPT);
            lua_setmetatable(L, t);
        }
        break;
    }
    case BRAID_T_FUNC: {
        s = braid_reader_str(r, &n);
        uint64_t mac = braid_reader_u64(r);
        if (r->err)
            dec_fail(d, BRAID_ECORRUPT);
        int nups = dec_load_function(d, s, n, mac);
        dec_ref(d);
        int f = lua_gettop(L);
        uint64_t nup = braid_reader_count(r, 1);
        if (r->err || nup != (uint64_t)nups)
            dec_fail(d, BRAID_ECORRUPT);
        for (uint64_t i = 1; i <= nup; i++) {
            if (r->p < r->end && *r->p == BRAID_T_UPREF) {
                dec_upref(d, f, (int)i);
                continue;
            }
            dec_value(d);
            lua_setupvalue(L, f, (int)i);
        }
        uint64_t ng = braid_reader_count(r, 2);
        for (uint64_t i = 0; i < ng; i++) {
            dec_value(d);
            if (lua_type(L, -1) != LUA_TSTRING)
                dec_fail(d, BRAID_ECORRUPT);
            /* set only the globals this state lacks */
            lua_pushglobaltable(L);
            lua_pushvalue(L, -2);
            int have = lua_rawget(L, -2) != LUA_TNIL;
            lua_pop(L, 1);
            dec_value(d);
            if (!have) {
                lua_pushvalue(L, -3);
                lua_insert(L, -2);
                lua_rawset(L, -3);
            } else {
                lua_pop(L, 1);
            }
            lua_pop(L, 2);
        }
        break;
    }
    case BRAID_T_MODULE:
        s = braid_reader_str(r, &n);
        if (r->err)
            dec_fail(d, r->err);
        dec_module(d, s, n);
        break;
    case BRAID_T_MODFIELD: {
        s = braid_reader_str(r, &n);
        size_t kn;
        const uint8_t *k = braid_reader_str(r, &kn);
        if (r->err)
            dec_fail(d, r->err);
        dec_module(d, s, n);
        if (!lua_istable(L, -1))
            lbraid_error(L,
                         "ValueError",
                         "decode: module '%s' is not a table",
                         lua_pushlstring(L, (const char *)s, n));
        lua_pushlstring(L, (const char *)k, kn);
        lua_rawget(L, -2);
        lua_remove(L, -2);
        break;
    }
    case BRAID_T_OBJECT: {
        uint64_t id = braid_reader_u64(r);
        if (r->err)
            dec_fail(d, r->err);
        braid_object_t *obj = braid_object_lookup(id);
        if (!obj)
            dec_fail(d, BRAID_ESTALE);
        lbraid_push_object(L, obj); /* may raise: release first */
        braid_object_release(obj);
        break;
    }
    default:
        dec_fail(d, BRAID_ECORRUPT);
    }
    if (r->err)
        dec_fail(d, r->err);
    d->depth--;
}

static int dec_run(lua_State *L, const void *data, size_t len, int seq)
{
    dec_t d;
    int base = lua_gettop(L);
    d.L = L;
    braid_reader_init(&d.r, data, len);
    d.nrefs = 0;
    d.depth = 0;
    d.more = NULL;
    if (!lua_checkstack(L, DEC_REF_SLOTS + 8))
        dec_fail(&d, BRAID_ENOMEM);
    /* back-reference targets, below the results (dec_ref) */
    lua_settop(L, base + DEC_REF_SLOTS);
    d.refs = base + 1;
    uint64_t n = 1;
    if (seq) {
        n = braid_reader_count(&d.r, 1);
        if (d.r.err)
            dec_fail(&d, d.r.err);
        luaL_checkstack(L, (int)(n > 1000000 ? 1000000 : n) + 8, "too many values");
    }
    for (uint64_t i = 0; i < n; i++)
        dec_value(&d);
    if (braid_reader_left(&d.r) != 0)
        dec_fail(&d, BRAID_ECORRUPT);
    dec_give_more(&d);
    lua_rotate(L, d.refs, -DEC_REF_SLOTS);
    lua_settop(L, -(DEC_REF_SLOTS + 1));
    return (int)n;
}

/* The scalar counterpart of enc_scalar: returns 0 (pushing nothing) unless
 * data is exactly one well-formed scalar. */
static int dec_scalar(lua_State *L, const void *data, size_t len)
{
    braid_reader_t r;
    braid_reader_init(&r, data, len);
    if (len == 0 || dec_scalar_value(L, *r.p++, &r) != 1)
        return 0;
    if (r.p != r.end) { /* trailing bytes: let the full decoder report it */
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

void lbraid_decode(lua_State *L, const void *data, size_t len)
{
    if (!dec_scalar(L, data, len))
        dec_run(L, data, len, 0);
}

int lbraid_decode_seq(lua_State *L, const void *data, size_t len)
{
    return dec_run(L, data, len, 1);
}
