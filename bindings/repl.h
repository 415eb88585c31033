/* The braid executable's interactive REPL (repl.c) and the pieces of the
 * stand-alone interpreter (main.c) it shares. Not installed. */
#ifndef BRAID_REPL_H
#define BRAID_REPL_H

#include <lua.h>

/* main.c: lua_pcall with the traceback handler and Ctrl-C hook; the chunk
 * and narg arguments are replaced by nres results or an error message. */
int main_docall(lua_State *L, int narg, int nres);
/* main.c: prints and pops the error message if status is not LUA_OK. */
int main_report(lua_State *L, int status);
void main_setsignal(int sig, void (*handler)(int));

/* Read-eval-print loop until end of input (Ctrl-D). *progname is the name
 * main prefixes messages with; the REPL clears it while it runs. */
void repl_run(lua_State *L, const char **progname);

#endif
