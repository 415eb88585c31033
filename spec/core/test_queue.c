/* Core tests for braid_queue: orders, Full/Empty/ShutDown, task_done/join,
 * cancellation, and many producers x many consumers losing nothing. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "values.h"
#include "clock.h"
#include "codec.h"
#include "error.h"
#include "queue.h"
#include "waiter.h"

static int put_int(braid_queue_t *q, int64_t v, int64_t deadline)
{
    braid_buf_t b = enc_int(v);
    int rc = braid_queue_put(q, &b, deadline);
    if (rc == 0)
        CHECK(b.len == 0 && b.nobjs == 0);
    braid_buf_free(&b);
    return rc;
}

/* Returns the item or a negative sentinel carrying the error code. */
static int64_t get_int(braid_queue_t *q, int64_t deadline, int *rc)
{
    braid_buf_t b;
    braid_buf_init(&b);
    *rc = braid_queue_get(q, &b, deadline);
    int64_t v = *rc == 0 ? dec_int(&b) : -1;
    braid_buf_free(&b);
    return v;
}

static void test_orders(void)
{
    const int64_t in[] = {111, 333, 222};
    const int64_t want[3][3] = {{111, 333, 222}, {222, 333, 111}, {111, 222, 333}};
    for (int k = 0; k < 3; k++) {
        braid_queue_t *q;
        CHECK(braid_queue_new((braid_queue_kind_t)k, 0, &q) == 0);
        for (int i = 0; i < 3; i++)
            CHECK(put_int(q, in[i], BRAID_FOREVER) == 0);
        CHECK(braid_queue_qsize(q) == 3);
        for (int i = 0; i < 3; i++) {
            int rc;
            CHECK(get_int(q, BRAID_FOREVER, &rc) == want[k][i]);
            CHECK(rc == 0);
        }
        CHECK(braid_queue_empty(q));
        braid_queue_release(q);
    }
}

/* {key, id=...}: compares by key only (sequence part), so ties keep FIFO. */
static braid_buf_t enc_pair(int64_t key, int64_t id)
{
    braid_buf_t b;
    braid_buf_init(&b);
    braid_buf_put_u8(&b, BRAID_T_TABLE);
    braid_buf_put_varint(&b, 1);
    braid_buf_put_varint(&b, 1);
    braid_buf_put_u8(&b, 0);
    braid_buf_put_u8(&b, BRAID_T_INT);
    braid_buf_put_int(&b, key);
    braid_buf_put_u8(&b, BRAID_T_STR);
    braid_buf_put_str(&b, "id", 2);
    braid_buf_put_u8(&b, BRAID_T_INT);
    braid_buf_put_int(&b, id);
    return b;
}

static int64_t dec_pair_id(braid_buf_t *b)
{
    braid_reader_t r;
    braid_reader_init(&r, b->data, b->len);
    braid_reader_u8(&r);
    braid_reader_varint(&r);
    braid_reader_varint(&r);
    braid_reader_u8(&r);
    braid_reader_u8(&r);
    braid_reader_int(&r);
    size_t n;
    braid_reader_u8(&r);
    braid_reader_str(&r, &n);
    braid_reader_u8(&r);
    return braid_reader_int(&r);
}

static void test_priority_ties_and_types(void)
{
    braid_queue_t *q;
    CHECK(braid_queue_new(BRAID_QUEUE_PRIORITY, 0, &q) == 0);
    /* 200 items with keys 0..4 in scrambled order; ids increase */
    for (int i = 0; i < 200; i++) {
        braid_buf_t b = enc_pair((i * 7) % 5, i);
        CHECK(braid_queue_put(q, &b, BRAID_FOREVER) == 0);
        braid_buf_free(&b);
    }
    int64_t lastkey = -1, lastid = -1;
    for (int i = 0; i < 200; i++) {
        braid_buf_t b;
        braid_buf_init(&b);
        CHECK(braid_queue_get(q, &b, BRAID_QUEUE_NOWAIT) == 0);
        braid_reader_t r;
        braid_reader_init(&r, b.data, b.len);
        int64_t id = dec_pair_id(&b);
        int64_t key = (id * 7) % 5;
        CHECK(key >= lastkey);
        if (key == lastkey)
            CHECK(id > lastid);
        lastkey = key;
        lastid = id;
        braid_buf_free(&b);
    }
    /* an int and a string are not comparable: the put fails, nothing stored */
    CHECK(put_int(q, 1, BRAID_FOREVER) == 0);
    braid_buf_t s;
    braid_buf_init(&s);
    braid_buf_put_u8(&s, BRAID_T_STR);
    braid_buf_put_str(&s, "x", 1);
    CHECK(braid_queue_put(q, &s, BRAID_FOREVER) == BRAID_ETYPE);
    CHECK(s.len > 0);
    braid_buf_free(&s);
    CHECK(braid_queue_qsize(q) == 1);
    CHECK(braid_queue_unfinished(q) == 201);
    braid_queue_release(q);
}

static void test_full_empty(void)
{
    braid_queue_t *q;
    int rc;
    CHECK(braid_queue_new(BRAID_QUEUE_FIFO, 2, &q) == 0);
    CHECK(get_int(q, BRAID_QUEUE_NOWAIT, &rc) == -1 && rc == BRAID_EEMPTY);
    int64_t t0 = braid_clock_now();
    CHECK(get_int(q, braid_clock_deadline(0.05), &rc) == -1 && rc == BRAID_EEMPTY);
    CHECK(braid_clock_now() - t0 >= 30000000);
    CHECK(put_int(q, 1, BRAID_QUEUE_NOWAIT) == 0);
    CHECK(put_int(q, 2, BRAID_QUEUE_NOWAIT) == 0);
    CHECK(braid_queue_full(q));
    CHECK(put_int(q, 3, BRAID_QUEUE_NOWAIT) == BRAID_EFULL);
    t0 = braid_clock_now();
    CHECK(put_int(q, 3, braid_clock_deadline(0.05)) == BRAID_EFULL);
    CHECK(braid_clock_now() - t0 >= 30000000);
    CHECK(braid_queue_qsize(q) == 2);
    braid_queue_release(q);
}

typedef struct {
    braid_queue_t *q;
    int64_t value;
    int rc;
    braid_waiter_t *waiter;
    atomic_int started;
    atomic_int release; /* getter_held: may exit (its waiter dies with it) */
} worker_t;

static void *getter(void *p)
{
    worker_t *w = p;
    w->waiter = braid_waiter_current();
    atomic_store(&w->started, 1);
    w->value = get_int(w->q, BRAID_FOREVER, &w->rc);
    return NULL;
}

/* A getter that stays alive until released: its waiter is freed at
 * thread exit, so whoever cancels it must be done with it first. */
static void *getter_held(void *p)
{
    worker_t *w = p;
    getter(p);
    while (!atomic_load(&w->release))
        ;
    return NULL;
}

static void *putter(void *p)
{
    worker_t *w = p;
    w->waiter = braid_waiter_current();
    atomic_store(&w->started, 1);
    w->rc = put_int(w->q, w->value, BRAID_FOREVER);
    return NULL;
}

static void wait_started(worker_t *w)
{
    while (!atomic_load(&w->started))
        ;
}

static void test_blocking_handoff(void)
{
    braid_queue_t *q;
    CHECK(braid_queue_new(BRAID_QUEUE_FIFO, 1, &q) == 0);
    worker_t g = {.q = q};
    pthread_t t;
    pthread_create(&t, NULL, getter, &g);
    wait_started(&g);
    CHECK(put_int(q, 42, BRAID_FOREVER) == 0);
    pthread_join(t, NULL);
    CHECK(g.rc == 0 && g.value == 42);

    CHECK(put_int(q, 1, BRAID_FOREVER) == 0);
    worker_t p = {.q = q, .value = 2};
    pthread_create(&t, NULL, putter, &p);
    wait_started(&p);
    int rc;
    CHECK(get_int(q, BRAID_FOREVER, &rc) == 1);
    pthread_join(t, NULL);
    CHECK(p.rc == 0);
    CHECK(get_int(q, BRAID_FOREVER, &rc) == 2);
    braid_queue_release(q);
}

static void test_cancel(void)
{
    braid_queue_t *q;
    CHECK(braid_queue_new(BRAID_QUEUE_FIFO, 0, &q) == 0);
    worker_t g = {.q = q};
    pthread_t t;
    pthread_create(&t, NULL, getter_held, &g);
    wait_started(&g);
    braid_waiter_cancel(g.waiter);
    atomic_store(&g.release, 1);
    pthread_join(t, NULL);
    CHECK(g.rc == BRAID_ECANCELLED);
    /* the queue still works and nothing was consumed */
    CHECK(put_int(q, 5, BRAID_FOREVER) == 0);
    CHECK(braid_queue_qsize(q) == 1);
    braid_queue_release(q);
}

static void test_task_done_join(void)
{
    braid_queue_t *q;
    int rc;
    CHECK(braid_queue_new(BRAID_QUEUE_FIFO, 0, &q) == 0);
    CHECK(braid_queue_task_done(q) == BRAID_EINVAL);
    CHECK(braid_queue_join(q, BRAID_FOREVER) == 0);
    for (int i = 0; i < 3; i++)
        CHECK(put_int(q, i, BRAID_FOREVER) == 0);
    CHECK(braid_queue_join(q, BRAID_QUEUE_NOWAIT) == BRAID_ETIMEOUT);
    CHECK(braid_queue_join(q, braid_clock_deadline(0.01)) == BRAID_ETIMEOUT);
    for (int i = 0; i < 3; i++) {
        get_int(q, BRAID_FOREVER, &rc);
        CHECK(braid_queue_task_done(q) == 0);
    }
    CHECK(braid_queue_task_done(q) == BRAID_EINVAL);
    CHECK(braid_queue_join(q, BRAID_FOREVER) == 0);
    CHECK(braid_queue_join(q, BRAID_FOREVER) == 0);
    braid_queue_release(q);
}

static void test_shutdown(void)
{
    braid_queue_t *q;
    int rc;
    /* plain shutdown: puts fail, gets drain then fail */
    CHECK(braid_queue_new(BRAID_QUEUE_FIFO, 0, &q) == 0);
    CHECK(put_int(q, 1, BRAID_FOREVER) == 0);
    CHECK(put_int(q, 2, BRAID_FOREVER) == 0);
    braid_queue_shutdown(q, 0);
    CHECK(put_int(q, 3, BRAID_FOREVER) == BRAID_ESHUTDOWN);
    CHECK(get_int(q, BRAID_FOREVER, &rc) == 1);
    CHECK(get_int(q, BRAID_QUEUE_NOWAIT, &rc) == 2);
    CHECK(get_int(q, BRAID_FOREVER, &rc) == -1 && rc == BRAID_ESHUTDOWN);
    CHECK(braid_queue_task_done(q) == 0);
    CHECK(braid_queue_task_done(q) == 0);
    CHECK(braid_queue_join(q, BRAID_FOREVER) == 0);
    braid_queue_release(q);

    /* immediate: items dropped, unfinished drops, join returns */
    CHECK(braid_queue_new(BRAID_QUEUE_LIFO, 0, &q) == 0);
    for (int i = 0; i < 5; i++)
        CHECK(put_int(q, i, BRAID_FOREVER) == 0);
    get_int(q, BRAID_FOREVER, &rc);
    braid_queue_shutdown(q, 1);
    CHECK(braid_queue_qsize(q) == 0);
    CHECK(braid_queue_unfinished(q) == 1);
    CHECK(get_int(q, BRAID_FOREVER, &rc) == -1 && rc == BRAID_ESHUTDOWN);
    CHECK(braid_queue_task_done(q) == 0);
    CHECK(braid_queue_join(q, BRAID_FOREVER) == 0);
    braid_queue_shutdown(q, 0); /* immediate -> plain is allowed */
    braid_queue_release(q);

    /* blocked getters and putters are released with ShutDown */
    CHECK(braid_queue_new(BRAID_QUEUE_FIFO, 1, &q) == 0);
    worker_t g[3] = {{.q = q}, {.q = q}, {.q = q}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, getter, &g[i]);
    for (int i = 0; i < 3; i++)
        wait_started(&g[i]);
    braid_queue_shutdown(q, 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        CHECK(g[i].rc == BRAID_ESHUTDOWN);
    }
    braid_queue_release(q);

    CHECK(braid_queue_new(BRAID_QUEUE_FIFO, 1, &q) == 0);
    CHECK(put_int(q, 0, BRAID_FOREVER) == 0);
    worker_t p = {.q = q, .value = 1};
    pthread_create(&t[0], NULL, putter, &p);
    wait_started(&p);
    braid_queue_shutdown(q, 0);
    pthread_join(t[0], NULL);
    CHECK(p.rc == BRAID_ESHUTDOWN);
    braid_queue_release(q);
}

static void test_object_refs_dropped(void)
{
    braid_queue_t *q, *inner;
    long before = braid_object_count();
    CHECK(braid_queue_new(BRAID_QUEUE_FIFO, 0, &q) == 0);
    CHECK(braid_queue_new(BRAID_QUEUE_FIFO, 0, &inner) == 0);
    braid_buf_t b;
    braid_buf_init(&b);
    braid_buf_put_object(&b, (braid_object_t *)inner);
    braid_queue_release(inner); /* the buffer keeps it alive */
    CHECK(braid_queue_put(q, &b, BRAID_FOREVER) == 0);
    CHECK(braid_object_count() == before + 2);
    braid_queue_shutdown(q, 1);
    CHECK(braid_object_count() == before + 1);
    braid_queue_release(q);
    CHECK(braid_object_count() == before);
}

#define NPROD 8
#define NCONS 8
#define PER_PRODUCER 100000

typedef struct {
    braid_queue_t *q;
    int id;
    long got;
    int64_t last[NPROD];
    int bad;
} mpmc_t;

static void *mpmc_producer(void *p)
{
    mpmc_t *m = p;
    for (int64_t i = 0; i < PER_PRODUCER; i++)
        if (put_int(m->q, (int64_t)m->id * PER_PRODUCER + i, BRAID_FOREVER) != 0)
            m->bad++;
    return NULL;
}

static void *mpmc_consumer(void *p)
{
    mpmc_t *m = p;
    for (int i = 0; i < NPROD; i++)
        m->last[i] = -1;
    for (;;) {
        int rc;
        int64_t v = get_int(m->q, BRAID_FOREVER, &rc);
        if (rc == BRAID_ESHUTDOWN)
            break;
        if (rc != 0 || v < 0) {
            m->bad++;
            break;
        }
        int prod = (int)(v / PER_PRODUCER);
        int64_t seq = v % PER_PRODUCER;
        if (prod >= NPROD || seq <= m->last[prod])
            m->bad++; /* each consumer sees each producer's items in order */
        else
            m->last[prod] = seq;
        m->got++;
        braid_queue_task_done(m->q);
    }
    return NULL;
}

static void run_mpmc(long maxsize)
{
    braid_queue_t *q;
    CHECK(braid_queue_new(BRAID_QUEUE_FIFO, maxsize, &q) == 0);
    mpmc_t prod[NPROD], cons[NCONS];
    pthread_t tp[NPROD], tc[NCONS];
    for (int i = 0; i < NCONS; i++) {
        cons[i] = (mpmc_t){.q = q, .id = i};
        pthread_create(&tc[i], NULL, mpmc_consumer, &cons[i]);
    }
    for (int i = 0; i < NPROD; i++) {
        prod[i] = (mpmc_t){.q = q, .id = i};
        pthread_create(&tp[i], NULL, mpmc_producer, &prod[i]);
    }
    for (int i = 0; i < NPROD; i++) {
        pthread_join(tp[i], NULL);
        CHECK(prod[i].bad == 0);
    }
    CHECK(braid_queue_join(q, BRAID_FOREVER) == 0);
    braid_queue_shutdown(q, 0);
    long total = 0;
    for (int i = 0; i < NCONS; i++) {
        pthread_join(tc[i], NULL);
        CHECK(cons[i].bad == 0);
        total += cons[i].got;
    }
    CHECK(total == (long)NPROD * PER_PRODUCER);
    CHECK(braid_queue_qsize(q) == 0);
    braid_queue_release(q);
}

static void test_mpmc_unbounded(void)
{
    run_mpmc(0);
}

static void test_mpmc_bounded(void)
{
    run_mpmc(64);
}

static void test_simple(void)
{
    braid_queue_t *q;
    int rc;
    CHECK(braid_queue_new(BRAID_QUEUE_SIMPLE, 1, &q) == 0);
    for (int i = 0; i < 100; i++)
        CHECK(put_int(q, i, BRAID_QUEUE_NOWAIT) == 0); /* never full */
    CHECK(braid_queue_qsize(q) == 100);
    CHECK(!braid_queue_full(q));
    for (int i = 0; i < 100; i++)
        CHECK(get_int(q, BRAID_QUEUE_NOWAIT, &rc) == i);
    CHECK(braid_queue_task_done(q) == BRAID_EINVAL);
    CHECK(braid_queue_kind_of((braid_object_t *)q) == BRAID_QUEUE_SIMPLE);
    braid_queue_release(q);
}

/* Strings on both sides of the entry's inline limit (15 encoded bytes: a
 * 13-byte string), in every kind of queue, come back byte for byte; a big
 * item refused (Full) stays with the caller. */
static void test_inline_limit(void)
{
    static const char *const strs[] = {"",
                                       "a",
                                       "abcdefghijkl",
                                       "abcdefghijklm",
                                       "abcdefghijklmn",
                                       "abcdefghijklmnopqrstuvwxyz0123456789"};
    const int n = (int)(sizeof strs / sizeof *strs);
    for (int k = 0; k < 4; k++) {
        braid_queue_t *q;
        CHECK(braid_queue_new((braid_queue_kind_t)k, n, &q) == 0);
        for (int i = 0; i < n; i++) {
            braid_buf_t b = enc_str(strs[i]);
            CHECK(braid_queue_put(q, &b, BRAID_QUEUE_NOWAIT) == 0);
            CHECK(b.len == 0);
            braid_buf_free(&b);
        }
        if (k != BRAID_QUEUE_SIMPLE) { /* full: the refused item is left in place */
            braid_buf_t b = enc_str(strs[n - 1]), want = enc_str(strs[n - 1]);
            CHECK(braid_queue_put(q, &b, BRAID_QUEUE_NOWAIT) == BRAID_EFULL);
            CHECK(b.len == want.len && memcmp(b.data, want.data, b.len) == 0);
            braid_buf_free(&b);
            braid_buf_free(&want);
        }
        int seen[16] = {0};
        for (int i = 0; i < n; i++) {
            braid_buf_t b;
            braid_buf_init(&b);
            CHECK(braid_queue_get(q, &b, BRAID_QUEUE_NOWAIT) == 0);
            int found = -1;
            for (int j = 0; j < n && found < 0; j++) {
                braid_buf_t w = enc_str(strs[j]);
                if (w.len == b.len && memcmp(w.data, b.data, b.len) == 0)
                    found = j;
                braid_buf_free(&w);
            }
            CHECK(found >= 0 && !seen[found]);
            if (found >= 0)
                seen[found] = 1;
            if (k == BRAID_QUEUE_FIFO || k == BRAID_QUEUE_SIMPLE)
                CHECK(found == i);
            braid_buf_free(&b);
        }
        braid_queue_release(q);
    }
}

int main(void)
{
    RUN(test_orders);
    RUN(test_priority_ties_and_types);
    RUN(test_full_empty);
    RUN(test_blocking_handoff);
    RUN(test_cancel);
    RUN(test_task_done_join);
    RUN(test_shutdown);
    RUN(test_object_refs_dropped);
    RUN(test_simple);
    RUN(test_mpmc_unbounded);
    RUN(test_mpmc_bounded);
    RUN(test_inline_limit);
    return CHECK_DONE();
}
