-- `luarocks --lua-version 5.4 make` builds braid.so (with CMake) and installs
-- it as the module `braid` (require "braid", "braid.threading", ...).
rockspec_format = "3.0"
package = "braid"
version = "0.1.0-1"
source = {
  url = "file://.", -- built from this checkout by `luarocks make`
}
description = {
  summary = "Python's concurrency toolkit for Lua 5.4, with no global lock",
  detailed = [[
threading, queue, concurrent.futures, multiprocessing and asyncio for Lua
5.4, written in C: every thread runs its own Lua state, so CPU-bound Lua code
uses every core.]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
external_dependencies = {
  -- found by CMake through pkg-config: Debian's liblua5.4-dev and libuv1-dev
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    BRAID_ROCK = "ON", -- build and install braid.so only
    BRAID_LUA_CMOD_DIR = "lib",
  },
}
