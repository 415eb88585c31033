/* Reference counting and the id registry, which lets an encoded value name
 * an object safely: a stale id is detected instead of dereferenced. */
#include <pthread.h>
#include <stdlib.h>

#include "error.h"
#include "object.h"

/* Open-addressing hash table id -> object, guarded by one mutex. Removal
 * uses backward-shift deletion, so there are no tombstones. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static braid_object_t **reg_slots;
static size_t reg_cap, reg_count;
static uint64_t reg_next_id = 1;

static size_t slot_of(uint64_t id, size_t cap)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)id & (cap - 1);
}

static int reg_grow(void)
{
    size_t ncap = reg_cap ? reg_cap * 2 : 64;
    braid_object_t **n = calloc(ncap, sizeof *n);
    if (!n)
        return BRAID_ENOMEM;
    for (size_t i = 0; i < reg_cap; i++) {
        braid_object_t *o = reg_slots[i];
        if (!o)
            continue;
        size_t j = slot_of(o->id, ncap);
        while (n[j])
            j = (j + 1) & (ncap - 1);
        n[j] = o;
    }
    free(reg_slots);
    reg_slots = n;
    reg_cap = ncap;
    return 0;
}

int braid_object_init(braid_object_t *obj, const braid_object_type_t *type)
{
    return braid_object_init_id(obj, type, 0);
}

int braid_object_init_id(braid_object_t *obj, const braid_object_type_t *type, uint64_t id)
{
    obj->type = type;
    atomic_init(&obj->refs, 1);
    pthread_mutex_lock(&reg_lock);
    if ((reg_count + 1) * 2 > reg_cap && reg_grow() != 0) {
        pthread_mutex_unlock(&reg_lock);
        obj->id = 0;
        return BRAID_ENOMEM;
    }
    obj->id = id ? id : reg_next_id++;
    size_t j = slot_of(obj->id, reg_cap);
    while (reg_slots[j])
        j = (j + 1) & (reg_cap - 1);
    reg_slots[j] = obj;
    reg_count++;
    pthread_mutex_unlock(&reg_lock);
    return 0;
}

static void reg_remove(braid_object_t *obj)
{
    size_t mask = reg_cap - 1, i = slot_of(obj->id, reg_cap);
    while (reg_slots[i] != obj)
        i = (i + 1) & mask;
    reg_slots[i] = NULL;
    reg_count--;
    for (size_t j = (i + 1) & mask; reg_slots[j]; j = (j + 1) & mask) {
        size_t home = slot_of(reg_slots[j]->id, reg_cap);
        /* move j back to i when i lies cyclically in [home, j) */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            reg_slots[i] = reg_slots[j];
            reg_slots[j] = NULL;
            i = j;
        }
    }
}

void braid_object_retain(braid_object_t *obj)
{
    atomic_fetch_add_explicit(&obj->refs, 1, memory_order_relaxed);
}

void braid_object_release(braid_object_t *obj)
{
    if (!obj)
        return;
    if (atomic_fetch_sub_explicit(&obj->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (obj->id) {
        /* lookup never revives a count of 0, so this is the last user */
        pthread_mutex_lock(&reg_lock);
        reg_remove(obj);
        pthread_mutex_unlock(&reg_lock);
    }
    obj->type->destroy(obj);
}

braid_object_t *braid_object_lookup(uint64_t id)
{
    braid_object_t *found = NULL;
    pthread_mutex_lock(&reg_lock);
    if (reg_cap) {
        for (size_t j = slot_of(id, reg_cap); reg_slots[j]; j = (j + 1) & (reg_cap - 1)) {
            if (reg_slots[j]->id == id) {
                found = reg_slots[j];
                /* refs 0 means it is being destroyed: treat as stale */
                int r = atomic_load(&found->refs);
                while (r > 0 && !atomic_compare_exchange_weak(&found->refs, &r, r + 1))
                    ;
                if (r == 0)
                    found = NULL;
                break;
            }
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return found;
}

long braid_object_count(void)
{
    pthread_mutex_lock(&reg_lock);
    long n = (long)reg_count;
    pthread_mutex_unlock(&reg_lock);
    return n;
}
