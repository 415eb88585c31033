/* Arenas (arena.c): the memory of one braid thread state, its blocks
 * packed in a page-aligned region without malloc's per-block header. */
#ifndef BRAID_ARENA_H
#define BRAID_ARENA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct braid_arena braid_arena_t;

/* A new arena (its region reserved, not yet touched), or NULL when out of
 * memory. Not thread-safe: one state's, used by one thread at a time. */
braid_arena_t *braid_arena_new(void);
/* Gives the region back; every block of the arena is dead by then. */
void braid_arena_free(braid_arena_t *a);
/* A lua_Alloc (ud: the arena): nsize 0 frees ptr (osize bytes); else
 * (re)allocates ptr (osize bytes, or ptr NULL) to nsize bytes, keeping
 * the contents; NULL when out of memory (never for a shrink). Blocks up
 * to a few KB come from the region, the others and any overflow from
 * malloc. Blocks are 8-byte aligned. */
void *braid_arena_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* Bytes of the region handed out so far (its touched prefix). */
size_t braid_arena_used(const braid_arena_t *a);
/* Records a's touched prefix (up to a quarter of a region) as what new
 * arenas will touch: later ones have that much of their region populated
 * up front (one system call, not a page fault per page). */
void braid_arena_learn(const braid_arena_t *a);

#ifdef __cplusplus
}
#endif
#endif
