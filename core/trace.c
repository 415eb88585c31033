/* The timeline recorder. Buffers: each thread owns a tbuf (two halves of
 * buf_size bytes); it appends formatted events to the current half with no
 * lock, flagging busy around an append so stop can wait it out (Dekker
 * style: the writer sets busy then re-reads on; stop clears on then waits
 * for busy to drop). A full half goes to the flusher queue (a mutex, once
 * per half) and the spare takes its place; with no spare back yet the
 * thread writes the half itself. Children write "<path>.<pid>.part"
 * chunks that the parent appends before closing the JSON. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "fdio.h"
#include "trace.h"

atomic_int braid__trace_on;

#define EVENT_MAX 4096 /* room reserved per event: strings are truncated */
#define STR_MAX 300
#define DEFAULT_BUF (256 * 1024)

typedef struct tbuf tbuf_t;
struct tbuf {
    tbuf_t *next;    /* all buffers ever made (append-only) */
    atomic_int used; /* owned by a live thread */
    atomic_int busy; /* its owner is appending */
    char *cur;
    size_t len;
    _Atomic(char *) spare; /* NULL while the other half is being written */
    uint64_t session;      /* the session its thread_name went to */
    int tid;
    int ids_pid;  /* the pid ids was made for */
    char ids[48]; /* ,"pid":P,"tid":T */
    size_t ids_len;
};

typedef struct job {
    struct job *next;
    tbuf_t *owner;
    char *data;
    size_t len;
} job_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* start/stop, flusher queue */
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static _Atomic(tbuf_t *) all;
static job_t *q_head, *q_tail;
static int flusher_running, flusher_quit;
static pthread_t flusher;
static size_t buf_size = DEFAULT_BUF;
static int fd = -1;
static int child;           /* writing a chunk for the parent's file */
static atomic_int finished; /* the closing bracket is written */
static char path[4096], part_path[4200];
static char proc_name[256];
static atomic_ullong session;
static int64_t started_at;
static int pid;
static _Thread_local tbuf_t *tls_buf;
static _Thread_local char tls_name[64];
static pthread_key_t buf_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static const char CLOSING[] =
    "\n],\"displayTimeUnit\":\"ms\",\"otherData\":{\"tool\":\"braid\"}}\n";

static int gettid_(void)
{
    return (int)syscall(SYS_gettid);
}

/* The file this process writes (a child opens its chunk on first use). */
static int out_fd(void)
{
    if (fd < 0 && child && part_path[0])
        fd = open(part_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd;
}

/* ---- formatting ---- */

typedef struct out {
    char *p, *end;
} out_t;

static void put_raw(out_t *o, const char *s, size_t n)
{
    if (n > (size_t)(o->end - o->p))
        n = (size_t)(o->end - o->p);
    memcpy(o->p, s, n);
    o->p += n;
}

static void put_lit(out_t *o, const char *s)
{
    put_raw(o, s, strlen(s));
}

static const char DIGITS2[] = "00010203040506070809101112131415161718192021222324252627282930313233"
                              "34353637383940414243444546474849505152535455565758596061626364656667"
                              "6869707172737475767778798081828384858687888990919293949596979899";

static void put_uint(out_t *o, uint64_t v)
{
    char tmp[24];
    int n = 24;
    while (v >= 100) { /* two digits a division: numbers here are long */
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        tmp[--n] = DIGITS2[2 * r + 1];
        tmp[--n] = DIGITS2[2 * r];
    }
    if (v >= 10) {
        tmp[--n] = DIGITS2[2 * v + 1];
        tmp[--n] = DIGITS2[2 * v];
    } else {
        tmp[--n] = (char)('0' + v);
    }
    put_raw(o, tmp + n, (size_t)(24 - n));
}

static void put_int(out_t *o, int64_t v)
{
    if (v < 0 && o->p < o->end) {
        *o->p++ = '-';
        put_uint(o, (uint64_t)(-(v + 1)) + 1);
    } else {
        put_uint(o, (uint64_t)v);
    }
}

/* ns as microseconds with three decimals */
static void put_us(out_t *o, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    put_uint(o, (uint64_t)ns / 1000);
    char frac[4] = {
        '.', (char)('0' + ns / 100 % 10), (char)('0' + ns / 10 % 10), (char)('0' + ns % 10)};
    put_raw(o, frac, 4);
}

/* Length of a valid UTF-8 sequence at s (n bytes left), or 0. */
static int utf8_len(const unsigned char *s, size_t n)
{
    int len = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (!len || (size_t)len > n)
        return 0;
    for (int i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

static void put_str(out_t *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    if (!s)
        s = "";
    size_t n = strnlen(s, STR_MAX);
    const unsigned char *u = (const unsigned char *)s;
    put_raw(o, "\"", 1);
    for (size_t i = 0; i < n && o->end - o->p > 8; i++) {
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put_raw(o, e, 2);
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put_raw(o, e, 6);
        } else if (c < 0x80) {
            *o->p++ = (char)c;
        } else {
            int l = utf8_len(u + i, n - i);
            if (l) {
                put_raw(o, s + i, (size_t)l);
                i += (size_t)l - 1;
            } else {
                *o->p++ = '?';
            }
        }
    }
    put_raw(o, "\"", 1);
}

static void put_args(out_t *o, const braid_trace_arg_t *args, int nargs)
{
    put_lit(o, ",\"args\":{");
    for (int i = 0; i < nargs; i++) {
        if (i)
            put_raw(o, ",", 1);
        put_str(o, args[i].key);
        put_raw(o, ":", 1);
        if (args[i].kind == 's')
            put_str(o, args[i].str);
        else if (args[i].kind == 'b')
            put_lit(o, args[i].num ? "true" : "false");
        else
            put_int(o, args[i].num);
    }
    put_raw(o, "}", 1);
}

/* ",\n{"ph":"X","cat":..,"name":..,"pid":..,"tid":..,"ts":.. */
static void put_head(out_t *o, const char *ph, const char *cat, const char *name, int tid,
                     int64_t ts)
{
    put_lit(o, ",\n{\"ph\":\"");
    put_lit(o, ph);
    put_raw(o, "\"", 1);
    if (cat) {
        put_lit(o, ",\"cat\":");
        put_str(o, cat);
    }
    put_lit(o, ",\"name\":");
    put_str(o, name);
    if (tls_buf && tls_buf->tid == tid && tls_buf->ids_pid == pid) { /* the usual case */
        put_raw(o, tls_buf->ids, tls_buf->ids_len);
    } else {
        put_lit(o, ",\"pid\":");
        put_int(o, pid);
        put_lit(o, ",\"tid\":");
        put_int(o, tid);
    }
    if (ts >= 0) {
        put_lit(o, ",\"ts\":");
        put_us(o, ts);
    }
}

/* ---- buffers ---- */

static void enqueue_locked(tbuf_t *b, char *data, size_t len)
{
    job_t *j = malloc(sizeof *j);
    if (!j) { /* write it here */
        braid_write_all(out_fd(), data, len);
        atomic_store(&b->spare, data);
        return;
    }
    j->next = NULL;
    j->owner = b;
    j->data = data;
    j->len = len;
    if (q_tail)
        q_tail->next = j;
    else
        q_head = j;
    q_tail = j;
    pthread_cond_signal(&cv);
}

static void *flusher_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (!q_head && !flusher_quit)
            pthread_cond_wait(&cv, &mu);
        job_t *j = q_head;
        if (!j)
            break;
        q_head = j->next;
        if (!q_head)
            q_tail = NULL;
        pthread_mutex_unlock(&mu);
        braid_write_all(out_fd(), j->data, j->len);
        atomic_store_explicit(&j->owner->spare, j->data, memory_order_release);
        free(j);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* The current half of b is full (or we are done with it): write it out. */
static void spill(tbuf_t *b)
{
    if (!b->len)
        return;
    char *spare = atomic_exchange_explicit(&b->spare, NULL, memory_order_acquire);
    if (!spare) { /* the other half is still in flight: write this one here */
        braid_write_all(out_fd(), b->cur, b->len);
        b->len = 0;
        return;
    }
    pthread_mutex_lock(&mu);
    if (!flusher_running && !flusher_quit) {
        flusher_running = pthread_create(&flusher, NULL, flusher_main, NULL) == 0;
    }
    if (flusher_running) {
        enqueue_locked(b, b->cur, b->len);
        b->cur = spare;
    } else {
        braid_write_all(out_fd(), b->cur, b->len);
        atomic_store(&b->spare, spare);
    }
    pthread_mutex_unlock(&mu);
    b->len = 0;
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

static tbuf_t *buf_get(void)
{
    tbuf_t *b = tls_buf;
    if (b)
        return b;
    pthread_once(&key_once, make_key);
    for (b = atomic_load(&all); b; b = b->next) {
        int z = 0;
        if (atomic_compare_exchange_strong(&b->used, &z, 1))
            break;
    }
    if (!b) {
        b = calloc(1, sizeof *b);
        char *h1 = malloc(buf_size), *h2 = malloc(buf_size);
        if (!b || !h1 || !h2) {
            free(b);
            free(h1);
            free(h2);
            return NULL;
        }
        b->cur = h1;
        atomic_init(&b->spare, h2);
        atomic_init(&b->used, 1);
        atomic_init(&b->busy, 0);
        tbuf_t *h = atomic_load(&all);
        do
            b->next = h;
        while (!atomic_compare_exchange_weak(&all, &h, b));
    }
    b->tid = gettid_();
    b->session = 0;
    b->ids_pid = 0; /* made on first use */
    tls_buf = b;
    pthread_setspecific(buf_key, b);
    return b;
}

/* Caches ,"pid":P,"tid":T for b (pid changes in a forked child). */
static void make_ids(tbuf_t *b)
{
    out_t o = {b->ids, b->ids + sizeof b->ids};
    put_lit(&o, ",\"pid\":");
    put_int(&o, pid);
    put_lit(&o, ",\"tid\":");
    put_int(&o, b->tid);
    b->ids_len = (size_t)(o.p - b->ids);
    b->ids_pid = pid;
}

static void put_thread_name(out_t *o, tbuf_t *b)
{
    const char *name = tls_name[0] ? tls_name : NULL;
    char tmp[32];
    if (!name) {
        if (b->tid == pid) {
            name = "MainThread";
        } else {
            snprintf(tmp, sizeof tmp, "Thread-%d", b->tid);
            name = tmp;
        }
    }
    put_head(o, "M", NULL, "thread_name", b->tid, -1);
    put_lit(o, ",\"args\":{\"name\":");
    put_str(o, name);
    put_lit(o, "}}");
}

/* Opens an append on the calling thread's buffer, or returns NULL (off).
 * Call end_event after writing at most EVENT_MAX bytes. */
static tbuf_t *begin_event(out_t *o)
{
    tbuf_t *b = buf_get();
    if (!b)
        return NULL;
    atomic_store(&b->busy, 1); /* seq_cst: pairs with stop's clear of on */
    if (!atomic_load(&braid__trace_on)) {
        atomic_store(&b->busy, 0);
        return NULL;
    }
    if (b->len + 2 * EVENT_MAX > buf_size)
        spill(b);
    if (b->ids_pid != pid)
        make_ids(b);
    o->p = b->cur + b->len;
    o->end = b->cur + buf_size;
    uint64_t s = atomic_load_explicit(&session, memory_order_relaxed);
    if (b->session != s) {
        b->session = s;
        put_thread_name(o, b);
    }
    return b;
}

static void end_event(tbuf_t *b, out_t *o)
{
    b->len = (size_t)(o->p - b->cur);
    atomic_store_explicit(&b->busy, 0, memory_order_release);
}

/* ---- events ---- */

void braid_trace_slice(const char *cat, const char *name, int64_t t0, int64_t t1,
                       const braid_trace_arg_t *args, int nargs)
{
    out_t o;
    tbuf_t *b = begin_event(&o);
    if (!b)
        return;
    if (t0 < started_at)
        t0 = started_at;
    put_head(&o, "X", cat, name, b->tid, t0);
    put_lit(&o, ",\"dur\":");
    put_us(&o, t1 > t0 ? t1 - t0 : 0);
    if (nargs)
        put_args(&o, args, nargs);
    put_raw(&o, "}", 1);
    end_event(b, &o);
}

void braid_trace_instant(const char *cat, const char *name, const braid_trace_arg_t *args,
                         int nargs)
{
    out_t o;
    tbuf_t *b = begin_event(&o);
    if (!b)
        return;
    put_head(&o, "i", cat, name, b->tid, braid_clock_now());
    put_lit(&o, ",\"s\":\"t\"");
    if (nargs)
        put_args(&o, args, nargs);
    put_raw(&o, "}", 1);
    end_event(b, &o);
}

void braid_trace_flow(int start, const char *name, uint64_t id, int64_t ts)
{
    out_t o;
    tbuf_t *b = begin_event(&o);
    if (!b)
        return;
    put_head(&o, start ? "s" : "f", "flow", name, b->tid, ts);
    put_lit(&o, ",\"id\":");
    put_uint(&o, id);
    if (!start)
        put_lit(&o, ",\"bp\":\"e\"");
    put_raw(&o, "}", 1);
    end_event(b, &o);
}

void braid_trace_async(char ph, const char *cat, const char *name, uint64_t id, int64_t ts,
                       const braid_trace_arg_t *args, int nargs)
{
    out_t o;
    tbuf_t *b = begin_event(&o);
    if (!b)
        return;
    char p[2] = {ph, 0};
    put_head(&o, p, cat, name, b->tid, ts < started_at ? started_at : ts);
    put_lit(&o, ",\"id\":");
    put_uint(&o, id);
    if (nargs)
        put_args(&o, args, nargs);
    put_raw(&o, "}", 1);
    end_event(b, &o);
}

void braid_trace_counter(const char *name, int64_t ts, const braid_trace_arg_t *args, int nargs)
{
    out_t o;
    tbuf_t *b = begin_event(&o);
    if (!b)
        return;
    put_head(&o, "C", NULL, name, b->tid, ts < 0 ? braid_clock_now() : ts);
    put_args(&o, args, nargs);
    put_raw(&o, "}", 1);
    end_event(b, &o);
}

void braid_trace_thread_name(const char *name)
{
    if (!name)
        name = "";
    uint64_t before = tls_buf ? tls_buf->session : 0;
    if (before == atomic_load(&session) && strncmp(tls_name, name, sizeof tls_name - 1) == 0)
        return; /* this track already has that name */
    snprintf(tls_name, sizeof tls_name, "%s", name);
    out_t o;
    tbuf_t *b = begin_event(&o);
    if (!b)
        return;
    if (before == b->session) /* begin did not just write it */
        put_thread_name(&o, b);
    end_event(b, &o);
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

static _Thread_local char tls_job[STR_MAX];

void braid_trace_set_job_name(const char *name)
{
    snprintf(tls_job, sizeof tls_job, "%s", name ? name : "");
}

const char *braid_trace_job_name(void)
{
    return tls_job[0] ? tls_job : "job";
}

int64_t braid_trace_started_at(void)
{
    return started_at;
}

/* ---- sessions ---- */

static void header(void)
{
    char buf[1024];
    out_t o = {buf, buf + sizeof buf};
    if (!child)
        put_lit(&o, "{\"traceEvents\":[\n{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":");
    else
        put_lit(&o, ",\n{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":");
    put_int(&o, pid);
    put_lit(&o, ",\"tid\":");
    put_int(&o, pid);
    put_lit(&o, ",\"args\":{\"name\":");
    put_str(&o, proc_name);
    put_lit(&o, "}}");
    braid_write_all(out_fd(), buf, (size_t)(o.p - buf));
}

static void on_fatal(int sig)
{
    /* async-signal-safe: write the closing once, then die as we would */
    if (!child && fd >= 0 && !atomic_exchange(&finished, 1)) {
        for (tbuf_t *b = atomic_load(&all); b; b = b->next)
            if (atomic_load(&b->used) && b->len < buf_size && write(fd, b->cur, b->len) < 0)
                break;
        if (write(fd, CLOSING, sizeof CLOSING - 1) < 0)
            fd = -1;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_fatal(void)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTERM};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
            !(old.sa_flags & SA_SIGINFO)) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_fatal;
            sigemptyset(&sa.sa_mask);
            sa.sa_flags = SA_RESETHAND;
            sigaction(sigs[i], &sa, NULL);
        }
    }
}

static void at_exit(void)
{
    braid_trace_stop();
}

static void atfork_child(void)
{
    if (!atomic_load(&braid__trace_on) && !child)
        return;
    /* this process's copy: the other threads and the flusher are gone */
    pthread_mutex_init(&mu, NULL);
    pthread_cond_init(&cv, NULL);
    q_head = q_tail = NULL; /* the parent writes those */
    flusher_running = flusher_quit = 0;
    for (tbuf_t *b = atomic_load(&all); b; b = b->next) {
        b->len = 0;
        atomic_store(&b->busy, 0);
        if (!atomic_load(&b->spare))
            atomic_store(&b->spare, malloc(buf_size));
        if (b != tls_buf)
            atomic_store(&b->used, 0);
        b->session = 0;
    }
    child = 1;
    fd = -1;
    pid = getpid();
    tls_name[0] = 0; /* the forking thread is this process's main thread */
    if (tls_buf)
        tls_buf->tid = gettid_();
    snprintf(part_path, sizeof part_path, "%s.%d.part", path, pid);
    snprintf(proc_name, sizeof proc_name, "worker %d", pid);
    atomic_fetch_add(&session, 1);
    if (atomic_load(&braid__trace_on))
        header();
}

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void install_hooks(void)
{
    atexit(at_exit);
    pthread_atfork(NULL, NULL, atfork_child);
}

static int start(const char *p, const char *name, int as_child)
{
    pthread_mutex_lock(&mu);
    if (atomic_load(&braid__trace_on)) {
        pthread_mutex_unlock(&mu);
        return BRAID_EINVAL;
    }
    const char *bs = getenv("BRAID_TRACE_BUFFER");
    if (bs && atol(bs) >= 4 * EVENT_MAX && !atomic_load(&all))
        buf_size = (size_t)atol(bs);
    pid = getpid();
    child = as_child;
    snprintf(path, sizeof path, "%s", p);
    if (as_child) {
        snprintf(part_path, sizeof part_path, "%s.%d.part", path, pid);
        fd = -1;
    } else {
        part_path[0] = 0;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            pthread_mutex_unlock(&mu);
            return BRAID_EOS;
        }
        char pidbuf[24];
        snprintf(pidbuf, sizeof pidbuf, "%d", pid);
        setenv("BRAID_TRACE", path, 1);
        setenv("BRAID_TRACE_PARENT", pidbuf, 1);
    }
    if (name)
        snprintf(proc_name, sizeof proc_name, "%s", name);
    else
        snprintf(proc_name, sizeof proc_name, "%s %d", as_child ? "worker" : "braid", pid);
    atomic_store(&finished, 0);
    flusher_quit = 0;
    started_at = braid_clock_now();
    atomic_fetch_add(&session, 1);
    header();
    pthread_once(&hooks_once, install_hooks);
    if (!as_child)
        install_fatal();
    atomic_store(&braid__trace_on, 1);
    pthread_mutex_unlock(&mu);
    return 0;
}

int braid_trace_start(const char *p, const char *name)
{
    return start(p, name, 0);
}

void braid_trace_set_process_name(const char *name)
{
    if (!name)
        return;
    snprintf(proc_name, sizeof proc_name, "%s", name);
    if (atomic_load(&braid__trace_on))
        header(); /* another process_name event: the last one names it */
}

const char *braid_trace_path(void)
{
    return atomic_load(&braid__trace_on) ? path : NULL;
}

/* Appends the children's chunks "<path>.<pid>.part" and removes them. */
static void merge_parts(void)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    const char *base = path;
    if (slash) {
        *slash = 0;
        base = path + (slash - dir) + 1;
    } else {
        snprintf(dir, sizeof dir, ".");
    }
    if (!dir[0])
        snprintf(dir, sizeof dir, "/");
    size_t bl = strlen(base);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char buf[65536], full[8300];
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n <= bl + 6 || strncmp(e->d_name, base, bl) != 0 || e->d_name[bl] != '.' ||
            strcmp(e->d_name + n - 5, ".part") != 0)
            continue;
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        int in = open(full, O_RDONLY | O_CLOEXEC);
        if (in < 0)
            continue;
        ssize_t r;
        while ((r = read(in, buf, sizeof buf)) > 0)
            braid_write_all(fd, buf, (size_t)r);
        close(in);
        unlink(full);
    }
    closedir(d);
}

static void finish(void)
{
    pthread_mutex_lock(&mu);
    flusher_quit = 1;
    pthread_cond_broadcast(&cv);
    int joined = flusher_running;
    pthread_mutex_unlock(&mu);
    if (joined && !pthread_equal(pthread_self(), flusher))
        pthread_join(flusher, NULL);
    pthread_mutex_lock(&mu);
    flusher_running = 0;
    pthread_mutex_unlock(&mu);
    for (tbuf_t *b = atomic_load(&all); b; b = b->next) {
        if (b->len)
            braid_write_all(out_fd(), b->cur, b->len);
        b->len = 0;
    }
}

int braid_trace_stop(void)
{
    if (!atomic_load(&braid__trace_on))
        return BRAID_EINVAL;
    if (gettid_() == pid) /* the main thread's run, for what it did outside slices */
        braid_trace_slice("thread",
                          tls_name[0] ? tls_name : "MainThread",
                          started_at,
                          braid_clock_now(),
                          NULL,
                          0);
    if (!atomic_exchange(&braid__trace_on, 0))
        return BRAID_EINVAL;
    for (tbuf_t *b = atomic_load(&all); b; b = b->next)
        for (int i = 0; atomic_load(&b->busy); i++)
            if (i > 64)
                sched_yield();
    finish();
    if (!child) {
        merge_parts();
        if (!atomic_exchange(&finished, 1))
            braid_write_all(fd, CLOSING, sizeof CLOSING - 1);
        unsetenv("BRAID_TRACE");
        unsetenv("BRAID_TRACE_PARENT");
    }
    if (fd >= 0)
        close(fd);
    fd = -1;
    return 0;
}

void braid_trace_flush_child(void)
{
    if (child)
        braid_trace_stop();
}

static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void init_env(void)
{
    const char *p = getenv("BRAID_TRACE");
    if (!p || !*p || atomic_load(&braid__trace_on))
        return;
    const char *parent = getenv("BRAID_TRACE_PARENT");
    int as_child = parent && atoi(parent) > 0 && atoi(parent) != getpid();
    start(p, NULL, as_child);
}

void braid_trace_init_from_env(void)
{
    pthread_once(&env_once, init_env);
}
