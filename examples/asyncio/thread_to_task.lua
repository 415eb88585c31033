-- One braid.queue.Queue between a thread and an asyncio task: a braid
-- thread produces, a task consumes with the ordinary blocking get(), which
-- inside a task suspends only that task. Another task keeps ticking
-- meanwhile, so the loop never blocks. (Python needs call_soon_threadsafe
-- or a janus-style queue for this.)
local threading = require "braid.threading"
local queue = require "braid.queue"
local asyncio = require "braid.asyncio"

local q = queue.Queue()

-- runs in its own OS thread (and Lua state)
local function producer(q)
  local braid = require "braid"
  for i = 1, 10 do
    braid.sleep(0.005)
    q:put(i)
  end
  q:put("done")
end

local function main()
  local finished, ticks = false, 0
  local ticker = asyncio.create_task(function()
    while not finished do
      ticks = ticks + 1
      asyncio.sleep(0.001)
    end
  end)
  local thread = threading.Thread{target = producer, args = {q}}
  thread:start()
  local sum, n, ticks_at_first = 0, 0, nil
  while true do
    local item = q:get() -- the thread-level queue: suspends this task only
    ticks_at_first = ticks_at_first or ticks
    if item == "done" then break end
    sum, n = sum + item, n + 1
  end
  finished = true
  asyncio.await(ticker)
  thread:join() -- also suspends only this task
  print(("consumer task got %d items from the thread, sum %d"):format(n, sum))
  print("ticker ran while the consumer waited: " .. tostring(ticks > ticks_at_first))
end

asyncio.run(main)
