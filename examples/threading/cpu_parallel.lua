-- The same CPU-bound Lua work run twice in a row, then in two threads at
-- once: with one Lua state per thread, the threads really run in parallel.
local braid = require "braid"
local threading = require "braid.threading"

-- pure Lua number crunching, no I/O and no braid calls
local function work(n)
  local s = 0
  for i = 1, n do
    s = s + (i % 7) * (i % 13)
  end
  return s
end

local N = 20000000

local t0 = braid.monotonic()
work(N)
work(N)
local sequential = braid.monotonic() - t0

t0 = braid.monotonic()
local threads = {}
for i = 1, 2 do
  threads[i] = threading.Thread{target = work, args = {N}}
  threads[i]:start()
end
for i = 1, 2 do
  threads[i]:join()
end
local parallel = braid.monotonic() - t0

print(("sequential: %.2f s, two threads: %.2f s"):format(sequential, parallel))
print(("speed-up: %.2fx on %d cores"):format(sequential / parallel, braid.cpu_count()))
