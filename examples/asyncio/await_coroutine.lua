-- Await a coroutine: calling an async function inside a task runs it, and
-- the caller resumes when it returns (Python's `await task()`).
-- Port of the "running a function in a new coroutine" example.
local asyncio = require "braid.asyncio"

-- a simple task that blocks for a moment and prints a message
local function task()
  -- suspends this task only: the loop could run others meanwhile
  asyncio.sleep(0.05)
  print("This is coming from another coroutine")
end

local function main()
  print("Waiting for the new coroutine to finish...")
  task() -- Python: await task()
end

asyncio.run(main)
