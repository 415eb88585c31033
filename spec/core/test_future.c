/* Core tests for braid_future: state rules, waits with timeouts and
 * cancellation, inbox deliveries, wait sets in completion order, races. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "values.h"
#include "clock.h"
#include "codec.h"
#include "error.h"
#include "future.h"
#include "waiter.h"

static int64_t ms(int n)
{
    return braid_clock_now() + (int64_t)n * 1000000;
}

static void test_states(void)
{
    braid_future_t *f;
    CHECK(braid_future_new(&f) == 0);
    CHECK(braid_future_state(f) == BRAID_FUTURE_PENDING);
    CHECK(!braid_future_done(f));
    CHECK(braid_future_outcome(f, NULL, NULL, NULL, NULL) == BRAID_ESTATE);
    CHECK(braid_future_set_running(f) == 1);
    CHECK(braid_future_set_running(f) == BRAID_ESTATE);
    CHECK(braid_future_cancel(f) == 0); /* running: cannot cancel */
    braid_buf_t b = enc_int(42);
    CHECK(braid_future_set_outcome(f, &b, 0) == 0);
    CHECK(b.len == 0);
    CHECK(braid_future_done(f));
    braid_buf_t b2 = enc_int(7);
    CHECK(braid_future_set_outcome(f, &b2, 0) == BRAID_ESTATE); /* first kept */
    CHECK(b2.len > 0);
    braid_buf_free(&b2);
    CHECK(braid_future_set_error(f, BRAID_EBROKEN, "x") == BRAID_ESTATE);
    const braid_buf_t *out;
    int failed = -1, code = -1;
    const char *msg = "unset";
    CHECK(braid_future_outcome(f, &out, &failed, &code, &msg) == 0);
    CHECK(dec_int(out) == 42 && failed == 0 && code == 0 && msg == NULL);
    CHECK(braid_future_cancel(f) == 0); /* finished */
    braid_future_release(f);

    CHECK(braid_future_new(&f) == 0);
    CHECK(braid_future_cancel(f) == 1);
    CHECK(braid_future_cancel(f) == 1);
    CHECK(braid_future_state(f) == BRAID_FUTURE_CANCELLED);
    CHECK(braid_future_set_running(f) == 0);
    b = enc_int(1);
    CHECK(braid_future_set_outcome(f, &b, 0) == BRAID_ESTATE);
    braid_buf_free(&b);
    CHECK(braid_future_outcome(f, NULL, &failed, &code, &msg) == 0);
    CHECK(code == BRAID_ECANCELLED && msg == NULL);
    braid_future_release(f);

    CHECK(braid_future_new(&f) == 0);
    CHECK(braid_future_set_error(f, BRAID_EBROKEN, "pool broke") == 0);
    CHECK(braid_future_outcome(f, NULL, &failed, &code, &msg) == 0);
    CHECK(failed == 1 && code == BRAID_EBROKEN && strcmp(msg, "pool broke") == 0);
    braid_future_release(f);
}

static void test_wait_timeout(void)
{
    braid_future_t *f;
    CHECK(braid_future_new(&f) == 0);
    CHECK(braid_future_wait(f, 0) == BRAID_ETIMEOUT);
    int64_t t0 = braid_clock_now();
    CHECK(braid_future_wait(f, ms(100)) == BRAID_ETIMEOUT);
    int64_t el = braid_clock_now() - t0;
    CHECK(el >= 60000000 && el < 1000000000);
    braid_future_release(f);
}

typedef struct setter {
    braid_future_t *f;
    braid_future_t *go; /* waited on before acting */
    int cancel;
} setter_t;

static void *setter_main(void *p)
{
    setter_t *s = p;
    if (s->go)
        braid_future_wait(s->go, BRAID_FOREVER);
    if (s->cancel) {
        braid_future_cancel(s->f);
    } else {
        braid_buf_t b = enc_int(99);
        braid_future_set_outcome(s->f, &b, 0);
        braid_buf_free(&b);
    }
    return NULL;
}

static void test_wait_wakes(void)
{
    for (int cancel = 0; cancel < 2; cancel++) {
        for (int rep = 0; rep < 200; rep++) {
            braid_future_t *f;
            CHECK(braid_future_new(&f) == 0);
            setter_t s = {f, NULL, cancel};
            pthread_t th;
            pthread_create(&th, NULL, setter_main, &s);
            CHECK(braid_future_wait(f, ms(10000)) == 0);
            CHECK(braid_future_state(f) ==
                  (cancel ? BRAID_FUTURE_CANCELLED : BRAID_FUTURE_FINISHED));
            pthread_join(th, NULL);
            braid_future_release(f);
        }
    }
}

static void *canceller_main(void *p)
{
    braid_waiter_t *w = p;
    braid_clock_sleep_until(ms(30));
    braid_waiter_cancel(w);
    return NULL;
}

static void test_wait_cancelled(void)
{
    braid_future_t *f;
    CHECK(braid_future_new(&f) == 0);
    pthread_t th;
    pthread_create(&th, NULL, canceller_main, braid_waiter_current());
    CHECK(braid_future_wait(f, ms(10000)) == BRAID_ECANCELLED);
    pthread_join(th, NULL);
    CHECK(braid_waiter_take_cancel(braid_waiter_current()) == 1);
    braid_future_release(f);
}

static void test_callbacks(void)
{
    braid_inbox_t *ib;
    CHECK(braid_inbox_new(&ib) == 0);
    braid_future_t *f;
    CHECK(braid_future_new(&f) == 0);
    CHECK(braid_future_add_callback(f, ib, 1) == 0);
    CHECK(braid_future_add_callback(f, ib, 2) == 0);
    CHECK(!braid_inbox_pending(ib));
    braid_buf_t b = enc_int(5);
    CHECK(braid_future_set_outcome(f, &b, 0) == 0);
    CHECK(braid_inbox_pending(ib));
    braid_future_t *g;
    uint64_t id;
    CHECK(braid_inbox_take(ib, &g, &id) == 1 && g == f && id == 1);
    braid_future_release(g);
    CHECK(braid_inbox_take(ib, &g, &id) == 1 && g == f && id == 2);
    braid_future_release(g);
    CHECK(braid_inbox_take(ib, &g, &id) == 0);
    CHECK(braid_future_add_callback(f, ib, 3) == 1); /* done: run at once */
    braid_future_release(f);

    /* a closed inbox drops deliveries; futures are not leaked */
    long before = braid_object_count();
    CHECK(braid_future_new(&f) == 0);
    CHECK(braid_future_add_callback(f, ib, 4) == 0);
    braid_inbox_close(ib);
    CHECK(braid_future_cancel(f) == 1);
    CHECK(!braid_inbox_pending(ib));
    braid_future_release(f);
    braid_inbox_release(ib);
    CHECK(braid_object_count() == before);

    /* a future dropped while callbacks are registered frees the inbox ref */
    CHECK(braid_inbox_new(&ib) == 0);
    CHECK(braid_future_new(&f) == 0);
    CHECK(braid_future_add_callback(f, ib, 9) == 0);
    braid_future_release(f);
    braid_inbox_release(ib);
}

static void test_waitset(void)
{
    enum { N = 4 };
    braid_future_t *fs[N + 1];
    for (int i = 0; i < N; i++)
        CHECK(braid_future_new(&fs[i]) == 0);
    fs[N] = fs[1]; /* a duplicate: reported as its own index */
    braid_buf_t b = enc_int(1);
    braid_future_set_outcome(fs[2], &b, 0);
    braid_buf_free(&b);
    braid_waitset_t *ws;
    CHECK(braid_waitset_new(&ws, fs, N + 1, NULL) == 0);
    size_t idx = 99;
    CHECK(braid_waitset_next(ws, 0, &idx) == 0 && idx == 2);
    CHECK(braid_waitset_next(ws, 0, &idx) == BRAID_ETIMEOUT);
    CHECK(braid_waitset_remaining(ws) == N);
    braid_future_cancel(fs[3]);
    CHECK(braid_waitset_next(ws, 0, &idx) == 0 && idx == 3);
    setter_t s = {fs[1], NULL, 0};
    pthread_t th;
    pthread_create(&th, NULL, setter_main, &s);
    size_t a, c;
    CHECK(braid_waitset_next(ws, ms(10000), &a) == 0);
    CHECK(braid_waitset_next(ws, ms(10000), &c) == 0);
    CHECK((a == 1 && c == N) || (a == N && c == 1));
    pthread_join(th, NULL);
    int64_t t0 = braid_clock_now();
    CHECK(braid_waitset_next(ws, ms(50), &idx) == BRAID_ETIMEOUT);
    CHECK(braid_clock_now() - t0 >= 30000000);
    braid_future_cancel(fs[0]);
    CHECK(braid_waitset_next(ws, 0, &idx) == 0 && idx == 0);
    CHECK(braid_waitset_next(ws, 0, &idx) == BRAID_EEMPTY);
    braid_waitset_free(ws);
    for (int i = 0; i < N; i++)
        braid_future_release(fs[i]);
}

static void test_waitset_inbox(void)
{
    braid_inbox_t *ib;
    CHECK(braid_inbox_new(&ib) == 0);
    braid_future_t *f, *g;
    CHECK(braid_future_new(&f) == 0);
    CHECK(braid_future_new(&g) == 0);
    CHECK(braid_future_add_callback(g, ib, 1) == 0);
    braid_waitset_t *ws;
    CHECK(braid_waitset_new(&ws, &f, 1, ib) == 0);
    setter_t s = {g, NULL, 1};
    pthread_t th;
    pthread_create(&th, NULL, setter_main, &s);
    size_t idx;
    CHECK(braid_waitset_next(ws, ms(10000), &idx) == BRAID_EAGAIN);
    pthread_join(th, NULL);
    braid_future_t *h;
    uint64_t id;
    CHECK(braid_inbox_take(ib, &h, &id) == 1 && h == g && id == 1);
    braid_future_release(h);
    CHECK(braid_waitset_next(ws, 0, &idx) == BRAID_ETIMEOUT);
    braid_waitset_free(ws);
    braid_future_release(f);
    braid_future_release(g);
    braid_inbox_release(ib);
}

/* Many threads race set/cancel/wait/waitset on the same futures. */
typedef struct racer {
    braid_future_t **fs;
    int n;
    int kind;
    braid_future_t *go;
    int seen;
} racer_t;

static void *racer_main(void *p)
{
    racer_t *r = p;
    braid_future_wait(r->go, BRAID_FOREVER);
    for (int i = 0; i < r->n; i++) {
        if (r->kind == 0) {
            braid_buf_t b = enc_int(i);
            if (braid_future_set_running(r->fs[i]) == 1)
                braid_future_set_outcome(r->fs[i], &b, 0);
            braid_buf_free(&b);
        } else if (r->kind == 1) {
            braid_future_cancel(r->fs[i]);
        } else if (r->kind == 2) {
            if (braid_future_wait(r->fs[i], ms(10000)) == 0)
                r->seen++;
        }
    }
    if (r->kind == 3) {
        braid_waitset_t *ws;
        if (braid_waitset_new(&ws, r->fs, (size_t)r->n, NULL) == 0) {
            size_t idx;
            while (braid_waitset_next(ws, ms(10000), &idx) == 0)
                r->seen++;
            braid_waitset_free(ws);
        }
    }
    return NULL;
}

/* An object enters the id registry only once encoded: a new future is
 * not found by id, one written into a buffer is, until it dies; and
 * braid_object_count counts it either way. */
static void test_registry(void)
{
    long before = braid_object_count();
    braid_future_t *f;
    CHECK(braid_future_new(&f) == 0);
    CHECK(braid_object_count() == before + 1);
    uint64_t id = ((braid_object_t *)f)->id;
    CHECK(id != 0);
    CHECK(braid_object_lookup(id) == NULL);
    braid_buf_t b;
    braid_buf_init(&b);
    braid_buf_put_object(&b, (braid_object_t *)f);
    braid_buf_put_object(&b, (braid_object_t *)f); /* twice: registered once */
    CHECK(!b.err);
    braid_object_t *o = braid_object_lookup(id);
    CHECK(o == (braid_object_t *)f);
    braid_object_release(o);
    braid_buf_free(&b);
    CHECK(braid_object_lookup(id) == (braid_object_t *)f);
    braid_future_release(f); /* the lookup's reference */
    braid_future_release(f);
    CHECK(braid_object_lookup(id) == NULL);
    CHECK(braid_object_count() == before);
    braid_future_t *g;
    CHECK(braid_future_new(&g) == 0); /* ids are never reused */
    CHECK(((braid_object_t *)g)->id > id);
    braid_future_release(g);
}

static void test_races(void)
{
    enum { N = 2000 };
    braid_future_t **fs = malloc(N * sizeof *fs);
    for (int rep = 0; rep < 5; rep++) {
        braid_inbox_t *ib;
        braid_inbox_new(&ib);
        for (int i = 0; i < N; i++) {
            braid_future_new(&fs[i]);
            braid_future_add_callback(fs[i], ib, (uint64_t)i);
        }
        braid_future_t *go;
        braid_future_new(&go);
        racer_t rs[4];
        pthread_t th[4];
        for (int k = 0; k < 4; k++) {
            rs[k] = (racer_t){fs, N, k, go, 0};
            pthread_create(&th[k], NULL, racer_main, &rs[k]);
        }
        braid_future_cancel(go);
        for (int k = 0; k < 4; k++)
            pthread_join(th[k], NULL);
        CHECK(rs[2].seen == N);
        CHECK(rs[3].seen == N);
        int delivered = 0;
        braid_future_t *f;
        uint64_t id;
        while (braid_inbox_take(ib, &f, &id)) {
            delivered++;
            braid_future_release(f);
        }
        CHECK(delivered == N);
        for (int i = 0; i < N; i++)
            braid_future_release(fs[i]);
        braid_future_release(go);
        braid_inbox_release(ib);
    }
    free(fs);
}

int main(void)
{
    long before = braid_object_count();
    RUN(test_states);
    RUN(test_wait_timeout);
    RUN(test_wait_wakes);
    RUN(test_wait_cancelled);
    RUN(test_callbacks);
    RUN(test_waitset);
    RUN(test_waitset_inbox);
    RUN(test_registry);
    RUN(test_races);
    CHECK(braid_object_count() == before);
    return CHECK_DONE();
}
