/* Encoded test values for the core C tests: integers and strings in the
 * codec's format, without a Lua state. */
#ifndef BRAID_TEST_VALUES_H
#define BRAID_TEST_VALUES_H

#include <string.h>

#include "codec.h"

static inline braid_buf_t enc_int(int64_t v)
{
    braid_buf_t b;
    braid_buf_init(&b);
    braid_buf_put_u8(&b, BRAID_T_INT);
    braid_buf_put_int(&b, v);
    return b;
}

static inline braid_buf_t enc_str(const char *s)
{
    braid_buf_t b;
    braid_buf_init(&b);
    braid_buf_put_u8(&b, BRAID_T_STR);
    braid_buf_put_str(&b, s, strlen(s));
    return b;
}

/* The integer in b, or -999999 if b holds something else. */
static inline int64_t dec_int(const braid_buf_t *b)
{
    braid_reader_t r;
    braid_reader_init(&r, b->data, b->len);
    if (braid_reader_u8(&r) != BRAID_T_INT)
        return -999999;
    return braid_reader_int(&r);
}

#endif
