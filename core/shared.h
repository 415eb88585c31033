/* Shared tables: a hash map from encoded keys to encoded values that every
 * thread sees the same, guarded by one RLock (core/sync.h) users can take. */
#ifndef BRAID_SHARED_H
#define BRAID_SHARED_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "object.h"
#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A braid object ("braid.SharedTable", module "braid.shared"). Keys are
 * compared by their encoded bytes, so callers must encode keys canonically
 * (integral floats as integers, as Lua does). Every function is
 * thread-safe: each takes the table's RLock (reentrantly) for its duration,
 * so a thread holding braid_shared_rlock() sees no other thread's changes. */
typedef struct braid_shared braid_shared_t;

extern const braid_object_type_t braid_shared_type;

/* A key/value pair of a snapshot; both owned by the snapshot. */
typedef struct braid_shared_pair {
    braid_buf_t key, value;
} braid_shared_pair_t;

/* New empty table; *out receives the caller's reference. Returns 0,
 * BRAID_ENOMEM or BRAID_EOS. */
int braid_shared_new(braid_shared_t **out);

/* The table's RLock, borrowed (valid while the caller holds a reference to
 * the table; retain it to keep it longer). */
braid_rlock_t *braid_shared_rlock(braid_shared_t *t);

/* Copies the value stored under key into *out (which must be empty); the
 * caller owns the copy. Returns 1 (found), 0 (absent, *out untouched),
 * BRAID_ENOMEM or BRAID_ECANCELLED (waiting for the lock was cancelled). */
int braid_shared_get(braid_shared_t *t, const void *key, size_t klen, braid_buf_t *out);

/* Stores value under key; value == NULL or an empty value deletes the key.
 * On success the contents of *key and *value are consumed (left empty,
 * but maybe holding memory: the caller frees them with braid_buf_free);
 * on failure they are untouched. Returns 0, BRAID_ENOMEM, BRAID_ECANCELLED. */
int braid_shared_set(braid_shared_t *t, braid_buf_t *key, braid_buf_t *value);

/* A border, as Lua's # gives: 0 if key 1 is absent, else n with keys
 * 1..n present and n+1 absent. O(1). Negative on cancellation. */
int64_t braid_shared_len(braid_shared_t *t);

/* Number of keys. */
size_t braid_shared_count(braid_shared_t *t);

/* Copies every pair (order unspecified) into a new array *pairs of *n
 * entries, for iteration unaffected by later changes. Free it with
 * braid_shared_pairs_free. Returns 0, BRAID_ENOMEM or BRAID_ECANCELLED. */
int braid_shared_snapshot(braid_shared_t *t, braid_shared_pair_t **pairs, size_t *n);
void braid_shared_pairs_free(braid_shared_pair_t *pairs, size_t n);

#ifdef __cplusplus
}
#endif
#endif
