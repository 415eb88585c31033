-- Main waits on a Condition until a worker thread notifies it.
-- Port of the condition variable (wait/notify) example.
local braid = require "braid"
local threading = require "braid.threading"

-- the worker prepares "data", then wakes the waiting main thread
local function task(shared_condition)
  braid.sleep(0.1)
  print("Thread sending notification...")
  shared_condition:with(function()
    shared_condition:notify()
  end)
end

local condition = threading.Condition()
print("Main thread waiting for data...")
condition:with(function()
  -- started while main holds the condition, so the notify cannot come
  -- before main is waiting
  local thread = threading.Thread{target = task, args = {condition}}
  thread:start()
  condition:wait()
end)
print("Main thread all done")
