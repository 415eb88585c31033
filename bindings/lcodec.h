/* Inside the Lua half of the codec: lcodec_enc.c (Lua values -> bytes) and
 * lcodec_dec.c (bytes -> Lua values) share what lcodec_chunk.c knows of Lua
 * 5.4's dumped chunks; the encoder's module map is in lcodec_names.c. Not
 * installed. */
#ifndef BRAID_LCODEC_H
#define BRAID_LCODEC_H

#include <stddef.h>
#include <stdint.h>

#include "lbraid.h"

/* The globals every state has (luaL_openlibs): never copied, and the only
 * fields of _G that cross by name. */
int lbraid_is_standard_global(const char *name);
/* Pushes a sequence of the names of the globals the dumped chunk data reads
 * (each GETTABUP through an upvalue named _ENV, in any nested function).
 * Stack: +1. */
void lbraid_chunk_globals(lua_State *L, const char *data, size_t len);
/* Writes into b the maker chunk for the dumped function in data (already
 * authenticated): a main function `local u1..un; return function ... end`.
 * Returns n, the function's number of upvalues, or -1 when the chunk is not
 * laid out as expected (then the caller loads it directly). */
int lbraid_chunk_maker(braid_buf_t *b, const uint8_t *data, size_t len);

/* An encoder context's module map (lcodec_names.c): the map itself is kept
 * in uservalue 2 of the context's box. */
typedef struct lbraid_modmap {
    int valid;            /* 0: to build; 1: checked by walking package.loaded; 2: the
                           * loaded hook's count vouches for it */
    lua_Integer sig, gen; /* package.loaded's walk signature, the hook's count */
    const void **keys;    /* addresses of the map's keys (open addressing) */
    size_t cap;
    const void *hookmeta; /* the hook's metatable, once found (the registry anchors it) */
    const void *hooked;   /* the table it was last found on (anchored at registry[hookref]) */
    int hookref;
    struct lbraid_loaded_gen *hookgen;
} lbraid_modmap_t;

/* Pushes the module map of the context box at `box`, rebuilding it when
 * package.loaded changed (walk: check by walking package.loaded even if
 * the hook's count vouches for it). Stack: +1. */
void lbraid_modmap_push(lua_State *L, lbraid_modmap_t *m, int box, int walk);
/* True when lbraid_modmap_push would keep m's map as it is, without
 * walking package.loaded (the loaded hook's count vouches for it). */
int lbraid_modmap_current(lua_State *L, const lbraid_modmap_t *m);
/* False when p is surely not a key of the map last pushed. */
int lbraid_modmap_may_have(const lbraid_modmap_t *m, const void *p);
void lbraid_modmap_free(lbraid_modmap_t *m);

/* What encoding a Lua function needs (lcodec_fn.c), cached per function
 * (the box's uservalue 1 anchors the chunk string, 2 the names in globals). */
typedef struct fninfo {
    const char *chunk;
    size_t len;
    uint64_t mac;
    int nups;
    int env;      /* number of the upvalue named _ENV, or 0 */
    int nglobals; /* globals it reads that are not the standard ones */
} fninfo_t;

/* Pushes the fninfo box of the Lua function at idx, working it out on
 * first use. Returns NULL (pushing nothing) when out of memory. */
fninfo_t *lbraid_fninfo_push(lua_State *L, int idx);
/* The cached fninfo of the function at idx, or NULL; it stays valid while
 * that function lives. Stack: unchanged. */
fninfo_t *lbraid_fninfo_find(lua_State *L, int idx);

#endif
