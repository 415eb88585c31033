-- create_task schedules a function as a new task that runs concurrently
-- with its creator; await waits for it and returns its results.
local asyncio = require "braid.asyncio"

local function other(name, delay)
  print(name .. " started")
  asyncio.sleep(delay)
  print(name .. " finished")
  return name .. " result", delay
end

local function main()
  -- the task starts running at main's next suspension point
  local task = asyncio.create_task(other, "background task", 0.05)
  print("main created " .. task:get_name() .. ", done: " .. tostring(task:done()))
  local result, delay = asyncio.await(task)
  print(("main got %q after %.2f s, done: %s"):format(result, delay, tostring(task:done())))
end

asyncio.run(main)
