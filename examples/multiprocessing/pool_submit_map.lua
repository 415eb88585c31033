-- A process pool: submit one task and map a function over many
-- (SuperFastPython: "ProcessPoolExecutor submit() and map()"), then a
-- worker that crashes: the error says which worker, how and which job.
local futures = require "braid.futures"

local function task(value)
    -- some CPU work in another process
    local s = 0
    for i = 1, 100000 do s = s + (i * value) % 3 end
    return value * 10, s
end

local ex <close> = futures.ProcessPoolExecutor{max_workers = 2}
local future = ex:submit(task, 1)
print("submit:", (future:result()))
local out = {}
for v in ex:map(task, {1, 2, 3, 4, 5}) do out[#out + 1] = v end
print("map:", table.concat(out, " "))

local broken <close> = futures.ProcessPoolExecutor{max_workers = 1}
local f = broken:submit(function() os.exit(3) end)
local ok, err = pcall(f.result, f)
print(ok, (tostring(err):gsub("worker %d+", "worker PID")))
