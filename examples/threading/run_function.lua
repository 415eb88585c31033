-- Runs a plain Lua function in a new thread, then waits for it with join.
-- Port of the tutorials' first threading example (Thread(target=task)).
local braid = require "braid"
local threading = require "braid.threading"

-- the work for the new thread: pause briefly, then say hello
local function task()
  braid.sleep(0.1)
  print("This is from another thread")
end

-- the target crosses into the thread's own Lua state (with its upvalues:
-- `braid` is a loaded module, so the thread just requires it)
local thread = threading.Thread{target = task}
thread:start()
print("Waiting for the thread...")
thread:join()
