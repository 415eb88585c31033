-- Helpers shared by the threading specs.
local braid = require "braid"
local threading = require "braid.threading"
local Thread = threading.Thread
local M = {}

function M.kind_of(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then error("expected an error", 2) end
  if braid.Error.is(err) then return err.kind end
  return tostring(err)
end

function M.elapsed(fn)
  local t0 = braid.monotonic()
  local r = fn()
  return braid.monotonic() - t0, r
end

-- starts n threads running fn(i, ...) and returns them
function M.spawn(n, fn, ...)
  local ts = {}
  local extra = table.pack(...)
  for i = 1, n do
    local args = {i, n = extra.n + 1}
    for k = 1, extra.n do args[k + 1] = extra[k] end
    ts[i] = Thread{target = fn, args = args}
    ts[i]:start()
  end
  return ts
end

function M.results(ts)
  local r = {}
  for i, t in ipairs(ts) do r[i] = t:result() end
  return r
end

-- waits until pred() is true (polling with a short sleep; a bound, not a sync)
function M.eventually(pred, limit)
  local deadline = braid.monotonic() + (limit or 10)
  while not pred() do
    assert(braid.monotonic() < deadline, "condition not reached in time")
    braid.sleep(0.002)
  end
end

return M
