-- Many threads at once: start 1,000 (then 5,000) threads that each park on
-- one Event, measure the process RSS growth per parked thread, then set the
-- Event and join them all. Prints the start rate (threads/s, from the first
-- start to the last thread parked) and the RSS per thread in KB.
-- Pairs with parked.py. usage: braid parked.lua [N...]
local braid = require "braid"
local threading = require "braid.threading"

local function rss_kb()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s+(%d+)")
    if kb then return tonumber(kb) end
  end
end

local sizes = {}
for i = 1, (arg and #arg or 0) do sizes[i] = tonumber(arg[i]) end
if #sizes == 0 then sizes = {1000, 5000} end
local function waiter(go, parked) parked:release(); go:wait() end
for _, n in ipairs(sizes) do
  collectgarbage()
  local go, parked = threading.Event(), threading.Semaphore(0)
  local ts = {}
  local rss0 = rss_kb()
  local t0 = braid.monotonic()
  for i = 1, n do
    ts[i] = threading.Thread{target = waiter, args = {go, parked}}
    ts[i]:start()
  end
  for _ = 1, n do parked:acquire() end
  local dt = braid.monotonic() - t0
  local rss = rss_kb() - rss0
  go:set()
  for i = 1, n do ts[i]:join() end
  print(("RESULT parked_start_%d %.0f"):format(n, n / dt))
  print(("RESULT parked_rss_%d_kb %.1f"):format(n, rss / n))
end
