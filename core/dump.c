/* Live dumps: the registry of slots (one per OS thread running a Lua state)
 * and one dump's request-and-collect round (protocol in dump.h).
 * Lock order: dump_mu -> reg_mu -> waiter mu (and -> thread mu). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "dump.h"
#include "error.h"

static pthread_mutex_t dump_mu = PTHREAD_MUTEX_INITIALIZER; /* one dump at a time */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dump_cv; /* reports posted (reg_mu), CLOCK_MONOTONIC */
static pthread_once_t cv_once = PTHREAD_ONCE_INIT;
static braid_dump_slot_t *reg_head, *reg_tail;
static unsigned gen_counter; /* reg_mu */
static atomic_uint open_gen; /* the generation being collected, 0: none */
static braid_dump_serve_fn serve_fn;
static _Thread_local braid_dump_slot_t *tls_slot;

/* A forked child has only the forking thread: its slots (the chain of
 * tls_slot) stay, the others belong to threads that do not exist there;
 * locks another thread held at fork are made anew. */
static void dump_atfork_child(void)
{
    pthread_mutex_init(&dump_mu, NULL);
    pthread_mutex_init(&reg_mu, NULL);
    atomic_store(&open_gen, 0);
    reg_head = reg_tail = NULL;
    for (braid_dump_slot_t *s = tls_slot; s; s = s->tls_prev) {
        s->prev = NULL;
        s->next = reg_head;
        if (reg_head)
            reg_head->prev = s;
        else
            reg_tail = s;
        reg_head = s;
    }
}

static void init_cv(void)
{
    pthread_atfork(NULL, NULL, dump_atfork_child);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&dump_cv, &ca);
    pthread_condattr_destroy(&ca);
}

braid_dump_slot_t *braid_dump_attach(void *data, braid_dump_request_fn request,
                                     braid_waiter_t *waiter)
{
    pthread_once(&cv_once, init_cv);
    braid_dump_slot_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->data = data;
    s->request = request;
    s->waiter = waiter;
    s->thread = braid_thread_current();
    if (s->thread)
        braid_object_retain((braid_object_t *)s->thread);
    atomic_init(&s->want, 0);
    atomic_init(&s->done, 0);
    pthread_mutex_lock(&reg_mu);
    s->prev = reg_tail;
    if (reg_tail)
        reg_tail->next = s;
    else
        reg_head = s;
    reg_tail = s;
    s->tls_prev = tls_slot;
    tls_slot = s;
    pthread_mutex_unlock(&reg_mu);
    return s;
}

void braid_dump_detach(braid_dump_slot_t *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&reg_mu);
    if (s->prev)
        s->prev->next = s->next;
    else
        reg_head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        reg_tail = s->prev;
    if (tls_slot == s)
        tls_slot = s->tls_prev;
    pthread_cond_broadcast(&dump_cv); /* a dumper may be counting on it */
    pthread_mutex_unlock(&reg_mu);
    if (s->thread)
        braid_object_release((braid_object_t *)s->thread);
    free(s->report);
    free(s);
}

braid_dump_slot_t *braid_dump_current(void)
{
    return tls_slot;
}

void braid_dump_set_serve(braid_dump_serve_fn fn)
{
    pthread_mutex_lock(&reg_mu);
    serve_fn = fn;
    pthread_mutex_unlock(&reg_mu);
}

int braid_dump_wanted(braid_dump_slot_t *s)
{
    unsigned want = atomic_load(&s->want);
    return want != 0 && want != atomic_load(&s->done) && want == atomic_load(&open_gen);
}

void braid_dump_post(braid_dump_slot_t *s, const char *text)
{
    char *copy = text ? strdup(text) : NULL;
    pthread_mutex_lock(&reg_mu);
    unsigned want = atomic_load(&s->want);
    if (want != 0 && want == atomic_load(&open_gen) && want != atomic_load(&s->done)) {
        free(s->report);
        s->report = copy;
        copy = NULL;
        atomic_store(&s->done, want);
        pthread_cond_broadcast(&dump_cv);
    }
    pthread_mutex_unlock(&reg_mu);
    free(copy);
}

void braid_dump_serve_pending(void)
{
    braid_dump_slot_t *s = tls_slot;
    if (!s || !braid_dump_wanted(s))
        return;
    pthread_mutex_lock(&reg_mu);
    braid_dump_serve_fn fn = serve_fn;
    pthread_mutex_unlock(&reg_mu);
    if (fn)
        fn(s);
    if (braid_dump_wanted(s))
        braid_dump_post(s, NULL); /* served once, whatever happened */
}

int braid__dump_wanted(braid_waiter_t *w)
{
    braid_dump_slot_t *s = tls_slot;
    return s && s->waiter == w && braid_dump_wanted(s);
}

void braid__dump_serve_parked(void)
{
    braid_dump_serve_pending();
}

/* Whether a slot other than self still owes a report (reg_mu held). */
static int reports_missing(braid_dump_slot_t *self, unsigned gen)
{
    for (braid_dump_slot_t *s = reg_head; s; s = s->next)
        if (s != self && atomic_load(&s->want) == gen && atomic_load(&s->done) != gen)
            return 1;
    return 0;
}

int braid_dump_collect(braid_dump_slot_t *self, const char *self_report, int64_t wait_ns,
                       braid_dump_entry_t **out, size_t *n)
{
    pthread_once(&cv_once, init_cv);
    pthread_mutex_lock(&dump_mu);
    pthread_mutex_lock(&reg_mu);
    if (++gen_counter == 0)
        gen_counter = 1;
    unsigned gen = gen_counter;
    atomic_store(&open_gen, gen);
    for (braid_dump_slot_t *s = reg_head; s; s = s->next) {
        free(s->report);
        s->report = NULL;
        atomic_store(&s->want, gen);
        if (s == self) {
            s->report = self_report ? strdup(self_report) : NULL;
            atomic_store(&s->done, gen);
            continue;
        }
        if (s->request)
            s->request(s);
        if (s->waiter && !s->waiter->notify) {
            pthread_mutex_lock(&s->waiter->mu);
            pthread_cond_signal(&s->waiter->cv);
            pthread_mutex_unlock(&s->waiter->mu);
        }
    }
    int64_t deadline = braid_clock_now() + wait_ns;
    while (reports_missing(self, gen) && braid_clock_now() < deadline) {
        struct timespec ts = {.tv_sec = deadline / 1000000000, .tv_nsec = deadline % 1000000000};
        int rc = pthread_cond_timedwait(&dump_cv, &reg_mu, &ts);
        if (rc != 0 && rc != ETIMEDOUT && rc != EINTR)
            break;
    }
    atomic_store(&open_gen, 0); /* late reports are dropped from here on */
    size_t k = 0;
    for (braid_dump_slot_t *s = reg_head; s; s = s->next)
        k++;
    braid_dump_entry_t *e = calloc(k ? k : 1, sizeof *e);
    int rc = e ? 0 : BRAID_ENOMEM;
    k = 0;
    for (braid_dump_slot_t *s = reg_head; e && s; s = s->next, k++) {
        e[k].thread = s->thread;
        if (s->thread)
            braid_object_retain((braid_object_t *)s->thread);
        e[k].report = atomic_load(&s->done) == gen ? s->report : NULL;
        if (e[k].report)
            s->report = NULL;
    }
    pthread_mutex_unlock(&reg_mu);
    pthread_mutex_unlock(&dump_mu);
    *out = e;
    *n = e ? k : 0;
    return rc;
}

void braid_dump_entries_free(braid_dump_entry_t *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (e[i].thread)
            braid_object_release((braid_object_t *)e[i].thread);
        free(e[i].report);
    }
    free(e);
}
