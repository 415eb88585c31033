-- Replaces threading.excepthook to report errors that end a thread.
-- Port of the "handle unexpected exceptions in threads" example.
local braid = require "braid"
local threading = require "braid.threading"

-- called in the failing thread with {exc_value=, exc_traceback=, thread=}
local function custom_hook(args)
  print(("Thread failed: %s"):format(tostring(args.exc_value)))
end

-- fails on purpose after a short pause
local function task()
  print("Working...")
  braid.sleep(0.1)
  error("Something bad happened")
end

-- set the hook before starting: each new thread takes the hook in force
-- when it starts
threading.excepthook = custom_hook
local thread = threading.Thread{target = task}
thread:start()
thread:join()
-- the error stayed inside the thread: main carries on
print("Continuing on...")
