-- Five threads wait on one Event; main sets it and they all start work.
-- Port of the event example.
local braid = require "braid"
local threading = require "braid.threading"

local function task(shared_event, number)
  print(("Thread %d waiting..."):format(number))
  shared_event:wait()
  local value = math.random()
  braid.sleep(value / 10)
  print(("Thread %d got %s"):format(number, value))
end

local event = threading.Event()
local threads = {}
for i = 0, 4 do
  threads[#threads + 1] = threading.Thread{target = task, args = {event, i}}
end
for _, thread in ipairs(threads) do thread:start() end
-- give the threads a moment to reach wait() (the tutorial does the same)
print("Main thread blocking...")
braid.sleep(0.2)
event:set()
for _, thread in ipairs(threads) do thread:join() end
