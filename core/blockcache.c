/* Block caches: a Lua state allocating and collecting thousands of small
 * blocks per operation (a decode makes a table, its parts and a string per
 * record; a collector step frees the last ones) spends a third of its time
 * in malloc and free, most of it in glibc's slow paths: its per-thread
 * cache holds 7 blocks a size, and each large request (a message string)
 * consolidates the fast bins the small ones came from. Here a freed block
 * of up to BRAID_BCACHE_SMALL bytes goes on its size class's list (16-byte
 * steps; Lua passes a block's size back), and a request takes from the
 * list before asking malloc. A small block is malloc'd at its class's full
 * size, so a block Lua knows by n bytes holds at least class_of(n)'s bytes
 * (a shrink that could not move keeps the bigger block: still big enough;
 * a large block is bigger than any class).
 * At most BRAID_BCACHE_KEEP bytes are kept; beyond, blocks go back to free.
 *
 * ASan builds use plain malloc, so each block stays checked on its own. */
#include "blockcache.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define BCACHE_PLAIN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BCACHE_PLAIN 1
#endif
#endif

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux >= 5.14; EINVAL before */
#endif

/* A fresh page costs a fault when first touched (~12 us on some VMs, a
 * quarter of a submit's time when a burst keeps thousands of futures
 * alive); populating the heap's growth in bulk costs a fraction of that
 * per page. The heap top is read from sbrk(0) (no system call). */
static _Atomic uintptr_t warm_top;
static atomic_int warm_off; /* the kernel refused: stop asking */

void braid_mem_populate(void *p, size_t n)
{
    if (!p || atomic_load_explicit(&warm_off, memory_order_relaxed))
        return;
    uintptr_t lo = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
    uintptr_t hi = ((uintptr_t)p + n) & ~(uintptr_t)4095;
    if (hi > lo && madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE) != 0 && errno == EINVAL)
        atomic_store_explicit(&warm_off, 1, memory_order_relaxed);
}

void braid_heap_warm(void)
{
    if (atomic_load_explicit(&warm_off, memory_order_relaxed))
        return;
    uintptr_t top = (uintptr_t)sbrk(0);
    uintptr_t had = atomic_load_explicit(&warm_top, memory_order_relaxed);
    if (top == had || top == (uintptr_t)-1 ||
        !atomic_compare_exchange_strong_explicit(
            &warm_top, &had, top, memory_order_relaxed, memory_order_relaxed))
        return;
    if (!had || top < had)
        return; /* the first look, or the heap shrank: nothing new */
    uintptr_t lo = had & ~(uintptr_t)4095;
    braid_mem_populate((void *)lo, top - lo);
}

#define NCLASSES (BRAID_BCACHE_SMALL / 16)

struct braid_bcache {
    size_t kept; /* bytes on the lists */
    void *free[NCLASSES];
};

braid_bcache_t *braid_bcache_new(void)
{
    return calloc(1, sizeof(braid_bcache_t));
}

void braid_bcache_free(braid_bcache_t *c)
{
    if (!c)
        return;
    for (int i = 0; i < NCLASSES; i++) {
        while (c->free[i]) {
            void *p = c->free[i];
            c->free[i] = *(void **)p;
            free(p);
        }
    }
    free(c);
}

#ifdef BCACHE_PLAIN

size_t braid_bcache_kept(const braid_bcache_t *c)
{
    (void)c;
    return (size_t)-1;
}

void *braid_bcache_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, nsize);
}

#else

size_t braid_bcache_kept(const braid_bcache_t *c)
{
    return c->kept;
}

/* The class of a block of n bytes (0 < n <= BRAID_BCACHE_SMALL): blocks of
 * class c hold (c + 1) * 16 bytes. */
static inline int class_of(size_t n)
{
    return (int)((n - 1) >> 4);
}

/* Puts p, a block Lua knows by n bytes, on its class's list if it is
 * small and the cache has room; returns 0 (p untouched) if not. */
static inline int cache_put(braid_bcache_t *c, void *p, size_t n)
{
    /* every block Lua knows by n <= BRAID_BCACHE_SMALL bytes holds at
     * least class_of(n)'s (see above); n == 0 wraps and is refused */
    if (n - 1 >= BRAID_BCACHE_SMALL)
        return 0;
    int k = class_of(n);
    if (c->kept + (size_t)(k + 1) * 16 > BRAID_BCACHE_KEEP)
        return 0;
    *(void **)p = c->free[k];
    c->free[k] = p;
    c->kept += (size_t)(k + 1) * 16;
    return 1;
}

/* A block of n bytes (0 < n <= BRAID_BCACHE_SMALL) from its class's list,
 * or NULL if the list is empty. */
static inline void *cache_get(braid_bcache_t *c, size_t n)
{
    int k = class_of(n);
    void *p = c->free[k];
    if (p) {
        c->free[k] = *(void **)p;
        c->kept -= (size_t)(k + 1) * 16;
    }
    return p;
}

static inline void give(braid_bcache_t *c, void *p, size_t n)
{
    if (!cache_put(c, p, n))
        free(p);
}

/* A new block of n bytes' class from malloc (0 < n <= BRAID_BCACHE_SMALL). */
static void *fresh(size_t n)
{
    void *p = malloc((size_t)(class_of(n) + 1) * 16);
    braid_heap_warm();
    return p;
}

static inline void *take(braid_bcache_t *c, size_t n)
{
    void *p = cache_get(c, n);
    return p ? p : fresh(n);
}

/* Populates the whole pages of [p + from, p + to) when they are many: a
 * big block (a table's parts, a long string) is written all through, and
 * malloc takes it from fresh memory (mmap) more often than not. */
#define WARM_MIN (64u << 10)

static void *warm_block(void *p, size_t from, size_t to)
{
    if (p && to >= from + WARM_MIN)
        braid_mem_populate((char *)p + from, to - from);
    return p;
}

/* A block bigger than any class: realloc's (ptr NULL: malloc's), with
 * its new pages populated. */
static void *big(void *ptr, size_t osize, size_t nsize)
{
    void *n = realloc(ptr, nsize);
    braid_heap_warm();
    return warm_block(n, ptr ? osize : 0, nsize);
}

/* What braid_bcache_alloc's short paths left: a free the cache does not
 * keep, a new block its list could not give, a resize. Not static: the
 * compiler would inline a static function called once, and its frame
 * would slow the short paths (~5% of a decode's instructions). */
void *braid__bcache_slow(braid_bcache_t *c, void *ptr, size_t osize, size_t nsize)
{
    if (nsize == 0) { /* (cache_put refused it) */
        free(ptr);
        return NULL;
    }
    if (!ptr) /* (a small one's list was empty) */
        return nsize <= BRAID_BCACHE_SMALL ? fresh(nsize) : big(NULL, 0, nsize);
    if (nsize <= BRAID_BCACHE_SMALL) {
        if (osize <= BRAID_BCACHE_SMALL && class_of(nsize) == class_of(osize))
            return ptr;
        void *n = take(c, nsize);
        if (!n)
            return nsize <= osize ? ptr : NULL; /* a shrink never fails */
        memcpy(n, ptr, osize < nsize ? osize : nsize);
        give(c, ptr, osize);
        return n;
    }
    if (osize <= BRAID_BCACHE_SMALL) {
        void *n = big(NULL, 0, nsize);
        if (n) {
            memcpy(n, ptr, osize);
            give(c, ptr, osize);
        }
        return n;
    }
    void *n = big(ptr, osize, nsize);
    return n || nsize > osize ? n : ptr; /* a shrink never fails */
}

void *braid_bcache_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    braid_bcache_t *c = ud;
    if (nsize == 0) {
        if (!ptr || cache_put(c, ptr, osize))
            return NULL; /* (NULL: Lua frees the empty parts of new tables) */
    } else if (!ptr && nsize <= BRAID_BCACHE_SMALL) {
        void *p = cache_get(c, nsize);
        if (p)
            return p;
    }
    return braid__bcache_slow(c, ptr, osize, nsize);
}

#endif /* BCACHE_PLAIN */
