/* Inside the recorder (core/trace*.c only). Three parts:
 * - trace_record.c: each thread's buffer and the braid_trace_* events,
 *   appended as compact binary records (no formatting on the hot path);
 * - trace_json.c: records -> Chrome trace JSON (async-signal-safe);
 * - trace_flush.c: the flusher thread that formats full buffers off the
 *   recording threads, and the spill file for halves it has no time for;
 * - trace.c: sessions (start, stop, children, fork) and the crash paths.
 *
 * A record is a trace_rec_t header, then its strings and arguments:
 * [cat NUL] name NUL, then per argument its kind ('s', 'i', 'b'), its key
 * NUL and its value (a string NUL, or 8 bytes of int64), padded to 8
 * bytes. Strings are copied in (truncated), so a record never points
 * outside itself: any thread, or a signal handler, can format it. */
#ifndef BRAID_TRACE_INT_H
#define BRAID_TRACE_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "trace.h"

#define TRACE_STR_MAX 300  /* bytes kept of a name, category or value */
#define TRACE_KEY_MAX 64   /* bytes kept of an argument's key */
#define TRACE_ARGS_MAX 8   /* arguments kept per event */
#define TRACE_REC_MAX 4096 /* bound on one record (the sizes above fit) */
#define TRACE_DEFAULT_BUF (256 * 1024)

enum {
    TRACE_SLICE = 'X',
    TRACE_INSTANT = 'i',
    TRACE_FLOW_START = 's',
    TRACE_FLOW_END = 'f',
    TRACE_COUNTER = 'C',
    TRACE_ASYNC_BEGIN = 'b', /* nestable async events: x is the track id */
    TRACE_ASYNC_END = 'e',
    TRACE_ASYNC_INSTANT = 'n',
    TRACE_THREAD_NAME = 'T' /* the track's name (an "M" thread_name event) */
};

typedef struct trace_rec {
    uint32_t size; /* the whole record, a multiple of 8 */
    uint8_t ph;    /* TRACE_* */
    uint8_t nargs;
    uint8_t has_cat;
    uint8_t pad;
    int64_t ts; /* ns on braid_clock_now's clock; < 0: none */
    int64_t x;  /* a slice's duration (ns), a flow's or async track's id */
} trace_rec_t;

/* A thread's buffer: two halves of trace__buf_size bytes. The owner
 * appends records to cur with no lock, flagging busy around an append so
 * stop can wait it out (Dekker style: the writer sets busy then re-reads
 * braid__trace_on; stop clears on then waits for busy to drop). */
typedef struct tbuf tbuf_t;
struct tbuf {
    tbuf_t *next;    /* all buffers ever made (append-only) */
    atomic_int used; /* owned by a live thread */
    atomic_int busy; /* its owner is appending */
    char *cur;
    _Atomic size_t len;    /* bytes of whole records in cur */
    size_t warm;           /* bytes of cur populated (trace_record.c) */
    _Atomic(char *) spare; /* NULL while the other half is being written */
    uint64_t session;      /* the session its thread name went to */
    int tid;
};

/* Shared state (trace.c). */
extern _Atomic(tbuf_t *) trace__all;
extern size_t trace__buf_size;
extern int trace__pid;
extern int64_t trace__started_at;
extern atomic_ullong trace__session;
extern atomic_int trace__closed;    /* the closing bracket is written */
extern atomic_int trace__fatal_tid; /* the thread in the crash path, or 0 */
extern _Thread_local char trace__tls_name[64];
int trace__out_fd(void); /* the file this process writes, or -1 */

/* trace_json.c and trace_flush.c */
typedef struct trace_out {
    char *p, *end;
} trace_out_t;
#define TRACE_JSON_SCRATCH (64 * 1024) /* a format buffer's size */
void trace__put_raw(trace_out_t *o, const char *s, size_t n);
void trace__put_int(trace_out_t *o, int64_t v);
void trace__put_str(trace_out_t *o, const char *s, size_t max);
/* Formats the records recs[0..len) of thread tid as JSON (each event
 * ",\n{...}") and writes them to fd, using scratch (TRACE_JSON_SCRATCH
 * bytes). Returns the bytes of whole records formatted (len, unless recs
 * ends inside a record). Async-signal-safe: memory and write(2) only. */
size_t trace__write_json(int fd, const char *recs, size_t len, int pid, int tid, char *scratch);
/* Hands a full half (data, len bytes of thread tid's records) to the
 * flusher, which formats and writes it and then returns data as b's
 * spare. Returns 0, or -1 if there is no flusher (the caller writes). */
int trace__flusher_take(tbuf_t *b, char *data, size_t len, int tid);
/* The crash path, once trace__fatal_tid is set: waits (a bounded time)
 * until the flusher is out of a write. Async-signal-safe. */
void trace__flusher_quiesce(void);
/* Stops the flusher once it has written everything handed to it. */
void trace__flusher_finish(void);
/* In a forked child: the parent's flusher and its queue are not ours. */
void trace__flusher_after_fork(void);
/* The spill file of this process is "<base>.<pid>.spill" (start, fork). */
void trace__spill_reset(const char *base, int pid);
/* Appends len bytes of thread tid's records, unformatted, to the spill
 * file. Returns 0 or -1. */
int trace__spill(const char *recs, size_t len, int tid);
/* Formats the spill file into out: async-signal-safe (pread, write),
 * with scratch for formatting and rbuf (rbuf_size >= TRACE_REC_MAX) for
 * reading. */
void trace__spill_format(int out, char *scratch, char *rbuf, size_t rbuf_size);
/* Removes the spill file (the crash path, once formatted). */
void trace__spill_unlink(void);
/* Formats the spill file into out, then removes it (stop). */
void trace__spill_finish(int out);

/* trace_record.c */
tbuf_t *trace__buf_get(void);
/* Formats and writes what every buffer holds, then empties it (stop, with
 * every writer out). */
void trace__buffers_drain(void);
/* In a forked child: the other threads' buffers are free again. */
void trace__buffers_after_fork(void);

#endif
