-- Queue(1024), one producer thread -> the main thread as consumer, 300k ints:
-- the shape most programs have. Pairs with main_consumer.py and
-- main_consumer_mutex.c. usage: braid main_consumer.lua [N]
local braid = require "braid"
local threading = require "braid.threading"
local queue = require "braid.queue"

local n = tonumber(arg and arg[1]) or 300000
local q = queue.Queue(1024)
local t0 = braid.monotonic()
local p = threading.Thread{target = function(q, n)
  for i = 1, n do q:put(i) end
  q:put(-1)
end, args = {q, n}}
p:start()
local s = 0
while true do
  local v = q:get()
  if v < 0 then break end
  s = s + v
end
local dt = braid.monotonic() - t0
p:join()
assert(s == n * (n + 1) // 2)
print(("RESULT queue_main_consumer %.0f"):format(n / dt))
