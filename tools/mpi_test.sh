#!/usr/bin/env bash
# The braid.mpi tests (tools/test.sh stage): spec/mpi/*_test.lua and
# examples/mpi under mpiexec -n 3 and -n 1 on this machine.
# usage: tools/mpi_test.sh BUILDDIR
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
EXE=$PWD/$BUILD/braid
if ! command -v mpiexec >/dev/null || ! grep -q "BRAID_MODULE(mpi)" "$BUILD/braid_modules.h"; then
  echo "braid.mpi not built (no MPI found): skipped"
  exit 0
fi
# OpenMPI as root, more ranks than cores, no cross-memory attach in a container
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=true OMPI_MCA_btl_vader_single_copy_mechanism=none
fails=0
# run NAME EXPECTED_DONE_LINES mpiexec args...: passes when it exits 0 and
# prints EXPECTED "... done" lines and no FAIL line
run() {
  local name=$1 want=$2
  shift 2
  local out rc
  out=$(timeout 300 mpiexec "$@" 2>&1)
  rc=$?
  local got
  got=$(grep -c " done" <<<"$out")
  if [ "$rc" -eq 0 ] && [ "$got" -eq "$want" ] && ! grep -q "^FAIL" <<<"$out"; then
    echo "ok   $name"
  else
    echo "FAIL $name (exit $rc, $got of $want done)"
    echo "$out" | sed 's/^/    /'
    fails=$((fails + 1))
  fi
}
run "pool -n 3" 1 -n 3 "$EXE" -m braid.mpi spec/mpi/pool_test.lua an-arg
run "spmd -n 3" 3 -n 3 "$EXE" spec/mpi/spmd_test.lua
LUA_CPATH="$PWD/$BUILD/?.so;;" run "spmd -n 3 (lua5.4 + braid.so)" 3 -n 3 lua5.4 spec/mpi/spmd_test.lua
run "no workers -n 1" 1 -n 1 "$EXE" -m braid.mpi spec/mpi/none_test.lua
run "killed worker -n 3" 1 --enable-recovery -n 3 "$EXE" -m braid.mpi spec/mpi/kill_test.lua
# without --enable-recovery a dead worker ends the whole job: no hang
out=$(timeout 120 mpiexec -n 3 "$EXE" -m braid.mpi spec/mpi/kill_test.lua 2>&1)
rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "exited on signal 9" <<<"$out"; then
  echo "ok   a dead worker ends a job without --enable-recovery"
else
  echo "FAIL a dead worker ends a job without --enable-recovery (exit $rc)"
  echo "$out" | sed 's/^/    /'
  fails=$((fails + 1))
fi
# a rank failing in an SPMD script ends the job (MPI_Abort), no hang
out=$(timeout 120 mpiexec -n 2 "$EXE" spec/mpi/error_test.lua 2>&1)
rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "rank 1 fails" <<<"$out"; then
  echo "ok   a failing rank ends the job"
else
  echo "FAIL a failing rank ends the job (exit $rc)"
  echo "$out" | sed 's/^/    /'
  fails=$((fails + 1))
fi
# examples/mpi: output checked against their .expected patterns
for ex in examples/mpi/*.lua; do
  [ -e "$ex" ] || continue
  out=$(cd examples/mpi && timeout 300 mpiexec -n 3 "$EXE" -m braid.mpi "$(basename "$ex")" 2>&1)
  rc=$?
  ok=$([ "$rc" -eq 0 ] && echo 1 || echo 0)
  if [ "$ok" = 1 ] && [ -e "${ex%.lua}.expected" ]; then
    while IFS= read -r pat; do
      [ -z "$pat" ] && continue
      if ! OUT="$out" PAT="$pat" "$EXE" -e 'os.exit(os.getenv("OUT"):find(os.getenv("PAT")) ~= nil)'; then
        ok=0
      fi
    done <"${ex%.lua}.expected"
  fi
  if [ "$ok" = 1 ]; then echo "ok   $ex"; else
    echo "FAIL $ex (exit $rc)"
    echo "$out" | sed 's/^/    /'
    fails=$((fails + 1))
  fi
done
# nothing left behind (mpiexec returns once its ranks are gone)
if pgrep -f "mpiexec .*$EXE" >/dev/null || pgrep -f "^$EXE .*(-m braid.mpi|spec/mpi/)" >/dev/null; then
  echo "FAIL processes left behind:"
  pgrep -af "$EXE"
  fails=$((fails + 1))
fi
echo "mpi: $fails failed"
[ "$fails" -eq 0 ]
