/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for the manager's
 * authentication challenge; small and dependency-free. */
#ifndef BRAID_SHA256_H
#define BRAID_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BRAID_SHA256_LEN 32

typedef struct braid_sha256 {
    uint32_t h[8];
    uint64_t total; /* bytes hashed so far */
    uint8_t block[64];
    size_t used; /* bytes waiting in block */
} braid_sha256_t;

/* Incremental hashing; the context is the caller's (no sharing). */
void braid_sha256_init(braid_sha256_t *c);
void braid_sha256_update(braid_sha256_t *c, const void *data, size_t len);
void braid_sha256_final(braid_sha256_t *c, uint8_t out[BRAID_SHA256_LEN]);

/* One-shot digest and HMAC. Thread-safe (no shared state). */
void braid_sha256(const void *data, size_t len, uint8_t out[BRAID_SHA256_LEN]);
void braid_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
                       uint8_t out[BRAID_SHA256_LEN]);

/* 1 if the n bytes at a and b are equal, in time that does not depend on
 * where they differ. */
int braid_digest_equal(const void *a, const void *b, size_t n);

#ifdef __cplusplus
}
#endif
#endif
