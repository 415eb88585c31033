-- Run a function in a new process (SuperFastPython: "example of running a
-- function in a new process"), then wait for it.
local braid = require "braid"
local mp = require "braid.multiprocessing"

-- a simple task that blocks for a moment and prints a message
local function task()
    require("braid").sleep(0.2)
    print("This is coming from another process")
end

local process = mp.Process{target = task}
process:start()
print("Waiting for the new process to finish...")
process:join()
print("exitcode", process.exitcode)
