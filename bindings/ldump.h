/* The live dump (ldump.c): braid.dump(), SIGQUIT and the dump-after timer.
 * Not installed. */
#ifndef BRAID_LDUMP_H
#define BRAID_LDUMP_H

#include <lua.h>
#include <stddef.h>

enum { LDUMP_MAIN, LDUMP_THREAD, LDUMP_WORKER };

/* Makes the state L (its main thread) report in live dumps for the calling
 * OS thread, until L is closed. kind: LDUMP_*. For LDUMP_MAIN, does nothing
 * if this OS thread already reports for a state. Never raises. */
void lbraid_dump_attach(lua_State *L, int kind);
/* Prints a dump to stderr now. L (may be NULL) is the calling state: it
 * reports about itself. */
void lbraid_dump_run(lua_State *L);
/* Dumps follow a frame of f into the coroutine it resumes (its first
 * argument, or stack slot), as they follow coroutine.resume: asyncio's
 * task resume and run_ready (two at most). */
void lbraid_dump_follow_resume(lua_CFunction f);
/* braid.dump, for the root module. */
lua_CFunction lbraid_dump_fn(void);
/* A thread that dumps once after secs seconds unless the process exits
 * first (--dump-on-timeout, BRAID_DUMP_AFTER). Once per process. */
void lbraid_dump_after(double secs);
/* Starts BRAID_DUMP_AFTER's timer if the variable is set (once). */
void lbraid_dump_from_env(void);
/* SIGQUIT dumps (the braid executable): the handler writes a pipe that a
 * watcher thread reads. */
void lbraid_dump_install_sigquit(void);
/* How many of those helper threads (SIGQUIT's watcher, the timer) run now:
 * idle and lock-free, so fork's warning leaves them out. */
int lbraid_dump_helpers(void);

/* ---- internal to ldump.c and ldump_print.c ---- */

/* A growable text buffer, filled without a Lua state. */
typedef struct ldump_buf {
    char *p;
    size_t n, cap;
} ldump_buf_t;
/* Appends printf-style text (the text stops where memory runs out). */
void ldump_printf(ldump_buf_t *b, const char *fmt, ...);
struct braid_dump_slot;
/* Collects one dump (self, may be NULL, reporting self_report) and prints
 * it whole to stderr. */
void ldump_print(struct braid_dump_slot *self, const char *self_report);

#endif
