/* The Lua half of the codec (API.md §1), encoder: walks Lua values into the
 * byte format of core/codec.h (lcodec_dec.c rebuilds them in another state);
 * its context and seen map are in lcodec_enc_ctx.c, functions and values by
 * module name in lcodec_enc_fn.c. */
#include <stdlib.h>
#include <string.h>

#include "lcodec_enc.h"

/* Tables whose encoding (after the count) is at most this long get their
 * hash count rewritten as one byte when it fits, instead of the 5-byte
 * placeholder written before their entries were counted. */
#define ENC_COMPACT_MAX 4096

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

/* Values shorter than this are written in full each time, as SSTR (a
 * short string is interned by the receiver anyway, and the decoder keeps
 * no back-reference for it), without the cost of recording them; table
 * keys are recorded whatever their length, so a key repeated in every
 * record of a list is written and interned once, then sent as a REF. */
#define ENC_VALUE_MEMO_MIN BRAID_CODEC_SSTR_MAX

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
        lua_Integer ref = lbraid_enc_seen_find(e->ctx, p, &found);
        if (found) { /* (only strings of BRAID_CODEC_MEMO_MIN bytes or more are) */
            put_tag_varint(e->buf, BRAID_T_REF, (uint64_t)ref);
            return;
        }
    }
    size_t n;
    const char *str = lua_tolstring(L, idx, &n);
    if (n < memo_min) {
        put_tag_str(e->buf, BRAID_T_SSTR, str, n); /* not a back-reference target */
        return;
    }
    if (n < BRAID_CODEC_MEMO_MIN) {
        /* not a back-reference target */
    } else if (p) {
        lbraid_enc_seen_add(e, p, e->nrefs++);
        lbraid_enc_anchor(e, idx);
    } else if (enc_seen(e, idx)) {
        return;
    }
    put_tag_str(e->buf, BRAID_T_STR, str, n);
}

static void enc_table(enc_t *e, int idx);

/* lbraid_enc_value for a table's item: scalars and strings without the
 * call (they nest nothing), tables without its type checks. */
static inline void enc_item(enc_t *e, int idx)
{
    int type = lua_type(e->L, idx);
    if (e->depth < BRAID_CODEC_MAX_DEPTH) {
        if (type == LUA_TSTRING) {
            enc_string(e, idx, ENC_VALUE_MEMO_MIN);
            return;
        }
        if (type == LUA_TTABLE) {
            e->depth++;
            enc_table(e, idx);
            e->depth--;
            return;
        }
        if (put_scalar(e->L, idx, type, e->buf))
            return;
    }
    lbraid_enc_value(e, idx);
}

/* Writes array items next..narr of the table at idx by index; returns
 * narr + 1. */
static lua_Integer enc_array_rest(enc_t *e, int idx, lua_Integer next, lua_Integer narr)
{
    lua_State *L = e->L;
    int at = lua_gettop(L) + 1; /* where each item is pushed */
    for (; next <= narr; next++) {
        lua_rawgeti(L, idx, next);
        e->path[e->depth].kind = 1;
        e->path[e->depth].i = next;
        enc_item(e, at);
        lua_pop(L, 1);
    }
    return next;
}

static void enc_table(enc_t *e, int idx)
{
    lua_State *L = e->L;
    const void *p = lua_topointer(L, idx);
    if (lbraid_enc_by_name_at(e, idx, p))
        return;
    if (!e->plain) {
        if (lbraid_enc_seen_at(e, idx, p))
            return;
    } else {
        int found;
        lbraid_enc_seen_find(e->ctx, p, &found);
        if (found)
            lbraid_enc_unplain(e); /* a cycle or a shared table: REFs needed */
        lbraid_enc_seen_add(e, p, -1);
    }
    if (!lua_checkstack(L, 12))
        lbraid_enc_fail(e, "a value nested too deeply");
    lua_Integer narr = (lua_Integer)lua_rawlen(L, idx);
    uint64_t nhash = 0;
    int hasmeta = lua_getmetatable(L, idx);
    if (hasmeta)
        lua_pop(L, 1);
    put_tag_varint(e->buf, BRAID_T_TABLE, (uint64_t)narr);
    /* the hash count is patched in once known: a varint padded to 5 bytes */
    braid_buf_t *b = e->buf;
    size_t nhash_at = b->len;
    uint8_t flags = (uint8_t)(hasmeta | (e->plain ? 2 : 0));
    if (b->cap - b->len >= 6) {
        memcpy(b->data + b->len, "\x80\x80\x80\x80\x00", 5);
        b->data[b->len + 5] = flags;
        b->len += 6;
    } else {
        braid_buf_put_bytes(b, "\x80\x80\x80\x80\x00", 5);
        braid_buf_put_u8(b, flags);
    }
    /* one pass: the array items come first from lua_next, in order, with
     * their values already on the stack; any it does not give in order
     * (after a nil, or kept in the hash part) are fetched by index */
    lua_Integer next = 1;      /* the next array item to write */
    int k = lua_gettop(L) + 1; /* where lua_next pushes each key, its value above */
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (narr > 0 && lua_isinteger(L, k)) {
            lua_Integer ik = lua_tointeger(L, k);
            if (ik == next && ik <= narr) {
                e->path[e->depth].kind = 1;
                e->path[e->depth].i = ik;
                enc_item(e, k + 1);
                next++;
                lua_pop(L, 1);
                continue;
            }
            next = enc_array_rest(e, idx, next, narr);
            if (ik >= 1 && ik <= narr) {
                lua_pop(L, 1);
                continue;
            }
        } else if (next <= narr) {
            next = enc_array_rest(e, idx, next, narr);
        }
        e->path[e->depth].kind = 7;
        e->path[e->depth].i = k;
        if (lua_type(L, k) == LUA_TSTRING)
            enc_string(e, k, 0); /* (a key is never nested too deeply) */
        else
            lbraid_enc_value(e, k);
        enc_item(e, k + 1);
        nhash++;
        lua_pop(L, 1);
    }
    enc_array_rest(e, idx, next, narr);
    if (nhash >> 35)
        lbraid_enc_fail(e, "a table with too many keys");
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
        lbraid_enc_value(e, lua_gettop(L));
        lua_pop(L, 1);
    }
}

void lbraid_enc_value(enc_t *e, int idx)
{
    lua_State *L = e->L;
    if (e->depth >= BRAID_CODEC_MAX_DEPTH)
        lbraid_enc_fail(e, "a value nested too deeply");
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
        if (e->plain)
            lbraid_enc_unplain(e); /* encoding it may run Lua code */
        lbraid_enc_function(e, idx);
        break;
    case LUA_TUSERDATA: {
        braid_object_t *obj = lbraid_to_object(L, idx);
        if (obj) {
            braid_buf_put_object(e->buf, obj);
            break;
        }
        if (e->plain)
            lbraid_enc_unplain(e); /* it may walk package.loaded */
        if (!lbraid_enc_by_name_fresh(e, idx))
            lbraid_enc_fail(e, lua_pushfstring(L, "a %s", luaL_typename(L, idx)));
        break;
    }
    case LUA_TTHREAD:
        lbraid_enc_fail(e, "a coroutine");
        break;
    default:
        lbraid_enc_fail(e, lua_pushfstring(L, "a %s", luaL_typename(L, idx)));
    }
    e->depth--;
}

/* Sets e up for a walk from the start (again after a restart: its fields
 * are all set anew, as after a longjmp they may not be what they were). */
static void enc_setup(enc_t *e, lua_State *L, braid_buf_t *buf, encctx_t *ctx, int box,
                      const char *root, int plain)
{
    e->plain = plain;
    e->L = L;
    e->buf = buf;
    e->modmap = 0;
    e->walked = 0;
    e->errmeta = NULL;
    e->errmeta_known = 0;
    e->ctx = ctx;
    e->box = box;
    lbraid_encctx_clear(ctx); /* after an error, the last encode could not */
    lua_settop(L, box);
    lua_getiuservalue(L, box, 1);
    e->anchor = lua_tothread(L, -1);
    lua_pop(L, 1);
    lua_settop(e->anchor, 0);
    e->nanchored = 0;
    e->overflow = 0;
    e->nrefs = 0;
    e->depth = 0;
    e->root = root;
}

static void enc_run(lua_State *L, int at, int n, braid_buf_t *buf, const char *root, int seq)
{
    enc_t e;
    int top = lua_gettop(L);
    const int idx = lua_absindex(L, at);
    size_t start = buf->len;
    encctx_t *ctx = lbraid_encctx_push(L);
    int box = lua_gettop(L);
    /* a function or userdata at the top would start it over at once */
    int plain = 1;
    for (int i = 0; i < (seq ? n : 1) && plain; i++) {
        int t = lua_type(L, idx + i);
        plain = t != LUA_TFUNCTION && t != LUA_TUSERDATA;
    }
    enc_setup(&e, L, buf, ctx, box, root, plain);
    if (setjmp(e.restart)) {
        buf->len = start; /* (a write error stays: the encode raises it) */
        enc_setup(&e, L, buf, ctx, box, root, 0);
    }
    /* path[d] names the value encoded at depth d + 1 */
    if (seq) {
        braid_buf_put_varint(buf, (uint64_t)n);
        for (int i = 0; i < n; i++) {
            e.path[0].kind = 1;
            e.path[0].i = i + 1;
            lbraid_enc_value(&e, idx + i);
        }
    } else {
        e.path[0].kind = 6;
        lbraid_enc_value(&e, idx);
    }
    lbraid_encctx_clear(e.ctx);
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
        lbraid_enc_known_function(L, lua_absindex(L, idx), buf, NULL))
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
