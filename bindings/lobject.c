/* Lua boxes for braid objects: a userdata holding one reference, one box
 * per object per state (so identity and table keys work), safe __gc. */
#include <string.h>

#include "lbraid.h"
#include "lpreload.h"

static const char BOXES_KEY = 'b'; /* registry: weak-valued id -> box */

static int lobject_gc(lua_State *L)
{
    lbraid_box_t *box = lua_touserdata(L, 1);
    if (box && box->obj) {
        braid_object_release(box->obj);
        box->obj = NULL;
    }
    return 0;
}

static int lobject_tostring(lua_State *L)
{
    lbraid_box_t *box = lua_touserdata(L, 1);
    lua_getfield(L, lua_upvalueindex(1), "__name");
    if (box && box->obj)
        lua_pushfstring(L, "%s: %p", lua_tostring(L, -1), (void *)box->obj);
    else
        lua_pushfstring(L, "%s: closed", lua_tostring(L, -1));
    return 1;
}

static int lobject_set_name(lua_State *L)
{
    braid_object_t *obj = lbraid_to_object(L, 1);
    if (!obj)
        return luaL_typeerror(L, 1, "braid object");
    const char *name = lua_isnil(L, 2) ? NULL : luaL_checkstring(L, 2);
    int rc = braid_object_set_name(obj, name);
    if (rc)
        return lbraid_core_error(L, rc, "set_name");
    return 0;
}

static int lobject_get_name(lua_State *L)
{
    braid_object_t *obj = lbraid_to_object(L, 1);
    if (!obj)
        return luaL_typeerror(L, 1, "braid object");
    const char *name = braid_object_name(obj);
    if (name)
        lua_pushstring(L, name);
    else
        lua_pushnil(L);
    return 1;
}

static int lobject_label(lua_State *L)
{
    braid_object_t *obj = lbraid_to_object(L, 1);
    if (!obj)
        return luaL_typeerror(L, 1, "braid object");
    char buf[BRAID_NAME_MAX + 1];
    lua_pushstring(L, braid_object_label(obj, buf, sizeof buf));
    return 1;
}

void lbraid_unpack_opts(lua_State *L, const char *const *keys, int n)
{
    if (lua_type(L, 1) != LUA_TTABLE)
        return;
    lua_settop(L, 1);
    luaL_checkstack(L, n + 2, NULL);
    lua_getfield(L, 1, "name");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "bad option 'name' (string expected, got %s)", luaL_typename(L, -1));
    lua_pop(L, 1);
    for (int i = 0; i < n; i++)
        lua_getfield(L, 1, keys[i]);
    lua_rotate(L, 1, -1);
}

void lbraid_apply_name(lua_State *L, int idx, braid_object_t *obj)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        return;
    lua_getfield(L, idx, "name");
    if (lua_type(L, -1) == LUA_TSTRING)
        braid_object_set_name(obj, lua_tostring(L, -1)); /* ENOMEM: unnamed */
    lua_pop(L, 1);
}

static const luaL_Reg naming[] = {
    {"set_name", lobject_set_name}, {"get_name", lobject_get_name}, {"_label", lobject_label}};
#define NNAMING ((int)(sizeof naming / sizeof *naming))

/* __index of a method table filled on demand (arg 1; key: arg 2). A C
 * method is made at its first lookup and kept in the table, as the eager
 * table would hold it. Any other key may be a method the module's script
 * adds (such as `with`): the module is required, which registers a full
 * method table over the same metatable, and the key is looked up there.
 * Upvalues: 1 the type's metatable, 2 its address (light: the methods'
 * two upvalues, see lbraid_newmeta_up; nil without self_up), 3 the C
 * methods (light luaL_Reg list). */
static int lazy_method(lua_State *L)
{
    lua_settop(L, 2);
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    const luaL_Reg *r = lua_touserdata(L, lua_upvalueindex(3));
    for (; k && r && r->name; r++) {
        if (strcmp(r->name, k) == 0) {
            if (lua_isnil(L, lua_upvalueindex(2))) {
                lua_pushcfunction(L, r->func);
            } else {
                lua_pushvalue(L, lua_upvalueindex(1));
                lua_pushvalue(L, lua_upvalueindex(2));
                lua_pushcclosure(L, r->func, 2);
            }
            goto found;
        }
    }
    for (int i = 0; k && i < NNAMING; i++) {
        if (strcmp(naming[i].name, k) == 0) {
            lua_pushcfunction(L, naming[i].func);
            goto found;
        }
    }
    lua_getfield(L, lua_upvalueindex(1), "__braid");
    const braid_object_type_t *type = lua_touserdata(L, -1);
    lua_getglobal(L, "require");
    lua_pushstring(L, type->module);
    lua_call(L, 1, 0);
    lua_pushnil(L);
    lua_setmetatable(L, 1); /* loaded: this table is no box's any more */
    if (lua_getfield(L, lua_upvalueindex(1), "__index") == LUA_TTABLE && !lua_rawequal(L, -1, 1)) {
        lua_pushvalue(L, 2);
        lua_rawget(L, -2);
        return 1;
    }
    lua_pushnil(L);
    return 1;
found:
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);
    return 1;
}

/* Each state registers the metatables of the types it holds (a thread
 * state at least those of its arguments): the tables are made at their
 * final size, not grown a doubling at a time, or (lazy) with a method
 * table that makes each method on its first lookup: a thread given an
 * Event and a Semaphore calls one method of each. */
static void newmeta(lua_State *L, const braid_object_type_t *type, const luaL_Reg *methods,
                    int self_up, int lazy)
{
    int n = 0;
    while (methods && methods[n].name)
        n++;
    if (luaL_getmetatable(L, type->name) == LUA_TNIL) { /* luaL_newmetatable, sized */
        lua_pop(L, 1);
        lua_createtable(L, 0, 5);
        lua_pushstring(L, type->name);
        lua_setfield(L, -2, "__name");
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, type->name);
    }
    if (lazy) {
        lua_createtable(L, 0, 1);
        lua_createtable(L, 0, 1);
        lua_pushvalue(L, -3);
        if (self_up)
            lua_pushlightuserdata(L, (void *)lua_topointer(L, -1));
        else
            lua_pushnil(L);
        lua_pushlightuserdata(L, (void *)methods);
        lua_pushcclosure(L, lazy_method, 3);
        lua_setfield(L, -2, "__index");
        lua_setmetatable(L, -2);
    } else {
        lua_createtable(L, 0, n + NNAMING);
        if (methods) {
            int nup = 0;
            if (self_up) {
                lua_pushvalue(L, -2);
                lua_pushlightuserdata(L, (void *)lua_topointer(L, -1));
                nup = 2;
            }
            luaL_setfuncs(L, methods, nup);
        }
        for (int i = 0; i < NNAMING; i++) {
            if (lua_getfield(L, -1, naming[i].name) == LUA_TNIL) {
                lua_pushcfunction(L, naming[i].func);
                lua_setfield(L, -3, naming[i].name);
            }
            lua_pop(L, 1);
        }
    }
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, lobject_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, lobject_tostring, 1);
    lua_setfield(L, -2, "__tostring");
    lua_pushlightuserdata(L, (void *)type);
    lua_setfield(L, -2, "__braid");
}

void lbraid_newmeta_up(lua_State *L, const braid_object_type_t *type, const luaL_Reg *methods,
                       int self_up)
{
    newmeta(L, type, methods, self_up, 0);
}

void lbraid_newmeta_lazy(lua_State *L, const braid_object_type_t *type, const luaL_Reg *methods,
                         int self_up)
{
    newmeta(L, type, methods, self_up, 1);
}

void lbraid_newmeta(lua_State *L, const braid_object_type_t *type, const luaL_Reg *methods)
{
    newmeta(L, type, methods, 0, 0);
}

void lbraid_push_weak_table(lua_State *L, const void *key, const char *mode)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) == LUA_TTABLE)
        return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushstring(L, mode);
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

void lbraid_push_boxes(lua_State *L)
{
    lbraid_push_weak_table(L, &BOXES_KEY, "v");
}

/* A burst of submits makes thousands of boxes that never leave their
 * state: filing each (a slot in a weak table the collector walks every
 * cycle, rehashed as it grows) cost more than a third of the box. */
void lbraid_push_new_object(lua_State *L, braid_object_t *obj, int meta)
{
    meta = lua_absindex(L, meta);
    lbraid_box_t *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->obj = NULL; /* inert until the metatable is on */
    box->unfiled = 1;
    lua_pushvalue(L, meta);
    lua_setmetatable(L, -2);
    braid_object_retain(obj);
    box->obj = obj;
}

void lbraid_push_object(lua_State *L, braid_object_t *obj)
{
    lbraid_push_boxes(L);
    if (lua_rawgeti(L, -1, (lua_Integer)obj->id) == LUA_TUSERDATA) {
        lbraid_box_t *box = lua_touserdata(L, -1);
        if (box->obj == obj) {
            lua_remove(L, -2);
            return;
        }
    }
    lua_pop(L, 1);
    if (luaL_getmetatable(L, obj->type->name) == LUA_TNIL) {
        lua_pop(L, 1);
        lbraid_load_meta(L, obj->type);
        if (luaL_getmetatable(L, obj->type->name) == LUA_TNIL)
            luaL_error(L, "module '%s' did not register '%s'", obj->type->module, obj->type->name);
    }
    lbraid_box_t *box = lua_newuserdatauv(L, sizeof *box, 1);
    box->obj = NULL; /* inert until the metatable is on */
    box->unfiled = 0;
    lua_insert(L, -2);
    lua_setmetatable(L, -2);
    braid_object_retain(obj);
    box->obj = obj;
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, (lua_Integer)obj->id);
    lua_remove(L, -2);
}

braid_object_t *lbraid_to_object(lua_State *L, int idx)
{
    lbraid_box_t *box = lua_touserdata(L, idx);
    if (!box || lua_islightuserdata(L, idx) || !lua_getmetatable(L, idx))
        return NULL;
    int marked = lua_getfield(L, -1, "__braid") == LUA_TLIGHTUSERDATA;
    lua_pop(L, 2);
    if (!marked)
        return NULL;
    if (box->unfiled && box->obj) { /* it may come back: lbraid_push_object must find this box */
        idx = lua_absindex(L, idx);
        lbraid_push_boxes(L);
        lua_pushvalue(L, idx);
        lua_rawseti(L, -2, (lua_Integer)box->obj->id);
        lua_pop(L, 1);
        box->unfiled = 0;
    }
    return box->obj;
}

void *lbraid_to_tagged(lua_State *L, int idx, size_t size, size_t offset, const char *tag)
{
    /* only a full userdata has both an address and a raw length (a light
     * one's is 0, a string's or table's address is NULL) */
    char *p = lua_touserdata(L, idx);
    if (!p || lua_rawlen(L, idx) != size || size == 0)
        return NULL;
    const char *held;
    memcpy(&held, p + offset, sizeof held);
    return held == tag ? p : NULL;
}

braid_object_t *lbraid_check_object(lua_State *L, int idx, const braid_object_type_t *type)
{
    lbraid_box_t *box = luaL_checkudata(L, idx, type->name);
    if (!box->obj)
        lbraid_error(L, "ValueError", "%s is closed", type->name);
    return box->obj;
}
