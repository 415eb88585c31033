/* Threads: a refcounted object per thread, a registry of running ones
 * (enumerate, joining non-daemon threads at exit), cancellation and fork.
 * They run on a pool of OS threads reused by later starts (thread_pool.c;
 * thread_prep.c: the Lua states prepared ahead of them, under its own
 * prep mu -> waiter mu).
 * Lock order: registry mu -> thread mu -> pool mu -> waiter mu. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "sync.h"
#include "thread_int.h"
#include "trace.h"

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static braid_thread_t *reg_head, *reg_tail;
static atomic_long thread_counter, dummy_counter;
static braid_thread_t *main_thread;
static _Thread_local braid_thread_t *tls_self;
static _Thread_local uint64_t tls_group; /* a thread not started by braid */
static atomic_ullong group_counter;

static void thread_destroy(braid_object_t *o)
{
    braid_thread_t *t = (braid_thread_t *)o;
    if (t->kind == K_BRAID)
        braid_waiter_destroy(&t->waiter);
    pthread_mutex_destroy(&t->mu);
    braid_buf_free(&t->self);
    braid_buf_free(&t->args);
    braid_buf_free(&t->result);
    free(t->tb);
    free(t->name);
    free(t);
}

const braid_object_type_t braid_thread_type = {
    "braid.ThreadHandle", "braid.threading", thread_destroy};

static braid_thread_t *thread_alloc(const char *name, int kind, int daemon)
{
    braid_thread_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->name = strdup(name);
    if (!t->name || pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t->name);
        free(t);
        return NULL;
    }
    if (kind == K_BRAID && braid_waiter_init(&t->waiter) != 0) {
        pthread_mutex_destroy(&t->mu);
        free(t->name);
        free(t);
        return NULL;
    }
    t->kind = kind;
    t->daemon = daemon;
    braid_waitlist_init(&t->joiners, &t->obj, "join");
    t->state = kind == K_BRAID ? BRAID_THREAD_NEW : BRAID_THREAD_RUNNING;
    atomic_init(&t->cancel_flag, 0);
    atomic_init(&t->done, 0);
    if (braid_object_init(&t->obj, &braid_thread_type) != 0) {
        t->kind = kind;
        thread_destroy(&t->obj);
        return NULL;
    }
    braid_object_set_name(&t->obj, name); /* best effort: the label only */
    return t;
}

int braid_thread_new(braid_thread_t **out, const char *name, int daemon)
{
    char buf[40];
    if (!name) {
        snprintf(buf, sizeof buf, "Thread-%ld", atomic_fetch_add(&thread_counter, 1) + 1);
        name = buf;
    }
    braid_thread_t *t = thread_alloc(name, K_BRAID, daemon);
    if (!t)
        return BRAID_ENOMEM;
    t->group = braid_thread_group();
    *out = t;
    return 0;
}

static void reg_add(braid_thread_t *t)
{
    t->reg_next = NULL;
    t->reg_prev = reg_tail;
    if (reg_tail)
        reg_tail->reg_next = t;
    else
        reg_head = t;
    reg_tail = t;
}

static void reg_del(braid_thread_t *t)
{
    if (t->reg_prev)
        t->reg_prev->reg_next = t->reg_next;
    else
        reg_head = t->reg_next;
    if (t->reg_next)
        t->reg_next->reg_prev = t->reg_prev;
    else
        reg_tail = t->reg_prev;
    t->reg_next = t->reg_prev = NULL;
}

/* Runs t on the calling worker (thread_pool.c) until it is DONE.
 * native_id: the worker's (gettid is a system call: asked once per worker). */
void braid__thread_run(braid_thread_t *t, long native_id)
{
    tls_self = t;
    braid_waiter_set_current(&t->waiter);
    pthread_mutex_lock(&t->mu);
    if (!t->native_ready) { /* a new worker: the starter only knew ident */
        t->ident = (uint64_t)pthread_self();
        t->native_id = native_id;
        t->native_ready = 1;
        braid_waitlist_wake_all(&t->joiners, 0);
    }
    pthread_mutex_unlock(&t->mu);

    int64_t t0 = braid_clock_now();
    if (braid_trace_enabled()) {
        char *name = braid_thread_name(t);
        braid_trace_thread_name(name);
        free(name);
    }
    t->fn(t, t->arg);
    if (braid_trace_enabled()) {
        char *name = braid_thread_name(t);
        braid_trace_thread_name(name); /* renamed meanwhile, or tracing began */
        braid_trace_slice("thread", name ? name : "thread", t0, braid_clock_now(), NULL, 0);
        free(name);
    }

    braid__pool_finishing();
    pthread_mutex_lock(&reg_mu);
    reg_del(t);
    pthread_mutex_lock(&t->mu);
    t->state = BRAID_THREAD_DONE;
    atomic_store_explicit(&t->done, 1, memory_order_release);
    t->cancel_fn = NULL;
    braid_waitlist_wake_all(&t->joiners, 0);
    pthread_mutex_unlock(&t->mu);
    pthread_mutex_unlock(&reg_mu);
    braid_waiter_set_current(NULL);
    tls_self = NULL;
    braid__sync_forget_self();
    braid_object_release(&t->obj);
}

/* The thread is RUNNING and registered before a new worker is spawned for
 * it (so the worker may finish at once); if none can be, it goes back to
 * NEW and out of the registry, and whoever waits for it (join, its ids)
 * is woken to see that. */
int braid_thread_start(braid_thread_t *t, braid_thread_fn fn, void *arg)
{
    pthread_mutex_lock(&reg_mu);
    pthread_mutex_lock(&t->mu);
    if (t->kind != K_BRAID || t->state != BRAID_THREAD_NEW) {
        pthread_mutex_unlock(&t->mu);
        pthread_mutex_unlock(&reg_mu);
        return BRAID_ESTATE;
    }
    t->fn = fn;
    t->arg = arg;
    t->state = BRAID_THREAD_RUNNING;
    braid_object_retain(&t->obj); /* the running thread's reference */
    reg_add(t);
    int handed = braid__pool_hand_over(t);
    pthread_mutex_unlock(&t->mu);
    pthread_mutex_unlock(&reg_mu);
    if (handed || braid__pool_spawn(t) == 0)
        return 0;
    pthread_mutex_lock(&reg_mu);
    pthread_mutex_lock(&t->mu);
    reg_del(t);
    t->state = BRAID_THREAD_NEW;
    braid_waitlist_wake_all(&t->joiners, 0);
    pthread_mutex_unlock(&t->mu);
    pthread_mutex_unlock(&reg_mu);
    braid_object_release(&t->obj);
    return BRAID_EOS;
}

/* Before parking, join watches the done flag a little longer than the
 * waiter's own spin: a kernel wake-up costs tens of microseconds here, and
 * short threads (a fresh Lua state alone takes ~20 us) end within this. */
#define JOIN_SPIN_NS 100000

static void join_spin(braid_thread_t *t, int64_t deadline)
{
    braid_waiter_t *w = braid_waiter_current();
    int64_t end = braid_clock_now() + JOIN_SPIN_NS;
    if (deadline < end)
        end = deadline;
    for (unsigned i = 1; !atomic_load_explicit(&t->done, memory_order_acquire); i++) {
        if ((i & 63) == 0) {
            if (braid_clock_now() >= end || (w && atomic_load(&w->cancelled)))
                return;
            sched_yield();
        }
    }
}

int braid_thread_join(braid_thread_t *t, int64_t deadline)
{
    if (t == tls_self || t == braid_thread_current())
        return BRAID_ESTATE;
    braid_waiter_t *cur = braid_waiter_peek_current();
    if (t->kind == K_BRAID && !(cur && cur->notify)) /* a task never spins */
        join_spin(t, deadline);
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    if (t->state == BRAID_THREAD_NEW) {
        rc = BRAID_ESTATE;
    } else {
        while (t->state == BRAID_THREAD_RUNNING) {
            rc = braid_waitlist_wait(&t->joiners, &t->mu, deadline, NULL);
            if (rc)
                break;
        }
        if (t->state == BRAID_THREAD_DONE)
            rc = 0;
        else if (t->state == BRAID_THREAD_NEW)
            rc = BRAID_ESTATE; /* its start failed meanwhile */
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int braid_thread_state(braid_thread_t *t)
{
    pthread_mutex_lock(&t->mu);
    int s = t->state;
    pthread_mutex_unlock(&t->mu);
    return s;
}

int braid_thread_is_alive(braid_thread_t *t)
{
    return braid_thread_state(t) == BRAID_THREAD_RUNNING;
}

char *braid_thread_name(braid_thread_t *t)
{
    pthread_mutex_lock(&t->mu);
    char *n = strdup(t->name);
    pthread_mutex_unlock(&t->mu);
    return n;
}

int braid_thread_set_name(braid_thread_t *t, const char *name)
{
    char *n = strdup(name);
    if (!n)
        return BRAID_ENOMEM;
    pthread_mutex_lock(&t->mu);
    char *old = t->name;
    t->name = n;
    pthread_mutex_unlock(&t->mu);
    free(old);
    return braid_object_set_name(&t->obj, name);
}

int braid_thread_daemon(braid_thread_t *t)
{
    pthread_mutex_lock(&t->mu);
    int d = t->daemon;
    pthread_mutex_unlock(&t->mu);
    return d;
}

int braid_thread_set_daemon(braid_thread_t *t, int daemon)
{
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    if (t->state != BRAID_THREAD_NEW || t->kind != K_BRAID)
        rc = BRAID_ESTATE;
    else
        t->daemon = daemon != 0;
    pthread_mutex_unlock(&t->mu);
    return rc;
}

/* Called with t->mu held: waits until a started thread's OS thread is
 * known (a start queued for a finishing worker, or a new worker that has
 * not run yet). */
static void wait_os_ids(braid_thread_t *t)
{
    while (t->state != BRAID_THREAD_NEW && !t->native_ready) {
        /* the thread records it first thing; ignore cancellation here */
        if (braid_waitlist_wait(&t->joiners, &t->mu, braid_clock_now() + 1000000, NULL) ==
            BRAID_ECANCELLED) {
            pthread_mutex_unlock(&t->mu);
            braid_clock_sleep_until(braid_clock_now() + 100000);
            pthread_mutex_lock(&t->mu);
        }
    }
}

uint64_t braid_thread_ident(braid_thread_t *t)
{
    pthread_mutex_lock(&t->mu);
    wait_os_ids(t);
    uint64_t id = t->ident;
    pthread_mutex_unlock(&t->mu);
    return id;
}

long braid_thread_native_id(braid_thread_t *t)
{
    pthread_mutex_lock(&t->mu);
    wait_os_ids(t);
    long id = t->native_id;
    pthread_mutex_unlock(&t->mu);
    return id;
}

braid_waiter_t *braid_thread_waiter(braid_thread_t *t)
{
    return t->kind == K_BRAID ? &t->waiter : NULL;
}

int braid_thread_cancel(braid_thread_t *t)
{
    if (t->kind != K_BRAID)
        return BRAID_ESTATE;
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    if (t->state == BRAID_THREAD_DONE) {
        rc = BRAID_ESTATE;
    } else {
        atomic_store(&t->cancel_flag, 1);
        braid_waiter_cancel(&t->waiter);
        if (t->cancel_fn)
            t->cancel_fn(t->cancel_data);
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int braid_thread_cancel_requested(braid_thread_t *t)
{
    return atomic_load(&t->cancel_flag);
}

void braid_thread_set_cancel_hook(braid_thread_t *t, braid_thread_cancel_fn fn, void *data)
{
    pthread_mutex_lock(&t->mu);
    t->cancel_fn = fn;
    t->cancel_data = data;
    pthread_mutex_unlock(&t->mu);
}

int braid_thread_set_payload(braid_thread_t *t, braid_buf_t *self, braid_buf_t *args)
{
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    if (t->state != BRAID_THREAD_NEW || t->kind != K_BRAID) {
        rc = BRAID_ESTATE;
    } else {
        braid_buf_free(&t->self);
        braid_buf_free(&t->args);
        if (self)
            braid_buf_move(&t->self, self);
        if (args)
            braid_buf_move(&t->args, args);
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

const braid_buf_t *braid_thread_self_buf(braid_thread_t *t)
{
    return &t->self;
}

braid_buf_t *braid_thread_args_buf(braid_thread_t *t)
{
    return &t->args;
}

void braid_thread_set_result(braid_thread_t *t, braid_buf_t *result, int failed, const char *tb)
{
    char *copy = tb ? strdup(tb) : NULL;
    pthread_mutex_lock(&t->mu);
    braid_buf_free(&t->result);
    braid_buf_move(&t->result, result);
    t->failed = failed;
    free(t->tb);
    t->tb = copy;
    pthread_mutex_unlock(&t->mu);
}

int braid_thread_result(braid_thread_t *t, const braid_buf_t **result, int *failed, const char **tb)
{
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    if (t->state != BRAID_THREAD_DONE) {
        rc = BRAID_ESTATE;
    } else {
        *result = &t->result;
        *failed = t->failed;
        *tb = t->tb;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static int is_main_os_thread(void)
{
    return gettid() == getpid();
}

braid_thread_t *braid_thread_main(void)
{
    pthread_mutex_lock(&reg_mu);
    if (!main_thread) {
        main_thread = thread_alloc("MainThread", K_MAIN, 0);
        if (main_thread) {
            main_thread->native_id = (long)getpid();
            main_thread->native_ready = 1;
        }
    }
    braid_thread_t *m = main_thread;
    pthread_mutex_unlock(&reg_mu);
    if (m && is_main_os_thread()) {
        pthread_mutex_lock(&m->mu);
        m->ident = (uint64_t)pthread_self();
        pthread_mutex_unlock(&m->mu);
    }
    return m;
}

static pthread_key_t dummy_key;
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_free(void *p)
{
    braid_object_release(p);
}

static void dummy_make_key(void)
{
    pthread_key_create(&dummy_key, dummy_free);
}

braid_thread_t *braid_thread_current(void)
{
    if (tls_self)
        return tls_self;
    if (is_main_os_thread()) {
        tls_self = braid_thread_main();
        return tls_self;
    }
    pthread_once(&dummy_once, dummy_make_key);
    char buf[40];
    snprintf(buf, sizeof buf, "Dummy-%ld", atomic_fetch_add(&dummy_counter, 1) + 1);
    braid_thread_t *t = thread_alloc(buf, K_DUMMY, 1);
    if (!t)
        return NULL;
    t->ident = (uint64_t)pthread_self();
    t->native_id = (long)gettid();
    t->native_ready = 1;
    pthread_setspecific(dummy_key, t);
    tls_self = t;
    return t;
}

int braid_thread_enumerate(braid_thread_t ***out, size_t *n)
{
    braid_thread_t *m = braid_thread_main();
    pthread_mutex_lock(&reg_mu);
    size_t cap = 1;
    for (braid_thread_t *t = reg_head; t; t = t->reg_next)
        cap++;
    braid_thread_t **list = malloc(cap * sizeof *list);
    if (!list) {
        pthread_mutex_unlock(&reg_mu);
        return BRAID_ENOMEM;
    }
    size_t k = 0;
    if (m && m->state == BRAID_THREAD_RUNNING) { /* not in a child forked by another thread */
        braid_object_retain(&m->obj);
        list[k++] = m;
    }
    for (braid_thread_t *t = reg_head; t; t = t->reg_next) {
        braid_object_retain(&t->obj);
        list[k++] = t;
    }
    pthread_mutex_unlock(&reg_mu);
    *out = list;
    *n = k;
    return 0;
}

void braid_thread_list_free(braid_thread_t **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        braid_object_release(&list[i]->obj);
    free(list);
}

long braid_thread_active_count(void)
{
    pthread_mutex_lock(&reg_mu);
    long n = !main_thread || main_thread->state == BRAID_THREAD_RUNNING;
    for (braid_thread_t *t = reg_head; t; t = t->reg_next)
        n++;
    pthread_mutex_unlock(&reg_mu);
    return n;
}

uint64_t braid_thread_group(void)
{
    if (tls_self && tls_self->kind == K_BRAID)
        return tls_self->group;
    if (!tls_group)
        tls_group = atomic_fetch_add(&group_counter, 1) + 1;
    return tls_group;
}

int braid_thread_join_nondaemon(int64_t deadline)
{
    return braid_thread_join_nondaemon_group(0, deadline);
}

int braid_thread_join_nondaemon_group(uint64_t group, int64_t deadline)
{
    braid_thread_t *self = braid_thread_current();
    for (;;) {
        braid_thread_t *next = NULL;
        pthread_mutex_lock(&reg_mu);
        for (braid_thread_t *t = reg_head; t; t = t->reg_next) {
            if (t != self && !t->daemon && (!group || t->group == group)) {
                next = t;
                braid_object_retain(&t->obj);
                break;
            }
        }
        pthread_mutex_unlock(&reg_mu);
        if (!next)
            return 0;
        int rc = braid_thread_join(next, deadline);
        braid_object_release(&next->obj);
        if (rc && rc != BRAID_ESTATE) /* ESTATE: its start failed, it left the registry */
            return rc;
    }
}

/* fork (braid_proc_fork): no state being prepared, no registry or pool
 * update in flight, no worker halfway through its exit. As in Python the
 * child has only the forking thread: the others (the main one too, if
 * another forked) are not alive there and join at once. */
static braid_thread_t *fork_self;

void braid__thread_before_fork(void)
{
    fork_self = braid_thread_current(); /* first: it may take reg_mu */
    braid__thread_prep_before_fork();
    pthread_mutex_lock(&reg_mu);
    braid__pool_before_fork();
}

/* In a fork child: t's OS thread is not here (whoever held its mu either). */
static void mark_gone(braid_thread_t *t)
{
    pthread_mutex_init(&t->mu, NULL);
    braid_waitlist_init(&t->joiners, &t->obj, "join");
    t->state = BRAID_THREAD_DONE;
    atomic_store(&t->done, 1);
}

void braid__thread_after_fork(int child)
{
    if (!child) {
        braid__pool_after_fork(0);
        pthread_mutex_unlock(&reg_mu);
        braid__thread_prep_after_fork(0);
        return;
    }
    braid__thread_prep_after_fork(1);
    pthread_mutex_init(&reg_mu, NULL);
    braid__pool_after_fork(1);
    braid_thread_t *t = reg_head;
    reg_head = reg_tail = NULL;
    while (t) { /* their running references stay: they never finish here */
        braid_thread_t *next = t->reg_next;
        t->reg_next = t->reg_prev = NULL;
        if (t == fork_self) {
            pthread_mutex_init(&t->mu, NULL); /* its holder may be over there */
            reg_add(t);
        } else {
            mark_gone(t);
        }
        t = next;
    }
    if (main_thread && main_thread != fork_self) /* forked from another thread */
        mark_gone(main_thread);
}
