/* What braid.futures' two C files (lfutures.c: Future; lexecutor.c:
 * ThreadPoolExecutor) share. Not installed. */
#ifndef BRAID_LFUTURES_H
#define BRAID_LFUTURES_H

#include "lbraid.h"

/* A protected body: encodes the values above index 1 as a sequence into
 * the braid_buf_t at 1 (light userdata). */
int lfutures_encode_seq_body(lua_State *L);
/* Pushes the values of an encoded sequence (lbraid_decode_seq, with no
 * decoder set up for none or one value); returns how many. */
int lfutures_push_seq(lua_State *L, const uint8_t *data, size_t len);
/* Adds ThreadPoolExecutor, _fn_cache, _Executor_methods and _Executor_meta
 * to the module table at mod. Stack: unchanged. */
void lexecutor_open(lua_State *L, int mod);

#endif
