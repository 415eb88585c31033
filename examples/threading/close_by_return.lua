-- A thread ends itself early by returning from its target.
-- Port of "a thread closing itself" (Python's sys.exit() in a thread).
local braid = require "braid"
local threading = require "braid.threading"

-- Lua has no exit-this-thread call (os.exit would end the whole program),
-- so the target simply returns; the code after it never runs
local function task()
  braid.sleep(0.1)
  print("Thread exiting now")
  do return end
  print("Can you see me?")
end

local thread = threading.Thread{target = task}
thread:start()
-- main pauses longer than the thread, as in the tutorial
braid.sleep(0.2)
print("Main all done")
