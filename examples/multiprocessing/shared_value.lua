-- A shared ctypes-style Value changed by a child process (SuperFastPython:
-- "example of shared variable among processes with a Value").
local mp = require "braid.multiprocessing"

local function task(variable)
    local braid = require "braid"
    braid.sleep(0.1)
    local data = 33 -- some fixed "random" data
    variable.value = data
    print("Child set the value to", data)
end

local variable = mp.Value("i", 0)
local process = mp.Process{target = task, args = {variable}}
process:start()
process:join()
print("Parent sees", variable.value)
