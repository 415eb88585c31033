-- braid.asyncio: gather, wait, wait_for, as_completed, shield, timeout and
-- TaskGroup, modelled on CPython's test_asyncio (test_tasks,
-- test_taskgroups, test_timeouts, test_waitfor).
local asyncio = require "braid.asyncio"
local braid = require "braid"

local run = asyncio.run
local support = require "spec.support.asyncio"
local raises = support.raises

describe("asyncio.gather", function()
  after_each(support.no_loops_left)

  it("returns the results in argument order, tasks and functions mixed", function()
    run(function()
      local slow = asyncio.create_task(function() asyncio.sleep(0.02) return "slow" end)
      local r = asyncio.gather(slow, function() return "fast" end, function() asyncio.sleep(0) return 3 end)
      assert.are.same({"slow", "fast", 3, n = 3}, r)
    end)
  end)

  it("keeps nil results in place", function()
    run(function()
      local r = asyncio.gather(function() return nil end, function() return 2 end)
      assert.are.equal(2, r.n)
      assert.is_nil(r[1])
      assert.are.equal(2, r[2])
    end)
  end)

  it("the first error ends the gather while the other children keep running", function()
    run(function()
      local other = asyncio.create_task(function() asyncio.sleep(0.02) return "done" end)
      local ok, err = pcall(asyncio.gather, other, function() error("boom", 0) end)
      assert.is_false(ok)
      assert.are.equal("boom", err)
      assert.is_false(other:done())
      assert.are.equal("done", asyncio.await(other))
    end)
  end)

  it("return_exceptions collects values and errors in place", function()
    run(function()
      local c = asyncio.create_task(function() asyncio.sleep(10) end)
      asyncio.sleep(0)
      c:cancel()
      local r = asyncio.gather(function() return 1 end, function() error("bad", 0) end, c,
        {return_exceptions = true})
      assert.are.equal(1, r[1])
      assert.are.equal("bad", r[2])
      assert.are.equal("Cancelled", r[3].kind)
    end)
  end)

  it("cancelling the gathering task cancels every child", function()
    run(function()
      local a = asyncio.create_task(function() asyncio.sleep(10) end)
      local b = asyncio.create_task(function() asyncio.sleep(10) end)
      local g = asyncio.create_task(function() return asyncio.gather(a, b) end)
      asyncio.sleep(0)
      asyncio.sleep(0)
      g:cancel()
      raises("Cancelled", asyncio.await, g)
      assert.is_true(a:cancelled() and b:cancelled())
    end)
  end)

  it("the same task or function passed twice runs once", function()
    local runs = 0
    run(function()
      local function f() runs = runs + 1 return runs end
      local r = asyncio.gather(f, f)
      assert.are.same({1, 1, n = 2}, r)
    end)
    assert.are.equal(1, runs)
  end)

  it("of nothing returns an empty list", function()
    run(function() assert.are.same({n = 0}, asyncio.gather()) end)
  end)
end)

describe("asyncio.wait / wait_for / as_completed", function()
  after_each(support.no_loops_left)

  it("wait ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION", function()
    run(function()
      local fast = asyncio.create_task(function() asyncio.sleep(0) return 1 end)
      local slow = asyncio.create_task(function() asyncio.sleep(0.05) return 2 end)
      local done, pending = asyncio.wait({fast, slow}, {return_when = asyncio.FIRST_COMPLETED})
      assert.is_true(done[fast])
      assert.is_true(pending[slow])
      done, pending = asyncio.wait({fast, slow})
      assert.is_true(done[fast] and done[slow])
      assert.is_nil(next(pending))
      local bad = asyncio.create_task(function() error("x") end)
      local slow2 = asyncio.create_task(function() asyncio.sleep(10) end)
      done, pending = asyncio.wait({bad, slow2}, {return_when = asyncio.FIRST_EXCEPTION})
      assert.is_true(done[bad])
      assert.is_true(pending[slow2])
      slow2:cancel()
      bad:exception()
    end)
  end)

  it("wait returns on timeout without raising or cancelling; empty set is ValueError", function()
    run(function()
      local slow = asyncio.create_task(function() asyncio.sleep(10) end)
      local done, pending = asyncio.wait({slow}, {timeout = 0.02})
      assert.is_nil(next(done))
      assert.is_true(pending[slow])
      assert.is_false(slow:done())
      slow:cancel()
      raises("ValueError", asyncio.wait, {})
    end)
  end)

  it("wait_for returns the result in time", function()
    run(function()
      assert.are.equal(5, asyncio.wait_for(function() asyncio.sleep(0) return 5 end, 1))
      assert.are.equal(6, asyncio.wait_for(function() return 6 end, nil))
    end)
  end)

  it("wait_for on timeout cancels the inner task, waits for its cleanup, raises Timeout", function()
    local cleaned = false
    run(function()
      local inner = asyncio.create_task(function()
        local ok, err = pcall(asyncio.sleep, 10)
        asyncio.sleep(0.01) -- cleanup that itself waits
        cleaned = true
        error(err, 0)
      end)
      local t0 = braid.monotonic()
      raises("Timeout", asyncio.wait_for, inner, 0.05)
      assert.is_true(cleaned)
      assert.is_true(inner:cancelled())
      assert.is_true(braid.monotonic() - t0 < 1)
      -- the calling task is not left cancelled
      asyncio.sleep(0)
      assert.are.equal(0, asyncio.current_task():cancelling())
    end)
  end)

  it("wait_for with timeout <= 0 on an unstarted task raises Timeout and it never runs", function()
    local ran = false
    run(function()
      raises("Timeout", asyncio.wait_for, function() ran = true end, 0)
    end)
    assert.is_false(ran)
  end)

  it("wait_for: an inner task swallowing the cancel and returning 42 gives 42", function()
    run(function()
      local r = asyncio.wait_for(function()
        pcall(asyncio.sleep, 10)
        return 42
      end, 0.02)
      assert.are.equal(42, r)
    end)
  end)

  it("as_completed yields tasks in completion order; timeout raises Timeout", function()
    run(function()
      local a = asyncio.create_task(function() asyncio.sleep(0.03) return "a" end)
      local b = asyncio.create_task(function() asyncio.sleep(0.01) return "b" end)
      local seen = {}
      for t in asyncio.as_completed({a, b}) do seen[#seen + 1] = asyncio.await(t) end
      assert.are.same({"b", "a"}, seen)
      local slow = asyncio.create_task(function() asyncio.sleep(10) end)
      raises("Timeout", function()
        for _ in asyncio.as_completed({slow}, 0.02) do end
      end)
      slow:cancel()
    end)
  end)
end)

describe("asyncio.shield and timeout", function()
  after_each(support.no_loops_left)

  it("shield: the outer is cancelled, the inner runs to completion", function()
    run(function()
      local inner = asyncio.create_task(function() asyncio.sleep(0.02) return "inner" end)
      local outer = asyncio.create_task(function() return asyncio.shield(inner) end)
      asyncio.sleep(0)
      asyncio.sleep(0)
      outer:cancel()
      raises("Cancelled", asyncio.await, outer)
      assert.are.equal("inner", asyncio.await(inner))
    end)
  end)

  it("shield: inner cancelled cancels the outer", function()
    run(function()
      local inner = asyncio.create_task(function() asyncio.sleep(10) end)
      local outer = asyncio.create_task(function() return asyncio.shield(inner) end)
      asyncio.sleep(0)
      inner:cancel()
      raises("Cancelled", asyncio.await, outer)
    end)
  end)

  it("timeout: inside sees Cancelled, outside Timeout, the enclosing task not cancelled", function()
    run(function()
      local inside
      local err = raises("Timeout", asyncio.timeout, 0.02, function()
        local ok, e = pcall(asyncio.sleep, 10)
        inside = e
        error(e, 0)
      end)
      assert.are.equal("Cancelled", inside.kind)
      assert.are.equal("Timeout", err.kind)
      assert.are.equal(0, asyncio.current_task():cancelling())
      asyncio.sleep(0) -- not cancelled afterwards
    end)
  end)

  it("timeout returns the function's results when it finishes in time; nil delay never expires", function()
    run(function()
      assert.are.same({1, 2}, {asyncio.timeout(1, function() asyncio.sleep(0) return 1, 2 end)})
      assert.are.equal(3, asyncio.timeout(nil, function() return 3 end))
    end)
  end)

  it("timeout passes its Timeout: when, reschedule and expired", function()
    run(function()
      local loop = asyncio.get_running_loop()
      local seen
      raises("Timeout", asyncio.timeout, 10, function(cm, x)
        assert.are.equal("arg", x)
        assert.is_true(cm:when() > loop:time() + 5)
        assert.is_false(cm:expired())
        cm:reschedule(loop:time() + 0.02)
        seen = cm
        asyncio.sleep(10)
      end, "arg")
      assert.is_true(seen:expired())
      raises("RuntimeError", seen.reschedule, seen, 1)
      -- rescheduled to never: runs to the end
      assert.are.equal("done", asyncio.timeout(0.01, function(cm)
        cm:reschedule(nil)
        asyncio.sleep(0.03)
        return "done"
      end))
    end)
  end)

  it("nested timeouts with the same deadline: only the outermost raises Timeout", function()
    run(function()
      local inner_err
      raises("Timeout", asyncio.timeout, 0.02, function()
        local ok, e = pcall(asyncio.timeout, 0.02, function() asyncio.sleep(10) end)
        inner_err = e
        error(e, 0)
      end)
      assert.are.equal("Cancelled", inner_err.kind)
    end)
  end)
end)

describe("asyncio.TaskGroup", function()
  after_each(support.no_loops_left)

  it("waits for every child, even ones added later", function()
    local done = {}
    run(function()
      asyncio.TaskGroup(function(tg)
        tg:create_task(function() asyncio.sleep(0.01) done[#done + 1] = 1 end)
        tg:create_task(function()
          asyncio.sleep(0)
          tg:create_task(function() asyncio.sleep(0.02) done[#done + 1] = 3 end)
          done[#done + 1] = 2
        end)
      end)
      assert.are.equal(3, #done)
    end)
  end)

  it("a child error cancels the siblings and the body; errors aggregate without Cancelled", function()
    local sibling_cancelled, body_cancelled = false, false
    run(function()
      local err = raises("ExceptionGroup", asyncio.TaskGroup, function(tg)
        tg:create_task(function() asyncio.sleep(0) error("child failed", 0) end)
        tg:create_task(function()
          local ok, e = pcall(asyncio.sleep, 10)
          sibling_cancelled = not ok and e.kind == "Cancelled"
          error(e, 0)
        end)
        local ok, e = pcall(asyncio.sleep, 10)
        body_cancelled = not ok and e.kind == "Cancelled"
        error(e, 0)
      end)
      assert.are.same({"child failed"}, err.errors)
      -- the group's own cancellation of this task is not left behind
      assert.are.equal(0, asyncio.current_task():cancelling())
    end)
    assert.is_true(sibling_cancelled)
    assert.is_true(body_cancelled)
  end)

  it("two failing children give both errors", function()
    run(function()
      local err = raises("ExceptionGroup", asyncio.TaskGroup, function(tg)
        tg:create_task(function() error("a", 0) end)
        tg:create_task(function() error("b", 0) end)
      end)
      table.sort(err.errors)
      assert.are.same({"a", "b"}, err.errors)
    end)
  end)

  it("a body error cancels the children and is part of the group error", function()
    local cancelled = false
    run(function()
      local err = raises("ExceptionGroup", asyncio.TaskGroup, function(tg)
        tg:create_task(function()
          local ok, e = pcall(asyncio.sleep, 10)
          cancelled = not ok
          error(e, 0)
        end)
        asyncio.sleep(0)
        error("body", 0)
      end)
      assert.are.same({"body"}, err.errors)
    end)
    assert.is_true(cancelled)
  end)

  it("create_task after the group finished raises RuntimeError", function()
    run(function()
      local saved
      asyncio.TaskGroup(function(tg) saved = tg end)
      raises("RuntimeError", saved.create_task, saved, function() end)
    end)
  end)

  it("the parent's cancellation is not swallowed by a nested group", function()
    run(function()
      local parent = asyncio.create_task(function()
        asyncio.TaskGroup(function(tg)
          tg:create_task(function() asyncio.sleep(10) end)
          asyncio.sleep(10)
        end)
        return "not cancelled"
      end)
      asyncio.sleep(0)
      asyncio.sleep(0)
      parent:cancel()
      raises("Cancelled", asyncio.await, parent)
      assert.is_true(parent:cancelled())
    end)
  end)
end)
