/* Futures, inboxes and wait sets. Lock order: future mu -> inbox mu ->
 * wait set mu (callbacks are posted with the future's mu held). */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "future.h"
#include "slab.h"

/* Outcomes up to this size naming no object are copied into the future by
 * braid_future_finish, so the worker's buffer is reused, not reallocated
 * per call and freed by another thread. */
#define FUTURE_SMALL_OUT 40 /* the future is then 248 bytes, a 256-byte malloc chunk */

/* A wait set's hook on one future (or on its inbox). */
typedef struct watch {
    struct watch *next, *prev;
    braid_waitset_t *ws;
    size_t index;
    int linked;
} watch_t;

typedef struct callback {
    braid_inbox_t *inbox;
    uint64_t id;
} callback_t;

struct braid_future {
    braid_object_t obj;
    pthread_mutex_t mu; /* stays initialised in the cache; what follows is zeroed */
    /* Written under mu; read without it by state/done/outcome (a done
     * future never changes, and its outcome is written before the state
     * that says so: seq_cst stores and loads order them). */
    atomic_int state;
    int failed;
    int code;
    atomic_int traced; /* a job's end drew a flow arrow to the result() */
    union {
        char *msg;
        braid_future_t *next_free; /* in its thread's cache (msg freed) */
    };
    braid_buf_t outcome; /* data may point at small_out (never freed) */
    braid_waitlist_t waiters;
    watch_t *watches;
    callback_t *cbs;
    uint32_t ncbs, cbcap;
    uint8_t small_out[FUTURE_SMALL_OUT]; /* a small outcome, copied in */
};

typedef struct delivery {
    braid_future_t *f;
    uint64_t id;
} delivery_t;

struct braid_inbox {
    atomic_int refs;
    pthread_mutex_t mu;
    delivery_t *ring;
    size_t head, count, cap;
    int closed;
    watch_t *watches;
};

struct braid_waitset {
    pthread_mutex_t mu;
    braid_waitlist_t waiters;
    braid_future_t **fs;
    watch_t *watches; /* one per future, plus [n] for the inbox */
    size_t n;
    size_t *ready; /* ring of done indices, in completion order */
    size_t rhead, rcount;
    size_t reported;
    int inbox_ready;
    braid_inbox_t *inbox;
};

/* ---- futures ---- */

/* Futures dropped by a thread are kept for its next braid_future_new (a
 * thread collecting the results of its own submits reuses them, with
 * their mutexes initialised, instead of a calloc and a free per call): at
 * most FUTURE_CACHE_MAX per thread, freed when the thread exits. */
#define FUTURE_CACHE_MAX 256

typedef struct fcache {
    braid_future_t *head;
    int n;
    int closed; /* the thread is exiting: free, keep nothing */
} fcache_t;

static _Thread_local fcache_t fcache;
static pthread_key_t fcache_key;
static pthread_once_t fcache_once = PTHREAD_ONCE_INIT;

/* Futures live in slab slots (slab.c: huge pages for a burst's thousands). */
static braid_slab_t fslab = BRAID_SLAB_INIT(sizeof(braid_future_t));

/* A fork's child must not inherit the slab's lock held by a thread that
 * no longer exists there. */
static pthread_once_t fslab_once = PTHREAD_ONCE_INIT;

static void fslab_lock(void)
{
    pthread_mutex_lock(&fslab.mu);
}

static void fslab_unlock(void)
{
    pthread_mutex_unlock(&fslab.mu);
}

static void fslab_atfork(void)
{
    pthread_atfork(fslab_lock, fslab_unlock, fslab_unlock);
}

static void future_free(braid_future_t *f)
{
    pthread_mutex_destroy(&f->mu);
    braid_slab_give(&fslab, f);
}

static void fcache_drain(void *unused)
{
    (void)unused;
    fcache.closed = 1;
    while (fcache.head) {
        braid_future_t *f = fcache.head;
        fcache.head = f->next_free;
        future_free(f);
    }
    fcache.n = 0;
}

static void fcache_make_key(void)
{
    pthread_key_create(&fcache_key, fcache_drain);
}

static void future_destroy(braid_object_t *o)
{
    braid_future_t *f = (braid_future_t *)o;
    for (size_t i = 0; i < f->ncbs; i++)
        braid_inbox_release(f->cbs[i].inbox);
    free(f->cbs);
    if (f->outcome.data == f->small_out)
        braid_buf_init(&f->outcome); /* the bytes are inline, no objects */
    braid_buf_free(&f->outcome);
    free(f->msg);
    if (fcache.n >= FUTURE_CACHE_MAX || fcache.closed) {
        future_free(f);
        return;
    }
    if (!fcache.head) { /* the first one this thread keeps: free them at exit */
        pthread_once(&fcache_once, fcache_make_key);
        if (pthread_setspecific(fcache_key, &fcache) != 0) {
            future_free(f);
            return;
        }
    }
    f->next_free = fcache.head;
    fcache.head = f;
    fcache.n++;
}

const braid_object_type_t braid_future_type = {"braid.Future", "braid.futures", future_destroy};

int braid_future_new(braid_future_t **out)
{
    braid_future_t *f = fcache.head;
    if (f) {
        fcache.head = f->next_free;
        fcache.n--;
    } else {
        int fresh;
        pthread_once(&fslab_once, fslab_atfork);
        if (!(f = braid_slab_take(&fslab, &fresh)))
            return BRAID_ENOMEM;
        if (pthread_mutex_init(&f->mu, NULL) != 0) {
            braid_slab_give(&fslab, f);
            return BRAID_EOS;
        }
    }
    /* all but the (unlocked, initialised) mutex to zero (a slot may hold
     * what its last future left) */
    size_t off = offsetof(braid_future_t, state);
    memset((char *)f + off, 0, sizeof *f - off);
    atomic_init(&f->state, BRAID_FUTURE_PENDING);
    braid_waitlist_init(&f->waiters, &f->obj, "result");
    if (braid_object_init(&f->obj, &braid_future_type) != 0) {
        future_free(f);
        return BRAID_ENOMEM;
    }
    *out = f;
    return 0;
}

void braid_future_retain(braid_future_t *f)
{
    braid_object_retain(&f->obj);
}

void braid_future_release(braid_future_t *f)
{
    if (f)
        braid_object_release(&f->obj);
}

int braid_future_state(braid_future_t *f)
{
    return atomic_load_explicit(&f->state, memory_order_acquire);
}

int braid_future_done(braid_future_t *f)
{
    int s = braid_future_state(f);
    return s == BRAID_FUTURE_FINISHED || s == BRAID_FUTURE_CANCELLED;
}

static void ws_mark(braid_waitset_t *ws, size_t index);
static void inbox_post(braid_inbox_t *ib, braid_future_t *f, uint64_t id);

/* With f->mu held and the outcome written: posts the callbacks, then sets
 * the done state (so a state that saw the future done, even without the
 * lock, finds its callbacks queued), wakes waiters and wait sets, then
 * unlocks. */
static void future_complete_unlock(braid_future_t *f, int state)
{
    callback_t *cbs = f->cbs;
    size_t n = f->ncbs;
    f->cbs = NULL;
    f->ncbs = f->cbcap = 0;
    for (size_t i = 0; i < n; i++)
        inbox_post(cbs[i].inbox, f, cbs[i].id);
    atomic_store(&f->state, state);
    braid_waitlist_wake_all(&f->waiters, 0);
    while (f->watches) {
        watch_t *w = f->watches;
        f->watches = w->next;
        if (f->watches)
            f->watches->prev = NULL;
        w->next = w->prev = NULL;
        w->linked = 0;
        ws_mark(w->ws, w->index);
    }
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < n; i++)
        braid_inbox_release(cbs[i].inbox);
    free(cbs);
}

int braid_future_cancel(braid_future_t *f)
{
    pthread_mutex_lock(&f->mu);
    if (f->state == BRAID_FUTURE_RUNNING || f->state == BRAID_FUTURE_FINISHED) {
        pthread_mutex_unlock(&f->mu);
        return 0;
    }
    if (f->state == BRAID_FUTURE_CANCELLED) {
        pthread_mutex_unlock(&f->mu);
        return 1;
    }
    f->code = BRAID_ECANCELLED;
    future_complete_unlock(f, BRAID_FUTURE_CANCELLED);
    return 1;
}

int braid_future_set_running(braid_future_t *f)
{
    pthread_mutex_lock(&f->mu);
    int s = f->state;
    if (s == BRAID_FUTURE_PENDING)
        f->state = BRAID_FUTURE_RUNNING;
    pthread_mutex_unlock(&f->mu);
    if (s == BRAID_FUTURE_PENDING)
        return 1;
    return s == BRAID_FUTURE_CANCELLED ? 0 : BRAID_ESTATE;
}

int braid_future_set_outcome(braid_future_t *f, braid_buf_t *out, int failed)
{
    pthread_mutex_lock(&f->mu);
    if (f->state == BRAID_FUTURE_FINISHED || f->state == BRAID_FUTURE_CANCELLED) {
        pthread_mutex_unlock(&f->mu);
        return BRAID_ESTATE;
    }
    braid_buf_move(&f->outcome, out);
    f->failed = failed != 0;
    future_complete_unlock(f, BRAID_FUTURE_FINISHED);
    return 0;
}

int braid_future_finish(braid_future_t *f, braid_buf_t *out, int failed)
{
    if (out->len > FUTURE_SMALL_OUT || out->nobjs || out->err)
        return braid_future_set_outcome(f, out, failed);
    pthread_mutex_lock(&f->mu);
    int s = atomic_load_explicit(&f->state, memory_order_relaxed);
    if (s == BRAID_FUTURE_FINISHED || s == BRAID_FUTURE_CANCELLED) {
        pthread_mutex_unlock(&f->mu);
        return BRAID_ESTATE;
    }
    if (out->len)
        memcpy(f->small_out, out->data, out->len);
    braid_buf_init(&f->outcome);
    f->outcome.data = f->small_out;
    f->outcome.len = f->outcome.cap = out->len;
    f->failed = failed != 0;
    future_complete_unlock(f, BRAID_FUTURE_FINISHED);
    out->len = 0;
    return 0;
}

int braid_future_set_error(braid_future_t *f, int code, const char *msg)
{
    char *copy = strdup(msg ? msg : braid_strerror(code));
    pthread_mutex_lock(&f->mu);
    if (f->state == BRAID_FUTURE_FINISHED || f->state == BRAID_FUTURE_CANCELLED) {
        pthread_mutex_unlock(&f->mu);
        free(copy);
        return BRAID_ESTATE;
    }
    f->code = code ? code : BRAID_EOS;
    f->msg = copy; /* NULL on OOM: readers fall back to strerror */
    f->failed = 1;
    future_complete_unlock(f, BRAID_FUTURE_FINISHED);
    return 0;
}

void braid_future_set_traced(braid_future_t *f)
{
    atomic_store_explicit(&f->traced, 1, memory_order_relaxed);
}

int braid_future_traced(braid_future_t *f)
{
    return atomic_load_explicit(&f->traced, memory_order_relaxed);
}

int braid_future_wait(braid_future_t *f, int64_t deadline)
{
    if (braid_future_done(f))
        return 0;
    int rc = 0;
    pthread_mutex_lock(&f->mu);
    while (f->state != BRAID_FUTURE_FINISHED && f->state != BRAID_FUTURE_CANCELLED) {
        rc = braid_waitlist_wait(&f->waiters, &f->mu, deadline, NULL);
        if (rc)
            break;
    }
    if (f->state == BRAID_FUTURE_FINISHED || f->state == BRAID_FUTURE_CANCELLED)
        rc = 0;
    pthread_mutex_unlock(&f->mu);
    return rc;
}

int braid_future_outcome(braid_future_t *f, const braid_buf_t **out, int *failed, int *code,
                         const char **msg)
{
    int s = atomic_load_explicit(&f->state, memory_order_acquire);
    if (s != BRAID_FUTURE_FINISHED && s != BRAID_FUTURE_CANCELLED)
        return BRAID_ESTATE;
    /* a done future never changes: read without the lock */
    if (out)
        *out = &f->outcome;
    if (failed)
        *failed = f->failed;
    if (code)
        *code = f->code;
    if (msg)
        *msg = f->code && f->code != BRAID_ECANCELLED ? (f->msg ? f->msg : braid_strerror(f->code))
                                                      : NULL;
    return 0;
}

int braid_future_add_callback(braid_future_t *f, braid_inbox_t *inbox, uint64_t id)
{
    pthread_mutex_lock(&f->mu);
    if (f->state == BRAID_FUTURE_FINISHED || f->state == BRAID_FUTURE_CANCELLED) {
        pthread_mutex_unlock(&f->mu);
        return 1;
    }
    if (f->ncbs == f->cbcap) {
        size_t cap = f->cbcap ? (size_t)f->cbcap * 2 : 2;
        callback_t *c = cap <= UINT32_MAX ? realloc(f->cbs, cap * sizeof *c) : NULL;
        if (!c) {
            pthread_mutex_unlock(&f->mu);
            return BRAID_ENOMEM;
        }
        f->cbs = c;
        f->cbcap = (uint32_t)cap;
    }
    braid_inbox_retain(inbox);
    f->cbs[f->ncbs].inbox = inbox;
    f->cbs[f->ncbs].id = id;
    f->ncbs++;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

/* ---- inboxes ---- */

int braid_inbox_new(braid_inbox_t **out)
{
    braid_inbox_t *ib = calloc(1, sizeof *ib);
    if (!ib)
        return BRAID_ENOMEM;
    if (pthread_mutex_init(&ib->mu, NULL) != 0) {
        free(ib);
        return BRAID_EOS;
    }
    atomic_init(&ib->refs, 1);
    *out = ib;
    return 0;
}

void braid_inbox_retain(braid_inbox_t *ib)
{
    atomic_fetch_add_explicit(&ib->refs, 1, memory_order_relaxed);
}

static void inbox_drop_all(braid_inbox_t *ib)
{
    /* called with ib->mu held; releasing a future never takes ib->mu
     * (a done future holds no callbacks) */
    while (ib->count) {
        braid_future_release(ib->ring[ib->head].f);
        ib->head = (ib->head + 1) % ib->cap;
        ib->count--;
    }
}

void braid_inbox_release(braid_inbox_t *ib)
{
    if (!ib || atomic_fetch_sub_explicit(&ib->refs, 1, memory_order_acq_rel) != 1)
        return;
    inbox_drop_all(ib);
    free(ib->ring);
    pthread_mutex_destroy(&ib->mu);
    free(ib);
}

void braid_inbox_close(braid_inbox_t *ib)
{
    pthread_mutex_lock(&ib->mu);
    ib->closed = 1;
    inbox_drop_all(ib);
    pthread_mutex_unlock(&ib->mu);
}

static void inbox_post(braid_inbox_t *ib, braid_future_t *f, uint64_t id)
{
    pthread_mutex_lock(&ib->mu);
    if (ib->closed) {
        pthread_mutex_unlock(&ib->mu);
        return;
    }
    if (ib->count == ib->cap) {
        size_t cap = ib->cap ? ib->cap * 2 : 8;
        delivery_t *r = malloc(cap * sizeof *r);
        if (!r) {
            /* out of memory: the callback is lost, but nothing breaks */
            pthread_mutex_unlock(&ib->mu);
            return;
        }
        for (size_t i = 0; i < ib->count; i++)
            r[i] = ib->ring[(ib->head + i) % ib->cap];
        free(ib->ring);
        ib->ring = r;
        ib->head = 0;
        ib->cap = cap;
    }
    braid_future_retain(f);
    ib->ring[(ib->head + ib->count) % ib->cap] = (delivery_t){f, id};
    ib->count++;
    for (watch_t *w = ib->watches; w; w = w->next) {
        pthread_mutex_lock(&w->ws->mu);
        w->ws->inbox_ready = 1;
        braid_waitlist_wake_all(&w->ws->waiters, 0);
        pthread_mutex_unlock(&w->ws->mu);
    }
    pthread_mutex_unlock(&ib->mu);
}

int braid_inbox_take(braid_inbox_t *ib, braid_future_t **f, uint64_t *id)
{
    pthread_mutex_lock(&ib->mu);
    if (!ib->count) {
        pthread_mutex_unlock(&ib->mu);
        return 0;
    }
    *f = ib->ring[ib->head].f;
    *id = ib->ring[ib->head].id;
    ib->head = (ib->head + 1) % ib->cap;
    ib->count--;
    pthread_mutex_unlock(&ib->mu);
    return 1;
}

int braid_inbox_pending(braid_inbox_t *ib)
{
    pthread_mutex_lock(&ib->mu);
    int n = ib->count != 0;
    pthread_mutex_unlock(&ib->mu);
    return n;
}

/* ---- wait sets ---- */

/* Called with the watched future's mu held (or during setup). */
static void ws_mark(braid_waitset_t *ws, size_t index)
{
    pthread_mutex_lock(&ws->mu);
    ws->ready[(ws->rhead + ws->rcount) % ws->n] = index;
    ws->rcount++;
    braid_waitlist_wake_all(&ws->waiters, 0);
    pthread_mutex_unlock(&ws->mu);
}

int braid_waitset_new(braid_waitset_t **out, braid_future_t *const *fs, size_t n,
                      braid_inbox_t *inbox)
{
    braid_waitset_t *ws = calloc(1, sizeof *ws);
    if (!ws)
        return BRAID_ENOMEM;
    ws->n = n;
    braid_waitlist_init(&ws->waiters, NULL, "wait");
    ws->fs = malloc((n ? n : 1) * sizeof *ws->fs);
    ws->watches = calloc(n + 1, sizeof *ws->watches);
    ws->ready = malloc((n ? n : 1) * sizeof *ws->ready);
    if (!ws->fs || !ws->watches || !ws->ready || pthread_mutex_init(&ws->mu, NULL) != 0) {
        free(ws->fs);
        free(ws->watches);
        free(ws->ready);
        free(ws);
        return BRAID_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        braid_future_t *f = fs[i];
        braid_future_retain(f);
        ws->fs[i] = f;
        watch_t *w = &ws->watches[i];
        w->ws = ws;
        w->index = i;
        pthread_mutex_lock(&f->mu);
        if (f->state == BRAID_FUTURE_FINISHED || f->state == BRAID_FUTURE_CANCELLED) {
            ws_mark(ws, i);
        } else {
            w->next = f->watches;
            if (f->watches)
                f->watches->prev = w;
            f->watches = w;
            w->linked = 1;
        }
        pthread_mutex_unlock(&f->mu);
    }
    if (inbox) {
        braid_inbox_retain(inbox);
        ws->inbox = inbox;
        watch_t *w = &ws->watches[n];
        w->ws = ws;
        pthread_mutex_lock(&inbox->mu);
        w->next = inbox->watches;
        if (inbox->watches)
            inbox->watches->prev = w;
        inbox->watches = w;
        w->linked = 1;
        if (inbox->count)
            ws->inbox_ready = 1; /* no other thread can see ws yet */
        pthread_mutex_unlock(&inbox->mu);
    }
    *out = ws;
    return 0;
}

int braid_waitset_next(braid_waitset_t *ws, int64_t deadline, size_t *index)
{
    int rc = 0;
    pthread_mutex_lock(&ws->mu);
    for (;;) {
        if (ws->inbox_ready) {
            ws->inbox_ready = 0;
            rc = BRAID_EAGAIN;
            break;
        }
        if (ws->rcount) {
            *index = ws->ready[ws->rhead];
            ws->rhead = (ws->rhead + 1) % ws->n;
            ws->rcount--;
            ws->reported++;
            rc = 0;
            break;
        }
        if (ws->reported == ws->n) {
            rc = BRAID_EEMPTY;
            break;
        }
        rc = braid_waitlist_wait(&ws->waiters, &ws->mu, deadline, NULL);
        if (rc && !ws->rcount && !ws->inbox_ready)
            break;
    }
    pthread_mutex_unlock(&ws->mu);
    return rc;
}

size_t braid_waitset_remaining(braid_waitset_t *ws)
{
    pthread_mutex_lock(&ws->mu);
    size_t r = ws->n - ws->reported;
    pthread_mutex_unlock(&ws->mu);
    return r;
}

static void watch_unlink(watch_t **head, watch_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        *head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
    w->linked = 0;
}

void braid_waitset_free(braid_waitset_t *ws)
{
    if (!ws)
        return;
    for (size_t i = 0; i < ws->n; i++) {
        braid_future_t *f = ws->fs[i];
        pthread_mutex_lock(&f->mu);
        if (ws->watches[i].linked)
            watch_unlink(&f->watches, &ws->watches[i]);
        pthread_mutex_unlock(&f->mu);
        braid_future_release(f);
    }
    if (ws->inbox) {
        pthread_mutex_lock(&ws->inbox->mu);
        if (ws->watches[ws->n].linked)
            watch_unlink(&ws->inbox->watches, &ws->watches[ws->n]);
        pthread_mutex_unlock(&ws->inbox->mu);
        braid_inbox_release(ws->inbox);
    }
    pthread_mutex_destroy(&ws->mu);
    free(ws->fs);
    free(ws->watches);
    free(ws->ready);
    free(ws);
}
