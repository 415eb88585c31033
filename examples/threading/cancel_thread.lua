-- Stops a thread that never checks any flag, with braid's thread:cancel().
-- braid's answer to the tutorials' "forcefully kill a thread" example.
local braid = require "braid"
local threading = require "braid.threading"

-- runs forever; the cancel arrives as a Cancelled error at its next
-- braid call (here: sleep) or Lua instruction, and unwinds it, closing
-- <close> variables on the way. The default excepthook stays quiet about
-- Cancelled: a requested stop is not a failure
local function task()
  local _ <close> = setmetatable({}, {__close = function(_, err)
    print(("Cleaning up after: %s"):format(tostring(err)))
  end})
  while true do
    braid.sleep(0.1)
    print("Task is running")
  end
end

local thread = threading.Thread{target = task}
thread:start()
braid.sleep(0.35)
print("Cancelling the thread")
thread:cancel()
thread:join()
print(("Thread alive: %s"):format(thread:is_alive()))
print("All done, stopping")
