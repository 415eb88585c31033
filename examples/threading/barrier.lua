-- Five workers and main meet at a Barrier; all go on once everyone arrived.
-- Port of the barrier example.
local braid = require "braid"
local threading = require "braid.threading"

local function task(shared_barrier, ident)
  local value = math.random() * 10
  braid.sleep(value / 20)
  print(("Thread %d got: %s"):format(ident, value))
  shared_barrier:wait()
end

-- five workers plus the main thread
local barrier = threading.Barrier(5 + 1)
local threads = {}
for i = 0, 4 do
  threads[#threads + 1] = threading.Thread{target = task, args = {barrier, i}}
end
for _, thread in ipairs(threads) do thread:start() end
print("Main thread waiting on all results...")
barrier:wait()
print("All threads have their result")
