/* The embedding API of bindings/braid.h from a host's point of view: queue
 * handles used by C threads, futures and events completed from C, the state
 * init hook, and braid_shutdown's result. Links libbraid like a host. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "../core/check.h"
#include "braid.h"

static lua_State *L;

/* Runs code; returns its first result left on the stack (nil on error). */
static int dostr(const char *code)
{
    lua_settop(L, 0);
    if (luaL_dostring(L, code) != LUA_OK) {
        fprintf(stderr, "lua error: %s\n", luaL_tolstring(L, -1, NULL));
        lua_settop(L, 0);
        return 0;
    }
    return 1;
}

static void test_queue_scalars(void)
{
    braid_queue_t *q = braid_host_queue_new(0);
    CHECK(q != NULL);
    braid_scalar_t in[] = {
        {.type = BRAID_NIL},
        {.type = BRAID_BOOLEAN, .v.boolean = 1},
        {.type = BRAID_INTEGER, .v.integer = -1234567890123LL},
        {.type = BRAID_NUMBER, .v.number = 2.5},
        {.type = BRAID_STRING, .v.string = {"a\0b", 3}},
    };
    for (int i = 0; i < 5; i++)
        CHECK(braid_host_queue_put(q, &in[i], 0) == 0);
    /* Lua sees them as Lua values */
    braid_host_push(L, q);
    lua_setglobal(L, "q");
    CHECK(dostr("local a, b, c, d, e = q:get(), q:get(), q:get(), q:get(), q:get()\n"
                "return a == nil and b == true and c == -1234567890123 and math.type(c) == "
                "'integer' and d == 2.5 and e == 'a\\0b'"));
    CHECK(lua_toboolean(L, -1));
    /* and what Lua puts, C gets */
    CHECK(dostr("q:put(42); q:put('hi'); q:put(false); q:put({1}); return true"));
    braid_scalar_t out;
    CHECK(braid_host_queue_get(q, &out, 0) == 0 && out.type == BRAID_INTEGER &&
          out.v.integer == 42);
    CHECK(braid_host_queue_get(q, &out, 0) == 0 && out.type == BRAID_STRING &&
          out.v.string.len == 2 && strcmp(out.v.string.ptr, "hi") == 0);
    braid_scalar_free(&out);
    braid_scalar_free(&out); /* twice is safe */
    CHECK(braid_host_queue_get(q, &out, 0) == 0 && out.type == BRAID_BOOLEAN && !out.v.boolean);
    CHECK(braid_host_queue_get(q, &out, 0) == BRAID_ETYPE); /* a table */
    CHECK(braid_host_queue_get(q, &out, 0.05) == BRAID_EEMPTY);
    braid_scalar_t bad = {.type = (braid_scalar_type_t)99};
    CHECK(braid_host_queue_put(q, &bad, 0) == BRAID_EINVAL);
    braid_host_queue_shutdown(q, 0);
    CHECK(braid_host_queue_put(q, &in[1], 0) == BRAID_ESHUTDOWN);
    CHECK(braid_host_queue_get(q, &out, 1) == BRAID_ESHUTDOWN);
    braid_host_release(q);
    dostr("q = nil; collectgarbage(); return true");
}

static void test_queue_full_and_encoded(void)
{
    CHECK(dostr("q = require('braid.queue').Queue(1); return q"));
    braid_queue_t *q = braid_host_toqueue(L, -1);
    CHECK(q != NULL);
    CHECK(braid_host_toqueue(L, LUA_REGISTRYINDEX) == NULL); /* not a queue */
    CHECK(dostr("return require('braid').encode({a = 1, list = {1, 2, 3}})"));
    size_t n;
    const char *enc = lua_tolstring(L, -1, &n);
    CHECK(braid_host_queue_put_encoded(q, enc, n, 0) == 0);
    CHECK(braid_host_queue_put_encoded(q, enc, n, 0.02) == BRAID_EFULL);
    CHECK(braid_host_queue_put_encoded(q, "\xff", 1, 0) == BRAID_ECORRUPT);
    void *data;
    size_t len;
    CHECK(braid_host_queue_get_encoded(q, &data, &len, 0) == 0 && len == n &&
          !memcmp(data, enc, n));
    CHECK(braid_host_queue_put_encoded(q, data, len, 0) == 0);
    free(data);
    CHECK(dostr("local t = q:get(); return t.a == 1 and #t.list == 3"));
    CHECK(lua_toboolean(L, -1));
    braid_host_release(q);
}

typedef struct job {
    braid_future_t *f;
    braid_event_t *e;
    braid_queue_t *q;
} job_t;

static void *completer(void *p)
{
    job_t *j = p;
    braid_scalar_t v = {.type = BRAID_STRING, .v.string = {"from C", 6}};
    braid_scalar_t got;
    /* wait for the script's go-ahead, then complete the future and the event */
    if (braid_host_queue_get(j->q, &got, 10) == 0 && got.type == BRAID_INTEGER)
        braid_host_future_set_result(j->f, &v);
    braid_host_event_set(j->e);
    return NULL;
}

static void test_future_and_event_from_a_thread(void)
{
    CHECK(dostr("f = require('braid.futures').Future(); e = require('braid.threading').Event()\n"
                "go = require('braid.queue').Queue(); return f, e, go"));
    job_t j = {braid_host_tofuture(L, 1), braid_host_toevent(L, 2), braid_host_toqueue(L, 3)};
    CHECK(j.f && j.e && j.q);
    CHECK(braid_host_tofuture(L, 2) == NULL && braid_host_toevent(L, 1) == NULL);
    pthread_t t;
    pthread_create(&t, NULL, completer, &j);
    CHECK(dostr("go:put(1); return e:wait(10) and f:result(10) == 'from C'"));
    CHECK(lua_toboolean(L, -1));
    pthread_join(t, NULL);
    CHECK(braid_host_event_is_set(j.e));
    braid_host_event_clear(j.e);
    CHECK(!braid_host_event_is_set(j.e));
    braid_scalar_t one = {.type = BRAID_INTEGER, .v.integer = 1};
    CHECK(braid_host_future_set_result(j.f, &one) == BRAID_ESTATE); /* first outcome stays */
    braid_host_release(j.f);
    braid_host_release(j.e);
    braid_host_release(j.q);
    braid_host_release(NULL);

    CHECK(dostr("g = require('braid.futures').Future(); return g"));
    braid_future_t *g = braid_host_tofuture(L, 1);
    CHECK(braid_host_future_set_exception(g, "disk on fire") == 0);
    CHECK(dostr("local ok, err = pcall(g.result, g); return not ok and err == 'disk on fire'"));
    CHECK(lua_toboolean(L, -1));
    braid_host_release(g);
    CHECK(dostr("h = require('braid.futures').Future(); return h, require('braid').encode({7})"));
    braid_future_t *h = braid_host_tofuture(L, 1);
    size_t n;
    const char *enc = lua_tolstring(L, 2, &n);
    CHECK(braid_host_future_set_result_encoded(h, enc, n) == 0);
    CHECK(dostr("return h:result()[1] == 7"));
    CHECK(lua_toboolean(L, -1));
    braid_host_release(h);
}

static void hook(lua_State *S, void *ud)
{
    lua_pushinteger(S, *(int *)ud);
    lua_setglobal(S, "HOOKED");
}

static void test_state_init_hook(void)
{
    CHECK(dostr("local threading = require 'braid.threading'\n"
                "local t = threading.Thread{target = function() return HOOKED end}\n"
                "t:start(); return t:result()"));
    CHECK(lua_tointeger(L, -1) == 42);
    CHECK(dostr("local futures = require 'braid.futures'\n"
                "local pool <close> = futures.ThreadPoolExecutor{max_workers = 1}\n"
                "return pool:submit(function() return HOOKED end):result()"));
    CHECK(lua_tointeger(L, -1) == 42);
}

/* A thread's uncaught error reaches the hook the host installed, not
 * exit() or abort(). */
static void test_excepthook_replaceable(void)
{
    CHECK(dostr("local threading = require 'braid.threading'\n"
                "caught = require('braid.queue').Queue()\n"
                "threading.excepthook = function(a) caught:put(a.thread.name .. ': ' .. "
                "tostring(a.exc_value)) end\n"
                "local t = threading.Thread{name = 'w', target = function() error('boom', 0) end}\n"
                "t:start(); t:join()\n"
                "return caught"));
    braid_queue_t *q = braid_host_toqueue(L, -1);
    braid_scalar_t msg;
    CHECK(q && braid_host_queue_get(q, &msg, 10) == 0 && msg.type == BRAID_STRING &&
          strcmp(msg.v.string.ptr, "w: boom") == 0);
    braid_scalar_free(&msg);
    braid_host_release(q);
}

static void test_shutdown_result(void)
{
    CHECK(dostr("blocker = require('braid.queue').Queue()\n"
                "local threading = require 'braid.threading'\n"
                "threading.Thread{target = function(q) q:get() end, args = {blocker}}:start()\n"
                "return blocker"));
    braid_queue_t *q = braid_host_toqueue(L, -1);
    CHECK(braid_shutdown(L, 0.05) == 0); /* still blocked */
    braid_scalar_t v = {.type = BRAID_NIL};
    CHECK(braid_host_queue_put(q, &v, 0) == 0);
    CHECK(braid_shutdown(L, 10) == 1);
    braid_host_release(q);
    /* braid.h's codes are core/error.h's */
    CHECK(strcmp(braid_host_strerror(BRAID_ETIMEOUT), "timed out") == 0);
    CHECK(strcmp(braid_host_strerror(BRAID_EEMPTY), "empty") == 0);
    CHECK(strcmp(braid_host_strerror(BRAID_EFULL), "full") == 0);
    CHECK(strcmp(braid_host_strerror(BRAID_ESHUTDOWN), "shut down") == 0);
    CHECK(strcmp(braid_host_strerror(BRAID_ECORRUPT), "malformed encoded value") == 0);
    CHECK(strcmp(braid_host_strerror(BRAID_ETYPE), "values are not comparable") == 0);
    CHECK(strcmp(braid_host_strerror(BRAID_EINTR), "interrupted!") == 0);
    CHECK(strcmp(braid_host_strerror(BRAID_ESUSPEND), "would block inside a task") == 0);
    CHECK(strcmp(braid_host_strerror(BRAID_EEOF), "end of file") == 0);
}

int main(void)
{
    static int answer = 42;
    braid_set_state_init(hook, &answer);
    L = luaL_newstate();
    luaL_openlibs(L);
    braid_openlibs(L);
    RUN(test_queue_scalars);
    RUN(test_queue_full_and_encoded);
    RUN(test_future_and_event_from_a_thread);
    RUN(test_state_init_hook);
    RUN(test_excepthook_replaceable);
    RUN(test_shutdown_result);
    CHECK(braid_shutdown(L, 10) == 1);
    lua_close(L);
    return CHECK_DONE();
}
