/* The Lua half of the codec (API.md §1), decoder: rebuilds in this state the
 * values lcodec_enc.c wrote in the byte format of core/codec.h, checking
 * every byte (the input may be hostile). */
#include <stdlib.h>
#include <string.h>

#include "lbraid.h"
#include "lcodec.h"

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
 * tiny dumped main function (Lua 5.4 dump format, as lcodec_chunk.c reads it; opcodes from
 * lopcodes.h). A chunk byte-identical to one seen before is then one memcmp and one call. Bytes
 * whose MAC was not verified are never loaded: only verified chunks enter the cache. */

#define FN_CACHE_SLOTS 64      /* direct-mapped by MAC, at most */
#define FN_CACHE_FIRST_SLOTS 4 /* a thread decodes one function: start small */
#define FN_CACHE_MAX 32768     /* larger chunks are loaded every time */

static const char DCACHE_KEY = 'd'; /* registry: the state's fncache_t box */

typedef struct fncache {
    int nslots; /* a power of two */
    struct {
        uint64_t mac;
        const char *chunk; /* bytes of the string anchored in the uservalue */
        size_t len;
        int nups;
    } slot[];
} fncache_t;

static fncache_t *new_fncache(lua_State *L, int nslots)
{
    fncache_t *c = lua_newuserdatauv(L, sizeof *c + (size_t)nslots * sizeof c->slot[0], 1);
    memset(c, 0, sizeof *c + (size_t)nslots * sizeof c->slot[0]);
    c->nslots = nslots;
    lua_createtable(L, 2 * nslots, 0);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &DCACHE_KEY);
    return c;
}

/* Pushes the state's cache box (uservalue 1: {[2i+1]=chunk, [2i+2]=maker}),
 * made if the registry holds none (or only dec_load_function's mark). */
static fncache_t *push_fncache(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &DCACHE_KEY) == LUA_TUSERDATA)
        return lua_touserdata(L, -1);
    lua_pop(L, 1);
    return new_fncache(L, FN_CACHE_FIRST_SLOTS);
}

/* Replaces the cache box (on the stack top) by one with twice the slots,
 * each entry moved to its slot there (slot i goes to i or i + nslots: no
 * two collide). */
static fncache_t *grow_fncache(lua_State *L, fncache_t *old)
{
    int n = old->nslots;
    lua_getiuservalue(L, -1, 1);          /* old box, old table */
    fncache_t *c = new_fncache(L, 2 * n); /* old box, old table, new box */
    lua_getiuservalue(L, -1, 1);          /* ..., new table */
    for (int i = 0; i < n; i++) {
        if (!old->slot[i].chunk)
            continue;
        int j = (int)(old->slot[i].mac % (uint64_t)c->nslots);
        c->slot[j] = old->slot[i];
        lua_rawgeti(L, -3, 2 * i + 1);
        lua_rawseti(L, -2, 2 * j + 1);
        lua_rawgeti(L, -3, 2 * i + 2);
        lua_rawseti(L, -2, 2 * j + 2);
    }
    lua_pop(L, 1);
    lua_replace(L, -3); /* new box */
    lua_pop(L, 1);
    return c;
}

/* Pushes the function of chunk s (verified), loaded as it is; returns its
 * number of upvalues. */
static int load_plain(lua_State *L, const uint8_t *s, size_t n)
{
    if (luaL_loadbufferx(L, (const char *)s, n, "=?", "b") != LUA_OK)
        lua_error(L);
    lua_Debug ar;
    lua_pushvalue(L, -1);
    lua_getinfo(L, ">u", &ar);
    return ar.nups;
}

/* Pushes a new closure of the function chunk s (whose claimed MAC is mac)
 * with fresh upvalues; returns its number of upvalues. Raises on a bad MAC.
 * A state's first function is loaded as it is, uncached: a thread's state
 * decodes its target and often nothing else, and a cache holding it (the
 * box, the chunk's copy, the maker) was ~1 KB of a parked thread's 25. The
 * registry key marks that one was seen; the second function makes the
 * cache. */
static int dec_load_function(dec_t *d, const uint8_t *s, size_t n, uint64_t mac)
{
    lua_State *L = d->L;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &DCACHE_KEY) == LUA_TNIL) {
        lua_pop(L, 1);
        if (braid_codec_mac(s, n) != mac)
            dec_fail(d, BRAID_ECORRUPT);
        lua_pushboolean(L, 1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &DCACHE_KEY);
        return load_plain(L, s, n);
    }
    lua_pop(L, 1);
    fncache_t *c = push_fncache(L);
    int slot = (int)(mac % (uint64_t)c->nslots);
    if (c->slot[slot].chunk && c->slot[slot].mac != mac && c->nslots < FN_CACHE_SLOTS) {
        c = grow_fncache(L, c); /* a second function for a taken slot */
        slot = (int)(mac % (uint64_t)c->nslots);
    }
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
    int nups = n <= FN_CACHE_MAX ? lbraid_chunk_maker(b, s, n) : -1;
    if (b->err)
        lbraid_core_error(L, b->err, "decode");
    if (nups < 0 || luaL_loadbufferx(L, (const char *)b->data, b->len, "=?", "b") != LUA_OK) {
        /* not a layout the maker can take: load it as it is, uncached */
        lua_settop(L, lua_gettop(L) - (nups < 0 ? 2 : 3));
        return load_plain(L, s, n);
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
    if (r->end - r->p >= 2 && r->p[1] < 0x80) {
        uint64_t v = (uint64_t)(r->p[0] & 0x7f) | (uint64_t)r->p[1] << 7;
        r->p += 2;
        return v;
    }
    return braid_reader_varint(r);
}

/* Inline braid_reader_f64: 8 bytes, IEEE-754 little endian. */
static inline int rd_f64(braid_reader_t *r, double *out)
{
    if (r->err || r->end - r->p < 8)
        return -1;
    uint64_t u = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(&u, r->p, 8); /* the format's order already: one load */
#else
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)r->p[i] << (8 * i);
#endif
    r->p += 8;
    memcpy(out, &u, sizeof *out);
    return 0;
}

/* Inline braid_reader_count for counts of up to 5 varint bytes (all the
 * encoder writes); the core's reader handles the rest and every error. */
static inline uint64_t rd_count(braid_reader_t *r, size_t min_each)
{
    const uint8_t *p = r->p;
    uint64_t v = 0;
    for (int i = 0; i < 5 && !r->err && p + i < r->end; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (p[i] < 0x80) {
            size_t left = (size_t)(r->end - p) - (size_t)i - 1;
            if (v > left / min_each)
                break;
            r->p = p + i + 1;
            return v;
        }
    }
    return braid_reader_count(r, min_each);
}

/* Pushes the scalar (nil, boolean, number, string: STR here is not recorded
 * as a back-reference target, SSTR never is) that follows a tag read from r. Returns 1, 0 when tag
 * is not a scalar's (nothing read), or -1 on malformed input (nothing pushed). */
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
        double f;
        if (rd_f64(r, &f))
            return -1;
        lua_pushnumber(L, (lua_Number)f);
        return 1;
    }
    case BRAID_T_STR:
    case BRAID_T_SSTR: {
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

/* Pushes the string after a STR tag, a back-reference target when long
 * enough. */
static inline void dec_str(dec_t *d)
{
    braid_reader_t *r = &d->r;
    size_t n = (size_t)rd_varint(r);
    if (r->err || n > (size_t)(r->end - r->p))
        dec_fail(d, BRAID_ECORRUPT);
    lua_pushlstring(d->L, (const char *)r->p, n);
    r->p += n;
    if (n >= BRAID_CODEC_MEMO_MIN)
        dec_ref(d);
}

/* dec_value for a table's key or value: scalars, strings and
 * back-references (most items) without a call and its depth checks (they
 * nest nothing, and take the one stack slot their level counts on). */
static inline void dec_item(dec_t *d)
{
    braid_reader_t *r = &d->r;
    if (r->p < r->end) {
        uint8_t tag = *r->p;
        if (tag <= BRAID_T_FLOAT) {
            r->p++;
            if (dec_scalar_value(d->L, tag, r) != 1)
                dec_fail(d, BRAID_ECORRUPT);
            return;
        }
        if (tag == BRAID_T_SSTR) {
            r->p++;
            size_t n = (size_t)rd_varint(r);
            if (r->err || n > (size_t)(r->end - r->p))
                dec_fail(d, BRAID_ECORRUPT);
            lua_pushlstring(d->L, (const char *)r->p, n);
            r->p += n;
            return;
        }
        if (tag == BRAID_T_STR) {
            r->p++;
            dec_str(d);
            return;
        }
        if (tag == BRAID_T_REF) {
            r->p++;
            uint64_t i = rd_varint(r);
            if (r->err || i >= (uint64_t)d->nrefs)
                dec_fail(d, BRAID_ECORRUPT);
            dec_push_ref(d, (lua_Integer)i);
            return;
        }
    }
    dec_value(d);
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
        luaL_checkstack(L, 48, "decode"); /* each level uses at most 5 slots */
    if (r->err || r->p >= r->end)
        dec_fail(d, BRAID_ECORRUPT);
    uint8_t tag = *r->p++;
    if (tag == BRAID_T_STR) {
        dec_str(d);
        d->depth--;
        return;
    }
    int scalar = dec_scalar_value(L, tag, r);
    if (scalar < 0)
        dec_fail(d, BRAID_ECORRUPT);
    if (scalar) {
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
        uint64_t na = rd_count(r, 1), nh = rd_count(r, 2);
        uint8_t flags = braid_reader_u8(r), hasmeta = flags & 1;
        if (r->err || flags > 3)
            dec_fail(d, BRAID_ECORRUPT);
        lua_createtable(L, na > INT32_MAX ? 0 : (int)na, nh > INT32_MAX ? 0 : (int)nh);
        if (!(flags & 2)) /* flag 2: not a back-reference target */
            dec_ref(d);
        int t = lua_gettop(L);
        for (uint64_t i = 1; i <= na; i++) {
            dec_item(d);
            lua_rawseti(L, t, (lua_Integer)i);
        }
        for (uint64_t i = 0; i < nh; i++) {
            /* a key written as a string or a back-reference (a string, a
             * table or a function) is never nil or NaN */
            int checked = r->p < r->end &&
                          (*r->p == BRAID_T_STR || *r->p == BRAID_T_SSTR || *r->p == BRAID_T_REF);
            dec_item(d);
            dec_item(d);
            if (!checked) {
                int kt = lua_type(L, -2);
                if (kt == LUA_TNIL ||
                    (kt == LUA_TNUMBER && lua_tonumber(L, -2) != lua_tonumber(L, -2)))
                    dec_fail(d, BRAID_ECORRUPT); /* nil or NaN key */
            }
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

/* ---- the collector during a large decode ----
 *
 * Everything a decode makes stays reachable until it returns, so a
 * collector step inside it can free nothing it made; it marks the half-built
 * value, and in generational mode (the braid executable's main state) ages
 * it, so a value dropped soon after lingers as old garbage until a major
 * collection. A decode of DEC_GC_MIN bytes or more therefore gives the
 * collector a credit (lua_gc STEP with a negative size lowers its debt) of
 * about what it will allocate, and owes it back: the state's next large
 * decode first adds the owed amount to the debt (which runs the steps it
 * deferred, when the last value may already be garbage). The collector
 * sees the same debt, deferred by at most one decode's credit (at most
 * DEC_GC_CREDIT_MAX KB), also when a decode raises. Nothing is done while
 * the collector is stopped or running (a decode from a finalizer). */
#define DEC_GC_MIN 4096
#define DEC_GC_CREDIT_MAX 4096 /* KB */

static const char DGC_KEY = 'g'; /* registry: the KB the last large decode owes */

static void dec_gc_credit(lua_State *L, size_t len)
{
    if (lua_gc(L, LUA_GCISRUNNING) != 1)
        return;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &DGC_KEY);
    int owed = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    /* ~8 bytes of tables and strings per byte of input at most in
     * practice; more is harmless (the credit is paid back whole) */
    size_t kb = len / 128 + 1;
    int credit = kb > DEC_GC_CREDIT_MAX ? DEC_GC_CREDIT_MAX : (int)kb;
    lua_pushinteger(L, credit);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &DGC_KEY);
    if (owed > 0 && owed <= DEC_GC_CREDIT_MAX)
        lua_gc(L, LUA_GCSTEP, owed); /* pay the last one back: may step */
    lua_gc(L, LUA_GCSTEP, -credit);
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
    if (len >= DEC_GC_MIN)
        dec_gc_credit(L, len);
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
