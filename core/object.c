/* Reference counting and the id registry, which lets an encoded value name
 * an object safely: a stale id is detected instead of dereferenced. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "object.h"

/* Open-addressing hash table id -> object, guarded by one mutex. Removal
 * uses backward-shift deletion, so there are no tombstones. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static braid_object_t **reg_slots;
static size_t reg_cap, reg_count;
/* Ids are handed out without the lock; an object enters the registry only
 * when it is first encoded (braid_object_register), which most futures
 * never are: creating and dropping one takes no global lock and touches
 * no shared table. */
static atomic_ullong next_id = 1;
static atomic_long live_count; /* every initialised, not yet destroyed object */

/* fork (the fork start method) while another thread holds reg_lock would
 * leave it locked forever in the child: hold it across fork. */
static pthread_once_t reg_atfork_once = PTHREAD_ONCE_INIT;

static void reg_lock_take(void)
{
    pthread_mutex_lock(&reg_lock);
}

static void reg_lock_give(void)
{
    pthread_mutex_unlock(&reg_lock);
}

static void reg_atfork(void)
{
    pthread_atfork(reg_lock_take, reg_lock_give, reg_lock_give);
}

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
    obj->type = type;
    atomic_init(&obj->refs, 1);
    atomic_init(&obj->registered, 0);
    atomic_init(&obj->name, NULL);
    obj->id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&live_count, 1, memory_order_relaxed);
    return 0;
}

/* Inserts obj (not yet registered) with reg_lock held. */
static int reg_insert_locked(braid_object_t *obj)
{
    if ((reg_count + 1) * 2 > reg_cap && reg_grow() != 0)
        return BRAID_ENOMEM;
    size_t j = slot_of(obj->id, reg_cap);
    while (reg_slots[j])
        j = (j + 1) & (reg_cap - 1);
    reg_slots[j] = obj;
    reg_count++;
    atomic_store_explicit(&obj->registered, 1, memory_order_release);
    return 0;
}

int braid_object_register(braid_object_t *obj)
{
    if (atomic_load_explicit(&obj->registered, memory_order_acquire))
        return 0;
    pthread_once(&reg_atfork_once, reg_atfork);
    pthread_mutex_lock(&reg_lock);
    int rc =
        atomic_load_explicit(&obj->registered, memory_order_relaxed) ? 0 : reg_insert_locked(obj);
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

int braid_object_init_id(braid_object_t *obj, const braid_object_type_t *type, uint64_t id)
{
    if (!id)
        return braid_object_init(obj, type);
    obj->type = type;
    atomic_init(&obj->refs, 1);
    atomic_init(&obj->registered, 0);
    atomic_init(&obj->name, NULL);
    obj->id = id;
    pthread_once(&reg_atfork_once, reg_atfork);
    pthread_mutex_lock(&reg_lock);
    int rc = reg_insert_locked(obj);
    pthread_mutex_unlock(&reg_lock);
    if (rc) {
        obj->id = 0;
        return rc;
    }
    atomic_fetch_add_explicit(&live_count, 1, memory_order_relaxed);
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

/* ---- names ---- */

struct braid_name {
    braid_name_t *older; /* the names this one replaced, freed with it */
    char s[];
};

static void names_free(braid_name_t *n)
{
    while (n) {
        braid_name_t *o = n->older;
        free(n);
        n = o;
    }
}

int braid_object_set_name(braid_object_t *obj, const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len > BRAID_NAME_MAX)
        len = BRAID_NAME_MAX;
    braid_name_t *n = malloc(sizeof *n + len + 1);
    if (!n)
        return BRAID_ENOMEM;
    memcpy(n->s, name ? name : "", len);
    n->s[len] = 0;
    /* an empty string is "no name"; the node still keeps older ones */
    braid_name_t *old = atomic_load_explicit(&obj->name, memory_order_relaxed);
    do
        n->older = old;
    while (!atomic_compare_exchange_weak_explicit(
        &obj->name, &old, n, memory_order_release, memory_order_relaxed));
    return 0;
}

const char *braid_object_name(const braid_object_t *obj)
{
    braid_name_t *n = atomic_load_explicit(&((braid_object_t *)obj)->name, memory_order_acquire);
    return n && n->s[0] ? n->s : NULL;
}

const char *braid_object_kind(const braid_object_t *obj)
{
    const char *t = obj->type->name, *dot = strrchr(t, '.');
    if (strcmp(t, "braid.ThreadHandle") == 0)
        return "Thread"; /* what the script holds is a threading.Thread */
    return dot ? dot + 1 : t;
}

const char *braid_object_label(const braid_object_t *obj, char *buf, size_t n)
{
    if (!n)
        return buf;
    /* no snprintf: the trace labels objects on every queue operation */
    const char *name = braid_object_name(obj);
    size_t len = 0;
    const char *s = name ? name : braid_object_kind(obj);
    while (s[len] && len + 1 < n) {
        buf[len] = s[len];
        len++;
    }
    if (!name) {
        char digits[24];
        int d = 0;
        uint64_t v = obj->id & ~(1ULL << 63);
        do
            digits[d++] = (char)('0' + v % 10);
        while ((v /= 10) != 0);
        if (len + 1 < n)
            buf[len++] = '#';
        while (d > 0 && len + 1 < n)
            buf[len++] = digits[--d];
    }
    buf[len] = 0;
    return buf;
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
    /* registered: by a thread that held a reference, so before this */
    if (atomic_load_explicit(&obj->registered, memory_order_relaxed)) {
        /* lookup never revives a count of 0, so this is the last user */
        pthread_mutex_lock(&reg_lock);
        reg_remove(obj);
        pthread_mutex_unlock(&reg_lock);
    }
    atomic_fetch_sub_explicit(&live_count, 1, memory_order_relaxed);
    names_free(atomic_load_explicit(&obj->name, memory_order_acquire));
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
    return atomic_load_explicit(&live_count, memory_order_relaxed);
}
