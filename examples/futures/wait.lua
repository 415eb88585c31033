-- futures.wait with return_when and timeout.
local braid = require "braid"
local futures = require "braid.futures"

local ex <close> = futures.ThreadPoolExecutor(3)
local quick = ex:submit(function() return "quick" end)
local slow = ex:submit(function() braid.sleep(0.5) return "slow" end)
local failing = ex:submit(function() braid.sleep(0.05) error("failed") end)

local done, not_done = futures.wait({ quick, slow, failing }, { return_when = futures.FIRST_EXCEPTION })
print("first exception: done includes failing:", done[failing] == true, "slow pending:", not_done[slow] == true)

done, not_done = futures.wait({ quick, slow, failing }, { timeout = 0.01 })
local n = 0
for _ in pairs(not_done) do n = n + 1 end
print("after a short timeout, unfinished:", n)

done = futures.wait({ quick, slow, failing })
n = 0
for _ in pairs(done) do n = n + 1 end
print("all completed:", n)
