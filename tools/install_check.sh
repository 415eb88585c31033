#!/usr/bin/env bash
# Installs the build in BUILD (default build) into a temporary prefix, checks
# every installed file, builds examples/embed against it with pkg-config
# (shared and static libbraid) and runs them, then requires braid.so from
# stock lua5.4 out of the prefix. Then `luarocks make` into a temporary tree
# and `require "braid"` from there.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
P=$(mktemp -d)
trap 'rm -rf "$P"' EXIT
cmake --install "$BUILD" --prefix "$P" >/dev/null
LIBDIR=$(cd "$P" && find lib -name braid.pc | head -n 1 | xargs dirname | xargs dirname)
for f in bin/braid lib/lua/5.4/braid.so "$LIBDIR/libbraid.a" "$LIBDIR/libbraid.so" include/braid.h \
  "$LIBDIR/pkgconfig/braid.pc" share/man/man1/braid.1; do
  [ -e "$P/$f" ] || { echo "not installed: $f"; exit 1; }
done
if grep -q "BRAID_MODULE(mpi)" "$BUILD/braid_modules.h"; then # braid.mpi's plugin, beside braid.so
  [ -e "$P/lib/lua/5.4/braid_mpi.so" ] || { echo "not installed: lib/lua/5.4/braid_mpi.so"; exit 1; }
fi
"$P/bin/braid" -v
export PKG_CONFIG_PATH="$P/$LIBDIR/pkgconfig"
# shellcheck disable=SC2046
cc -O1 -Wall -Werror examples/embed/log_processor.c -o "$P/log_processor" \
  $(pkg-config --cflags --libs braid) -lpthread -Wl,-rpath,"$P/$LIBDIR"
"$P/log_processor" examples/embed
# static: libbraid.a plus what it needs (pkg-config --static)
# shellcheck disable=SC2046
cc -O1 -Wall -Werror examples/embed/two_states.c -o "$P/two_states" $(pkg-config --cflags braid) \
  "$P/$LIBDIR/libbraid.a" $(pkg-config --static --libs braid | sed 's/-lbraid//') -lpthread
"$P/two_states"
LUA_CPATH="$P/lib/lua/5.4/?.so" lua5.4 -e 'local b = require "braid"; print("lua5.4: braid " .. b.version)'

# the rockspec, built into a temporary tree (builds in a copy: luarocks
# writes build.luarocks/ into the source directory)
SRC="$P/src"
mkdir -p "$SRC"
git ls-files -z -co --exclude-standard | xargs -0 cp --parents -t "$SRC"
TREE="$P/rocks"
(cd "$SRC" && luarocks --lua-version 5.4 --tree "$TREE" make braid-*.rockspec >"$P/rock.log" 2>&1) ||
  { tail -n 30 "$P/rock.log"; exit 1; }
LUA_CPATH="$TREE/lib/lua/5.4/?.so" LUA_PATH="$TREE/share/lua/5.4/?.lua" \
  lua5.4 -e 'local t = require "braid.threading"; local th = t.Thread{target = function() return 6 * 7 end}
             th:start(); print("luarocks: braid.threading works: " .. th:result())'
