/* Internal to thread.c and thread_pool.c: the thread object, and the pool
 * of OS threads ("workers") braid threads run on. */
#ifndef BRAID_THREAD_INT_H
#define BRAID_THREAD_INT_H

#include "sync.h"
#include "thread.h"

struct braid_thread {
    braid_object_t obj;
    pthread_mutex_t mu;
    braid_waitlist_t joiners; /* also woken when ident/native_id appear */
    int state;
    atomic_int done; /* state == DONE, for join's lock-free spin */
    int kind;        /* K_BRAID, K_MAIN, K_DUMMY */
    int daemon;
    int native_ready;
    atomic_int cancel_flag;
    char *name;
    uint64_t ident;
    long native_id;
    braid_waiter_t waiter; /* K_BRAID: the thread's own waiter */
    braid_thread_fn fn;
    void *arg;
    braid_thread_cancel_fn cancel_fn;
    void *cancel_data;
    braid_buf_t self, args, result;
    int failed;
    char *tb;
    braid_thread_t *reg_next, *reg_prev; /* registry links (reg_mu) */
    braid_thread_t *pend_next;           /* pool_pending link (pool_mu) */
    uint64_t group;                      /* its starter's braid_thread_group */
};

enum { K_BRAID, K_MAIN, K_DUMMY };

/* thread.c: runs t on the calling worker until t is DONE. */
void braid__thread_run(braid_thread_t *t, long native_id);

/* thread_pool.c. Hands t to a parked worker, or queues it for one whose
 * thread is finishing; returns 0 if none can take it. Called with t->mu
 * held (and the registry's). */
int braid__pool_hand_over(braid_thread_t *t);
/* Starts a new worker running t (no locks held); 0 or BRAID_EOS. */
int braid__pool_spawn(braid_thread_t *t);
/* A worker's thread is about to be DONE: it will take a queued start. */
void braid__pool_finishing(void);
/* fork: the pool held still (after the registry), and reset in a child. */
void braid__pool_before_fork(void);
void braid__pool_after_fork(int child);

#endif
