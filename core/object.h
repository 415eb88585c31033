/* Shared objects: every braid object (lock, queue, future, ...) starts with a
 * braid_object_t header holding its type and an atomic reference count. */
#ifndef BRAID_OBJECT_H
#define BRAID_OBJECT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct braid_object braid_object_t;
typedef struct braid_name braid_name_t; /* an object's name (object.c) */

typedef struct braid_object_type {
    const char *name;                     /* metatable name in Lua, e.g. "braid.Lock" */
    const char *module;                   /* Lua module that registers the metatable */
    void (*destroy)(braid_object_t *obj); /* frees the object; refs are 0 */
} braid_object_type_t;

struct braid_object {
    const braid_object_type_t *type;
    atomic_int refs;
    atomic_int registered; /* in the id registry (braid_object_register) */
    uint64_t id;           /* process-unique, never reused */
    /* The name given by braid_object_set_name (NULL: none). Names are
     * immutable and kept until the object dies, so a reader on another
     * thread never sees one freed under it. */
    _Atomic(braid_name_t *) name;
};

/* Initialises the header with one reference and a new id. The object can
 * be found by id (braid_object_lookup) once registered. Returns 0. */
int braid_object_init(braid_object_t *obj, const braid_object_type_t *type);
/* The same with a chosen id (nonzero, not a live object's; ids with the
 * top bit set are never handed out by braid_object_init), registered at
 * once: for objects that keep one id in every process (multiprocessing's
 * shared objects). Returns 0 or BRAID_ENOMEM. */
int braid_object_init_id(braid_object_t *obj, const braid_object_type_t *type, uint64_t id);
/* Makes the object findable by id until it dies (braid_buf_put_object does
 * it: an id is only looked up after being encoded). Call with a reference
 * held. Returns 0 or BRAID_ENOMEM. Thread-safe. */
int braid_object_register(braid_object_t *obj);
/* Adds a reference. Thread-safe. */
void braid_object_retain(braid_object_t *obj);
/* Drops a reference; the last one unregisters and destroys. Thread-safe.
 * NULL is ignored. */
void braid_object_release(braid_object_t *obj);
/* Finds a live object by id and returns it with a new reference, or NULL if
 * no such object is alive (a stale id). Thread-safe. */
braid_object_t *braid_object_lookup(uint64_t id);
/* Names the object for the trace and the dump (a copy of name, at most
 * BRAID_NAME_MAX bytes kept; NULL clears it). Returns 0 or BRAID_ENOMEM.
 * Thread-safe; renaming keeps the old names until the object dies. */
int braid_object_set_name(braid_object_t *obj, const char *name);
#define BRAID_NAME_MAX 200
/* The object's name, or NULL: valid while the object is alive. Lock-free,
 * callable from any thread. */
const char *braid_object_name(const braid_object_t *obj);
/* The kind: the type name after its last '.', e.g. "Lock" for braid.Lock. */
const char *braid_object_kind(const braid_object_t *obj);
/* The label shown for the object: its name, else "Kind#id" (e.g. Lock#3),
 * written into buf (n bytes, truncated, always terminated); returns buf.
 * Thread-safe and lock-free. */
const char *braid_object_label(const braid_object_t *obj, char *buf, size_t n);
/* Number of live objects (for leak checks in tests). */
long braid_object_count(void);

#ifdef __cplusplus
}
#endif
#endif
