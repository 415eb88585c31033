/* Block caches (blockcache.c): the allocator of the braid executable's main
 * state, malloc with the state's freed small blocks kept for reuse. */
#ifndef BRAID_BLOCKCACHE_H
#define BRAID_BLOCKCACHE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct braid_bcache braid_bcache_t;

/* A new, empty cache, or NULL when out of memory. Not thread-safe: one
 * state's, used by one thread at a time. */
braid_bcache_t *braid_bcache_new(void);
/* Frees the cache and the blocks it keeps (after the state closed). */
void braid_bcache_free(braid_bcache_t *c);
/* A lua_Alloc (ud: the cache): nsize 0 frees ptr (osize bytes); else
 * (re)allocates ptr (osize bytes, or ptr NULL) to nsize bytes, keeping the
 * contents; NULL when out of memory (never for a shrink). Every block comes
 * from malloc; freed blocks up to BRAID_BCACHE_SMALL bytes are kept, up to
 * BRAID_BCACHE_KEEP bytes in all, and handed out again before malloc is
 * asked. */
void *braid_bcache_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* Populates the pages the process's heap (brk) grew by since the last
 * call, in one system call, so that the blocks malloc carves from them are
 * not first-touched one page fault at a time. Call after an allocation
 * that may have grown the heap; cheap when it did not. Thread-safe. */
void braid_heap_warm(void);

/* Populates the whole pages inside [p, p + n) in one system call, so
 * that memory about to be written through does not fault in a page at a
 * time (~20 us a fault on a VM, ~1 us a page this way). A no-op where the
 * kernel cannot (before Linux 5.14). Thread-safe. */
void braid_mem_populate(void *p, size_t n);

/* Bytes kept on the lists ((size_t)-1 in ASan builds, which keep none). */
size_t braid_bcache_kept(const braid_bcache_t *c);

#define BRAID_BCACHE_SMALL 512
#define BRAID_BCACHE_KEEP (4u << 20)

#ifdef __cplusplus
}
#endif
#endif
