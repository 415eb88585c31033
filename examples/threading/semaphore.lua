-- Ten threads, but a Semaphore lets at most two work at the same time.
-- Port of the semaphore example.
local braid = require "braid"
local threading = require "braid.threading"

local function task(shared_semaphore, ident)
  shared_semaphore:with(function()
    local val = math.random()
    braid.sleep(val / 10)
    print(("Thread %d got %s"):format(ident, val))
  end)
end

local semaphore = threading.Semaphore(2)
local threads = {}
for i = 0, 9 do
  threads[#threads + 1] = threading.Thread{target = task, args = {semaphore, i}}
end
for _, thread in ipairs(threads) do thread:start() end
for _, thread in ipairs(threads) do thread:join() end
