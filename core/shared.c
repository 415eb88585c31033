/* Shared tables: an array part for the integer keys 1..acap (a value cell
 * per key, no key bytes, no hashing: t[#t + 1] = v appends) and an
 * open-addressing hash map (linear probing, backward-shift deletion) of
 * encoded key -> encoded value for the other keys, plus an O(1) border for
 * #t. */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "shared.h"

/* A slot is 24 bytes: the key's hash, and the key and value bytes
 * themselves when together they fit in INLINE_KV bytes and name no
 * objects (every pair of small integers, floats, booleans and short
 * strings); otherwise a pointer to a big_t holding both buffers. */
#define INLINE_KV 16
#define BIG 0xff

typedef struct big {
    braid_buf_t key, value;
} big_t;

typedef struct slot {
    uint32_t hash; /* the key's hash with bit 0 set; 0: an empty slot */
    uint8_t klen;  /* inline key length, or BIG */
    uint8_t vlen;  /* inline value length */
    union {
        uint8_t kv[INLINE_KV]; /* key, then value */
        big_t *big;
    } u;
} slot_t;

/* A cell of the array part: c[0] is 0 (absent), the length (1..CELL_INLINE)
 * of the value stored inline at c + 1, or BIG: then the value is in a big_t
 * (whose key buffer is empty) at offset 8. */
#define CELL_INLINE 15
typedef union cell {
    uint8_t c[16];
    struct {
        uint64_t tag;
        big_t *big;
    } b;
} cell_t;

/* All fields below obj are guarded by lock (the table's RLock), which is
 * the only lock taken; braid_buf_free of replaced values runs after it is
 * released, since it may destroy other objects. */
struct braid_shared {
    braid_object_t obj;
    braid_rlock_t *lock;
    slot_t *slots;
    size_t cap, count; /* cap: 0 or a power of two; count: keys in slots */
    size_t hints;      /* integer keys in slots (0: no key of the array's range there) */
    cell_t *cells;     /* the array part: cells[k - 1] holds key k, for k in 1..acap */
    size_t acap, acount;
    int64_t border; /* keys 1..border present, border+1 absent */
};

static const uint8_t *slot_key(const slot_t *s, size_t *len)
{
    if (s->klen == BIG) {
        *len = s->u.big->key.len;
        return s->u.big->key.data;
    }
    *len = s->klen;
    return s->u.kv;
}

static const uint8_t *slot_value(const slot_t *s, size_t *len)
{
    if (s->klen == BIG) {
        *len = s->u.big->value.len;
        return s->u.big->value.data;
    }
    *len = s->vlen;
    return s->u.kv + s->klen;
}

static void big_free(big_t *b)
{
    if (b) {
        braid_buf_free(&b->key);
        braid_buf_free(&b->value);
        free(b);
    }
}

static void shared_destroy(braid_object_t *obj)
{
    braid_shared_t *t = (braid_shared_t *)obj;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].hash && t->slots[i].klen == BIG)
            big_free(t->slots[i].u.big);
    for (size_t i = 0; i < t->acap; i++)
        if (t->cells[i].c[0] == BIG)
            big_free(t->cells[i].b.big);
    free(t->slots);
    free(t->cells);
    braid_object_release((braid_object_t *)t->lock);
    free(t);
}

const braid_object_type_t braid_shared_type = {"braid.SharedTable", "braid.shared", shared_destroy};

int braid_shared_new(braid_shared_t **out)
{
    *out = NULL;
    braid_shared_t *t = calloc(1, sizeof *t);
    if (!t)
        return BRAID_ENOMEM;
    int rc = braid_rlock_new(&t->lock);
    if (rc != 0) {
        free(t);
        return rc;
    }
    if (braid_object_init(&t->obj, &braid_shared_type) != 0) {
        braid_object_release((braid_object_t *)t->lock);
        free(t);
        return BRAID_ENOMEM;
    }
    *out = t;
    return 0;
}

braid_rlock_t *braid_shared_rlock(braid_shared_t *t)
{
    return t->lock;
}

static uint32_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return (uint32_t)h | 1u;
}

/* Index of the slot holding key, or of the empty slot where it would go.
 * Requires cap > count. */
static size_t find(const braid_shared_t *t, const void *key, size_t klen, uint32_t h)
{
    size_t mask = t->cap - 1, i = (size_t)h & mask;
    for (;;) {
        const slot_t *s = &t->slots[i];
        if (s->hash == 0)
            return i;
        if (s->hash == h) {
            size_t n;
            const uint8_t *k = slot_key(s, &n);
            if (n == klen && memcmp(k, key, klen) == 0)
                return i;
        }
        i = (i + 1) & mask;
    }
}

static int grow(braid_shared_t *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 16;
    slot_t *n = calloc(ncap, sizeof *n);
    if (!n)
        return BRAID_ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        slot_t *s = &t->slots[i];
        if (s->hash == 0)
            continue;
        size_t j = (size_t)s->hash & (ncap - 1);
        while (n[j].hash)
            j = (j + 1) & (ncap - 1);
        n[j] = *s;
    }
    free(t->slots);
    t->slots = n;
    t->cap = ncap;
    return 0;
}

/* Removes slot i, shifting later members of its probe run back. */
static void remove_slot(braid_shared_t *t, size_t i)
{
    size_t mask = t->cap - 1;
    memset(&t->slots[i], 0, sizeof t->slots[i]);
    t->count--;
    for (size_t j = (i + 1) & mask; t->slots[j].hash; j = (j + 1) & mask) {
        size_t home = (size_t)t->slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t->slots[i] = t->slots[j];
            memset(&t->slots[j], 0, sizeof t->slots[j]);
            i = j;
        }
    }
}

/* Encodes integer v as a key (tag + zigzag varint); returns its length. */
static size_t int_key(uint8_t out[11], int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;
    out[n++] = BRAID_T_INT;
    while (z >= 0x80) {
        out[n++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    out[n++] = (uint8_t)z;
    return n;
}

/* If the n bytes at key are an integer encoded as int_key writes it,
 * stores it in *v and returns 1. */
static int key_int(const uint8_t *key, size_t n, int64_t *v)
{
    if (n < 2 || n > 11 || key[0] != BRAID_T_INT || (n > 2 && key[n - 1] == 0) ||
        (n == 11 && key[10] > 1))
        return 0;
    uint64_t z = 0;
    for (size_t i = 1; i < n; i++) {
        if ((key[i] < 0x80) != (i == n - 1))
            return 0;
        z |= (uint64_t)(key[i] & 0x7f) << (7 * (i - 1));
    }
    *v = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
    return 1;
}

/* The array cell of integer key v, or NULL when v is outside 1..acap. */
static cell_t *cell_of(const braid_shared_t *t, int64_t v)
{
    return v >= 1 && (uint64_t)v <= t->acap ? &t->cells[v - 1] : NULL;
}

static int has_int(const braid_shared_t *t, int64_t v)
{
    cell_t *c = cell_of(t, v);
    if (c)
        return c->c[0] != 0;
    if (!t->hints)
        return 0;
    uint8_t k[11];
    size_t n = int_key(k, v);
    return t->slots[find(t, k, n, hash_bytes(k, n))].hash != 0;
}

/* Moves into c (empty) the pair of hash slot i (an integer key's). */
static void cell_take_slot(braid_shared_t *t, cell_t *c, size_t i)
{
    slot_t *s = &t->slots[i];
    if (s->klen == BIG) {
        braid_buf_free(&s->u.big->key); /* an integer: no objects */
        c->b.big = s->u.big;
        c->c[0] = BIG;
    } else {
        c->c[0] = s->vlen; /* 1..INLINE_KV - 2 */
        memcpy(c->c + 1, s->u.kv + s->klen, s->vlen);
    }
    remove_slot(t, i);
    t->hints--;
    t->acount++;
}

/* Doubles the array part (or makes its first 8 cells), moving into it the
 * keys of its new range that the hash part held. */
static int grow_cells(braid_shared_t *t)
{
    size_t ncap = t->acap ? t->acap * 2 : 8;
    cell_t *n = realloc(t->cells, ncap * sizeof *n);
    if (!n)
        return BRAID_ENOMEM;
    memset(n + t->acap, 0, (ncap - t->acap) * sizeof *n);
    size_t from = t->acap;
    t->cells = n;
    t->acap = ncap;
    for (size_t k = from + 1; k <= ncap && t->hints; k++) {
        uint8_t kb[11];
        size_t kn = int_key(kb, (int64_t)k);
        size_t i = find(t, kb, kn, hash_bytes(kb, kn));
        if (t->slots[i].hash)
            cell_take_slot(t, &n[k - 1], i);
    }
    return 0;
}

static int lock(braid_shared_t *t)
{
    return braid_rlock_acquire(t->lock, BRAID_FOREVER);
}

static void unlock(braid_shared_t *t)
{
    braid_rlock_release(t->lock);
}

int braid_shared_get(braid_shared_t *t, const void *key, size_t klen, braid_buf_t *out)
{
    int rc = lock(t);
    if (rc)
        return rc;
    int64_t k;
    cell_t *c = key_int(key, klen, &k) ? cell_of(t, k) : NULL;
    if (c) {
        if (c->c[0] == BIG) {
            rc = braid_buf_copy(out, &c->b.big->value) == 0 ? 1 : BRAID_ENOMEM;
        } else if (c->c[0]) {
            braid_buf_put_bytes(out, c->c + 1, c->c[0]);
            rc = out->err ? BRAID_ENOMEM : 1;
        }
    } else if (t->cap) {
        slot_t *s = &t->slots[find(t, key, klen, hash_bytes(key, klen))];
        if (s->hash == 0) {
            /* absent */
        } else if (s->klen == BIG) {
            rc = braid_buf_copy(out, &s->u.big->value) == 0 ? 1 : BRAID_ENOMEM;
        } else {
            braid_buf_put_bytes(out, s->u.kv + s->klen, s->vlen);
            rc = out->err ? BRAID_ENOMEM : 1;
        }
    }
    unlock(t);
    return rc;
}

/* Whether key and value (may be NULL) can live in a slot. */
static int fits_inline(const braid_buf_t *key, const braid_buf_t *value)
{
    return key->nobjs == 0 && value->nobjs == 0 && key->len + value->len <= INLINE_KV;
}

/* Fills empty or reused slot s with key and value, inline or in *spare
 * (a big_t allocated before the lock, taken when used). */
static void slot_fill(slot_t *s, braid_buf_t *key, braid_buf_t *value, big_t **spare)
{
    if (fits_inline(key, value)) {
        memcpy(s->u.kv, key->data, key->len);
        memcpy(s->u.kv + key->len, value->data, value->len);
        s->klen = (uint8_t)key->len;
        s->vlen = (uint8_t)value->len;
        braid_buf_reset(key);
        braid_buf_reset(value);
    } else {
        big_t *b = *spare;
        *spare = NULL;
        braid_buf_move(&b->key, key);
        braid_buf_move(&b->value, value);
        s->klen = BIG;
        s->vlen = 0;
        s->u.big = b;
    }
}

/* Fills cell c (empty or reused) with value, inline or in *spare. */
static void cell_fill(cell_t *c, braid_buf_t *key, braid_buf_t *value, big_t **spare)
{
    if (value->nobjs == 0 && value->len <= CELL_INLINE) {
        c->c[0] = (uint8_t)value->len;
        memcpy(c->c + 1, value->data, value->len);
        braid_buf_reset(value);
    } else {
        big_t *b = *spare;
        *spare = NULL;
        braid_buf_move(&b->value, value);
        c->b.big = b;
        c->c[0] = BIG;
    }
    braid_buf_reset(key);
}

/* The set of braid_shared_set when key (integer k) goes to the array part:
 * k is in 1..acap, or acap + 1 with 1..acap all present (the part grows).
 * Called locked; *old receives a replaced big_t. */
static int set_cell(braid_shared_t *t, int64_t k, braid_buf_t *key, braid_buf_t *value,
                    big_t **spare, big_t **old)
{
    if ((uint64_t)k > t->acap) {
        int rc = grow_cells(t);
        if (rc)
            return rc;
    }
    cell_t *c = &t->cells[k - 1];
    if (c->c[0] == BIG)
        *old = c->b.big;
    if (!value) { /* delete */
        if (c->c[0]) {
            memset(c, 0, sizeof *c);
            t->acount--;
            if (k <= t->border)
                t->border = k - 1;
        }
        braid_buf_reset(key);
        return 0;
    }
    if (!c->c[0])
        t->acount++;
    cell_fill(c, key, value, spare);
    if (k == t->border + 1) {
        t->border = k;
        while (t->border < INT64_MAX && has_int(t, t->border + 1))
            t->border++;
    }
    return 0;
}

int braid_shared_set(braid_shared_t *t, braid_buf_t *key, braid_buf_t *value)
{
    if (key->len == 0)
        return BRAID_EINVAL;
    int del = value == NULL || value->len == 0;
    int64_t k = 0;
    int isint = key_int(key->data, key->len, &k);
    big_t *old = NULL, *spare = NULL; /* freed after the lock */
    if (!del && !fits_inline(key, value)) {
        if (!(spare = calloc(1, sizeof *spare)))
            return BRAID_ENOMEM;
    }
    int rc = lock(t);
    if (rc) {
        free(spare);
        return rc;
    }
    if (isint && k >= 1 &&
        ((uint64_t)k <= t->acap ||
         (!del && (uint64_t)k == t->acap + 1 && t->border >= (int64_t)t->acap))) {
        rc = set_cell(t, k, key, del ? NULL : value, &spare, &old);
        if (!rc && del && value)
            braid_buf_reset(value);
    } else if (del) {
        if (t->cap) {
            size_t i = find(t, key->data, key->len, hash_bytes(key->data, key->len));
            if (t->slots[i].hash) {
                if (t->slots[i].klen == BIG)
                    old = t->slots[i].u.big;
                remove_slot(t, i);
                t->hints -= isint;
                if (isint && k >= 1 && k <= t->border)
                    t->border = k - 1;
            }
        }
        braid_buf_reset(key);
        if (value)
            braid_buf_reset(value);
    } else if ((t->count + 1) * 4 > t->cap * 3 && (rc = grow(t)) != 0) {
        /* out of memory */
    } else {
        uint32_t h = hash_bytes(key->data, key->len);
        slot_t *s = &t->slots[find(t, key->data, key->len, h)];
        if (s->hash) {
            if (s->klen == BIG)
                old = s->u.big; /* its key bytes are equal to ours */
        } else {
            s->hash = h;
            t->count++;
            t->hints += isint;
        }
        slot_fill(s, key, value, &spare);
        if (isint && k == t->border + 1) {
            t->border = k;
            while (t->border < INT64_MAX && has_int(t, t->border + 1))
                t->border++;
        }
    }
    unlock(t);
    big_free(old);
    free(spare);
    return rc;
}

int64_t braid_shared_len(braid_shared_t *t)
{
    int rc = lock(t);
    if (rc)
        return rc;
    int64_t n = t->border;
    unlock(t);
    return n;
}

size_t braid_shared_count(braid_shared_t *t)
{
    if (lock(t))
        return 0;
    size_t n = t->count + t->acount;
    unlock(t);
    return n;
}

int braid_shared_snapshot(braid_shared_t *t, braid_shared_pair_t **pairs, size_t *n)
{
    *pairs = NULL;
    *n = 0;
    int rc = lock(t);
    if (rc)
        return rc;
    size_t total = t->count + t->acount;
    braid_shared_pair_t *p = total ? calloc(total, sizeof *p) : NULL;
    size_t m = 0;
    if (total && !p)
        rc = BRAID_ENOMEM;
    for (size_t i = 0; !rc && i < t->acap; i++) {
        cell_t *c = &t->cells[i];
        if (!c->c[0])
            continue;
        uint8_t kb[11];
        braid_buf_put_bytes(&p[m].key, kb, int_key(kb, (int64_t)i + 1));
        if (c->c[0] == BIG) {
            if (braid_buf_copy(&p[m].value, &c->b.big->value))
                rc = BRAID_ENOMEM;
        } else {
            braid_buf_put_bytes(&p[m].value, c->c + 1, c->c[0]);
        }
        if (rc || p[m].key.err || p[m].value.err) {
            rc = BRAID_ENOMEM;
            braid_buf_free(&p[m].key);
            braid_buf_free(&p[m].value);
            break;
        }
        m++;
    }
    for (size_t i = 0; !rc && i < t->cap; i++) {
        slot_t *s = &t->slots[i];
        if (!s->hash)
            continue;
        if (s->klen == BIG) {
            if (braid_buf_copy(&p[m].key, &s->u.big->key) ||
                braid_buf_copy(&p[m].value, &s->u.big->value))
                rc = BRAID_ENOMEM;
        } else {
            size_t kn, vn;
            const uint8_t *kd = slot_key(s, &kn), *vd = slot_value(s, &vn);
            braid_buf_put_bytes(&p[m].key, kd, kn);
            braid_buf_put_bytes(&p[m].value, vd, vn);
            if (p[m].key.err || p[m].value.err)
                rc = BRAID_ENOMEM;
        }
        if (rc) {
            braid_buf_free(&p[m].key);
            braid_buf_free(&p[m].value);
            break;
        }
        m++;
    }
    unlock(t);
    if (rc) {
        braid_shared_pairs_free(p, m);
        return rc;
    }
    *pairs = p;
    *n = m;
    return 0;
}

void braid_shared_pairs_free(braid_shared_pair_t *pairs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        braid_buf_free(&pairs[i].key);
        braid_buf_free(&pairs[i].value);
    }
    free(pairs);
}
