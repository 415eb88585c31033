/* Raw-C baselines for bench/queue: a bounded ring of longs behind a mutex
 * and two condvars (signalled only when someone waits), and a spinning one. */
#ifndef BENCH_QUEUE_CBENCH_H
#define BENCH_QUEUE_CBENCH_H

#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long arg_n(int argc, char **argv, long dflt)
{
    const char *e = getenv("BENCH_N");
    return argc > 1 ? atol(argv[1]) : e ? atol(e) : dflt;
}

/* ---- mutex + condvar queue (what queue.Queue does, without a GIL) ---- */

typedef struct mq {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    int getters, putters; /* how many wait: signal only then */
    long *items;
    size_t cap, head, count;
} mq_t;

static inline void mq_init(mq_t *q, size_t cap)
{
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    q->getters = q->putters = 0;
    q->items = malloc(cap * sizeof *q->items);
    q->cap = cap;
    q->head = q->count = 0;
}

static inline void mq_put(mq_t *q, long v)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == q->cap) {
        q->putters++;
        pthread_cond_wait(&q->not_full, &q->mu);
        q->putters--;
    }
    q->items[(q->head + q->count++) % q->cap] = v;
    if (q->getters)
        pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

static inline long mq_get(mq_t *q)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == 0) {
        q->getters++;
        pthread_cond_wait(&q->not_empty, &q->mu);
        q->getters--;
    }
    long v = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    if (q->putters)
        pthread_cond_signal(&q->not_full);
    pthread_mutex_unlock(&q->mu);
    return v;
}

/* ---- spinning bounded MPMC queue (Vyukov), the hand-off limit ---- */

typedef struct sq_cell {
    atomic_size_t seq;
    long v;
} sq_cell_t;

typedef struct sq {
    sq_cell_t *cells;
    size_t mask;
    _Alignas(64) atomic_size_t tail;
    _Alignas(64) atomic_size_t head;
} sq_t;

static inline void sq_init(sq_t *q, size_t cap_pow2)
{
    q->cells = aligned_alloc(64, cap_pow2 * sizeof *q->cells + 64);
    for (size_t i = 0; i < cap_pow2; i++)
        atomic_init(&q->cells[i].seq, i);
    q->mask = cap_pow2 - 1;
    atomic_init(&q->tail, 0);
    atomic_init(&q->head, 0);
}

static inline void sq_put(sq_t *q, long v)
{
    for (unsigned spins = 0;; spins++) {
        size_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
        sq_cell_t *c = &q->cells[pos & q->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        if (seq == pos && atomic_compare_exchange_weak_explicit(
                              &q->tail, &pos, pos + 1, memory_order_relaxed,
                              memory_order_relaxed)) {
            c->v = v;
            atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
            return;
        }
        if ((spins & 1023) == 1023)
            sched_yield(); /* more threads than cores: let the holder run */
    }
}

static inline long sq_get(sq_t *q)
{
    for (unsigned spins = 0;; spins++) {
        size_t pos = atomic_load_explicit(&q->head, memory_order_relaxed);
        sq_cell_t *c = &q->cells[pos & q->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        if (seq == pos + 1 && atomic_compare_exchange_weak_explicit(
                                  &q->head, &pos, pos + 1, memory_order_relaxed,
                                  memory_order_relaxed)) {
            long v = c->v;
            atomic_store_explicit(&c->seq, pos + q->mask + 1, memory_order_release);
            return v;
        }
        if ((spins & 1023) == 1023)
            sched_yield();
    }
}

#endif
