/* The encoder's per-state context (lcodec_enc.h): the seen map of values
 * already written, the anchors that keep them alive, and the error path
 * that names where in the value an encode failed. */
#include <stdlib.h>
#include <string.h>

#include "lcodec_enc.h"

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
int lbraid_enc_fail(enc_t *e, const char *what)
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
void lbraid_encctx_clear(encctx_t *c)
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
lua_Integer lbraid_enc_seen_find(encctx_t *m, const void *p, int *found)
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
void lbraid_enc_seen_add(enc_t *e, const void *p, lua_Integer ref)
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
void lbraid_enc_anchor(enc_t *e, int idx)
{
    lua_State *L = e->L;
    if (e->plain)
        return;
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

void lbraid_enc_unplain(enc_t *e)
{
    longjmp(e->restart, 1);
}

/* If the value at idx (whose lua_topointer is p) was seen, writes a REF
 * and returns 1; else records it. */
int lbraid_enc_seen_at(enc_t *e, int idx, const void *p)
{
    int found;
    lua_Integer ref = lbraid_enc_seen_find(e->ctx, p, &found);
    if (found) {
        put_tag_varint(e->buf, BRAID_T_REF, (uint64_t)ref);
        return 1;
    }
    lbraid_enc_seen_add(e, p, e->nrefs++);
    lbraid_enc_anchor(e, idx);
    return 0;
}

encctx_t *lbraid_encctx_push(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &ECTX_KEY) != LUA_TUSERDATA) {
        lua_pop(L, 1);
        encctx_new(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &ECTX_KEY);
    }
    encctx_t *c = lua_touserdata(L, -1);
    if (c->busy) { /* an encode running inside another one */
        lua_pop(L, 1);
        c = encctx_new(L);
    }
    c->busy = 1;
    return c;
}

encctx_t *lbraid_encctx_find(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &ECTX_KEY) == LUA_TUSERDATA)
        return lua_touserdata(L, -1);
    return NULL;
}
