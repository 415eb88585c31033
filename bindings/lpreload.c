/* The preload list: every braid module (its C half, its embedded script)
 * installed into package.preload of a state, and loaded on require. */
#include <string.h>

#include "lbraid.h"
#include "lpreload.h"

typedef struct script {
    const char *name, *src;
    size_t len;
    const char *bc; /* precompiled by tools/embed.c, with debug information */
    size_t bclen;
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

/* ---- a box's metatable without its module ----
 * A box crossing into a thread's state needs its type's metatable. Loading
 * the whole module for it would cost a parked thread ~12 KB (all of
 * braid.threading's types and functions) for the one or two types it
 * holds. For the modules listed here, lbraid_load_meta registers just that
 * type's metatable, whose method table makes the C half's methods on their
 * first lookup (lbraid_newmeta_lazy). A lookup of anything else (a method
 * the module's script adds, such as `with`) requires the module, which
 * registers every type of it over the same metatables (with full method
 * tables), and looks again. */
typedef int (*meta_fn)(lua_State *L, const braid_object_type_t *type);
static const struct {
    const char *module;
    meta_fn open_meta;
} lazy_metas[] = {
    {"braid.threading", lbraid_meta_threading},
    {NULL, NULL},
};

/* Whether require(name) would load braid's module: not loaded yet and not
 * overridden in package.preload. */
static int not_required(lua_State *L, const char *name)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    int loaded = lua_getfield(L, -1, name) != LUA_TNIL;
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    int overridden = lua_getfield(L, -1, name) != LUA_TNIL;
    lua_pop(L, 4);
    return !loaded && !overridden;
}

void lbraid_load_meta(lua_State *L, const braid_object_type_t *type)
{
    for (int i = 0; lazy_metas[i].module; i++) {
        if (strcmp(lazy_metas[i].module, type->module) != 0)
            continue;
        if (!not_required(L, type->module) || !lazy_metas[i].open_meta(L, type))
            break;
        return;
    }
    lua_getglobal(L, "require");
    lua_pushstring(L, type->module);
    lua_call(L, 1, 0);
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
    if (open) {
        lua_pushcfunction(L, open);
        lua_call(L, 0, 1);
    } else {
        lua_newtable(L);
    }
    if (s) {
        /* the bytecode (compiling the source would cost most of a spawned
         * child's start); the source when this Lua's bytecode format is
         * not the build's (a header mismatch) */
        const char *chunkname = lua_pushfstring(L, "=[%s]", name);
        if (luaL_loadbufferx(L, s->bc, s->bclen, chunkname, "b") != LUA_OK) {
            lua_pop(L, 1);
            if (luaL_loadbufferx(L, s->src, s->len, chunkname, "t") != LUA_OK)
                return lua_error(L);
        }
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

/* ---- require's way in ----
 * One searcher, right after package.preload's, finds every braid module
 * (a state would otherwise hold a closure and a string per module in
 * package.preload, ~3 KB). A module put in package.preload still wins. */

/* loader(name): the module. */
static int preload_loader(lua_State *L)
{
    return lbraid_load_module(L, luaL_checkstring(L, 1));
}

/* searcher(name): the loader and the name for a braid module; nothing
 * (no line in require's "not found" message) for any other. */
static int preload_searcher(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (!find_open(name) && !find_script(name))
        return 0;
    lua_pushcfunction(L, preload_loader);
    lua_pushvalue(L, 1);
    return 2;
}

void lbraid_preload(lua_State *L)
{
    int top = lua_gettop(L);
    if (lua_getglobal(L, "package") != LUA_TTABLE ||
        lua_getfield(L, -1, "searchers") != LUA_TTABLE) {
        lua_settop(L, top);
        return; /* no package library: nothing can require */
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        int ours =
            lua_rawgeti(L, -1, i) == LUA_TFUNCTION && lua_tocfunction(L, -1) == preload_searcher;
        lua_pop(L, 1);
        if (ours) {
            lua_pop(L, 2);
            return; /* installed already */
        }
    }
    lua_Integer at = n < 1 ? 1 : 2; /* after package.preload's */
    for (lua_Integer i = n; i >= at; i--) {
        lua_rawgeti(L, -1, i);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushcfunction(L, preload_searcher);
    lua_rawseti(L, -2, at);
    lua_pop(L, 2);
}
