/* braid's public embedding API: give a host's Lua state every braid module
 * and shut braid down cleanly. The host owns its lua_State as usual. */
#ifndef BRAID_H
#define BRAID_H

#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef BRAID_EXPORT
#define BRAID_EXPORT __attribute__((visibility("default")))
#endif

/* Preloads every braid module into L (package.preload), so `require
 * "braid"` and `require "braid.threading"` work, and installs whole-line
 * print. Call after luaL_openlibs. Only the thread owning L may call it.
 * Returns 0. */
BRAID_EXPORT int braid_openlibs(lua_State *L);

/* Waits for non-daemon braid threads (at most timeout seconds; negative =
 * forever) and stops pools. Call before lua_close. Returns 0, or a negative
 * core error code (BRAID_ETIMEOUT) if threads were still running. */
BRAID_EXPORT int braid_shutdown(lua_State *L, double timeout);

/* Entry points for stock lua5.4 (`require "braid"`, braid.so). */
BRAID_EXPORT int luaopen_braid(lua_State *L);

#ifdef __cplusplus
}
#endif
#endif
