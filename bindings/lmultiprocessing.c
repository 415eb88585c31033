/* braid.multiprocessing, C half: starting processes (spawn through the
 * worker protocol, or fork), waiting, signalling, the table of children. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lbraid.h"
#include "ldump.h"
#include "trace.h"
#include "lprocess.h"
#include "process.h"
#include "shm.h"

#define HANDLE_MT "braid.Process.handle"

/* ---- process handles ---- */

static braid_proc_t *check_handle(lua_State *L, int idx)
{
    braid_proc_t **pp = luaL_checkudata(L, idx, HANDLE_MT);
    if (!*pp)
        luaL_argerror(L, idx, "closed process handle");
    return *pp;
}

/* Pushes an inert handle box; attach with *box = p. Stack: +1. */
static braid_proc_t **push_handle(lua_State *L)
{
    braid_proc_t **pp = lua_newuserdatauv(L, sizeof *pp, 0);
    *pp = NULL;
    luaL_setmetatable(L, HANDLE_MT);
    return pp;
}

static int lhandle_gc(lua_State *L)
{
    braid_proc_t **pp = luaL_checkudata(L, 1, HANDLE_MT);
    if (*pp) {
        braid_proc_poll(*pp); /* reap it now if it is done */
        braid_proc_release(*pp);
        *pp = NULL;
    }
    return 0;
}

/* _spawn(argv, header, fn, ...) -> handle: starts argv[1] with argv, and
 * sends it the codec key, the header table and the call (fn, ...). */
static int lmp_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checkany(L, 3);
    int top = lua_gettop(L);
    braid_buf_t *hdr = lbraid_push_buf(L);
    lbraid_encode(L, 2, hdr, "header");
    braid_buf_t *call = lbraid_push_buf(L);
    lbraid_encode_seq(L, 3, top - 2, call, "args");
    if (hdr->err || call->err)
        return lbraid_core_error(L, BRAID_ENOMEM, NULL);
    lua_Integer argc = luaL_len(L, 1);
    if (argc < 1 || argc > 64)
        return luaL_argerror(L, 1, "1 to 64 arguments expected");
    char *argv[65];
    for (lua_Integer i = 1; i <= argc; i++) {
        lua_geti(L, 1, i);
        argv[i - 1] = (char *)luaL_checkstring(L, -1); /* anchored by the table */
        lua_pop(L, 1);
    }
    argv[argc] = NULL;
    braid_proc_t **box = push_handle(L);
    int hidx = lua_gettop(L);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return lbraid_error(L, "OSError", "socketpair: %s", strerror(errno));
    /* this very executable's worker unblocks its signals itself */
    int own = lbraid_worker_exe && strcmp(argv[0], lbraid_worker_exe) == 0 && argc == 2 &&
              strcmp(argv[1], "--worker") == 0;
    int rc = braid_proc_spawn(argv[0], argv, sv[1], own ? BRAID_SPAWN_MASKED : 0, box);
    int err = errno;
    close(sv[1]);
    if (rc) {
        close(sv[0]);
        if (rc == BRAID_EOS)
            return lbraid_error(L, "OSError", "cannot start %s: %s", argv[0], strerror(err));
        return lbraid_core_error(L, rc, NULL);
    }
    braid_proc_set_chan(*box, sv[0]);
    /* message 1: the codec key and the header; message 2: the call */
    braid_buf_t *first = lbraid_push_buf(L);
    uint8_t key[16];
    braid_codec_get_key(key);
    braid_buf_put_bytes(first, key, sizeof key);
    braid_buf_put_bytes(first, hdr->data, hdr->len);
    if (first->err)
        return lbraid_core_error(L, BRAID_ENOMEM, NULL);
    braid_object_t *bad = NULL;
    rc = braid_msg_send(sv[0], first, NULL);
    if (!rc)
        rc = braid_msg_send(sv[0], call, &bad);
    if (rc == BRAID_ETYPE) {
        braid_proc_signal(*box, SIGKILL);
        braid_proc_wait(*box, BRAID_FOREVER, NULL);
        return lbraid_error(L,
                            "TypeError",
                            "%s cannot cross to another process (only braid.multiprocessing "
                            "objects can)",
                            bad->type->name);
    }
    /* other failures: the child died early; its exit code tells how */
    lua_pushvalue(L, hidx);
    return 1;
}

/* os.exit in a forked child: flush and leave without running the parent's
 * exit handlers (its threads are not in this process). */
static int lmp_fork_exit(lua_State *L)
{
    int code;
    if (lua_isboolean(L, 1))
        code = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
    else
        code = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
    braid_feed_flush_all(BRAID_FOREVER); /* what its queues' feeders hold */
    fflush(NULL);
    braid_trace_flush_child();
    _exit(code);
    return 0;
}

/* Copies string field k of the table at idx into dst. */
static void copy_field(lua_State *L, int idx, const char *k, char *dst, size_t n)
{
    lua_getfield(L, idx, k);
    const char *s = lua_tostring(L, -1);
    if (s)
        snprintf(dst, n, "%s", s);
    lua_pop(L, 1);
}

/* _fork(header, fn, ...) -> handle in the parent; in the child runs
 * fn(...) and exits with its exit code, never returning. */
static int lmp_fork(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    braid_proc_t **box = push_handle(L);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return lbraid_error(L, "OSError", "socketpair: %s", strerror(errno));
    pid_t parent = getpid();
    int from_main = braid_proc_is_main_thread();
    braid_proc_t *p;
    if (braid_proc_fork(&p) != 0) {
        int err = errno;
        close(sv[0]);
        close(sv[1]);
        return lbraid_error(L, "OSError", "fork: %s", strerror(err));
    }
    if (p) { /* parent */
        close(sv[1]);
        *box = p;
        braid_proc_set_chan(p, sv[0]);
        return 1;
    }
    close(sv[0]);
    if (from_main)
        lbraid_worker_watch_parent(sv[1], parent);
    else
        lbraid_worker_watch_channel(sv[1], parent);
    snprintf(lbraid_procinfo.pname, sizeof lbraid_procinfo.pname, "%s", lbraid_procinfo.name);
    copy_field(L, 1, "name", lbraid_procinfo.name, sizeof lbraid_procinfo.name);
    lbraid_procinfo.ppid = parent;
    lua_getfield(L, 1, "daemon");
    lbraid_procinfo.daemon = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (lua_getglobal(L, "os") == LUA_TTABLE) {
        lua_pushcfunction(L, lmp_fork_exit);
        lua_setfield(L, -2, "exit");
    }
    lua_pop(L, 2); /* os, the handle */
    int code = lbraid_worker_call(L, lua_gettop(L) - 2, lbraid_procinfo.name);
    braid_feed_flush_all(BRAID_FOREVER);
    braid_proc_finish_all(BRAID_FOREVER);
    fflush(NULL);
    braid_trace_flush_child();
    _exit(code);
    return 0;
}

/* _wait(h, timeout) -> true once the child has exited (and is reaped). */
static int lmp_wait(lua_State *L)
{
    braid_proc_t *p = check_handle(L, 1);
    int64_t deadline = lbraid_opt_deadline(L, 2);
    lbraid_poll(L);
    int rc = braid_proc_wait(p, deadline, lbraid_ctx(L)->waiter);
    if (rc && rc != BRAID_ETIMEOUT)
        return lbraid_core_error(L, rc, NULL);
    lua_pushboolean(L, rc == 0);
    return 1;
}

static int lmp_poll(lua_State *L)
{
    lua_pushboolean(L, braid_proc_poll(check_handle(L, 1)));
    return 1;
}

static int lmp_exitcode(lua_State *L)
{
    int code = braid_proc_exitcode(check_handle(L, 1));
    if (code == INT32_MIN)
        lua_pushnil(L);
    else
        lua_pushinteger(L, code);
    return 1;
}

static int lmp_pid(lua_State *L)
{
    lua_pushinteger(L, braid_proc_pid(check_handle(L, 1)));
    return 1;
}

static int lmp_signal(lua_State *L)
{
    braid_proc_t *p = check_handle(L, 1);
    int sig = (int)luaL_checkinteger(L, 2);
    if (braid_proc_signal(p, sig) != 0)
        return lbraid_error(L, "OSError", "kill: %s", strerror(errno));
    return 0;
}

static int lmp_set_daemon(lua_State *L)
{
    braid_proc_set_daemon(check_handle(L, 1), lua_toboolean(L, 2));
    return 0;
}

/* _children() -> {pid, ...} of live children, reaping the finished ones. */
static int lmp_children(lua_State *L)
{
    size_t n;
    braid_proc_t **a = braid_proc_children(&n);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushinteger(L, braid_proc_pid(a[i]));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
        braid_proc_release(a[i]);
    }
    free(a);
    return 1;
}

/* _count() -> children not reaped yet (live or zombie). */
static int lmp_count(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)braid_proc_count());
    return 1;
}

/* _info() -> name, pid, ppid (0 in the main process), parent name, daemon */
static int lmp_info(lua_State *L)
{
    lua_pushstring(L, lbraid_procinfo.name);
    lua_pushinteger(L, getpid());
    lua_pushinteger(L, lbraid_procinfo.ppid);
    lua_pushstring(L, lbraid_procinfo.pname);
    lua_pushboolean(L, lbraid_procinfo.daemon);
    return 5;
}

/* _exe() -> path of the running executable, and whether it is braid's. */
static int lmp_exe(lua_State *L)
{
    if (lbraid_worker_exe) {
        lua_pushstring(L, lbraid_worker_exe);
        lua_pushboolean(L, 1);
        return 2;
    }
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return lbraid_error(L, "OSError", "cannot find the executable: %s", strerror(errno));
    lua_pushlstring(L, buf, (size_t)n);
    lua_pushboolean(L, 0);
    return 2;
}

/* _nthreads() -> OS threads in this process (for fork's warning), less
 * the live dump's idle helpers. */
static int lmp_nthreads(lua_State *L)
{
    FILE *f = fopen("/proc/self/status", "r");
    long n = 1;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %ld", &n) == 1)
            break;
    if (f)
        fclose(f);
    lua_pushinteger(L, n - lbraid_dump_helpers());
    return 1;
}

/* _finish(timeout): terminate daemon children, wait for all. */
static int lmp_finish(lua_State *L)
{
    braid_proc_finish_all(lbraid_opt_deadline(L, 1));
    return 0;
}

/* _has_children() -> whether this process has any child, even one it
 * did not start (for the specs' no-child-left checks). */
static int lmp_has_children(lua_State *L)
{
    siginfo_t si;
    int r = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT);
    lua_pushboolean(L, !(r < 0 && errno == ECHILD));
    return 1;
}

/* _signal_self(sig): raise(sig) in this process (specs: a crash). */
static int lmp_signal_self(lua_State *L)
{
    fflush(NULL);
    signal((int)luaL_checkinteger(L, 1), SIG_DFL);
    raise((int)luaL_checkinteger(L, 1));
    return 0;
}

static int lmp_alive_pid(lua_State *L)
{
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    lua_pushboolean(L, pid > 0 && (kill(pid, 0) == 0 || errno == EPERM));
    return 1;
}

/* The main state's sentinel: at lua_close, children are finished too
 * (stock lua5.4 has no braid_shutdown). */
static int lsentinel_gc(lua_State *L)
{
    (void)L;
    braid_proc_finish_all(BRAID_FOREVER);
    return 0;
}

static const luaL_Reg lmp_funcs[] = {
    {"_spawn", lmp_spawn},
    {"_fork", lmp_fork},
    {"_wait", lmp_wait},
    {"_poll", lmp_poll},
    {"_exitcode", lmp_exitcode},
    {"_pid", lmp_pid},
    {"_signal", lmp_signal},
    {"_set_daemon", lmp_set_daemon},
    {"_children", lmp_children},
    {"_count", lmp_count},
    {"_info", lmp_info},
    {"_exe", lmp_exe},
    {"_nthreads", lmp_nthreads},
    {"_worker", lbraid_worker_fn},
    {"_finish", lmp_finish},
    {"_alive_pid", lmp_alive_pid},
    {"_has_children", lmp_has_children},
    {"_signal_self", lmp_signal_self},
    {NULL, NULL},
};

static const char SENTINEL_KEY = 's';

int lbraid_open_multiprocessing(lua_State *L)
{
    if (luaL_newmetatable(L, HANDLE_MT)) {
        lua_pushcfunction(L, lhandle_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (lbraid_ctx(L)->main && lua_rawgetp(L, LUA_REGISTRYINDEX, &SENTINEL_KEY) == LUA_TNIL) {
        lua_newuserdatauv(L, 1, 0);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, lsentinel_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &SENTINEL_KEY);
    }
    lua_settop(L, 0);
    luaL_newlib(L, lmp_funcs);
    lbraid_mp_open_sync(L, lua_gettop(L));
    lbraid_mp_open_manager(L, lua_gettop(L));
    lbraid_mp_open_feed(L, lua_gettop(L));
    lua_pushinteger(L, SIGTERM);
    lua_setfield(L, -2, "SIGTERM");
    lua_pushinteger(L, SIGKILL);
    lua_setfield(L, -2, "SIGKILL");
    return 1;
}
