-- Ten threads take turns in a critical section guarded by one Lock.
-- Port of the mutex lock example.
local braid = require "braid"
local threading = require "braid.threading"

-- the lock crosses to every thread by reference: all ten share it
local function task(shared_lock, ident, value)
  shared_lock:with(function()
    print((">%d got lock, sleeping %s"):format(ident, value))
    braid.sleep(value)
  end)
end

local lock = threading.Lock()
local threads = {}
for i = 0, 9 do
  -- short random pauses (a tenth of a second at most)
  threads[#threads + 1] = threading.Thread{target = task, args = {lock, i, math.random() / 10}}
end
for _, thread in ipairs(threads) do thread:start() end
for _, thread in ipairs(threads) do thread:join() end
