/* Raw-C limit for threading/parked: pthread_create of 1,000 (then 5,000)
 * threads that each post a semaphore and park on a condition variable,
 * with braid's worker stack size (1 MB); the start rate from the first
 * create to the last thread parked, as parked.lua prints it. No Lua state,
 * no object, nothing to decode: what starting an OS thread costs here.
 * usage: parked [N...] */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int go;
static sem_t parked;

static void *waiter(void *p)
{
    (void)p;
    sem_post(&parked);
    pthread_mutex_lock(&mu);
    while (!go)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int run(int n)
{
    pthread_t *ts = malloc((size_t)n * sizeof *ts);
    if (!ts)
        return 1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1024 * 1024);
    go = 0;
    double t0 = now();
    for (int i = 0; i < n; i++)
        if (pthread_create(&ts[i], &attr, waiter, NULL) != 0)
            return 1;
    for (int i = 0; i < n; i++)
        sem_wait(&parked);
    double dt = now() - t0;
    pthread_mutex_lock(&mu);
    go = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < n; i++)
        pthread_join(ts[i], NULL);
    pthread_attr_destroy(&attr);
    free(ts);
    printf("RESULT parked_start_%d %.0f\n", n, n / dt);
    return 0;
}

int main(int argc, char **argv)
{
    sem_init(&parked, 0, 0);
    if (argc < 2)
        return run(1000) || run(5000);
    for (int i = 1; i < argc; i++)
        if (run(atoi(argv[i])))
            return 1;
    return 0;
}
