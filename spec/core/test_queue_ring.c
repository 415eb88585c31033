/* Core tests for bounded FIFO queues, which run on the lock-free ring
 * (core/queue_ring.c): the Python semantics one by one, then stress runs
 * of many producers and consumers with timeouts and shutdowns mid-stream,
 * checking that every item arrives exactly once and in each producer's
 * order. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "values.h"
#include "clock.h"
#include "codec.h"
#include "error.h"
#include "queue.h"
#include "waiter.h"

/* Items are integers; with big set they are strings of 40 bytes (too long
 * to sit in a slot: each travels in a buffer of its own). */
static braid_buf_t enc_item(int64_t v, int big)
{
    if (!big)
        return enc_int(v);
    char s[48];
    snprintf(s, sizeof s, "%020lld-padding-padding-pad", (long long)v);
    return enc_str(s);
}

static int64_t dec_item(const braid_buf_t *b)
{
    braid_reader_t r;
    braid_reader_init(&r, b->data, b->len);
    int tag = braid_reader_u8(&r);
    if (tag == BRAID_T_INT)
        return braid_reader_int(&r);
    if (tag != BRAID_T_STR || b->len < 21)
        return -999999;
    return atoll((const char *)b->data + b->len - 40);
}

static int put_item(braid_queue_t *q, int64_t v, int big, int64_t deadline)
{
    braid_buf_t b = enc_item(v, big);
    int rc = braid_queue_put(q, &b, deadline);
    if (rc == 0)
        CHECK(b.len == 0 && b.nobjs == 0);
    else
        CHECK(dec_item(&b) == v); /* a failed put leaves the item to the caller */
    braid_buf_free(&b);
    return rc;
}

static int64_t get_item(braid_queue_t *q, int64_t deadline, int *rc)
{
    braid_buf_t b;
    braid_buf_init(&b);
    *rc = braid_queue_get(q, &b, deadline);
    int64_t v = *rc == 0 ? dec_item(&b) : -1;
    braid_buf_free(&b);
    return v;
}

static void test_semantics(void)
{
    for (int big = 0; big < 2; big++) {
        braid_queue_t *q;
        int rc;
        CHECK(braid_queue_new(BRAID_QUEUE_FIFO, 3, &q) == 0);
        CHECK(braid_queue_empty(q) && !braid_queue_full(q) && braid_queue_maxsize(q) == 3);
        CHECK(get_item(q, BRAID_QUEUE_NOWAIT, &rc) == -1 && rc == BRAID_EEMPTY);
        CHECK(get_item(q, braid_clock_deadline(0.01), &rc) == -1 && rc == BRAID_EEMPTY);
        /* around the ring several times: FIFO, sizes, Full */
        int64_t next_in = 0, next_out = 0;
        for (int round = 0; round < 10; round++) {
            while (put_item(q, next_in, big, BRAID_QUEUE_NOWAIT) == 0)
                next_in++;
            CHECK(braid_queue_full(q) && braid_queue_qsize(q) == 3);
            CHECK(put_item(q, -5, big, braid_clock_deadline(0.005)) == BRAID_EFULL);
            for (int i = 0; i < 1 + round % 3; i++)
                CHECK(get_item(q, BRAID_FOREVER, &rc) == next_out++ && rc == 0);
            CHECK(braid_queue_qsize(q) == (size_t)(next_in - next_out));
        }
        CHECK(braid_queue_unfinished(q) == next_in);
        for (int64_t i = 0; i < next_out; i++)
            CHECK(braid_queue_task_done(q) == 0);
        CHECK(braid_queue_join(q, BRAID_QUEUE_NOWAIT) == BRAID_ETIMEOUT);
        /* plain shutdown: puts fail, gets drain then fail */
        braid_queue_shutdown(q, 0);
        CHECK(braid_queue_is_shutdown(q));
        CHECK(put_item(q, 99, big, BRAID_FOREVER) == BRAID_ESHUTDOWN);
        while (next_out < next_in) {
            CHECK(get_item(q, BRAID_QUEUE_NOWAIT, &rc) == next_out++ && rc == 0);
            CHECK(braid_queue_task_done(q) == 0);
        }
        CHECK(get_item(q, BRAID_QUEUE_NOWAIT, &rc) == -1 && rc == BRAID_ESHUTDOWN);
        CHECK(get_item(q, BRAID_FOREVER, &rc) == -1 && rc == BRAID_ESHUTDOWN);
        CHECK(braid_queue_task_done(q) == BRAID_EINVAL);
        CHECK(braid_queue_join(q, BRAID_FOREVER) == 0);
        braid_queue_release(q);

        /* immediate: items dropped (their buffers freed), counted done */
        CHECK(braid_queue_new(BRAID_QUEUE_FIFO, 5, &q) == 0);
        for (int i = 0; i < 5; i++)
            CHECK(put_item(q, i, big, BRAID_FOREVER) == 0);
        CHECK(get_item(q, BRAID_FOREVER, &rc) == 0);
        braid_queue_shutdown(q, 1);
        CHECK(braid_queue_qsize(q) == 0 && braid_queue_unfinished(q) == 1);
        CHECK(get_item(q, BRAID_FOREVER, &rc) == -1 && rc == BRAID_ESHUTDOWN);
        CHECK(braid_queue_task_done(q) == 0);
        CHECK(braid_queue_join(q, BRAID_FOREVER) == 0);
        braid_queue_shutdown(q, 0);
        braid_queue_release(q);

        /* items left in a released queue are freed with it */
        CHECK(braid_queue_new(BRAID_QUEUE_FIFO, 4, &q) == 0);
        for (int i = 0; i < 6; i++) {
            CHECK(put_item(q, i, big, BRAID_FOREVER) == 0);
            if (i % 2)
                get_item(q, BRAID_FOREVER, &rc);
        }
        braid_queue_release(q);
    }
}

typedef struct {
    braid_queue_t *q;
    int rc;
    braid_waiter_t *waiter;
    atomic_int started, release;
    int64_t value;
} worker_t;

static void *getter(void *p)
{
    worker_t *w = p;
    w->waiter = braid_waiter_current();
    atomic_store(&w->started, 1);
    w->value = get_item(w->q, BRAID_FOREVER, &w->rc);
    while (!atomic_load(&w->release))
        ; /* keeps its waiter alive for whoever cancels it */
    return NULL;
}

static void *putter(void *p)
{
    worker_t *w = p;
    w->waiter = braid_waiter_current();
    atomic_store(&w->started, 1);
    w->rc = put_item(w->q, w->value, 0, BRAID_FOREVER);
    while (!atomic_load(&w->release))
        ;
    return NULL;
}

static void start(pthread_t *t, void *(*fn)(void *), worker_t *w)
{
    pthread_create(t, NULL, fn, w);
    while (!atomic_load(&w->started))
        ;
}

static void finish(pthread_t t, worker_t *w)
{
    atomic_store(&w->release, 1);
    pthread_join(t, NULL);
}

/* Blocked getters and putters: woken by puts/gets, by shutdown, cancelled. */
static void test_blocking(void)
{
    braid_queue_t *q;
    int rc;
    pthread_t t[3];
    CHECK(braid_queue_new(BRAID_QUEUE_FIFO, 2, &q) == 0);
    worker_t g = {.q = q};
    start(&t[0], getter, &g);
    CHECK(put_item(q, 42, 0, BRAID_FOREVER) == 0);
    finish(t[0], &g);
    CHECK(g.rc == 0 && g.value == 42);

    CHECK(put_item(q, 1, 0, BRAID_FOREVER) == 0);
    CHECK(put_item(q, 2, 0, BRAID_FOREVER) == 0);
    worker_t p = {.q = q, .value = 3};
    start(&t[0], putter, &p);
    CHECK(get_item(q, BRAID_FOREVER, &rc) == 1);
    finish(t[0], &p);
    CHECK(p.rc == 0);
    CHECK(get_item(q, BRAID_FOREVER, &rc) == 2);
    CHECK(get_item(q, BRAID_FOREVER, &rc) == 3);

    /* a cancelled getter consumes nothing */
    worker_t c = {.q = q};
    start(&t[0], getter, &c);
    braid_waiter_cancel(c.waiter);
    finish(t[0], &c);
    CHECK(c.rc == BRAID_ECANCELLED);
    CHECK(put_item(q, 7, 0, BRAID_FOREVER) == 0);
    CHECK(braid_queue_qsize(q) == 1);
    CHECK(get_item(q, BRAID_FOREVER, &rc) == 7);

    /* shutdown releases every blocked getter ... */
    worker_t gs[3] = {{.q = q}, {.q = q}, {.q = q}};
    for (int i = 0; i < 3; i++)
        start(&t[i], getter, &gs[i]);
    braid_queue_shutdown(q, 0);
    for (int i = 0; i < 3; i++) {
        finish(t[i], &gs[i]);
        CHECK(gs[i].rc == BRAID_ESHUTDOWN);
    }
    braid_queue_release(q);

    /* ... and putter */
    CHECK(braid_queue_new(BRAID_QUEUE_FIFO, 2, &q) == 0);
    CHECK(put_item(q, 0, 0, BRAID_FOREVER) == 0);
    CHECK(put_item(q, 1, 0, BRAID_FOREVER) == 0);
    worker_t ps[2] = {{.q = q, .value = 2}, {.q = q, .value = 3}};
    for (int i = 0; i < 2; i++)
        start(&t[i], putter, &ps[i]);
    braid_queue_shutdown(q, 1);
    for (int i = 0; i < 2; i++) {
        finish(t[i], &ps[i]);
        CHECK(ps[i].rc == BRAID_ESHUTDOWN);
    }
    CHECK(braid_queue_qsize(q) == 0 && braid_queue_unfinished(q) == 0);
    braid_queue_release(q);
}

/* ---- stress ---- */

#define MAXP 6

typedef struct stress {
    braid_queue_t *q;
    int nprod, ncons, per, big, timed;
    atomic_uchar *seen; /* per item: times received */
    atomic_long put_ok, got, stop_after;
    atomic_int immediate; /* the mid-stream shutdown dropped what was left */
} stress_t;

typedef struct {
    stress_t *s;
    int id;
    int64_t last[MAXP];
    long n;
    int bad;
} role_t;

/* A deadline a few microseconds out (timed runs) or none. */
static int64_t deadline_for(const stress_t *s, unsigned i)
{
    if (!s->timed)
        return BRAID_FOREVER;
    switch (i % 3) {
    case 0:
        return BRAID_QUEUE_NOWAIT;
    case 1:
        return braid_clock_now() + 20000;
    default:
        return BRAID_FOREVER;
    }
}

static void *stress_producer(void *p)
{
    role_t *r = p;
    stress_t *s = r->s;
    for (int i = 0; i < s->per;) {
        int rc = put_item(s->q, (int64_t)r->id * s->per + i, s->big, deadline_for(s, (unsigned)i));
        if (rc == BRAID_ESHUTDOWN)
            break;
        if (rc == BRAID_EFULL)
            continue; /* timed out: the same item again */
        if (rc != 0) {
            r->bad++;
            break;
        }
        atomic_fetch_add(&s->put_ok, 1);
        i++;
    }
    return NULL;
}

static void *stress_consumer(void *p)
{
    role_t *r = p;
    stress_t *s = r->s;
    for (int i = 0; i < MAXP; i++)
        r->last[i] = -1;
    for (unsigned i = 0;; i++) {
        int rc;
        int64_t v = get_item(s->q, deadline_for(s, i), &rc);
        if (rc == BRAID_ESHUTDOWN)
            break;
        if (rc == BRAID_EEMPTY)
            continue;
        if (rc != 0 || v < 0 || v >= (int64_t)s->nprod * s->per) {
            r->bad++;
            break;
        }
        int prod = (int)(v / s->per);
        if (v % s->per <= r->last[prod])
            r->bad++; /* each consumer sees each producer's items in order */
        r->last[prod] = v % s->per;
        if (atomic_fetch_add(&s->seen[v], 1) != 0)
            r->bad++; /* twice */
        r->n++;
        if (braid_queue_task_done(s->q) != 0)
            r->bad++;
        if (atomic_fetch_add(&s->got, 1) + 1 == atomic_load(&s->stop_after)) {
            atomic_store(&s->immediate, (int)(v & 1)); /* mid-stream, either kind */
            braid_queue_shutdown(s->q, (int)(v & 1));
        }
    }
    return NULL;
}

/* stop_after > 0: a consumer shuts the queue down after that many items;
 * else the main thread does once the producers are done. */
static void run_stress(long maxsize, int nprod, int ncons, int per, int big, int timed,
                       long stop_after)
{
    braid_queue_t *q;
    CHECK(braid_queue_new(BRAID_QUEUE_FIFO, maxsize, &q) == 0);
    stress_t s = {.q = q, .nprod = nprod, .ncons = ncons, .per = per, .big = big, .timed = timed};
    atomic_init(&s.stop_after, stop_after);
    s.seen = calloc((size_t)nprod * per, 1);
    role_t prod[MAXP], cons[MAXP];
    pthread_t tp[MAXP], tc[MAXP];
    for (int i = 0; i < ncons; i++) {
        cons[i] = (role_t){.s = &s, .id = i};
        pthread_create(&tc[i], NULL, stress_consumer, &cons[i]);
    }
    for (int i = 0; i < nprod; i++) {
        prod[i] = (role_t){.s = &s, .id = i};
        pthread_create(&tp[i], NULL, stress_producer, &prod[i]);
    }
    for (int i = 0; i < nprod; i++) {
        pthread_join(tp[i], NULL);
        CHECK(prod[i].bad == 0);
    }
    if (stop_after <= 0) {
        CHECK(braid_queue_join(q, BRAID_FOREVER) == 0);
        braid_queue_shutdown(q, 0);
    }
    long got = 0;
    for (int i = 0; i < ncons; i++) {
        pthread_join(tc[i], NULL);
        CHECK(cons[i].bad == 0);
        got += cons[i].n;
    }
    long put_ok = atomic_load(&s.put_ok);
    if (stop_after <= 0) {
        CHECK(put_ok == (long)nprod * per && got == put_ok);
    } else {
        /* a plain shutdown drains (every item put arrives); an immediate
         * one drops what was queued */
        CHECK(got <= put_ok && got >= stop_after);
        if (!atomic_load(&s.immediate))
            CHECK(got == put_ok);
    }
    CHECK(braid_queue_qsize(q) == 0);
    CHECK(braid_queue_unfinished(q) == 0); /* task_done for each, dropped ones counted */
    for (long v = 0; v < (long)nprod * per; v++)
        CHECK(atomic_load(&s.seen[v]) <= 1);
    CHECK(braid_queue_join(q, BRAID_FOREVER) == 0);
    free(s.seen);
    braid_queue_release(q);
}

static void test_stress_exactly_once(void)
{
    static const long sizes[] = {2, 3, 7, 100, 1024};
    for (int i = 0; i < 5; i++) {
        run_stress(sizes[i], 1, 1, 20000, 0, 0, 0);
        run_stress(sizes[i], 4, 4, 5000, i % 2, 0, 0);
        run_stress(sizes[i], 3, 5, 3000, 0, 1, 0);
    }
}

static void test_stress_shutdown(void)
{
    for (int i = 0; i < 12; i++)
        run_stress(
            i % 2 ? 3 : 64, 1 + i % 4, 1 + (i / 2) % 4, 20000, i % 3 == 0, i % 2, 1000 + 997 * i);
}

int main(void)
{
    RUN(test_semantics);
    RUN(test_blocking);
    RUN(test_stress_exactly_once);
    RUN(test_stress_shutdown);
    return CHECK_DONE();
}
