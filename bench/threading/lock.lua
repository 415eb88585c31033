-- Uncontended Lock acquire+release from Lua: pairs per second.
local threading = require "braid.threading"
local N = tonumber(arg and arg[1]) or 5000000
local l = threading.Lock()
local t0 = require("braid").monotonic()
for _ = 1, N do
  l:acquire()
  l:release()
end
local dt = require("braid").monotonic() - t0
print(("RESULT lock_acquire_release %.0f"):format(N / dt))
