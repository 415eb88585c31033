-- Codec round trip: braid.encode + braid.decode of a 1,000-field nested table
-- and of a function with 5 upvalues. Pairs with roundtrip.py and roundtrip.c.
local braid = require "braid"

local clock = braid.monotonic

-- 100 records x 10 fields (4 of them nested tables): the same shape as
-- roundtrip.py's list of dicts and roundtrip.c's table.
local function make_records()
  local records = {}
  for i = 1, 100 do
    records[i] = {
      id = i,
      name = "user" .. i,
      email = "user" .. i .. "@example.com",
      active = i % 2 == 0,
      score = i * 1.5,
      balance = -i * 100,
      tags = {"alpha", "beta", "gamma"},
      pos = {x = i, y = i * 2},
      history = {i, i + 1, i + 2, i + 3},
      meta = {created = 1700000000 + i, note = "note " .. i},
    }
  end
  return records
end

-- 5 upvalues: an integer, a float, a string, a table and a boolean.
local function make_function()
  local count, rate, label, weights, enabled = 7, 0.25, "scaled", {1, 2, 3, 4}, true
  return function(x)
    if not enabled then return x end
    local s = 0
    for i = 1, #weights do s = s + weights[i] * x end
    return label, s * rate + count
  end
end

-- Runs fn in batches until `seconds` of wall time have passed; returns ops/s.
local function measure(fn, seconds)
  local batch, ops, t0 = 64, 0, clock()
  repeat
    for _ = 1, batch do fn() end
    ops = ops + batch
  until clock() - t0 >= seconds
  return ops / (clock() - t0)
end

local encode, decode = braid.encode, braid.decode
local records, fn = make_records(), make_function()

-- sanity: the copies are equal in shape and behaviour
local r = decode(encode(records))
assert(#r == 100 and r[100].meta.note == "note 100" and r[7].history[4] == 10)
local label, v = decode(encode(fn))(2)
assert(label == "scaled" and v == 12.0)

measure(function() decode(encode(records)) end, 0.1) -- warm up
print(("RESULT table_roundtrip %.1f"):format(measure(function() decode(encode(records)) end, 0.8)))
print(("RESULT function_roundtrip %.1f"):format(measure(function() decode(encode(fn)) end, 0.8)))
