/* The preload list: every braid module (its C half, its embedded script)
 * installed into package.preload of a state, and loaded on require. */
#include <string.h>

#include "lbraid.h"
#include "lpreload.h"

typedef struct script {
    const char *name, *src;
    size_t len;
} script_t;
extern const script_t braid_scripts[];

typedef struct cmodule {
    const char *name;
    lua_CFunction open;
} cmodule_t;

static const cmodule_t cmodules[] = {
#define BRAID_MODULE(m) {"braid." #m, lbraid_open_##m},
#include "braid_modules.h"
#undef BRAID_MODULE
    {NULL, NULL},
};

static const script_t *find_script(const char *name)
{
    for (const script_t *s = braid_scripts; s->name; s++)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

static lua_CFunction find_open(const char *name)
{
    if (strcmp(name, "braid") == 0)
        return lbraid_root_open;
    for (const cmodule_t *m = cmodules; m->name; m++)
        if (strcmp(m->name, name) == 0)
            return m->open;
    return NULL;
}

/* ---- a box's metatable without the module's script ----
 * A box crossing into a thread's state needs its type's metatable, which
 * the module's C half registers; compiling the module's script too would
 * cost a parked thread ~22 KB. For the modules listed here, whose script
 * only adds plain methods (no metamethods, nothing the C functions need),
 * lbraid_load_meta runs the C half alone and keeps its table; the script
 * runs with that same table on the first require, or on the first lookup
 * of a method the C half does not have (a metatable on each method table
 * of the module's types, taken off again before the script runs). */
static const char *const lazy_scripts[] = {"braid.threading", NULL};
static const char HALF_KEY = 'h'; /* registry: module name -> its C half's table */
static const char LAZY_KEY = 'z'; /* marks a method table's lazy metatable */

static int preload_loader(lua_State *L);

static int rawfield(lua_State *L, int idx, const char *k)
{
    idx = lua_absindex(L, idx);
    lua_pushstring(L, k);
    return lua_rawget(L, idx);
}

static int lazy_index(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_call(L, 1, 0);
    lua_settop(L, 2);
    lua_rawget(L, 1);
    return 1;
}

/* Puts the lazy metatable (on) or takes it off (!on) the method table of
 * every type registered by module `name`. Stack: unchanged. */
static void hook_methods(lua_State *L, const char *name, int on)
{
    if (on) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, name);
        lua_pushcclosure(L, lazy_index, 1);
        lua_setfield(L, -2, "__index");
        lua_pushboolean(L, 1);
        lua_rawsetp(L, -2, &LAZY_KEY);
    }
    int mt = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, LUA_REGISTRYINDEX)) {
        const braid_object_type_t *type = NULL;
        if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1) &&
            rawfield(L, -1, "__braid") == LUA_TLIGHTUSERDATA)
            type = lua_touserdata(L, -1);
        if (type && type->module && strcmp(type->module, name) == 0 &&
            rawfield(L, -2, "__index") == LUA_TTABLE) {
            if (on && !lua_getmetatable(L, -1)) {
                lua_pushvalue(L, mt);
                lua_setmetatable(L, -2);
            } else if (!on && lua_getmetatable(L, -1)) {
                if (lua_rawgetp(L, -1, &LAZY_KEY) == LUA_TBOOLEAN) {
                    lua_pushnil(L);
                    lua_setmetatable(L, -4);
                }
            }
        }
        lua_settop(L, mt + 1); /* the key */
    }
    lua_settop(L, on ? mt - 1 : mt);
}

static int is_lazy(const char *name)
{
    for (const char *const *n = lazy_scripts; *n; n++)
        if (strcmp(*n, name) == 0)
            return 1;
    return 0;
}

void lbraid_load_meta(lua_State *L, const char *name)
{
    lua_CFunction open = find_open(name);
    if (open && is_lazy(name)) {
        luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
        int loaded = lua_getfield(L, -1, name) != LUA_TNIL;
        luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
        lua_getfield(L, -1, name);
        /* only while require would come here: not loaded, preload intact */
        int ours = lua_tocfunction(L, -1) == preload_loader;
        lua_pop(L, 4);
        if (!loaded && ours) {
            if (lua_rawgetp(L, LUA_REGISTRYINDEX, &HALF_KEY) != LUA_TTABLE) {
                lua_pop(L, 1);
                lua_newtable(L);
                lua_pushvalue(L, -1);
                lua_rawsetp(L, LUA_REGISTRYINDEX, &HALF_KEY);
            }
            if (lua_getfield(L, -1, name) != LUA_TTABLE) {
                lua_pushcfunction(L, open);
                lua_call(L, 0, 1);
                lua_setfield(L, -3, name);
                hook_methods(L, name, 1);
            }
            lua_pop(L, 2);
            return;
        }
    }
    lua_getglobal(L, "require");
    lua_pushstring(L, name);
    lua_call(L, 1, 0);
}

/* Pushes module name's C half if lbraid_load_meta loaded it alone, and
 * forgets it there (the caller runs the script). Stack: +1 or 0. */
static int take_half(lua_State *L, const char *name)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &HALF_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    if (lua_getfield(L, -1, name) != LUA_TTABLE) {
        lua_pop(L, 2);
        return 0;
    }
    lua_pushnil(L);
    lua_setfield(L, -3, name);
    lua_remove(L, -2);
    hook_methods(L, name, 0);
    return 1;
}

/* Loads module `name`: its C half (or an empty table), then its script
 * with that table as `...`; returns what the script returns, else the
 * table. Stack: +1. */
int lbraid_load_module(lua_State *L, const char *name)
{
    lua_CFunction open = find_open(name);
    const script_t *s = find_script(name);
    if (!open && !s)
        return luaL_error(L, "module '%s' is not part of this braid build", name);
    if (!open) {
        lua_newtable(L);
    } else if (!take_half(L, name)) {
        lua_pushcfunction(L, open);
        lua_call(L, 0, 1);
    }
    if (s) {
        const char *chunkname = lua_pushfstring(L, "=[%s]", name);
        if (luaL_loadbuffer(L, s->src, s->len, chunkname) != LUA_OK)
            return lua_error(L);
        lua_remove(L, -2);
        lua_pushvalue(L, -2);
        lua_call(L, 1, 1);
        if (lua_isnil(L, -1))
            lua_pop(L, 1);
        else
            lua_remove(L, -2);
    }
    return 1;
}

static int preload_loader(lua_State *L)
{
    return lbraid_load_module(L, lua_tostring(L, lua_upvalueindex(1)));
}

static void add_preload(lua_State *L, int preload, const char *name)
{
    lua_pushstring(L, name);
    lua_pushcclosure(L, preload_loader, 1);
    lua_setfield(L, preload, name);
}

void lbraid_preload(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    int preload = lua_gettop(L);
    add_preload(L, preload, "braid");
    for (const cmodule_t *m = cmodules; m->name; m++)
        add_preload(L, preload, m->name);
    for (const script_t *s = braid_scripts; s->name; s++)
        add_preload(L, preload, s->name);
    lua_pop(L, 1);
}
