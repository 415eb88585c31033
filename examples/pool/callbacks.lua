-- ThreadPool apply_async/map_async with callback and error_callback: they
-- run in the main script's state.
local braid = require "braid"
local ThreadPool = require("braid.pool").ThreadPool

local log = {}
local pool <close> = ThreadPool(2)
local r1 = pool:map_async(function(x) return x + 1 end, { 1, 2, 3 }, nil, {
  callback = function(results) log[#log + 1] = "mapped " .. table.concat(results, ",") end,
})
local r2 = pool:apply_async(function() error("bad input") end, {}, {
  error_callback = function(err) log[#log + 1] = "error: " .. tostring(err) end,
})
r1:wait()
r2:wait()
braid.poll()
table.sort(log)
for _, line in ipairs(log) do print(line) end
print("successful:", r1:successful(), r2:successful())
