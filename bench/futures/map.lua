-- ex:map over 100k items with a trivial function, 4 workers: items per second.
local futures = require "braid.futures"
local N = tonumber(arg and arg[1]) or 100000
local cs = tonumber(arg and arg[2]) -- nil: map chooses
local ex <close> = futures.ThreadPoolExecutor(4)
local items = {}
for i = 1, N do items[i] = i end
local t0 = require("braid").monotonic()
local sum, k = 0, 0
for r in ex:map(function(x) return x * 2 end, items, {chunksize = cs, timeout = 600}) do sum = sum + r; k = k + 1 end
local dt = require("braid").monotonic() - t0
assert(k == N and sum == N * (N + 1))
print(("RESULT map_100k%s %.0f"):format(cs and "_chunksize" .. cs or "", N / dt))
