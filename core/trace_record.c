/* Recording: each thread appends binary records (core/trace_int.h) to a
 * buffer of its own, with no lock and no formatting: a flow arrow's end is
 * a 32-byte record. A full half goes to the flusher (trace_flush.c), which
 * formats it while the thread fills the spare; with no spare back yet the
 * thread appends the half, unformatted, to the spill file, so memory stays
 * at two halves per thread however long the run. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "blockcache.h"
#include "clock.h"
#include "error.h"
#include "trace_int.h"

static _Thread_local tbuf_t *tls_buf;
static pthread_key_t buf_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

/* Formats and writes len bytes of records of thread tid here (when even
 * the spill file fails). */
static void write_here(const char *recs, size_t len, int tid)
{
    char *scratch = malloc(TRACE_JSON_SCRATCH);
    if (scratch)
        trace__write_json(trace__out_fd(), recs, len, trace__pid, tid, scratch);
    free(scratch);
}

/* The current half of b is full (or we are done with it): write it out. */
static void spill(tbuf_t *b)
{
    size_t len = atomic_load_explicit(&b->len, memory_order_relaxed);
    if (!len)
        return;
    char *spare = atomic_exchange_explicit(&b->spare, NULL, memory_order_acquire);
    if (spare && trace__flusher_take(b, b->cur, len, b->tid) == 0) {
        atomic_store_explicit(&b->len, 0, memory_order_release);
        b->cur = spare;
        b->warm = 0; /* populated again in passing if it was before: cheap */
        return;
    }
    if (trace__spill(b->cur, len, b->tid) != 0) /* the other half is still in flight */
        write_here(b->cur, len, b->tid);
    atomic_store_explicit(&b->len, 0, memory_order_release);
    if (spare)
        atomic_store_explicit(&b->spare, spare, memory_order_release);
}

static void buf_release(void *p)
{
    tbuf_t *b = p;
    atomic_store(&b->busy, 1);
    if (atomic_load(&braid__trace_on))
        spill(b); /* else stop owns (and empties) the buffer */
    atomic_store(&b->busy, 0);
    tls_buf = NULL;
    atomic_store(&b->used, 0);
}

static void make_key(void)
{
    pthread_key_create(&buf_key, buf_release);
}

tbuf_t *trace__buf_get(void)
{
    tbuf_t *b = tls_buf;
    if (b)
        return b;
    pthread_once(&key_once, make_key);
    for (b = atomic_load(&trace__all); b; b = b->next) {
        int z = 0;
        if (atomic_compare_exchange_strong(&b->used, &z, 1))
            break;
    }
    if (!b) {
        b = calloc(1, sizeof *b);
        char *h1 = malloc(trace__buf_size), *h2 = malloc(trace__buf_size);
        if (!b || !h1 || !h2) {
            free(b);
            free(h1);
            free(h2);
            return NULL;
        }
        b->cur = h1;
        atomic_init(&b->len, 0);
        atomic_init(&b->spare, h2);
        atomic_init(&b->used, 1);
        atomic_init(&b->busy, 0);
        tbuf_t *h = atomic_load(&trace__all);
        do
            b->next = h;
        while (!atomic_compare_exchange_weak(&trace__all, &h, b));
    }
    b->tid = (int)syscall(SYS_gettid);
    b->session = 0;
    tls_buf = b;
    pthread_setspecific(buf_key, b);
    return b;
}

/* Copies at most max bytes of s and a NUL to p; returns the end. */
static char *put_s(char *p, const char *s, size_t max)
{
    size_t n = s ? strnlen(s, max) : 0;
    memcpy(p, s ? s : "", n);
    p[n] = 0;
    return p + n + 1;
}

static char *put_header(char *p, int ph, int has_cat, int nargs, int64_t ts, int64_t x)
{
    trace_rec_t *r = (trace_rec_t *)p;
    r->ph = (uint8_t)ph;
    r->has_cat = (uint8_t)has_cat;
    r->nargs = (uint8_t)nargs;
    r->pad = 0;
    r->ts = ts;
    r->x = x;
    return p + sizeof *r;
}

/* Closes the record begun at start, ending at p: sets its size. */
static size_t close_rec(char *start, char *p)
{
    size_t size = ((size_t)(p - start) + 7) & ~(size_t)7;
    memset(p, 0, size - (size_t)(p - start)); /* the padding goes to the spill file */
    ((trace_rec_t *)start)->size = (uint32_t)size;
    return size;
}

static void thread_name_rec(tbuf_t *b)
{
    const char *name = trace__tls_name[0] ? trace__tls_name : NULL;
    char tmp[32];
    if (!name) {
        if (b->tid == trace__pid) {
            name = "MainThread";
        } else {
            snprintf(tmp, sizeof tmp, "Thread-%d", b->tid);
            name = tmp;
        }
    }
    size_t len = atomic_load_explicit(&b->len, memory_order_relaxed);
    char *start = b->cur + len;
    char *p = put_header(start, TRACE_THREAD_NAME, 0, 0, -1, 0);
    p = put_s(p, name, TRACE_STR_MAX);
    atomic_store_explicit(&b->len, len + close_rec(start, p), memory_order_release);
}

/* A buffer's pages are populated WARM_STEP ahead of its records: touched
 * one by one they would stall the recording thread a page fault each
 * (~20 us on a VM: 2.5 ms over one half of a fast queue's stream), while
 * a thread that records little still holds little. */
#define WARM_STEP (64u << 10)

static inline void warm_ahead(tbuf_t *b, size_t len)
{
    if (len + 2 * TRACE_REC_MAX <= b->warm)
        return;
    size_t to = b->warm + WARM_STEP < trace__buf_size ? b->warm + WARM_STEP : trace__buf_size;
    braid_mem_populate(b->cur + b->warm, to - b->warm);
    b->warm = to;
}

/* Opens an append on the calling thread's buffer (room for one record of
 * at most TRACE_REC_MAX bytes at the returned place), or returns NULL when
 * recording is off. Close it with end_event. */
static inline char *begin_event(tbuf_t **out)
{
    tbuf_t *b = tls_buf;
    if (__builtin_expect(!b, 0) && !(b = trace__buf_get()))
        return NULL;
    atomic_store(&b->busy, 1); /* seq_cst: pairs with stop's clear of on */
    if (!atomic_load(&braid__trace_on)) {
        atomic_store_explicit(&b->busy, 0, memory_order_release);
        return NULL;
    }
    if (atomic_load_explicit(&b->len, memory_order_relaxed) + 2 * TRACE_REC_MAX > trace__buf_size)
        spill(b);
    warm_ahead(b, atomic_load_explicit(&b->len, memory_order_relaxed));
    uint64_t s = atomic_load_explicit(&trace__session, memory_order_relaxed);
    if (__builtin_expect(b->session != s, 0)) {
        b->session = s;
        thread_name_rec(b);
    }
    *out = b;
    return b->cur + atomic_load_explicit(&b->len, memory_order_relaxed);
}

static inline void end_event(tbuf_t *b, char *start, char *p)
{
    size_t len = atomic_load_explicit(&b->len, memory_order_relaxed);
    atomic_store_explicit(&b->len, len + close_rec(start, p), memory_order_release);
    atomic_store_explicit(&b->busy, 0, memory_order_release);
}

static char *put_args(char *p, const braid_trace_arg_t *args, int nargs)
{
    for (int i = 0; i < nargs; i++) {
        *p++ = args[i].kind == 's' || args[i].kind == 'b' ? args[i].kind : 'i';
        p = put_s(p, args[i].key, TRACE_KEY_MAX);
        if (args[i].kind == 's') {
            p = put_s(p, args[i].str, TRACE_STR_MAX);
        } else {
            memcpy(p, &args[i].num, sizeof args[i].num);
            p += sizeof args[i].num;
        }
    }
    return p;
}

static int clamp_args(int nargs)
{
    return nargs < 0 ? 0 : nargs > TRACE_ARGS_MAX ? TRACE_ARGS_MAX : nargs;
}

void braid_trace_slice(const char *cat, const char *name, int64_t t0, int64_t t1,
                       const braid_trace_arg_t *args, int nargs)
{
    tbuf_t *b;
    char *start = begin_event(&b);
    if (!start)
        return;
    if (t0 < trace__started_at)
        t0 = trace__started_at;
    nargs = clamp_args(nargs);
    char *p = put_header(start, TRACE_SLICE, 1, nargs, t0, t1 > t0 ? t1 - t0 : 0);
    p = put_s(p, cat, TRACE_STR_MAX);
    p = put_s(p, name, TRACE_STR_MAX);
    end_event(b, start, put_args(p, args, nargs));
}

void braid_trace_instant(const char *cat, const char *name, const braid_trace_arg_t *args,
                         int nargs)
{
    tbuf_t *b;
    char *start = begin_event(&b);
    if (!start)
        return;
    nargs = clamp_args(nargs);
    char *p = put_header(start, TRACE_INSTANT, 1, nargs, braid_clock_now(), 0);
    p = put_s(p, cat, TRACE_STR_MAX);
    p = put_s(p, name, TRACE_STR_MAX);
    end_event(b, start, put_args(p, args, nargs));
}

void braid_trace_flow(int start_, const char *name, uint64_t id, int64_t ts)
{
    tbuf_t *b;
    char *start = begin_event(&b);
    if (!start)
        return;
    char *p = put_header(start, start_ ? TRACE_FLOW_START : TRACE_FLOW_END, 0, 0, ts, (int64_t)id);
    /* a short name ("put", "get"): a byte loop beats strnlen + memcpy */
    const char *s = name ? name : "";
    char *lim = p + TRACE_STR_MAX;
    while (*s && p < lim)
        *p++ = *s++;
    *p++ = 0;
    end_event(b, start, p);
}

void braid_trace_async(char ph, const char *cat, const char *name, uint64_t id, int64_t ts,
                       const braid_trace_arg_t *args, int nargs)
{
    if (ph != TRACE_ASYNC_BEGIN && ph != TRACE_ASYNC_END && ph != TRACE_ASYNC_INSTANT)
        return;
    tbuf_t *b;
    char *start = begin_event(&b);
    if (!start)
        return;
    nargs = clamp_args(nargs);
    if (ts < trace__started_at)
        ts = trace__started_at;
    char *p = put_header(start, ph, 1, nargs, ts, (int64_t)id);
    p = put_s(p, cat, TRACE_STR_MAX);
    p = put_s(p, name, TRACE_STR_MAX);
    end_event(b, start, put_args(p, args, nargs));
}

void braid_trace_counter(const char *name, int64_t ts, const braid_trace_arg_t *args, int nargs)
{
    tbuf_t *b;
    char *start = begin_event(&b);
    if (!start)
        return;
    nargs = clamp_args(nargs);
    char *p = put_header(start, TRACE_COUNTER, 0, nargs, ts < 0 ? braid_clock_now() : ts, 0);
    p = put_s(p, name, TRACE_STR_MAX);
    end_event(b, start, put_args(p, args, nargs));
}

void braid_trace_thread_name(const char *name)
{
    if (!name)
        name = "";
    uint64_t before = tls_buf ? tls_buf->session : 0;
    if (before == atomic_load(&trace__session) &&
        strncmp(trace__tls_name, name, sizeof trace__tls_name - 1) == 0)
        return; /* this track already has that name */
    snprintf(trace__tls_name, sizeof trace__tls_name, "%s", name);
    tbuf_t *b;
    char *start = begin_event(&b);
    if (!start)
        return;
    if (before == b->session) /* begin did not just write it */
        thread_name_rec(b);
    atomic_store_explicit(&b->busy, 0, memory_order_release);
    (void)start;
}

void braid_trace_wait(const braid_object_t *on, const char *op, int64_t since, int64_t deadline,
                      int rc)
{
    if (!op || strcmp(op, "idle") == 0)
        return;
    int64_t now = braid_clock_now();
    char label[BRAID_NAME_MAX + 1], name[128];
    const char *kind = on ? braid_object_kind(on) : NULL;
    if (on) {
        braid_object_label(on, label, sizeof label);
        snprintf(name, sizeof name, "%s %s", kind, op);
    } else {
        snprintf(name, sizeof name, "%s", op);
    }
    braid_trace_arg_t a[6];
    int n = 0;
    if (on) {
        a[n++] = (braid_trace_arg_t){"object", 's', label, 0};
        a[n++] = (braid_trace_arg_t){"kind", 's', kind, 0};
    }
    a[n++] = (braid_trace_arg_t){"op", 's', op, 0};
    a[n++] = (braid_trace_arg_t){"timeout", 'b', NULL, deadline != BRAID_FOREVER};
    a[n++] = (braid_trace_arg_t){"outcome",
                                 's',
                                 rc == 0                ? "ok"
                                 : rc == BRAID_ETIMEOUT ? "timeout"
                                                        : "cancelled",
                                 0};
    braid_trace_slice("wait", name, since, now, a, n);
    if (rc != 0 && rc != BRAID_ETIMEOUT)
        braid_trace_instant("cancel", name, a, n);
}

void trace__buffers_drain(void)
{
    char *scratch = NULL;
    for (tbuf_t *b = atomic_load(&trace__all); b; b = b->next) {
        size_t len = atomic_load(&b->len);
        if (len && (scratch || (scratch = malloc(TRACE_JSON_SCRATCH))))
            trace__write_json(trace__out_fd(), b->cur, len, trace__pid, b->tid, scratch);
        atomic_store(&b->len, 0);
    }
    free(scratch);
}

void trace__buffers_after_fork(void)
{
    for (tbuf_t *b = atomic_load(&trace__all); b; b = b->next) {
        atomic_store(&b->len, 0);
        atomic_store(&b->busy, 0);
        if (!atomic_load(&b->spare))
            atomic_store(&b->spare, malloc(trace__buf_size));
        if (b != tls_buf)
            atomic_store(&b->used, 0);
        b->session = 0;
    }
    if (tls_buf)
        tls_buf->tid = (int)syscall(SYS_gettid);
}
