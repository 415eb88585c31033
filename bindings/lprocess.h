/* Processes, shared between the multiprocessing module and the braid
 * executable: the spawned worker's entry and the worker's own identity. */
#ifndef BRAID_LPROCESS_H
#define BRAID_LPROCESS_H

#include <sys/types.h>

struct braid_buf;

#include <lua.h>

/* Path of the braid executable, set by main() (NULL in braid.so): spawn
 * then starts `<path> --worker`, else `<interpreter> -e ...`. */
extern const char *lbraid_worker_exe;

/* `braid --worker`: a new state runs the call read from fd 3; exits. */
int lbraid_worker_main(int argc, char **argv);
/* Runs the worker protocol on fd in L (any braid state); never returns. */
void lbraid_worker_run(lua_State *L, int fd);
/* _worker(fd): lbraid_worker_run as a Lua function (a stock-Lua spawned
 * child's entry, in the root module: no other module loads before the
 * call is decoded). */
int lbraid_worker_fn(lua_State *L);

/* Asks the kernel to kill this process when the parent dies
 * (PR_SET_PDEATHSIG); ppid is the expected parent, checked after the
 * request to close the race. fd, the channel from the parent, is kept for
 * lbraid_worker_cleanup_at_death. */
void lbraid_worker_watch_parent(int fd, pid_t ppid);
/* The same for a child forked by a thread other than the main thread,
 * whose parent-death signal would come when that thread ends: a thread
 * ends this process when fd, the channel from the parent, reads EOF. */
void lbraid_worker_watch_channel(int fd, pid_t ppid);
/* From now on, when the parent is gone this process removes file and the
 * directory dir before it ends: the kernel's parent-death signal (which
 * would end it first) is turned off, and a thread ends the process when
 * the channel reads EOF (every copy of the parent's end closed: the parent
 * is gone, however it died). */
void lbraid_worker_cleanup_at_death(const char *file, const char *dir);

/* Runs the function at the stack top (below it: nothing of interest) with
 * nargs arguments above it as a process body, protected: an error prints
 * "Process <name>:" and the traceback on stderr. Returns the exit code
 * (0, or 1 on error). */
int lbraid_worker_call(lua_State *L, int nargs, const char *name);

/* Adds Lock, RLock, Semaphore, BoundedSemaphore, Event, Value, Array and
 * Pipe to the module table at mod, and the method tables as __methods. */
void lbraid_mp_open_sync(lua_State *L, int mod);
/* Adds Pipe to the module table at mod and the Connection methods to the
 * method table at methods (lmpconn.c). */
void lbraid_mp_open_conn(lua_State *L, int mod, int methods);
/* Sends buf on fd as one message (shm.h), raising TypeError for an object
 * that cannot cross processes and OSError/ConnectionError. */
int lbraid_mp_send(lua_State *L, int fd, struct braid_buf *buf);
/* Raises the error for a send's core result rc (0: returns 0): TypeError
 * naming the object bad that cannot cross, ConnectionError/OSError. */
struct braid_object;
int lbraid_mp_send_result(lua_State *L, int rc, struct braid_object *bad, const char *what);
/* Pushes a Connection box taking fd (flags: 1 readable, 2 writable; on
 * failure fd is closed and an error raised). */
void lbraid_mp_push_conn(lua_State *L, int fd, int flags);
/* Adds the queues' put/flush helpers (_conn_*) to the module table at mod. */
void lbraid_mp_open_feed(lua_State *L, int mod);
/* Adds the manager's C helpers (_mgr_*) to the module table at mod. */
void lbraid_mp_open_manager(lua_State *L, int mod);

/* This process's multiprocessing identity (set in children). */
typedef struct lbraid_procinfo {
    char name[64];  /* "MainProcess" or the Process name */
    pid_t ppid;     /* 0 in the main process */
    char pname[64]; /* parent's name */
    int daemon;
} lbraid_procinfo_t;
extern lbraid_procinfo_t lbraid_procinfo;

#endif
