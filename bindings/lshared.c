/* braid.shared's C half: shared tables (table-like boxes over core/shared.h)
 * with t[k], t[k] = v, #t, pairs, shared.lock and atomic shared.update. */
#include <string.h>

#include "lbraid.h"
#include "shared.h"

static braid_shared_t *lshared_check(lua_State *L, int idx)
{
    return (braid_shared_t *)lbraid_check_object(L, idx, &braid_shared_type);
}

/* Encodes the key at idx into buf (reset first) canonically: integral
 * floats become integers, as Lua normalises table keys. Raises on nil,
 * NaN and on keys that have no stable identity across states. */
static void lshared_key(lua_State *L, int idx, braid_buf_t *buf)
{
    braid_buf_reset(buf);
    lua_Integer i;
    int t = lua_type(L, idx), isint;
    if (t == LUA_TNUMBER && (i = lua_tointegerx(L, idx, &isint), isint)) {
        lbraid_encode_integer(buf, i); /* an integer, or a float with an integral value */
        return;
    }
    switch (t) {
    case LUA_TNIL:
        luaL_error(L, "shared table index is nil");
        break;
    case LUA_TNUMBER:
        if (lua_tonumber(L, idx) != lua_tonumber(L, idx))
            luaL_error(L, "shared table index is NaN");
        if (!lua_isinteger(L, idx) && lua_numbertointeger(lua_tonumber(L, idx), &i) &&
            (lua_Number)i == lua_tonumber(L, idx)) {
            lua_pushinteger(L, i);
            lbraid_encode(L, -1, buf, "key");
            lua_pop(L, 1);
            break;
        }
        /* fall through */
    case LUA_TSTRING:
    case LUA_TBOOLEAN:
        lbraid_encode(L, idx, buf, "key");
        break;
    default:
        if (!lbraid_to_object(L, idx))
            lbraid_error(L,
                         "TypeError",
                         "shared table keys must be numbers, strings, booleans or braid "
                         "objects, not a %s",
                         luaL_typename(L, idx));
        lbraid_encode(L, idx, buf, "key");
    }
}

/* Pushes t[k] (k at kidx), or nil. Stack: +1. */
static void lshared_push_get(lua_State *L, braid_shared_t *t, int kidx)
{
    braid_buf_t *key = lbraid_take_scratch(L);
    lshared_key(L, kidx, key);
    braid_buf_t *val = lbraid_take_scratch(L);
    int rc = braid_shared_get(t, key->data, key->len, val);
    if (rc < 0)
        lbraid_core_error(L, rc, NULL);
    if (rc == 1)
        lbraid_decode(L, val->data, val->len);
    else
        lua_pushnil(L);
    lua_closeslot(L, -2); /* both scratch buffers go back; the value stays */
    lua_closeslot(L, -3);
    lua_remove(L, -2);
    lua_remove(L, -2);
}

/* t[k] = v (k at kidx, v at vidx; nil deletes). */
static void lshared_do_set(lua_State *L, braid_shared_t *t, int kidx, int vidx)
{
    braid_buf_t *kscratch = lbraid_take_scratch(L);
    lshared_key(L, kidx, kscratch);
    braid_buf_t *vscratch = lbraid_take_scratch(L);
    int del = lua_isnil(L, vidx);
    if (!del)
        lbraid_encode(L, vidx, vscratch, "value");
    braid_buf_t key, val;
    braid_buf_move(&key, kscratch);
    braid_buf_move(&val, vscratch);
    lua_pop(L, 2); /* nothing can raise between here and the frees */
    int rc = braid_shared_set(t, &key, del ? NULL : &val);
    braid_buf_free(&key);
    braid_buf_free(&val);
    if (rc)
        lbraid_core_error(L, rc, NULL);
}

/* ---- module functions ---- */

/* shared.table([init]) -> a new shared table holding init's entries */
static int lshared_table(lua_State *L)
{
    if (!lua_isnoneornil(L, 1))
        luaL_checktype(L, 1, LUA_TTABLE);
    braid_shared_t *t;
    int rc = braid_shared_new(&t);
    if (rc)
        return lbraid_core_error(L, rc, "shared.table");
    lbraid_push_object(L, (braid_object_t *)t);
    braid_object_release((braid_object_t *)t);
    int box = lua_gettop(L);
    if (lua_istable(L, 1)) {
        lua_pushnil(L);
        while (lua_next(L, 1)) {
            lshared_do_set(L, t, box + 1, box + 2);
            lua_pop(L, 1);
        }
    }
    return 1;
}

/* shared.lock(t) -> the table's RLock (a braid.threading RLock) */
static int lshared_lock(lua_State *L)
{
    braid_shared_t *t = lshared_check(L, 1);
    lbraid_push_object(L, (braid_object_t *)braid_shared_rlock(t));
    return 1;
}

/* Runs under the table's lock: t, k, fn at 1..3. Returns fn's result. */
static int lshared_update_body(lua_State *L)
{
    braid_shared_t *t = lshared_check(L, 1);
    lua_pushvalue(L, 3);
    lshared_push_get(L, t, 2);
    lua_call(L, 1, 1);
    lshared_do_set(L, t, 2, 4);
    return 1;
}

/* shared.update(t, k, fn) -> new value: t[k] = fn(t[k]) atomically; fn runs
 * in the caller's state while the table's lock is held. */
static int lshared_update(lua_State *L)
{
    braid_shared_t *t = lshared_check(L, 1);
    luaL_checkany(L, 2);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_settop(L, 3);
    lbraid_poll(L);
    braid_rlock_t *lock = braid_shared_rlock(t);
    int rc = braid_rlock_acquire(lock, BRAID_FOREVER);
    if (rc)
        return lbraid_core_error(L, rc, NULL);
    lua_pushcfunction(L, lshared_update_body);
    lua_insert(L, 1);
    int status = lua_pcall(L, 3, 1, 0);
    braid_rlock_release(lock);
    if (status != LUA_OK)
        return lua_error(L);
    return 1;
}

/* shared.totable(t) -> (+) a plain Lua table copy of a snapshot of t */
static int lshared_totable(lua_State *L);

/* ---- metamethods ---- */

/* Buffers behind t[k] and t[k] = v for scalar keys and values (upvalue 1
 * of __index and __newindex; upvalue 2 is the metatable): no scratch box
 * per access. `busy` while a value is decoded from val (a finalizer run by
 * the decoder's allocations may index a shared table again: that access
 * takes the scratch path). */
typedef struct lshared_cache {
    braid_buf_t key, val;
    int busy;
    const void *meta; /* the metatable (upvalue 2), to check box 1 by address */
} lshared_cache_t;

static int lshared_cache_gc(lua_State *L)
{
    lshared_cache_t *c = lua_touserdata(L, 1);
    braid_buf_free(&c->key);
    braid_buf_free(&c->val);
    return 0;
}

static int is_scalar(int type)
{
    return type == LUA_TNUMBER || type == LUA_TSTRING || type == LUA_TBOOLEAN;
}

/* The table at 1 (the metamethod's own metatable checked first), and the
 * cache when a scalar key (and value, at vidx > 0) can take the fast path. */
static braid_shared_t *lshared_fast(lua_State *L, int vidx, lshared_cache_t **cache)
{
    braid_shared_t *t = NULL;
    lshared_cache_t *c = lua_touserdata(L, lua_upvalueindex(1));
    if (lua_getmetatable(L, 1)) {
        if (lua_topointer(L, -1) == c->meta)
            t = (braid_shared_t *)((lbraid_box_t *)lua_touserdata(L, 1))->obj;
        lua_pop(L, 1);
    }
    if (!t)
        t = lshared_check(L, 1); /* raises with the right message */
    *cache = !c->busy && is_scalar(lua_type(L, 2)) &&
                     (vidx == 0 || lua_isnil(L, vidx) || is_scalar(lua_type(L, vidx)))
                 ? c
                 : NULL;
    return t;
}

static int lshared_index(lua_State *L)
{
    lshared_cache_t *c;
    braid_shared_t *t = lshared_fast(L, 0, &c);
    if (!c) {
        lshared_push_get(L, t, 2);
        return 1;
    }
    lshared_key(L, 2, &c->key);
    braid_buf_reset(&c->val);
    int rc = braid_shared_get(t, c->key.data, c->key.len, &c->val);
    if (rc < 0)
        return lbraid_core_error(L, rc, NULL);
    if (rc == 0) {
        lua_pushnil(L);
        return 1;
    }
    if (c->val.nobjs) { /* decoding objects may raise: a scratch box owns them */
        braid_buf_t *box = lbraid_take_scratch(L);
        braid_buf_free(box); /* it may hold memory from its last use */
        braid_buf_move(box, &c->val);
        lbraid_decode(L, box->data, box->len);
        return 1;
    }
    /* an error raised by the decoder leaves busy set: later accesses then
     * take the scratch path, still correct */
    c->busy = 1;
    lbraid_decode(L, c->val.data, c->val.len);
    c->busy = 0;
    braid_buf_reset(&c->val);
    return 1;
}

static int lshared_newindex(lua_State *L)
{
    lshared_cache_t *c;
    braid_shared_t *t = lshared_fast(L, 3, &c);
    if (!c) {
        lshared_do_set(L, t, 2, 3);
        return 0;
    }
    /* scalars: encoding them runs no Lua code */
    lshared_key(L, 2, &c->key);
    braid_buf_reset(&c->val);
    int del = lua_isnil(L, 3);
    if (lua_isinteger(L, 3))
        lbraid_encode_integer(&c->val, lua_tointeger(L, 3));
    else if (!del)
        lbraid_encode(L, 3, &c->val, "value");
    int rc = braid_shared_set(t, &c->key, del ? NULL : &c->val);
    if (rc)
        return lbraid_core_error(L, rc, NULL);
    return 0;
}

static int lshared_len(lua_State *L)
{
    int64_t n = braid_shared_len(lshared_check(L, 1));
    if (n < 0)
        return lbraid_core_error(L, (int)n, NULL);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

/* A pairs() snapshot: freed by __gc. */
typedef struct snap {
    braid_shared_pair_t *pairs;
    size_t n, i;
} snap_t;

static int lshared_snap_gc(lua_State *L)
{
    snap_t *s = lua_touserdata(L, 1);
    braid_shared_pairs_free(s->pairs, s->n);
    s->pairs = NULL;
    s->n = s->i = 0;
    return 0;
}

/* Pushes a snapshot of t. Stack: +1. */
static snap_t *lshared_push_snap(lua_State *L, braid_shared_t *t)
{
    snap_t *s = lua_newuserdatauv(L, sizeof *s, 0);
    s->pairs = NULL;
    s->n = s->i = 0;
    if (luaL_newmetatable(L, "braid.shared.snapshot")) {
        lua_pushcfunction(L, lshared_snap_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    int rc = braid_shared_snapshot(t, &s->pairs, &s->n);
    if (rc)
        lbraid_core_error(L, rc, NULL);
    return s;
}

static int lshared_snap_next(lua_State *L)
{
    snap_t *s = lua_touserdata(L, lua_upvalueindex(1));
    if (s->i >= s->n)
        return 0;
    braid_shared_pair_t *p = &s->pairs[s->i++];
    lbraid_decode(L, p->key.data, p->key.len);
    lbraid_decode(L, p->value.data, p->value.len);
    return 2;
}

/* pairs(t): iterates over a snapshot taken now; later changes (from any
 * thread, including the loop body) do not affect the iteration. */
static int lshared_pairs(lua_State *L)
{
    braid_shared_t *t = lshared_check(L, 1);
    lshared_push_snap(L, t);
    lua_pushcclosure(L, lshared_snap_next, 1);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int lshared_totable(lua_State *L)
{
    braid_shared_t *t = lshared_check(L, 1);
    snap_t *s = lshared_push_snap(L, t);
    lua_createtable(L, 0, (int)s->n);
    for (size_t i = 0; i < s->n; i++) {
        lbraid_decode(L, s->pairs[i].key.data, s->pairs[i].key.len);
        lbraid_decode(L, s->pairs[i].value.data, s->pairs[i].value.len);
        lua_rawset(L, -3);
    }
    return 1;
}

static const luaL_Reg shared_funcs[] = {
    {"table", lshared_table},
    {"lock", lshared_lock},
    {"update", lshared_update},
    {"totable", lshared_totable},
    {NULL, NULL},
};

static const luaL_Reg shared_meta[] = {
    {"__len", lshared_len},
    {"__pairs", lshared_pairs},
    {NULL, NULL},
};

int lbraid_open_shared(lua_State *L)
{
    lbraid_newmeta(L, &braid_shared_type, NULL);
    luaL_setfuncs(L, shared_meta, 0);
    lshared_cache_t *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    c->meta = lua_topointer(L, -2);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, lshared_cache_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    static const luaL_Reg access[] = {
        {"__index", lshared_index}, {"__newindex", lshared_newindex}, {NULL, NULL}};
    lua_pushvalue(L, -2); /* upvalues: the cache, the metatable */
    luaL_setfuncs(L, access, 2);
    lua_pop(L, 1);
    luaL_newlib(L, shared_funcs);
    return 1;
}
