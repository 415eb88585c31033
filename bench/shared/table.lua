-- shared.table holding 100,000 integer keys and values: RSS per entry
-- (bytes), then sets and gets per second from one thread. Pairs with
-- table.py (a plain dict, for scale: it is not shared between threads).
local braid = require "braid"
local shared = require "braid.shared"
local function rss_kb()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s+(%d+)")
    if kb then return tonumber(kb) end
  end
end
local N = tonumber(arg and arg[1]) or 100000
collectgarbage()
local rss0 = rss_kb()
local t = shared.table()
local t0 = braid.monotonic()
for i = 1, N do t[i] = i end
local dset = braid.monotonic() - t0
local grown = rss_kb() - rss0
local s = 0
t0 = braid.monotonic()
for i = 1, N do s = s + t[i] end
local dget = braid.monotonic() - t0
assert(s == N * (N + 1) // 2)
-- sets that overwrite (no growth), timed alone
t0 = braid.monotonic()
for i = 1, N do t[i] = -i end
local dover = braid.monotonic() - t0
print(("RESULT shared_table_bytes %.1f"):format(grown * 1024 / N))
print(("RESULT shared_table_sets %.0f"):format(N / dset))
print(("RESULT shared_table_overwrites %.0f"):format(N / dover))
print(("RESULT shared_table_gets %.0f"):format(N / dget))
