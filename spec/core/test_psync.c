/* Core tests for core/psync's lock: the lock word holds the holder's tid,
 * so a holder that dies at any point is known (no window where the lock is
 * taken but its owner unrecorded); a child that exits holding it hands it
 * to the next acquire as BRAID_PLOCK_OWNER_DIED, with a sleeping waiter's
 * flag kept; recursion, try, release by a non-holder, adopt. */
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "clock.h"
#include "error.h"
#include "psync.h"

static braid_plock_t *shared_lock(void)
{
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return m == MAP_FAILED ? NULL : m; /* zeroed: an unlocked lock */
}

static void test_basics(void)
{
    braid_plock_t *l = shared_lock();
    CHECK(l && braid_plock_acquire(l, 0, BRAID_FOREVER, NULL) == 0);
    CHECK(braid_plock_locked(l) && braid_plock_is_mine(l));
    CHECK(braid_plock_try(l, 0) == BRAID_EAGAIN);
    CHECK(braid_plock_acquire(l, 0, braid_clock_now() + 20000000, NULL) == BRAID_ETIMEOUT);
    CHECK(braid_plock_release(l, 0) == 0);
    CHECK(!braid_plock_locked(l) && braid_plock_release(l, 0) == BRAID_ENOTOWNER);
    /* recursive: counted, and only its holder releases */
    CHECK(braid_plock_acquire(l, 1, BRAID_FOREVER, NULL) == 0);
    CHECK(braid_plock_try(l, 1) == 0);
    CHECK(braid_plock_release(l, 1) == 0 && braid_plock_locked(l));
    CHECK(braid_plock_release(l, 1) == 0 && !braid_plock_locked(l));
    munmap(l, 4096);
}

/* A child takes the lock and exits without releasing it, while a thread of
 * the parent sleeps on it: that thread gets it, owner died. */
static braid_plock_t *waited;
static void *wait_main(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)braid_plock_acquire(
        waited, 0, braid_clock_now() + 10000000000LL, NULL);
}

static void test_holder_dies(void)
{
    waited = shared_lock();
    int up[2], down[2]; /* child -> parent, parent -> child */
    CHECK(waited && pipe(up) == 0 && pipe(down) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        char c = 0;
        braid_plock_acquire(waited, 0, BRAID_FOREVER, NULL);
        (void)!write(up[1], &c, 1);
        (void)!read(down[0], &c, 1); /* until the parent says: die holding it */
        _exit(0);
    }
    char c;
    CHECK(read(up[0], &c, 1) == 1);
    CHECK(braid_plock_locked(waited) && !braid_plock_is_mine(waited));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, wait_main, NULL) == 0);
    braid_clock_sleep_until(braid_clock_now() + 30000000); /* let it sleep on the word */
    CHECK(write(down[1], &c, 1) == 1);
    waitpid(pid, NULL, 0);
    void *rc;
    pthread_join(t, &rc);
    CHECK((intptr_t)rc == BRAID_PLOCK_OWNER_DIED);
    CHECK(braid_plock_locked(waited));
    /* the dead holder's lock is the waiter's now: released, it is free */
    CHECK(braid_plock_release(waited, 0) == 0 && !braid_plock_locked(waited));
    CHECK(braid_plock_try(waited, 0) == 0);
    close(up[0]);
    close(up[1]);
    close(down[0]);
    close(down[1]);
    munmap(waited, 4096);
}

/* adopt: a lock taken by one thread is made another's (a queue's feeder
 * finishing a message), and is then that thread's to release (RLock). */
static braid_plock_t *adopted;
static void *adopt_main(void *arg)
{
    (void)arg;
    braid_plock_adopt(adopted);
    int mine = braid_plock_is_mine(adopted);
    return (void *)(intptr_t)(mine && braid_plock_release(adopted, 1) == 0);
}

static void test_adopt(void)
{
    adopted = shared_lock();
    CHECK(adopted && braid_plock_acquire(adopted, 1, BRAID_FOREVER, NULL) == 0);
    pthread_t t;
    void *ok;
    CHECK(pthread_create(&t, NULL, adopt_main, NULL) == 0);
    pthread_join(t, &ok);
    CHECK((intptr_t)ok == 1);
    CHECK(!braid_plock_locked(adopted));
    munmap(adopted, 4096);
}

int main(void)
{
    RUN(test_basics);
    RUN(test_holder_dies);
    RUN(test_adopt);
    return CHECK_DONE();
}
