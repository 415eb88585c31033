/* The preload list (lpreload.c): which braid modules a state can require,
 * and how one is loaded. Not installed. */
#ifndef BRAID_LPRELOAD_H
#define BRAID_LPRELOAD_H

#include <lua.h>

/* Installs every braid module into package.preload (braid.h:
 * braid_openlibs adds the whole-line print too). */
void lbraid_preload(lua_State *L);
/* Loads module `name` ("braid", "braid.queue", ...): its C half (or an
 * empty table), then its embedded script with that table as `...`.
 * Pushes what the script returns, else the table. Stack: +1. */
int lbraid_load_module(lua_State *L, const char *name);
/* Makes sure the metatables of module name's types are registered: for a
 * module whose script only adds methods, by its C half alone (the script
 * runs on first need); otherwise by require. Stack: unchanged. */
void lbraid_load_meta(lua_State *L, const char *name);

/* The root module's C half (lbraid.c) and each module's (bindings/l<m>.c):
 * each returns its table of functions. */
int lbraid_root_open(lua_State *L);
#define BRAID_MODULE(m) int lbraid_open_##m(lua_State *L);
#include "braid_modules.h"
#undef BRAID_MODULE

#endif
