-- The P producers -> P consumers workload behind 1to1.lua and 4to4.lua:
-- integers through one Queue(1024); prints RESULT <label> <items/s>.
local braid = require "braid"
local threading = require "braid.threading"
local queue = require "braid.queue"

return function(P, label)
  local n = tonumber(arg and arg[1]) or tonumber(os.getenv("BENCH_N")) or 2000000
  local per = n // P
  local q, sums = queue.Queue(1024), queue.SimpleQueue()
  local t0 = braid.monotonic()
  local ts = {}
  for _ = 1, P do
    ts[#ts + 1] = threading.Thread{target = function(q, sums)
      local s = 0
      while true do
        local v = q:get()
        if v < 0 then break end
        s = s + v
      end
      sums:put(s)
    end, args = {q, sums}}
    ts[#ts]:start()
  end
  local ps = {}
  for i = 1, P do
    ps[i] = threading.Thread{target = function(q, per)
      for i = 1, per do q:put(i) end
    end, args = {q, per}}
    ps[i]:start()
  end
  for i = 1, P do ps[i]:join() end
  for _ = 1, P do q:put(-1) end
  for _, t in ipairs(ts) do t:join() end
  local dt = braid.monotonic() - t0
  local total = 0
  for _ = 1, P do total = total + sums:get() end
  assert(total == P * (per * (per + 1) // 2))
  print(string.format("RESULT %s %.0f", label, per * P / dt))
end
