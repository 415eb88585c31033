/* Inside the Lua half of the codec: lcodec_enc.c (Lua values -> bytes) and
 * lcodec_dec.c (bytes -> Lua values) share what lcodec_chunk.c knows of Lua
 * 5.4's dumped chunks. Not installed. */
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

#endif
