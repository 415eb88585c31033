-- shutdown(): puts fail with ShutDown at once; gets drain what is left,
-- then fail. shutdown(true) drops what is left and releases join().
local braid = require "braid"
local queue = require "braid.queue"

local q = queue.Queue()
for i = 1, 3 do q:put(i) end
q:shutdown()
local ok, err = pcall(q.put, q, 4)
print("put after shutdown:", ok, err.kind)
while true do
  local ok, item = pcall(q.get, q)
  if not ok then
    print("then:", braid.Error.is(item, queue.ShutDown) and item.kind)
    break
  end
  print("drained", item)
  q:task_done()
end

local q2 = queue.Queue()
for i = 1, 3 do q2:put(i) end
q2:shutdown(true) -- immediate: the 3 items are dropped and counted done
print("after immediate shutdown: qsize", q2:qsize(), "join returns", q2:join())
