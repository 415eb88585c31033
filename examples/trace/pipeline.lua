-- A three-stage pipeline with a deliberately slow middle stage, traced.
-- Run it with `braid --trace pipeline.json pipeline.lua` and open
-- pipeline.json in https://ui.perfetto.dev; run plainly, it records into a
-- temporary file itself (braid.trace.start) and reads the trace back to
-- name the stage that kept the others waiting.
local braid = require "braid"
local threading = require "braid.threading"
local queue = require "braid.queue"

local ITEMS = 40

-- CPU work standing in for real parsing: ~10x what the other stages do
local function work(n)
  local x = 0
  for i = 1, n do x = (x + i * i) % 1000003 end
  return x
end

local own = braid.trace.path() == nil
local path = braid.trace.path() or os.tmpname()
if own then braid.trace.start(path) end

local raw = queue.Queue{maxsize = 4, name = "raw"}
local parsed = queue.Queue{maxsize = 4, name = "parsed"}
local results = {}

local stages = {
  threading.Thread{name = "read", target = function()
    for i = 1, ITEMS do
      work(20000)
      raw:put(i)
    end
    raw:put(false)
  end},
  threading.Thread{name = "parse", target = function()
    while true do
      local item = raw:get()
      if not item then break end
      work(200000) -- the slow stage
      parsed:put(item * 2)
    end
    parsed:put(false)
  end},
  threading.Thread{name = "write", target = function()
    while true do
      local item = parsed:get()
      if not item then break end
      work(20000)
      results[#results + 1] = item
    end
    return #results
  end},
}
for _, t in ipairs(stages) do t:start() end
for _, t in ipairs(stages) do t:join() end
print("items written: " .. stages[3]:result())

if own then
  braid.trace.stop()
  -- one event per line: sum each thread's run and its waits
  local run, waited, names = {}, {}, {}
  for line in io.lines(path) do
    local tid = line:match('"tid":(%d+)')
    local dur = tonumber(line:match('"dur":([%d.]+)'))
    if line:find('"cat":"thread"', 1, true) then
      run[tid] = dur
      names[tid] = line:match('"name":"(.-)"')
    elseif line:find('"cat":"wait"', 1, true) then
      waited[tid] = (waited[tid] or 0) + dur
    end
  end
  local slowest, busiest = nil, -1
  for tid, name in pairs(names) do
    local busy = run[tid] - (waited[tid] or 0)
    if name ~= "MainThread" and busy > busiest then slowest, busiest = name, busy end
  end
  print("stage that kept the others waiting: " .. slowest)
  os.remove(path)
end
