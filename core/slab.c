/* Slabs: a burst of 50k submits keeps 50k futures alive at once, 12 MB of
 * memory the process never touched. On some virtual machines the first
 * touch of each 4 KB page costs 10-30 us (a fault, and the hypervisor's
 * shadow page tables), more than the rest of a submit; the same memory as
 * 2 MB huge pages costs ~0.3 us a page. malloc's heap grows a few pages
 * at a time, so it never gets huge pages: here slots come from 2 MB-aligned
 * chunks marked MADV_HUGEPAGE (a hint: without transparent huge pages they
 * are ordinary pages, populated on first touch as before).
 * Freed slots go back to their chunk and are handed out again before a
 * chunk is cut further or a new one mapped (the chunks with free slots
 * are on s->open); a chunk with none in use is unmapped, except one kept
 * for the next burst. A slab's first chunk is small (256 KB) and of
 * ordinary pages, so a program with a few futures does not hold a 2 MB
 * huge page for them; the chunks a burst adds are whole and marked.
 * One lock per slab: its users keep a per-thread cache in front of it
 * (futures: future.c).
 * ASan builds use calloc and free, so each object stays checked alone. */
#include "slab.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define SLAB_PLAIN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_PLAIN 1
#endif
#endif

#ifdef SLAB_PLAIN

int braid_slab_reuses(void)
{
    return 0;
}

void *braid_slab_take(braid_slab_t *s, int *fresh)
{
    *fresh = 1;
    return calloc(1, s->size);
}

void braid_slab_give(braid_slab_t *s, void *p)
{
    (void)s;
    free(p);
}

#else

#define CHUNK (2u << 20)
#define FIRST_CHUNK (256u << 10)
#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif

struct braid_slab_chunk {
    braid_slab_chunk_t *next, *prev; /* on s->open while it has a free slot */
    void *free;                      /* given-back slots (their first word links) */
    size_t used;                     /* slots handed out and not given back */
    size_t cut;                      /* slots cut so far; the rest never touched */
    size_t nslots;
    size_t bytes; /* mapped: CHUNK, or FIRST_CHUNK for a slab's first */
    int open;
};

#define HEADER ((sizeof(braid_slab_chunk_t) + 63) / 64 * 64)

int braid_slab_reuses(void)
{
    return 1;
}

static braid_slab_chunk_t *chunk_of(const void *p)
{
    return (braid_slab_chunk_t *)((uintptr_t)p & ~(uintptr_t)(CHUNK - 1));
}

/* A fresh chunk at a CHUNK-aligned address (huge pages need the alignment;
 * chunk_of too), of bytes (CHUNK, marked for huge pages, or FIRST_CHUNK). */
static braid_slab_chunk_t *chunk_map(size_t size, size_t bytes)
{
    char *m =
        mmap(NULL, 2 * (size_t)CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    char *c = (char *)(((uintptr_t)m + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1));
    if (c > m)
        munmap(m, (size_t)(c - m));
    if (c + bytes < m + 2 * (size_t)CHUNK)
        munmap(c + bytes, (size_t)(m + 2 * (size_t)CHUNK - (c + bytes)));
    if (bytes == CHUNK)
        madvise(c, CHUNK, MADV_HUGEPAGE); /* a hint: fine if refused */
    braid_slab_chunk_t *k = (braid_slab_chunk_t *)c;
    k->nslots = (bytes - HEADER) / size;
    k->bytes = bytes;
    return k;
}

static void open_link(braid_slab_t *s, braid_slab_chunk_t *k)
{
    k->open = 1;
    k->prev = NULL;
    k->next = s->open;
    if (s->open)
        s->open->prev = k;
    s->open = k;
}

static void open_unlink(braid_slab_t *s, braid_slab_chunk_t *k)
{
    k->open = 0;
    if (k->prev)
        k->prev->next = k->next;
    else
        s->open = k->next;
    if (k->next)
        k->next->prev = k->prev;
}

void *braid_slab_take(braid_slab_t *s, int *fresh)
{
    pthread_mutex_lock(&s->mu);
    braid_slab_chunk_t *k = s->open;
    if (!k) {
        if (!(k = chunk_map(s->size, s->nchunks ? CHUNK : FIRST_CHUNK))) {
            pthread_mutex_unlock(&s->mu);
            return NULL;
        }
        s->nchunks++;
        open_link(s, k);
        s->nempty++;
    }
    void *p;
    if (k->free) {
        p = k->free;
        k->free = *(void **)p;
        *fresh = 0;
    } else {
        p = (char *)k + HEADER + k->cut++ * s->size;
        *fresh = 1;
    }
    if (k->used++ == 0)
        s->nempty--;
    if (!k->free && k->cut == k->nslots)
        open_unlink(s, k);
    pthread_mutex_unlock(&s->mu);
    return p;
}

void braid_slab_give(braid_slab_t *s, void *p)
{
    braid_slab_chunk_t *k = chunk_of(p);
    pthread_mutex_lock(&s->mu);
    *(void **)p = k->free;
    k->free = p;
    if (!k->open)
        open_link(s, k);
    if (--k->used == 0 && s->nempty++ > 0) {
        s->nempty--; /* one empty chunk is kept: this one goes */
        open_unlink(s, k);
        s->nchunks--;
        pthread_mutex_unlock(&s->mu);
        munmap(k, k->bytes);
        return;
    }
    pthread_mutex_unlock(&s->mu);
}

#endif /* SLAB_PLAIN */
