/* Raw-C limit for queue_main_consumer: a mutex/condvar bounded queue (1024),
 * one producer thread -> the main thread. Build: cc -O2 -pthread */
#include "cbench.h"

static mq_t q;
static long n;

static void *producer(void *p)
{
    (void)p;
    for (long i = 1; i <= n; i++)
        mq_put(&q, i);
    mq_put(&q, -1);
    return NULL;
}

int main(int argc, char **argv)
{
    n = arg_n(argc, argv, 300000);
    mq_init(&q, 1024);
    pthread_t t;
    double t0 = now_s();
    pthread_create(&t, NULL, producer, NULL);
    long s = 0;
    for (;;) {
        long v = mq_get(&q);
        if (v < 0)
            break;
        s += v;
    }
    double dt = now_s() - t0;
    pthread_join(t, NULL);
    if (s != n * (n + 1) / 2)
        return 1;
    printf("RESULT queue_main_consumer %.0f\n", n / dt);
    return 0;
}
