-- Two CPU-bound Lua threads vs the same work done twice sequentially:
-- prints the speed-up (sequential time / threaded time) as the rate.
local threading = require "braid.threading"
local braid = require "braid"
local N = tonumber(arg and arg[1]) or 20000000
local function work(n)
  local s = 0
  for i = 1, n do s = s + i % 7 end
  return s
end
local t0 = braid.monotonic()
work(N); work(N)
local seq = braid.monotonic() - t0
t0 = braid.monotonic()
local a = threading.Thread{target = work, args = {N}}
local b = threading.Thread{target = work, args = {N}}
a:start(); b:start()
a:join(); b:join()
local par = braid.monotonic() - t0
print(("RESULT cpu_two_threads_speedup %.2f"):format(seq / par))
