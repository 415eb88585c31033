-- Run a coroutine: asyncio.run starts an event loop, runs the function as
-- its main task, and closes the loop when it returns.
-- Port of the "executing a coroutine using the event loop" example.
local asyncio = require "braid.asyncio"

-- an "async function" is a plain function that asyncio runs inside a task
local function custom_coro(message)
  print(message)
end

asyncio.run(custom_coro, "Hi from a coroutine")
