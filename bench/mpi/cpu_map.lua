-- mpi/cpu_map: speed-up of a CPU-bound map on 2 worker ranks over the same
-- work run sequentially on rank 0 (printed as a ratio; goal >= 1.8). Run as
-- `braid cpu_map.lua`: it starts itself under `mpiexec -n 3 braid -m braid.mpi`.
if not os.getenv("OMPI_COMM_WORLD_SIZE") then
  local cmd = ("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
    .. "OMPI_MCA_rmaps_base_oversubscribe=true OMPI_MCA_btl_vader_single_copy_mechanism=none "
    .. "mpiexec -n 3 %q -m braid.mpi cpu_map.lua 2>&1"):format(arg[-1])
  local p = io.popen(cmd)
  io.write(p:read("a"))
  os.exit(p:close())
end

local braid = require "braid"
local futures = require "braid.futures"
local function work(n) -- ~20 ms of arithmetic (more on a busy machine)
  local s = 0
  for i = 1, n do s = (s + i * i) % 1000003 end
  return s
end
local TASKS, N = 16, 3000000
local ex <close> = futures.MPIPoolExecutor{max_workers = 2}
ex:submit(work, 10):result() -- warm up
local t0 = braid.monotonic()
local seq = {}
for i = 1, TASKS do seq[i] = work(N + i) end
local t_seq = braid.monotonic() - t0
t0 = braid.monotonic()
local i = 0
local list = {}
for k = 1, TASKS do list[k] = N + k end
for v in ex:map(work, list) do i = i + 1; assert(v == seq[i]) end
local t_par = braid.monotonic() - t0
print(("RESULT mpi_cpu_map_speedup %.3f"):format(t_seq / t_par))
