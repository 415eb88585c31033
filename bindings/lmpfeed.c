/* braid.multiprocessing, the queues' writing side: a put that never waits
 * for the reader (core/feed.c's feeder thread), its flush and opt-out. */
#include <errno.h>
#include <string.h>

#include "lbraid.h"
#include "lprocess.h"
#include "shm.h"

static braid_shm_t *check_kind(lua_State *L, int idx, int kind)
{
    braid_shm_t *s = (braid_shm_t *)lbraid_check_object(L, idx, &braid_shm_types[kind]);
    if (s->fd < 0)
        lbraid_error(L, "OSError", "handle is closed");
    return s;
}

/* _conn_put's per-state cache (its upvalue): a scalar item's buffer (its
 * encoding runs no Lua code, so nothing re-enters) and the connection's and
 * lock's metatables, so the hot path does no registry lookup. */
typedef struct lfeed_cache {
    braid_buf_t put;
    const void *meta[3];
} lfeed_cache_t;

static int lfeed_cache_gc(lua_State *L)
{
    braid_buf_free(&((lfeed_cache_t *)lua_touserdata(L, 1))->put);
    return 0;
}

/* check_kind, by the metatable's address once one box of the kind was seen */
static braid_shm_t *check_cached(lua_State *L, int idx, int kind, lfeed_cache_t *fc, int slot)
{
    if (lua_getmetatable(L, idx)) {
        const void *m = lua_topointer(L, -1);
        lua_pop(L, 1);
        if (m == fc->meta[slot]) {
            braid_shm_t *s = (braid_shm_t *)((lbraid_box_t *)lua_touserdata(L, idx))->obj;
            if (s && s->fd >= 0)
                return s;
        }
    }
    braid_shm_t *s = check_kind(L, idx, kind); /* raises unless it is one */
    lua_getmetatable(L, idx);
    fc->meta[slot] = lua_topointer(L, -1);
    lua_pop(L, 1);
    return s;
}

/* _conn_put(conn, item, lock, ring): sends item on conn as one message
 * under the shared lock (or into the queue's ring, mpring.c), or leaves it
 * to the connection's feeder thread */
static int lconn_put(lua_State *L)
{
    lfeed_cache_t *fc = lua_touserdata(L, lua_upvalueindex(1));
    braid_shm_t *c = check_cached(L, 1, BRAID_SHM_CONN, fc, 0);
    luaL_checkany(L, 2);
    braid_shm_t *lock = check_cached(L, 3, BRAID_SHM_LOCK, fc, 1);
    braid_shm_t *ring = lua_isnoneornil(L, 4) ? NULL : check_cached(L, 4, BRAID_SHM_RING, fc, 2);
    if (!(c->flags & 2))
        return lbraid_error(L, "OSError", "connection is read-only");
    lua_settop(L, 4);
    braid_buf_t *buf;
    int t = lua_type(L, 2);
    if (t == LUA_TNUMBER || t == LUA_TSTRING || t == LUA_TBOOLEAN || t == LUA_TNIL) {
        buf = &fc->put; /* stays owned by the cache if the encode raises (OOM) */
        braid_buf_reset(buf);
    } else {
        buf = lbraid_take_scratch(L);
    }
    lbraid_encode(L, 2, buf, "item");
    braid_object_t *bad = NULL;
    int rc = braid_conn_put_ring(c, lock, ring, buf, &bad); /* first: it sets bad */
    return lbraid_mp_send_result(L, rc, bad, "put");
}

/* _encode_plain(v) -> its encoded bytes, or nil when it carries objects
 * (shared memory, descriptors) that only a message can carry */
static int lencode_plain(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    braid_buf_t *buf = lbraid_take_scratch(L);
    lbraid_encode(L, 1, buf, "item");
    if (buf->nobjs)
        lua_pushnil(L);
    else
        lua_pushlstring(L, (const char *)buf->data, buf->len);
    return 1;
}

/* _conn_put_raw(conn, bytes, lock, ring): as _conn_put, of a value _encode_plain
 * already encoded (the value is sent once encoded, not encoded again) */
static int lconn_put_raw(lua_State *L)
{
    braid_shm_t *c = check_kind(L, 1, BRAID_SHM_CONN);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    braid_shm_t *lock = check_kind(L, 3, BRAID_SHM_LOCK);
    braid_shm_t *ring = lua_isnoneornil(L, 4) ? NULL : check_kind(L, 4, BRAID_SHM_RING);
    if (!(c->flags & 2))
        return lbraid_error(L, "OSError", "connection is read-only");
    if (n == 0)
        return luaL_argerror(L, 2, "no bytes");
    braid_buf_t buf = {.data = (uint8_t *)s, .len = n};
    braid_object_t *bad = NULL;
    int rc = braid_conn_put_ring(c, lock, ring, &buf, &bad);
    return lbraid_mp_send_result(L, rc, bad, "put");
}

/* _conn_get(conn, wait, ring) -> true, item; or false when nothing arrived
 * within wait seconds (nil: forever). The first byte is taken without a
 * poll when it is there (a Queue's get: no poll before the receive); with
 * the queue's ring, its items first (mpring.c). */
static int lconn_get(lua_State *L)
{
    braid_shm_t *c = check_kind(L, 1, BRAID_SHM_CONN);
    if (!(c->flags & 1))
        return lbraid_error(L, "OSError", "connection is write-only");
    int64_t deadline = lbraid_opt_deadline(L, 2);
    braid_shm_t *ring = lua_isnoneornil(L, 3) ? NULL : check_kind(L, 3, BRAID_SHM_RING);
    lbraid_poll(L);
    lua_settop(L, 1);
    braid_buf_t *buf = lbraid_take_scratch(L);
    int rc = ring ? braid_ring_get(c, ring, buf, deadline, lbraid_ctx(L)->waiter)
                  : braid_conn_recv(c, buf, deadline, lbraid_ctx(L)->waiter);
    if (rc == BRAID_ETIMEOUT) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (rc == BRAID_EOS)
        return lbraid_error(L, "OSError", "recv: %s", strerror(errno));
    if (rc)
        return lbraid_core_error(L, rc, rc == BRAID_EEOF ? "recv" : NULL);
    lua_pushboolean(L, 1);
    lbraid_decode(L, buf->data, buf->len);
    return 2;
}

/* _conn_flush(conn, timeout) -> true once its feeder has sent everything */
static int lconn_flush(lua_State *L)
{
    braid_shm_t *c = (braid_shm_t *)lbraid_check_object(L, 1, &braid_shm_types[BRAID_SHM_CONN]);
    lua_pushboolean(L, braid_conn_flush(c, lbraid_opt_deadline(L, 2)) == 0);
    return 1;
}

/* _conn_nojoin(conn): the process's exit does not wait for its feeder */
static int lconn_nojoin(lua_State *L)
{
    braid_shm_t *c = (braid_shm_t *)lbraid_check_object(L, 1, &braid_shm_types[BRAID_SHM_CONN]);
    braid_conn_nojoin(c);
    return 0;
}

/* _Ring() -> a new ring for a Queue (mpring.c) */
static int lring_new(lua_State *L)
{
    braid_shm_t *s;
    int rc = braid_shm_new(BRAID_SHM_RING, braid_ring_size(), &s);
    if (rc == BRAID_EOS)
        return lbraid_error(L, "OSError", "shared memory: %s", strerror(errno));
    if (rc)
        return lbraid_core_error(L, rc, NULL);
    braid_ring_init(s);
    lbraid_push_object(L, &s->base);
    braid_object_release(&s->base);
    return 1;
}

static const luaL_Reg lfeed_cached[] = {
    {"_conn_put", lconn_put},
    {NULL, NULL},
};

static const luaL_Reg lfeed_funcs[] = {
    {"_conn_put_raw", lconn_put_raw},
    {"_conn_get", lconn_get},
    {"_encode_plain", lencode_plain},
    {"_conn_flush", lconn_flush},
    {"_conn_nojoin", lconn_nojoin},
    {"_Ring", lring_new},
    {NULL, NULL},
};

static const luaL_Reg lring_methods[] = {{NULL, NULL}};

void lbraid_mp_open_feed(lua_State *L, int mod)
{
    lbraid_newmeta(L, &braid_shm_types[BRAID_SHM_RING], lring_methods);
    lua_pop(L, 1);
    lua_pushvalue(L, mod);
    luaL_setfuncs(L, lfeed_funcs, 0);
    lfeed_cache_t *fc = lua_newuserdatauv(L, sizeof *fc, 0);
    memset(fc, 0, sizeof *fc);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, lfeed_cache_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    luaL_setfuncs(L, lfeed_cached, 1);
    lua_pop(L, 1);
}
