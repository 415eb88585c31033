/* The OS threads braid threads run on (thread.c: the thread objects).
 * A braid thread runs on an OS thread ("worker"). When its function has
 * returned and the thread is DONE, the worker parks on the idle list for a
 * while: a later start hands it the next thread instead of paying for
 * pthread_create and thread exit. Nothing of the previous thread survives
 * on the worker: its Lua state is closed by then, and the per-OS-thread
 * identities (current thread, current waiter, RLock owner id) are reset. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "thread_int.h"

#define POOL_MAX_IDLE 8
#define POOL_IDLE_NS 2000000000LL /* an idle worker exits after 2 s */

typedef struct worker {
    braid_waiter_t waiter; /* first: parks on pool_idle */
    braid_thread_t *job;   /* next thread to run (pool_mu once started) */
    uint64_t ident;        /* pthread_self(), written before first parking */
    long native_id;
} worker_t;

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static braid_waitlist_t pool_idle = {NULL, NULL, NULL, "idle"};
static int pool_nidle;
/* Workers whose thread is about to be DONE (a joiner may already be back)
 * take queued starts before parking: a start right after a join does not
 * spawn a second OS thread while the first is still winding down. */
static int pool_nfinishing, pool_npending;
static braid_thread_t *pool_pending_head, *pool_pending_tail;

/* An exiting worker joins the one that exited before it, a fork the last:
 * a fork never copies a worker halfway through its exit (handing its
 * allocator cache back under locks that GCC 12's AddressSanitizer does not
 * hold across fork). pool_mu held; self: the exiting worker, or NULL. */
static pthread_t pool_exited;
static int pool_has_exited;

static void join_exited(const pthread_t *self)
{
    if (pool_has_exited)
        pthread_join(pool_exited, NULL); /* it needs no lock to finish */
    pool_has_exited = self != NULL;
    if (self)
        pool_exited = *self;
}

void braid__pool_finishing(void)
{
    pthread_mutex_lock(&pool_mu);
    pool_nfinishing++;
    pthread_mutex_unlock(&pool_mu);
}

/* p: the worker's first thread. The worker's own record lives on its
 * stack (a page it touches anyway), not on the heap; nobody else sees it
 * before it parks on pool_idle (under pool_mu), so it is filled without
 * the lock every start takes (a new worker often found it held there). */
static void *worker_main(void *p)
{
    worker_t w;
    int parkable = braid_waiter_init(&w.waiter) == 0; /* else it never idles */
    braid_thread_t *t = p;
    w.job = t;
    w.ident = (uint64_t)pthread_self();
    w.native_id = (long)gettid();
    while (t) {
        braid__thread_run(t, w.native_id);
        pthread_mutex_lock(&pool_mu);
        w.job = NULL;
        pool_nfinishing--;
        if (pool_pending_head) {
            w.job = pool_pending_head;
            pool_pending_head = w.job->pend_next;
            if (!pool_pending_head)
                pool_pending_tail = NULL;
            pool_npending--;
        } else if (parkable && pool_nidle < POOL_MAX_IDLE) {
            pool_nidle++;
            braid_waiter_set_current(&w.waiter);
            int64_t deadline = braid_clock_now() + POOL_IDLE_NS;
            /* a starter unlinks us, counts us out and sets job; on a
             * timeout we unlink ourselves */
            while (!w.job) {
                if (braid_waitlist_wait(&pool_idle, &pool_mu, deadline, NULL) != 0 && !w.job) {
                    pool_nidle--;
                    break;
                }
            }
            braid_waiter_set_current(NULL);
        }
        t = w.job;
        if (!t) {
            pthread_t self = pthread_self();
            join_exited(&self);
        }
        pthread_mutex_unlock(&pool_mu);
    }
    if (parkable)
        braid_waiter_destroy(&w.waiter);
    return NULL;
}

/* Hands t to a parked worker (records its ident/native_id in t) or queues
 * it for a finishing one (which records them when it picks it up). Called
 * with t->mu held. Returns 1 if done. */
int braid__pool_hand_over(braid_thread_t *t)
{
    int taken = 1;
    pthread_mutex_lock(&pool_mu);
    braid_waiter_t *iw = braid_waitlist_pop(&pool_idle);
    if (iw) {
        worker_t *w = (worker_t *)iw;
        pool_nidle--;
        w->job = t;
        t->ident = w->ident;
        t->native_id = w->native_id;
        t->native_ready = 1;
        braid_waiter_wake(iw);
    } else if (pool_npending < pool_nfinishing) {
        t->pend_next = NULL;
        if (pool_pending_tail)
            pool_pending_tail->pend_next = t;
        else
            pool_pending_head = t;
        pool_pending_tail = t;
        pool_npending++;
    } else {
        taken = 0;
    }
    pthread_mutex_unlock(&pool_mu);
    return taken;
}

/* A worker's stack. Only its touched pages cost memory, but an 8 MB
 * default stack gives every thread its own page-table page, allocated and
 * zeroed at start and freed at exit; 1 MB stacks share one between two.
 * Pure Lua code needs at most ~450 KB of C stack: Lua stops C recursion at
 * 200 levels ("C stack overflow"), and the deepest standard function,
 * string.gsub, takes ~2.2 KB a level (spec/thread_stack_spec.lua). The
 * sanitizers' frames are larger: their builds keep the default. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WORKER_STACK 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define WORKER_STACK 0
#endif
#endif
#ifndef WORKER_STACK
#define WORKER_STACK (1024 * 1024)
#endif

/* Starts a new worker running t. Called without locks: the new thread's
 * first step locks t->mu (to record its ids), and would otherwise sleep
 * until the starter is back from pthread_create (a futex wait and wake
 * per start). Its ident is recorded by the worker itself. */
int braid__pool_spawn(braid_thread_t *t)
{
    braid__thread_pin_library();
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (WORKER_STACK)
        (void)pthread_attr_setstacksize(&attr, WORKER_STACK); /* else the default */
    pthread_t pt;
    int err = pthread_create(&pt, &attr, worker_main, t);
    pthread_attr_destroy(&attr);
    return err ? BRAID_EOS : 0;
}

void braid__pool_before_fork(void)
{
    pthread_mutex_lock(&pool_mu);
    join_exited(NULL);
}

void braid__pool_after_fork(int child)
{
    if (!child) {
        pthread_mutex_unlock(&pool_mu);
        return;
    }
    pthread_mutex_init(&pool_mu, NULL);
    braid_waitlist_init(&pool_idle, NULL, "idle");
    pool_nidle = pool_nfinishing = pool_npending = 0;
    pool_pending_head = pool_pending_tail = NULL;
}
