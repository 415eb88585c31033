/* Byte streams on an asyncio loop: libuv TCP and Unix-socket handles with a
 * read buffer, a write queue with high/low water marks, listeners, and
 * name resolution. Every wait is split the task-waiter way (waiter.h): a
 * *_wait call returns 0 when its condition holds, or records the task
 * waiter and returns BRAID_ESUSPEND; the libuv callbacks (run inside the
 * loop's pass, on its thread) wake it, and the call is repeated. A waiter
 * whose cancelled flag is set is forgotten and gets BRAID_ECANCELLED.
 * Everything here runs on the loop's thread only. Errors are libuv codes
 * (negative errno values: uv_err_name/uv_strerror); UV_EBUSY says another
 * task already waits (or w is not a task waiter). */
#ifndef BRAID_STREAM_H
#define BRAID_STREAM_H

#include <stddef.h>
#include <uv.h>

#include "waiter.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct braid_stream braid_stream_t;
typedef struct braid_resolve braid_resolve_t;

enum { BRAID_STREAM_TCP = 1, BRAID_STREAM_PIPE = 2 };

/* Handles owned by braid carry in handle->data a pointer to a struct whose
 * first member is their close callback: a loop being freed closes stray
 * handles with it (core/loop.c). magic (BRAID_HANDLE_MAGIC) tells them
 * from handles others (luv) opened on the same loop. */
typedef struct braid_handle_owner {
    uv_close_cb on_close;
    unsigned magic;
} braid_handle_owner_t;
#define BRAID_HANDLE_MAGIC 0x62726164u

/* A new, unconnected stream of kind on uv (the caller's reference). For
 * TCP, family (AF_INET/AF_INET6, or AF_UNSPEC for later) and reuseport
 * (SO_REUSEPORT, needs a family) apply. Returns 0 or an error. */
int braid_stream_new(uv_loop_t *uv, int kind, int family, int reuseport, braid_stream_t **out);
/* Closes the handle at once if still open (pending writes are dropped)
 * and drops the caller's reference. */
void braid_stream_release(braid_stream_t *s);

/* A connected pipe stream over an open descriptor (a socket pair end);
 * takes the descriptor on success. Reading starts at the first read. */
int braid_stream_open_fd(uv_loop_t *uv, int fd, braid_stream_t **out);

/* Starts connecting to sa (TCP) or path (pipe). */
int braid_stream_connect(braid_stream_t *s, const struct sockaddr *sa, const char *path);
/* 0 once connected, the connect error, or BRAID_ESUSPEND. */
int braid_stream_connect_wait(braid_stream_t *s, braid_waiter_t *w);

/* Binds and listens (TCP: sa; pipe: path). */
int braid_stream_listen(braid_stream_t *s, const struct sockaddr *sa, const char *path,
                        int backlog);
/* 0 when a connection can be accepted (or the listener closed/failed:
 * accept then says so). */
int braid_stream_accept_wait(braid_stream_t *s, braid_waiter_t *w);
/* Accepts a pending connection into a new stream (caller's reference). */
int braid_stream_accept(braid_stream_t *s, braid_stream_t **out);

/* Read buffer. read_wait returns 0 when at least `want` bytes are
 * buffered, or (sep != NULL) sep is buffered or more than the limit is,
 * or at EOF/error. */
int braid_stream_read_wait(braid_stream_t *s, size_t want, const char *sep, size_t seplen,
                           braid_waiter_t *w);
const char *braid_stream_peek(braid_stream_t *s, size_t *len);
void braid_stream_consume(braid_stream_t *s, size_t n);
/* 1 at EOF (or after a read error) */
int braid_stream_at_eof(const braid_stream_t *s);
int braid_stream_read_error(const braid_stream_t *s);
void braid_stream_set_limit(braid_stream_t *s, size_t limit);
size_t braid_stream_limit(const braid_stream_t *s);

/* Queues data (copied) for writing. 0, or the error that ended writing
 * (UV_EPIPE after close/write_eof). */
int braid_stream_write(braid_stream_t *s, const void *data, size_t len);
/* Closes the write side once queued data is written. */
int braid_stream_shutdown(braid_stream_t *s);
/* 0 while the write queue is below the high water mark (or once it fell
 * to the low one), the write error, or BRAID_ESUSPEND. */
int braid_stream_drain_wait(braid_stream_t *s, braid_waiter_t *w);
/* Whether a drain would return 0 at once (no error, not closed, under the
 * high-water mark): the caller skips the wait. */
int braid_stream_drain_ready(const braid_stream_t *s);
void braid_stream_set_water(braid_stream_t *s, size_t high, size_t low);
size_t braid_stream_write_size(const braid_stream_t *s);

/* Closes the handle once queued data is written. */
void braid_stream_close(braid_stream_t *s);
int braid_stream_is_closing(const braid_stream_t *s);
/* 0 once the handle is closed. */
int braid_stream_close_wait(braid_stream_t *s, braid_waiter_t *w);

/* Local (peer = 0) or remote address: TCP fills *ss; pipes fill path. */
int braid_stream_name(braid_stream_t *s, int peer, struct sockaddr_storage *ss, char *path,
                      size_t pathlen);
int braid_stream_kind(const braid_stream_t *s);

/* Name resolution on libuv's thread pool. */
int braid_resolve_new(uv_loop_t *uv, const char *host, const char *port, int passive,
                      braid_resolve_t **out);
/* 0 when done (then result gives the list or the error). */
int braid_resolve_wait(braid_resolve_t *r, braid_waiter_t *w);
int braid_resolve_result(braid_resolve_t *r, const struct addrinfo **res);
/* Cancels if still running, drops the caller's reference. */
void braid_resolve_release(braid_resolve_t *r);

#ifdef __cplusplus
}
#endif
#endif
