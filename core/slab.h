/* Slabs (slab.c): fixed-size slots carved from 2 MB chunks the kernel may
 * back with huge pages, for objects made by the ten thousand in a burst. */
#ifndef BRAID_SLAB_H
#define BRAID_SLAB_H

#include <pthread.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct braid_slab_chunk braid_slab_chunk_t;

/* One slab per slot size, usually a static defined with BRAID_SLAB_INIT. */
typedef struct braid_slab {
    size_t size; /* bytes per slot, a multiple of 64 */
    pthread_mutex_t mu;
    braid_slab_chunk_t *open; /* chunks with a free slot (mu) */
    int nempty;               /* of them, how many have none in use */
    int nchunks;              /* mapped (mu) */
} braid_slab_t;

#define BRAID_SLAB_INIT(slot_bytes)                                                                \
    {                                                                                              \
        ((slot_bytes) + 63) / 64 * 64, PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0                       \
    }

/* A slot of s->size bytes, or NULL when out of memory. *fresh is set to 1
 * when the slot was never handed out (all zero), else 0 (it holds what
 * its last user left). Thread-safe. */
void *braid_slab_take(braid_slab_t *s, int *fresh);
/* Gives a slot back (any thread). A chunk left with no slot in use is
 * unmapped unless it is the only empty one. */
void braid_slab_give(braid_slab_t *s, void *p);

/* 1, or 0 in ASan builds (calloc and free, nothing reused). */
int braid_slab_reuses(void);

#ifdef __cplusplus
}
#endif
#endif
