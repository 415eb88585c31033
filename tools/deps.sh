#!/usr/bin/env bash
# Installs every Debian package braid's build, tests and benchmarks need
# (skips apt when all are present). Run as root on Debian 12.
set -euo pipefail
PKGS="build-essential gcc libc6-dev make cmake pkg-config python3 clang libclang-rt-14-dev
      liblua5.4-dev lua5.4 libuv1-dev lua-luv-dev lua-busted libedit-dev tmux valgrind
      clang-format git luarocks openmpi-bin libopenmpi-dev python3-mpi4py
      chromium python3-uvloop nodejs"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
fi
