/* futures/burst raw-C limit with braid's executor design: a worker spins
 * before it parks (see burst_condvar.c). */
#define WORKER_SPIN_NS 20000
#include "burst_condvar.c"
