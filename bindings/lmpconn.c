/* braid.multiprocessing's Pipe and its Connection objects: a stream
 * socket pair carrying codec-encoded messages (shm.h) between processes. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lbraid.h"
#include "lprocess.h"
#include "shm.h"

static braid_shm_t *check(lua_State *L, int idx, int kind)
{
    return (braid_shm_t *)lbraid_check_object(L, idx, &braid_shm_types[kind]);
}

enum { READABLE = 1, WRITABLE = 2 };

static braid_shm_t *check_conn(lua_State *L, int idx, int need)
{
    braid_shm_t *s = check(L, idx, BRAID_SHM_CONN);
    if (s->fd < 0)
        lbraid_error(L, "OSError", "handle is closed");
    if (need && !(s->flags & need))
        lbraid_error(L, "OSError", "connection is %s-only", need == READABLE ? "write" : "read");
    return s;
}

void lbraid_mp_push_conn(lua_State *L, int fd, int flags)
{
    braid_shm_t *s;
    int rc = braid_shm_new_conn(fd, flags, &s);
    if (rc) {
        close(fd);
        lbraid_core_error(L, rc, NULL);
    }
    lbraid_push_object(L, &s->base);
    braid_object_release(&s->base);
}

/* Pipe(duplex=true) -> conn1, conn2 (duplex false: conn1 receives, conn2 sends) */
static int lpipe_new(lua_State *L)
{
    int duplex = lua_isnoneornil(L, 1) ? 1 : lua_toboolean(L, 1);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return lbraid_error(L, "OSError", "socketpair: %s", strerror(errno));
    if (!duplex) {
        shutdown(sv[0], SHUT_WR);
        shutdown(sv[1], SHUT_RD);
    }
    lua_settop(L, 0);
    lbraid_mp_push_conn(
        L, sv[1], duplex ? READABLE | WRITABLE : WRITABLE); /* anchors sv[1] first */
    lbraid_mp_push_conn(L, sv[0], duplex ? READABLE | WRITABLE : READABLE);
    lua_insert(L, 1);
    return 2;
}

int lbraid_mp_send(lua_State *L, int fd, braid_buf_t *buf)
{
    braid_object_t *bad = NULL;
    int rc = braid_msg_send(fd, buf, &bad); /* first: it sets bad */
    return lbraid_mp_send_result(L, rc, bad, "send");
}

int lbraid_mp_send_result(lua_State *L, int rc, braid_object_t *bad, const char *what)
{
    if (rc == BRAID_ETYPE)
        return lbraid_error(L,
                            "TypeError",
                            "%s cannot cross to another process (only braid.multiprocessing "
                            "objects can)",
                            bad->type->name);
    if (rc == BRAID_EOS)
        return lbraid_error(
            L, errno == EPIPE ? "ConnectionError" : "OSError", "%s: %s", what, strerror(errno));
    if (rc)
        return lbraid_core_error(L, rc, NULL);
    return 0;
}

static int lconn_send(lua_State *L)
{
    braid_shm_t *s = check_conn(L, 1, WRITABLE);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    braid_buf_t *buf = lbraid_take_scratch(L);
    lbraid_encode(L, 2, buf, "value");
    lbraid_mp_send(L, s->fd, buf);
    return 0;
}

static int lconn_recv(lua_State *L)
{
    braid_shm_t *s = check_conn(L, 1, READABLE);
    lbraid_poll(L);
    lua_settop(L, 1);
    braid_buf_t *buf = lbraid_take_scratch(L);
    int rc = braid_conn_recv(s, buf, BRAID_FOREVER, lbraid_ctx(L)->waiter);
    if (rc == BRAID_EOS)
        return lbraid_error(L, "OSError", "recv: %s", strerror(errno));
    if (rc)
        return lbraid_core_error(L, rc, rc == BRAID_EEOF ? "recv" : NULL);
    lbraid_decode(L, buf->data, buf->len);
    return 1;
}

static int lconn_poll(lua_State *L)
{
    braid_shm_t *s = check_conn(L, 1, READABLE);
    int64_t deadline = lua_isnoneornil(L, 2) ? braid_clock_now() : lbraid_opt_deadline(L, 2);
    lbraid_poll(L);
    int rc = braid_conn_poll(s, deadline, lbraid_ctx(L)->waiter);
    if (rc < 0)
        return lbraid_core_error(L, rc, NULL);
    lua_pushboolean(L, rc);
    return 1;
}

static int lconn_close(lua_State *L)
{
    braid_shm_t *s = check(L, 1, BRAID_SHM_CONN);
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    return 0;
}

static int lconn_closed(lua_State *L)
{
    lua_pushboolean(L, check(L, 1, BRAID_SHM_CONN)->fd < 0);
    return 1;
}

static int lconn_fileno(lua_State *L)
{
    lua_pushinteger(L, check_conn(L, 1, 0)->fd);
    return 1;
}

static const luaL_Reg lconn_methods[] = {
    {"send", lconn_send},
    {"recv", lconn_recv},
    {"poll", lconn_poll},
    {"close", lconn_close},
    {"closed", lconn_closed},
    {"fileno", lconn_fileno},
    {NULL, NULL},
};

void lbraid_mp_open_conn(lua_State *L, int mod, int methods)
{
    lbraid_newmeta(L, &braid_shm_types[BRAID_SHM_CONN], lconn_methods);
    lua_getfield(L, -1, "__index");
    lua_pushvalue(L, -2); /* the metatable: the methods' upvalue, as the locks' */
    luaL_setfuncs(L, lconn_methods, 1);
    lua_setfield(L, methods, "Connection");
    lua_pop(L, 1);
    lua_pushcfunction(L, lpipe_new);
    lua_setfield(L, mod, "Pipe");
}
