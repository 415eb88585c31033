-- Subclasses Thread and puts the thread's work in its run method.
-- Port of the "extend the Thread class" example.
local braid = require "braid"
local threading = require "braid.threading"

-- a Thread subclass; run() is what the new thread executes
local CustomThread = threading.Thread:extend()

function CustomThread:run()
  braid.sleep(0.1)
  print("This is another thread")
end

local thread = CustomThread()
thread:start()
print("Waiting for the thread to finish")
thread:join()
