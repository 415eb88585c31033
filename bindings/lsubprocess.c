/* braid.asyncio subprocesses, C half: boxes for core/process.h children
 * (spawn, wait as an lbraid_wait op, returncode, signals); their pipes are
 * stream boxes (lstreams.c). The Lua half is scripts/braid/asyncio_subprocess.lua. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "lbraid.h"
#include "loop.h"
#include "subprocess.h"

#define PROCESS_META "braid.asyncio.process"

typedef struct lprocess {
    braid_process_t *p;
} lprocess_t;

static braid_process_t *check_process(lua_State *L, int idx)
{
    lprocess_t *b = luaL_checkudata(L, idx, PROCESS_META);
    if (!b->p)
        lbraid_error(L, "ValueError", "process is released");
    return b->p;
}

static int lprocess_gc(lua_State *L)
{
    lprocess_t *b = luaL_checkudata(L, 1, PROCESS_META);
    braid_process_release(b->p);
    b->p = NULL;
    return 0;
}

/* asyncio.PIPE (-1), STDOUT (-2), DEVNULL (-3) or nil (inherit) */
static int stdio_mode(lua_State *L, int idx, int is_stderr)
{
    if (lua_isnoneornil(L, idx))
        return BRAID_STDIO_INHERIT;
    lua_Integer m = luaL_checkinteger(L, idx);
    if (m == -1)
        return BRAID_STDIO_PIPE;
    if (m == -3)
        return BRAID_STDIO_DEVNULL;
    if (m == -2 && is_stderr)
        return BRAID_STDIO_STDOUT;
    return luaL_argerror(
        L, idx, "asyncio.PIPE, asyncio.DEVNULL or asyncio.STDOUT (stderr) expected");
}

/* A NULL-terminated array of the strings in the table at idx, in a
 * userdata (freed with it). */
static char **string_array(lua_State *L, int idx, const char *what)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    char **v = lua_newuserdatauv(L, sizeof *v * (size_t)(n + 1), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        if (!lua_isstring(L, -1))
            luaL_error(
                L, "bad argument to 'create_subprocess' (%s[%d] must be a string)", what, (int)i);
        v[i - 1] = (char *)lua_tostring(L, -1);
        lua_rawseti(L, idx, i); /* keep the converted string alive */
    }
    v[n] = NULL;
    return v;
}

/* _spawn(loop, file, args, cwd, env, stdin, stdout, stderr)
 *   -> process, stdin, stdout, stderr (stream boxes or nil) */
static int lsubprocess_spawn(lua_State *L)
{
    uv_loop_t *uv = braid_loop_uv(lasyncio_check_loop(L, 1));
    const char *file = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    const char *cwd = luaL_optstring(L, 4, NULL);
    int modes[3] = {stdio_mode(L, 6, 0), stdio_mode(L, 7, 0), stdio_mode(L, 8, 1)};
    char **args = string_array(L, 3, "args");
    char **env = NULL;
    if (!lua_isnoneornil(L, 5)) {
        luaL_checktype(L, 5, LUA_TTABLE);
        env = string_array(L, 5, "env");
    }
    lprocess_t *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->p = NULL;
    luaL_setmetatable(L, PROCESS_META);
    braid_stream_t *pipes[3];
    int rc = braid_process_spawn(uv, file, args, env, cwd, modes, pipes, &b->p);
    if (rc)
        return lstreams_raise(L, rc, lua_pushfstring(L, "cannot run %s", file));
    for (int i = 0; i < 3; i++) {
        if (pipes[i])
            lstreams_push(L, pipes[i]);
        else
            lua_pushnil(L);
    }
    return 4;
}

static int lsubprocess_pid(lua_State *L)
{
    lua_pushinteger(L, braid_process_pid(check_process(L, 1)));
    return 1;
}

/* -> the return code (negative signal number when killed), or nil */
static int lsubprocess_returncode(lua_State *L)
{
    int rc;
    if (!braid_process_returncode(check_process(L, 1), &rc))
        return 0;
    lua_pushinteger(L, rc);
    return 1;
}

static int wait_op(lua_State *L)
{
    return braid_process_wait(check_process(L, 1), braid_waiter_peek_current());
}

static int wait_done(lua_State *L, int rc)
{
    if (rc)
        return lstreams_raise(L, rc, "wait");
    return lsubprocess_returncode(L);
}

static const lbraid_waitop_t WAIT_OP = {wait_op, wait_done};

/* _wait(process) -> return code */
static int lsubprocess_wait(lua_State *L)
{
    lua_settop(L, 1);
    return lbraid_wait(L, &WAIT_OP);
}

/* _kill(process, signal number or "TERM"/"KILL"/"INT"/"HUP"/"USR1"/"USR2") */
static int lsubprocess_kill(lua_State *L)
{
    braid_process_t *p = check_process(L, 1);
    int sig;
    if (lua_type(L, 2) == LUA_TSTRING) {
        static const char *const names[] = {"TERM", "KILL", "INT", "HUP", "USR1", "USR2", NULL};
        static const int nums[] = {SIGTERM, SIGKILL, SIGINT, SIGHUP, SIGUSR1, SIGUSR2};
        sig = nums[luaL_checkoption(L, 2, NULL, names)];
    } else {
        sig = (int)luaL_checkinteger(L, 2);
    }
    int rc = braid_process_kill(p, sig);
    if (rc)
        return lstreams_raise(L, rc, "send_signal");
    return 0;
}

static const luaL_Reg lsubprocess_funcs[] = {
    {"_spawn", lsubprocess_spawn},
    {"_proc_pid", lsubprocess_pid},
    {"_proc_returncode", lsubprocess_returncode},
    {"_proc_wait", lsubprocess_wait},
    {"_proc_kill", lsubprocess_kill},
    {"_proc_release", lprocess_gc},
    {NULL, NULL},
};

void lsubprocess_register(lua_State *L)
{
    if (luaL_newmetatable(L, PROCESS_META)) {
        lua_pushcfunction(L, lprocess_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, lsubprocess_funcs, 0);
    lua_pushinteger(L, SIGTERM);
    lua_setfield(L, -2, "SIGTERM");
    lua_pushinteger(L, SIGKILL);
    lua_setfield(L, -2, "SIGKILL");
}
