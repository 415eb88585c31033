-- ProcessPoolExecutor.map of a trivial function over 20,000 items with
-- chunksize 1, and a CPU-bound map on 2 workers against running it
-- sequentially (a speed-up, goal 1.8) (issue 9).
local braid = require "braid"
local futures = require "braid.futures"

local N = 20000
local items = {}
for i = 1, N do items[i] = i end

local ex = futures.ProcessPoolExecutor{max_workers = 2}
local function trivial(x) return x end
local t0 = braid.monotonic()
local n = 0
for v in ex:map(trivial, items, {chunksize = 1}) do n = n + v end
local dt = braid.monotonic() - t0
assert(n == N * (N + 1) // 2)
print(("RESULT ppe_map_20k_chunksize1 %.1f"):format(N / dt))

local function burn(k)
    local s = 0
    for i = 1, 3000000 do s = s + (i * k) % 7 end
    return s
end
local jobs = {1, 2, 3, 4, 5, 6, 7, 8}
braid.sleep(1)
t0 = braid.monotonic()
local seq = {}
for i, k in ipairs(jobs) do seq[i] = burn(k) end
local tseq = braid.monotonic() - t0
braid.sleep(1)
t0 = braid.monotonic()
local par = {}
for v in ex:map(burn, jobs, {chunksize = 1}) do par[#par + 1] = v end
local tpar = braid.monotonic() - t0
for i = 1, #jobs do assert(seq[i] == par[i]) end
ex:shutdown()
print(("RESULT ppe_cpu_two_workers_speedup %.2f"):format(tseq / tpar))
