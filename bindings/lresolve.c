/* braid.asyncio name resolution, C half: resolver boxes for core/stream.h's
 * braid_resolve_t (getaddrinfo off the loop thread) and their wait, an
 * lbraid_wait op. Used by scripts/braid/asyncio_streams.lua. */
#include <arpa/inet.h>
#include <string.h>

#include "lbraid.h"
#include "loop.h"
#include "stream.h"

#define RESOLVE_META "braid.asyncio.resolver"

typedef struct lresolve {
    braid_resolve_t *r;
} lresolve_t;

static int lresolve_gc(lua_State *L)
{
    lresolve_t *b = luaL_checkudata(L, 1, RESOLVE_META);
    braid_resolve_release(b->r);
    b->r = NULL;
    return 0;
}

/* _resolver(loop, host or nil, port, passive) -> resolver */
static int lstreams_resolver(lua_State *L)
{
    uv_loop_t *uv = braid_loop_uv(lasyncio_check_loop(L, 1));
    const char *host = luaL_optstring(L, 2, NULL);
    const char *port = luaL_checkstring(L, 3);
    lresolve_t *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->r = NULL;
    luaL_setmetatable(L, RESOLVE_META);
    int rc = braid_resolve_new(uv, host, port, lua_toboolean(L, 4), &b->r);
    if (rc)
        return lstreams_raise(L, rc, lua_pushfstring(L, "getaddrinfo %s", host ? host : "*"));
    return 1;
}

static int resolve_op(lua_State *L)
{
    lresolve_t *b = luaL_checkudata(L, 1, RESOLVE_META);
    if (!b->r)
        return UV_EBUSY;
    return braid_resolve_wait(b->r, braid_waiter_peek_current());
}

/* -> list of {family=, addr=<sockaddr bytes>, host=, port=} */
static int resolve_done(lua_State *L, int rc)
{
    lresolve_t *b = luaL_checkudata(L, 1, RESOLVE_META);
    const struct addrinfo *res = NULL;
    if (rc == 0)
        rc = braid_resolve_result(b->r, &res);
    if (rc)
        return lstreams_raise(L, rc, "getaddrinfo");
    lua_newtable(L);
    int i = 0;
    for (const struct addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
            continue;
        char host[64];
        int port;
        if (a->ai_family == AF_INET6) {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)a->ai_addr;
            uv_ip6_name(s6, host, sizeof host);
            port = ntohs(s6->sin6_port);
        } else {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)a->ai_addr;
            uv_ip4_name(s4, host, sizeof host);
            port = ntohs(s4->sin_port);
        }
        lua_createtable(L, 0, 4);
        lua_pushstring(L, a->ai_family == AF_INET6 ? "inet6" : "inet");
        lua_setfield(L, -2, "family");
        lua_pushlstring(L, (const char *)a->ai_addr, a->ai_addrlen);
        lua_setfield(L, -2, "addr");
        lua_pushstring(L, host);
        lua_setfield(L, -2, "host");
        lua_pushinteger(L, port);
        lua_setfield(L, -2, "port");
        lua_rawseti(L, -2, ++i);
    }
    return 1;
}

static const lbraid_waitop_t RESOLVE_OP = {resolve_op, resolve_done};

static int lstreams_resolve(lua_State *L)
{
    lua_settop(L, 1);
    return lbraid_wait(L, &RESOLVE_OP);
}

static const luaL_Reg lresolve_funcs[] = {
    {"_resolver", lstreams_resolver},
    {"_resolve", lstreams_resolve},
    {"_resolver_release", lresolve_gc},
    {NULL, NULL},
};

void lresolve_register(lua_State *L)
{
    if (luaL_newmetatable(L, RESOLVE_META)) {
        lua_pushcfunction(L, lresolve_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, lresolve_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, lresolve_funcs, 0);
}
