-- park_memory in braid: process RSS growth per task for 100,000 tasks
-- parked on one asyncio.Event (VmRSS from /proc/self/status, after a full
-- collection on both sides of the measure). RESULT is in tasks per MB
-- (1e6 / bytes per task) so that higher is better like every other row;
-- the bytes per task is printed too. usage: braid park_memory.lua [N]
local asyncio = require "braid.asyncio"
local n = tonumber(arg and arg[1]) or tonumber(os.getenv("BENCH_N")) or 100000

local rss_kb = dofile(((arg and arg[0] or ""):match("^(.*)/") or ".") .. "/../lib/rss.lua")
local function rss() return rss_kb() * 1024 end

asyncio.run(function()
  local ev = asyncio.Event()
  local woke = 0
  local function waiter()
    ev:wait()
    woke = woke + 1
  end
  collectgarbage("collect")
  local before = rss()
  local tasks = {}
  for i = 1, n do tasks[i] = asyncio.create_task(waiter) end
  asyncio.sleep(0) -- every task runs up to its wait and parks
  collectgarbage("collect")
  local per_task = (rss() - before) / n
  ev:set()
  asyncio.gather(table.unpack(tasks, 1, n))
  assert(woke == n, woke)
  print(string.format("park_bytes_per_task %.0f", per_task))
  print(string.format("RESULT park_tasks_per_mb %.1f", 1e6 / per_task))
end)
