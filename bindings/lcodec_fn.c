/* The Lua half of the codec: what encoding a Lua function needs (its
 * dumped chunk, MAC, upvalues, the globals it reads), worked out once per
 * function and kept in a weak table for the encoder (lcodec_enc.c). */
#include <string.h>

#include "lbraid.h"
#include "lcodec.h"

static const char FCACHE_KEY = 'f'; /* registry: weak func -> fninfo box */

static int writer(lua_State *L, const void *p, size_t sz, void *ud)
{
    (void)L;
    braid_buf_put_bytes(ud, p, sz);
    return 0;
}

fninfo_t *lbraid_fninfo_find(lua_State *L, int idx)
{
    fninfo_t *fi = NULL;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &FCACHE_KEY) == LUA_TTABLE) {
        lua_pushvalue(L, idx);
        if (lua_rawget(L, -2) == LUA_TUSERDATA)
            fi = lua_touserdata(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return fi;
}

fninfo_t *lbraid_fninfo_push(lua_State *L, int idx)
{
    lbraid_push_weak_table(L, &FCACHE_KEY, "k");
    lua_pushvalue(L, idx);
    if (lua_rawget(L, -2) == LUA_TUSERDATA) {
        lua_remove(L, -2);
        return lua_touserdata(L, -1);
    }
    lua_pop(L, 1);
    fninfo_t *fi = lua_newuserdatauv(L, sizeof *fi, 2);
    memset(fi, 0, sizeof *fi);
    braid_buf_t *dump = lbraid_push_buf(L);
    lua_pushvalue(L, idx);
    lua_dump(L, writer, dump, 0);
    lua_pop(L, 1);
    if (dump->err) {
        lua_pop(L, 3);
        return NULL;
    }
    lua_pushlstring(L, (const char *)dump->data, dump->len);
    lua_remove(L, -2);
    fi->chunk = lua_tolstring(L, -1, &fi->len);
    fi->mac = braid_codec_mac(fi->chunk, fi->len);
    lbraid_chunk_globals(L, fi->chunk, fi->len);
    lua_Integer nnames = (lua_Integer)lua_rawlen(L, -1), kept = 0;
    for (lua_Integer i = 1; i <= nnames; i++) {
        lua_rawgeti(L, -1, i);
        if (lbraid_is_standard_global(lua_tostring(L, -1)))
            lua_pop(L, 1);
        else
            lua_rawseti(L, -2, ++kept);
    }
    for (lua_Integer i = kept + 1; i <= nnames; i++) {
        lua_pushnil(L);
        lua_rawseti(L, -2, i);
    }
    fi->nglobals = (int)kept;
    lua_setiuservalue(L, -3, 2);
    lua_setiuservalue(L, -2, 1);
    lua_Debug ar;
    lua_pushvalue(L, idx);
    lua_getinfo(L, ">u", &ar);
    fi->nups = ar.nups;
    for (int i = 1; i <= fi->nups && !fi->env; i++) {
        const char *name = lua_getupvalue(L, idx, i);
        if (name && strcmp(name, "_ENV") == 0)
            fi->env = i;
        lua_pop(L, 1);
    }
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
    lua_remove(L, -2);
    return fi;
}
