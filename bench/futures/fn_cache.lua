-- Effect of the workers' function cache: the same function submitted many
-- times (submit + result round trips), cache on vs off.
local futures = require "braid.futures"
local braid = require "braid"
local N = tonumber(arg and arg[1]) or 20000
-- a function with some body, so loading its chunk costs what real tasks cost
local function task(t)
  local s = 0
  for i = 1, #t do s = s + t[i] end
  if s < 0 then error("negative") elseif s > 1e12 then return "big" end
  return string.format("%d", s)
end
local arg1 = { 1, 2, 3 }
for _, on in ipairs { true, false } do
  futures._fn_cache(on)
  local ex <close> = futures.ThreadPoolExecutor(1)
  for i = 1, 500 do ex:submit(task, arg1):result() end
  local t0 = braid.monotonic()
  local fs = {}
  for i = 1, N do fs[i] = ex:submit(task, arg1) end
  for i = 1, N do fs[i]:result() end
  local dt = braid.monotonic() - t0
  print(("RESULT fn_cache_%s %.0f"):format(on and "on" or "off", N / dt))
end
futures._fn_cache(true)
