-- mpi/map: MPIPoolExecutor:map of a trivial function over 20,000 items on 2
-- worker ranks, chunksize 1 and 100 (items per second). Run as
-- `braid map.lua`: it starts itself under `mpiexec -n 3 braid -m braid.mpi`
-- with OpenMPI's as-root/oversubscribe settings (bench harness, not library).
-- Python: map.py (mpi4py.futures).
local N = 20000
if not os.getenv("OMPI_COMM_WORLD_SIZE") then
  local exe = arg[-1]
  local cmd = ("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
    .. "OMPI_MCA_rmaps_base_oversubscribe=true OMPI_MCA_btl_vader_single_copy_mechanism=none "
    .. "mpiexec -n 3 %q -m braid.mpi map.lua 2>&1"):format(exe)
  local p = io.popen(cmd)
  io.write(p:read("a"))
  os.exit(p:close())
end

local braid = require "braid"
local futures = require "braid.futures"
local ex <close> = futures.MPIPoolExecutor{max_workers = 2}
local items = {}
for i = 1, N do items[i] = i end
local function inc(x) return x + 1 end

for _, cs in ipairs({1, 100}) do
  for _ in ex:map(inc, {1, 2, 3, 4}, {chunksize = 1}) do end -- warm up the ranks
  local t0 = braid.monotonic()
  local n, last = 0, nil
  for v in ex:map(inc, items, {chunksize = cs}) do n = n + 1; last = v end
  local dt = braid.monotonic() - t0
  assert(n == N and last == N + 1)
  print(("RESULT mpi_map_cs%d %.1f"):format(cs, N / dt))
end
