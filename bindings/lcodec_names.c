/* The encoder's module map (API.md §1: modules and their functions cross
 * by name): value -> the name a receiver finds it by, rebuilt when
 * package.loaded changes, with a C set of its keys' addresses so that most
 * values are ruled out without a lookup. */
#include <stdlib.h>
#include <string.h>

#include "lbraid.h"
#include "lcodec.h"

static size_t ptr_slot(const void *p, size_t cap)
{
    uintptr_t h = (uintptr_t)p;
    h ^= h >> 17;
    h *= (uintptr_t)0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 7) & (cap - 1);
}

/* map[value] = value if absent; leaves the stack as it was. */
static void map_add(lua_State *L, int map, int key, int value)
{
    lua_pushvalue(L, key);
    if (lua_rawget(L, map) == LUA_TNIL) {
        lua_pushvalue(L, key);
        lua_pushvalue(L, value);
        lua_rawset(L, map);
    }
    lua_pop(L, 1);
}

/* Maps the module at `mod` named `name`: the module itself -> "name", and
 * each function/userdata field f -> {"name", "key"}. */
static void map_module(lua_State *L, int map, int name, int mod)
{
    int is_g = strcmp(lua_tostring(L, name), "_G") == 0;
    int t = lua_type(L, mod);
    if (t == LUA_TFUNCTION || t == LUA_TUSERDATA || t == LUA_TTABLE)
        map_add(L, map, mod, name);
    if (t != LUA_TTABLE)
        return;
    lua_pushnil(L);
    while (lua_next(L, mod)) {
        int k = lua_gettop(L) - 1, vt = lua_type(L, -1);
        /* user globals live in _G too: only the standard ones are the same
         * in every state */
        int wanted = is_g ? lua_iscfunction(L, -1) && lua_type(L, k) == LUA_TSTRING &&
                                lbraid_is_standard_global(lua_tostring(L, k))
                          : (vt == LUA_TFUNCTION || vt == LUA_TUSERDATA || vt == LUA_TTABLE);
        if (wanted && lua_type(L, k) == LUA_TSTRING) {
            lua_createtable(L, 2, 0);
            lua_pushvalue(L, name);
            lua_rawseti(L, -2, 1);
            lua_pushvalue(L, k);
            lua_rawseti(L, -2, 2);
            map_add(L, map, k + 1, k + 2);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
}

/* Knowing that package.loaded did not change since the map was built
 * would take a walk over it at every encode, which costs more than the
 * rest of encoding a small function. So when package.loaded has no
 * metatable the encoder gives it one whose __newindex counts the modules
 * added (require adds a module with a plain assignment to an absent key):
 * while that metatable is in place and the count is the same, the map is
 * current. What the count cannot see is a present key set to another
 * module; a C function or userdata the map then misses makes the encoder
 * walk package.loaded again before it gives up (lcodec_enc.c:
 * enc_by_name_fresh). */
static const char LOADED_META_KEY = 'l'; /* registry: the metatable */

typedef struct lbraid_loaded_gen {
    lua_Integer n;
} loaded_gen_t;

static int loaded_newindex(lua_State *L)
{
    loaded_gen_t *g = lua_touserdata(L, lua_upvalueindex(1));
    g->n++;
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 0;
}

/* The count of the hook on the table at `loaded`, or NULL when its
 * metatable is not the hook (installing the hook if it has none). */
static loaded_gen_t *hook_on(lua_State *L, lbraid_modmap_t *m, int loaded)
{
    if (m->hookmeta && lua_getmetatable(L, loaded)) {
        const void *meta = lua_topointer(L, -1);
        lua_pop(L, 1);
        if (meta == m->hookmeta)
            return m->hookgen;
    }
    loaded_gen_t *g = NULL;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &LOADED_META_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 2);
        g = lua_newuserdatauv(L, sizeof *g, 0);
        g->n = 0;
        lua_pushcclosure(L, loaded_newindex, 1);
        lua_setfield(L, -2, "__newindex");
        lua_pushliteral(L, "braid.loaded");
        lua_setfield(L, -2, "__name");
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &LOADED_META_KEY);
    }
    int meta = lua_gettop(L);
    if (!lua_getmetatable(L, loaded)) {
        lua_pushvalue(L, meta);
        lua_setmetatable(L, loaded);
        lua_pushvalue(L, meta);
        if (m->valid == 2)
            m->valid = 1; /* hooked again: the count missed what was added meanwhile */
    }
    if (lua_rawequal(L, -1, meta)) {
        lua_getfield(L, meta, "__newindex");
        lua_getupvalue(L, -1, 1);
        g = lua_touserdata(L, -1);
        lua_pop(L, 2);
        m->hookmeta = lua_topointer(L, meta);
        m->hookgen = g;
    }
    lua_settop(L, meta - 1);
    return g;
}

/* hook_on, anchoring a newly hooked table for lbraid_modmap_current at an
 * integer key of the registry (its array part: a lookup by name or by
 * address costs twice that). */
static loaded_gen_t *loaded_hook(lua_State *L, lbraid_modmap_t *m, int loaded)
{
    loaded_gen_t *g = hook_on(L, m, loaded);
    const void *t = lua_topointer(L, loaded);
    if (g && t != m->hooked) {
        lua_pushvalue(L, loaded);
        if (m->hookref)
            lua_rawseti(L, LUA_REGISTRYINDEX, m->hookref);
        else
            m->hookref = luaL_ref(L, LUA_REGISTRYINDEX);
        m->hooked = t;
    }
    return g;
}

/* Rebuilds m->keys from the map at `map`; on allocation failure the
 * set is left empty, which only turns every probe into a map lookup. */
static void modkeys_build(lua_State *L, lbraid_modmap_t *m, int map)
{
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, map)) {
        n++;
        lua_pop(L, 1);
    }
    size_t cap = 16;
    while (cap < 2 * n + 2)
        cap *= 2;
    free(m->keys);
    m->keys = calloc(cap, sizeof *m->keys);
    m->cap = m->keys ? cap : 0;
    if (!m->keys)
        return;
    lua_pushnil(L);
    while (lua_next(L, map)) {
        const void *p = lua_topointer(L, -2);
        size_t j = ptr_slot(p, cap);
        while (m->keys[j] && m->keys[j] != p)
            j = (j + 1) & (cap - 1);
        m->keys[j] = p;
        lua_pop(L, 1);
    }
}

/* The table checked is the one the last lbraid_modmap_push hooked: a
 * registry._LOADED replaced since (through debug.getregistry) is seen by
 * the next full encode, not by a memoised one. A metatable set on the
 * hooked table is seen here. */
int lbraid_modmap_current(lua_State *L, const lbraid_modmap_t *m)
{
    if (m->valid != 2 || !m->hookmeta || !m->hookgen || m->gen != m->hookgen->n || !m->hookref)
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, m->hookref);
    int meta = lua_getmetatable(L, -1), ok = meta && lua_topointer(L, -1) == m->hookmeta;
    lua_pop(L, 1 + meta);
    return ok;
}

int lbraid_modmap_may_have(const lbraid_modmap_t *m, const void *p)
{
    if (!m->keys)
        return 1;
    for (size_t j = ptr_slot(p, m->cap); m->keys[j]; j = (j + 1) & (m->cap - 1))
        if (m->keys[j] == p)
            return 1;
    return 0;
}

/* Pushes the module map for this state (kept in the encoder context at
 * box), rebuilt when package.loaded changed size or any module's identity
 * (modules are not expected to change their fields after loading).
 * Stack: +1. */
void lbraid_modmap_push(lua_State *L, lbraid_modmap_t *m, int box, int walk)
{
    lua_Unsigned sig = 0;
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    int loaded = lua_gettop(L);
    loaded_gen_t *g = lua_istable(L, loaded) ? loaded_hook(L, m, loaded) : NULL;
    if (!walk && g && m->valid == 2 && m->gen == g->n &&
        lua_getiuservalue(L, box, 2) == LUA_TTABLE) {
        lua_replace(L, loaded);
        return;
    }
    lua_settop(L, loaded);
    lua_pushnil(L);
    while (lua_next(L, loaded)) {
        /* count and identities: a module replaced by another (busted's
         * insulation re-requires them) must rebuild the map too */
        sig = sig * 31u + 1u + (lua_Unsigned)(uintptr_t)lua_topointer(L, -1);
        lua_pop(L, 1);
    }
    if (m->valid && m->sig == (lua_Integer)sig && lua_getiuservalue(L, box, 2) == LUA_TTABLE) {
        m->valid = g ? 2 : 1; /* 2: the hook's count vouches for it */
        m->gen = g ? g->n : 0;
        lua_replace(L, loaded);
        return;
    }
    lua_settop(L, loaded);
    lua_newtable(L);
    int map = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, loaded)) {
        if (lua_type(L, -2) == LUA_TSTRING)
            map_module(L, map, lua_gettop(L) - 1, lua_gettop(L));
        lua_pop(L, 1);
    }
    lua_pushvalue(L, map);
    lua_setiuservalue(L, box, 2);
    modkeys_build(L, m, map);
    m->valid = g ? 2 : 1;
    m->gen = g ? g->n : 0;
    m->sig = (lua_Integer)sig;
    lua_replace(L, loaded);
}

void lbraid_modmap_free(lbraid_modmap_t *m)
{
    free(m->keys);
    m->keys = NULL;
    m->cap = 0;
    m->valid = 0;
}
