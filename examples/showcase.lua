-- braid showcase: Python's concurrency toolkit in Lua, on every core.
local braid = require "braid"
local threading = require "braid.threading"
local queue = require "braid.queue"
local futures = require "braid.futures"

-- CPU-bound work: each thread runs it in its own Lua state, in parallel
local function collatz_steps(limit)
  local best, best_n = 0, 0
  for n = 1, limit do
    local steps, x = 0, n
    while x ~= 1 do
      x = (x % 2 == 0) and x // 2 or 3 * x + 1
      steps = steps + 1
    end
    if steps > best then best, best_n = steps, n end
  end
  return best_n, best
end

local N, cores = 100000, braid.cpu_count()
local t0 = braid.monotonic()
for _ = 1, cores do collatz_steps(N) end
local sequential = braid.monotonic() - t0

t0 = braid.monotonic()
local threads = {}
for i = 1, cores do
  threads[i] = threading.Thread{target = collatz_steps, args = {N}}
  threads[i]:start()
end
local n, steps = threads[1]:result()
for i = 2, cores do threads[i]:join() end
local parallel = braid.monotonic() - t0
print(("longest Collatz chain below %d starts at %d (%d steps)"):format(N, n, steps))
print(("%d threads: %.2fx the speed of running one after another"):format(
  cores, sequential / parallel))

-- a producer/consumer pipeline through a bounded queue
local q = queue.Queue(8)
local consumer = threading.Thread{target = function()
  local total = 0
  while true do
    local item = q:get()
    if item == nil then break end
    total = total + item.size
  end
  return total
end}
consumer:start()
for i = 1, 100 do q:put({name = "file" .. i, size = i}) end
q:put(nil)
print("bytes consumed:", consumer:result())

-- futures: submit work to a pool, gather results in input order
local ex <close> = futures.ThreadPoolExecutor(4)
local squares = {}
for r in ex:map(function(x) return x * x end, {1, 2, 3, 4, 5}) do
  squares[#squares + 1] = r
end
print("squares:", table.concat(squares, " "))

-- errors cross back as the same value, with the remote traceback
local ok, err = pcall(function()
  return ex:submit(function() error({code = 42}) end):result()
end)
print("remote error code:", err.code)
print(("braid %s on %d cores"):format(braid.version, cores))
