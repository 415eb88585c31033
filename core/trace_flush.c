/* Flushing: the flusher thread and the spill file.
 *
 * A recording thread hands a full buffer half to the flusher, which formats
 * it as JSON into the trace file and gives it back as the thread's spare.
 * The flusher runs at SCHED_IDLE: it formats on a core nothing else
 * wants, never in the way of the program's threads. A thread whose spare
 * is not back yet (the flusher is behind, or starved because every core is
 * busy) does not format either: it appends the half as it is, binary, to a
 * spill file ("<file>.<pid>.spill"), one write(2). Stop (and the crash
 * path) format the spill file into the trace and remove it. So recording
 * costs the program only the appends of records, and memory stays at two
 * halves per thread however long the run. */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fdio.h"
#include "trace_int.h"

/* ---- the flusher ---- */

typedef struct job {
    struct job *next;
    tbuf_t *owner;
    char *data;
    size_t len, done; /* bytes of records; formatted so far */
    int pid, tid;
} job_t;

/* The flusher formats a job in pieces of this many bytes of records and,
 * between pieces, gives the job back when stop is waiting: at idle
 * priority it may get little CPU on a busy machine, so stop formats what
 * is left itself instead of waiting for it. */
#define PIECE 4096

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static job_t *q_head, *q_tail;
static int running, quit;
static atomic_int hurry; /* stop is waiting: hand the job back */
static pthread_t flusher;
static char *scratch;                   /* the flusher's */
static atomic_int writing, flusher_tid; /* the flusher is formatting; its tid */

static void push_front_locked(job_t *j)
{
    j->next = q_head;
    q_head = j;
    if (!q_tail)
        q_tail = j;
}

/* Formats what is left of j in pieces; returns 0 if it stopped early
 * (hurry), with j->done saying how far it got. */
static int format_job(job_t *j, char *buf, int may_stop)
{
    while (j->done < j->len) {
        if (may_stop && atomic_load(&hurry))
            return 0;
        size_t n = j->len - j->done < PIECE ? j->len - j->done : PIECE;
        size_t used = trace__write_json(trace__out_fd(),
                                        j->data + j->done,
                                        n < TRACE_REC_MAX ? j->len - j->done : n,
                                        j->pid,
                                        j->tid,
                                        buf);
        if (!used)
            break; /* not a record: drop the rest */
        j->done += used;
    }
    return 1;
}

static void job_done(job_t *j)
{
    atomic_store_explicit(&j->owner->spare, j->data, memory_order_release);
    free(j);
}

static void *flusher_main(void *arg)
{
    (void)arg;
#ifdef SCHED_IDLE
    struct sched_param sp = {0};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
#endif
    atomic_store(&flusher_tid, (int)syscall(SYS_gettid));
    pthread_mutex_lock(&mu);
    for (;;) {
        while (!q_head && !quit)
            pthread_cond_wait(&cv, &mu);
        job_t *j = q_head;
        if (!j || atomic_load(&hurry))
            break;
        q_head = j->next;
        if (!q_head)
            q_tail = NULL;
        pthread_mutex_unlock(&mu);
        atomic_store(&writing, 1); /* seq_cst: pairs with the crash path */
        int whole = atomic_load(&trace__fatal_tid) || format_job(j, scratch, 1);
        atomic_store(&writing, 0);
        pthread_mutex_lock(&mu);
        if (!whole) {
            push_front_locked(j); /* stop formats the rest */
            break;
        }
        pthread_mutex_unlock(&mu);
        job_done(j);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

int trace__flusher_take(tbuf_t *b, char *data, size_t len, int tid)
{
    job_t *j = malloc(sizeof *j);
    if (!j)
        return -1;
    *j = (job_t){NULL, b, data, len, 0, trace__pid, tid};
    pthread_mutex_lock(&mu);
    if (!running && !quit) {
        if (!scratch)
            scratch = malloc(TRACE_JSON_SCRATCH);
        running = scratch && pthread_create(&flusher, NULL, flusher_main, NULL) == 0;
    }
    if (!running) {
        pthread_mutex_unlock(&mu);
        free(j);
        return -1;
    }
    if (q_tail)
        q_tail->next = j;
    else
        q_head = j;
    q_tail = j;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    return 0;
}

void trace__flusher_quiesce(void)
{
    if (atomic_load(&flusher_tid) == (int)syscall(SYS_gettid))
        return; /* the flusher itself crashed */
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < 500 && atomic_load(&writing); i++)
        nanosleep(&ms, NULL); /* it stops at its next write */
}

void trace__flusher_finish(void)
{
    pthread_mutex_lock(&mu);
    quit = 1;
    atomic_store(&hurry, 1);
    pthread_cond_broadcast(&cv);
    int joined = running;
    pthread_mutex_unlock(&mu);
    if (joined && !pthread_equal(pthread_self(), flusher))
        pthread_join(flusher, NULL);
    /* what the flusher did not get to: format it here */
    pthread_mutex_lock(&mu);
    job_t *j = q_head;
    q_head = q_tail = NULL;
    running = 0;
    quit = 0; /* the next session starts a flusher again */
    atomic_store(&hurry, 0);
    pthread_mutex_unlock(&mu);
    char *buf = j ? malloc(TRACE_JSON_SCRATCH) : NULL;
    while (j) {
        job_t *next = j->next;
        if (buf)
            format_job(j, buf, 0);
        job_done(j);
        j = next;
    }
    free(buf);
}

void trace__flusher_after_fork(void)
{
    pthread_mutex_init(&mu, NULL);
    pthread_cond_init(&cv, NULL);
    q_head = q_tail = NULL; /* the parent writes those */
    running = quit = 0;
}

/* ---- the spill file ---- */

/* Each spilled half: this header, then len bytes of records. */
typedef struct spill_hdr {
    uint32_t magic, len;
    int32_t pid, tid;
} spill_hdr_t;
#define SPILL_MAGIC 0x62727370u /* "psrb" */

static pthread_mutex_t spill_mu = PTHREAD_MUTEX_INITIALIZER;
static int spill_fd = -1;
static atomic_int spill_used; /* spill_fd holds something */
static char spill_path[4200];

void trace__spill_reset(const char *base, int pid)
{
    if (spill_fd >= 0)
        close(spill_fd); /* a forked child's copy of its parent's */
    spill_fd = -1;
    atomic_store(&spill_used, 0);
    pthread_mutex_init(&spill_mu, NULL);
    snprintf(spill_path, sizeof spill_path, "%s.%d.spill", base, pid);
}

int trace__spill(const char *recs, size_t len, int tid)
{
    spill_hdr_t h = {SPILL_MAGIC, (uint32_t)len, trace__pid, tid};
    struct iovec iov[2] = {{&h, sizeof h}, {(void *)recs, len}};
    int rc = -1;
    pthread_mutex_lock(&spill_mu);
    if (spill_fd < 0)
        spill_fd = open(spill_path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (spill_fd >= 0) {
        ssize_t n;
        do
            n = writev(spill_fd, iov, 2);
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)(sizeof h + len)) {
            rc = 0;
        } else if (n > 0) { /* short (disk full?): resume after the header */
            size_t done = (size_t)n;
            if (done < sizeof h)
                rc = braid_write_all(spill_fd, (char *)&h + done, sizeof h - done) ||
                             braid_write_all(spill_fd, recs, len)
                         ? -1
                         : 0;
            else
                rc = braid_write_all(spill_fd, recs + (done - sizeof h), len - (done - sizeof h));
        }
        atomic_store(&spill_used, 1);
    }
    pthread_mutex_unlock(&spill_mu);
    return rc;
}

static ssize_t pread_all(int fd, char *p, size_t n, off_t at)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, p + got, n - got, at + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

void trace__spill_format(int out, char *fmt_scratch, char *rbuf, size_t rbuf_size)
{
    if (!atomic_load(&spill_used) || spill_fd < 0)
        return;
    off_t at = 0;
    spill_hdr_t h;
    while (pread_all(spill_fd, (char *)&h, sizeof h, at) == (ssize_t)sizeof h &&
           h.magic == SPILL_MAGIC) {
        at += (off_t)sizeof h;
        size_t left = h.len;
        while (left) { /* in pieces of whole records */
            size_t want = left < rbuf_size ? left : rbuf_size;
            ssize_t got = pread_all(spill_fd, rbuf, want, at);
            if (got <= 0)
                return;
            size_t used = trace__write_json(out, rbuf, (size_t)got, h.pid, h.tid, fmt_scratch);
            if (!used)
                return; /* not a record: give up on the rest */
            at += (off_t)used;
            left -= used;
            if (used < (size_t)got && (size_t)got < want)
                return; /* the file ends inside a record */
        }
    }
}

void trace__spill_unlink(void)
{
    if (atomic_load(&spill_used))
        unlink(spill_path);
}

void trace__spill_finish(int out)
{
    char *fmt = malloc(TRACE_JSON_SCRATCH), *rbuf = malloc(TRACE_JSON_SCRATCH);
    pthread_mutex_lock(&spill_mu);
    if (fmt && rbuf)
        trace__spill_format(out, fmt, rbuf, TRACE_JSON_SCRATCH);
    if (spill_fd >= 0) {
        close(spill_fd);
        unlink(spill_path);
    }
    spill_fd = -1;
    atomic_store(&spill_used, 0);
    pthread_mutex_unlock(&spill_mu);
    free(fmt);
    free(rbuf);
}
