-- Thread start+join of a no-op target: threads per second.
local threading = require "braid.threading"
local N = tonumber(arg and arg[1]) or 2000
local noop = function() end
local t0 = require("braid").monotonic()
for _ = 1, N do
  local t = threading.Thread{target = noop}
  t:start()
  t:join()
end
local dt = require("braid").monotonic() - t0
print(("RESULT thread_start_join %.0f"):format(N / dt))
