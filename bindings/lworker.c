/* The child side of a process: the spawned worker reads its call from
 * fd 3, watches its parent, runs the body and turns the outcome into an exit code. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "braid.h"
#include "lbraid.h"
#include "lprocess.h"
#include "process.h"
#include "shm.h"

const char *lbraid_worker_exe = NULL;
lbraid_procinfo_t lbraid_procinfo = {"MainProcess", 0, "", 0};

/* ---- the parent watch ---- */

static char death_file[256], death_dir[256];
static atomic_int death_paths_set;

static void cleanup_on_term(int sig)
{
    unlink(death_file); /* both async-signal-safe */
    rmdir(death_dir);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int watch_fd = -1; /* the channel from the parent */

static void *watch_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    for (;;) {
        ssize_t r = read(fd, &c, 1);
        if (r == 0 || (r < 0 && errno != EINTR))
            break; /* EOF: every copy of the parent's end is closed */
    }
    if (atomic_load(&death_paths_set)) {
        unlink(death_file);
        rmdir(death_dir);
    }
    kill(getpid(), SIGKILL);
    return NULL;
}

/* Starts the thread that ends this process when fd reads EOF: 0, or -1. */
static int start_watch(int fd)
{
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 64 * 1024);
    int rc = pthread_create(&t, &at, watch_main, (void *)(intptr_t)fd);
    pthread_attr_destroy(&at);
    return rc == 0 ? 0 : -1;
}

void lbraid_worker_cleanup_at_death(const char *file, const char *dir)
{
    snprintf(death_file, sizeof death_file, "%s", file);
    snprintf(death_dir, sizeof death_dir, "%s", dir);
    atomic_store(&death_paths_set, 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cleanup_on_term;
    sigaction(SIGTERM, &sa, NULL); /* terminate(), or the parent's exit ending daemons */
    /* the kernel's parent-death signal would end this process before the
     * cleanup: a thread watching the channel ends it after, instead */
    int fd = watch_fd;
    watch_fd = -1;
    if (fd < 0)
        return; /* not a child, or watched already */
    prctl(PR_SET_PDEATHSIG, 0);
    if (start_watch(fd) != 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no cleanup, but no orphan either */
        fprintf(stderr, "braid worker: cannot watch the parent process\n");
    }
}

void lbraid_worker_watch_channel(int fd, pid_t ppid)
{
    if (start_watch(fd) != 0) {
        lbraid_worker_watch_parent(fd, ppid); /* never an orphan, at worst */
        return;
    }
    if (getppid() != ppid)
        _exit(1); /* the parent died before the watch began */
}

void lbraid_worker_watch_parent(int fd, pid_t ppid)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (ppid && getppid() != ppid)
        _exit(1); /* the parent died before the request */
    watch_fd = fd;
}

/* ---- running the body ---- */

int lbraid_worker_call(lua_State *L, int nargs, const char *name)
{
    if (lbraid_pcall(L, nargs, 0) == LUA_OK)
        return 0;
    const char *msg = luaL_tolstring(L, -1, NULL);
    lbraid_push_traceback(L, -2);
    const char *tb = lua_tostring(L, -1);
    fflush(stdout);
    fprintf(stderr, "Process %s:\n%s\n", name, tb ? tb : msg); /* tb starts with msg */
    fflush(stderr);
    lua_pop(L, 3);
    return 1;
}

static void fail(const char *what)
{
    fprintf(stderr, "braid worker: %s\n", what);
    exit(2);
}

/* Copies field k of the table at -1 into lbraid_procinfo string dst. */
static void info_str(lua_State *L, const char *k, char *dst, size_t n)
{
    lua_getfield(L, -1, k);
    const char *s = lua_tostring(L, -1);
    if (s)
        snprintf(dst, n, "%s", s);
    lua_pop(L, 1);
}

/* Body of lbraid_worker_run, protected: arg 1 is the channel fd. Message
 * 1 holds the codec key and the header table, message 2 the call. */
static int worker_body(lua_State *L)
{
    int fd = (int)lua_tointeger(L, 1);
    braid_buf_t *msg = lbraid_push_buf(L);
    if (braid_msg_recv(fd, msg, BRAID_FOREVER, NULL) != 0)
        fail("no call from the parent");
    if (msg->len < 16 || msg->nobjs)
        fail("bad header");
    braid_codec_set_key(msg->data);
    lbraid_decode(L, msg->data + 16, msg->len - 16);
    if (!lua_istable(L, -1))
        fail("bad header");
    info_str(L, "name", lbraid_procinfo.name, sizeof lbraid_procinfo.name);
    info_str(L, "pname", lbraid_procinfo.pname, sizeof lbraid_procinfo.pname);
    lua_getfield(L, -1, "daemon");
    lbraid_procinfo.daemon = lua_toboolean(L, -1);
    lua_getfield(L, -2, "ppid");
    lbraid_procinfo.ppid = (pid_t)lua_tointeger(L, -1);
    lua_pop(L, 2);
    lua_getglobal(L, "package");
    for (int i = 0; i < 2; i++) {
        const char *k = i ? "cpath" : "path";
        lua_getfield(L, -2, k);
        if (lua_isstring(L, -1))
            lua_setfield(L, -2, k);
        else
            lua_pop(L, 1);
    }
    lua_pop(L, 2);
    if (braid_msg_recv(fd, msg, BRAID_FOREVER, NULL) != 0)
        fail("truncated call from the parent");
    lbraid_worker_watch_parent(fd, lbraid_procinfo.ppid); /* reads fd from now on */
    lua_settop(L, 2);
    int n = lbraid_decode_seq(L, msg->data, msg->len);
    braid_buf_reset(msg); /* the decoded boxes hold the shared objects now */
    if (n < 1)
        fail("empty call");
    lua_pushinteger(L, lbraid_worker_call(L, n - 1, lbraid_procinfo.name));
    return 1;
}

void lbraid_worker_run(lua_State *L, int fd)
{
    lua_pushcfunction(L, worker_body);
    lua_pushinteger(L, fd);
    int code = 1;
    if (lbraid_pcall(L, 1, 1) == LUA_OK)
        code = (int)lua_tointeger(L, -1);
    else
        fprintf(stderr, "Process %s:\n%s\n", lbraid_procinfo.name, luaL_tolstring(L, -1, NULL));
    /* like Python's child: wait for its non-daemon threads and children */
    braid_shutdown(L, -1);
    braid_proc_finish_all(BRAID_FOREVER);
    fflush(NULL);
    exit(code);
}

int lbraid_worker_fn(lua_State *L)
{
    lbraid_worker_run(L, (int)luaL_checkinteger(L, 1));
    return 0;
}

int lbraid_worker_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    braid_proc_unblock_signals(); /* started with all blocked (BRAID_SPAWN_MASKED) */
    lua_State *L = luaL_newstate();
    if (!L)
        fail("cannot create state: not enough memory");
    luaL_openlibs(L);
    braid_openlibs(L);
    lbraid_worker_run(L, 3);
    return 0;
}
