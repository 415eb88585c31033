/* Two independent host lua_States, each on its own host thread, each
 * embedding braid with its own threads and pool. One shuts down while the
 * other's thread is still blocked; the other's pool keeps working after,
 * and then it shuts down too. Usage: two_states */
#include <pthread.h>
#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <braid.h>

static braid_queue_t *gate; /* the host opens it once state A is closed */

/* Runs code in a fresh state on the calling thread; returns its first
 * result as an integer (-1 on error) and leaves the state open in *out. */
static long run(const char *name, const char *code, lua_State **out)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    braid_openlibs(L);
    braid_host_push(L, gate);
    lua_setglobal(L, "gate");
    *out = L;
    if (luaL_dostring(L, code) != LUA_OK) {
        fprintf(stderr, "%s: %s\n", name, lua_tostring(L, -1));
        return -1;
    }
    long r = (long)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return r;
}

static const char *const code_a =
    "local threading = require 'braid.threading'\n"
    "local futures = require 'braid.futures'\n"
    "local pool = futures.ThreadPoolExecutor{max_workers = 2}\n"
    "local f = pool:submit(function(n) local s = 0 for i = 1, n do s = s + i end return s end, "
    "1000)\n"
    "local t = threading.Thread{target = function() return 1 end}\n"
    "t:start()\n"
    "return f:result()\n"; /* pool and thread left for braid_shutdown */

static const char *const code_b1 =
    "local threading = require 'braid.threading'\n"
    "local futures = require 'braid.futures'\n"
    "pool = futures.ThreadPoolExecutor{max_workers = 2}\n"
    "waiter = threading.Thread{target = function(g) return g:get() end, args = {gate}}\n"
    "waiter:start()\n" /* non-daemon, blocked until the host opens the gate */
    "return pool:submit(function() return 2 end):result()\n";

static const char *const code_b2 =
    "waiter:join()\n"
    "return pool:submit(function(x) return x * 10 end, waiter:result()):result()\n";

static void *host_a(void *arg)
{
    long *ok = arg;
    lua_State *L;
    long r = run("A", code_a, &L);
    int done = braid_shutdown(L, 10.0); /* must not wait for B's thread */
    lua_close(L);
    printf("A: result %ld, shut down %s\n", r, done ? "cleanly" : "with threads running");
    *ok = r == 500500 && done;
    return NULL;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int a_closed, b_started;

static void *host_b(void *arg)
{
    long *ok = arg;
    lua_State *L;
    long r1 = run("B", code_b1, &L);
    pthread_mutex_lock(&mu);
    b_started = 1;
    pthread_cond_broadcast(&cv);
    while (!a_closed)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    long r2 = -1;
    if (luaL_dostring(L, code_b2) == LUA_OK)
        r2 = (long)lua_tointeger(L, -1);
    else
        fprintf(stderr, "B: %s\n", lua_tostring(L, -1));
    int done = braid_shutdown(L, 10.0);
    lua_close(L);
    printf("B: results %ld %ld, shut down %s\n", r1, r2, done ? "cleanly" : "with threads running");
    *ok = r1 == 2 && r2 == 70 && done;
    return NULL;
}

int main(void)
{
    gate = braid_host_queue_new(0);
    long ok_a = 0, ok_b = 0;
    pthread_t ta, tb;
    pthread_create(&tb, NULL, host_b, &ok_b);
    pthread_mutex_lock(&mu);
    while (!b_started) /* B's blocked thread exists before A shuts down */
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    pthread_create(&ta, NULL, host_a, &ok_a);
    pthread_join(ta, NULL);
    braid_scalar_t seven = {.type = BRAID_INTEGER, .v.integer = 7};
    braid_host_queue_put(gate, &seven, -1); /* B's thread returns 7 */
    pthread_mutex_lock(&mu);
    a_closed = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(tb, NULL);
    braid_host_release(gate);
    puts(ok_a && ok_b ? "ok" : "FAILED");
    return ok_a && ok_b ? 0 : 1;
}
