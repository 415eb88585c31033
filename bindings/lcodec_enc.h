/* Inside the encoder (lcodec_enc.c walks values; lcodec_enc_ctx.c keeps
 * its per-state context, seen map and error path; lcodec_enc_fn.c writes
 * functions and values reachable by module name). Not installed. */
#ifndef BRAID_LCODEC_ENC_H
#define BRAID_LCODEC_ENC_H

#include <setjmp.h>
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

typedef struct seg {
    int kind; /* 0 string key, 1 integer key, 2 other key, 3 upvalue, 4 global, 5 metatable,
               * 6 none (the root), 7 the key at stack index i (resolved on error) */
    const char *s;
    size_t len;
    lua_Integer i;
} seg_t;

/* An encode starts in plain mode: while it meets only tables, strings and
 * scalars (and braid objects) no Lua code can run and no collector step can
 * start (none of the API calls of that walk allocates from Lua), so nothing
 * in the seen map can be freed: it anchors nothing, and writes its tables
 * as no back-reference targets (TABLE flag 2), which the decoder then need
 * not keep. Meeting a table a second time (a cycle or a shared table), a
 * function, or a value that needs package.loaded walked, it starts over in
 * full mode (longjmp to enc_run: only the encoder's own C frames lie between). */
typedef struct enc {
    int plain;
    jmp_buf restart;
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
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &u, 8); /* the format's order already: one store */
#else
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(u >> (8 * i));
#endif
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

/* ---- context and seen map (lcodec_enc_ctx.c) ---- */

/* Pushes the state's context box (a new one when an encode is running
 * inside another), marks it busy and returns it. Stack: +1. */
encctx_t *lbraid_encctx_push(lua_State *L);
/* The state's context if it has one, else NULL. Stack: +1. */
encctx_t *lbraid_encctx_find(lua_State *L);
/* Empties the map, keeping its memory unless it grew large. */
void lbraid_encctx_clear(encctx_t *c);
/* The ref recorded for p, or found = 0. */
lua_Integer lbraid_enc_seen_find(encctx_t *m, const void *p, int *found);
/* Records p -> ref (p not yet in the map). */
void lbraid_enc_seen_add(enc_t *e, const void *p, lua_Integer ref);
/* Keeps the value at idx alive until the encode ends (in plain mode: nothing
 * to do). */
void lbraid_enc_anchor(enc_t *e, int idx);
/* Starts the encode over in full mode (from plain mode only). */
void lbraid_enc_unplain(enc_t *e);
/* If the value at idx (whose lua_topointer is p) was seen, writes a REF
 * and returns 1; else records it. */
int lbraid_enc_seen_at(enc_t *e, int idx, const void *p);
/* Raises TypeError "cannot transfer <what> at <path>". */
int lbraid_enc_fail(enc_t *e, const char *what);

static inline int enc_seen(enc_t *e, int idx)
{
    return lbraid_enc_seen_at(e, idx, lua_topointer(e->L, idx));
}

/* ---- the walk (lcodec_enc.c) ---- */

void lbraid_enc_value(enc_t *e, int idx);

/* ---- functions and values by name (lcodec_enc_fn.c) ---- */

/* Writes MODULE/MODFIELD if the value at idx (whose lua_topointer is p) is
 * reachable by module name. */
int lbraid_enc_by_name_at(enc_t *e, int idx, const void *p);
/* lbraid_enc_by_name_at for a value that cannot cross any other way (a C
 * function, a userdata): if the map was vouched for by the loaded hook's
 * count, walks package.loaded once before giving up. */
int lbraid_enc_by_name_fresh(enc_t *e, int idx);
void lbraid_enc_function(enc_t *e, int idx);
/* A Lua function seen before, not reachable by module name, whose only
 * upvalue is _ENV (or none) and that reads no non-standard global (the
 * usual task function): writes what lbraid_enc_function would, straight
 * from its fninfo, without setting up an encoder, and keeps those bytes in
 * memo if not NULL (lbraid_encode_memo). Returns 0 to take the long way. */
int lbraid_enc_known_function(lua_State *L, int idx, braid_buf_t *buf, lbraid_fnmemo_t *memo);

#endif
