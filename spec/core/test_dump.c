/* Core tests for live dumps: a parked owner reports and parks again keeping
 * its deadline, a wake-up that arrives while it reports is not lost, and an
 * owner that never answers is left out after the bound. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "clock.h"
#include "dump.h"
#include "error.h"
#include "waiter.h"

#define MS 1000000LL

static atomic_int serving, woken_during;
static atomic_int served;

/* The serve function: reports "parked", after waiting (bounded) for the
 * test to wake the owner meanwhile when it asks to. */
static void serve(braid_dump_slot_t *s)
{
    atomic_fetch_add(&served, 1);
    atomic_store(&serving, 1);
    int64_t until = braid_clock_now() + 2000 * MS;
    while (atomic_load(&woken_during) == 1 && braid_clock_now() < until)
        ; /* the test wakes us now: woken_during becomes 2 */
    atomic_store(&serving, 0);
    braid_dump_post(s, "parked");
}

typedef struct owner {
    int64_t wait_ns; /* park's timeout, < 0: forever */
    int rc;
    int64_t took;
    braid_waiter_t *w;
    atomic_int ready;
    int no_park; /* stays in "C code" for wait_ns instead */
} owner_t;

static void *owner_main(void *p)
{
    owner_t *o = p;
    braid_waiter_t *w = braid_waiter_current();
    o->w = w;
    braid_dump_slot_t *s = braid_dump_attach(o, NULL, w);
    braid_waiter_prepare(w);
    atomic_store(&o->ready, 1);
    int64_t t0 = braid_clock_now();
    if (o->no_park) {
        braid_clock_sleep_until(t0 + o->wait_ns);
        o->rc = 0;
    } else {
        o->rc = braid_waiter_park(w, o->wait_ns < 0 ? BRAID_FOREVER : t0 + o->wait_ns);
    }
    o->took = braid_clock_now() - t0;
    braid_dump_detach(s);
    return NULL;
}

static int count_reports(braid_dump_entry_t *e, size_t n, const char *text)
{
    int k = 0;
    for (size_t i = 0; i < n; i++)
        if (e[i].report && strcmp(e[i].report, text) == 0)
            k++;
    return k;
}

static void start(owner_t *o, pthread_t *t)
{
    atomic_store(&o->ready, 0);
    pthread_create(t, NULL, owner_main, o);
    while (!atomic_load(&o->ready))
        ;
}

static void test_parked_keeps_deadline(void)
{
    braid_dump_set_serve(serve);
    owner_t o = {.wait_ns = 300 * MS};
    pthread_t t;
    start(&o, &t);
    int reports = 0;
    for (int i = 0; i < 10; i++) {
        braid_dump_entry_t *e;
        size_t n;
        CHECK(braid_dump_collect(NULL, NULL, 1000 * MS, &e, &n) == 0);
        reports += count_reports(e, n, "parked");
        braid_dump_entries_free(e, n);
        braid_clock_sleep_until(braid_clock_now() + 5 * MS);
    }
    pthread_join(t, NULL);
    CHECK(reports >= 1);
    CHECK(o.rc == BRAID_ETIMEOUT);
    CHECK(o.took >= 300 * MS);
    CHECK(o.took < 2000 * MS);
}

typedef struct waker {
    owner_t *o;
} waker_t;

/* Wakes the owner while it is serving a report. */
static void *waker_main(void *p)
{
    owner_t *o = ((waker_t *)p)->o;
    while (!atomic_load(&serving))
        ;
    braid_waiter_wake(o->w);
    atomic_store(&woken_during, 2);
    return NULL;
}

static void test_wake_during_report_not_lost(void)
{
    braid_dump_set_serve(serve);
    for (int round = 0; round < 20; round++) {
        owner_t o = {.wait_ns = -1};
        pthread_t t, wt;
        start(&o, &t);
        atomic_store(&woken_during, 1);
        waker_t wk = {&o};
        pthread_create(&wt, NULL, waker_main, &wk);
        int before = atomic_load(&served);
        braid_dump_entry_t *e;
        size_t n;
        CHECK(braid_dump_collect(NULL, NULL, 5000 * MS, &e, &n) == 0);
        braid_dump_entries_free(e, n); /* the owner may be gone already */
        pthread_join(wt, NULL);
        pthread_join(t, NULL); /* hangs if the wake-up was lost */
        CHECK(o.rc == 0);
        CHECK(atomic_load(&served) == before + 1); /* served once */
        atomic_store(&woken_during, 0);
    }
}

static void test_silent_owner_is_bounded(void)
{
    braid_dump_set_serve(serve);
    owner_t o = {.wait_ns = 600 * MS, .no_park = 1};
    pthread_t t;
    start(&o, &t);
    int64_t t0 = braid_clock_now();
    braid_dump_entry_t *e;
    size_t n;
    CHECK(braid_dump_collect(NULL, NULL, 100 * MS, &e, &n) == 0);
    int64_t took = braid_clock_now() - t0;
    CHECK(took >= 100 * MS && took < 550 * MS);
    CHECK(n >= 1);
    CHECK(count_reports(e, n, "parked") == 0);
    braid_dump_entries_free(e, n);
    pthread_join(t, NULL);
    /* a later dump does not see the stale request */
    CHECK(braid_dump_collect(NULL, NULL, 100 * MS, &e, &n) == 0);
    CHECK(n == 0);
    braid_dump_entries_free(e, n);
}

static void test_self_report(void)
{
    braid_dump_slot_t *s = braid_dump_attach(NULL, NULL, braid_waiter_current());
    braid_dump_entry_t *e;
    size_t n;
    int64_t t0 = braid_clock_now();
    CHECK(braid_dump_collect(s, "me", 1000 * MS, &e, &n) == 0);
    CHECK(braid_clock_now() - t0 < 500 * MS); /* no waiting for ourselves */
    CHECK(n == 1 && e[0].report && strcmp(e[0].report, "me") == 0);
    braid_dump_entries_free(e, n);
    braid_dump_detach(s);
}

int main(void)
{
    RUN(test_self_report);
    RUN(test_parked_keeps_deadline);
    RUN(test_wake_during_report_not_lost);
    RUN(test_silent_owner_is_bounded);
    return CHECK_DONE();
}
