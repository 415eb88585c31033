-- A priority work queue: {priority, task} pairs come out smallest priority
-- first, and tasks of equal priority in the order they were put.
local threading = require "braid.threading"
local queue = require "braid.queue"

local work = queue.PriorityQueue()
work:put{3, "write report"}
work:put{1, "fix production outage"}
work:put{2, "review pull request"}
work:put{1, "answer pager"}
work:put{2, "plan sprint"}

local done = queue.Queue()
local worker = threading.Thread{target = function(work, done)
  while true do
    local ok, item = pcall(work.get, work, false)
    if not ok then break end -- Empty: all work handed out
    done:put(string.format("priority %d: %s", item[1], item[2]))
    work:task_done()
  end
end, args = {work, done}}
worker:start()
work:join()
worker:join()
while not done:empty() do print(done:get()) end
