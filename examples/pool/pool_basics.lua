-- multiprocessing.pool.ThreadPool tutorial: map, apply_async, imap,
-- imap_unordered and AsyncResult (the Pool example of the Python docs).
local braid = require "braid"
local ThreadPool = require("braid.pool").ThreadPool

local function f(x) return x * x end

local pool <close> = ThreadPool(4)
print("map: " .. table.concat(pool:map(f, { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 }), " "))

local parts = {}
for v in pool:imap(f, { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 }) do parts[#parts + 1] = v end
print("imap: " .. table.concat(parts, " "))

local res = pool:apply_async(f, { 20 })
print("apply_async: " .. res:get(1))

res = pool:apply_async(braid.sleep, { 0.5 })
local ok, e = pcall(res.get, res, 0.1)
print("We lacked patience and got a " .. e.kind .. " error")

local unordered = {}
for v in pool:imap_unordered(function(x)
  braid.sleep(x == 1 and 0.2 or 0)
  return x
end, { 1, 2, 3 }) do unordered[#unordered + 1] = v end
print("imap_unordered: last is " .. unordered[#unordered])
pool:terminate()
