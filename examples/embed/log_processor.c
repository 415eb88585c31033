/* A log processor embedding braid: C threads read "log lines" (made up here)
 * and put them into a braid Queue; a Lua script consumes them with a
 * ThreadPoolExecutor and hands a summary back to C.
 * Usage: log_processor [dir of log_processor.lua] */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <braid.h>

#define PRODUCERS 3
#define LINES_EACH 1000

static const char *const levels[] = {"INFO", "WARN", "ERROR"};

/* The host's own library: logfmt.level("2024-01-01 WARN disk") -> "WARN". */
static int logfmt_level(lua_State *L)
{
    const char *line = luaL_checkstring(L, 1);
    const char *sp = strchr(line, ' ');
    const char *end = sp ? strchr(sp + 1, ' ') : NULL;
    if (!sp || !end)
        return luaL_error(L, "malformed log line: %s", line);
    lua_pushlstring(L, sp + 1, (size_t)(end - sp - 1));
    return 1;
}

static int luaopen_logfmt(lua_State *L)
{
    static const luaL_Reg fns[] = {{"level", logfmt_level}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}

/* The state init hook: every braid thread and worker state gets logfmt as
 * a module (package.loaded) and a global, like the host's own state. */
static void open_logfmt(lua_State *L, void *ud)
{
    (void)ud;
    luaL_requiref(L, "logfmt", luaopen_logfmt, 1);
    lua_pop(L, 1);
}

typedef struct producer {
    braid_queue_t *q;
    int id, failures;
} producer_t;

/* A host thread: never touches a lua_State, only the queue handle. */
static void *produce(void *p)
{
    producer_t *pr = p;
    char line[64];
    for (int i = 0; i < LINES_EACH; i++) {
        int n =
            snprintf(line, sizeof line, "t%d-%04d %s event", pr->id, i, levels[(i + pr->id) % 3]);
        braid_scalar_t v = {.type = BRAID_STRING, .v.string = {line, (size_t)n}};
        if (braid_host_queue_put(pr->q, &v, 10.0) != 0) /* bounded: waits for room */
            pr->failures++;
    }
    braid_scalar_t end = {.type = BRAID_NIL};
    if (braid_host_queue_put(pr->q, &end, 10.0) != 0)
        pr->failures++;
    return NULL;
}

static lua_Integer field(lua_State *L, const char *name)
{
    lua_getfield(L, -1, name);
    lua_Integer n = lua_tointeger(L, -1);
    lua_pop(L, 1);
    return n;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    char path[4096];
    snprintf(path, sizeof path, "%s/log_processor.lua", dir);

    braid_set_state_init(open_logfmt, NULL); /* before any thread starts */
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    braid_openlibs(L);
    open_logfmt(L, NULL);

    braid_queue_t *q = braid_host_queue_new(100);
    if (luaL_loadfile(L, path) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        fprintf(stderr, "log_processor: %s\n", lua_tostring(L, -1));
        return 1;
    }
    pthread_t threads[PRODUCERS];
    producer_t prods[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        prods[i] = (producer_t){q, i, 0};
        pthread_create(&threads[i], NULL, produce, &prods[i]);
    }
    braid_host_push(L, q); /* the script's function(lines, producers) */
    lua_pushinteger(L, PRODUCERS);
    int status = lua_pcall(L, 2, 1, 0);
    if (status != LUA_OK) {
        fprintf(stderr, "log_processor: %s\n", luaL_tolstring(L, -1, NULL));
        lua_pop(L, 1);
        braid_host_queue_shutdown(q, 1); /* producers' puts fail at once */
    }
    int failures = 0;
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(threads[i], NULL);
        failures += prods[i].failures;
    }
    int ok = status == LUA_OK && failures == 0;
    if (status == LUA_OK) {
        lua_Integer info = field(L, "INFO"), warn = field(L, "WARN"), error = field(L, "ERROR");
        printf("lines: %lld  INFO %lld  WARN %lld  ERROR %lld  (batches: %lld)\n",
               (long long)(info + warn + error),
               (long long)info,
               (long long)warn,
               (long long)error,
               (long long)field(L, "batches"));
        ok = ok && info + warn + error == PRODUCERS * LINES_EACH && info == LINES_EACH &&
             warn == LINES_EACH && error == LINES_EACH;
    }
    lua_pop(L, 1);
    braid_host_release(q);
    if (!braid_shutdown(L, 30.0)) {
        fprintf(stderr, "log_processor: threads still running at shutdown\n");
        ok = 0;
    }
    lua_close(L);
    puts(ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
