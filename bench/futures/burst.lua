-- ThreadPoolExecutor(4): a burst of 50k submit(noop), then 50k result().
-- Prints tasks per second over the whole burst and the mean cost of one
-- submit call in µs. Pairs with burst.py. usage: braid burst.lua [N]
local braid = require "braid"
local futures = require "braid.futures"
local N = tonumber(arg and arg[1]) or 50000
local ex <close> = futures.ThreadPoolExecutor(4)
local function noop() end
for _ = 1, 1000 do ex:submit(noop):result() end -- warm up: workers started
local fs = {}
local t0 = braid.monotonic()
for i = 1, N do fs[i] = ex:submit(noop) end
local t1 = braid.monotonic()
for i = 1, N do fs[i]:result() end
local dt = braid.monotonic() - t0
print(("RESULT burst_50k %.0f"):format(N / dt))
print(("RESULT burst_submit_us %.3f"):format((t1 - t0) / N * 1e6))
