/* The preload list (lpreload.c): which braid modules a state can require,
 * and how one is loaded. Not installed. */
#ifndef BRAID_LPRELOAD_H
#define BRAID_LPRELOAD_H

#include <lua.h>

#include "object.h"

/* Makes every braid module requirable: a searcher after package.preload's
 * in package.searchers (once per state). braid.h: braid_openlibs adds the
 * whole-line print too. */
void lbraid_preload(lua_State *L);
/* Loads module `name` ("braid", "braid.queue", ...): its C half (or an
 * empty table), then its embedded script with that table as `...`.
 * Pushes what the script returns, else the table. Stack: +1. */
int lbraid_load_module(lua_State *L, const char *name);
/* Makes sure the metatable of `type` is registered: for a module that can
 * register one type alone (and is not loaded yet), just that type's (the
 * module loads on the first miss in its method table); otherwise by
 * requiring type->module. Stack: unchanged. */
void lbraid_load_meta(lua_State *L, const braid_object_type_t *type);

/* The root module's C half (lbraid.c) and each module's (bindings/l<m>.c):
 * each returns its table of functions. */
int lbraid_root_open(lua_State *L);
#define BRAID_MODULE(m) int lbraid_open_##m(lua_State *L);
#include "braid_modules.h"
#undef BRAID_MODULE
/* Registers the metatable of one type of braid.threading alone (lthreading.c);
 * returns 0 if type is not one of its types. Stack: unchanged. */
int lbraid_meta_threading(lua_State *L, const braid_object_type_t *type);

#endif
