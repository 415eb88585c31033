/* Files for asyncio tasks on libuv's fs requests (run on libuv's thread
 * pool): open, read at an offset, write at an offset, size and close.
 * Each operation is one braid_fsop_t that a task waits on the task-waiter
 * way (waiter.h): braid_fsop_wait returns 0 once it finished, or records
 * the waiter and returns BRAID_ESUSPEND; the libuv callback wakes it. An
 * operation released before it finished is cancelled when libuv still
 * can; otherwise it finishes on its own and frees itself (a file it
 * opened is closed then). An open file is a braid_afile_t: the caller's
 * reference and each running operation's keep its descriptor open.
 * Everything here runs on the loop's thread. Errors are libuv codes. */
#ifndef BRAID_AFILE_H
#define BRAID_AFILE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "waiter.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct braid_afile braid_afile_t;
typedef struct braid_fsop braid_fsop_t;

/* Starts an operation; 0 and *out (the caller's reference), or an error. */
int braid_fsop_open(uv_loop_t *uv, const char *path, int flags, int mode, braid_fsop_t **out);
/* off < 0: at the descriptor's own position */
int braid_fsop_read(uv_loop_t *uv, braid_afile_t *f, size_t len, int64_t off, braid_fsop_t **out);
int braid_fsop_write(uv_loop_t *uv, braid_afile_t *f, const void *data, size_t len, int64_t off,
                     braid_fsop_t **out);
/* the file's size (fstat) */
int braid_fsop_size(uv_loop_t *uv, braid_afile_t *f, braid_fsop_t **out);
/* Closes f's descriptor (f is left without one: later operations get
 * UV_EBADF). */
int braid_fsop_close(uv_loop_t *uv, braid_afile_t *f, braid_fsop_t **out);

/* 0 once finished, BRAID_ESUSPEND (w recorded), BRAID_ECANCELLED (w's
 * cancellation pending: w forgotten), UV_EBUSY (w is not a task waiter). */
int braid_fsop_wait(braid_fsop_t *op, braid_waiter_t *w);
/* Once finished: the result (bytes read/written, the size, 0) or an
 * error. A read's bytes are in *data and *len; an open's file is moved to
 * *file (the caller's reference). Unused outputs may be NULL. */
int64_t braid_fsop_result(braid_fsop_t *op, const char **data, size_t *len, braid_afile_t **file);
/* Drops the caller's reference (cancelling it if it has not started). */
void braid_fsop_release(braid_fsop_t *op);

/* Drops the caller's reference to f; the descriptor is closed (at once,
 * with a blocking close) when no operation still uses it. */
void braid_afile_release(braid_afile_t *f);
/* f's descriptor, or -1 once closed */
int braid_afile_fd(const braid_afile_t *f);

#ifdef __cplusplus
}
#endif
#endif
