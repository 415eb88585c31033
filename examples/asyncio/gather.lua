-- gather runs a list of tasks concurrently and waits for them all; its
-- result lists each task's first result in argument order.
-- Port of the "execute a collection of coroutines with gather" example.
local asyncio = require "braid.asyncio"

-- a task that blocks for a moment and reports its number
local function task(number)
  -- the later tasks sleep less, so they finish first ...
  asyncio.sleep((10 - number) * 0.005)
  return number * number
end

local function main()
  -- a list of ten tasks (Python: [task(i) for i in range(10)])
  local task_list = {}
  for i = 1, 10 do task_list[i] = asyncio.create_task(task, i) end
  -- execute them and wait for all (Python: await gather(*task_list))
  local results = asyncio.gather(table.unpack(task_list))
  -- ... but the results keep the order of the arguments
  print("squares: " .. table.concat(results, " "))
  -- plain functions are wrapped into tasks
  local a, b = table.unpack(asyncio.gather(function() return "a" end, function() return "b" end))
  print("functions: " .. a .. " " .. b)
end

asyncio.run(main)
