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

/* Loads module `name`: its C half (or an empty table), then its script
 * with that table as `...`; returns what the script returns, else the
 * table. Stack: +1. */
int lbraid_load_module(lua_State *L, const char *name)
{
    lua_CFunction open = strcmp(name, "braid") == 0 ? lbraid_root_open : NULL;
    for (const cmodule_t *m = cmodules; !open && m->name; m++)
        if (strcmp(m->name, name) == 0)
            open = m->open;
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
