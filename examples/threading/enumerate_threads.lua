-- Starts five threads, then lists every live thread, main thread included.
-- Port of the threading.enumerate() example.
local braid = require "braid"
local threading = require "braid.threading"

-- keep each thread busy long enough for main to see it
local function task()
  braid.sleep(0.3)
end

local threads = {}
for i = 1, 5 do
  threads[i] = threading.Thread{target = task}
end
for _, thread in ipairs(threads) do
  thread:start()
end

local running_threads = threading.enumerate()
print(("Active Threads: %d"):format(#running_threads))
for _, thread in ipairs(running_threads) do
  print(thread)
end
