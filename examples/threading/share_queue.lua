-- A worker thread produces an item and main consumes it through a Queue.
-- Port of "share data between threads with queues".
local braid = require "braid"
local queue = require "braid.queue"
local threading = require "braid.threading"

local function task(shared_queue)
  braid.sleep(0.1)
  local item = "Hello from a new thread"
  shared_queue:put(item)
end

-- queues are braid objects: the thread gets the same queue, not a copy
local q = queue.Queue()
local thread = threading.Thread{target = task, args = {q}}
thread:start()
-- blocks until the worker has put something
local data = q:get()
print(data)
thread:join()
