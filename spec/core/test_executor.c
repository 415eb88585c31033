/* Core tests for braid_executor: results in futures, lazy worker start and
 * reuse, shutdown (wait, cancel_futures), broken pools, many submitters. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "clock.h"
#include "codec.h"
#include "error.h"
#include "executor.h"
#include "future.h"
#include "thread.h"

/* Calls are one op byte + an int: 'e' echo n*2, 'f' fail, 'w' wait until
 * the gate future is done, then echo. */
typedef struct tctx {
    atomic_int starts, stops, runs;
    int fail_start; /* worker_start fails for this index (or -1) */
    braid_future_t *gate;
    atomic_int freed;
} tctx_t;

static int t_start(void *ud, int index, void **wctx, char **errmsg)
{
    tctx_t *c = ud;
    atomic_fetch_add(&c->starts, 1);
    *wctx = c;
    if (index == c->fail_start || c->fail_start == -2) {
        *errmsg = strdup("initializer failed");
        return BRAID_EINVAL;
    }
    return 0;
}

static int t_run(void *wctx, const braid_buf_t *call, size_t aux, braid_buf_t *out)
{
    tctx_t *c = wctx;
    atomic_fetch_add(&c->runs, 1);
    braid_reader_t r;
    braid_reader_init(&r, call->data, call->len);
    uint8_t op = braid_reader_u8(&r);
    int64_t v = braid_reader_int(&r);
    if (op == 'w')
        braid_future_wait(c->gate, BRAID_FOREVER);
    braid_buf_put_u8(out, BRAID_T_INT);
    braid_buf_put_int(out, op == 'f' ? -1 : v * 2 + (int64_t)aux);
    return op == 'f';
}

static void t_stop(void *wctx)
{
    if (wctx)
        atomic_fetch_add(&((tctx_t *)wctx)->stops, 1);
}

static void t_free(void *ud)
{
    atomic_fetch_add(&((tctx_t *)ud)->freed, 1);
}

static const braid_executor_ops_t ops = {t_start, t_run, t_stop, t_free};

static braid_buf_t call(char op, int64_t v)
{
    braid_buf_t b;
    braid_buf_init(&b);
    braid_buf_put_u8(&b, (uint8_t)op);
    braid_buf_put_int(&b, v);
    return b;
}

static int64_t result_int(braid_future_t *f, int *failed)
{
    const braid_buf_t *out;
    int code;
    if (braid_future_wait(f, braid_clock_now() + 10000000000LL) != 0 ||
        braid_future_outcome(f, &out, failed, &code, NULL) != 0 || code)
        return -999;
    braid_reader_t r;
    braid_reader_init(&r, out->data, out->len);
    braid_reader_u8(&r);
    return braid_reader_int(&r);
}

static tctx_t *new_ctx(void)
{
    tctx_t *c = calloc(1, sizeof *c);
    c->fail_start = -1;
    braid_future_new(&c->gate);
    return c;
}

static void free_ctx(tctx_t *c)
{
    braid_future_release(c->gate);
    free(c);
}

static void test_submit_result(void)
{
    tctx_t *c = new_ctx();
    braid_executor_t *ex;
    CHECK(braid_executor_new(&ex, 4, "T", &ops, c) == 0);
    CHECK(braid_executor_nthreads(ex) == 0);
    int reused = 0;
    for (int i = 0; i < 100; i++) {
        braid_buf_t b = call('e', i);
        braid_future_t *f;
        CHECK(braid_executor_submit(ex, &b, 1, &f) == 0);
        CHECK(b.len == 0 && b.nobjs == 0);
        reused += b.cap > 0; /* a finished task's call buffer came back */
        braid_buf_free(&b);
        int failed;
        CHECK(result_int(f, &failed) == i * 2 + 1 && failed == 0);
        braid_future_release(f);
    }
    CHECK(reused > 0);
    /* one at a time: the worker that finished is reused */
    CHECK(braid_executor_nthreads(ex) == 1);
    braid_buf_t b = call('f', 0);
    braid_future_t *f;
    CHECK(braid_executor_submit(ex, &b, 0, &f) == 0);
    braid_buf_free(&b); /* empty, but may hold a spare buffer */
    int failed;
    CHECK(result_int(f, &failed) == -1 && failed == 1);
    braid_future_release(f);
    CHECK(braid_executor_shutdown(ex, 1, 0, BRAID_FOREVER) == 0);
    CHECK(atomic_load(&c->starts) == atomic_load(&c->stops));
    b = call('e', 1);
    CHECK(braid_executor_submit(ex, &b, 0, &f) == BRAID_ESHUTDOWN);
    CHECK(b.len > 0);
    braid_buf_free(&b);
    braid_executor_release(ex);
    CHECK(atomic_load(&c->freed) == 1);
    free_ctx(c);
}

/* A worker whose task finished counts as available even before it is back
 * on the idle list: a submit right after a result never starts a thread
 * (Python spawns only when its _idle_semaphore is empty). But a submit while
 * every worker is busy does. */
static void test_finished_worker_reused(void)
{
    tctx_t *c = new_ctx();
    braid_executor_t *ex;
    CHECK(braid_executor_new(&ex, 4, "T", &ops, c) == 0);
    int bad = 0;
    for (int i = 0; i < 5000; i++) {
        braid_buf_t b = call('e', i);
        braid_future_t *f;
        CHECK(braid_executor_submit(ex, &b, 0, &f) == 0);
        braid_buf_free(&b); /* empty, but may hold a spare buffer */
        /* poll rather than park, to submit the next call as early as
         * possible after the worker finishes this one */
        while (!braid_future_done(f))
            ;
        int failed;
        if (result_int(f, &failed) != i * 2)
            bad++;
        braid_future_release(f);
        if (braid_executor_nthreads(ex) != 1) {
            CHECK(braid_executor_nthreads(ex) == 1);
            break;
        }
    }
    CHECK(bad == 0);
    /* the one worker blocks: the next submit needs a second thread, and
     * the one after that a third (the second is claimed by the queued call) */
    braid_buf_t b = call('w', 1);
    braid_future_t *fw, *f1, *f2;
    CHECK(braid_executor_submit(ex, &b, 0, &fw) == 0);
    braid_buf_free(&b); /* empty, but may hold a spare buffer */
    while (braid_future_state(fw) == BRAID_FUTURE_PENDING)
        braid_clock_sleep_until(braid_clock_now() + 100000);
    CHECK(braid_executor_nthreads(ex) == 1);
    b = call('w', 2);
    CHECK(braid_executor_submit(ex, &b, 0, &f1) == 0);
    braid_buf_free(&b); /* empty, but may hold a spare buffer */
    CHECK(braid_executor_nthreads(ex) == 2);
    b = call('w', 3);
    CHECK(braid_executor_submit(ex, &b, 0, &f2) == 0);
    braid_buf_free(&b); /* empty, but may hold a spare buffer */
    CHECK(braid_executor_nthreads(ex) == 3);
    braid_future_cancel(c->gate);
    int failed;
    CHECK(result_int(fw, &failed) == 2);
    CHECK(result_int(f1, &failed) == 4);
    CHECK(result_int(f2, &failed) == 6);
    braid_future_release(fw);
    braid_future_release(f1);
    braid_future_release(f2);
    CHECK(braid_executor_shutdown(ex, 1, 0, BRAID_FOREVER) == 0);
    braid_executor_release(ex);
    free_ctx(c);
}

static void test_max_workers(void)
{
    tctx_t *c = new_ctx();
    braid_executor_t *ex;
    CHECK(braid_executor_new(&ex, 0, "T", &ops, c) == BRAID_EINVAL);
    CHECK(atomic_load(&c->freed) == 1);
    atomic_store(&c->freed, 0);
    CHECK(braid_executor_new(&ex, 3, "T", &ops, c) == 0);
    enum { N = 20 };
    braid_future_t *fs[N];
    for (int i = 0; i < N; i++) {
        braid_buf_t b = call('w', i);
        CHECK(braid_executor_submit(ex, &b, 0, &fs[i]) == 0);
        braid_buf_free(&b); /* empty, but may hold a spare buffer */
    }
    CHECK(braid_executor_nthreads(ex) == 3);
    braid_future_cancel(c->gate);
    for (int i = 0; i < N; i++) {
        int failed;
        CHECK(result_int(fs[i], &failed) == i * 2);
        braid_future_release(fs[i]);
    }
    CHECK(braid_executor_nthreads(ex) == 3);
    CHECK(braid_executor_shutdown(ex, 1, 0, BRAID_FOREVER) == 0);
    braid_executor_release(ex);
    free_ctx(c);
}

static void test_shutdown_cancel_futures(void)
{
    tctx_t *c = new_ctx();
    braid_executor_t *ex;
    CHECK(braid_executor_new(&ex, 1, "T", &ops, c) == 0);
    enum { N = 50 };
    braid_future_t *fs[N];
    for (int i = 0; i < N; i++) {
        braid_buf_t b = call('w', i);
        CHECK(braid_executor_submit(ex, &b, 0, &fs[i]) == 0);
        braid_buf_free(&b); /* empty, but may hold a spare buffer */
    }
    /* wait until the first task runs */
    while (braid_future_state(fs[0]) == BRAID_FUTURE_PENDING)
        braid_clock_sleep_until(braid_clock_now() + 100000);
    CHECK(braid_executor_shutdown(ex, 0, 1, 0) == 0);
    CHECK(braid_executor_pending(ex) == 0);
    for (int i = 1; i < N; i++)
        CHECK(braid_future_state(fs[i]) == BRAID_FUTURE_CANCELLED);
    CHECK(braid_future_state(fs[0]) == BRAID_FUTURE_RUNNING);
    CHECK(braid_executor_shutdown(ex, 1, 0, braid_clock_now() + 20000000) == BRAID_ETIMEOUT);
    braid_future_cancel(c->gate);
    CHECK(braid_executor_shutdown(ex, 1, 0, BRAID_FOREVER) == 0);
    int failed;
    CHECK(result_int(fs[0], &failed) == 0);
    for (int i = 0; i < N; i++)
        braid_future_release(fs[i]);
    braid_executor_release(ex);
    free_ctx(c);
}

/* Tasks come from slabs that a burst grows and that are freed once every
 * task is back (over TASK_KEEP): two bursts of blocked tasks, some
 * cancelled, some failing, some with calls too big to copy into the task;
 * every future gets its own outcome both times (a reused task never
 * carries the last one's call or future). */
static void test_task_slabs(void)
{
    tctx_t *c = new_ctx();
    braid_executor_t *ex;
    CHECK(braid_executor_new(&ex, 2, "T", &ops, c) == 0);
    enum { N = 3000 };
    static braid_future_t *fs[N];
    for (int round = 0; round < 2; round++) {
        braid_future_t *gate = c->gate;
        for (int i = 0; i < N; i++) {
            char op = i % 7 == 3 ? 'f' : 'w';
            braid_buf_t b = call(op, i + round);
            if (i % 5 == 1) /* padding after the int: not copied, swapped */
                for (int k = 0; k < 300; k++)
                    braid_buf_put_u8(&b, 0);
            CHECK(braid_executor_submit(ex, &b, 0, &fs[i]) == 0);
            CHECK(b.len == 0);
            braid_buf_free(&b);
        }
        for (int i = 10; i < N; i += 11) /* some still queued: cancelled */
            braid_future_cancel(fs[i]);
        braid_future_cancel(gate); /* open the gate */
        for (int i = 0; i < N; i++) {
            int failed = 0;
            if (i % 11 == 10) {
                CHECK(braid_future_state(fs[i]) == BRAID_FUTURE_CANCELLED);
            } else if (i % 7 == 3) {
                CHECK(result_int(fs[i], &failed) == -1 && failed == 1);
            } else {
                CHECK(result_int(fs[i], &failed) == 2 * (i + round) && failed == 0);
            }
            braid_future_release(fs[i]);
        }
        braid_future_release(gate);
        braid_future_new(&c->gate);
        while (braid_executor_pending(ex) > 0)
            braid_clock_sleep_until(braid_clock_now() + 100000);
    }
    CHECK(braid_executor_shutdown(ex, 1, 0, BRAID_FOREVER) == 0);
    braid_executor_release(ex);
    free_ctx(c);
}

static void test_shutdown_waits_for_queue(void)
{
    tctx_t *c = new_ctx();
    braid_executor_t *ex;
    CHECK(braid_executor_new(&ex, 2, "T", &ops, c) == 0);
    enum { N = 200 };
    braid_future_t *fs[N];
    for (int i = 0; i < N; i++) {
        braid_buf_t b = call('e', i);
        CHECK(braid_executor_submit(ex, &b, 0, &fs[i]) == 0);
        braid_buf_free(&b); /* empty, but may hold a spare buffer */
    }
    CHECK(braid_executor_shutdown(ex, 1, 0, BRAID_FOREVER) == 0);
    for (int i = 0; i < N; i++) {
        CHECK(braid_future_state(fs[i]) == BRAID_FUTURE_FINISHED);
        braid_future_release(fs[i]);
    }
    braid_executor_release(ex);
    free_ctx(c);
}

static void test_broken(void)
{
    tctx_t *c = new_ctx();
    c->fail_start = -2;
    braid_executor_t *ex;
    CHECK(braid_executor_new(&ex, 2, "T", &ops, c) == 0);
    braid_buf_t b = call('e', 1);
    braid_future_t *f;
    CHECK(braid_executor_submit(ex, &b, 0, &f) == 0);
    braid_buf_free(&b); /* empty, but may hold a spare buffer */
    CHECK(braid_future_wait(f, braid_clock_now() + 10000000000LL) == 0);
    int failed, code;
    const char *msg;
    CHECK(braid_future_outcome(f, NULL, &failed, &code, &msg) == 0);
    CHECK(failed && code == BRAID_EBROKEN && strcmp(msg, "initializer failed") == 0);
    braid_future_release(f);
    const char *why;
    CHECK(braid_executor_broken(ex, &why) && strcmp(why, "initializer failed") == 0);
    b = call('e', 1);
    CHECK(braid_executor_submit(ex, &b, 0, &f) == BRAID_EBROKEN);
    braid_buf_free(&b);
    CHECK(braid_executor_shutdown(ex, 1, 0, BRAID_FOREVER) == 0);
    braid_executor_release(ex);
    free_ctx(c);
}

typedef struct submitter {
    braid_executor_t *ex;
    int n;
    int ok;
} submitter_t;

static void *submitter_main(void *p)
{
    submitter_t *s = p;
    for (int i = 0; i < s->n; i++) {
        braid_buf_t b = call('e', i);
        braid_future_t *f;
        int rc = braid_executor_submit(s->ex, &b, 0, &f);
        braid_buf_free(&b);
        if (rc != 0)
            continue;
        int failed;
        if (result_int(f, &failed) == i * 2)
            s->ok++;
        braid_future_release(f);
    }
    return NULL;
}

static void test_many_submitters(void)
{
    for (int rep = 0; rep < 3; rep++) {
        tctx_t *c = new_ctx();
        braid_executor_t *ex;
        CHECK(braid_executor_new(&ex, 4, "T", &ops, c) == 0);
        submitter_t s[4];
        pthread_t th[4];
        for (int k = 0; k < 4; k++) {
            s[k] = (submitter_t){ex, 3000, 0};
            pthread_create(&th[k], NULL, submitter_main, &s[k]);
        }
        for (int k = 0; k < 4; k++) {
            pthread_join(th[k], NULL);
            CHECK(s[k].ok == 3000);
        }
        CHECK(braid_executor_nthreads(ex) <= 4);
        CHECK(braid_executor_shutdown(ex, 1, 0, BRAID_FOREVER) == 0);
        braid_executor_release(ex);
        free_ctx(c);
    }
}

/* Dropping the last reference with work queued: the work still finishes
 * and shutdown_all (the exit hook) waits for it. */
static void test_release_then_shutdown_all(void)
{
    tctx_t *c = new_ctx();
    braid_executor_t *ex;
    CHECK(braid_executor_new(&ex, 2, "T", &ops, c) == 0);
    braid_future_t *fs[100];
    for (int i = 0; i < 100; i++) {
        braid_buf_t b = call('e', i);
        CHECK(braid_executor_submit(ex, &b, 0, &fs[i]) == 0);
        braid_buf_free(&b); /* empty, but may hold a spare buffer */
    }
    braid_executor_release(ex);
    CHECK(braid_executor_shutdown_all(BRAID_FOREVER) == 0);
    for (int i = 0; i < 100; i++) {
        CHECK(braid_future_state(fs[i]) == BRAID_FUTURE_FINISHED);
        braid_future_release(fs[i]);
    }
    /* the last worker frees the pool right after it is joined */
    int64_t until = braid_clock_now() + 5000000000LL;
    while (!atomic_load(&c->freed) && braid_clock_now() < until)
        braid_clock_sleep_until(braid_clock_now() + 1000000);
    CHECK(atomic_load(&c->freed) == 1);
    free_ctx(c);
}

int main(void)
{
    RUN(test_submit_result);
    RUN(test_finished_worker_reused);
    RUN(test_max_workers);
    RUN(test_shutdown_cancel_futures);
    RUN(test_task_slabs);
    RUN(test_shutdown_waits_for_queue);
    RUN(test_broken);
    RUN(test_many_submitters);
    RUN(test_release_then_shutdown_all);
    return CHECK_DONE();
}
