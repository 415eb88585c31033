/* Spinning hand-off limit for queue_1to1: a lock-free bounded queue (1024)
 * whose callers spin instead of sleeping. Build: cc -O2 -pthread 1to1_spin.c */
#define BENCH 2
#define Q sq_t
#define QINIT(q) sq_init(q, 1024)
#define QPUT sq_put
#define QGET sq_get
#include "bodies.h"
