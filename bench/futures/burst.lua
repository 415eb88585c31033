-- ThreadPoolExecutor(4): a burst of 50k submit(noop), then 50k result().
-- Prints tasks per second over the whole burst and the mean cost of one
-- submit call in µs: wall time, and the main thread's own CPU time and
-- time spent runnable but waiting for a core (Linux's per-thread
-- schedstat; rows left out where it is missing). Pairs with burst.py.
-- usage: braid burst.lua [N]
local braid = require "braid"
local futures = require "braid.futures"
local N = tonumber(arg and arg[1]) or 50000
local ex <close> = futures.ThreadPoolExecutor(4)
local function noop() end
for _ = 1, 1000 do ex:submit(noop):result() end -- warm up: workers started
-- ns on a CPU and ns runnable but waiting for one, of this thread
local function schedstat()
  local f = io.open("/proc/thread-self/schedstat")
  local s = f and f:read("a")
  if f then f:close() end
  local run, wait = (s or ""):match("^(%d+) (%d+)")
  return tonumber(run), tonumber(wait)
end
local fs = {}
local run0, wait0 = schedstat()
local t0 = braid.monotonic()
for i = 1, N do fs[i] = ex:submit(noop) end
local t1 = braid.monotonic()
local run1, wait1 = schedstat()
for i = 1, N do fs[i]:result() end
local dt = braid.monotonic() - t0
print(("RESULT burst_50k %.0f"):format(N / dt))
print(("RESULT burst_submit_us %.3f"):format((t1 - t0) / N * 1e6))
if run0 and run1 then
  print(("RESULT burst_submit_cpu_us %.3f"):format((run1 - run0) / N / 1e3))
  print(("RESULT burst_submit_runq_us %.3f"):format((wait1 - wait0) / N / 1e3))
end
