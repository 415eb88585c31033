/* Thread pools behind ThreadPoolExecutor and ThreadPool: a FIFO of calls,
 * workers started on demand, shutdown, broken pools, exit-time joins.
 * Lock order: pools_mu -> pool mu -> thread locks (starting a worker);
 * futures are finished outside pool mu. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "executor.h"
#include "thread.h"
#include "trace.h"

/* Calls up to SMALL_CALL bytes that name no object (the usual function
 * and scalar arguments) are copied into the task, under the pool lock but
 * with no allocation: the caller keeps its buffer with its room, so a
 * burst of submits allocates no call buffers, and no worker frees one
 * into the submitter's malloc arena. */
#define SMALL_CALL 200

typedef struct task {
    struct task *next;
    braid_future_t *f;
    braid_buf_t call; /* the call; an emptied spare buffer when small */
    size_t aux;
    int small; /* the call is in small_data, small_len bytes */
    size_t small_len;
    uint8_t small_data[SMALL_CALL];
} task_t;

/* The task's call: t->call, or a view of the bytes copied into it. */
static const braid_buf_t *task_call(const task_t *t, braid_buf_t *view)
{
    if (!t->small)
        return &t->call;
    memset(view, 0, sizeof *view);
    view->data = (uint8_t *)t->small_data;
    view->len = t->small_len;
    return view;
}

/* Tasks come from slabs of TASK_SLAB owned by the pool, so a burst of
 * submits makes one malloc per TASK_SLAB tasks, and no worker ever frees a
 * task into the submitter's malloc arena (whose lock the submitter needs,
 * and whose bins it would then sort). */
#define TASK_SLAB 64
/* When every task is back on the spare list and the pool holds more than
 * this many, a worker frees the slabs (a burst's peak is not kept). */
#define TASK_KEEP 1024

typedef struct task_slab {
    struct task_slab *next;
    task_t tasks[TASK_SLAB];
} task_slab_t;

typedef struct pool pool_t;

struct pool {
    atomic_int refs; /* the executor object + each running worker */
    pthread_mutex_t mu;
    task_t *head, *tail;
    size_t pending;
    task_t *spare; /* free tasks (nspare of ntasks; the rest queued or running) */
    long nspare, ntasks;
    task_slab_t *slabs;
    braid_waitlist_t idle; /* workers waiting for a task */
    int nidle;             /* how many (mu) */
    int spinning;          /* a worker watches kick before it joins idle (mu) */
    atomic_int kick;       /* set by a submit (or shutdown) while one spins */
    /* Workers between taking a task and finishing it: incremented under mu
     * with pending--, decremented without it the moment the call returns
     * (before its future is done), so whoever saw that future finish also
     * sees the worker as available. nthreads - busy - pending is how many
     * workers will be free for one more task (Python's _idle_semaphore). */
    atomic_int busy;
    braid_thread_t **threads;
    int nthreads, max_workers;
    int shutdown, broken;
    char *broken_msg;
    char *prefix;
    const braid_executor_ops_t *ops;
    void *ud;
    pool_t *reg_next, *reg_prev; /* live pools (pools_mu) */
    uint64_t group;              /* braid_thread_group of its creator */
    char label[64];              /* the executor's label, for the trace (mu) */
    braid_executor_t *ex;        /* its executor object while alive (mu) */
};

struct braid_executor {
    braid_object_t obj;
    pool_t *pool;
};

typedef struct worker_arg {
    pool_t *pool;
    int index;
} worker_arg_t;

static pthread_mutex_t pools_mu = PTHREAD_MUTEX_INITIALIZER;
static pool_t *pools_head;
static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;

/* Frees every task and slab: none may be queued or running. */
static void pool_free_slabs(pool_t *p)
{
    for (task_t *t = p->spare; t; t = t->next)
        braid_buf_free(&t->call);
    p->spare = NULL;
    p->nspare = p->ntasks = 0;
    while (p->slabs) {
        task_slab_t *s = p->slabs;
        p->slabs = s->next;
        free(s);
    }
}

static void pool_release(pool_t *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_lock(&pools_mu);
    if (p->reg_prev)
        p->reg_prev->reg_next = p->reg_next;
    else if (pools_head == p)
        pools_head = p->reg_next;
    if (p->reg_next)
        p->reg_next->reg_prev = p->reg_prev;
    pthread_mutex_unlock(&pools_mu);
    while (p->head) {
        task_t *t = p->head;
        p->head = t->next;
        braid_buf_free(&t->call);
        braid_future_release(t->f);
    }
    pool_free_slabs(p);
    for (int i = 0; i < p->nthreads; i++)
        braid_object_release((braid_object_t *)p->threads[i]);
    free(p->threads);
    free(p->broken_msg);
    free(p->prefix);
    if (p->ops->free)
        p->ops->free(p->ud);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Takes every queued task off the pool (with p->mu held). */
static task_t *pool_drain_locked(pool_t *p)
{
    task_t *list = p->head;
    p->head = p->tail = NULL;
    p->pending = 0;
    return list;
}

static void task_recycle_locked(pool_t *p, task_t *t);

/* Finishes drained tasks: cancelled, or failed with code/msg; then puts
 * them back on the spare list. */
static void tasks_finish(pool_t *p, task_t *list, int code, const char *msg)
{
    for (task_t *t = list; t; t = t->next) {
        if (code)
            braid_future_set_error(t->f, code, msg);
        else
            braid_future_cancel(t->f);
        braid_buf_reset(&t->call);
        braid_future_release(t->f);
        t->f = NULL;
    }
    if (!list)
        return;
    pthread_mutex_lock(&p->mu);
    while (list) {
        task_t *t = list;
        list = t->next;
        task_recycle_locked(p, t);
    }
    pthread_mutex_unlock(&p->mu);
}

/* Finished tasks go back on the spare list; up to MAX_SPARE of them keep
 * their emptied call buffer, so a steady stream of big calls allocates
 * nothing: a submit swaps the caller's call buffer with the spare one.
 * Memory then stays with the thread that allocated it instead of being
 * freed by a worker into the submitter's malloc arena. The call's objects
 * are released (t->call reset) before it is kept. */
#define MAX_SPARE 256
#define MAX_SPARE_CALL 4096 /* bigger call buffers are freed */

static void task_recycle_locked(pool_t *p, task_t *t)
{
    if (p->nspare >= MAX_SPARE || t->call.cap > MAX_SPARE_CALL)
        braid_buf_free(&t->call);
    t->f = NULL;
    t->next = p->spare;
    p->spare = t;
    p->nspare++;
    if (p->nspare == p->ntasks && p->ntasks > TASK_KEEP && !p->head)
        pool_free_slabs(p); /* a burst is over: its peak is not kept */
}

static task_t *task_take_locked(pool_t *p)
{
    task_t *t = p->spare;
    if (!t) {
        task_slab_t *s = malloc(sizeof *s);
        if (!s)
            return NULL;
        s->next = p->slabs;
        p->slabs = s;
        for (int i = TASK_SLAB - 1; i >= 0; i--) {
            braid_buf_init(&s->tasks[i].call);
            s->tasks[i].next = p->spare;
            p->spare = &s->tasks[i];
        }
        p->nspare += TASK_SLAB;
        p->ntasks += TASK_SLAB;
        t = p->spare;
    }
    p->spare = t->next;
    p->nspare--;
    return t;
}

static void pool_counter(pool_t *p, const char *label, size_t queued);

/* How long a worker that found the queue empty watches it, lock released,
 * before it parks on the idle list. In a burst of submits the workers
 * empty the queue between two submits; parked, each submit would cost the
 * submitter a wake-up (a system call) for a task one microsecond away. One
 * worker at a time spins, and only while no more of our threads run than
 * there are cores; the submitter counts it as awake and wakes no one. */
#define WORKER_SPIN_NS 20000

/* mu held on entry and return (released while spinning). */
static void worker_spin(pool_t *p)
{
    if (!braid_waiter_may_spin())
        return;
    p->spinning = 1;
    atomic_store_explicit(&p->kick, 0, memory_order_relaxed);
    pthread_mutex_unlock(&p->mu);
    int64_t end = braid_clock_now() + WORKER_SPIN_NS;
    for (unsigned i = 1; !atomic_load_explicit(&p->kick, memory_order_relaxed); i++) {
        braid_cpu_relax();
        if (i % 16 != 0)
            continue;
        if (braid_clock_now() >= end)
            break;
        sched_yield(); /* a runnable thread (the submitter) goes first */
    }
    pthread_mutex_lock(&p->mu);
    p->spinning = 0;
}

static void worker_main(braid_thread_t *thread, void *arg)
{
    (void)thread;
    worker_arg_t *wa = arg;
    pool_t *p = wa->pool;
    int index = wa->index;
    free(wa);
    void *wctx = NULL;
    char *errmsg = NULL;
    int rc = p->ops->worker_start(p->ud, index, &wctx, &errmsg);
    if (rc) {
        const char *msg =
            errmsg ? errmsg : "A thread initializer failed, the thread pool is not usable anymore";
        pthread_mutex_lock(&p->mu);
        task_t *list = NULL;
        if (!p->broken) {
            p->broken = 1;
            p->broken_msg = strdup(msg);
        }
        list = pool_drain_locked(p);
        braid_waitlist_wake_all(&p->idle, 0);
        p->nidle = 0;
        pthread_mutex_unlock(&p->mu);
        tasks_finish(p, list, BRAID_EBROKEN, msg);
        free(errmsg);
        p->ops->worker_stop(wctx);
        pool_release(p);
        return;
    }
    braid_buf_t out;
    braid_buf_init(&out);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        for (int spun = 0; !p->head && !p->shutdown && !p->broken;) {
            if (!spun && !p->spinning) {
                spun = 1;
                worker_spin(p);
                continue; /* look again: a submit saw it awake */
            }
            p->nidle++;
            int w = braid_waitlist_wait(&p->idle, &p->mu, BRAID_FOREVER, NULL);
            if (w) /* not woken (a waker counts us off): still counted */
                p->nidle--;
            if (w == BRAID_ECANCELLED)
                braid_waiter_take_cancel(braid_waiter_current());
        }
        task_t *t = p->head;
        if (!t)
            break; /* shut down (or broken) and nothing left */
        p->head = t->next;
        if (!p->head)
            p->tail = NULL;
        p->pending--;
        atomic_fetch_add_explicit(&p->busy, 1, memory_order_relaxed);
        char label[sizeof p->label];
        size_t queued = p->pending;
        int traced = braid_trace_enabled();
        if (traced)
            memcpy(label, p->label, sizeof label);
        pthread_mutex_unlock(&p->mu);
        if (braid_future_set_running(t->f) == 1) {
            int64_t t0 = 0;
            if (traced) {
                t0 = braid_clock_now();
                pool_counter(p, label, queued);
                braid_trace_flow(
                    0, "submit", braid_trace_flow_id(((braid_object_t *)t->f)->id, 1), t0);
                braid_trace_set_job_name(NULL);
            }
            braid_buf_t view;
            int failed = p->ops->run(wctx, task_call(t, &view), t->aux, &out);
            /* available again before anyone can see the result */
            atomic_fetch_sub_explicit(&p->busy, 1, memory_order_release);
            if (traced && braid_trace_enabled()) {
                int64_t t1 = braid_clock_now();
                braid_trace_arg_t a = {"executor", 's', label, 0};
                braid_trace_slice("job", braid_trace_job_name(), t0, t1, &a, 1);
                braid_trace_flow(
                    1, "result", braid_trace_flow_id(((braid_object_t *)t->f)->id, 2), t1 - 1);
                braid_future_set_traced(t->f);
                pool_counter(p, label, (size_t)-1);
            }
            if (out.err) {
                braid_buf_free(&out);
                braid_future_set_error(t->f, BRAID_ENOMEM, NULL);
            } else if (braid_future_finish(t->f, &out, failed) != 0) {
                braid_buf_reset(&out);
            }
        } else {
            atomic_fetch_sub_explicit(&p->busy, 1, memory_order_release);
        }
        braid_buf_reset(&t->call);
        braid_future_release(t->f);
        pthread_mutex_lock(&p->mu);
        task_recycle_locked(p, t);
    }
    pthread_mutex_unlock(&p->mu);
    braid_buf_free(&out);
    p->ops->worker_stop(wctx);
    pool_release(p);
}

static void executor_destroy(braid_object_t *o)
{
    braid_executor_t *ex = (braid_executor_t *)o;
    pthread_mutex_lock(&ex->pool->mu);
    ex->pool->ex = NULL;
    pthread_mutex_unlock(&ex->pool->mu);
    braid_executor_shutdown(ex, 0, 0, 0);
    pool_release(ex->pool);
    free(ex);
}

const braid_object_type_t braid_executor_type = {
    "braid.ThreadPoolExecutor", "braid.futures", executor_destroy};

static void atexit_hook(void)
{
    braid_executor_shutdown_all(BRAID_FOREVER);
}

static void register_atexit(void)
{
    atexit(atexit_hook);
}

int braid_executor_new(braid_executor_t **out, int max_workers, const char *prefix,
                       const braid_executor_ops_t *ops, void *ud)
{
    if (max_workers < 1) {
        if (ops->free)
            ops->free(ud);
        return BRAID_EINVAL;
    }
    pthread_once(&atexit_once, register_atexit);
    pool_t *p = calloc(1, sizeof *p);
    braid_executor_t *ex = calloc(1, sizeof *ex);
    if (p)
        p->prefix = strdup(prefix ? prefix : "ThreadPoolExecutor");
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
    /* the submitters and every worker take it for a few dozen instructions:
     * spin a little before sleeping in the kernel */
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    int mu_failed = p ? pthread_mutex_init(&p->mu, &ma) != 0 : 1;
    pthread_mutexattr_destroy(&ma);
    if (!p || !ex || !p->prefix || mu_failed) {
        if (p && !mu_failed)
            pthread_mutex_destroy(&p->mu);
        if (p)
            free(p->prefix);
        free(p);
        free(ex);
        if (ops->free)
            ops->free(ud);
        return BRAID_ENOMEM;
    }
    atomic_init(&p->refs, 1);
    atomic_init(&p->busy, 0);
    braid_waitlist_init(&p->idle, NULL, "idle");
    p->max_workers = max_workers;
    p->ops = ops;
    p->ud = ud;
    p->group = braid_thread_group();
    ex->pool = p;
    p->ex = ex;
    if (braid_object_init(&ex->obj, &braid_executor_type) != 0) {
        free(ex);
        pool_release(p);
        return BRAID_ENOMEM;
    }
    pthread_mutex_lock(&pools_mu);
    p->reg_next = pools_head;
    if (pools_head)
        pools_head->reg_prev = p;
    pools_head = p;
    pthread_mutex_unlock(&pools_mu);
    *out = ex;
    return 0;
}

void braid_executor_retain(braid_executor_t *ex)
{
    braid_object_retain(&ex->obj);
}

void braid_executor_release(braid_executor_t *ex)
{
    if (ex)
        braid_object_release(&ex->obj);
}

/* Starts one more worker (p->mu held). Returns 0 or an error. */
static int pool_spawn_locked(pool_t *p)
{
    if (p->nthreads % 8 == 0) {
        braid_thread_t **t = realloc(p->threads, (size_t)(p->nthreads + 8) * sizeof *t);
        if (!t)
            return BRAID_ENOMEM;
        p->threads = t;
    }
    char name[96];
    snprintf(name, sizeof name, "%s_%d", p->prefix, p->nthreads);
    braid_thread_t *t;
    int rc = braid_thread_new(&t, name, 1);
    if (rc)
        return rc;
    worker_arg_t *wa = malloc(sizeof *wa);
    if (!wa) {
        braid_object_release((braid_object_t *)t);
        return BRAID_ENOMEM;
    }
    wa->pool = p;
    wa->index = p->nthreads;
    atomic_fetch_add(&p->refs, 1);
    rc = braid_thread_start(t, worker_main, wa);
    if (rc) {
        atomic_fetch_sub(&p->refs, 1);
        free(wa);
        braid_object_release((braid_object_t *)t);
        return rc;
    }
    p->threads[p->nthreads++] = t;
    return 0;
}

/* Wakes the worker that went idle last, if any (p->mu held): it is the
 * likeliest to be still spinning, which costs no system call to wake, and
 * the others stay parked. Returns whether one was woken. */
static int wake_idle_locked(pool_t *p)
{
    braid_waiter_t *w = p->idle.tail;
    if (!w)
        return 0;
    braid_waitlist_remove(&p->idle, w);
    p->nidle--;
    w->token = 0;
    braid_waiter_wake(w);
    return 1;
}

/* The "executor <label>" counter: running jobs and queued ones (queued
 * (size_t)-1: not known here, read it). */
static void pool_counter(pool_t *p, const char *label, size_t queued)
{
    if (queued == (size_t)-1) {
        pthread_mutex_lock(&p->mu);
        queued = p->pending;
        pthread_mutex_unlock(&p->mu);
    }
    char name[sizeof p->label + 16];
    snprintf(name, sizeof name, "executor %s", label);
    /* workers: the pool's size, for the HTML view's utilisation */
    braid_trace_arg_t a[3] = {{"running", 'i', NULL, atomic_load(&p->busy)},
                              {"queued", 'i', NULL, (int64_t)queued},
                              {"workers", 'i', NULL, p->max_workers}};
    braid_trace_counter(name, -1, a, 3);
}

int braid_executor_submit(braid_executor_t *ex, braid_buf_t *call, size_t aux, braid_future_t **out)
{
    pool_t *p = ex->pool;
    braid_future_t *f;
    int rc = braid_future_new(&f);
    if (rc)
        return rc;
    pthread_mutex_lock(&p->mu);
    task_t *t = NULL;
    if (p->broken || p->shutdown)
        rc = p->broken ? BRAID_EBROKEN : BRAID_ESHUTDOWN;
    else if (!(t = task_take_locked(p)))
        rc = BRAID_ENOMEM;
    if (rc) {
        pthread_mutex_unlock(&p->mu);
        braid_future_release(f);
        return rc;
    }
    t->f = f;
    t->next = NULL;
    t->aux = aux;
    int traced = braid_trace_enabled();
    char label[sizeof p->label];
    if (traced) {
        braid_object_label(&ex->obj, label, sizeof label);
        memcpy(p->label, label, sizeof label);
    }
    /* A worker that is starting up or between tasks looks at the queue
     * before it parks: wake one from the idle list only when the queued
     * tasks, this one included, outnumber those (no wake-up, and no system
     * call, while the workers awake keep up; a worker blocked inside a task
     * is busy, so the queue never waits on it). Spawn only when none is
     * idle and every worker is busy or already claimed by a queued task. */
    int busy = atomic_load_explicit(&p->busy, memory_order_acquire);
    int free_awake = p->nthreads - p->nidle - busy;
    if (p->idle.tail) {
        if ((long)p->pending + 1 > (long)free_awake)
            wake_idle_locked(p);
    } else if (p->nthreads < p->max_workers &&
               (size_t)p->nthreads <=
                   (size_t)atomic_load_explicit(&p->busy, memory_order_acquire) + p->pending) {
        rc = pool_spawn_locked(p);
        if (rc && p->nthreads == 0) {
            task_recycle_locked(p, t);
            pthread_mutex_unlock(&p->mu);
            braid_future_release(f);
            return rc;
        }
    }
    t->small = !call->nobjs && !call->err && call->len <= SMALL_CALL;
    if (t->small) { /* the caller keeps its buffer, emptied */
        memcpy(t->small_data, call->data, call->len);
        t->small_len = call->len;
        call->len = 0;
    } else {
        braid_buf_t spare = t->call; /* empty, maybe with room: the caller's now */
        t->call = *call;
        *call = spare;
    }
    braid_future_retain(t->f);
    *out = t->f;
    if (p->tail)
        p->tail->next = t;
    else
        p->head = t;
    p->tail = t;
    p->pending++;
    size_t queued = p->pending;
    if (p->spinning)
        atomic_store_explicit(&p->kick, 1, memory_order_relaxed);
    pthread_mutex_unlock(&p->mu);
    if (traced) {
        braid_trace_flow(
            1, "submit", braid_trace_flow_id(((braid_object_t *)f)->id, 1), braid_clock_now());
        pool_counter(p, label, queued);
    }
    return 0;
}

static int pool_shutdown(pool_t *p, int wait, int cancel_futures, int64_t deadline)
{
    pthread_mutex_lock(&p->mu);
    p->shutdown = 1;
    atomic_store_explicit(&p->kick, 1, memory_order_relaxed);
    task_t *list = cancel_futures ? pool_drain_locked(p) : NULL;
    braid_waitlist_wake_all(&p->idle, 0);
    p->nidle = 0;
    int n = wait ? p->nthreads : 0;
    braid_thread_t **ts = n ? malloc((size_t)n * sizeof *ts) : NULL;
    if (n && !ts)
        n = 0;
    for (int i = 0; i < n; i++) {
        ts[i] = p->threads[i];
        braid_object_retain((braid_object_t *)ts[i]);
    }
    pthread_mutex_unlock(&p->mu);
    tasks_finish(p, list, 0, NULL);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (!rc) {
            int r = braid_thread_join(ts[i], deadline);
            if (r && r != BRAID_ESTATE) /* ESTATE: the calling worker itself */
                rc = r;
        }
        braid_object_release((braid_object_t *)ts[i]);
    }
    free(ts);
    return rc;
}

int braid_executor_shutdown(braid_executor_t *ex, int wait, int cancel_futures, int64_t deadline)
{
    return pool_shutdown(ex->pool, wait, cancel_futures, deadline);
}

int braid_executor_broken(braid_executor_t *ex, const char **msg)
{
    pool_t *p = ex->pool;
    pthread_mutex_lock(&p->mu);
    int b = p->broken;
    if (msg)
        *msg = p->broken_msg ? p->broken_msg : "the pool is broken";
    pthread_mutex_unlock(&p->mu);
    return b;
}

int braid_executor_is_shutdown(braid_executor_t *ex)
{
    pthread_mutex_lock(&ex->pool->mu);
    int s = ex->pool->shutdown;
    pthread_mutex_unlock(&ex->pool->mu);
    return s;
}

int braid_executor_max_workers(braid_executor_t *ex)
{
    return ex->pool->max_workers;
}

int braid_executor_nthreads(braid_executor_t *ex)
{
    pthread_mutex_lock(&ex->pool->mu);
    int n = ex->pool->nthreads;
    pthread_mutex_unlock(&ex->pool->mu);
    return n;
}

size_t braid_executor_pending(braid_executor_t *ex)
{
    pthread_mutex_lock(&ex->pool->mu);
    size_t n = ex->pool->pending;
    pthread_mutex_unlock(&ex->pool->mu);
    return n;
}

int braid_executor_shutdown_all(int64_t deadline)
{
    return braid_executor_shutdown_group(0, deadline);
}

int braid_executor_shutdown_group(uint64_t group, int64_t deadline)
{
    for (;;) {
        /* one pool at a time: shutting one down may free others */
        pool_t *p = NULL;
        pthread_mutex_lock(&pools_mu);
        for (pool_t *q = pools_head; q; q = q->reg_next) {
            pthread_mutex_lock(&q->mu);
            int done = q->shutdown && q->nthreads == 0;
            int busy = !q->shutdown || q->nthreads > 0;
            pthread_mutex_unlock(&q->mu);
            if (busy && !done && (!group || q->group == group) && atomic_load(&q->refs) > 0) {
                /* take a reference unless it is already being freed */
                int r = atomic_load(&q->refs);
                while (r > 0 && !atomic_compare_exchange_weak(&q->refs, &r, r + 1))
                    ;
                if (r > 0) {
                    p = q;
                    break;
                }
            }
        }
        pthread_mutex_unlock(&pools_mu);
        if (!p)
            return 0;
        int rc = pool_shutdown(p, 1, 0, deadline);
        /* mark it finished for this loop: no thread of it is left running
         * once joined, so forget them */
        pthread_mutex_lock(&p->mu);
        int all_joined = !rc;
        if (all_joined) {
            for (int i = 0; i < p->nthreads; i++)
                braid_object_release((braid_object_t *)p->threads[i]);
            p->nthreads = 0;
        }
        pthread_mutex_unlock(&p->mu);
        pool_release(p);
        if (rc)
            return rc;
    }
}

void braid_executor_visit(void (*fn)(void *ud, const braid_executor_view_t *v),
                          void (*call_fn)(void *ud, const braid_buf_t *call, size_t aux),
                          size_t max_calls, void *ud)
{
    pthread_mutex_lock(&pools_mu);
    for (pool_t *p = pools_head; p; p = p->reg_next) {
        if (atomic_load(&p->refs) <= 0)
            continue; /* being freed */
        pthread_mutex_lock(&p->mu);
        if (!p->shutdown || p->nthreads > 0 || p->pending > 0) {
            braid_executor_view_t v = {p->prefix,
                                       p->ex ? braid_object_name(&p->ex->obj) : NULL,
                                       p->max_workers,
                                       p->nthreads,
                                       atomic_load(&p->busy),
                                       p->shutdown,
                                       p->broken,
                                       p->pending,
                                       p->threads};
            fn(ud, &v);
            size_t k = 0;
            braid_buf_t view;
            for (task_t *t = p->head; call_fn && t && k < max_calls; t = t->next, k++)
                call_fn(ud, task_call(t, &view), t->aux);
        }
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&pools_mu);
}
