-- A Timer runs a function once after a delay; cancel() stops one that has
-- not fired yet.
local threading = require "braid.threading"

local function greet(who)
  print(("Hello, %s (from a timer thread)"):format(who))
end

-- fires after 0.1 s in its own thread
local timer = threading.Timer(0.1, greet, {"world"})
timer:start()
print("Waiting for the timer...")
timer:join()

-- cancelled before its interval runs out: greet never runs
local late = threading.Timer(5, greet, {"nobody"})
late:start()
late:cancel()
late:join()
print("Second timer cancelled")
