-- Event set→wait hand-off between two threads: round trips per second.
local threading = require "braid.threading"
local braid = require "braid"
local N = tonumber(arg and arg[1]) or 20000
local ping, pong = threading.Event(), threading.Event()
local t = threading.Thread{target = function(a, b, n)
  for _ = 1, n do
    a:wait(); a:clear(); b:set()
  end
end, args = {ping, pong, N}}
t:start()
local t0 = braid.monotonic()
for _ = 1, N do
  ping:set(); pong:wait(); pong:clear()
end
local dt = braid.monotonic() - t0
t:join()
print(("RESULT event_round_trip %.0f"):format(N / dt))
