/* braid.multiprocessing, the manager's C helpers: its private socket
 * directory, the Unix socket it listens on, and the HMAC key challenge. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lbraid.h"
#include "lprocess.h"
#include "sha256.h"
#include "shm.h"

#define CONN_T (&braid_shm_types[BRAID_SHM_CONN])
#define HELLO "BRAIDMGR1" /* opens the server's challenge */
#define HELLO_LEN 9
#define NONCE_LEN 32

static braid_shm_t *check_sock(lua_State *L, int idx)
{
    braid_shm_t *s = (braid_shm_t *)lbraid_check_object(L, idx, CONN_T);
    if (s->fd < 0)
        lbraid_error(L, "OSError", "handle is closed");
    return s;
}

static void fill_random(lua_State *L, void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = getrandom(b, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            lbraid_error(L, "OSError", "getrandom: %s", strerror(errno));
        b += r;
        n -= (size_t)r;
    }
}

/* _mgr_random(n) -> n random bytes (the kernel's getrandom) */
static int lmgr_random(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0 && n <= 4096, 1, "size out of range");
    luaL_Buffer b;
    fill_random(L, luaL_buffinitsize(L, &b, (size_t)n), (size_t)n);
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

/* _mgr_hmac(key, msg) -> HMAC-SHA256 digest (32 bytes) */
static int lmgr_hmac(lua_State *L)
{
    size_t kl, ml;
    const char *k = luaL_checklstring(L, 1, &kl), *m = luaL_checklstring(L, 2, &ml);
    uint8_t d[BRAID_SHA256_LEN];
    braid_hmac_sha256(k, kl, m, ml, d);
    lua_pushlstring(L, (const char *)d, sizeof d);
    return 1;
}

/* _mgr_mkdtemp() -> path of a new private (0700) directory */
static int lmgr_mkdtemp(lua_State *L)
{
    const char *tmp = getenv("TMPDIR");
    char path[128];
    if (!tmp || !*tmp || strlen(tmp) > 60)
        tmp = "/tmp";
    snprintf(path, sizeof path, "%s/braid-mgr-XXXXXX", tmp);
    if (!mkdtemp(path))
        return lbraid_error(L, "OSError", "mkdtemp %s: %s", path, strerror(errno));
    lua_pushstring(L, path);
    return 1;
}

/* _mgr_remove(file, dir): unlinks file and removes dir (missing is fine) */
static int lmgr_remove(lua_State *L)
{
    unlink(luaL_checkstring(L, 1));
    rmdir(luaL_checkstring(L, 2));
    return 0;
}

/* _mgr_cleanup_at_death(file, dir): see lbraid_worker_cleanup_at_death */
static int lmgr_cleanup_at_death(lua_State *L)
{
    lbraid_worker_cleanup_at_death(luaL_checkstring(L, 1), luaL_checkstring(L, 2));
    return 0;
}

/* A new Unix stream socket, and in *a the address of the path at idx. */
static int unix_socket(lua_State *L, int idx, struct sockaddr_un *a)
{
    size_t n;
    const char *path = luaL_checklstring(L, idx, &n);
    if (n >= sizeof a->sun_path)
        return luaL_argerror(L, idx, "socket path too long");
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    memcpy(a->sun_path, path, n);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return lbraid_error(L, "OSError", "socket: %s", strerror(errno));
    return fd;
}

/* _mgr_listen(path) -> a listening socket box (mode 0600) */
static int lmgr_listen(lua_State *L)
{
    struct sockaddr_un a;
    int fd = unix_socket(L, 1, &a);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || chmod(a.sun_path, 0600) != 0 ||
        listen(fd, 128) != 0) {
        int err = errno;
        close(fd);
        return lbraid_error(L, "OSError", "listen %s: %s", a.sun_path, strerror(err));
    }
    lbraid_mp_push_conn(L, fd, 0);
    return 1;
}

/* _mgr_accept(listener) -> a Connection (waits; cancellable) */
static int lmgr_accept(lua_State *L)
{
    braid_shm_t *s = check_sock(L, 1);
    for (;;) {
        lbraid_poll(L);
        int r = braid_fd_wait(s->fd, BRAID_FOREVER, lbraid_ctx(L)->waiter);
        if (r < 0)
            return lbraid_core_error(L, r, NULL);
        int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0) {
            lbraid_mp_push_conn(L, c, 1 | 2);
            return 1;
        }
        if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
            return lbraid_error(L, "OSError", "accept: %s", strerror(errno));
    }
}

/* _mgr_connect(path) -> a Connection to the manager at path */
static int lmgr_connect(lua_State *L)
{
    struct sockaddr_un a;
    int fd = unix_socket(L, 1, &a);
    int r;
    do
        r = connect(fd, (struct sockaddr *)&a, sizeof a);
    while (r != 0 && errno == EINTR);
    if (r != 0) {
        int err = errno;
        close(fd);
        return lbraid_error(L, "ConnectionError", "connect %s: %s", a.sun_path, strerror(err));
    }
    lbraid_mp_push_conn(L, fd, 1 | 2);
    return 1;
}

/* ---- the key challenge (Python's deliver_challenge / answer_challenge) ---- */

static int read_exact(int fd, void *p, size_t n, int64_t deadline, braid_waiter_t *w)
{
    uint8_t *b = p;
    while (n > 0) {
        int r = braid_fd_wait(fd, deadline, w);
        if (r == 0)
            return BRAID_ETIMEOUT;
        if (r < 0)
            return r;
        ssize_t k = recv(fd, b, n, 0);
        if (k < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (k < 0)
            return BRAID_EOS;
        if (k == 0)
            return BRAID_EEOF;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Server side: challenges the peer, then answers its challenge. 0 if the
 * peer proved it holds key, 1 if not (told 'F'), or a core error. */
static int auth_server(lua_State *L, int fd, const char *key, size_t kl, int64_t deadline)
{
    braid_waiter_t *w = lbraid_ctx(L)->waiter;
    uint8_t hello[HELLO_LEN + NONCE_LEN], want[BRAID_SHA256_LEN], got[BRAID_SHA256_LEN];
    memcpy(hello, HELLO, HELLO_LEN);
    fill_random(L, hello + HELLO_LEN, NONCE_LEN);
    braid_hmac_sha256(key, kl, hello, sizeof hello, want);
    int rc = braid_fd_send_all(fd, hello, sizeof hello);
    if (!rc)
        rc = read_exact(fd, got, sizeof got, deadline, w);
    if (rc)
        return rc;
    int ok = braid_digest_equal(want, got, sizeof got);
    rc = braid_fd_send_all(fd, ok ? "W" : "F", 1);
    if (rc || !ok)
        return rc ? rc : 1;
    uint8_t nonce[NONCE_LEN];
    rc = read_exact(fd, nonce, sizeof nonce, deadline, w);
    if (rc)
        return rc;
    braid_hmac_sha256(key, kl, nonce, sizeof nonce, want);
    return braid_fd_send_all(fd, want, sizeof want);
}

/* Client side: answers the server's challenge, then challenges it. 0, 1
 * (our digest was refused), 2 (the server's digest was wrong), 3 (not a
 * braid manager), or a core error. */
static int auth_client(lua_State *L, int fd, const char *key, size_t kl, int64_t deadline)
{
    braid_waiter_t *w = lbraid_ctx(L)->waiter;
    uint8_t hello[HELLO_LEN + NONCE_LEN], d[BRAID_SHA256_LEN], got[BRAID_SHA256_LEN];
    int rc = read_exact(fd, hello, sizeof hello, deadline, w);
    if (rc)
        return rc;
    if (memcmp(hello, HELLO, HELLO_LEN) != 0)
        return 3;
    braid_hmac_sha256(key, kl, hello, sizeof hello, d);
    rc = braid_fd_send_all(fd, d, sizeof d);
    char verdict = 0;
    if (!rc)
        rc = read_exact(fd, &verdict, 1, deadline, w);
    if (rc)
        return rc;
    if (verdict != 'W')
        return 1;
    uint8_t nonce[NONCE_LEN];
    fill_random(L, nonce, sizeof nonce);
    rc = braid_fd_send_all(fd, nonce, sizeof nonce);
    if (!rc)
        rc = read_exact(fd, got, sizeof got, deadline, w);
    if (rc)
        return rc;
    braid_hmac_sha256(key, kl, nonce, sizeof nonce, d);
    return braid_digest_equal(d, got, sizeof d) ? 0 : 2;
}

/* _mgr_auth(conn, key, is_server, timeout) -> true, or false (server:
 * the peer failed); the client raises AuthenticationError. Other failures
 * (the peer gone, timeout) raise their errors. */
static int lmgr_auth(lua_State *L)
{
    braid_shm_t *s = check_sock(L, 1);
    size_t kl;
    const char *key = luaL_checklstring(L, 2, &kl);
    int server = lua_toboolean(L, 3);
    int64_t deadline = lbraid_opt_deadline(L, 4);
    int rc = server ? auth_server(L, s->fd, key, kl, deadline)
                    : auth_client(L, s->fd, key, kl, deadline);
    if (rc == BRAID_EOS)
        return lbraid_error(L, "ConnectionError", "authentication: %s", strerror(errno));
    if (rc < 0)
        return lbraid_core_error(L, rc, "authentication");
    if (rc == 0 || server) {
        lua_pushboolean(L, rc == 0);
        return 1;
    }
    return lbraid_error(L,
                        "AuthenticationError",
                        "%s",
                        rc == 1   ? "digest sent was rejected (wrong authkey)"
                        : rc == 2 ? "digest received was wrong"
                                  : "the peer is not a braid manager");
}

static const luaL_Reg lmgr_funcs[] = {
    {"_mgr_random", lmgr_random},
    {"_mgr_hmac", lmgr_hmac},
    {"_mgr_mkdtemp", lmgr_mkdtemp},
    {"_mgr_remove", lmgr_remove},
    {"_mgr_cleanup_at_death", lmgr_cleanup_at_death},
    {"_mgr_listen", lmgr_listen},
    {"_mgr_accept", lmgr_accept},
    {"_mgr_connect", lmgr_connect},
    {"_mgr_auth", lmgr_auth},
    {NULL, NULL},
};

void lbraid_mp_open_manager(lua_State *L, int mod)
{
    lua_pushvalue(L, mod);
    luaL_setfuncs(L, lmgr_funcs, 0);
    lua_pop(L, 1);
}
