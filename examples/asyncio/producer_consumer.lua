-- Producer-consumer with asyncio.Queue: a producer task puts work items on
-- a bounded queue, three consumer tasks take them; queue:join() waits until
-- each item has been marked done with task_done().
local asyncio = require "braid.asyncio"

local function producer(queue)
  for i = 1, 20 do
    queue:put(i) -- suspends while the queue is full
  end
  print("Producer: done")
end

local function consumer(queue, totals, id)
  while true do
    local item = queue:get() -- suspends while the queue is empty
    asyncio.sleep(0) -- "work": let the other tasks run
    totals[id] = totals[id] + item
    queue:task_done()
  end
end

local function main()
  local queue = asyncio.Queue(5)
  local totals = {0, 0, 0}
  local consumers = {}
  for id = 1, 3 do consumers[id] = asyncio.create_task(consumer, queue, totals, id) end
  asyncio.await(asyncio.create_task(producer, queue))
  queue:join() -- every item processed
  for _, c in ipairs(consumers) do c:cancel() end -- consumers loop forever
  asyncio.gather(table.unpack(consumers), {return_exceptions = true})
  print(("Consumers: processed sum %d, all three took work: %s"):format(
    totals[1] + totals[2] + totals[3], tostring(totals[1] > 0 and totals[2] > 0 and totals[3] > 0)))
end

asyncio.run(main)
