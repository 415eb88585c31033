/* Object labels and wait records: a name set from one thread is read from
 * another; a thread blocked on a lock shows it in its waiter's record. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "../../core/clock.h"
#include "../../core/error.h"
#include "../../core/object.h"
#include "../../core/sync.h"
#include "../../core/waiter.h"
#include "check.h"

static void test_label(void)
{
    braid_lock_t *l;
    CHECK(braid_lock_new(&l) == 0);
    braid_object_t *o = (braid_object_t *)l;
    char buf[64], want[64];
    snprintf(want, sizeof want, "Lock#%llu", (unsigned long long)o->id);
    CHECK(braid_object_name(o) == NULL);
    CHECK(strcmp(braid_object_label(o, buf, sizeof buf), want) == 0);
    CHECK(strcmp(braid_object_kind(o), "Lock") == 0);
    CHECK(braid_object_set_name(o, "db") == 0);
    CHECK(strcmp(braid_object_label(o, buf, sizeof buf), "db") == 0);
    CHECK(braid_object_set_name(o, "db2") == 0);
    CHECK(strcmp(braid_object_name(o), "db2") == 0);
    CHECK(strcmp(braid_object_label(o, buf, 3), "db") == 0); /* truncated */
    CHECK(braid_object_set_name(o, NULL) == 0);
    CHECK(braid_object_name(o) == NULL);
    braid_object_release(o);
}

/* Renames from one thread while another reads labels. */
static atomic_int stop;
static void *reader(void *arg)
{
    braid_object_t *o = arg;
    char buf[64];
    long n = 0;
    while (!atomic_load(&stop)) {
        braid_object_label(o, buf, sizeof buf);
        n += buf[0] == 'a' || buf[0] == 'b' || buf[0] == 'L';
    }
    return (void *)n;
}

static void test_label_threads(void)
{
    braid_lock_t *l;
    CHECK(braid_lock_new(&l) == 0);
    braid_object_t *o = (braid_object_t *)l;
    pthread_t t;
    atomic_store(&stop, 0);
    CHECK(pthread_create(&t, NULL, reader, o) == 0);
    for (int i = 0; i < 2000; i++)
        braid_object_set_name(o, i & 1 ? "alpha" : "beta");
    atomic_store(&stop, 1);
    void *r;
    pthread_join(t, &r);
    CHECK(strcmp(braid_object_name(o), "alpha") == 0); /* the last, i = 1999 */
    braid_object_release(o);
}

static braid_lock_t *held;
static _Atomic(braid_waiter_t *) blocked_w;
static atomic_int got_rc = -100;

static void *blocker(void *arg)
{
    (void)arg;
    atomic_store(&blocked_w, braid_waiter_current());
    atomic_store(&got_rc, braid_lock_acquire(held, braid_clock_now() + 5000000000LL));
    braid_lock_release(held);
    return NULL;
}

static void test_wait_record(void)
{
    CHECK(braid_lock_new(&held) == 0);
    braid_object_set_name((braid_object_t *)held, "db");
    CHECK(braid_lock_acquire(held, BRAID_FOREVER) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, blocker, NULL) == 0);
    braid_waiter_t *w;
    while (!(w = atomic_load(&blocked_w)))
        sched_yield();
    braid_wait_record_t rec;
    int64_t give_up = braid_clock_now() + 10000000000LL;
    while (!braid_waiter_record(w, &rec) && braid_clock_now() < give_up)
        sched_yield();
    CHECK(rec.op && strcmp(rec.op, "acquire") == 0);
    CHECK(rec.on == (braid_object_t *)held);
    CHECK(rec.deadline != BRAID_FOREVER);
    CHECK(rec.since > 0 && rec.since <= braid_clock_now());
    braid_lock_release(held);
    pthread_join(t, NULL);
    CHECK(atomic_load(&got_rc) == 0);
    braid_object_release((braid_object_t *)held);

    /* our own waiter: not blocked */
    CHECK(braid_waiter_record(braid_waiter_current(), &rec) == 0 && rec.op == NULL);
}

int main(void)
{
    RUN(test_label);
    RUN(test_label_threads);
    RUN(test_wait_record);
    return CHECK_DONE();
}
