-- A Monte Carlo estimate of pi across MPI ranks: each task throws darts at
-- the unit square on a worker rank and counts those inside the circle.
-- Run: mpiexec -n 3 braid -m braid.mpi pi.lua [tasks] [darts per task]
local futures = require "braid.futures"

local ntasks = tonumber(arg[1]) or 8
local darts = tonumber(arg[2]) or 200000

local function throw(seed, n)
  math.randomseed(seed)
  local inside = 0
  for _ = 1, n do
    local x, y = math.random(), math.random()
    if x * x + y * y <= 1 then inside = inside + 1 end
  end
  return inside, require("braid.mpi").COMM_WORLD.rank
end

local ex <close> = futures.MPIPoolExecutor{}
local fs = {}
for i = 1, ntasks do fs[i] = ex:submit(throw, i, darts) end
local inside, ranks = 0, {}
for f in futures.as_completed(fs) do
  local n, rank = f:result()
  inside = inside + n
  ranks[rank] = true
end
local used = 0
for _ in pairs(ranks) do used = used + 1 end
local pi = 4 * inside / (ntasks * darts)
print(("pi is about %.4f (%d darts on %d worker ranks)"):format(pi, ntasks * darts, used))
print(("off by less than 0.01: %s"):format(tostring(math.abs(pi - math.pi) < 0.01)))
