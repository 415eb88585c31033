-- Run by tools/mpi_test.sh: mpiexec --enable-recovery -n 3 braid -m braid.mpi
-- spec/mpi/kill_test.lua. A worker rank dies mid-job (SIGKILL): its futures
-- fail with BrokenExecutor naming the rank, the other worker keeps serving.
local braid = require "braid"
local futures = require "braid.futures"
local ex = futures.MPIPoolExecutor{}
local victim = ex:submit(function()
  local r = require("braid.mpi").COMM_WORLD.rank
  os.execute("kill -9 $PPID") -- the shell's parent: this worker
  return r
end)
local ok, e = pcall(victim.result, victim, 60)
assert(not ok and braid.Error.is(e, "BrokenExecutor"), tostring(e))
assert(tostring(e):match("MPI worker rank [12] %(pid %d+%) died"), tostring(e))
print("ok killed worker: " .. tostring(e))
-- the survivor still serves
for i = 1, 5 do assert(ex:submit(function(x) return x + 1 end, i):result(60) == i + 1) end
print("ok survivor serves")
ex:shutdown()
print("kill_test done")
