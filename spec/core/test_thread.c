/* Core tests for core/thread: start/join, deadlines, errors, names and ids,
 * the registry, cancellation of a blocked thread, joining non-daemons. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "clock.h"
#include "error.h"
#include "sync.h"
#include "thread.h"

#define MS 1000000LL

static atomic_int ran;

static void noop(braid_thread_t *t, void *arg)
{
    (void)t;
    (void)arg;
    atomic_fetch_add(&ran, 1);
}

static void test_start_join(void)
{
    braid_thread_t *t;
    atomic_store(&ran, 0);
    CHECK(braid_thread_new(&t, NULL, 0) == 0);
    char *n = braid_thread_name(t);
    CHECK(n && strncmp(n, "Thread-", 7) == 0);
    free(n);
    CHECK(braid_thread_ident(t) == 0);
    CHECK(braid_thread_native_id(t) == 0);
    CHECK(braid_thread_join(t, BRAID_FOREVER) == BRAID_ESTATE);
    CHECK(!braid_thread_is_alive(t));
    CHECK(braid_thread_start(t, noop, NULL) == 0);
    CHECK(braid_thread_ident(t) != 0);
    CHECK(braid_thread_native_id(t) > 0);
    CHECK(braid_thread_start(t, noop, NULL) == BRAID_ESTATE);
    CHECK(braid_thread_set_daemon(t, 1) == BRAID_ESTATE);
    CHECK(braid_thread_join(t, BRAID_FOREVER) == 0);
    CHECK(braid_thread_join(t, BRAID_FOREVER) == 0);
    CHECK(!braid_thread_is_alive(t));
    CHECK(braid_thread_state(t) == BRAID_THREAD_DONE);
    CHECK(atomic_load(&ran) == 1);
    CHECK(braid_thread_cancel(t) == BRAID_ESTATE);
    braid_object_release((braid_object_t *)t);

    /* many, with unique native ids */
    enum { N = 64 };
    braid_thread_t *ts[N];
    long ids[N];
    for (int i = 0; i < N; i++) {
        braid_thread_new(&ts[i], NULL, 0);
        CHECK(braid_thread_start(ts[i], noop, NULL) == 0);
        ids[i] = braid_thread_native_id(ts[i]);
    }
    for (int i = 0; i < N; i++) {
        CHECK(braid_thread_join(ts[i], BRAID_FOREVER) == 0);
        braid_object_release((braid_object_t *)ts[i]);
    }
    (void)ids; /* ids of finished threads may be reused; live ones differ */
    CHECK(atomic_load(&ran) == N + 1);
}

static braid_event_t *ev;

static void wait_event(braid_thread_t *t, void *arg)
{
    (void)arg;
    int rc = braid_event_wait(ev, BRAID_FOREVER);
    braid_buf_t b;
    braid_buf_init(&b);
    braid_buf_put_int(&b, rc);
    braid_thread_set_result(t, &b, rc < 0, rc < 0 ? "cancelled here" : NULL);
    braid_buf_free(&b);
}

static void test_join_timeout_and_result(void)
{
    braid_event_new(&ev);
    braid_thread_t *t;
    braid_thread_new(&t, "waiter", 0);
    char *n = braid_thread_name(t);
    CHECK(n && strcmp(n, "waiter") == 0);
    free(n);
    braid_thread_start(t, wait_event, NULL);
    int64_t t0 = braid_clock_now();
    CHECK(braid_thread_join(t, t0 + 20 * MS) == BRAID_ETIMEOUT);
    CHECK(braid_clock_now() - t0 >= 18 * MS);
    CHECK(braid_thread_is_alive(t));
    const braid_buf_t *res;
    int failed;
    const char *tb;
    CHECK(braid_thread_result(t, &res, &failed, &tb) == BRAID_ESTATE);

    /* it shows in enumerate while alive */
    braid_thread_t **list;
    size_t nl;
    CHECK(braid_thread_enumerate(&list, &nl) == 0);
    int found = 0;
    for (size_t i = 0; i < nl; i++)
        found += list[i] == t;
    CHECK(found == 1);
    CHECK(nl >= 2 && list[0] == braid_thread_main());
    braid_thread_list_free(list, nl);
    CHECK(braid_thread_active_count() >= 2);

    braid_event_set(ev);
    CHECK(braid_thread_join(t, BRAID_FOREVER) == 0);
    CHECK(braid_thread_result(t, &res, &failed, &tb) == 0);
    CHECK(!failed && tb == NULL && res->len > 0);
    CHECK(braid_thread_enumerate(&list, &nl) == 0);
    for (size_t i = 0; i < nl; i++)
        CHECK(list[i] != t);
    braid_thread_list_free(list, nl);
    braid_object_release((braid_object_t *)t);

    /* cancel while blocked */
    braid_event_clear(ev);
    braid_thread_new(&t, NULL, 0);
    braid_thread_start(t, wait_event, NULL);
    CHECK(braid_thread_cancel(t) == 0);
    CHECK(braid_thread_cancel_requested(t));
    CHECK(braid_thread_join(t, BRAID_FOREVER) == 0);
    CHECK(braid_thread_result(t, &res, &failed, &tb) == 0);
    CHECK(failed && tb && strcmp(tb, "cancelled here") == 0);
    braid_object_release((braid_object_t *)t);
    braid_object_release((braid_object_t *)ev);
}

static void test_current_and_main(void)
{
    braid_thread_t *m = braid_thread_main();
    CHECK(m != NULL);
    CHECK(braid_thread_current() == m);
    CHECK(braid_thread_join(m, BRAID_FOREVER) == BRAID_ESTATE);
    char *n = braid_thread_name(m);
    CHECK(n && strcmp(n, "MainThread") == 0);
    free(n);
    CHECK(braid_thread_is_alive(m));
    CHECK(braid_thread_cancel(m) == BRAID_ESTATE);
    CHECK(braid_thread_set_daemon(m, 1) == BRAID_ESTATE);
}

static atomic_int self_ok;

static void check_self(braid_thread_t *t, void *arg)
{
    (void)arg;
    if (braid_thread_current() == t && braid_thread_join(t, BRAID_FOREVER) == BRAID_ESTATE &&
        braid_waiter_current() == braid_thread_waiter(t))
        atomic_fetch_add(&self_ok, 1);
}

static void test_self(void)
{
    braid_thread_t *t;
    braid_thread_new(&t, NULL, 1);
    CHECK(braid_thread_daemon(t));
    braid_thread_start(t, check_self, NULL);
    braid_thread_join(t, BRAID_FOREVER);
    CHECK(atomic_load(&self_ok) == 1);
    braid_object_release((braid_object_t *)t);
}

static braid_event_t *gate;

static void slow(braid_thread_t *t, void *arg)
{
    (void)t;
    braid_event_wait(gate, braid_clock_now() + 30 * MS);
    atomic_fetch_add(&ran, (int)(intptr_t)arg);
}

static void test_join_nondaemon(void)
{
    braid_event_new(&gate);
    atomic_store(&ran, 0);
    braid_thread_t *ts[6];
    for (int i = 0; i < 6; i++) {
        braid_thread_new(&ts[i], NULL, i % 2);
        braid_thread_start(ts[i], slow, (void *)(intptr_t)(i % 2 ? 100 : 1));
    }
    for (int i = 0; i < 6; i++)
        braid_object_release((braid_object_t *)ts[i]);
    CHECK(braid_thread_join_nondaemon(BRAID_FOREVER) == 0);
    CHECK(atomic_load(&ran) % 100 == 3);
    /* let the daemons finish before the leak check */
    while (braid_thread_active_count() > 1)
        braid_clock_sleep_until(braid_clock_now() + MS);
    braid_object_release((braid_object_t *)gate);
}

int main(void)
{
    RUN(test_start_join);
    RUN(test_join_timeout_and_result);
    RUN(test_current_and_main);
    RUN(test_self);
    RUN(test_join_nondaemon);
    return CHECK_DONE();
}
