-- submit + result of a trivial task, 4 workers: round trips per second.
local futures = require "braid.futures"
local N = tonumber(arg and arg[1]) or 20000
local ex <close> = futures.ThreadPoolExecutor(4)
local function task(x) return x + 1 end
for i = 1, 1000 do ex:submit(task, i):result() end -- warm up
local t0 = require("braid").monotonic()
for i = 1, N do
  assert(ex:submit(task, i):result() == i + 1)
end
local dt = require("braid").monotonic() - t0
print(("RESULT submit_result_4w %.0f"):format(N / dt))
