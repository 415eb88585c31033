/* Child processes on an asyncio loop (libuv's uv_spawn): stdin/stdout/stderr
 * as braid streams over socket pairs, /dev/null, or stderr sent to stdout;
 * waiting for the exit the task-waiter way (stream.h). Loop thread only.
 * Errors are libuv codes. */
#ifndef BRAID_SUBPROCESS_H
#define BRAID_SUBPROCESS_H

#include <uv.h>

#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct braid_process braid_process_t;

enum {
    BRAID_STDIO_INHERIT = 0,
    BRAID_STDIO_PIPE = 1,
    BRAID_STDIO_DEVNULL = 2,
    BRAID_STDIO_STDOUT = 3 /* stderr only: the same as stdout */
};

/* Spawns file (searched in PATH) with args (NULL-terminated, args[0] its
 * name); env (NULL: inherited) and cwd (NULL: ours). For each stdio[i] ==
 * PIPE, pipes[i] receives a new stream (the caller's reference). */
int braid_process_spawn(uv_loop_t *uv, const char *file, char **args, char **env, const char *cwd,
                        const int stdio[3], braid_stream_t *pipes[3], braid_process_t **out);
int braid_process_pid(const braid_process_t *p);
/* 0 once the child exited, or BRAID_ESUSPEND. */
int braid_process_wait(braid_process_t *p, braid_waiter_t *w);
/* 1 and *rc (exit status, or -signal when killed by one) once exited. */
int braid_process_returncode(const braid_process_t *p, int *rc);
/* Sends signum unless the child already exited (then a no-op). */
int braid_process_kill(braid_process_t *p, int signum);
/* Drops the caller's reference (the child runs on; its handle is closed
 * when it exits, or with the loop). */
void braid_process_release(braid_process_t *p);

#ifdef __cplusplus
}
#endif
#endif
