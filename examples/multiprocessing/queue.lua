-- A producer and a consumer process sharing a Queue (SuperFastPython:
-- "example of using the queue with processes"); nil marks the end.
local mp = require "braid.multiprocessing"

local function producer(queue)
    print("Producer: Running")
    for i = 1, 10 do
        queue:put(i * 7 % 10 / 10)
    end
    queue:put(nil)
    print("Producer: Done")
end

local function consumer(queue)
    print("Consumer: Running")
    local n = 0
    while true do
        local item = queue:get()
        if item == nil then break end
        n = n + 1
        print(("> got %.1f"):format(item))
    end
    print("Consumer: Done, got " .. n)
end

local queue = mp.Queue()
local c = mp.Process{target = consumer, args = {queue}}
c:start()
local p = mp.Process{target = producer, args = {queue}}
p:start()
p:join()
c:join()
