/* Raw-C limit for futures/burst: the same executor with nothing but C in
 * it. Four worker threads take calls from one FIFO under one mutex and park
 * on a condition variable when it is empty; a submit mallocs a future (a
 * flag, a mutex, a condition variable), queues a call to a no-op function
 * and signals a parked worker if there is one; result() waits on the
 * future. A burst of 50k submits, then 50k results, after 1,000 warm-up
 * round trips, as burst.lua prints it: what a submit costs on this machine
 * when the language around it costs nothing. This is Python's design
 * (a lock and a condition variable); burst_spin.c is braid's (a worker
 * spins before it parks). usage: burst_condvar [N] */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct future {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, waiting;
    void *result;
} future_t;

typedef struct task {
    struct task *next;
    future_t *f;
    void *(*fn)(void *);
    void *arg;
} task_t;

static double now(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cv = PTHREAD_COND_INITIALIZER;
static task_t *head, *tail, *spare;
static int nidle, stopping;
#ifdef WORKER_SPIN_NS
/* burst_spin.c: one worker at a time watches the queue for a while before
 * it parks, and a submit seeing it awake signals no one (braid's design) */
static int spinning;
static atomic_int kick;

static void spin(void)
{
    spinning = 1;
    atomic_store_explicit(&kick, 0, memory_order_relaxed);
    pthread_mutex_unlock(&mu);
    double end = now(CLOCK_MONOTONIC) + WORKER_SPIN_NS * 1e-9;
    for (unsigned i = 1; !atomic_load_explicit(&kick, memory_order_relaxed); i++)
        if (i % 64 == 0 && now(CLOCK_MONOTONIC) >= end)
            break;
        else if (i % 16 == 0)
            sched_yield();
    pthread_mutex_lock(&mu);
    spinning = 0;
}
#endif

static void *noop(void *arg) { return arg; }

static void *worker(void *p)
{
    (void)p;
    pthread_mutex_lock(&mu);
    for (;;) {
        for (int spun = 0; !head && !stopping;) {
#ifdef WORKER_SPIN_NS
            if (!spun && !spinning) {
                spun = 1;
                spin();
                continue;
            }
#endif
            (void)spun;
            nidle++;
            pthread_cond_wait(&idle_cv, &mu);
            nidle--;
        }
        task_t *t = head;
        if (!t)
            break;
        head = t->next;
        if (!head)
            tail = NULL;
        pthread_mutex_unlock(&mu);
        void *r = t->fn(t->arg);
        future_t *f = t->f;
        pthread_mutex_lock(&f->mu);
        f->result = r;
        f->done = 1;
        if (f->waiting)
            pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        pthread_mutex_lock(&mu);
        t->next = spare; /* tasks are recycled, as braid's are */
        spare = t;
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

static future_t *submit(void *(*fn)(void *), void *arg)
{
    future_t *f = malloc(sizeof *f);
    if (!f)
        abort();
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->done = f->waiting = 0;
    pthread_mutex_lock(&mu);
    task_t *t = spare;
    if (t)
        spare = t->next;
    else if (!(t = malloc(sizeof *t)))
        abort();
    t->next = NULL;
    t->f = f;
    t->fn = fn;
    t->arg = arg;
    if (tail)
        tail->next = t;
    else
        head = t;
    tail = t;
#ifdef WORKER_SPIN_NS
    if (spinning)
        atomic_store_explicit(&kick, 1, memory_order_relaxed);
    else
#endif
        if (nidle)
        pthread_cond_signal(&idle_cv);
    pthread_mutex_unlock(&mu);
    return f;
}

static void *result(future_t *f)
{
    pthread_mutex_lock(&f->mu);
    while (!f->done) {
        f->waiting = 1;
        pthread_cond_wait(&f->cv, &f->mu);
    }
    void *r = f->result;
    pthread_mutex_unlock(&f->mu);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
    return r;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 50000;
    pthread_t ws[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&ws[i], NULL, worker, NULL);
    for (int i = 0; i < 1000; i++)
        result(submit(noop, NULL));
    future_t **fs = malloc((size_t)n * sizeof *fs);
    if (!fs)
        return 1;
    double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
    for (int i = 0; i < n; i++)
        fs[i] = submit(noop, NULL);
    double t1 = now(CLOCK_MONOTONIC), c1 = now(CLOCK_THREAD_CPUTIME_ID);
    for (int i = 0; i < n; i++)
        result(fs[i]);
    double dt = now(CLOCK_MONOTONIC) - t0;
    printf("RESULT burst_50k %.0f\n", n / dt);
    printf("RESULT burst_submit_us %.3f\n", (t1 - t0) / n * 1e6);
    printf("RESULT burst_submit_cpu_us %.3f\n", (c1 - c0) / n * 1e6);
    pthread_mutex_lock(&mu);
    stopping = 1;
    pthread_cond_broadcast(&idle_cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < 4; i++)
        pthread_join(ws[i], NULL);
    while (spare) {
        task_t *t = spare;
        spare = t->next;
        free(t);
    }
    free(fs);
    return 0;
}
