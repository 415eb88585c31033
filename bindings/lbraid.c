/* The root module `braid` (lpreload.c loads the modules and their scripts):
 * the codec for users, and the root helpers of API.md §0. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "braid.h"
#include "executor.h"
#include "lbraid.h"
#include "ldump.h"
#include "lpreload.h"
#include "lprocess.h"
#include "lstate.h"
#include "process.h"
#include "thread.h"
#include "trace.h"

/* ---- root functions ---- */

/* Submodules of the root, reachable as braid.<name> too. */
static const char *const submodules[] = {
    "threading", "queue", "futures", "pool", "multiprocessing", "asyncio", "shared", NULL};

/* braid.sleep inside an asyncio task suspends the task until the deadline
 * (at 1). Outside one, lbraid_wait runs this once: the deadline has passed
 * only for a zero sleep, so sleep's own loop handles the rest. */
static int lbraid_sleep_op(lua_State *L)
{
    braid_waiter_t *w = braid_waiter_peek_current();
    int64_t deadline = (int64_t)lua_tointeger(L, 1);
    if (w && atomic_load(&w->cancelled))
        return BRAID_ECANCELLED;
    if (!w || !w->notify || braid_clock_now() >= deadline)
        return 0;
    w->deadline = deadline; /* nothing linked: only the timer wakes it */
    return BRAID_ESUSPEND;
}

static int lbraid_sleep_park(lua_State *L, int rc);

static const lbraid_waitop_t lbraid_sleep_wait = {lbraid_sleep_op, lbraid_sleep_park};

static int lbraid_sleep(lua_State *L)
{
    lua_Number secs = luaL_checknumber(L, 1);
    if (secs != secs || secs < 0)
        return lbraid_error(L, "ValueError", "sleep length must be a non-negative number");
    lbraid_poll(L);
    int64_t deadline = braid_clock_deadline((double)secs);
    lua_settop(L, 0);
    lua_pushinteger(L, (lua_Integer)deadline);
    if (lbraid_ctx(L)->loop_running)
        return lbraid_wait(L, &lbraid_sleep_wait);
    return lbraid_sleep_park(L, 0);
}

/* Blocks the OS thread until the deadline at 1 (cancellable). */
static int lbraid_sleep_park(lua_State *L, int rc)
{
    if (rc)
        return lbraid_core_error(L, rc, NULL);
    int64_t deadline = (int64_t)lua_tointeger(L, 1);
    braid_waiter_t *w = lbraid_ctx(L)->waiter;
    if (!w) {
        braid_clock_sleep_until(deadline);
        return 0;
    }
    braid_waiter_prepare(w);
    braid_waiter_begin(w, NULL, "sleep", deadline);
    for (;;) {
        rc = braid_waiter_park(w, deadline);
        if (rc == BRAID_ETIMEOUT) {
            braid_waiter_end(w, 0);
            return 0;
        }
        if (rc) {
            braid_waiter_end(w, rc);
            return lbraid_core_error(L, rc, NULL); /* cancelled, interrupted */
        }
        braid_waiter_prepare(w); /* a stray wake-up: keep sleeping */
    }
}

static int lbraid_monotonic(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)braid_clock_now() / 1e9);
    return 1;
}

static int lbraid_cpu_count(lua_State *L)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    lua_pushinteger(L, n > 0 ? n : 1);
    return 1;
}

static int lbraid_poll_fn(lua_State *L)
{
    lbraid_poll(L);
    lbraid_check_cancel(L);
    return 0;
}

/* braid.encode(v) -> string. Braid objects are named by id; the string
 * holds no reference, so decoding after they die gives a ValueError. */
static int lbraid_encode_fn(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    braid_buf_t *buf = lbraid_take_scratch(L);
    lbraid_encode(L, 1, buf, "value");
    lua_pushlstring(L, (const char *)buf->data, buf->len);
    return 1;
}

static int lbraid_decode_fn(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lbraid_decode(L, s, n);
    return 1;
}

/* braid.transfer_test(fn, ...): runs fn(...) in a fresh state on this OS
 * thread, everything crossing by the codec both ways; returns its results
 * or re-raises its error. */
static int lbraid_transfer_test(lua_State *L)
{
    luaL_checkany(L, 1);
    int n = lua_gettop(L);
    braid_buf_t *call = lbraid_push_buf(L);
    lbraid_encode_seq(L, 1, n, call, "args");
    braid_buf_t *out = lbraid_push_buf(L);
    lua_State *L2 = lbraid_newstate(L);
    if (!L2)
        return lbraid_core_error(L, BRAID_ENOMEM, NULL);
    lbraid_ctx(L2)->waiter = lbraid_ctx(L)->waiter;
    int failed = lbraid_run_call(L2, call, out);
    lua_close(L2);
    lua_settop(L, n + 2);
    return lbraid_push_outcome(L, out, failed);
}

static int lbraid_traceback_fn(lua_State *L)
{
    luaL_checkany(L, 1);
    lbraid_push_traceback(L, 1);
    return 1;
}

static int lbraid_shutdown_fn(lua_State *L)
{
    lua_pushboolean(L, braid_shutdown(L, luaL_optnumber(L, 1, -1)));
    return 1;
}

static const luaL_Reg root_funcs[] = {
    {"sleep", lbraid_sleep},
    {"monotonic", lbraid_monotonic},
    {"cpu_count", lbraid_cpu_count},
    {"poll", lbraid_poll_fn},
    {"encode", lbraid_encode_fn},
    {"decode", lbraid_decode_fn},
    {"transfer_test", lbraid_transfer_test},
    {"traceback", lbraid_traceback_fn},
    {"shutdown", lbraid_shutdown_fn},
    {"_worker", lbraid_worker_fn},
    {NULL, NULL},
};

/* braid.<submodule> loads on first access. */
static int root_index(lua_State *L)
{
    const char *k = lua_tostring(L, 2);
    for (int i = 0; k && submodules[i]; i++) {
        if (strcmp(submodules[i], k) == 0) {
            lua_getglobal(L, "require");
            lua_pushfstring(L, "braid.%s", k);
            lua_call(L, 1, 1);
            lua_pushvalue(L, -1);
            lua_setfield(L, 1, k);
            return 1;
        }
    }
    return 0;
}

int lbraid_root_open(lua_State *L)
{
    luaL_newlib(L, root_funcs);
    lua_pushliteral(L, BRAID_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushcfunction(L, lbraid_dump_fn());
    lua_setfield(L, -2, "dump");
    lbraid_open_error(L);
    lua_setfield(L, -2, "Error");
    lbraid_open_trace(L);
    lua_setfield(L, -2, "trace");
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, root_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    return 1;
}

/* ---- embedding API and stock-Lua entry points ---- */

int braid_openlibs(lua_State *L)
{
    braid_trace_init_from_env();
    lbraid_preload(L);
    lbraid_install_print(L);
    lbraid_ctx(L)->main = 1;
    lbraid_dump_attach(L, LDUMP_MAIN); /* this thread reports in live dumps */
    lbraid_dump_from_env();
    return 0;
}

int braid_shutdown(lua_State *L, double timeout)
{
    (void)L;
    /* like Python's threading._shutdown: executors finish their queued
     * work first, then every non-daemon thread is joined; only the calling
     * host thread's (braid_thread_group), so host states stay independent */
    uint64_t group = braid_thread_group();
    int64_t deadline = braid_clock_deadline(timeout);
    int rc = braid_executor_shutdown_group(group, deadline);
    int rc2 = braid_thread_join_nondaemon_group(group, deadline);
    braid_proc_finish_all(deadline); /* then child processes, as Python */
    return rc == 0 && rc2 == 0;
}

/* Loads `name` as require would, after installing the preloaders. */
static int open_entry(lua_State *L, const char *name)
{
    braid_openlibs(L);
    return lbraid_load_module(L, name);
}

int luaopen_braid(lua_State *L)
{
    return open_entry(L, "braid");
}

BRAID_EXPORT int luaopen_braid_threading(lua_State *L);
BRAID_EXPORT int luaopen_braid_queue(lua_State *L);
BRAID_EXPORT int luaopen_braid_shared(lua_State *L);
BRAID_EXPORT int luaopen_braid_futures(lua_State *L);
BRAID_EXPORT int luaopen_braid_multiprocessing(lua_State *L);
BRAID_EXPORT int luaopen_braid_asyncio(lua_State *L);
BRAID_EXPORT int luaopen_braid_mpi(lua_State *L);

int luaopen_braid_threading(lua_State *L)
{
    return open_entry(L, "braid.threading");
}

int luaopen_braid_queue(lua_State *L)
{
    return open_entry(L, "braid.queue");
}

int luaopen_braid_shared(lua_State *L)
{
    return open_entry(L, "braid.shared");
}

int luaopen_braid_futures(lua_State *L)
{
    return open_entry(L, "braid.futures");
}

int luaopen_braid_multiprocessing(lua_State *L)
{
    return open_entry(L, "braid.multiprocessing");
}

int luaopen_braid_asyncio(lua_State *L)
{
    return open_entry(L, "braid.asyncio");
}

int luaopen_braid_mpi(lua_State *L)
{
    return open_entry(L, "braid.mpi");
}
