/* Benchmark bodies shared by the raw-C programs: each *_mutex.c / *_spin.c
 * defines Q, QINIT, QPUT, QGET and BENCH, then includes this file. */
#include "cbench.h"

#if BENCH == 1 /* ping-pong: round trips through two queues */
static Q qa, qb;
static long n_ops;
static void *echo(void *p)
{
    (void)p;
    for (;;) {
        long v = QGET(&qa);
        QPUT(&qb, v);
        if (v < 0)
            return NULL;
    }
}
int main(int argc, char **argv)
{
    n_ops = arg_n(argc, argv, 200000);
    QINIT(&qa);
    QINIT(&qb);
    pthread_t t;
    pthread_create(&t, NULL, echo, NULL);
    double t0 = now_s();
    for (long i = 0; i < n_ops; i++) {
        QPUT(&qa, i);
        if (QGET(&qb) != i)
            return 1;
    }
    double dt = now_s() - t0;
    QPUT(&qa, -1);
    QGET(&qb);
    pthread_join(t, NULL);
    printf("RESULT queue_pingpong %.0f\n", n_ops / dt);
    return 0;
}
#else /* BENCH 2 (1 -> 1) and 3 (4 -> 4): items through one bounded queue */
#define PRODUCERS (BENCH == 2 ? 1 : 4)
static Q q;
static long per;
static atomic_long sum;
static void *producer(void *p)
{
    (void)p;
    for (long i = 1; i <= per; i++)
        QPUT(&q, i);
    return NULL;
}
static void *consumer(void *p)
{
    (void)p;
    long s = 0;
    for (;;) {
        long v = QGET(&q);
        if (v < 0)
            break;
        s += v;
    }
    atomic_fetch_add(&sum, s);
    return NULL;
}
int main(int argc, char **argv)
{
    long n = arg_n(argc, argv, 2000000);
    per = n / PRODUCERS;
    QINIT(&q);
    pthread_t tp[PRODUCERS], tc[PRODUCERS];
    double t0 = now_s();
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_create(&tc[i], NULL, consumer, NULL);
        pthread_create(&tp[i], NULL, producer, NULL);
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(tp[i], NULL);
    for (int i = 0; i < PRODUCERS; i++)
        QPUT(&q, -1);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(tc[i], NULL);
    double dt = now_s() - t0;
    if (atomic_load(&sum) != PRODUCERS * (per * (per + 1) / 2))
        return 1;
    printf("RESULT %s %.0f\n", BENCH == 2 ? "queue_1to1" : "queue_4to4",
           (double)per * PRODUCERS / dt);
    return 0;
}
#endif
