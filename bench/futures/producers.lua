-- 4 threads each submit 10k noop tasks to one ThreadPoolExecutor(4) and
-- collect their results: tasks per second. Pairs with producers.py.
local braid = require "braid"
local threading = require "braid.threading"
local futures = require "braid.futures"
local P, PER = 4, tonumber(arg and arg[1]) or 10000
local ex <close> = futures.ThreadPoolExecutor(4)
local function noop() end
for _ = 1, 1000 do ex:submit(noop):result() end -- warm up
local t0 = braid.monotonic()
local ts = {}
for i = 1, P do
  ts[i] = threading.Thread{target = function(ex, per)
    local function noop() end
    local fs = {}
    for j = 1, per do fs[j] = ex:submit(noop) end
    for j = 1, per do fs[j]:result() end
  end, args = {ex, PER}}
  ts[i]:start()
end
for i = 1, P do ts[i]:join() end
local dt = braid.monotonic() - t0
print(("RESULT producers_4x10k %.0f"):format(P * PER / dt))
