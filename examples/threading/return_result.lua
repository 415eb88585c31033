-- braid's direct way to get values out of a thread: thread:result().
-- Companion to the instance-variable example (Python has no equivalent).
local braid = require "braid"
local threading = require "braid.threading"

local function task(greeting)
  braid.sleep(0.1)
  return greeting .. " from a new thread", 42
end

local function fails()
  error("no result today")
end

local thread = threading.Thread{target = task, args = {"Hello"}}
thread:start()
-- waits for the thread, then returns what the target returned
local text, number = thread:result()
print(text, number)

-- an error that ended the thread is raised again by result()
threading.excepthook = function() end   -- keep stderr quiet for this one
local bad = threading.Thread{target = fails}
bad:start()
local ok, err = pcall(bad.result, bad)
print(ok, err)
