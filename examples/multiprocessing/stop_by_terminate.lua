-- Stop work that would run forever by running it in a process and
-- terminating the process (SuperFastPython: "kill a thread via its process").
local braid = require "braid"
local mp = require "braid.multiprocessing"

local function task()
    local threading = require "braid.threading"
    -- a thread in the child that runs forever
    local t = threading.Thread{target = function()
        while true do
            print("Task is running")
            require("braid").sleep(0.1)
        end
    end}
    t:start()
    t:join()
end

local process = mp.Process{target = task}
process:start()
braid.sleep(0.35)
print("Killing the thread via its process")
process:terminate()
process:join()
print("exitcode", process.exitcode)
print("All done, stopping")
