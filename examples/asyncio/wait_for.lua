-- wait_for waits for a task with a timeout: past it, the task is
-- cancelled (it may clean up) and wait_for raises a Timeout error.
local braid = require "braid"
local asyncio = require "braid.asyncio"

local function slow_task()
  local ok, err = pcall(asyncio.sleep, 10)
  if not ok then
    print("slow task cleaning up after: " .. err.kind)
    error(err, 0) -- a cancelled task re-raises its Cancelled error
  end
  return "never"
end

local function main()
  -- a quick one finishes within the timeout
  print("quick: " .. asyncio.wait_for(function() return "done in time" end, 1))
  -- a slow one does not
  local task = asyncio.create_task(slow_task)
  local ok, err = pcall(asyncio.wait_for, task, 0.05)
  print("gave up waiting: " .. tostring(braid.Error.is(err, "Timeout")) .. " (" .. tostring(ok) .. ")")
  print("task cancelled: " .. tostring(task:cancelled()))
end

asyncio.run(main)
