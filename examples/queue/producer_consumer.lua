-- Producer-consumer: three producers and two consumers share one bounded
-- Queue; one sentinel per consumer ends the work.
local threading = require "braid.threading"
local queue = require "braid.queue"

local q = queue.Queue(10) -- bounded: producers wait when consumers lag
local results = queue.Queue()
local DONE = "done"

local function producer(q, id)
  for i = 1, 100 do q:put{from = id, n = i} end
end

local function consumer(q, results, DONE)
  local sum, count = 0, 0
  while true do
    local item = q:get()
    if item == DONE then break end
    sum, count = sum + item.n, count + 1
  end
  results:put{sum = sum, count = count}
end

local consumers, producers = {}, {}
for i = 1, 2 do
  consumers[i] = threading.Thread{target = consumer, args = {q, results, DONE}}
  consumers[i]:start()
end
for i = 1, 3 do
  producers[i] = threading.Thread{target = producer, args = {q, i}}
  producers[i]:start()
end
for _, t in ipairs(producers) do t:join() end
for _ = 1, #consumers do q:put(DONE) end
for _, t in ipairs(consumers) do t:join() end

local sum, count = 0, 0
for _ = 1, #consumers do
  local r = results:get()
  sum, count = sum + r.sum, count + r.count
end
print(string.format("consumed %d items, sum %d", count, sum))
