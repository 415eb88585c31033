/* The asyncio loop's C half: a uv loop with a wake-up handle and a timer,
 * and the woken list that task waiters are queued on from any thread. */
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "clock.h"

#include "error.h"
#include "loop.h"
#include "stream.h"

struct braid_loop {
    uv_loop_t uv;
    uv_async_t async;   /* woken by task waiters and braid_loop_wakeup */
    uv_timer_t timer;   /* bounds one run_once */
    pthread_mutex_t mu; /* guards the woken list; taken after a primitive's */
    braid_task_waiter_t *head, *tail;
    int refs; /* the owner's and each task waiter's (all on the loop's thread) */
    /* A waker sends the uv wake-up only while the loop may block: it sets
     * queued after linking its waiter, the loop sets sleeping before it
     * looks at queued (both seq_cst), so one of them sees the other. */
    atomic_int sleeping;
    atomic_int queued;
};

/* Before blocking, the loop watches the woken list this long: a wake-up
 * seen while spinning skips the eventfd write, epoll and read. */
#define LOOP_SPIN_NS 20000

static void loop_unref(braid_loop_t *loop);
static atomic_int live_loops;

int braid_loop_count(void)
{
    return atomic_load(&live_loops);
}

static void count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    ++*(int *)arg;
}

/* Both end the pass at once: uv_stop makes the poll not block, so a
 * timer that fired before the poll (run_once's timer, when the loop's
 * clock moved on) cannot leave it waiting forever. The woken list is read
 * after uv_run returns. */
static void on_async(uv_async_t *h)
{
    uv_stop(h->loop);
}

static void on_timer(uv_timer_t *h)
{
    uv_stop(h->loop);
}

int braid_loop_new(braid_loop_t **out)
{
    braid_loop_t *loop = calloc(1, sizeof *loop);
    if (!loop)
        return BRAID_ENOMEM;
    if (pthread_mutex_init(&loop->mu, NULL) != 0) {
        free(loop);
        return BRAID_EOS;
    }
    if (uv_loop_init(&loop->uv) != 0) {
        pthread_mutex_destroy(&loop->mu);
        free(loop);
        return BRAID_EOS;
    }
    if (uv_async_init(&loop->uv, &loop->async, on_async) != 0 ||
        uv_timer_init(&loop->uv, &loop->timer) != 0) {
        loop->refs = 1;
        loop_unref(loop);
        return BRAID_EOS;
    }
    uv_unref((uv_handle_t *)&loop->async);
    uv_unref((uv_handle_t *)&loop->timer);
    loop->refs = 1;
    atomic_fetch_add(&live_loops, 1);
    *out = loop;
    return 0;
}

/* Handles braid left open (streams of tasks never closed) close with
 * their owner's callback (stream.h's braid_handle_owner_t); others (luv's,
 * when luv shares the loop) close without a callback. */
static void close_stray(uv_handle_t *h, void *arg)
{
    braid_loop_t *loop = arg;
    if (h == (uv_handle_t *)&loop->async || h == (uv_handle_t *)&loop->timer || uv_is_closing(h))
        return;
    const braid_handle_owner_t *o = h->data;
    uv_close(h, o && o->magic == BRAID_HANDLE_MAGIC ? o->on_close : NULL);
}

int braid_loop_handle_count(braid_loop_t *loop)
{
    int n = 0;
    uv_walk(&loop->uv, count_handle, &n);
    return n - 2; /* the wake-up handle and the timer */
}

static void loop_unref(braid_loop_t *loop)
{
    if (--loop->refs > 0)
        return;
    uv_walk(&loop->uv, close_stray, loop);
    if (!uv_is_closing((uv_handle_t *)&loop->async) && loop->async.loop)
        uv_close((uv_handle_t *)&loop->async, NULL);
    if (!uv_is_closing((uv_handle_t *)&loop->timer) && loop->timer.loop)
        uv_close((uv_handle_t *)&loop->timer, NULL);
    uv_run(&loop->uv, UV_RUN_DEFAULT); /* close callbacks */
    uv_loop_close(&loop->uv);
    atomic_fetch_sub(&live_loops, 1);
    pthread_mutex_destroy(&loop->mu);
    free(loop);
}

void braid_loop_free(braid_loop_t *loop)
{
    if (loop)
        loop_unref(loop);
}

uv_loop_t *braid_loop_uv(braid_loop_t *loop)
{
    return &loop->uv;
}

/* Whether the loop's I/O backend has events waiting (never blocks). */
static int io_ready(braid_loop_t *loop)
{
    struct pollfd p = {.fd = uv_backend_fd(&loop->uv), .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

/* Spins until a task waiter is queued or LOOP_SPIN_NS pass (only when
 * another core can be running the waker). Returns whether one was. The
 * caller has just run a non-blocking pass, so the first I/O check waits
 * 64 turns. */
static int spin_for_woken(braid_loop_t *loop)
{
    static long ncpu;
    if (!ncpu)
        ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 2)
        return 0;
    int64_t end = braid_clock_now() + LOOP_SPIN_NS;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&loop->queued, memory_order_acquire))
            return 1;
        if ((i & 63) == 0 && io_ready(loop))
            return 1; /* a socket is ready (streams): run the pass now */
        if ((i & 63) == 63 && braid_clock_now() >= end)
            return 0;
    }
}

int braid_loop_run_once(braid_loop_t *loop, int64_t timeout_ns, int spin)
{
    if (timeout_ns != 0 && spin) {
        /* I/O is often ready already (a loopback peer answered while the
         * tasks ran): one non-blocking pass takes it with a single
         * epoll_wait, where checking first would cost a poll() too */
        uv_run(&loop->uv, UV_RUN_NOWAIT);
        if (atomic_load(&loop->queued))
            return 0;
        if (spin_for_woken(loop))
            timeout_ns = 0;
    }
    if (timeout_ns != 0) {
        atomic_store(&loop->sleeping, 1);
        if (atomic_load(&loop->queued))
            timeout_ns = 0; /* a waker that missed sleeping queued one */
    }
    if (timeout_ns == 0) {
        atomic_store(&loop->sleeping, 0);
        uv_run(&loop->uv, UV_RUN_NOWAIT);
        return 0;
    }
    /* a pass with nothing active returns at once: keep the wake-up handle
     * (and the timer, when bounded) referenced while we block */
    uv_ref((uv_handle_t *)&loop->async);
    if (timeout_ns > 0) {
        uint64_t ms = (uint64_t)((timeout_ns + 999999) / 1000000);
        uv_update_time(&loop->uv);
        if (uv_timer_start(&loop->timer, on_timer, ms, 0) != 0) {
            atomic_store(&loop->sleeping, 0);
            uv_unref((uv_handle_t *)&loop->async);
            return BRAID_EOS;
        }
    }
    uv_run(&loop->uv, UV_RUN_ONCE);
    atomic_store(&loop->sleeping, 0);
    uv_timer_stop(&loop->timer);
    uv_unref((uv_handle_t *)&loop->async);
    return 0;
}

void braid_loop_wakeup(braid_loop_t *loop)
{
    uv_async_send(&loop->async);
}

size_t braid_loop_take_woken(braid_loop_t *loop, braid_task_waiter_t **tws, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&loop->mu);
    while (n < max && loop->head) {
        braid_task_waiter_t *tw = loop->head;
        loop->head = tw->next;
        if (loop->head)
            loop->head->prev = NULL;
        else
            loop->tail = NULL;
        tw->next = tw->prev = NULL;
        tw->queued = 0;
        tws[n++] = tw;
    }
    atomic_store(&loop->queued, loop->head != NULL);
    pthread_mutex_unlock(&loop->mu);
    return n;
}

/* Puts tw on its loop's woken list (once) and marks the list non-empty. */
static void queue_woken(braid_task_waiter_t *tw)
{
    braid_loop_t *loop = tw->loop;
    pthread_mutex_lock(&loop->mu);
    if (!tw->queued) {
        tw->queued = 1;
        tw->prev = loop->tail;
        tw->next = NULL;
        if (loop->tail)
            loop->tail->next = tw;
        else
            loop->head = tw;
        loop->tail = tw;
    }
    atomic_store(&loop->queued, 1);
    pthread_mutex_unlock(&loop->mu);
}

/* braid_waiter_t.notify of task waiters: called by a waker (under the
 * primitive's lock) or by a cancel. */
static void task_notify(braid_waiter_t *w)
{
    braid_task_waiter_t *tw = (braid_task_waiter_t *)w;
    queue_woken(tw);
    if (atomic_load(&tw->loop->sleeping))
        uv_async_send(&tw->loop->async);
}

void braid_waiter_wake_local(braid_waiter_t *w)
{
    if (w->notify != task_notify) {
        braid_waiter_wake(w);
        return;
    }
    /* the pass running now reads the woken list when it ends: no wake-up
     * through the async handle (a syscall and one more pass) is needed */
    atomic_store_explicit(&w->signaled, 1, memory_order_release);
    queue_woken((braid_task_waiter_t *)w);
}

int braid_task_waiter_init(braid_task_waiter_t *tw, braid_loop_t *loop, int64_t id)
{
    if (braid_waiter_init(&tw->w) != 0)
        return BRAID_EOS;
    tw->w.notify = task_notify;
    tw->w.data = tw;
    tw->loop = loop;
    loop->refs++;
    tw->id = id;
    tw->queued = 0;
    tw->prev = tw->next = NULL;
    return 0;
}

void braid_task_waiter_destroy(braid_task_waiter_t *tw)
{
    braid_waiter_settle(&tw->w);
    braid_loop_t *loop = tw->loop;
    pthread_mutex_lock(&loop->mu);
    if (tw->queued) {
        if (tw->prev)
            tw->prev->next = tw->next;
        else
            loop->head = tw->next;
        if (tw->next)
            tw->next->prev = tw->prev;
        else
            loop->tail = tw->prev;
        tw->queued = 0;
        atomic_store(&loop->queued, loop->head != NULL);
    }
    pthread_mutex_unlock(&loop->mu);
    braid_waiter_destroy(&tw->w);
    loop_unref(loop);
}
