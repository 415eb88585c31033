/* Raw-C limit for queue_1to1: a mutex/condvar bounded queue (1024).
 * Build: cc -O2 -pthread 1to1_mutex.c */
#define BENCH 2
#define Q mq_t
#define QINIT(q) mq_init(q, 1024)
#define QPUT mq_put
#define QGET mq_get
#include "bodies.h"
