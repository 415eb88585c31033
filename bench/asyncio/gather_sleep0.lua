-- gather_sleep0 in braid: one asyncio.gather of 100,000 tasks that each
-- sleep(0) once, repeated for about a second; reports tasks/s (creating the
-- tasks included). usage: braid gather_sleep0.lua [N]
local braid = require "braid"
local asyncio = require "braid.asyncio"
local n = tonumber(arg and arg[1]) or tonumber(os.getenv("BENCH_N")) or 100000

local function leaf(i)
  asyncio.sleep(0)
  return i
end

local function round()
  local tasks = {}
  for i = 1, n do tasks[i] = asyncio.create_task(leaf, i) end
  return asyncio.gather(table.unpack(tasks, 1, n))
end

asyncio.run(function()
  local res = round() -- warm-up and check
  assert(#res == n and res[1] == 1 and res[n] == n)
  local rounds, t0 = 0, braid.monotonic()
  local dt
  repeat
    round()
    rounds = rounds + 1
    dt = braid.monotonic() - t0
  until dt >= 1 and rounds >= 2
  print(string.format("RESULT gather_sleep0 %.0f", rounds * n / dt))
end)
