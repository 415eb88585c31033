/* The value format every crossing uses: a flat byte buffer (plus the object
 * references it holds) written by bindings' encoder and read by its decoder.
 * Core never touches a Lua state; it owns the bytes, the tags and the checks. */
#ifndef BRAID_CODEC_H
#define BRAID_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "object.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Tags, one byte each. Layout after the tag:
 *   NIL FALSE TRUE        -
 *   INT                   zigzag varint
 *   FLOAT                 8 bytes, IEEE-754 little endian
 *   STR                   varint length, bytes
 *   TABLE                 varint narray, varint nhash, byte flags (1: has
 *                         a metatable; 2: not a back-reference target),
 *                         narray values, nhash key/value pairs, [metatable]
 *   REF                   varint index of an earlier TABLE (flag 2 unset), FUNC or STR of
 *                         at least BRAID_CODEC_MEMO_MIN bytes (0-based, in
 *                         order of appearance): repeated keys cost 2 bytes
 *                         (the encoder refers back to every table key, and
 *                         to values of BRAID_CODEC_SSTR_MAX bytes or more)
 *   FUNC                  STR-like chunk, 8-byte MAC of the chunk, varint
 *                         nupvalues, upvalues, varint nglobals, (name, value)*
 *   MODULE                STR-like module name
 *   MODFIELD              STR-like module name, STR-like key
 *   OBJECT                8-byte object id
 *   SSTR                  STR-like, never a back-reference target (the
 *                         encoder writes table items shorter than
 *                         BRAID_CODEC_SSTR_MAX bytes so: the receiver
 *                         interns a short string anyway)
 *   UPREF                 (only as a FUNC upvalue) varint ref of an earlier
 *                         FUNC, varint upvalue number: the two closures
 *                         share that upvalue
 */
enum {
    BRAID_T_NIL = 0,
    BRAID_T_FALSE,
    BRAID_T_TRUE,
    BRAID_T_INT,
    BRAID_T_FLOAT,
    BRAID_T_STR,
    BRAID_T_TABLE,
    BRAID_T_REF,
    BRAID_T_FUNC,
    BRAID_T_MODULE,
    BRAID_T_MODFIELD,
    BRAID_T_OBJECT,
    BRAID_T_UPREF,
    BRAID_T_SSTR,
    BRAID_T_COUNT_
};

/* Strings this long or longer are back-reference targets. */
#define BRAID_CODEC_MEMO_MIN 1

/* Table items (not keys) shorter than this are written as SSTR. */
#define BRAID_CODEC_SSTR_MAX 16

/* Nesting limit for encoder and decoder. */
#define BRAID_CODEC_MAX_DEPTH 200

/* An encoded value: bytes plus one reference on every object it names, so
 * the objects outlive the buffer's journey through a queue or a pipe. */
typedef struct braid_buf {
    uint8_t *data;
    size_t len, cap;
    braid_object_t **objs;
    size_t nobjs, objcap;
    int err; /* first write error (BRAID_ENOMEM), sticky */
} braid_buf_t;

/* Zero-initialised braid_buf_t is valid and empty. */
void braid_buf_init(braid_buf_t *b);
/* Frees bytes and releases held objects. */
void braid_buf_free(braid_buf_t *b);
/* Empties the buffer, keeps its capacity, releases held objects. */
void braid_buf_reset(braid_buf_t *b);
/* Moves src's contents into dst (dst must be empty or freed); src becomes empty. */
void braid_buf_move(braid_buf_t *dst, braid_buf_t *src);
/* Replaces dst's contents (dst initialised; its memory is reused) with a
 * copy of src's, taking new references; returns 0 or BRAID_ENOMEM (dst is
 * then empty). */
int braid_buf_copy(braid_buf_t *dst, const braid_buf_t *src);

/* Writers: on allocation failure they set b->err and do nothing. */
void braid_buf_put_u8(braid_buf_t *b, uint8_t v);
void braid_buf_put_varint(braid_buf_t *b, uint64_t v);
void braid_buf_put_int(braid_buf_t *b, int64_t v); /* zigzag varint */
void braid_buf_put_f64(braid_buf_t *b, double v);
void braid_buf_put_u64(braid_buf_t *b, uint64_t v); /* 8 bytes LE */
void braid_buf_put_bytes(braid_buf_t *b, const void *p, size_t n);
void braid_buf_put_str(braid_buf_t *b, const void *p, size_t n); /* varint n, bytes */
/* Writes OBJECT + id and keeps a reference to obj in the buffer. */
void braid_buf_put_object(braid_buf_t *b, braid_object_t *obj);

/* A reader over untrusted bytes: every get checks bounds; the first failure
 * sets err (BRAID_ECORRUPT) and later gets return zeroes. */
typedef struct braid_reader {
    const uint8_t *p, *end;
    int err;
} braid_reader_t;

void braid_reader_init(braid_reader_t *r, const void *data, size_t len);
uint8_t braid_reader_u8(braid_reader_t *r);
uint64_t braid_reader_varint(braid_reader_t *r);
int64_t braid_reader_int(braid_reader_t *r);
double braid_reader_f64(braid_reader_t *r);
uint64_t braid_reader_u64(braid_reader_t *r);
/* Returns a pointer to n bytes inside the input, or NULL on error. */
const uint8_t *braid_reader_bytes(braid_reader_t *r, size_t n);
/* Reads varint length + bytes; returns the bytes and sets *n. */
const uint8_t *braid_reader_str(braid_reader_t *r, size_t *n);
/* Reads a count that must be coverable by the remaining input at min_each
 * bytes per item, so a hostile count cannot force a huge allocation. */
uint64_t braid_reader_count(braid_reader_t *r, size_t min_each);
size_t braid_reader_left(const braid_reader_t *r);

/* Checks that data holds exactly one well-formed value (tags, lengths,
 * depth, back-references, function MACs). Does not check object liveness.
 * Returns 0, BRAID_ECORRUPT or BRAID_ETOOBIG. */
int braid_codec_validate(const void *data, size_t len);

/* Keyed hash that authenticates function chunks: a chunk is only loaded if
 * it was encoded by this process (or one that shares its key), so garbled
 * or forged bytecode never reaches the Lua loader. */
uint64_t braid_codec_mac(const void *p, size_t n);
/* The process key (16 bytes), for handing to child processes. */
void braid_codec_get_key(uint8_t key[16]);
void braid_codec_set_key(const uint8_t key[16]);

/* Orders two encoded values like Python's `<` on numbers, strings and
 * tuples (tables compare by their sequence part, element by element).
 * Sets *cmp to -1/0/1; returns 0, BRAID_ETYPE (not comparable) or
 * BRAID_ECORRUPT. */
int braid_codec_compare(const void *a, size_t alen, const void *b, size_t blen, int *cmp);

#ifdef __cplusplus
}
#endif
#endif
