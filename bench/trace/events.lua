-- The cost of one trace event: a single thread puts and gets one item of a
-- Queue (4 events a pair when recording: a flow end each and a depth
-- counter each), first with tracing off, then on (into a temp file).
-- Prints RESULT lines: pairs/s off and on, and the ns per event.
-- usage: braid events.lua [seconds]
local braid = require "braid"
local queue = require "braid.queue"

local secs = tonumber(arg and arg[1]) or 0.5
if os.getenv("BRAID_TRACE_ARROWS") ~= "all" then
  -- a fast stream records one arrow in a stride; this counts every event,
  -- so it runs again with each put and get recording its arrow
  local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
  local ok = os.execute("BRAID_TRACE_ARROWS=all " .. q(arg[-1]) .. " " .. q(arg[0]) .. " " .. secs)
  os.exit(ok and 0 or 1)
end
local q = queue.Queue{name = "bench"}

local function rate()
  for i = 1, 1000 do q:put(i) q:get() end -- warm-up
  local n, t0 = 0, braid.monotonic()
  local dt
  repeat
    for i = 1, 1000 do q:put(i) q:get() end
    n = n + 1000
    dt = braid.monotonic() - t0
  until dt >= secs
  return n / dt
end

q:put(7)
assert(q:get() == 7)
local off = rate()
local path = os.tmpname()
braid.trace.start(path)
local on = rate()
braid.trace.stop()
os.remove(path)
print(string.format("RESULT trace_off_pairs %.0f", off))
print(string.format("RESULT trace_on_pairs %.0f", on))
-- ns per event: the extra time per pair over its 4 events
print(string.format("RESULT trace_event_us %.4f", (1 / on - 1 / off) / 4 * 1e6))
