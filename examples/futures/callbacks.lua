-- Done callbacks run in the state that registered them, so they can
-- update the main script's local tables.
local braid = require "braid"
local futures = require "braid.futures"

local finished = {}
local ex <close> = futures.ThreadPoolExecutor(4)
local fs = {}
for i = 1, 5 do
  local f = ex:submit(function(x) return x * 10 end, i)
  f:add_done_callback(function(fut) finished[#finished + 1] = fut:result() end)
  fs[i] = f
end
futures.wait(fs)
braid.poll() -- run any callbacks still queued for this state
table.sort(finished)
print("callbacks saw: " .. table.concat(finished, " "))

-- on an already finished future the callback runs at once
fs[1]:add_done_callback(function() print("ran at once") end)
