/* Prepared resources for thread starts (a helper OS thread building the
 * next threads' Lua states ahead of time), and keeping this library mapped
 * while braid's own OS threads outlive a Lua host's lua_close. */
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

#include "clock.h"
#include "thread.h"
#include "waiter.h"

/* Parked workers run code of this library after a Lua host may have
 * unloaded braid.so (lua_close dlcloses C modules): keep it mapped. */
static void pin_library(void)
{
    Dl_info info;
    if (dladdr((void *)pin_library, &info) && info.dli_fname)
        (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

static pthread_once_t pin_once = PTHREAD_ONCE_INIT;

void braid__thread_pin_library(void)
{
    pthread_once(&pin_once, pin_library);
}

static pthread_mutex_t prep_mu = PTHREAD_MUTEX_INITIALIZER;
/* Held by the preparer while it builds: a fork waits for the build in
 * hand (see braid__thread_prep_before_fork). */
static pthread_mutex_t prep_build_mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- prepared resources ----
 * One helper OS thread (the "preparer") keeps up to PREP_MAX resources
 * ready; each is handed to exactly one taker. It runs nothing but `prep`,
 * parks when the stock is full, is woken when takers have brought it
 * down to PREP_LOW (a wake-up is a system call and a context switch on
 * each side: starts one at a time woke it at every take, now at every
 * second; the stock left meanwhile serves the next starts), and
 * after PREP_IDLE_NS without a taker discards its stock and exits (it is
 * detached: it never holds the process; a stock left at exit is still
 * referenced from here). */

#define PREP_MAX 4
#define PREP_LOW 2
#define PREP_IDLE_NS 2000000000LL

static braid_thread_prep_fn prep_fn;
static braid_thread_discard_fn prep_discard;
static void *prep_stock[PREP_MAX];
static int prep_nstock;
static int prep_running;                                        /* the preparer exists (prep_mu) */
static braid_waitlist_t prep_idle = {NULL, NULL, NULL, "idle"}; /* the parked preparer */

void braid_thread_set_prep(braid_thread_prep_fn prep, braid_thread_discard_fn discard)
{
    pthread_mutex_lock(&prep_mu);
    if (!prep_fn) { /* set once: the stock was built by this pair */
        prep_fn = prep;
        prep_discard = discard;
    }
    pthread_mutex_unlock(&prep_mu);
}

static void *prep_main(void *p)
{
    (void)p;
    braid_waiter_t w;
    int ok = braid_waiter_init(&w) == 0;
    pthread_mutex_lock(&prep_mu);
    if (ok) {
        braid_waiter_set_current(&w);
        int64_t deadline = braid_clock_now() + PREP_IDLE_NS;
        for (;;) {
            if (prep_nstock < PREP_MAX) {
                pthread_mutex_unlock(&prep_mu);
                pthread_mutex_lock(&prep_build_mu);
                void *r = prep_fn();
                pthread_mutex_unlock(&prep_build_mu);
                pthread_mutex_lock(&prep_mu);
                if (!r)
                    break; /* out of memory: takers build their own */
                prep_stock[prep_nstock++] = r;
                deadline = braid_clock_now() + PREP_IDLE_NS;
                continue;
            }
            if (braid_waitlist_wait(&prep_idle, &prep_mu, deadline, NULL) != 0 &&
                prep_nstock == PREP_MAX)
                break; /* nobody took anything for a while */
        }
        braid_waiter_set_current(NULL);
        braid_waiter_destroy(&w);
    }
    void *left[PREP_MAX];
    int n = prep_nstock;
    memcpy(left, prep_stock, sizeof left);
    prep_nstock = 0;
    prep_running = 0;
    pthread_mutex_unlock(&prep_mu);
    for (int i = 0; i < n; i++)
        prep_discard(left[i]);
    return NULL;
}

void *braid_thread_take_prepared(void)
{
    void *r = NULL;
    pthread_mutex_lock(&prep_mu);
    if (!prep_fn) {
        pthread_mutex_unlock(&prep_mu);
        return NULL;
    }
    if (prep_nstock > 0)
        r = prep_stock[--prep_nstock];
    if (prep_running) {
        if (prep_nstock == PREP_LOW) /* a parked preparer refills the stock */
            braid_waitlist_wake_one(&prep_idle, 0);
    } else {
        braid__thread_pin_library();
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t pt;
        if (pthread_create(&pt, &attr, prep_main, NULL) == 0)
            prep_running = 1;
        pthread_attr_destroy(&attr);
    }
    pthread_mutex_unlock(&prep_mu);
    return r;
}

/* A fork while the preparer builds a state would give the child locks held
 * by a thread it does not have: prep_mu, or an allocator lock (glibc's
 * malloc has fork handlers; GCC 12's AddressSanitizer allocator has none).
 * braid__thread_before_fork / after_fork call these around fork(), before
 * the atfork handlers (they take locks a build takes too), so the fork
 * waits for the build in hand, a fraction of a millisecond. The child has
 * no preparer: it keeps the stock, and its first take starts one. */
void braid__thread_prep_before_fork(void)
{
    pthread_mutex_lock(&prep_build_mu);
    pthread_mutex_lock(&prep_mu);
}

void braid__thread_prep_after_fork(int child)
{
    if (child) {
        pthread_mutex_init(&prep_mu, NULL);
        pthread_mutex_init(&prep_build_mu, NULL);
        prep_running = 0;
        braid_waitlist_init(&prep_idle, NULL, "idle"); /* the parked preparer is not here */
        return;
    }
    pthread_mutex_unlock(&prep_mu);
    pthread_mutex_unlock(&prep_build_mu);
}
