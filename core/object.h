/* Shared objects: every braid object (lock, queue, future, ...) starts with a
 * braid_object_t header holding its type and an atomic reference count. */
#ifndef BRAID_OBJECT_H
#define BRAID_OBJECT_H

#include <stdatomic.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct braid_object braid_object_t;

typedef struct braid_object_type {
    const char *name;                     /* metatable name in Lua, e.g. "braid.Lock" */
    const char *module;                   /* Lua module that registers the metatable */
    void (*destroy)(braid_object_t *obj); /* frees the object; refs are 0 */
} braid_object_type_t;

struct braid_object {
    const braid_object_type_t *type;
    atomic_int refs;
    uint64_t id; /* process-unique, never reused; 0 until registered */
};

/* Initialises the header with one reference and registers the object so it
 * can be found by id (braid_object_lookup). Returns 0 or BRAID_ENOMEM. */
int braid_object_init(braid_object_t *obj, const braid_object_type_t *type);
/* The same with a chosen id (nonzero, not a live object's; ids with the
 * top bit set are never handed out by braid_object_init): for objects that
 * keep one id in every process (multiprocessing's shared objects). */
int braid_object_init_id(braid_object_t *obj, const braid_object_type_t *type, uint64_t id);
/* Adds a reference. Thread-safe. */
void braid_object_retain(braid_object_t *obj);
/* Drops a reference; the last one unregisters and destroys. Thread-safe.
 * NULL is ignored. */
void braid_object_release(braid_object_t *obj);
/* Finds a live object by id and returns it with a new reference, or NULL if
 * no such object is alive (a stale id). Thread-safe. */
braid_object_t *braid_object_lookup(uint64_t id);
/* Number of live registered objects (for leak checks in tests). */
long braid_object_count(void);

#ifdef __cplusplus
}
#endif
#endif
