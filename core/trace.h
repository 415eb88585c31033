/* The timeline: Chrome trace-event JSON (docs/tracing.md) recorded into
 * per-thread buffers, formatted and written off the recording threads.
 *
 * Cost with tracing off: callers test braid_trace_enabled() (one relaxed
 * load and a predictable branch) before preparing any event. With tracing
 * on, an event is a compact binary record appended to the calling thread's
 * buffer (no lock, no formatting); a full buffer goes to an idle-priority
 * flusher that formats it as JSON, or, when the flusher is behind, to a
 * spill file formatted at stop (core/trace_int.h), so memory stays at two
 * buffers per thread however long the run. */
#ifndef BRAID_TRACE_H
#define BRAID_TRACE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "object.h"

#ifdef __cplusplus
extern "C" {
#endif

extern atomic_int braid__trace_on;

/* Whether recording is on. Building with -DBRAID_TRACE_DISABLED makes it
 * a constant 0 (the baseline bench/trace/overhead.py compares against). */
static inline int braid_trace_enabled(void)
{
#ifdef BRAID_TRACE_DISABLED
    return 0;
#else
    return __builtin_expect(atomic_load_explicit(&braid__trace_on, memory_order_relaxed), 0);
#endif
}

/* Whether queues record a flow arrow for every item even on a fast
 * stream (BRAID_TRACE_ARROWS=all when recording started; see queue.c). */
int braid_trace_every_arrow(void);

/* Starts recording into path (created or truncated) naming this process
 * process_name (NULL: "braid <pid>"). Child processes started afterwards
 * (fork, or exec with the environment) write into the same file: they see
 * BRAID_TRACE and BRAID_TRACE_PARENT, which start sets. Returns 0,
 * BRAID_EINVAL (already recording) or BRAID_EOS (errno set). */
int braid_trace_start(const char *path, const char *process_name);
/* Stops recording: flushes every buffer, merges the children's chunks and
 * closes the JSON. A child process only flushes its chunk. Returns 0 or
 * BRAID_EINVAL (not recording). Safe to call at exit. */
int braid_trace_stop(void);
/* Once per process: starts recording if BRAID_TRACE is set (as a child if
 * BRAID_TRACE_PARENT names another process). */
void braid_trace_init_from_env(void);
/* The path being recorded, or NULL. */
const char *braid_trace_path(void);
/* Names this process's track group (e.g. in a child: "Process-1"). */
void braid_trace_set_process_name(const char *name);
/* In a forked child about to _exit: flushes what it recorded. */
void braid_trace_flush_child(void);

/* One event argument: kind 's' (str), 'i' (num) or 'b' (num as bool). */
typedef struct braid_trace_arg {
    const char *key;
    char kind;
    const char *str;
    int64_t num;
} braid_trace_arg_t;

/* Events of the calling thread (times are braid_clock_now() ns). Each is a
 * no-op when recording is off. */
void braid_trace_slice(const char *cat, const char *name, int64_t t0, int64_t t1,
                       const braid_trace_arg_t *args, int nargs);
void braid_trace_instant(const char *cat, const char *name, const braid_trace_arg_t *args,
                         int nargs);
/* A flow arrow end: start 1 for "s", 0 for "f" (bp "e"); at time ts. */
void braid_trace_flow(int start, const char *name, uint64_t id, int64_t ts);
/* A nestable async event of track id (unique in the trace, < 2^53): ph 'b'
 * begins a slice, 'e' ends the innermost open one, 'n' is an instant; at
 * time ts (clipped to the session's start). The track is (cat, id). */
void braid_trace_async(char ph, const char *cat, const char *name, uint64_t id, int64_t ts,
                       const braid_trace_arg_t *args, int nargs);
/* A counter sample at ts (< 0: now). */
void braid_trace_counter(const char *name, int64_t ts, const braid_trace_arg_t *args, int nargs);
/* The calling OS thread now runs braid thread name (thread_name event). */
void braid_trace_thread_name(const char *name);
/* A finished blocking wait of the calling thread (from its wait record). */
void braid_trace_wait(const braid_object_t *on, const char *op, int64_t since, int64_t deadline,
                      int rc);
/* The name of the job the calling worker runs (set by the runner, e.g.
 * "script.lua:12"; read and cleared by the executor). */
void braid_trace_set_job_name(const char *name);
const char *braid_trace_job_name(void);
/* The start of the current session (to clip slices begun before it). */
int64_t braid_trace_started_at(void);

/* Flow ids: the arrow submit -> job, job -> result(), put -> get. */
static inline uint64_t braid_trace_flow_id(uint64_t id, int which)
{
    return ((id & 0x3ffffffffffULL) << 2 | (uint64_t)which) & ((1ULL << 53) - 1);
}

#ifdef __cplusplus
}
#endif
#endif
