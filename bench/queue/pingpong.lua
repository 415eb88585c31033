-- queue_pingpong in braid: round trips through two Queue(1024) between two
-- threads. usage: braid pingpong.lua [N]
local braid = require "braid"
local threading = require "braid.threading"
local queue = require "braid.queue"
local n = tonumber(arg and arg[1]) or tonumber(os.getenv("BENCH_N")) or 200000
local a, b = queue.Queue(1024), queue.Queue(1024)
local t = threading.Thread{target = function(a, b)
  while true do
    local v = a:get()
    b:put(v)
    if v < 0 then return end
  end
end, args = {a, b}}
t:start()
local t0 = braid.monotonic()
for i = 1, n do
  a:put(i)
  assert(b:get() == i)
end
local dt = braid.monotonic() - t0
a:put(-1); b:get(); t:join()
print(string.format("RESULT queue_pingpong %.0f", n / dt))
