-- task_done/join: workers mark each item done; join() returns once every
-- item put has been processed (Python's queue "join" idiom).
local threading = require "braid.threading"
local queue = require "braid.queue"
local shared = require "braid.shared"

local q = queue.Queue()
local stats = shared.table{processed = 0}

for i = 1, 4 do
  local t = threading.Thread{daemon = true, target = function(q, stats)
    local shared = require "braid.shared"
    while true do
      local item = q:get()
      shared.update(stats, "processed", function(n) return n + item end)
      q:task_done()
    end
  end, args = {q, stats}}
  t:start()
end

for i = 1, 100 do q:put(1) end
q:join() -- blocks until all 100 items are marked done
print("all work completed: " .. stats.processed)
