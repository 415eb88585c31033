/* The Lua half of the codec (API.md §1), encoder: walks Lua values into the
 * byte format of core/codec.h (lcodec_dec.c rebuilds them in another state). */
#include <stdlib.h>
#include <string.h>

#include "lbraid.h"
#include "lcodec.h"

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
    lbraid_modmap_t mod; /* its map is the context box's uservalue 2 */
} encctx_t;

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
    int walked;          /* the map was checked against package.loaded */
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

static inline void put_tag_f64(braid_buf_t *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    if (b->cap - b->len < 9) {
        braid_buf_put_u8(b, BRAID_T_FLOAT);
        braid_buf_put_u64(b, u);
        return;
    }
    uint8_t *p = b->data + b->len;
    *p++ = BRAID_T_FLOAT;
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(u >> (8 * i));
    b->len += 9;
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
static inline void enc_string(enc_t *e, int idx, size_t memo_min);

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
    lbraid_modmap_free(&c->mod);
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

/* If the value at idx (whose lua_topointer is p) was seen, writes a REF
 * and returns 1; else records it. */
static int enc_seen_at(enc_t *e, int idx, const void *p)
{
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

static int enc_seen(enc_t *e, int idx)
{
    return enc_seen_at(e, idx, lua_topointer(e->L, idx));
}

/* Writes MODULE/MODFIELD if the value at idx (whose lua_topointer is p) is
 * reachable by module name. */
static int enc_by_name_at(enc_t *e, int idx, const void *p)
{
    lua_State *L = e->L;
    if (!e->modmap) {
        lbraid_modmap_push(L, &e->ctx->mod, e->box, 0);
        e->modmap = lua_gettop(L);
    }
    if (lbraid_modmap_may_have(&e->ctx->mod, p)) {
        lua_pushvalue(L, idx);
        int t = lua_rawget(L, e->modmap);
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
    }
    /* braid.Error is every state's, loaded or not: errors must always cross */
    if (!lua_istable(L, idx))
        return 0;
    if (!e->errmeta_known) {
        luaL_getmetatable(L, "braid.Error");
        e->errmeta = lua_topointer(L, -1); /* anchored by the registry */
        e->errmeta_known = 1;
        lua_pop(L, 1);
    }
    int is_error_meta = e->errmeta && p == e->errmeta;
    if (is_error_meta) {
        braid_buf_put_u8(e->buf, BRAID_T_MODFIELD);
        braid_buf_put_str(e->buf, "braid", 5);
        braid_buf_put_str(e->buf, "Error", 5);
    }
    return is_error_meta;
}

static int enc_by_name(enc_t *e, int idx)
{
    return enc_by_name_at(e, idx, lua_topointer(e->L, idx));
}

/* enc_by_name for a value that cannot cross any other way (a C function,
 * a userdata): if the map was vouched for by the loaded hook's count,
 * walks package.loaded once before giving up. */
static int enc_by_name_fresh(enc_t *e, int idx)
{
    if (enc_by_name(e, idx))
        return 1;
    if (e->walked)
        return 0;
    e->walked = 1;
    lbraid_modmap_push(e->L, &e->ctx->mod, e->box, 1);
    lua_replace(e->L, e->modmap);
    return enc_by_name(e, idx);
}

/* Tables whose encoding (after the count) is at most this long get their
 * hash count rewritten as one byte when it fits, instead of the 5-byte
 * placeholder written before their entries were counted. */
#define ENC_COMPACT_MAX 4096

static void enc_table(enc_t *e, int idx)
{
    lua_State *L = e->L;
    const void *p = lua_topointer(L, idx);
    if (enc_by_name_at(e, idx, p) || enc_seen_at(e, idx, p))
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
            if (lua_type(L, k) == LUA_TSTRING)
                enc_string(e, k, 0); /* (a key is never nested too deeply) */
            else
                enc_value(e, k);
            enc_value(e, k + 1);
            nhash++;
        }
        lua_pop(L, 1);
    }
    if (nhash >> 35)
        enc_fail(e, "a table with too many keys");
    braid_buf_t *b = e->buf;
    if (b->err) {
        /* the bytes no longer matter */
    } else if (nhash < 0x80 && b->len - nhash_at <= ENC_COMPACT_MAX) {
        /* a one-byte count: the table's bytes move back over the padding
         * (only small tables, so nesting cannot make the moves quadratic) */
        b->data[nhash_at] = (uint8_t)nhash;
        memmove(b->data + nhash_at + 1, b->data + nhash_at + 5, b->len - nhash_at - 5);
        b->len -= 4;
    } else {
        for (int i = 0; i < 5; i++)
            b->data[nhash_at + i] = (uint8_t)(((nhash >> (7 * i)) & 0x7f) | (i < 4 ? 0x80 : 0));
    }
    if (hasmeta) {
        lua_getmetatable(L, idx);
        e->path[e->depth].kind = 5;
        enc_value(e, lua_gettop(L));
        lua_pop(L, 1);
    }
}

static void enc_function(enc_t *e, int idx)
{
    lua_State *L = e->L;
    if (!lua_checkstack(L, 12))
        enc_fail(e, "a value nested too deeply");
    if (lua_iscfunction(L, idx)) {
        if (!enc_by_name_fresh(e, idx))
            enc_fail(e, "a C function not reachable by module name");
        return;
    }
    if (enc_by_name(e, idx) || enc_seen(e, idx))
        return;
    lua_Integer myref = e->nrefs - 1; /* enc_seen just numbered it */
    fninfo_t *fi = lbraid_fninfo_push(L, idx);
    if (!fi) {
        e->ctx->busy = 0;
        lbraid_core_error(L, BRAID_ENOMEM, "encode");
    }
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
            put_tag_f64(buf, (double)lua_tonumber(L, idx));
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

/* Values shorter than this are written in full each time (a short string
 * is interned by the receiver anyway), without the cost of recording them;
 * table keys are recorded whatever their length, so a key repeated in every
 * record of a list is written and interned once, then sent as a REF. */
#define ENC_VALUE_MEMO_MIN 4

/* Writes the string at idx, as a REF when it was written before (and
 * recorded: it is when at least memo_min bytes long; memo_min 0 is a key's,
 * looked up before its bytes are read: most keys are repeats). */
static inline void enc_string(enc_t *e, int idx, size_t memo_min)
{
    lua_State *L = e->L;
    const void *p = NULL;
    if (memo_min == 0) {
        int found;
        p = lua_topointer(L, idx);
        lua_Integer ref = seen_find(e->ctx, p, &found);
        if (found) { /* (only strings of BRAID_CODEC_MEMO_MIN bytes or more are) */
            put_tag_varint(e->buf, BRAID_T_REF, (uint64_t)ref);
            return;
        }
    }
    size_t n;
    const char *str = lua_tolstring(L, idx, &n);
    if (n < BRAID_CODEC_MEMO_MIN) {
        /* not a back-reference target */
    } else if (n < memo_min) {
        e->nrefs++; /* a back-reference target all the same (the decoder counts it) */
    } else if (p) {
        seen_add(e, p, e->nrefs++);
        enc_anchor(e, idx);
    } else if (enc_seen(e, idx)) {
        return;
    }
    put_tag_str(e->buf, BRAID_T_STR, str, n);
}

static void enc_value(enc_t *e, int idx)
{
    lua_State *L = e->L;
    if (e->depth >= BRAID_CODEC_MAX_DEPTH)
        enc_fail(e, "a value nested too deeply");
    e->depth++;
    int type = lua_type(L, idx);
    if (type == LUA_TSTRING) {
        enc_string(e, idx, ENC_VALUE_MEMO_MIN);
        e->depth--;
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
        else if (!enc_by_name_fresh(e, idx))
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
    e.walked = 0;
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

/* A Lua function seen before, not reachable by module name, whose only
 * upvalue is _ENV (or none) and that reads no non-standard global (the
 * usual task function): writes what enc_function would, straight from its
 * fninfo, without setting up an encoder. Returns 0 to take the long way. */
static int enc_known_function(lua_State *L, int idx, braid_buf_t *buf, lbraid_fnmemo_t *memo)
{
    int top = lua_gettop(L), ok = 0;
    encctx_t *c = NULL;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &ECTX_KEY) == LUA_TUSERDATA) {
        c = lua_touserdata(L, -1);
        ok = !c->busy && lbraid_modmap_current(L, &c->mod) &&
             !lbraid_modmap_may_have(&c->mod, lua_topointer(L, idx));
    }
    fninfo_t *fi = ok ? lbraid_fninfo_find(L, idx) : NULL;
    ok = fi && !fi->nglobals &&
         (fi->nups == 0 ||
          (fi->nups == 1 && fi->env == 1 && lua_getupvalue(L, idx, 1) && lua_istable(L, -1)));
    size_t start = buf->len;
    if (ok) { /* as enc_function writes it (the chunk is anchored by the fninfo box) */
        braid_buf_put_u8(buf, BRAID_T_FUNC);
        braid_buf_put_str(buf, fi->chunk, fi->len);
        braid_buf_put_u64(buf, fi->mac);
        braid_buf_put_varint(buf, (uint64_t)fi->nups);
        if (fi->nups) {
            braid_buf_put_u8(buf, BRAID_T_MODULE);
            braid_buf_put_str(buf, "_G", 2);
        }
        braid_buf_put_u8(buf, 0);
        if (buf->err)
            lbraid_core_error(L, buf->err, "encode");
        if (memo) { /* the registry anchors c (ECTX_KEY is set once) */
            braid_buf_reset(&memo->bytes);
            braid_buf_put_bytes(&memo->bytes, buf->data + start, buf->len - start);
            memo->fn = memo->bytes.err ? NULL : lua_topointer(L, idx);
            memo->ctx = c;
            memo->env = fi->nups == 1;
        }
    }
    lua_settop(L, top);
    return ok;
}

int lbraid_encode_memo(lua_State *L, int idx, braid_buf_t *buf, lbraid_fnmemo_t *memo,
                       const char *root)
{
    const void *p = lua_topointer(L, idx);
    if (p && p == memo->fn && lua_type(L, idx) == LUA_TFUNCTION) {
        encctx_t *c = memo->ctx;
        int ok =
            !c->busy && lbraid_modmap_current(L, &c->mod) && !lbraid_modmap_may_have(&c->mod, p);
        if (ok && memo->env) {
            ok = lua_getupvalue(L, idx, 1) != NULL;
            if (ok) {
                ok = lua_istable(L, -1);
                lua_pop(L, 1);
            }
        }
        if (ok) {
            braid_buf_put_bytes(buf, memo->bytes.data, memo->bytes.len);
            if (buf->err)
                lbraid_core_error(L, buf->err, "encode");
            return 1;
        }
    }
    memo->fn = NULL;
    if (lua_type(L, idx) == LUA_TFUNCTION && !lua_iscfunction(L, idx) &&
        enc_known_function(L, lua_absindex(L, idx), buf, memo))
        return memo->fn != NULL;
    lbraid_encode(L, idx, buf, root);
    return 0;
}

void lbraid_encode_integer(braid_buf_t *buf, lua_Integer v)
{
    int64_t i = (int64_t)v;
    put_tag_varint(buf, BRAID_T_INT, ((uint64_t)i << 1) ^ (uint64_t)(i >> 63));
}

void lbraid_encode(lua_State *L, int idx, braid_buf_t *buf, const char *root)
{
    if (enc_scalar(L, idx, buf))
        return;
    if (lua_type(L, idx) == LUA_TFUNCTION && !lua_iscfunction(L, idx) &&
        enc_known_function(L, lua_absindex(L, idx), buf, NULL))
        return;
    enc_run(L, idx, 1, buf, root, 0);
}

void lbraid_encode_seq(lua_State *L, int idx, int n, braid_buf_t *buf, const char *root)
{
    /* no values, or only scalars (the usual arguments and results): no
     * encoder to set up */
    int i = 0;
    for (int t; i < n; i++) {
        t = lua_type(L, idx + i);
        if (t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER && t != LUA_TSTRING)
            break;
    }
    if (i < n) {
        enc_run(L, idx, n, buf, root, 1);
        return;
    }
    idx = lua_absindex(L, idx);
    braid_buf_put_varint(buf, (uint64_t)n);
    for (i = 0; i < n; i++)
        put_scalar(L, idx + i, lua_type(L, idx + i), buf);
    if (buf->err)
        lbraid_core_error(L, buf->err, "encode");
}
