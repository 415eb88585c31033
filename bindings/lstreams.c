/* braid.asyncio streams, C half: boxes for core/stream.h streams and
 * resolvers, and their waits as lbraid_wait ops (a task suspends, the
 * libuv callback wakes it). The Lua half is scripts/braid/asyncio_streams.lua. */
#include <arpa/inet.h>
#include <stddef.h>
#include <string.h>

#include "lbraid.h"
#include "loop.h"
#include "stream.h"

#define STREAM_META "braid.asyncio.stream"

static const char STREAM_TAG; /* every stream box starts with its address */

typedef struct lstream {
    const char *tag; /* &STREAM_TAG: the cheap check below */
    braid_stream_t *s;
} lstream_t;

/* The stream of box b, or a ValueError once it is released. */
static braid_stream_t *box_stream(lua_State *L, const lstream_t *b)
{
    if (!b->s)
        lbraid_error(L, "ValueError", "stream is released");
    return b->s;
}

/* The stream box at idx. Every read and write checks its box several
 * times; luaL_checkudata's lookup of the metatable by name costs more than
 * the rest of a small write, so a box is known by its size and tag (only
 * this file makes full userdata holding &STREAM_TAG). */
static braid_stream_t *check_stream(lua_State *L, int idx)
{
    lstream_t *b = lbraid_to_tagged(L, idx, sizeof *b, offsetof(lstream_t, tag), &STREAM_TAG);
    if (!b)
        b = luaL_checkudata(L, idx, STREAM_META); /* raises */
    return box_stream(L, b);
}

void lstreams_push(lua_State *L, braid_stream_t *s)
{
    lstream_t *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->tag = &STREAM_TAG;
    b->s = s;
    luaL_setmetatable(L, STREAM_META);
}

static int lstream_gc(lua_State *L)
{
    lstream_t *b = luaL_checkudata(L, 1, STREAM_META);
    braid_stream_release(b->s);
    b->s = NULL;
    return 0;
}

static int is_connection_error(int rc)
{
    return rc == UV_ECONNREFUSED || rc == UV_ECONNRESET || rc == UV_ECONNABORTED ||
           rc == UV_EPIPE || rc == UV_ENOTCONN || rc == UV_ETIMEDOUT || rc == UV_EHOSTUNREACH ||
           rc == UV_ENETUNREACH;
}

/* Raises the error for rc: libuv codes become ConnectionError/OSError
 * objects with .errno (its name, "ECONNREFUSED") and a message. */
int lstreams_raise(lua_State *L, int rc, const char *what)
{
    if (rc == UV_EBUSY)
        return lbraid_error(L,
                            "RuntimeError",
                            "%s: another task is already waiting on this stream, or the call "
                            "was made outside an asyncio task",
                            what);
    lbraid_push_error(L,
                      is_connection_error(rc) ? "ConnectionError" : "OSError",
                      lua_pushfstring(L, "%s: %s", what, uv_strerror(rc)));
    lua_remove(L, -2);
    lua_pushstring(L, uv_err_name(rc));
    lua_setfield(L, -2, "errno");
    lua_pushinteger(L, -rc);
    lua_setfield(L, -2, "code");
    return lua_error(L);
}

static braid_waiter_t *cur(void)
{
    return braid_waiter_peek_current();
}

/* _tcp_new(loop, family ("inet"|"inet6"|nil), reuseport) -> stream */
static int lstreams_tcp_new(lua_State *L)
{
    uv_loop_t *uv = braid_loop_uv(lasyncio_check_loop(L, 1));
    const char *fam = luaL_optstring(L, 2, NULL);
    int family = !fam ? AF_UNSPEC : strcmp(fam, "inet6") == 0 ? AF_INET6 : AF_INET;
    braid_stream_t *s;
    int rc = braid_stream_new(uv, BRAID_STREAM_TCP, family, lua_toboolean(L, 3), &s);
    if (rc)
        return lstreams_raise(L, rc, "socket");
    lstreams_push(L, s);
    return 1;
}

/* _pipe_new(loop) -> stream */
static int lstreams_pipe_new(lua_State *L)
{
    uv_loop_t *uv = braid_loop_uv(lasyncio_check_loop(L, 1));
    braid_stream_t *s;
    int rc = braid_stream_new(uv, BRAID_STREAM_PIPE, AF_UNSPEC, 0, &s);
    if (rc)
        return lstreams_raise(L, rc, "socket");
    lstreams_push(L, s);
    return 1;
}

/* a sockaddr carried as a Lua string */
static const struct sockaddr *to_sockaddr(lua_State *L, int idx, struct sockaddr_storage *ss)
{
    size_t len;
    const char *p = luaL_checklstring(L, idx, &len);
    if (len > sizeof *ss || len < sizeof(struct sockaddr_in))
        luaL_argerror(L, idx, "bad address");
    memset(ss, 0, sizeof *ss);
    memcpy(ss, p, len);
    return (const struct sockaddr *)ss;
}

/* _connect(stream, sockaddr or path) */
static int lstreams_connect(lua_State *L)
{
    braid_stream_t *s = check_stream(L, 1);
    struct sockaddr_storage ss;
    int rc;
    if (braid_stream_kind(s) == BRAID_STREAM_TCP)
        rc = braid_stream_connect(s, to_sockaddr(L, 2, &ss), NULL);
    else
        rc = braid_stream_connect(s, NULL, luaL_checkstring(L, 2));
    if (rc)
        return lstreams_raise(L, rc, "connect");
    return 0;
}

static int connect_op(lua_State *L)
{
    return braid_stream_connect_wait(check_stream(L, 1), cur());
}

static int connect_done(lua_State *L, int rc)
{
    if (rc) {
        const char *to = luaL_optstring(L, 2, "?");
        return lstreams_raise(L, rc, lua_pushfstring(L, "connect to %s", to));
    }
    return 0;
}

static const lbraid_waitop_t CONNECT_OP = {connect_op, connect_done};

/* _connect_wait(stream, what) */
static int lstreams_connect_wait(lua_State *L)
{
    return lbraid_wait(L, &CONNECT_OP);
}

/* _listen(stream, sockaddr or path, backlog) */
static int lstreams_listen(lua_State *L)
{
    braid_stream_t *s = check_stream(L, 1);
    struct sockaddr_storage ss;
    int backlog = (int)luaL_optinteger(L, 3, 100);
    int rc;
    if (braid_stream_kind(s) == BRAID_STREAM_TCP)
        rc = braid_stream_listen(s, to_sockaddr(L, 2, &ss), NULL, backlog);
    else
        rc = braid_stream_listen(s, NULL, luaL_checkstring(L, 2), backlog);
    if (rc)
        return lstreams_raise(L, rc, "listen");
    return 0;
}

static int accept_op(lua_State *L)
{
    return braid_stream_accept_wait(check_stream(L, 1), cur());
}

static int accept_done(lua_State *L, int rc)
{
    braid_stream_t *c;
    if (rc == 0)
        rc = braid_stream_accept(check_stream(L, 1), &c);
    if (rc == UV_ECANCELED) {
        lua_pushnil(L); /* the listener was closed */
        return 1;
    }
    if (rc)
        return lstreams_raise(L, rc, "accept");
    lstreams_push(L, c);
    return 1;
}

static const lbraid_waitop_t ACCEPT_OP = {accept_op, accept_done};

/* _accept(listener) -> stream, or nil once the listener is closed */
static int lstreams_accept(lua_State *L)
{
    return lbraid_wait(L, &ACCEPT_OP);
}

/* ---- reading ---- */

enum { READ_SOME, READ_ALL, READ_EXACTLY, READ_UNTIL, READ_LINE };

/* The stream of a read or drain in progress: its box at 1 was checked
 * when the call began (the op runs again at each wake-up). */
static braid_stream_t *wait_stream(lua_State *L)
{
    return box_stream(L, lua_touserdata(L, 1));
}

/* stack: stream, n or sep, mode */
static int read_op(lua_State *L)
{
    braid_stream_t *s = wait_stream(L);
    int mode = (int)lua_tointeger(L, 3);
    switch (mode) {
    case READ_SOME:
        return braid_stream_read_wait(s, 1, NULL, 0, cur());
    case READ_ALL:
        return braid_stream_read_wait(s, SIZE_MAX, NULL, 0, cur());
    case READ_EXACTLY:
        return braid_stream_read_wait(s, (size_t)lua_tointeger(L, 2), NULL, 0, cur());
    default: {
        size_t seplen;
        const char *sep = lua_tolstring(L, 2, &seplen);
        return braid_stream_read_wait(s, 0, sep, seplen, cur());
    }
    }
}

static int raise_read_error(lua_State *L, braid_stream_t *s)
{
    return lstreams_raise(L, braid_stream_read_error(s), "read");
}

/* raises kind with .partial (the first n buffered bytes, consumed when
 * consume) and field/value */
static int raise_partial(lua_State *L, braid_stream_t *s, const char *kind, const char *msg,
                         size_t n, int consume, const char *field, lua_Integer value, int has)
{
    size_t have;
    const char *p = braid_stream_peek(s, &have);
    lbraid_push_error(L, kind, msg);
    lua_pushlstring(L, p, n < have ? n : have);
    lua_setfield(L, -2, "partial");
    if (has) {
        lua_pushinteger(L, value);
        lua_setfield(L, -2, field);
    }
    if (consume)
        braid_stream_consume(s, n);
    return lua_error(L);
}

static int read_done(lua_State *L, int rc)
{
    braid_stream_t *s = wait_stream(L);
    if (rc)
        return lstreams_raise(L, rc, "read");
    int mode = (int)lua_tointeger(L, 3);
    size_t have;
    const char *p = braid_stream_peek(s, &have);
    switch (mode) {
    case READ_SOME: {
        size_t n = (size_t)lua_tointeger(L, 2);
        if (have == 0 && braid_stream_read_error(s))
            return raise_read_error(L, s);
        n = n < have ? n : have;
        lua_pushlstring(L, p, n);
        braid_stream_consume(s, n);
        return 1;
    }
    case READ_ALL:
        if (braid_stream_read_error(s))
            return raise_read_error(L, s);
        lua_pushlstring(L, p, have);
        braid_stream_consume(s, have);
        return 1;
    case READ_EXACTLY: {
        size_t n = (size_t)lua_tointeger(L, 2);
        if (have < n)
            return raise_partial(
                L,
                s,
                "IncompleteRead",
                lua_pushfstring(
                    L, "%d bytes read on a total of %d expected bytes", (int)have, (int)n),
                have,
                1,
                "expected",
                (lua_Integer)n,
                1);
        lua_pushlstring(L, p, n);
        braid_stream_consume(s, n);
        return 1;
    }
    default: {
        size_t seplen, limit = braid_stream_limit(s);
        const char *sep = lua_tolstring(L, 2, &seplen);
        const char *at = have >= seplen ? memmem(p, have, sep, seplen) : NULL;
        int line = mode == READ_LINE;
        if (at) {
            size_t end = (size_t)(at - p) + seplen;
            if (end > limit) {
                if (line) {
                    braid_stream_consume(s, end);
                    return lbraid_error(
                        L, "LimitOverrun", "Separator is found, but chunk is longer than limit");
                }
                return raise_partial(L,
                                     s,
                                     "LimitOverrun",
                                     "Separator is found, but chunk is longer than limit",
                                     0,
                                     0,
                                     "consumed",
                                     (lua_Integer)(at - p),
                                     1);
            }
            lua_pushlstring(L, p, end);
            braid_stream_consume(s, end);
            return 1;
        }
        if (have > limit) {
            if (line) {
                braid_stream_consume(s, have);
                return lbraid_error(
                    L, "LimitOverrun", "Separator is not found, and chunk exceed the limit");
            }
            return raise_partial(L,
                                 s,
                                 "LimitOverrun",
                                 "Separator is not found, and chunk exceed the limit",
                                 0,
                                 0,
                                 "consumed",
                                 (lua_Integer)have,
                                 1);
        }
        /* EOF without the separator */
        if (have == 0 && braid_stream_read_error(s))
            return raise_read_error(L, s);
        if (line) {
            lua_pushlstring(L, p, have);
            braid_stream_consume(s, have);
            return 1;
        }
        return raise_partial(
            L,
            s,
            "IncompleteRead",
            lua_pushfstring(L, "%d bytes read on a total of undefined expected bytes", (int)have),
            have,
            1,
            NULL,
            0,
            0);
    }
    }
}

static const lbraid_waitop_t READ_OP = {read_op, read_done};

/* _read(stream, mode, n or sep) */
static int lstreams_read(lua_State *L)
{
    check_stream(L, 1);
    lua_settop(L, 3);
    lua_rotate(L, 2, 1); /* read_op's order */
    return lbraid_wait(L, &READ_OP);
}

static int lstreams_at_eof(lua_State *L)
{
    lua_pushboolean(L, braid_stream_at_eof(check_stream(L, 1)));
    return 1;
}

static int lstreams_set_limit(lua_State *L)
{
    braid_stream_t *s = check_stream(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n > 0, 2, "limit must be positive");
    braid_stream_set_limit(s, (size_t)n);
    return 0;
}

static int lstreams_limit(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)braid_stream_limit(check_stream(L, 1)));
    return 1;
}

/* ---- writing ---- */

static int write_to(lua_State *L, braid_stream_t *s)
{
    size_t len;
    const char *p = luaL_checklstring(L, 2, &len);
    int rc = braid_stream_write(s, p, len);
    if (rc)
        return lstreams_raise(L, rc, "write");
    return 0;
}

/* _write(stream, data) */
static int lstreams_write(lua_State *L)
{
    return write_to(L, check_stream(L, 1));
}

static int lstreams_shutdown(lua_State *L)
{
    int rc = braid_stream_shutdown(check_stream(L, 1));
    if (rc)
        return lstreams_raise(L, rc, "write_eof");
    return 0;
}

static int drain_op(lua_State *L)
{
    return braid_stream_drain_wait(wait_stream(L), cur());
}

static int drain_done(lua_State *L, int rc)
{
    if (rc)
        return lstreams_raise(L, rc, "drain");
    return 0;
}

static const lbraid_waitop_t DRAIN_OP = {drain_op, drain_done};

/* drain on the (checked) stream box at 1 */
static int drain_on(lua_State *L, braid_stream_t *s)
{
    if (braid_stream_drain_ready(s))
        return 0;
    lua_settop(L, 1);
    return lbraid_wait(L, &DRAIN_OP);
}

/* _drain(stream): returns at once, without the wait's machinery, while
 * the write buffer is under the high-water mark (as Python's drain). */
static int lstreams_drain(lua_State *L)
{
    return drain_on(L, check_stream(L, 1));
}

/* _set_water(stream, high, low) */
static int lstreams_set_water(lua_State *L)
{
    braid_stream_t *s = check_stream(L, 1);
    lua_Integer high = luaL_checkinteger(L, 2), low = luaL_optinteger(L, 3, high / 4);
    luaL_argcheck(L, high >= 0 && low >= 0 && low <= high, 2, "high must be >= low must be >= 0");
    braid_stream_set_water(s, (size_t)high, (size_t)low);
    return 0;
}

static int lstreams_write_size(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)braid_stream_write_size(check_stream(L, 1)));
    return 1;
}

/* ---- closing ---- */

static int lstreams_close(lua_State *L)
{
    lstream_t *b = luaL_checkudata(L, 1, STREAM_META);
    if (b->s)
        braid_stream_close(b->s);
    return 0;
}

static int lstreams_is_closing(lua_State *L)
{
    lstream_t *b = luaL_checkudata(L, 1, STREAM_META);
    lua_pushboolean(L, !b->s || braid_stream_is_closing(b->s));
    return 1;
}

static int close_op(lua_State *L)
{
    return braid_stream_close_wait(check_stream(L, 1), cur());
}

static int close_done(lua_State *L, int rc)
{
    if (rc)
        return lstreams_raise(L, rc, "wait_closed");
    return 0;
}

static const lbraid_waitop_t CLOSE_OP = {close_op, close_done};

static int lstreams_close_wait(lua_State *L)
{
    lua_settop(L, 1);
    return lbraid_wait(L, &CLOSE_OP);
}

/* _name(stream, peer) -> host, port (TCP) or path (pipe), or nil */
static int lstreams_name(lua_State *L)
{
    braid_stream_t *s = check_stream(L, 1);
    struct sockaddr_storage ss;
    char path[1024];
    int rc = braid_stream_name(s, lua_toboolean(L, 2), &ss, path, sizeof path);
    if (rc)
        return 0;
    if (braid_stream_kind(s) == BRAID_STREAM_PIPE) {
        lua_pushstring(L, path);
        return 1;
    }
    char host[64];
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, host, sizeof host);
        lua_pushstring(L, host);
        lua_pushinteger(L, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, host, sizeof host);
        lua_pushstring(L, host);
        lua_pushinteger(L, ntohs(a->sin_port));
    }
    return 2;
}

/* _handle_count(loop) -> libuv handles held by the loop (streams, listeners) */
static int lstreams_handle_count(lua_State *L)
{
    lua_pushinteger(L, braid_loop_handle_count(lasyncio_check_loop(L, 1)));
    return 1;
}

/* ---- the hot reader/writer methods, called on the Lua objects ----
 * (asyncio_streams.lua installs them: a Lua method frame around the C
 * call cost more than the C did). self._s is the stream box; errors name
 * the method as the Lua methods did. */

/* What a bound method knows in C (its upvalue 3): the address of its
 * object and its stream box, which upvalues 2 and 4 hold (so neither
 * address is reused while the method lives). One lua_touserdata and one
 * lua_topointer tell a call on its own object: less than comparing two
 * values through the API. */
typedef struct bound {
    const void *self;
    lstream_t *box;
} bound_t;

/* The stream of self at 1; self is replaced there by its stream box
 * (checked) unless box is 0 and the method is bound. A method bound to its
 * object (_bind_reader, _bind_writer) has a bound_t as upvalue 3 and its
 * box as upvalue 4; the generic ones look up self._s, the key "_s" being
 * their upvalue 1 (lua_getfield would intern the C string at each call). */
static braid_stream_t *self_stream_at(lua_State *L, int box)
{
    /* (a generic method's upvalue 3 is none: NULL) */
    const bound_t *bd = lua_touserdata(L, lua_upvalueindex(3));
    if (bd && bd->self == lua_topointer(L, 1)) {
        braid_stream_t *s = box_stream(L, bd->box);
        if (box)
            lua_copy(L, lua_upvalueindex(4), 1);
        return s;
    }
    if (lua_type(L, 1) != LUA_TTABLE)
        luaL_typeerror(L, 1, "stream reader or writer");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_gettable(L, 1);
    lua_replace(L, 1);
    return check_stream(L, 1);
}

static braid_stream_t *self_stream(lua_State *L)
{
    return self_stream_at(L, 1);
}

static lua_Integer check_int(lua_State *L, int idx, const char *what)
{
    int isint;
    lua_Integer n = lua_tointegerx(L, idx, &isint);
    if (!isint || lua_type(L, idx) != LUA_TNUMBER)
        luaL_error(L,
                   "bad argument #%d to '%s' (integer expected, got %s)",
                   idx - 1,
                   what,
                   lua_type(L, idx) == LUA_TNUMBER ? "float" : luaL_typename(L, idx));
    return n;
}

/* reader:read(n = -1) */
static int lstreams_m_read(lua_State *L)
{
    lua_settop(L, 2);
    lua_Integer n = lua_isnil(L, 2) ? -1 : check_int(L, 2, "read");
    self_stream(L);
    if (n == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    lua_pushinteger(L, n < 0 ? READ_ALL : READ_SOME);
    return lbraid_wait(L, &READ_OP);
}

/* reader:readexactly(n) */
static int lstreams_m_readexactly(lua_State *L)
{
    lua_settop(L, 2);
    lua_Integer n = check_int(L, 2, "readexactly");
    if (n < 0)
        return lbraid_error(L, "ValueError", "readexactly size can not be less than zero");
    self_stream(L);
    if (n == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    lua_pushinteger(L, READ_EXACTLY);
    return lbraid_wait(L, &READ_OP);
}

/* writer:write(data) */
static int lstreams_m_write(lua_State *L)
{
    if (lua_type(L, 2) != LUA_TSTRING)
        return luaL_error(
            L, "bad argument #1 to 'write' (string expected, got %s)", luaL_typename(L, 2));
    return write_to(L, self_stream_at(L, 0));
}

/* writer:drain(): under the mark (the common case) without moving the
 * box to 1, which only the wait needs */
static int lstreams_m_drain(lua_State *L)
{
    braid_stream_t *s = self_stream_at(L, 0);
    if (braid_stream_drain_ready(s))
        return 0;
    if (lua_type(L, 1) == LUA_TTABLE) /* bound: self is still at 1 */
        lua_copy(L, lua_upvalueindex(4), 1);
    return drain_on(L, s);
}

/* pushes f bound to the object at 1 and the stream box at 2 */
static void push_bound(lua_State *L, lua_CFunction f)
{
    lua_pushliteral(L, "_s");
    lua_pushvalue(L, 1);
    bound_t *bd = lua_newuserdatauv(L, sizeof *bd, 0);
    bd->self = lua_topointer(L, 1);
    bd->box = lua_touserdata(L, 2);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, f, 4);
}

/* Returns methods a and b bound to the object at 1 (a table) and its
 * stream box at 2. */
static int bind_two(lua_State *L, lua_CFunction a, lua_CFunction b)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    check_stream(L, 2);
    push_bound(L, a);
    push_bound(L, b);
    return 2;
}

/* _bind_reader(reader, stream) -> read, readexactly for the reader's own
 * fields: the methods called on their object skip the lookup of self._s. */
static int lstreams_bind_reader(lua_State *L)
{
    return bind_two(L, lstreams_m_read, lstreams_m_readexactly);
}

/* _bind_writer(writer, stream) -> write, drain (as _bind_reader) */
static int lstreams_bind_writer(lua_State *L)
{
    return bind_two(L, lstreams_m_write, lstreams_m_drain);
}

static const luaL_Reg lstreams_funcs[] = {
    {"_tcp_new", lstreams_tcp_new},
    {"_pipe_new", lstreams_pipe_new},
    {"_connect", lstreams_connect},
    {"_connect_wait", lstreams_connect_wait},
    {"_listen", lstreams_listen},
    {"_accept", lstreams_accept},
    {"_read", lstreams_read},
    {"_at_eof", lstreams_at_eof},
    {"_set_limit", lstreams_set_limit},
    {"_limit", lstreams_limit},
    {"_write", lstreams_write},
    {"_shutdown", lstreams_shutdown},
    {"_drain", lstreams_drain},
    {"_set_water", lstreams_set_water},
    {"_write_size", lstreams_write_size},
    {"_close", lstreams_close},
    {"_is_closing", lstreams_is_closing},
    {"_close_wait", lstreams_close_wait},
    {"_name", lstreams_name},
    {"_release", lstream_gc},
    {"_handle_count", lstreams_handle_count},
    {"_bind_reader", lstreams_bind_reader},
    {"_bind_writer", lstreams_bind_writer},
    {NULL, NULL},
};

/* the methods, each with the key "_s" as upvalue */
static const luaL_Reg lstreams_methods[] = {
    {"_m_read", lstreams_m_read},
    {"_m_readexactly", lstreams_m_readexactly},
    {"_m_write", lstreams_m_write},
    {"_m_drain", lstreams_m_drain},
    {NULL, NULL},
};

void lstreams_register(lua_State *L)
{
    if (luaL_newmetatable(L, STREAM_META)) {
        lua_pushcfunction(L, lstream_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, lstreams_funcs, 0);
    lua_pushliteral(L, "_s");
    luaL_setfuncs(L, lstreams_methods, 1);
    lresolve_register(L);
    lsubprocess_register(L);
    lfiles_register(L);
    lluv_register(L);
    lua_pushinteger(L, READ_SOME);
    lua_setfield(L, -2, "READ_SOME");
    lua_pushinteger(L, READ_ALL);
    lua_setfield(L, -2, "READ_ALL");
    lua_pushinteger(L, READ_EXACTLY);
    lua_setfield(L, -2, "READ_EXACTLY");
    lua_pushinteger(L, READ_UNTIL);
    lua_setfield(L, -2, "READ_UNTIL");
    lua_pushinteger(L, READ_LINE);
    lua_setfield(L, -2, "READ_LINE");
}
