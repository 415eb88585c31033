/* Byte-level half of the codec: growable buffers, bounds-checked readers,
 * a structural validator, the chunk MAC (SipHash-2-4) and tuple ordering. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "error.h"

void braid_buf_init(braid_buf_t *b)
{
    memset(b, 0, sizeof *b);
}

void braid_buf_reset(braid_buf_t *b)
{
    for (size_t i = 0; i < b->nobjs; i++)
        braid_object_release(b->objs[i]);
    b->nobjs = 0;
    b->len = 0;
    b->err = 0;
}

void braid_buf_free(braid_buf_t *b)
{
    braid_buf_reset(b);
    free(b->data);
    free(b->objs);
    braid_buf_init(b);
}

void braid_buf_move(braid_buf_t *dst, braid_buf_t *src)
{
    *dst = *src;
    braid_buf_init(src);
}

/* Keeps one reference to obj in b's object list. */
static void hold_object(braid_buf_t *b, braid_object_t *obj)
{
    if (b->err)
        return;
    if (b->nobjs == b->objcap) {
        size_t ncap = b->objcap ? b->objcap * 2 : 4;
        braid_object_t **n = realloc(b->objs, ncap * sizeof *n);
        if (!n) {
            b->err = BRAID_ENOMEM;
            return;
        }
        b->objs = n;
        b->objcap = ncap;
    }
    braid_object_retain(obj);
    b->objs[b->nobjs++] = obj;
}

int braid_buf_copy(braid_buf_t *dst, const braid_buf_t *src)
{
    braid_buf_reset(dst);
    braid_buf_put_bytes(dst, src->data, src->len);
    for (size_t i = 0; i < src->nobjs; i++)
        hold_object(dst, src->objs[i]);
    if (dst->err) {
        braid_buf_reset(dst);
        return BRAID_ENOMEM;
    }
    return 0;
}

static int reserve(braid_buf_t *b, size_t extra)
{
    if (b->err)
        return 0;
    if (b->cap - b->len >= extra)
        return 1;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap - b->len < extra) {
        if (ncap > SIZE_MAX / 2) {
            b->err = BRAID_ENOMEM;
            return 0;
        }
        ncap *= 2;
    }
    uint8_t *n = realloc(b->data, ncap);
    if (!n) {
        b->err = BRAID_ENOMEM;
        return 0;
    }
    b->data = n;
    b->cap = ncap;
    return 1;
}

void braid_buf_put_u8(braid_buf_t *b, uint8_t v)
{
    if (reserve(b, 1))
        b->data[b->len++] = v;
}

void braid_buf_put_varint(braid_buf_t *b, uint64_t v)
{
    if (!reserve(b, 10))
        return;
    while (v >= 0x80) {
        b->data[b->len++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b->data[b->len++] = (uint8_t)v;
}

void braid_buf_put_int(braid_buf_t *b, int64_t v)
{
    braid_buf_put_varint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void braid_buf_put_u64(braid_buf_t *b, uint64_t v)
{
    if (!reserve(b, 8))
        return;
    for (int i = 0; i < 8; i++)
        b->data[b->len++] = (uint8_t)(v >> (8 * i));
}

void braid_buf_put_f64(braid_buf_t *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    braid_buf_put_u64(b, u);
}

void braid_buf_put_bytes(braid_buf_t *b, const void *p, size_t n)
{
    if (n && reserve(b, n)) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }
}

void braid_buf_put_str(braid_buf_t *b, const void *p, size_t n)
{
    braid_buf_put_varint(b, n);
    braid_buf_put_bytes(b, p, n);
}

void braid_buf_put_object(braid_buf_t *b, braid_object_t *obj)
{
    if (!b->err && braid_object_register(obj) != 0)
        b->err = BRAID_ENOMEM;
    hold_object(b, obj);
    braid_buf_put_u8(b, BRAID_T_OBJECT);
    braid_buf_put_u64(b, obj->id);
}

/* ---- reader ---- */

void braid_reader_init(braid_reader_t *r, const void *data, size_t len)
{
    r->p = data;
    r->end = r->p + len;
    r->err = 0;
}

static int need(braid_reader_t *r, size_t n)
{
    if (r->err || (size_t)(r->end - r->p) < n) {
        r->err = BRAID_ECORRUPT;
        return 0;
    }
    return 1;
}

size_t braid_reader_left(const braid_reader_t *r)
{
    return r->err ? 0 : (size_t)(r->end - r->p);
}

uint8_t braid_reader_u8(braid_reader_t *r)
{
    return need(r, 1) ? *r->p++ : 0;
}

uint64_t braid_reader_varint(braid_reader_t *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (!need(r, 1))
            return 0;
        uint8_t byte = *r->p++;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return v;
    }
    r->err = BRAID_ECORRUPT;
    return 0;
}

int64_t braid_reader_int(braid_reader_t *r)
{
    uint64_t u = braid_reader_varint(r);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

uint64_t braid_reader_u64(braid_reader_t *r)
{
    if (!need(r, 8))
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += 8;
    return v;
}

double braid_reader_f64(braid_reader_t *r)
{
    uint64_t u = braid_reader_u64(r);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

const uint8_t *braid_reader_bytes(braid_reader_t *r, size_t n)
{
    if (!need(r, n))
        return NULL;
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

const uint8_t *braid_reader_str(braid_reader_t *r, size_t *n)
{
    uint64_t len = braid_reader_varint(r);
    if (r->err || len > braid_reader_left(r)) {
        r->err = BRAID_ECORRUPT;
        *n = 0;
        return NULL;
    }
    *n = (size_t)len;
    return braid_reader_bytes(r, (size_t)len);
}

uint64_t braid_reader_count(braid_reader_t *r, size_t min_each)
{
    uint64_t n = braid_reader_varint(r);
    if (r->err || (min_each && n > braid_reader_left(r) / min_each)) {
        r->err = BRAID_ECORRUPT;
        return 0;
    }
    return n;
}

/* ---- validation ---- */

static int walk(braid_reader_t *r, int depth, uint64_t *nrefs)
{
    if (depth > BRAID_CODEC_MAX_DEPTH)
        return BRAID_ETOOBIG;
    size_t n;
    const uint8_t *s;
    int rc = 0;
    uint8_t tag = braid_reader_u8(r);
    switch (r->err ? BRAID_T_COUNT_ : tag) {
    case BRAID_T_NIL:
    case BRAID_T_FALSE:
    case BRAID_T_TRUE:
        break;
    case BRAID_T_INT:
        braid_reader_varint(r);
        break;
    case BRAID_T_FLOAT:
    case BRAID_T_OBJECT:
        braid_reader_u64(r);
        break;
    case BRAID_T_STR:
        braid_reader_str(r, &n);
        if (n >= BRAID_CODEC_MEMO_MIN)
            (*nrefs)++;
        break;
    case BRAID_T_SSTR:
    case BRAID_T_MODULE:
        braid_reader_str(r, &n);
        break;
    case BRAID_T_MODFIELD:
        braid_reader_str(r, &n);
        braid_reader_str(r, &n);
        break;
    case BRAID_T_REF:
        if (braid_reader_varint(r) >= *nrefs)
            r->err = BRAID_ECORRUPT;
        break;
    case BRAID_T_UPREF:
        if (braid_reader_varint(r) >= *nrefs || braid_reader_varint(r) > 255)
            r->err = BRAID_ECORRUPT;
        break;
    case BRAID_T_TABLE: {
        uint64_t na = braid_reader_count(r, 1);
        uint64_t nh = braid_reader_count(r, 2);
        uint8_t flags = braid_reader_u8(r), hasmeta = flags & 1;
        if (!(flags & 2))
            (*nrefs)++;
        for (uint64_t i = 0; i < na + 2 * nh && !rc && !r->err; i++)
            rc = walk(r, depth + 1, nrefs);
        if (flags > 3)
            r->err = BRAID_ECORRUPT;
        else if (hasmeta && !rc)
            rc = walk(r, depth + 1, nrefs);
        break;
    }
    case BRAID_T_FUNC: {
        (*nrefs)++;
        s = braid_reader_str(r, &n);
        uint64_t mac = braid_reader_u64(r);
        if (!r->err && braid_codec_mac(s, n) != mac)
            r->err = BRAID_ECORRUPT;
        uint64_t nup = braid_reader_count(r, 1);
        for (uint64_t i = 0; i < nup && !rc && !r->err; i++)
            rc = walk(r, depth + 1, nrefs);
        uint64_t ng = braid_reader_count(r, 2);
        for (uint64_t i = 0; i < 2 * ng && !rc && !r->err; i++)
            rc = walk(r, depth + 1, nrefs);
        break;
    }
    default:
        r->err = BRAID_ECORRUPT;
    }
    return rc ? rc : r->err;
}

int braid_codec_validate(const void *data, size_t len)
{
    braid_reader_t r;
    uint64_t nrefs = 0;
    braid_reader_init(&r, data, len);
    int rc = walk(&r, 0, &nrefs);
    if (!rc && braid_reader_left(&r) != 0)
        rc = BRAID_ECORRUPT;
    return rc;
}

/* ---- SipHash-2-4 ---- */

static uint8_t mac_key[16];
static pthread_once_t mac_once = PTHREAD_ONCE_INIT;
static int mac_key_set;

static void mac_init(void)
{
    if (mac_key_set)
        return;
    if (getrandom(mac_key, sizeof mac_key, 0) != (ssize_t)sizeof mac_key) {
        /* no entropy source: still unpredictable enough to catch garbage */
        uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)&seed;
        memcpy(mac_key, &seed, 8);
        memcpy(mac_key + 8, &seed, 8);
    }
}

void braid_codec_get_key(uint8_t key[16])
{
    pthread_once(&mac_once, mac_init);
    memcpy(key, mac_key, 16);
}

void braid_codec_set_key(const uint8_t key[16])
{
    memcpy(mac_key, key, 16);
    mac_key_set = 1;
    pthread_once(&mac_once, mac_init);
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

uint64_t braid_codec_mac(const void *data, size_t n)
{
    pthread_once(&mac_once, mac_init);
    const uint8_t *p = data;
    uint64_t k0 = le64(mac_key), k1 = le64(mac_key + 8);
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    size_t i, blocks = n / 8;
    for (i = 0; i < blocks; i++) {
        uint64_t m = le64(p + 8 * i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)n << 56;
    for (size_t j = 0; j < (n & 7); j++)
        last |= (uint64_t)p[8 * blocks + j] << (8 * j);
    v3 ^= last;
    SIPROUND;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- ordering ---- */

static int cmp_values(braid_reader_t *a, braid_reader_t *b, int depth, int *out)
{
    if (depth > BRAID_CODEC_MAX_DEPTH)
        return BRAID_ETOOBIG;
    uint8_t ta = braid_reader_u8(a), tb = braid_reader_u8(b);
    if (a->err || b->err)
        return BRAID_ECORRUPT;
    int anum = ta == BRAID_T_INT || ta == BRAID_T_FLOAT;
    int bnum = tb == BRAID_T_INT || tb == BRAID_T_FLOAT;
    if (anum && bnum) {
        if (ta == BRAID_T_INT && tb == BRAID_T_INT) {
            int64_t x = braid_reader_int(a), y = braid_reader_int(b);
            *out = (x > y) - (x < y);
        } else {
            double x = ta == BRAID_T_INT ? (double)braid_reader_int(a) : braid_reader_f64(a);
            double y = tb == BRAID_T_INT ? (double)braid_reader_int(b) : braid_reader_f64(b);
            *out = (x > y) - (x < y);
        }
        return a->err || b->err ? BRAID_ECORRUPT : 0;
    }
    if ((ta == BRAID_T_STR || ta == BRAID_T_SSTR) && (tb == BRAID_T_STR || tb == BRAID_T_SSTR)) {
        size_t na, nb;
        const uint8_t *sa = braid_reader_str(a, &na), *sb = braid_reader_str(b, &nb);
        if (a->err || b->err)
            return BRAID_ECORRUPT;
        int c = memcmp(sa, sb, na < nb ? na : nb);
        *out = c ? (c > 0) - (c < 0) : (na > nb) - (na < nb);
        return 0;
    }
    if (ta == BRAID_T_TABLE && tb == BRAID_T_TABLE) {
        /* only the sequence part takes part, so the rest is never read */
        uint64_t na = braid_reader_count(a, 1);
        braid_reader_count(a, 2);
        uint64_t nb = braid_reader_count(b, 1);
        braid_reader_count(b, 2);
        braid_reader_u8(a);
        braid_reader_u8(b);
        if (a->err || b->err)
            return BRAID_ECORRUPT;
        uint64_t common = na < nb ? na : nb;
        for (uint64_t i = 0; i < common; i++) {
            int rc = cmp_values(a, b, depth + 1, out);
            if (rc || *out)
                return rc;
        }
        *out = (na > nb) - (na < nb);
        return 0;
    }
    return BRAID_ETYPE;
}

int braid_codec_compare(const void *a, size_t alen, const void *b, size_t blen, int *cmp)
{
    braid_reader_t ra, rb;
    braid_reader_init(&ra, a, alen);
    braid_reader_init(&rb, b, blen);
    *cmp = 0;
    return cmp_values(&ra, &rb, 0, cmp);
}
