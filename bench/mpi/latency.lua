-- mpi/latency: round trips of submit(f):result() on a one-worker
-- MPIPoolExecutor (per second). Run as `braid latency.lua`: it starts itself
-- under `mpiexec -n 2 braid -m braid.mpi`. Raw-C floor: pingpong.c (an MPI
-- ping-pong of the same message sizes; build with mpicc, see docs/mpi.md).
local N = 20000
if not os.getenv("OMPI_COMM_WORLD_SIZE") then
  local cmd = ("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
    .. "OMPI_MCA_rmaps_base_oversubscribe=true OMPI_MCA_btl_vader_single_copy_mechanism=none "
    .. "mpiexec -n 2 %q -m braid.mpi latency.lua 2>&1"):format(arg[-1])
  local p = io.popen(cmd)
  io.write(p:read("a"))
  os.exit(p:close())
end

local braid = require "braid"
local futures = require "braid.futures"
local ex <close> = futures.MPIPoolExecutor{max_workers = 1}
local function inc(x) return x + 1 end
for i = 1, 1000 do ex:submit(inc, i):result() end -- warm up
local t0 = braid.monotonic()
for i = 1, N do assert(ex:submit(inc, i):result() == i + 1) end
print(("RESULT mpi_submit_result_1w %.1f"):format(N / (braid.monotonic() - t0)))
