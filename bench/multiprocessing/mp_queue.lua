-- multiprocessing.Queue between two processes: 100,000 small items from a
-- child to the parent (issue 9).
local braid = require "braid"
local mp = require "braid.multiprocessing"
local N = 100000

local q = mp.Queue()
local p = mp.Process{target = function(q, n)
    for i = 1, n do q:put(i) end
end, args = {q, N}}
local t0 = braid.monotonic()
p:start()
local sum = 0
for _ = 1, N do sum = sum + q:get() end
p:join()
local dt = braid.monotonic() - t0
assert(sum == N * (N + 1) // 2 and p.exitcode == 0)
print(("RESULT mp_queue_100k %.1f"):format(N / dt))
