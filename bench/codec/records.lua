-- 1,000 records {id=, name=, vals={i, i*0.5, true}}: braid.encode +
-- braid.decode on one thread (records_roundtrip), and the same table put
-- through a Queue to a second thread that gets it (records_queue). Pairs with
-- records.py, whose both rows are pickle.dumps + pickle.loads.
local braid = require "braid"
local threading = require "braid.threading"
local queue = require "braid.queue"
local clock = braid.monotonic

local recs = {}
for i = 1, 1000 do
  recs[i] = {id = i, name = "user" .. i, vals = {i, i * 0.5, true}}
end

local function measure(fn, seconds)
  local batch, ops, t0 = 16, 0, clock()
  repeat
    for _ = 1, batch do fn() end
    ops = ops + batch
  until clock() - t0 >= seconds
  return ops / (clock() - t0)
end

local encode, decode = braid.encode, braid.decode
local r = decode(encode(recs))
assert(#r == 1000 and r[1000].name == "user1000" and r[7].vals[2] == 3.5 and r[9].vals[3] == true)
measure(function() decode(encode(recs)) end, 0.1) -- warm up
print(("RESULT records_roundtrip %.1f"):format(measure(function() decode(encode(recs)) end, 0.8)))

-- through a Queue(64) to a consumer thread, which checks the last one
local q = queue.Queue(64)
local t = threading.Thread{target = function(q)
  local last
  while true do
    local v = q:get()
    if v == false then break end
    last = v
  end
  assert(#last == 1000 and last[1000].vals[2] == 500.0)
end, args = {q}}
t:start()
for _ = 1, 200 do q:put(recs) end -- warm up
local n, t0 = 0, clock()
repeat
  for _ = 1, 16 do q:put(recs) end
  n = n + 16
until clock() - t0 >= 0.8
q:put(false)
t:join()
print(("RESULT records_queue %.1f"):format(n / (clock() - t0)))
