-- A reentrant lock may be taken again by the thread that already holds it.
-- braid counterpart of the tutorial's RLock note: a locked helper calls another.
local threading = require "braid.threading"

-- report() takes the lock; so does task(), which calls report() while
-- holding it. With a plain Lock the second acquire would wait forever.
local function report(lock, ident)
  local _ <close> = lock:guard()
  print(("Thread %d reporting (lock taken twice)"):format(ident))
end

local function task(lock, ident)
  local _ <close> = lock:guard()
  report(lock, ident)
end

local lock = threading.RLock()
local threads = {}
for i = 0, 2 do
  threads[#threads + 1] = threading.Thread{target = task, args = {lock, i}}
end
for _, thread in ipairs(threads) do thread:start() end
for _, thread in ipairs(threads) do thread:join() end
print("Done")
