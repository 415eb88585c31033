/* Arenas: the allocator of braid thread states, their blocks up to
 * BLOCK_MAX packed in one region per state, headerless (Lua passes a
 * block's size back). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena.h"
#include "blockcache.h"

/* A fresh thread state is ~500 blocks, most of them small and alive until
 * the state closes; a handful are a few KB (the string table, _G's hash,
 * the stack). malloc would add 8-16 bytes to each and scatter the large
 * ones over the process's heaps, growing them a page at a time (an
 * mprotect each). Here every block up to BLOCK_MAX comes from the state's
 * own region, so only the prefix the state has used is ever touched (RSS).
 * Larger blocks, and any once the region is full, come from malloc, through
 * a block cache (blockcache.h: freed small ones are kept for reuse). The
 * region is given back with the state: what a state keeps is bounded by
 * REGION_BYTES and never outlives it.
 *
 * A new block is cut from the never-used part at its size rounded to 8
 * bytes (Lua aligns nothing beyond 8 bytes: LUAI_MAXALIGN). A freed block
 * goes to the free list of the largest size class it covers; a request
 * takes from the list of the smallest class covering it. Classes: 8-byte
 * steps up to 256 bytes, then four per doubling up to BLOCK_MAX. A large
 * block freed by a vector that grew (the string table, a table's parts,
 * the stack) becomes the "spare": blocks are cut from it before the
 * never-used part is touched.
 *
 * ASan builds use plain malloc for every block, so each stays checked on
 * its own. */

#if defined(__SANITIZE_ADDRESS__)
#define ARENA_PLAIN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_PLAIN 1
#endif
#endif

#ifdef ARENA_PLAIN

struct braid_arena {
    int unused;
};

braid_arena_t *braid_arena_new(void)
{
    return calloc(1, sizeof(braid_arena_t));
}

void braid_arena_free(braid_arena_t *a)
{
    free(a);
}

size_t braid_arena_used(const braid_arena_t *a)
{
    (void)a;
    return 0;
}

void braid_arena_learn(const braid_arena_t *a)
{
    (void)a;
}

void *braid_arena_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    return braid_bcache_alloc(NULL, ptr, osize, nsize); /* plain malloc too */
}

#else

#define REGION_BYTES (128 * 1024) /* a multiple of any page size */
#define SMALL_MAX 256
#define BLOCK_MAX 4096
#define NSMALL (SMALL_MAX / 8)
#define NCLASSES (NSMALL + 16) /* 320, 384, 448, 512, 640, ... 3584, 4096 */

struct braid_arena {         /* malloc'd: the region holds only blocks */
    char *lo, *cur, *hi;     /* the region; cur: its first never-used byte */
    int pooled;              /* the region is a slab's (else malloc'd) */
    char *spare, *spare_end; /* a freed large block being cut up */
    uint32_t large;          /* bit i: free[NSMALL + i] is not empty */
    void *free[NCLASSES];    /* freed blocks by size class */
    braid_bcache_t *cache;   /* the blocks from malloc (made with the first) */
};

static inline size_t round8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static size_t class_size(int c)
{
    if (c < NSMALL)
        return (size_t)(c + 1) * 8;
    int j = c - NSMALL, k = 8 + j / 4;
    return ((size_t)1 << k) + ((size_t)1 << (k - 2)) * (size_t)(j % 4 + 1);
}

/* The smallest class whose blocks hold n bytes (0 < n <= BLOCK_MAX). */
static inline int class_up(size_t n)
{
    if (n <= SMALL_MAX)
        return (int)((n + 7) >> 3) - 1;
    int k = 63 - __builtin_clzll((unsigned long long)(n - 1)); /* 2^k < n <= 2^(k+1) */
    size_t step = (size_t)1 << (k - 2);
    int i = (int)((n - ((size_t)1 << k) + step - 1) / step) - 1;
    return NSMALL + 4 * (k - 8) + i;
}

/* The largest class a free block of n bytes (8 <= n, n % 8 == 0) fills. */
static inline int class_down(size_t n)
{
    if (n > BLOCK_MAX)
        n = BLOCK_MAX;
    if (n < SMALL_MAX + 64)
        return n >= SMALL_MAX ? NSMALL - 1 : (int)(n >> 3) - 1;
    int k = 63 - __builtin_clzll((unsigned long long)n); /* 2^k <= n < 2^(k+1) */
    size_t step = (size_t)1 << (k - 2);
    int i = (int)((n - ((size_t)1 << k)) / step) - 1;
    return NSMALL + 4 * (k - 8) + i; /* i == -1: 2^k, the previous doubling's last */
}

/* ---- regions ----
 * Regions are page-aligned slices of slabs mapped SLAB_REGIONS at a time:
 * a state's resident pages are then exactly the prefix it used (a malloc'd
 * region shares its first page with its neighbour's unused tail, and
 * grows malloc's heap by an mprotect each). A region given back keeps its
 * pages for the next state (which then takes no page faults for them)
 * while fewer than POOL_DIRTY_MAX are kept so; beyond, its used pages go
 * back to the kernel (madvise). Slabs are never unmapped. The lists of
 * free regions live outside the regions, so a region given back to the
 * kernel stays untouched. If no slab can be mapped, a region is malloc'd. */

#define SLAB_REGIONS 32
#define POOL_DIRTY_MAX 32

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static size_t page_size;
static void *pool_dirty[POOL_DIRTY_MAX]; /* given back, pages kept */
static int pool_ndirty;
static void **pool_clean; /* never used or given back to the kernel */
static size_t pool_nclean, pool_capclean;

static void pool_lock(void)
{
    pthread_mutex_lock(&pool_mu);
}

static void pool_unlock(void)
{
    pthread_mutex_unlock(&pool_mu);
}

static void pool_init(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    page_size = ps > 0 ? (size_t)ps : 4096;
    pthread_atfork(pool_lock, pool_unlock, pool_unlock);
}

/* A free region of the pool, or NULL; *clean: none of its pages is
 * present. Called with pool_mu held. */
static void *pool_take(int *clean)
{
    *clean = pool_ndirty == 0;
    if (pool_ndirty > 0)
        return pool_dirty[--pool_ndirty];
    if (pool_nclean == 0) {
        if (pool_capclean < SLAB_REGIONS) {
            void **v = realloc(pool_clean, SLAB_REGIONS * sizeof *v);
            if (!v)
                return NULL;
            pool_clean = v;
            pool_capclean = SLAB_REGIONS;
        }
        char *slab = mmap(NULL,
                          (size_t)SLAB_REGIONS * REGION_BYTES,
                          PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                          -1,
                          0);
        if (slab == MAP_FAILED)
            return NULL;
        for (int i = SLAB_REGIONS; i-- > 0;)
            pool_clean[pool_nclean++] = slab + (size_t)i * REGION_BYTES;
    }
    return pool_clean[--pool_nclean];
}

/* Takes back region a (its first `used` bytes were touched). */
static void pool_give(void *a, size_t used)
{
    pool_lock();
    if (pool_ndirty < POOL_DIRTY_MAX) {
        pool_dirty[pool_ndirty++] = a;
        pool_unlock();
        return;
    }
    pool_unlock();
    (void)madvise(a, (used + page_size - 1) & ~(page_size - 1), MADV_DONTNEED);
    pool_lock();
    if (pool_nclean == pool_capclean) {
        size_t cap = pool_capclean * 2;
        void **v = realloc(pool_clean, cap * sizeof *v);
        if (!v) {
            pool_unlock();
            return; /* out of memory: the region is lost, not misused */
        }
        pool_clean = v;
        pool_capclean = cap;
    }
    pool_clean[pool_nclean++] = a;
    pool_unlock();
}

/* ---- the pages a new state touches ----
 * A page fault costs ~10-25 us on a paravirtualized guest (the benchmark
 * VM), populating a range ~1 us a page. Thread states of one program touch
 * much the same prefix before their code runs (~26 KB, 7 pages: the
 * libraries, then the arguments): once a state has told its size
 * (braid_arena_learn), a clean region's prefix of that size is populated
 * with one madvise instead of a fault a page. That prefix is touched
 * anyway, so the resident size is the same. LEARN_MAX bounds it: a thread
 * whose arguments filled more does not make every later state hold that
 * much. On a kernel without MADV_POPULATE_WRITE (before 5.14) the madvise
 * fails and the pages fault in as before. */

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define LEARN_MAX (REGION_BYTES / 4)

static atomic_size_t fresh_bytes; /* the prefix to populate, learnt */

void braid_arena_learn(const braid_arena_t *a)
{
    size_t n = (size_t)(a->cur - a->lo);
    if (a->pooled)
        atomic_store_explicit(&fresh_bytes, n < LEARN_MAX ? n : LEARN_MAX, memory_order_relaxed);
}

/* The header lives on malloc's heap, not in the region: the region's
 * pages then hold nothing but the state's blocks (a parked thread's state
 * fits in 6 pages, with the header it took 7). */
braid_arena_t *braid_arena_new(void)
{
    pthread_once(&pool_once, pool_init);
    braid_arena_t *a = malloc(sizeof *a);
    if (!a)
        return NULL;
    int clean;
    pool_lock();
    char *r = pool_take(&clean);
    pool_unlock();
    int pooled = r != NULL;
    if (pooled && clean) {
        size_t n = atomic_load_explicit(&fresh_bytes, memory_order_relaxed);
        n = (n + page_size - 1) & ~(page_size - 1);
        if (n > page_size)
            (void)madvise(r, n, MADV_POPULATE_WRITE);
    }
    if (!r && !(r = malloc(REGION_BYTES))) {
        free(a);
        return NULL;
    }
    memset(a, 0, sizeof *a);
    a->pooled = pooled;
    a->lo = a->cur = r;
    a->hi = r + REGION_BYTES;
    return a;
}

void braid_arena_free(braid_arena_t *a)
{
    braid_bcache_free(a->cache);
    if (a->pooled)
        pool_give(a->lo, (size_t)(a->cur - a->lo));
    else
        free(a->lo);
    free(a);
}

size_t braid_arena_used(const braid_arena_t *a)
{
    return (size_t)(a->cur - a->lo);
}

/* Puts a free block of n bytes (a multiple of 8) on its list. */
static inline void give(braid_arena_t *a, void *p, size_t n)
{
    int c = class_down(n);
    *(void **)p = a->free[c];
    a->free[c] = p;
    if (c >= NSMALL)
        a->large |= 1u << (c - NSMALL);
}

static inline void *pop(braid_arena_t *a, int c)
{
    void *p = a->free[c];
    if (p) {
        a->free[c] = *(void **)p;
        if (c >= NSMALL && !a->free[c])
            a->large &= ~(1u << (c - NSMALL));
    }
    return p;
}

/* A block of n bytes (n <= BLOCK_MAX, a multiple of 8) from the region, or
 * NULL when it is full. */
static void *region_take(braid_arena_t *a, size_t n)
{
    void *p = pop(a, class_up(n));
    if (p)
        return p;
    if ((size_t)(a->spare_end - a->spare) < n && a->large) {
        int c = NSMALL + 31 - __builtin_clz(a->large); /* the largest free block */
        if (class_size(c) >= n) {
            if (a->spare_end > a->spare)
                give(a, a->spare, (size_t)(a->spare_end - a->spare));
            a->spare = pop(a, c);
            a->spare_end = a->spare + class_size(c);
        }
    }
    if ((size_t)(a->spare_end - a->spare) >= n) {
        p = a->spare;
        a->spare += n;
        return p;
    }
    if ((size_t)(a->hi - a->cur) < n)
        return NULL;
    p = a->cur;
    a->cur += n;
    return p;
}

/* Blocks outside the region come from the arena's block cache (made when
 * the first is needed: so every such block is the cache's). */
static inline void *outside(braid_arena_t *a, void *ptr, size_t osize, size_t nsize)
{
    if (!a->cache && !(a->cache = braid_bcache_new()))
        return NULL;
    return braid_bcache_alloc(a->cache, ptr, osize, nsize);
}

/* A new block or a resized one (nsize > 0): braid_arena_alloc's paths
 * beyond its short ones. Not static: the compiler would inline a static
 * function called once, and its frame would slow the short paths (~5% of
 * a decode's instructions). */
void *braid__arena_slow(braid_arena_t *a, void *ptr, size_t osize, size_t nsize)
{
    int in = ptr && (char *)ptr >= a->lo && (char *)ptr < a->hi;
    if (nsize <= BLOCK_MAX) {
        if (in && round8(osize) == round8(nsize))
            return ptr;
        void *n = region_take(a, round8(nsize));
        if (n) {
            if (ptr) {
                memcpy(n, ptr, osize < nsize ? osize : nsize);
                if (in)
                    give(a, ptr, round8(osize));
                else
                    braid_bcache_alloc(a->cache, ptr, osize, 0);
            }
            return n;
        }
    }
    if (!in) {
        void *n = outside(a, ptr, ptr ? osize : 0, nsize);
        return n || !ptr || nsize > osize ? n : ptr; /* a shrink never fails */
    }
    void *n = outside(a, NULL, 0, nsize);
    if (!n)
        return nsize <= osize ? ptr : NULL; /* shrunk in place: still a valid block */
    memcpy(n, ptr, osize < nsize ? osize : nsize);
    give(a, ptr, round8(osize));
    return n;
}

void *braid_arena_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    braid_arena_t *a = ud;
    if (nsize == 0) {
        if (!ptr)
            return NULL; /* (Lua frees the empty parts of new tables) */
        if ((char *)ptr >= a->lo && (char *)ptr < a->hi)
            give(a, ptr, round8(osize));
        else
            braid_bcache_alloc(a->cache, ptr, osize, 0);
        return NULL;
    }
    if (!ptr && nsize <= SMALL_MAX) {
        /* a small new block: from its list, or (the region used up, no
         * spare, no large free block: region_take would find nothing)
         * straight from the block cache */
        size_t n = round8(nsize);
        void *p = pop(a, class_up(n));
        if (p)
            return p;
        if (a->cache && !a->large && (size_t)(a->spare_end - a->spare) < n &&
            (size_t)(a->hi - a->cur) < n)
            return braid_bcache_alloc(a->cache, NULL, 0, nsize);
    }
    return braid__arena_slow(a, ptr, osize, nsize);
}

#endif /* ARENA_PLAIN */
