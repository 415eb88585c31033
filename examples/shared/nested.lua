-- Shared tables: every thread sees the same entries; a shared table stored
-- inside another stays shared, while a plain table is copied in and out.
local threading = require "braid.threading"
local shared = require "braid.shared"

local config = shared.table{name = "braid", workers = 4}
config.stats = shared.table{runs = 0} -- nested: stays shared
config.tags = {"fast", "parallel"}    -- plain: stored as a copy

local t = threading.Thread{target = function(config)
  config.stats.runs = config.stats.runs + 1 -- the same stats table
  config.seen_by_thread = config.name .. " x" .. config.workers
end, args = {config}}
t:start()
t:join()

print("runs:", config.stats.runs)
print("seen:", config.seen_by_thread)
print("tags:", table.concat(config.tags, ","), "#tags:", #config.tags)
local keys = {}
for k in pairs(config) do keys[#keys + 1] = tostring(k) end
table.sort(keys)
print("keys:", table.concat(keys, " "))
