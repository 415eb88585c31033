-- Memory per queued item: process RSS growth of an unbounded Queue holding
-- 1,000,000 integers, in bytes per item. Pairs with memory.py.
local queue = require "braid.queue"
local function rss_kb()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s+(%d+)")
    if kb then return tonumber(kb) end
  end
end
local N = tonumber(arg and arg[1]) or 1000000
local q = queue.Queue()
collectgarbage()
local rss0 = rss_kb()
for i = 1, N do q:put(i) end
local grown = rss_kb() - rss0
assert(q:qsize() == N and q:get() == 1)
print(("RESULT queue_1m_ints_bytes %.1f"):format(grown * 1024 / N))
