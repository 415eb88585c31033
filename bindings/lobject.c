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

void lbraid_newmeta(lua_State *L, const braid_object_type_t *type, const luaL_Reg *methods)
{
    luaL_newmetatable(L, type->name);
    lua_newtable(L);
    if (methods)
        luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, lobject_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, lobject_tostring, 1);
    lua_setfield(L, -2, "__tostring");
    lua_pushlightuserdata(L, (void *)type);
    lua_setfield(L, -2, "__braid");
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

void lbraid_push_new_object(lua_State *L, braid_object_t *obj, int meta, int boxes)
{
    meta = lua_absindex(L, meta);
    boxes = lua_absindex(L, boxes);
    lbraid_box_t *box = lua_newuserdatauv(L, sizeof *box, 1);
    box->obj = NULL; /* inert until the metatable is on */
    lua_pushvalue(L, meta);
    lua_setmetatable(L, -2);
    braid_object_retain(obj);
    box->obj = obj;
    lua_pushvalue(L, -1);
    lua_rawseti(L, boxes, (lua_Integer)obj->id);
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
        lbraid_load_meta(L, obj->type->module);
        if (luaL_getmetatable(L, obj->type->name) == LUA_TNIL)
            luaL_error(L, "module '%s' did not register '%s'", obj->type->module, obj->type->name);
    }
    lbraid_box_t *box = lua_newuserdatauv(L, sizeof *box, 1);
    box->obj = NULL; /* inert until the metatable is on */
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
    return marked ? box->obj : NULL;
}

braid_object_t *lbraid_check_object(lua_State *L, int idx, const braid_object_type_t *type)
{
    lbraid_box_t *box = luaL_checkudata(L, idx, type->name);
    if (!box->obj)
        lbraid_error(L, "ValueError", "%s is closed", type->name);
    return box->obj;
}
