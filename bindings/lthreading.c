/* braid.threading, C half: OS threads each running their own Lua state;
 * the primitives are in lsync.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ldump.h"
#include "lpreload.h"
#include "lsync.h"
#include "thread.h"
#include "trace.h"

static const char HOOK_KEY = 'h'; /* registry: excepthook handed over by the starter */

/* ---- threads ---- */

static braid_thread_t *lthread_check(lua_State *L, int idx)
{
    return (braid_thread_t *)lbraid_check_object(L, idx, &braid_thread_type);
}

/* _new(name|nil, daemon) -> handle */
static int lthread_new(lua_State *L)
{
    const char *name = luaL_optstring(L, 1, NULL);
    int daemon = lua_toboolean(L, 2);
    braid_thread_t *t = NULL;
    int rc = braid_thread_new(&t, name, daemon);
    return lsync_push_new(L, rc, (braid_object_t *)t);
}

typedef struct start_info {
    char *path, *cpath;
} start_info_t;

static char *dup_package_field(lua_State *L, const char *key)
{
    char *s = NULL;
    lua_getglobal(L, "package");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, key);
        if (lua_type(L, -1) == LUA_TSTRING)
            s = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return s;
}

/* package[key] = v (package at the top) unless it is that already (the
 * starter's paths are most often the defaults the new state has too). */
static void set_package_field(lua_State *L, const char *key, const char *v)
{
    if (!v)
        return;
    lua_getfield(L, -1, key);
    const char *cur = lua_tostring(L, -1);
    int same = cur && strcmp(cur, v) == 0;
    lua_pop(L, 1);
    if (!same) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, key);
    }
}

/* The thread's state asked to stop: raise Cancelled at the next instruction
 * (only if the cancellation is still pending: a blocked call may have
 * delivered it already). */
static void lthread_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    lbraid_check_cancel(L);
}

/* Called by braid_thread_cancel from another OS thread, under the thread's
 * mutex, while the state is alive (as lua.c does from a signal handler). */
static void lthread_interrupt(void *data)
{
    lua_sethook((lua_State *)data, lthread_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* Body of a thread, protected. Upvalue-free; arg 1: the braid_thread_t.
 * Decodes (self, excepthook) and (args..., target) and calls target(args)
 * or, for a Thread with fields or a subclass, threading._run(handle, self,
 * target, args...). Returns the results. */
static int lthread_body(lua_State *L)
{
    braid_thread_t *t = lua_touserdata(L, 1);
    lua_settop(L, 0);
    const braid_buf_t *sb = braid_thread_self_buf(t);
    if (sb->len) {
        int n = lbraid_decode_seq(L, sb->data, sb->len);
        lua_settop(L, lua_gettop(L) - n + 2); /* self, hook */
        lua_rawsetp(L, LUA_REGISTRYINDEX, &HOOK_KEY);
    } else {
        lua_pushnil(L);
    }
    /* stack: self|nil */
    braid_buf_t *ab = braid_thread_args_buf(t);
    int n = lbraid_decode_seq(L, ab->data, ab->len);
    braid_buf_free(ab);
    /* stack: self, args(n-1)..., target */
    lbraid_state_learn(L); /* what this kind of thread touches before its target runs */
    lbraid_check_cancel(L);
    if (lua_isnil(L, 1)) {
        lua_insert(L, 2); /* nil, target, args... */
        lua_call(L, n - 1, LUA_MULTRET);
        return lua_gettop(L) - 1;
    }
    lua_insert(L, 2); /* self, target, args... */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "braid.threading");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "_run");
    lua_remove(L, -2);
    lua_insert(L, 1); /* _run, self, target, args... */
    lbraid_push_object(L, (braid_object_t *)t);
    lua_insert(L, 2); /* _run, handle, self, target, args... */
    lua_call(L, n + 2, LUA_MULTRET);
    return lua_gettop(L);
}

/* Encodes the values above arg 1 (a braid_buf_t*) as a sequence. */
static int lthread_encode(lua_State *L)
{
    braid_buf_t *out = lua_touserdata(L, 1);
    lbraid_encode_seq(L, 2, lua_gettop(L) - 1, out, "result");
    return 0;
}

/* Writes "Exception in thread NAME:" and the traceback to stderr. */
static int lthread_default_hook(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "exc_value");
    if (lbraid_is_error(L, -1, "Cancelled"))
        return 0; /* a requested stop is not reported */
    const char *name = NULL;
    char *cname = NULL;
    if (lua_getfield(L, 1, "thread") != LUA_TNIL) {
        lua_getfield(L, -1, "name");
        name = lua_tostring(L, -1);
    }
    if (!name) {
        braid_thread_t *cur = braid_thread_current();
        cname = cur ? braid_thread_name(cur) : NULL;
        name = cname ? cname : "?";
    }
    const char *tb = NULL;
    if (lua_getfield(L, 1, "exc_traceback") == LUA_TSTRING)
        tb = lua_tostring(L, -1);
    else
        tb = luaL_tolstring(L, 2, NULL);
    flockfile(stderr);
    fprintf(stderr, "Exception in thread %s:\n%s\n", name, tb);
    fflush(stderr);
    funlockfile(stderr);
    free(cname);
    return 0;
}

/* Calls hook({exc_value=, exc_traceback=, thread=}) for the error at the top;
 * the thread object comes from threading.current_thread(). Arg 1: the error,
 * arg 2: traceback, arg 3: the hook. */
static int lthread_call_hook(lua_State *L)
{
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "exc_value");
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "exc_traceback");
    lua_getglobal(L, "require");
    lua_pushliteral(L, "braid.threading");
    if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
        lua_getfield(L, -1, "current_thread");
        if (lua_pcall(L, 0, 1, 0) == LUA_OK)
            lua_setfield(L, -3, "thread");
        else
            lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_pushvalue(L, 3);
    lua_insert(L, -2);
    lua_call(L, 1, 0);
    return 0;
}

/* Reports the failure (error value at the top) through the excepthook in
 * force for this thread. Stack effect: 0. */
static void lthread_report(lua_State *L)
{
    int err = lua_gettop(L);
    /* hook: this state's threading.excepthook if reassigned, else the one
     * handed over at start, else the default */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_getfield(L, -1, "braid.threading");
    int hook = 0;
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "excepthook");
        lua_getfield(L, -2, "__excepthook");
        if (!lua_isnil(L, -2) && !lua_rawequal(L, -1, -2)) {
            lua_pop(L, 1);
            hook = lua_gettop(L);
        } else {
            lua_pop(L, 2);
        }
    }
    if (!hook) {
        if (lua_rawgetp(L, LUA_REGISTRYINDEX, &HOOK_KEY) != LUA_TNIL) {
            hook = lua_gettop(L);
        } else {
            lua_pop(L, 1);
            lua_pushcfunction(L, lthread_default_hook);
            hook = lua_gettop(L);
        }
    }
    if (braid_trace_enabled())
        lbraid_trace_error(L, err);
    lua_pushcfunction(L, lthread_call_hook);
    lua_pushvalue(L, err);
    lbraid_push_traceback(L, err);
    lua_pushvalue(L, hook);
    if (lbraid_pcall(L, 3, 0) != LUA_OK) {
        lbraid_push_traceback(L, -1);
        const char *msg = lua_tostring(L, -1) ? lua_tostring(L, -1) : luaL_tolstring(L, -2, NULL);
        flockfile(stderr);
        fprintf(stderr, "Exception in threading.excepthook:\n%s\n", msg);
        fflush(stderr);
        funlockfile(stderr);
    }
    lua_settop(L, err);
}

/* Thread states built ahead of time by core/thread_prep.c's preparer: the
 * standard libraries and braid preloaded, nothing else (no user code). */
static void *lthread_prep(void)
{
    return lbraid_newstate_thread();
}

static void lthread_discard(void *L)
{
    lbraid_closestate_thread(L);
}

/* The new OS thread: its own state, the body, the outcome, the report. */
static void lthread_entry(braid_thread_t *t, void *arg)
{
    start_info_t *si = arg;
    braid_buf_t out;
    braid_buf_init(&out);
    lua_State *L = braid_thread_take_prepared();
    if (!L)
        L = lbraid_newstate_thread();
    if (!L) {
        free(si->path);
        free(si->cpath);
        free(si);
        fprintf(stderr, "Exception in thread: cannot create a Lua state (out of memory)\n");
        braid_thread_set_result(t, &out, 1, NULL);
        return;
    }
    if (lua_getglobal(L, "package") == LUA_TTABLE) {
        set_package_field(L, "path", si->path);
        set_package_field(L, "cpath", si->cpath);
    }
    lua_pop(L, 1);
    free(si->path);
    free(si->cpath);
    free(si);
    lbraid_ctx_t *ctx = lbraid_ctx(L);
    ctx->thread = (braid_object_t *)t;
    ctx->waiter = braid_thread_waiter(t);
    braid_thread_set_cancel_hook(t, lthread_interrupt, L);
    lbraid_dump_attach(L, LDUMP_THREAD);

    lua_pushcfunction(L, lthread_body);
    lua_pushlightuserdata(L, t);
    int failed = lbraid_pcall(L, 1, LUA_MULTRET) != LUA_OK;
    if (!failed) {
        lua_pushcfunction(L, lthread_encode);
        lua_insert(L, 1);
        lua_pushlightuserdata(L, &out);
        lua_insert(L, 2);
        if (lbraid_pcall(L, lua_gettop(L) - 1, 0) != LUA_OK) {
            braid_buf_reset(&out);
            failed = 1; /* a result that cannot cross: report that */
        }
    }
    if (failed) {
        lua_settop(L, 1);
        lthread_report(L);
        lbraid_encode_failure(L, 1, &out);
    }
    braid_thread_set_result(t, &out, failed, NULL);
    braid_thread_set_cancel_hook(t, NULL, NULL);
    lbraid_closestate_thread(L);
    braid_buf_free(&out);
}

/* _start(handle, selfcopy|nil, hook|nil, target, args|nil) */
static int lthread_start(lua_State *L)
{
    braid_thread_t *t = lthread_check(L, 1);
    lua_settop(L, 5);
    if (braid_thread_state(t) != BRAID_THREAD_NEW)
        return lbraid_error(L, "RuntimeError", "threads can only be started once");
    braid_buf_t *self = lbraid_push_buf(L); /* 6 */
    braid_buf_t *args = lbraid_push_buf(L); /* 7 */
    if (!lua_isnil(L, 2) || !lua_isnil(L, 3))
        lbraid_encode_seq(L, 2, 2, self, "thread");
    /* args..., target: the args keep their own paths (args[i]) */
    lua_Integer n = 0;
    if (lua_istable(L, 5)) {
        if (lua_getfield(L, 5, "n") == LUA_TNUMBER)
            n = lua_tointeger(L, -1);
        else
            n = (lua_Integer)lua_rawlen(L, 5);
        lua_pop(L, 1);
    } else if (!lua_isnil(L, 5)) {
        return luaL_typeerror(L, 5, "table");
    }
    if (n < 0 || n > 100000)
        return luaL_argerror(L, 5, "bad args.n");
    luaL_checkstack(L, (int)n + 4, "too many arguments");
    int base = lua_gettop(L) + 1;
    for (lua_Integer i = 1; i <= n; i++)
        lua_geti(L, 5, i);
    lua_pushvalue(L, 4);
    lbraid_encode_seq(L, base, (int)n + 1, args, "args");
    lua_settop(L, 7);
    start_info_t *si = calloc(1, sizeof *si);
    if (!si)
        return lbraid_core_error(L, BRAID_ENOMEM, NULL);
    si->path = dup_package_field(L, "path");
    si->cpath = dup_package_field(L, "cpath");
    int rc = braid_thread_set_payload(t, self, args);
    if (rc == 0)
        rc = braid_thread_start(t, lthread_entry, si);
    if (rc) {
        free(si->path);
        free(si->cpath);
        free(si);
        if (rc == BRAID_ESTATE)
            return lbraid_error(L, "RuntimeError", "threads can only be started once");
        return lbraid_error(L, "RuntimeError", "can't start new thread");
    }
    return 0;
}

static int lthread_join_op(lua_State *L)
{
    return braid_thread_join(lsync_box_at1(L), lsync_deadline_at2(L));
}

static int lthread_join_done(lua_State *L, int rc)
{
    if (rc && rc != BRAID_ETIMEOUT)
        return lbraid_core_error(L, rc, NULL);
    return 0;
}

static int lthread_result_done(lua_State *L, int rc);

static const lbraid_waitop_t lthread_join_wait = {lthread_join_op, lthread_join_done};
static const lbraid_waitop_t lthread_result_wait = {lthread_join_op, lthread_result_done};

/* Checks a join of the thread at 1 (timeout at 2) and runs it with wo. */
static int lthread_do_join(lua_State *L, const lbraid_waitop_t *wo)
{
    braid_thread_t *t = lthread_check(L, 1);
    int64_t deadline = lbraid_opt_deadline(L, 2);
    if (t == braid_thread_current())
        return lbraid_error(L, "RuntimeError", "cannot join current thread");
    if (braid_thread_state(t) == BRAID_THREAD_NEW)
        return lbraid_error(L, "RuntimeError", "cannot join thread before it is started");
    lbraid_poll(L);
    if (lsync_in_loop(L))
        return lsync_wait_in_loop(L, deadline, wo);
    return wo->done(L, braid_thread_join(t, deadline));
}

/* _join(handle, timeout) */
static int lthread_join(lua_State *L)
{
    return lthread_do_join(L, &lthread_join_wait);
}

/* _result(handle, timeout): the target's results, or its error re-raised */
static int lthread_result(lua_State *L)
{
    return lthread_do_join(L, &lthread_result_wait);
}

static int lthread_result_done(lua_State *L, int rc)
{
    lthread_join_done(L, rc);
    braid_thread_t *t = lsync_box_at1(L);
    const braid_buf_t *out;
    int failed;
    const char *tb;
    if (braid_thread_result(t, &out, &failed, &tb) != 0)
        return lbraid_error(L, "Timeout", "thread did not finish in time");
    lua_settop(L, 0);
    if (out->len == 0)
        return failed ? lbraid_error(L, "RuntimeError", "thread failed") : 0;
    return lbraid_push_outcome(L, out, failed);
}

static int lthread_is_alive(lua_State *L)
{
    lua_pushboolean(L, braid_thread_is_alive(lthread_check(L, 1)));
    return 1;
}

static int lthread_started(lua_State *L)
{
    lua_pushboolean(L, braid_thread_state(lthread_check(L, 1)) != BRAID_THREAD_NEW);
    return 1;
}

static int lthread_name(lua_State *L)
{
    char *n = braid_thread_name(lthread_check(L, 1));
    if (!n)
        return lbraid_core_error(L, BRAID_ENOMEM, NULL);
    lua_pushstring(L, n);
    free(n);
    return 1;
}

static int lthread_set_name(lua_State *L)
{
    braid_thread_t *t = lthread_check(L, 1);
    const char *n = luaL_tolstring(L, 2, NULL);
    if (braid_thread_set_name(t, n))
        return lbraid_core_error(L, BRAID_ENOMEM, NULL);
    return 0;
}

static int lthread_daemon(lua_State *L)
{
    lua_pushboolean(L, braid_thread_daemon(lthread_check(L, 1)));
    return 1;
}

static int lthread_set_daemon(lua_State *L)
{
    if (braid_thread_set_daemon(lthread_check(L, 1), lua_toboolean(L, 2)))
        return lbraid_error(L, "RuntimeError", "cannot set daemon status of active thread");
    return 0;
}

static int lthread_ident(lua_State *L)
{
    uint64_t id = braid_thread_ident(lthread_check(L, 1));
    if (id)
        lua_pushinteger(L, (lua_Integer)id);
    else
        lua_pushnil(L);
    return 1;
}

static int lthread_native_id(lua_State *L)
{
    long id = braid_thread_native_id(lthread_check(L, 1));
    if (id)
        lua_pushinteger(L, id);
    else
        lua_pushnil(L);
    return 1;
}

static int lthread_cancel(lua_State *L)
{
    braid_thread_t *t = lthread_check(L, 1);
    if (braid_thread_state(t) == BRAID_THREAD_NEW)
        return lbraid_error(L, "RuntimeError", "cannot cancel a thread before it is started");
    int rc = braid_thread_cancel(t);
    lua_pushboolean(L, rc == 0);
    return 1;
}

static int lthread_id(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)((braid_object_t *)lthread_check(L, 1))->id);
    return 1;
}

/* _selfcopy(handle) -> the thread's description decoded here, or nil */
static int lthread_selfcopy(lua_State *L)
{
    braid_thread_t *t = lthread_check(L, 1);
    if (braid_thread_state(t) == BRAID_THREAD_NEW)
        return 0;
    const braid_buf_t *sb = braid_thread_self_buf(t);
    if (!sb->len)
        return 0;
    int top = lua_gettop(L);
    lbraid_decode_seq(L, sb->data, sb->len);
    lua_settop(L, top + 1);
    return 1;
}

static int lthread_current(lua_State *L)
{
    braid_thread_t *t = braid_thread_current();
    if (!t)
        return lbraid_core_error(L, BRAID_ENOMEM, NULL);
    lbraid_push_object(L, (braid_object_t *)t);
    return 1;
}

static int lthread_main(lua_State *L)
{
    braid_thread_t *t = braid_thread_main();
    if (!t)
        return lbraid_core_error(L, BRAID_ENOMEM, NULL);
    lbraid_push_object(L, (braid_object_t *)t);
    return 1;
}

static int lthread_enumerate(lua_State *L)
{
    braid_thread_t **list;
    size_t n;
    if (braid_thread_enumerate(&list, &n))
        return lbraid_core_error(L, BRAID_ENOMEM, NULL);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lbraid_push_object(L, (braid_object_t *)list[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    braid_thread_list_free(list, n);
    return 1;
}

static int lthread_active_count(lua_State *L)
{
    lua_pushinteger(L, braid_thread_active_count());
    return 1;
}

static int lthread_get_ident(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)(uint64_t)pthread_self());
    return 1;
}

static int lthread_get_native_id(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)gettid());
    return 1;
}

static int lthread_in_thread(lua_State *L)
{
    lua_pushboolean(L, lbraid_ctx(L)->thread != NULL);
    return 1;
}

static int lthread_monotonic(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)braid_clock_now() / 1e9);
    return 1;
}

static const luaL_Reg lthread_handle_methods[] = {{NULL, NULL}};

static const luaL_Reg lthreading_funcs[] = {
    {"active_count", lthread_active_count},
    {"get_ident", lthread_get_ident},
    {"get_native_id", lthread_get_native_id},
    {"__excepthook", lthread_default_hook},
    {"_new", lthread_new},
    {"_start", lthread_start},
    {"_join", lthread_join},
    {"_result", lthread_result},
    {"_is_alive", lthread_is_alive},
    {"_started", lthread_started},
    {"_name", lthread_name},
    {"_set_name", lthread_set_name},
    {"_daemon", lthread_daemon},
    {"_set_daemon", lthread_set_daemon},
    {"_ident", lthread_ident},
    {"_native_id", lthread_native_id},
    {"_cancel", lthread_cancel},
    {"_id", lthread_id},
    {"_selfcopy", lthread_selfcopy},
    {"_current", lthread_current},
    {"_main", lthread_main},
    {"_enumerate", lthread_enumerate},
    {"_in_thread", lthread_in_thread},
    {"_monotonic", lthread_monotonic},
    {NULL, NULL},
};

int lbraid_meta_threading(lua_State *L, const braid_object_type_t *type)
{
    if (type != &braid_thread_type)
        return lsync_open_meta(L, 0, type);
    lsync_add_meta(L, 0, "ThreadHandle", type, lthread_handle_methods);
    return 1;
}

int lbraid_open_threading(lua_State *L)
{
    luaL_newlib(L, lthreading_funcs);
    int mod = lua_gettop(L);
    lua_newtable(L);
    int methods = lua_gettop(L);
    lsync_open(L, mod, methods);
    lsync_add_meta(L, methods, "ThreadHandle", &braid_thread_type, lthread_handle_methods);
    lua_setfield(L, mod, "__methods");
    lua_pushnumber(L, TIMEOUT_MAX);
    lua_setfield(L, mod, "TIMEOUT_MAX");
    braid_thread_set_prep(lthread_prep, lthread_discard);
    return 1;
}
