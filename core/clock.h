/* Monotonic time and deadlines: every blocking call in braid takes an
 * absolute deadline in nanoseconds on the monotonic clock. */
#ifndef BRAID_CLOCK_H
#define BRAID_CLOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A deadline that never arrives. */
#define BRAID_FOREVER INT64_MAX

/* Nanoseconds on the monotonic clock. Thread-safe. */
int64_t braid_clock_now(void);
/* Deadline for a timeout in seconds: negative or NaN means BRAID_FOREVER,
 * 0 means "now" (do not block); saturates instead of overflowing. */
int64_t braid_clock_deadline(double timeout);
/* Sleeps until the deadline (restarting on EINTR). */
void braid_clock_sleep_until(int64_t deadline);

#ifdef __cplusplus
}
#endif
#endif
