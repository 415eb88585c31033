/* Monotonic clock and deadline arithmetic. */
#include <errno.h>
#include <math.h>
#include <time.h>

#include "clock.h"

int64_t braid_clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t braid_clock_deadline(double timeout)
{
    if (isnan(timeout) || timeout < 0)
        return BRAID_FOREVER;
    int64_t now = braid_clock_now();
    double ns = timeout * 1e9;
    if (ns >= (double)(BRAID_FOREVER - now))
        return BRAID_FOREVER;
    return now + (int64_t)ns;
}

void braid_clock_sleep_until(int64_t deadline)
{
    if (deadline == BRAID_FOREVER)
        deadline = braid_clock_now() + (int64_t)3600 * 1000000000 * 24 * 365;
    struct timespec ts = {.tv_sec = deadline / 1000000000, .tv_nsec = deadline % 1000000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}
