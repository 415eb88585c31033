#!/usr/bin/env bash
# Second command of README: the whole test suite. Self-sufficient: installs
# and builds what is missing. Stages: core C tests, specs under the braid
# executable and under stock lua5.4 + braid.so, the REPL through a pty, the
# examples, the specs under valgrind, then ASan+UBSan and TSan builds running
# them again, then 60 s of fuzzing the decoder. Any failure or sanitizer
# report fails the run.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
bash tools/deps.sh || exit 1
JOBS=$(nproc)
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
passed=0
failed=0
failures=""

stage() { # stage NAME COMMAND...
  local name=$1
  shift
  echo "=== $name"
  local t0=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "--- ok: $name ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1))
    failures="$failures\n  $name"
    echo "--- FAILED: $name ($((SECONDS - t0)) s)"
  fi
}

build() { # build DIR [cmake args...]
  local dir=$1
  shift
  cmake -S . -B "$dir" "$@" >/dev/null && cmake --build "$dir" -j"$JOBS" >/dev/null
}

# A hung run fails its stage, not the whole CI job: after LIMIT seconds,
# SIGQUIT makes every braid process of the run print what each of its
# threads waits on (braid.dump, to stderr), and 20 s later all are killed.
bounded() { # bounded LIMIT COMMAND...
  local limit=$1 rc
  shift
  timeout -s QUIT -k 20 "$limit" "$@"
  rc=$?
  case $rc in 124 | 137) echo "!!! timed out after $limit s: $*" ;; esac
  return "$rc"
}

specs_braid() { # specs_braid BUILDDIR
  BRAID_EXE="$ROOT/$1/braid" bounded 900 "$1/braid" /usr/bin/busted -o utfTerminal spec
}

# One busted process per spec file, each bounded, so a hang names its file.
# TSan never gives back the shadow of freed thread stacks and rings: one
# process for the whole suite grew to ~23 GB and was killed; per file the
# largest stays under 3 GB.
specs_each() { # specs_each BUILDDIR
  local rc=0 f
  for f in spec/*_spec.lua; do
    echo "--- $f"
    BRAID_EXE="$ROOT/$1/braid" bounded 600 "$1/braid" /usr/bin/busted -o utfTerminal "$f" || rc=1
  done
  return "$rc"
}

specs_stock() {
  BRAID_EXE="$ROOT/build/braid" LUA_CPATH="$ROOT/build/?.so;;" bounded 900 lua5.4 /usr/bin/busted spec
}

ctest_in() { (cd "$1" && ctest --output-on-failure --timeout 600 -j"$JOBS"); }

# the C sources follow .clang-format (STYLE.md); Debian 12's clang-format 14
format_check() {
  git ls-files 'core/*.[ch]' 'bindings/*.[ch]' 'spec/*.[ch]' 'tools/*.c' 'examples/*.[ch]' |
    xargs clang-format --dry-run --Werror
}
stage "format (clang-format)" format_check
stage "build" build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
stage "core tests" ctest_in build
stage "specs (braid)" specs_braid build
stage "specs (lua5.4 + braid.so)" specs_stock
stage "repl (pty)" bounded 300 python3 spec/repl_test.py build/braid
stage "examples" bounded 600 build/braid spec/run_examples.lua build/braid
stage "mpi (mpiexec -n 3, -n 1)" bounded 600 bash tools/mpi_test.sh build
stage "install, pkg-config host, luarocks" bounded 900 bash tools/install_check.sh build

# memcheck on the plain build: any invalid access or definite leak fails.
# (Idle pooled OS threads still parked at exit show as "possibly lost".)
valgrind_specs() {
  BRAID_EXE="$ROOT/build/braid" bounded 2400 valgrind -q --error-exitcode=9 --leak-check=full --show-possibly-lost=no \
    --errors-for-leak-kinds=definite --suppressions="$ROOT/spec/valgrind.supp" \
    build/braid /usr/bin/busted -o TAP spec | tail -n 3
  return "${PIPESTATUS[0]}"
}
stage "specs (valgrind)" valgrind_specs

export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$ROOT/spec/lsan.supp"
stage "build (asan+ubsan)" build build-asan -DBRAID_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug
stage "core tests (asan+ubsan)" ctest_in build-asan
stage "specs (asan+ubsan)" specs_each build-asan

export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$ROOT/spec/tsan.supp"
stage "build (tsan)" build build-tsan -DBRAID_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
stage "core tests (tsan)" ctest_in build-tsan
stage "specs (tsan)" specs_each build-tsan

fuzz() {
  local corpus
  corpus=$(mktemp -d)
  BRAID_FUZZ_SEEDS="$corpus" build-fuzz/fuzz_decode -max_total_time="$FUZZ_SECONDS" \
    -rss_limit_mb=2048 -print_final_stats=1 "$corpus" 2>&1 | tail -n 5
  local rc=${PIPESTATUS[0]}
  rm -rf "$corpus"
  return "$rc"
}
build_fuzz() { CC=clang build build-fuzz -DBRAID_SANITIZE=fuzz; }
stage "build (fuzz)" build_fuzz
stage "fuzz decoder (${FUZZ_SECONDS} s)" fuzz

echo
if [ "$failed" -ne 0 ]; then
  printf "failed stages:%b\n" "$failures"
fi
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
