-- braid.asyncio: run, tasks, cancellation, the loop, Future, unretrieved
-- errors and introspection, modelled on CPython's test_asyncio (test_tasks,
-- test_futures); gather/wait/timeouts/TaskGroup are in
-- asyncio_combinators_spec.lua.
local asyncio = require "braid.asyncio"
local braid = require "braid"
local Error = braid.Error

local run = asyncio.run
local support = require "spec.support.asyncio"
local raises = support.raises

local function kind_of(err)
  return type(err) == "table" and err.kind or tostring(err)
end


-- runs fn in its own loop, capturing stderr lines written meanwhile
local function capture_stderr(fn)
  local path = os.tmpname()
  local old = io.stderr
  local f = assert(io.open(path, "w"))
  io.stderr = f
  local ok, err = pcall(fn)
  io.stderr = old
  f:close()
  local s = assert(io.open(path)):read("a")
  os.remove(path)
  assert(ok, err)
  return s
end

describe("asyncio.run", function()
  after_each(support.no_loops_left)

  it("returns the function's results, nils included", function()
    local a, b, c, n = run(function(x, y) return x + y, nil, "z" end, 1, 2)
    assert.are.same({3, nil, "z"}, {a, b, c})
    assert.is_nil(n)
    assert.are.equal(3, select("#", run(function() return 1, nil, nil end)))
  end)

  it("re-raises the function's error as the same value", function()
    local e = {}
    local ok, err = pcall(run, function() error(e) end)
    assert.is_false(ok)
    assert.are.equal(e, err)
  end)

  it("inside a running loop raises RuntimeError", function()
    run(function()
      raises("RuntimeError", run, function() end)
    end)
  end)

  it("checks its argument", function()
    assert.has_error(function() run(42) end, "bad argument #1 to 'run' (function expected, got number)")
  end)

  it("cancels the tasks still pending at the end, running their <close> variables", function()
    local closed = 0
    run(function()
      for _ = 1, 3 do
        asyncio.create_task(function()
          local _ <close> = setmetatable({}, {__close = function() closed = closed + 1 end})
          asyncio.sleep(10)
        end)
      end
      asyncio.sleep(0)
    end)
    assert.are.equal(3, closed)
  end)

  it("can run again after it returns, and in a loop of many runs", function()
    for i = 1, 50 do
      assert.are.equal(i, run(function(x) asyncio.sleep(0) return x end, i))
    end
  end)
end)

describe("asyncio tasks", function()
  after_each(support.no_loops_left)

  it("create_task runs concurrently and await returns its results", function()
    local order = {}
    run(function()
      local t = asyncio.create_task(function(a) order[#order + 1] = "task"; return a, a * 2 end, 5)
      order[#order + 1] = "main"
      local x, y = asyncio.await(t)
      assert.are.same({5, 10}, {x, y})
      assert.is_true(t:done())
      assert.are.same({5, 10}, {t:result()})
    end)
    assert.are.same({"main", "task"}, order)
  end)

  it("sleep(0) yields exactly once; sleep returns its result", function()
    local log = {}
    run(function()
      asyncio.create_task(function() log[#log + 1] = "b1"; asyncio.sleep(0); log[#log + 1] = "b2" end)
      log[#log + 1] = "a1"
      assert.are.equal("v", asyncio.sleep(0, "v"))
      log[#log + 1] = "a2"
      asyncio.sleep(0)
      log[#log + 1] = "a3"
    end)
    assert.are.same({"a1", "b1", "a2", "b2", "a3"}, log)
  end)

  it("sleep(nan) raises ValueError; a non-number is an argument error", function()
    run(function()
      raises("ValueError", asyncio.sleep, 0 / 0)
      assert.has_error(function() asyncio.sleep("x") end)
    end)
  end)

  it("sleep waits about as long as asked", function()
    run(function()
      local t0 = braid.monotonic()
      asyncio.sleep(0.05)
      local dt = braid.monotonic() - t0
      assert.is_true(dt >= 0.045 and dt < 0.5, tostring(dt))
    end)
  end)

  it("current_task is nil outside tasks and the task inside", function()
    assert.is_nil(asyncio.current_task())
    run(function()
      local me = asyncio.current_task()
      assert.is_not_nil(me)
      local t = asyncio.create_task(function() return asyncio.current_task() end)
      assert.are.equal(t, asyncio.await(t))
      assert.are_not.equal(me, t)
    end)
  end)

  it("names tasks Task-N by default; get_name/set_name", function()
    run(function()
      local t = asyncio.create_task(function() end)
      assert.is_truthy(t:get_name():match("^Task%-%d+$"))
      t:set_name("worker")
      assert.are.equal("worker", t:get_name())
      assert.is_truthy(tostring(t):find("worker"))
    end)
  end)

  it("all_tasks lists the pending tasks; get_running_loop outside a loop raises", function()
    raises("RuntimeError", asyncio.get_running_loop)
    raises("RuntimeError", asyncio.create_task, function() end)
    run(function()
      local t = asyncio.create_task(function() asyncio.sleep(0) end)
      local all = asyncio.all_tasks()
      assert.is_true(all[t])
      assert.is_true(all[asyncio.current_task()])
      asyncio.await(t)
      assert.is_nil(asyncio.all_tasks()[t])
    end)
  end)

  it("keeps running tasks alive when the script drops every reference", function()
    local done = false
    run(function()
      asyncio.create_task(function()
        for _ = 1, 5 do asyncio.sleep(0) end
        done = true
      end)
      for _ = 1, 3 do collectgarbage() asyncio.sleep(0) end
      collectgarbage()
      for _ = 1, 5 do asyncio.sleep(0) end
    end)
    assert.is_true(done)
  end)

  -- a task table past 8 fields doubles its hash part: 100,000 tasks took
  -- ~40% more memory and time when the scheduler's fields were all set at
  -- creation (docs/performance.md, "The regression of December 2026")
  it("a task holds at most 8 fields created, parked on an Event, and done after a sleep", function()
    local function nfields(t)
      local n = 0
      for _ in pairs(t) do n = n + 1 end
      return n
    end
    run(function()
      local ev = asyncio.Event()
      local t = asyncio.create_task(function(x)
        ev:wait()
        return x
      end, 1)
      assert.is_true(nfields(t) <= 8, nfields(t))
      asyncio.sleep(0)
      assert.is_true(nfields(t) <= 8, nfields(t))
      ev:set()
      assert.are.equal(1, asyncio.await(t))
      local u = asyncio.create_task(function(x)
        asyncio.sleep(0)
        return x
      end, 2)
      assert.are.equal(2, asyncio.gather(u)[1])
      assert.is_true(nfields(u) <= 8, nfields(u))
    end)
  end)

  it("result while pending raises InvalidState", function()
    run(function()
      local t = asyncio.create_task(function() asyncio.sleep(0) end)
      raises("InvalidState", t.result, t)
      raises("InvalidState", t.exception, t)
      asyncio.await(t)
    end)
  end)

  it("a failed task's error is re-raised by await and returned by exception()", function()
    run(function()
      local t = asyncio.create_task(function() error({why = "bad"}) end)
      local ok, err = pcall(asyncio.await, t)
      assert.is_false(ok)
      assert.are.equal("bad", err.why)
      assert.are.equal(err, t:exception())
      assert.is_false(t:cancelled())
    end)
  end)

  it("await names what it got when it is not awaitable", function()
    run(function()
      assert.has_error(function() asyncio.await(42) end,
        "bad argument #1 to 'await' (Task, Future or function expected, got number)")
      assert.has_error(function() asyncio.await(io.stdout) end,
        "bad argument #1 to 'await' (Task, Future or function expected, got FILE*)")
    end)
  end)

  it("await(fn, ...) calls fn like Python's await coro()", function()
    run(function()
      assert.are.equal(7, asyncio.await(function(x) asyncio.sleep(0) return x + 1 end, 6))
    end)
  end)

  it("a task awaiting itself raises RuntimeError", function()
    run(function()
      local t
      t = asyncio.create_task(function() asyncio.sleep(0); return asyncio.await(t) end)
      local ok, err = pcall(asyncio.await, t)
      assert.is_false(ok)
      assert.are.equal("RuntimeError", err.kind)
    end)
  end)

  it("a plain coroutine.yield inside a task fails the task with a clear error", function()
    run(function()
      local t = asyncio.create_task(function() coroutine.yield(1) end)
      local ok, err = pcall(asyncio.await, t)
      assert.is_false(ok)
      assert.are.equal("RuntimeError", err.kind)
      assert.is_truthy(err.message:find("coroutine.yield"))
    end)
  end)

  it("asyncio calls from a coroutine nested in a task raise instead of hanging", function()
    run(function()
      local co = coroutine.wrap(function() asyncio.sleep(0) end)
      local ok, err = pcall(co)
      assert.is_false(ok)
      assert.are.equal("RuntimeError", err.kind)
    end)
  end)

  it("runs 10,000 tasks", function()
    local n = 0
    run(function()
      local ts = {}
      for i = 1, 10000 do
        ts[i] = asyncio.create_task(function() asyncio.sleep(0); n = n + 1 end)
      end
      asyncio.gather(table.unpack(ts))
    end)
    assert.are.equal(10000, n)
  end)
end)

describe("asyncio cancellation", function()
  after_each(support.no_loops_left)

  it("cancel() on a sleeping task: await raises Cancelled; done and cancelled; cancel again false", function()
    run(function()
      local t = asyncio.create_task(function() asyncio.sleep(10) end)
      asyncio.sleep(0)
      assert.is_true(t:cancel())
      local err = raises("Cancelled", asyncio.await, t)
      assert.is_true(t:done())
      assert.is_true(t:cancelled())
      assert.is_false(t:cancel())
      assert.are.equal("Cancelled", kind_of(err))
    end)
  end)

  it("cancel(msg) carries the message", function()
    run(function()
      local t = asyncio.create_task(function() asyncio.sleep(10) end)
      asyncio.sleep(0)
      t:cancel("stop now")
      local err = raises("Cancelled", asyncio.await, t)
      assert.are.equal("stop now", err.message)
    end)
  end)

  it("a task cancelled before it starts never runs", function()
    local ran = false
    run(function()
      local t = asyncio.create_task(function() ran = true end)
      t:cancel()
      raises("Cancelled", asyncio.await, t)
    end)
    assert.is_false(ran)
  end)

  it("a task that catches Cancelled and returns 42 is not cancelled", function()
    run(function()
      local t = asyncio.create_task(function()
        local ok, err = pcall(asyncio.sleep, 10)
        assert(not ok and err.kind == "Cancelled")
        return 42
      end)
      asyncio.sleep(0)
      t:cancel()
      assert.are.equal(42, asyncio.await(t))
      assert.is_false(t:cancelled())
    end)
  end)

  it("cancellation runs <close> variables and reaches nested awaits", function()
    local closed = {}
    run(function()
      local inner = asyncio.create_task(function()
        local _ <close> = setmetatable({}, {__close = function() closed[#closed + 1] = "inner" end})
        asyncio.sleep(10)
      end)
      local outer = asyncio.create_task(function()
        local _ <close> = setmetatable({}, {__close = function() closed[#closed + 1] = "outer" end})
        asyncio.await(inner)
      end)
      asyncio.sleep(0)
      asyncio.sleep(0)
      outer:cancel()
      raises("Cancelled", asyncio.await, outer)
      assert.is_true(inner:cancelled())
    end)
    table.sort(closed)
    assert.are.same({"inner", "outer"}, closed)
  end)

  it("cancelling the awaited task cancels the awaiting one", function()
    run(function()
      local inner = asyncio.create_task(function() asyncio.sleep(10) end)
      local outer = asyncio.create_task(function() asyncio.await(inner) end)
      asyncio.sleep(0)
      inner:cancel()
      raises("Cancelled", asyncio.await, outer)
      assert.is_true(outer:cancelled())
    end)
  end)

  it("a failed coroutine runs its <close> variables", function()
    local closed = false
    run(function()
      local t = asyncio.create_task(function()
        local _ <close> = setmetatable({}, {__close = function() closed = true end})
        asyncio.sleep(0)
        error("boom")
      end)
      pcall(asyncio.await, t)
    end)
    assert.is_true(closed)
  end)

  it("cancelling() and uncancel() count requests", function()
    run(function()
      local t = asyncio.create_task(function() asyncio.sleep(10) end)
      asyncio.sleep(0)
      t:cancel()
      t:cancel()
      assert.are.equal(2, t:cancelling())
      assert.are.equal(1, t:uncancel())
      pcall(asyncio.await, t)
    end)
  end)
end)


describe("asyncio loop and Future", function()
  after_each(support.no_loops_left)

  it("call_soon runs callbacks in order; call_later and call_at after a delay; time is monotonic", function()
    local log = {}
    run(function()
      local loop = asyncio.get_running_loop()
      loop:call_later(0.02, function(x) log[#log + 1] = x end, "later")
      loop:call_at(loop:time() + 0.01, function(x) log[#log + 1] = x end, "at")
      loop:call_soon(function(a, b) log[#log + 1] = a .. b end, "soon", 1)
      loop:call_soon(function() log[#log + 1] = "soon2" end)
      local h = loop:call_later(0.01, function() log[#log + 1] = "never" end)
      h:cancel()
      asyncio.sleep(0.05)
      assert.is_true(loop:time() > 0)
    end)
    assert.are.same({"soon1", "soon2", "at", "later"}, log)
  end)

  it("a Future's result while pending raises InvalidState; callbacks run in registration order", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local f = loop:create_future()
      raises("InvalidState", f.result, f)
      local order = {}
      f:add_done_callback(function(fut) order[#order + 1] = "a" .. fut:result() end)
      f:add_done_callback(function(fut) order[#order + 1] = "b" .. fut:result() end)
      loop:call_later(0.01, function() f:set_result(7) end)
      assert.are.equal(7, asyncio.await(f))
      asyncio.sleep(0)
      assert.are.same({"a7", "b7"}, order)
      raises("InvalidState", f.set_result, f, 8)
      local g = asyncio.Future()
      g:set_exception(Error.new("ValueError", "v"))
      raises("ValueError", asyncio.await, g)
    end)
  end)

  it("run_in_executor and to_thread run functions in threads and return their results", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local r = asyncio.await(loop:run_in_executor(nil, function(a, b) return a * b end, 6, 7))
      assert.are.equal(42, r)
      assert.are.equal("x!", asyncio.to_thread(function(s) return s .. "!" end, "x"))
      local ok, err = pcall(asyncio.to_thread, function() error("in thread", 0) end)
      assert.is_false(ok)
      assert.are.equal("in thread", err)
    end)
  end)
end)

describe("asyncio unretrieved errors", function()
  after_each(support.no_loops_left)

  it("a failed, never-awaited task is reported once when its loop closes", function()
    local out = capture_stderr(function()
      run(function()
        asyncio.create_task(function() error("lost error") end)
        asyncio.sleep(0)
        asyncio.sleep(0)
      end)
    end)
    assert.is_truthy(out:find("Task exception was never retrieved", 1, true))
    assert.is_truthy(out:find("lost error", 1, true))
    local _, count = out:gsub("never retrieved", "")
    assert.are.equal(1, count)
  end)

  it("is not reported for awaited, retrieved or cancelled tasks", function()
    local out = capture_stderr(function()
      run(function()
        local a = asyncio.create_task(function() error("seen") end)
        pcall(asyncio.await, a)
        local b = asyncio.create_task(function() error("seen too") end)
        asyncio.sleep(0)
        b:exception()
        local c = asyncio.create_task(function() asyncio.sleep(10) end)
        asyncio.sleep(0)
        c:cancel()
        asyncio.sleep(0)
      end)
    end)
    assert.are.equal("", out)
  end)

  it("is reported when a failed task is collected", function()
    local out = capture_stderr(function()
      run(function()
        local t = asyncio.create_task(function() error("collected error") end)
        asyncio.sleep(0)
        t = nil
        collectgarbage()
        collectgarbage()
      end)
    end)
    assert.is_truthy(out:find("collected error", 1, true))
  end)
end)

describe("asyncio introspection", function()
  after_each(support.no_loops_left)

  it("capture_call_graph gives the chain of tasks awaiting a task", function()
    run(function()
      local leaf = asyncio.create_task(function() asyncio.sleep(10) end)
      leaf:set_name("leaf")
      local mid = asyncio.create_task(function() asyncio.await(leaf) end)
      mid:set_name("mid")
      asyncio.sleep(0)
      asyncio.sleep(0)
      local g = asyncio.capture_call_graph(leaf)
      assert.are.equal(leaf, g.future)
      assert.are.equal(mid, g.awaited_by[1].future)
      local text = asyncio.format_call_graph(leaf)
      assert.is_truthy(text:find("leaf", 1, true))
      assert.is_truthy(text:find("mid", 1, true))
      assert.is_truthy(text:find("awaited by", 1, true))
      leaf:cancel()
      pcall(asyncio.await, mid)
    end)
  end)
end)
