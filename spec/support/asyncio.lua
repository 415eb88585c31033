-- Helpers shared by the braid.asyncio specs.
local asyncio = require "braid.asyncio"
local assert = require "luassert"

local M = {}

-- Asserts that fn(...) raises a braid.Error of kind; returns the error.
function M.raises(kind, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected a " .. kind .. " error")
  assert.are.equal(kind, type(err) == "table" and err.kind or tostring(err))
  return err
end

-- A task that counts loop turns until cancelled: proves the loop kept
-- running while another task waited. Returns {n = count, task = task}.
function M.ticker()
  local t = {n = 0}
  t.task = asyncio.create_task(function()
    while true do
      asyncio.sleep(0.001)
      t.n = t.n + 1
    end
  end)
  return t
end

-- Lets every ready task run a few steps.
function M.settle()
  for _ = 1, 5 do asyncio.sleep(0) end
end

-- asyncio.run(main) that then checks every libuv handle main opened was
-- released (after letting closes finish: a few turns, a collection, and a
-- last sleep of `linger` seconds, 0 by default).
function M.run_no_handles(main, linger)
  return asyncio.run(function()
    local r = main()
    for _ = 1, 3 do asyncio.sleep(0) end
    collectgarbage()
    collectgarbage()
    asyncio.sleep(linger or 0)
    assert.are.equal(0, asyncio._handle_count(), "libuv handles left open")
    return r
  end)
end

-- after_each: no event loop of a finished run is left behind.
function M.no_loops_left()
  collectgarbage()
  collectgarbage()
  assert.are.equal(0, asyncio._live_loops())
end

return M
