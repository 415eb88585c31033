-- sleep_10k in braid: 10,000 tasks each sleep(0.1) at once, gathered; the
-- wall time of one such round (task creation included), best of 5 rounds
-- after a warm-up, reported as rounds per second (1 / wall time: 0.2 s is
-- 5/s). The wall time is printed too. usage: braid sleep_10k.lua [N]
local braid = require "braid"
local asyncio = require "braid.asyncio"
local n = tonumber(arg and arg[1]) or tonumber(os.getenv("BENCH_N")) or 10000

local function sleeper(i)
  asyncio.sleep(0.1)
  return i
end

local function round()
  local t0 = braid.monotonic()
  local tasks = {}
  for i = 1, n do tasks[i] = asyncio.create_task(sleeper, i) end
  local res = asyncio.gather(table.unpack(tasks, 1, n))
  local dt = braid.monotonic() - t0
  assert(#res == n and res[n] == n)
  return dt
end

asyncio.run(function()
  round() -- warm-up
  local best = math.huge
  for _ = 1, 5 do best = math.min(best, round()) end
  print(string.format("sleep_10k_wall_s %.4f", best))
  print(string.format("RESULT sleep_10k %.3f", 1 / best))
end)
