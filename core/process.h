/* Child processes: start (posix_spawn of an executable, or fork), wait with
 * a deadline through a pidfd, signal, reap; the table of children. */
#ifndef BRAID_PROCESS_H
#define BRAID_PROCESS_H

#include <stdint.h>
#include <sys/types.h>

#include "waiter.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One child. Reference counted: the table of children holds one reference
 * until the child is reaped, each handle holds one. */
typedef struct braid_proc braid_proc_t;

/* Starts path with argv (NULL-terminated); chan becomes the child's fd 3,
 * stdin is /dev/null, every other descriptor is closed by its CLOEXEC flag;
 * SIGPIPE, SIGTERM, SIGINT and SIGCHLD have their default action.
 * Returns 0 and a new child (one reference for the caller), or
 * BRAID_EOS with errno set. Thread-safe. flags: 0 (posix_spawn; the
 * child's signal mask is empty) or BRAID_SPAWN_MASKED: path is a program
 * that calls braid_proc_unblock_signals first thing (`braid --worker`); it
 * starts with every signal blocked, which spares the ~130 system calls
 * posix_spawn makes before the exec to reset every signal handler. */
#define BRAID_SPAWN_MASKED 1
int braid_proc_spawn(const char *path, char *const argv[], int chan, int flags, braid_proc_t **out);
/* Whether the calling thread is the process's main thread. A child's
 * parent-death signal (PR_SET_PDEATHSIG) fires when the thread that started
 * it ends: braid_proc_spawn starts children from threads that last (the
 * main thread, or a spawner thread), but a child forked from another
 * thread must watch its parent some other way. */
int braid_proc_is_main_thread(void);
/* Empties this thread's signal mask (the start of a BRAID_SPAWN_MASKED
 * program). */
void braid_proc_unblock_signals(void);
/* fork(). In the parent returns 0 with *out set (one reference); in the
 * child returns 0 with *out NULL, the table of children emptied (a child
 * has no children yet) and their descriptors closed. BRAID_EOS on failure.
 * Flushes stdio first so buffered output is not written twice. */
int braid_proc_fork(braid_proc_t **out);

/* Waits until the child has exited, reaping it. Returns 0, BRAID_ETIMEOUT
 * or BRAID_ECANCELLED/BRAID_EINTR (w's cancellation/interrupt, when w is
 * not NULL). Any number of threads may wait for one child. */
int braid_proc_wait(braid_proc_t *p, int64_t deadline, braid_waiter_t *w);
/* Reaps the child if it has exited; returns 1 if it is gone, 0 if alive. */
int braid_proc_poll(braid_proc_t *p);
/* Sends sig unless the child was already reaped. 0 or BRAID_EOS. */
int braid_proc_signal(braid_proc_t *p, int sig);

pid_t braid_proc_pid(const braid_proc_t *p);
/* Exit code once reaped: the status given to exit, or -signal; otherwise
 * INT32_MIN. */
int braid_proc_exitcode(braid_proc_t *p);
/* A descriptor the owner attaches to the child (the parent's end of its
 * channel): closed when the child is reaped or released, and in forked
 * siblings. -1 for none. */
void braid_proc_set_chan(braid_proc_t *p, int fd);
int braid_proc_chan(const braid_proc_t *p);
/* Daemon flag: braid_proc_finish_all terminates daemon children and waits
 * for the others. */
void braid_proc_set_daemon(braid_proc_t *p, int daemon);

void braid_proc_retain(braid_proc_t *p);
void braid_proc_release(braid_proc_t *p);

/* Reaps every exited child; returns a new array of retained live children
 * (count in *n; release each and free the array), or NULL when none. */
braid_proc_t **braid_proc_children(size_t *n);
/* Number of children in the table that were not reaped yet. */
size_t braid_proc_count(void);
/* At exit: SIGTERM to daemon children, waits for every child (non-daemon
 * ones until the deadline, then SIGKILL), reaps them all. */
void braid_proc_finish_all(int64_t deadline);

#ifdef __cplusplus
}
#endif
#endif
