/* braid.trace: start/stop the timeline (core/trace.c), and the private
 * helpers the Lua modules use to record task steps and process-pool jobs. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "trace.h"
#include "lbraid.h"

/* braid.trace.start(path) */
static int ltrace_start(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *name = luaL_optstring(L, 2, NULL);
    int rc = braid_trace_start(path, name);
    if (rc == BRAID_EINVAL)
        return lbraid_error(
            L, "RuntimeError", "a trace is already being recorded (to %s)", braid_trace_path());
    if (rc)
        return lbraid_error(L, "OSError", "cannot open the trace file %s", path);
    return 0;
}

/* braid.trace.stop() -> path of the finished file, or nil if not recording */
static int ltrace_stop(lua_State *L)
{
    const char *p = braid_trace_path();
    if (!p) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, p);
    braid_trace_stop();
    return 1;
}

/* braid.trace.path() -> the file being recorded, or nil */
static int ltrace_path(lua_State *L)
{
    const char *p = braid_trace_path();
    if (p)
        lua_pushstring(L, p);
    else
        lua_pushnil(L);
    return 1;
}

static int ltrace_on(lua_State *L)
{
    lua_pushboolean(L, braid_trace_enabled());
    return 1;
}

static int ltrace_now(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)braid_clock_now());
    return 1;
}

/* Reads the table at idx (string/number/boolean values) into a. */
static int read_args(lua_State *L, int idx, braid_trace_arg_t *a, int max)
{
    int n = 0;
    if (lua_type(L, idx) != LUA_TTABLE)
        return 0;
    lua_pushnil(L);
    while (n < max && lua_next(L, idx)) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            a[n].key = lua_tostring(L, -2);
            a[n].str = NULL;
            a[n].num = 0;
            switch (lua_type(L, -1)) {
            case LUA_TBOOLEAN:
                a[n].kind = 'b';
                a[n++].num = lua_toboolean(L, -1);
                break;
            case LUA_TNUMBER:
                a[n].kind = 'i';
                a[n++].num = (int64_t)lua_tonumber(L, -1);
                break;
            case LUA_TSTRING:
                a[n].kind = 's';
                a[n++].str = lua_tostring(L, -1); /* kept alive by the table */
                break;
            default:
                break;
            }
        }
        lua_pop(L, 1);
    }
    return n;
}

/* _slice(cat, name, t0_ns, t1_ns|nil, args|nil) */
static int ltrace_slice(lua_State *L)
{
    if (!braid_trace_enabled())
        return 0;
    braid_trace_arg_t a[8];
    int n = read_args(L, 5, a, 8);
    int64_t t0 = (int64_t)luaL_checkinteger(L, 3);
    int64_t t1 = lua_isnoneornil(L, 4) ? braid_clock_now() : (int64_t)luaL_checkinteger(L, 4);
    braid_trace_slice(luaL_checkstring(L, 1), luaL_checkstring(L, 2), t0, t1, a, n);
    return 0;
}

/* _instant(cat, name, args|nil) */
static int ltrace_instant(lua_State *L)
{
    if (!braid_trace_enabled())
        return 0;
    braid_trace_arg_t a[8];
    int n = read_args(L, 3, a, 8);
    braid_trace_instant(luaL_checkstring(L, 1), luaL_checkstring(L, 2), a, n);
    return 0;
}

/* _flow(start, name, id, which, ts_ns|nil) */
static int ltrace_flow(lua_State *L)
{
    if (!braid_trace_enabled())
        return 0;
    int64_t ts = lua_isnoneornil(L, 5) ? braid_clock_now() : (int64_t)luaL_checkinteger(L, 5);
    braid_trace_flow(
        lua_toboolean(L, 1),
        luaL_checkstring(L, 2),
        braid_trace_flow_id((uint64_t)luaL_checkinteger(L, 3), (int)luaL_checkinteger(L, 4)),
        ts);
    return 0;
}

/* _flow_object(start, name, obj, which) -> the flow's object id: an arrow
 * end keyed by a braid object (e.g. a future) */
static int ltrace_flow_object(lua_State *L)
{
    braid_object_t *o = lbraid_to_object(L, 3);
    if (!o)
        return luaL_typeerror(L, 3, "braid object");
    if (braid_trace_enabled())
        braid_trace_flow(lua_toboolean(L, 1),
                         luaL_checkstring(L, 2),
                         braid_trace_flow_id(o->id, (int)luaL_checkinteger(L, 4)),
                         braid_clock_now());
    lua_pushinteger(L, (lua_Integer)o->id);
    return 1;
}

/* _async(ph, cat, name, id, ts_ns, args|nil): a nestable async event ('b',
 * 'e' or 'n') on the async track id (asyncio task waits) */
static int ltrace_async(lua_State *L)
{
    if (!braid_trace_enabled())
        return 0;
    braid_trace_arg_t a[8];
    int n = read_args(L, 6, a, 8);
    const char *ph = luaL_checkstring(L, 1);
    braid_trace_async(ph[0],
                      luaL_checkstring(L, 2),
                      luaL_checkstring(L, 3),
                      (uint64_t)luaL_checkinteger(L, 4),
                      (int64_t)luaL_checkinteger(L, 5),
                      a,
                      n);
    return 0;
}

/* _async_id() -> an id unique in this process and, with its pid in the high
 * bits, in a trace merged from several (52 bits: exact as a JSON number) */
static int ltrace_async_id(lua_State *L)
{
    static atomic_uint_least64_t next;
    uint64_t k = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) + 1;
    lua_pushinteger(L, (lua_Integer)(((uint64_t)getpid() & 0x3fffff) << 30 | (k & 0x3fffffff)));
    return 1;
}

/* _counter(name, args) */
static int ltrace_counter(lua_State *L)
{
    if (!braid_trace_enabled())
        return 0;
    braid_trace_arg_t a[8];
    int n = read_args(L, 2, a, 8);
    braid_trace_counter(luaL_checkstring(L, 1), -1, a, n);
    return 0;
}

/* _process_name(name) */
static int ltrace_process_name(lua_State *L)
{
    braid_trace_set_process_name(luaL_checkstring(L, 1));
    return 0;
}

void lbraid_trace_job_name(lua_State *L, int idx)
{
    lua_Debug ar;
    char name[300];
    lua_pushvalue(L, idx);
    if (lua_getinfo(L, ">S", &ar) && ar.linedefined > 0)
        snprintf(name, sizeof name, "%s:%d", ar.short_src, ar.linedefined);
    else
        snprintf(name, sizeof name, "%s", ar.short_src[0] ? ar.short_src : "job");
    braid_trace_set_job_name(name);
}

void lbraid_trace_error(lua_State *L, int idx)
{
    const char *msg = NULL;
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TSTRING) {
        msg = lua_tostring(L, idx);
    } else if (lua_type(L, idx) == LUA_TTABLE) {
        lua_getfield(L, idx, "message");
        msg = lua_tostring(L, -1);
        lua_pop(L, 1); /* the table keeps it */
    }
    char head[120];
    size_t n = 0;
    if (msg)
        while (msg[n] && msg[n] != '\n' && n < sizeof head - 1)
            n++;
    memcpy(head, msg ? msg : "error", msg ? n : 5);
    head[msg ? n : 5] = 0;
    braid_trace_instant("error", head, NULL, 0);
}

static const luaL_Reg trace_funcs[] = {
    {"start", ltrace_start},
    {"stop", ltrace_stop},
    {"path", ltrace_path},
    {"_on", ltrace_on},
    {"_now", ltrace_now},
    {"_slice", ltrace_slice},
    {"_instant", ltrace_instant},
    {"_flow", ltrace_flow},
    {"_counter", ltrace_counter},
    {"_flow_object", ltrace_flow_object},
    {"_process_name", ltrace_process_name},
    {"_async", ltrace_async},
    {"_async_id", ltrace_async_id},
    {NULL, NULL},
};

void lbraid_open_trace(lua_State *L)
{
    braid_trace_init_from_env();
    luaL_newlib(L, trace_funcs);
}
