/* Spinning hand-off limit for queue_4to4: a lock-free bounded queue (1024)
 * whose callers spin instead of sleeping. Build: cc -O2 -pthread 4to4_spin.c */
#define BENCH 3
#define Q sq_t
#define QINIT(q) sq_init(q, 1024)
#define QPUT sq_put
#define QGET sq_get
#include "bodies.h"
