-- CPU-bound map on 2 workers against the same calls run sequentially.
local futures = require "braid.futures"
local braid = require "braid"
local N = tonumber(arg and arg[1]) or 64
local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
local function work(n) return fib(n) end
local items = {}
for i = 1, N do items[i] = 24 end
local t0 = braid.monotonic()
local seq = 0
for i = 1, N do seq = seq + work(items[i]) end
local t_seq = braid.monotonic() - t0
local ex <close> = futures.ThreadPoolExecutor(2)
ex:submit(work, 1):result(); ex:submit(work, 1):result() -- start both workers
t0 = braid.monotonic()
local par = 0
for r in ex:map(work, items) do par = par + r end
local t_par = braid.monotonic() - t0
assert(par == seq)
print(("RESULT cpu_map_sequential %.1f"):format(N / t_seq))
print(("RESULT cpu_map_2workers %.1f"):format(N / t_par))
print(("speedup %.2fx"):format(t_seq / t_par))
