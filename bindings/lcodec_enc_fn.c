/* The encoder's functions (lcodec_enc.h): Lua functions with their
 * upvalues and globals, and values written by module name. */
#include <stdlib.h>
#include <string.h>

#include "lcodec_enc.h"

int lbraid_enc_by_name_at(enc_t *e, int idx, const void *p)
{
    lua_State *L = e->L;
    if (!e->modmap) {
        lbraid_modmap_push(L, &e->ctx->mod, e->box, 0);
        e->modmap = lua_gettop(L);
    }
    if (lbraid_modmap_may_have(&e->ctx->mod, p)) {
        lua_pushvalue(L, idx);
        int t = lua_rawget(L, e->modmap);
        size_t n;
        const char *s;
        if (t == LUA_TSTRING) {
            s = lua_tolstring(L, -1, &n);
            braid_buf_put_u8(e->buf, BRAID_T_MODULE);
            braid_buf_put_str(e->buf, s, n);
        } else if (t == LUA_TTABLE) {
            lua_rawgeti(L, -1, 1);
            lua_rawgeti(L, -2, 2);
            braid_buf_put_u8(e->buf, BRAID_T_MODFIELD);
            s = lua_tolstring(L, -2, &n);
            braid_buf_put_str(e->buf, s, n);
            s = lua_tolstring(L, -1, &n);
            braid_buf_put_str(e->buf, s, n);
            lua_pop(L, 2);
        }
        lua_pop(L, 1);
        if (t == LUA_TSTRING || t == LUA_TTABLE)
            return 1;
    }
    /* braid.Error is every state's, loaded or not: errors must always cross */
    if (!lua_istable(L, idx))
        return 0;
    if (!e->errmeta_known) {
        luaL_getmetatable(L, "braid.Error");
        e->errmeta = lua_topointer(L, -1); /* anchored by the registry */
        e->errmeta_known = 1;
        lua_pop(L, 1);
    }
    int is_error_meta = e->errmeta && p == e->errmeta;
    if (is_error_meta) {
        braid_buf_put_u8(e->buf, BRAID_T_MODFIELD);
        braid_buf_put_str(e->buf, "braid", 5);
        braid_buf_put_str(e->buf, "Error", 5);
    }
    return is_error_meta;
}

static int enc_by_name(enc_t *e, int idx)
{
    return lbraid_enc_by_name_at(e, idx, lua_topointer(e->L, idx));
}

int lbraid_enc_by_name_fresh(enc_t *e, int idx)
{
    if (enc_by_name(e, idx))
        return 1;
    if (e->walked)
        return 0;
    e->walked = 1;
    lbraid_modmap_push(e->L, &e->ctx->mod, e->box, 1);
    lua_replace(e->L, e->modmap);
    return enc_by_name(e, idx);
}

void lbraid_enc_function(enc_t *e, int idx)
{
    lua_State *L = e->L;
    if (!lua_checkstack(L, 12))
        lbraid_enc_fail(e, "a value nested too deeply");
    if (lua_iscfunction(L, idx)) {
        if (!lbraid_enc_by_name_fresh(e, idx))
            lbraid_enc_fail(e, "a C function not reachable by module name");
        return;
    }
    if (enc_by_name(e, idx) || enc_seen(e, idx))
        return;
    lua_Integer myref = e->nrefs - 1; /* enc_seen just numbered it */
    fninfo_t *fi = lbraid_fninfo_push(L, idx);
    if (!fi) {
        e->ctx->busy = 0;
        lbraid_core_error(L, BRAID_ENOMEM, "encode");
    }
    int info = lua_gettop(L);
    braid_buf_put_u8(e->buf, BRAID_T_FUNC);
    braid_buf_put_str(e->buf, fi->chunk, fi->len);
    braid_buf_put_u64(e->buf, fi->mac);
    braid_buf_put_varint(e->buf, (uint64_t)fi->nups);
    int env = 0; /* stack index of _ENV's value, which becomes the receiver's globals */
    for (int i = 1; i <= fi->nups; i++) {
        const char *name = lua_getupvalue(L, idx, i);
        if (i == fi->env && lua_istable(L, -1)) {
            env = lua_gettop(L);
            braid_buf_put_u8(e->buf, BRAID_T_MODULE);
            braid_buf_put_str(e->buf, "_G", 2);
            continue; /* keep the env on the stack for the globals below */
        }
        /* an upvalue shared with a function written earlier stays shared */
        const void *id = lua_upvalueid(L, idx, i);
        int found;
        lua_Integer at = lbraid_enc_seen_find(e->ctx, id, &found);
        if (found) {
            at = -at - 1;
            braid_buf_put_u8(e->buf, BRAID_T_UPREF);
            braid_buf_put_varint(e->buf, (uint64_t)(at >> 8));
            braid_buf_put_varint(e->buf, (uint64_t)(at & 0xff));
            lua_pop(L, 1);
            continue;
        }
        lbraid_enc_seen_add(e, id, -(myref * 256 + i) - 1);
        seg_t *s = &e->path[e->depth];
        s->kind = 3;
        s->s = name && *name ? name : "?";
        s->len = strlen(s->s);
        lbraid_enc_value(e, lua_gettop(L));
        lua_pop(L, 1);
    }
    /* globals it reads that are not the standard ones every state has */
    if (!fi->nglobals) {
        braid_buf_put_u8(e->buf, 0);
        lua_settop(L, info - 1);
        return;
    }
    lua_getiuservalue(L, info, 2);
    int names = lua_gettop(L);
    lua_Integer nnames = fi->nglobals, count = 0;
    if (!env)
        lua_pushglobaltable(L), env = lua_gettop(L);
    lua_newtable(L);
    int keep = lua_gettop(L);
    for (lua_Integer i = 1; i <= nnames; i++) {
        lua_rawgeti(L, names, i);
        lua_pushvalue(L, -1);
        if (lua_gettable(L, env) == LUA_TNIL) {
            lua_pop(L, 2);
            continue;
        }
        lua_rawseti(L, keep, ++count * 2);
        lua_rawseti(L, keep, count * 2 - 1);
    }
    braid_buf_put_varint(e->buf, (uint64_t)count);
    for (lua_Integer i = 1; i <= count; i++) {
        lua_rawgeti(L, keep, 2 * i - 1);
        lua_rawgeti(L, keep, 2 * i);
        seg_t *s = &e->path[e->depth];
        s->kind = 4;
        s->s = lua_tolstring(L, -2, &s->len);
        lbraid_enc_value(e, lua_gettop(L) - 1);
        lbraid_enc_value(e, lua_gettop(L));
        lua_pop(L, 2);
    }
    lua_settop(L, info - 1);
}

int lbraid_enc_known_function(lua_State *L, int idx, braid_buf_t *buf, lbraid_fnmemo_t *memo)
{
    int top = lua_gettop(L), ok = 0;
    encctx_t *c = lbraid_encctx_find(L);
    if (c) {
        ok = !c->busy && lbraid_modmap_current(L, &c->mod) &&
             !lbraid_modmap_may_have(&c->mod, lua_topointer(L, idx));
    }
    fninfo_t *fi = ok ? lbraid_fninfo_find(L, idx) : NULL;
    ok = fi && !fi->nglobals &&
         (fi->nups == 0 ||
          (fi->nups == 1 && fi->env == 1 && lua_getupvalue(L, idx, 1) && lua_istable(L, -1)));
    size_t start = buf->len;
    if (ok) { /* as enc_function writes it (the chunk is anchored by the fninfo box) */
        braid_buf_put_u8(buf, BRAID_T_FUNC);
        braid_buf_put_str(buf, fi->chunk, fi->len);
        braid_buf_put_u64(buf, fi->mac);
        braid_buf_put_varint(buf, (uint64_t)fi->nups);
        if (fi->nups) {
            braid_buf_put_u8(buf, BRAID_T_MODULE);
            braid_buf_put_str(buf, "_G", 2);
        }
        braid_buf_put_u8(buf, 0);
        if (buf->err)
            lbraid_core_error(L, buf->err, "encode");
        if (memo) { /* the registry anchors c (ECTX_KEY is set once) */
            braid_buf_reset(&memo->bytes);
            braid_buf_put_bytes(&memo->bytes, buf->data + start, buf->len - start);
            memo->fn = memo->bytes.err ? NULL : lua_topointer(L, idx);
            memo->ctx = c;
            memo->env = fi->nups == 1;
        }
    }
    lua_settop(L, top);
    return ok;
}

int lbraid_encode_memo(lua_State *L, int idx, braid_buf_t *buf, lbraid_fnmemo_t *memo,
                       const char *root)
{
    const void *p = lua_topointer(L, idx);
    if (p && p == memo->fn && lua_type(L, idx) == LUA_TFUNCTION) {
        encctx_t *c = memo->ctx;
        int ok =
            !c->busy && lbraid_modmap_current(L, &c->mod) && !lbraid_modmap_may_have(&c->mod, p);
        if (ok && memo->env) {
            ok = lua_getupvalue(L, idx, 1) != NULL;
            if (ok) {
                ok = lua_istable(L, -1);
                lua_pop(L, 1);
            }
        }
        if (ok) {
            braid_buf_put_bytes(buf, memo->bytes.data, memo->bytes.len);
            if (buf->err)
                lbraid_core_error(L, buf->err, "encode");
            return 1;
        }
    }
    memo->fn = NULL;
    if (lua_type(L, idx) == LUA_TFUNCTION && !lua_iscfunction(L, idx) &&
        lbraid_enc_known_function(L, lua_absindex(L, idx), buf, memo))
        return memo->fn != NULL;
    lbraid_encode(L, idx, buf, root);
    return 0;
}
