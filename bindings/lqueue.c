/* braid.queue's C half: Queue, LifoQueue, PriorityQueue and SimpleQueue
 * boxes over core/queue.h; items are encoded outside the queue's lock. */
#include <string.h>

#include "lbraid.h"
#include "queue.h"

/* Per-state buffers behind every method (upvalue 5): put and get reuse
 * them instead of taking a to-be-closed scratch box per call, which costs
 * a dozen registry operations. Only a scalar is put through `put` (its
 * encoding runs no Lua code, so nothing can re-enter); `get` marks its
 * buffer busy while it decodes (a finalizer run by the decoder's
 * allocations may call get again: that call takes the scratch path). */
typedef struct lqueue_cache {
    braid_buf_t put, get;
    int get_busy;
    lbraid_ctx_t *ctx;   /* this state's context, looked up once */
    const void *meta[4]; /* the four kinds' metatables (upvalues 1..4) */
} lqueue_cache_t;

#define LQUEUE_CACHE lua_upvalueindex(5)

static braid_queue_t *lqueue_check_slow(lua_State *L, int idx, int simple_ok);

/* The queue at idx, of any kind (SimpleQueue only if simple_ok), for a
 * method that has this state's cache c (NULL in module functions); *kind
 * receives its kind. */
static braid_queue_t *lqueue_check_c(lua_State *L, const lqueue_cache_t *c, int idx, int simple_ok,
                                     int *kind)
{
    /* fast path: the box's metatable is one of ours (by address) */
    if (c && lua_getmetatable(L, idx)) {
        const void *meta = lua_topointer(L, -1);
        lua_pop(L, 1);
        int k = 0;
        while (k < 4 && meta != c->meta[k])
            k++;
        lbraid_box_t *box = lua_touserdata(L, idx);
        if (k < 4 && box->obj && (simple_ok || k != BRAID_QUEUE_SIMPLE)) {
            *kind = k;
            return (braid_queue_t *)box->obj;
        }
    }
    braid_queue_t *q = lqueue_check_slow(L, idx, simple_ok);
    *kind = braid_queue_kind_of((braid_object_t *)q);
    return q;
}

/* The queue at idx, of any kind (SimpleQueue only if simple_ok). */
static braid_queue_t *lqueue_check(lua_State *L, int idx, int simple_ok)
{
    int kind;
    return lqueue_check_c(L, lua_touserdata(L, LQUEUE_CACHE), idx, simple_ok, &kind);
}

static braid_queue_t *lqueue_check_slow(lua_State *L, int idx, int simple_ok)
{
    braid_object_t *obj = lbraid_to_object(L, idx);
    int kind = braid_queue_kind_of(obj);
    if (kind < 0 || (!simple_ok && kind == BRAID_QUEUE_SIMPLE)) {
        lbraid_box_t *box = lua_touserdata(L, idx);
        if (box && lua_getmetatable(L, idx)) {
            lua_getfield(L, -1, "__braid");
            const braid_object_type_t *t = lua_touserdata(L, -1);
            lua_pop(L, 2);
            if (!box->obj && t && t->destroy == braid_queue_types[0].destroy)
                lbraid_error(L, "ValueError", "%s is closed", t->name);
        }
        luaL_typeerror(L, idx, simple_ok ? "braid queue" : "braid.Queue");
    }
    return (braid_queue_t *)obj;
}

/* Deadline from (block, timeout) at idx, idx+1, as Python's queue reads
 * them: block false -> do not wait (timeout ignored); nil timeout ->
 * forever; a negative timeout -> ValueError. */
static int64_t lqueue_deadline(lua_State *L, int idx)
{
    if (lua_gettop(L) < idx)
        return BRAID_FOREVER; /* q:get(), q:put(x): the usual call */
    if (!lua_isnoneornil(L, idx) && !lua_toboolean(L, idx))
        return BRAID_QUEUE_NOWAIT;
    if (lua_isnoneornil(L, idx + 1))
        return BRAID_FOREVER;
    lua_Number t = luaL_checknumber(L, idx + 1);
    if (t != t)
        luaL_argerror(L, idx + 1, "timeout is NaN");
    if (t < 0)
        lbraid_error(L, "ValueError", "'timeout' must be a non-negative number");
    return braid_clock_deadline((double)t);
}

static int lqueue_cache_gc(lua_State *L)
{
    lqueue_cache_t *c = lua_touserdata(L, 1);
    braid_buf_free(&c->put);
    braid_buf_free(&c->get);
    return 0;
}

static lqueue_cache_t *lqueue_cache(lua_State *L)
{
    return lua_touserdata(L, LQUEUE_CACHE);
}

/* lbraid_poll, with the context pointer cached. */
static void lqueue_poll(lua_State *L, lqueue_cache_t *c)
{
    if (!c->ctx)
        c->ctx = lbraid_ctx(L);
    if (c->ctx->poll)
        c->ctx->poll(L);
}

/* Stack: item at 2. Encodes, puts, raises on failure; with soft, a full
 * queue returns -1 instead (nothing queued). */
static int lqueue_do_put(lua_State *L, lqueue_cache_t *c, braid_queue_t *q, int64_t deadline,
                         int soft)
{
    lqueue_poll(L, c);
    int t = lua_type(L, 2);
    if (t == LUA_TNUMBER || t == LUA_TSTRING || t == LUA_TBOOLEAN || t == LUA_TNIL) {
        /* the buffer stays owned by the cache if the encode raises (OOM) */
        braid_buf_reset(&c->put);
        if (t == LUA_TNUMBER && lua_isinteger(L, 2)) { /* the usual item */
            lbraid_encode_integer(&c->put, lua_tointeger(L, 2));
            if (c->put.err)
                return lbraid_core_error(L, c->put.err, "encode");
        } else {
            lbraid_encode(L, 2, &c->put, "item");
        }
        int rc = braid_queue_put(q, &c->put, deadline);
        if (rc) {
            braid_buf_reset(&c->put);
            if (soft && rc == BRAID_EFULL)
                return -1;
            return lbraid_core_error(L, rc, rc == BRAID_ETYPE ? "PriorityQueue item" : NULL);
        }
        return 0;
    }
    braid_buf_t *item = lbraid_take_scratch(L);
    lbraid_encode(L, 2, item, "item");
    int rc = braid_queue_put(q, item, deadline);
    lua_pop(L, 1); /* empties the scratch (a failed put's item too) */
    if (soft && rc == BRAID_EFULL)
        return -1;
    if (rc)
        return lbraid_core_error(L, rc, rc == BRAID_ETYPE ? "PriorityQueue item" : NULL);
    return 0;
}

/* Gets and pushes an item, raises on failure; with soft, an empty queue
 * returns -1 instead (nothing pushed). */
static int lqueue_do_get(lua_State *L, lqueue_cache_t *c, braid_queue_t *q, int64_t deadline,
                         int soft)
{
    lqueue_poll(L, c);
    if (!c->get_busy) {
        braid_buf_t *item = &c->get;
        braid_buf_reset(item);
        int rc = braid_queue_get(q, item, deadline);
        if (soft && rc == BRAID_EEMPTY)
            return -1;
        if (rc)
            return lbraid_core_error(L, rc, NULL);
        if (item->nobjs == 0) {
            /* an OOM raised by the decoder leaves get_busy set: later gets
             * then take the scratch path, still correct */
            c->get_busy = 1;
            lbraid_decode(L, item->data, item->len);
            item->len = 0;
            c->get_busy = 0;
            return 1;
        }
        /* object references: decoding may raise (stale objects), so the
         * item moves to a to-be-closed box that releases them either way */
        braid_buf_t *box = lbraid_take_scratch(L);
        braid_buf_free(box);
        braid_buf_move(box, item);
    } else {
        braid_buf_t *item = lbraid_take_scratch(L);
        int rc = braid_queue_get(q, item, deadline);
        if (soft && rc == BRAID_EEMPTY) {
            lua_pop(L, 1);
            return -1;
        }
        if (rc)
            return lbraid_core_error(L, rc, NULL);
    }
    braid_buf_t *item = lua_touserdata(L, -1);
    lbraid_decode(L, item->data, item->len);
    lua_closeslot(L, -2); /* frees the item now; the value stays on top */
    return 1;
}

/* ---- inside asyncio tasks: waits suspend the task (lbraid_wait) ----
 * Stack: 1 queue, 2 item (put only), 3..4 block/timeout, 5 deadline,
 * 6 the item's buffer (a braid.buffer userdata, kept across the wait). */

static braid_queue_t *lqueue_at1(lua_State *L)
{
    return (braid_queue_t *)((lbraid_box_t *)lua_touserdata(L, 1))->obj;
}

static int lqueue_get_op(lua_State *L)
{
    return braid_queue_get(lqueue_at1(L), lua_touserdata(L, 6), lua_tointeger(L, 5));
}

static int lqueue_get_done(lua_State *L, int rc)
{
    if (rc)
        return lbraid_core_error(L, rc, NULL);
    braid_buf_t *item = lua_touserdata(L, 6);
    lbraid_decode(L, item->data, item->len);
    braid_buf_reset(item);
    return 1;
}

static int lqueue_put_op(lua_State *L)
{
    return braid_queue_put(lqueue_at1(L), lua_touserdata(L, 6), lua_tointeger(L, 5));
}

static int lqueue_put_done(lua_State *L, int rc)
{
    if (rc)
        return lbraid_core_error(L, rc, rc == BRAID_ETYPE ? "PriorityQueue item" : NULL);
    return 0;
}

static const lbraid_waitop_t lqueue_get_wait = {lqueue_get_op, lqueue_get_done};
static const lbraid_waitop_t lqueue_put_wait = {lqueue_put_op, lqueue_put_done};

/* A blocking get/put while this state runs an asyncio loop. */
static int lqueue_wait(lua_State *L, int64_t deadline, int put)
{
    lua_settop(L, 4);
    lua_pushinteger(L, deadline);
    braid_buf_t *buf = lbraid_push_buf(L);
    if (put)
        lbraid_encode(L, 2, buf, "item");
    return lbraid_wait(L, put ? &lqueue_put_wait : &lqueue_get_wait);
}

/* Whether a blocking call must go through lqueue_wait. */
static int lqueue_in_loop(lua_State *L, lqueue_cache_t *c)
{
    if (!c->ctx)
        c->ctx = lbraid_ctx(L);
    return c->ctx->loop_running;
}

/* ---- constructors ---- */

static int lqueue_new(lua_State *L, braid_queue_kind_t kind)
{
    lua_Integer maxsize = 0;
    int opts = lua_istable(L, 1);
    if (opts) {
        lua_getfield(L, 1, "maxsize");
        maxsize = luaL_optinteger(L, -1, 0);
        lua_pop(L, 1);
        lua_getfield(L, 1, "name");
        if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(
                L, "bad option 'name' (string expected, got %s)", luaL_typename(L, -1));
        lua_pop(L, 1);
    } else if (kind != BRAID_QUEUE_SIMPLE) {
        maxsize = luaL_optinteger(L, 1, 0);
    }
    braid_queue_t *q;
    int rc = braid_queue_new(kind, maxsize < 0 ? 0 : (long)maxsize, &q);
    if (rc)
        return lbraid_core_error(L, rc, "Queue");
    if (opts)
        lbraid_apply_name(L, 1, (braid_object_t *)q);
    lbraid_push_object(L, (braid_object_t *)q);
    braid_queue_release(q);
    return 1;
}

static int lqueue_queue(lua_State *L)
{
    return lqueue_new(L, BRAID_QUEUE_FIFO);
}

static int lqueue_lifo(lua_State *L)
{
    return lqueue_new(L, BRAID_QUEUE_LIFO);
}

static int lqueue_priority(lua_State *L)
{
    return lqueue_new(L, BRAID_QUEUE_PRIORITY);
}

static int lqueue_simple(lua_State *L)
{
    return lqueue_new(L, BRAID_QUEUE_SIMPLE);
}

/* ---- methods ---- */

/* q:put(item, block, timeout) */
static int lqueue_put(lua_State *L)
{
    lqueue_cache_t *c = lqueue_cache(L);
    int kind;
    braid_queue_t *q = lqueue_check_c(L, c, 1, 1, &kind);
    int64_t deadline = BRAID_FOREVER; /* q:put(x): the usual call */
    if (lua_gettop(L) != 2) {
        lua_settop(L, 4);
        if (kind != BRAID_QUEUE_SIMPLE)
            deadline = lqueue_deadline(L, 3);
    }
    if (kind == BRAID_QUEUE_SIMPLE)
        deadline = BRAID_QUEUE_NOWAIT; /* never blocks; block/timeout ignored */
    if (deadline != BRAID_QUEUE_NOWAIT && lqueue_in_loop(L, c)) {
        int n = lqueue_do_put(L, c, q, BRAID_QUEUE_NOWAIT, 1); /* room now: no wait */
        return n >= 0 ? n : lqueue_wait(L, deadline, 1);
    }
    return lqueue_do_put(L, c, q, deadline, 0);
}

/* q:put_nowait(item) */
static int lqueue_put_nowait(lua_State *L)
{
    lqueue_cache_t *c = lqueue_cache(L);
    int kind;
    braid_queue_t *q = lqueue_check_c(L, c, 1, 1, &kind);
    lua_settop(L, 2);
    return lqueue_do_put(L, c, q, BRAID_QUEUE_NOWAIT, 0);
}

/* q:get(block, timeout) -> item */
static int lqueue_get(lua_State *L)
{
    lqueue_cache_t *c = lqueue_cache(L);
    int kind;
    braid_queue_t *q = lqueue_check_c(L, c, 1, 1, &kind);
    int64_t deadline = lqueue_deadline(L, 2);
    if (deadline != BRAID_QUEUE_NOWAIT && lqueue_in_loop(L, c)) {
        int n = lqueue_do_get(L, c, q, BRAID_QUEUE_NOWAIT, 1); /* an item now: no wait */
        if (n >= 0)
            return n;
        lua_settop(L, 3);
        lua_pushnil(L); /* get has no item: the slots of put */
        lua_insert(L, 2);
        return lqueue_wait(L, deadline, 0);
    }
    return lqueue_do_get(L, c, q, deadline, 0);
}

/* q:get_nowait() -> item */
static int lqueue_get_nowait(lua_State *L)
{
    lqueue_cache_t *c = lqueue_cache(L);
    int kind;
    braid_queue_t *q = lqueue_check_c(L, c, 1, 1, &kind);
    return lqueue_do_get(L, c, q, BRAID_QUEUE_NOWAIT, 0);
}

static int lqueue_qsize(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)braid_queue_qsize(lqueue_check(L, 1, 1)));
    return 1;
}

static int lqueue_empty(lua_State *L)
{
    lua_pushboolean(L, braid_queue_empty(lqueue_check(L, 1, 1)));
    return 1;
}

static int lqueue_full(lua_State *L)
{
    lua_pushboolean(L, braid_queue_full(lqueue_check(L, 1, 0)));
    return 1;
}

static int lqueue_maxsize(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)braid_queue_maxsize(lqueue_check(L, 1, 0)));
    return 1;
}

static int lqueue_task_done(lua_State *L)
{
    if (braid_queue_task_done(lqueue_check(L, 1, 0)) != 0)
        return lbraid_error(L, "ValueError", "task_done() called too many times");
    return 0;
}

/* q:join([timeout]) -> true, or false when the (+) timeout expires */
static int lqueue_join_done(lua_State *L, int rc)
{
    if (rc == BRAID_ETIMEOUT) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (rc)
        return lbraid_core_error(L, rc, NULL);
    lua_pushboolean(L, 1);
    return 1;
}

/* Stack in a task: 1 queue, 2 deadline. */
static int lqueue_join_op(lua_State *L)
{
    return braid_queue_join(lqueue_at1(L), lua_tointeger(L, 2));
}

static const lbraid_waitop_t lqueue_join_wait = {lqueue_join_op, lqueue_join_done};

static int lqueue_join(lua_State *L)
{
    braid_queue_t *q = lqueue_check(L, 1, 0);
    int64_t deadline = lbraid_opt_deadline(L, 2);
    if (deadline == BRAID_QUEUE_NOWAIT)
        deadline = 1;
    lbraid_poll(L);
    if (lqueue_in_loop(L, lqueue_cache(L))) {
        lua_settop(L, 1);
        lua_pushinteger(L, deadline);
        return lbraid_wait(L, &lqueue_join_wait);
    }
    return lqueue_join_done(L, braid_queue_join(q, deadline));
}

/* q:shutdown(immediate) */
static int lqueue_shutdown(lua_State *L)
{
    braid_queue_shutdown(lqueue_check(L, 1, 0), lua_toboolean(L, 2));
    return 0;
}

static int lqueue_is_shutdown(lua_State *L)
{
    lua_pushboolean(L, braid_queue_is_shutdown(lqueue_check(L, 1, 0)));
    return 1;
}

static const luaL_Reg queue_methods[] = {
    {"put", lqueue_put},
    {"get", lqueue_get},
    {"put_nowait", lqueue_put_nowait},
    {"get_nowait", lqueue_get_nowait},
    {"qsize", lqueue_qsize},
    {"empty", lqueue_empty},
    {"full", lqueue_full},
    {"maxsize", lqueue_maxsize},
    {"task_done", lqueue_task_done},
    {"join", lqueue_join},
    {"shutdown", lqueue_shutdown},
    {"is_shutdown", lqueue_is_shutdown},
    {NULL, NULL},
};

static const luaL_Reg simple_methods[] = {
    {"put", lqueue_put},
    {"get", lqueue_get},
    {"put_nowait", lqueue_put_nowait},
    {"get_nowait", lqueue_get_nowait},
    {"qsize", lqueue_qsize},
    {"empty", lqueue_empty},
    {NULL, NULL},
};

static const luaL_Reg queue_funcs[] = {
    {"Queue", lqueue_queue},
    {"LifoQueue", lqueue_lifo},
    {"PriorityQueue", lqueue_priority},
    {"SimpleQueue", lqueue_simple},
    {NULL, NULL},
};

int lbraid_open_queue(lua_State *L)
{
    int base = lua_gettop(L);
    for (int k = 0; k < 4; k++)
        lbraid_newmeta(L, &braid_queue_types[k], NULL);
    lqueue_cache_t *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    braid_buf_init(&c->put);
    braid_buf_init(&c->get);
    for (int k = 0; k < 4; k++)
        c->meta[k] = lua_topointer(L, base + 1 + k); /* the registry anchors them */
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, lqueue_cache_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    for (int k = 0; k < 4; k++) {
        lua_getfield(L, base + 1 + k, "__index");
        for (int m = 0; m < 5; m++)
            lua_pushvalue(L, base + 1 + m);
        luaL_setfuncs(L, k == BRAID_QUEUE_SIMPLE ? simple_methods : queue_methods, 5);
        lua_pop(L, 1);
    }
    lua_settop(L, base);
    luaL_newlib(L, queue_funcs);
    return 1;
}
