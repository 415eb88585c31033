-- braid.asyncio primitives and queues, modelled on CPython's
-- test_asyncio/test_locks.py and test_queues.py.
local asyncio = require "braid.asyncio"

local run = asyncio.run
local support = require "spec.support.asyncio"
local raises, ticker, settle = support.raises, support.ticker, support.settle



describe("asyncio.Lock", function()
  after_each(support.no_loops_left)

  it("acquire/release/locked; release unlocked raises RuntimeError", function()
    run(function()
      local l = asyncio.Lock()
      assert.is_false(l:locked())
      assert.is_true(l:acquire())
      assert.is_true(l:locked())
      l:release()
      assert.is_false(l:locked())
      raises("RuntimeError", l.release, l)
    end)
  end)

  it("is FIFO-fair among waiters", function()
    local order = {}
    run(function()
      local l = asyncio.Lock()
      l:acquire()
      for i = 1, 5 do
        asyncio.create_task(function() l:acquire(); order[#order + 1] = i; l:release() end)
      end
      settle()
      l:release()
      settle()
    end)
    assert.are.same({1, 2, 3, 4, 5}, order)
  end)

  it("5,000 waiters, every third cancelled, get the lock in arrival order", function()
    local order = {}
    run(function()
      local l = asyncio.Lock()
      l:acquire()
      local ts = {}
      for i = 1, 5000 do
        ts[i] = asyncio.create_task(function() l:acquire(); order[#order + 1] = i; l:release() end)
      end
      asyncio.sleep(0)
      for i = 3, 5000, 3 do ts[i]:cancel() end
      asyncio.sleep(0)
      l:release()
      for i = 1, 5000 do pcall(asyncio.await, ts[i]) end
    end)
    local expect = {}
    for i = 1, 5000 do if i % 3 ~= 0 then expect[#expect + 1] = i end end
    assert.are.same(expect, order)
  end)

  it("a cancelled waiter never gets nor loses the lock", function()
    run(function()
      local l = asyncio.Lock()
      l:acquire()
      local got = {}
      local a = asyncio.create_task(function() l:acquire(); got[#got + 1] = "a"; l:release() end)
      local b = asyncio.create_task(function() l:acquire(); got[#got + 1] = "b"; l:release() end)
      settle()
      a:cancel()
      settle()
      l:release()
      settle()
      assert.are.same({"b"}, got)
      assert.is_false(l:locked())
      assert.is_true(a:cancelled())
    end)
  end)

  it("a waiter cancelled after being handed the lock keeps it until it unwinds", function()
    run(function()
      local l = asyncio.Lock()
      l:acquire()
      local a = asyncio.create_task(function()
        local _ <close> = l:guard()
        asyncio.sleep(10)
      end)
      settle()
      l:release() -- handed to a
      a:cancel() -- before a runs
      settle()
      assert.is_true(a:cancelled())
      assert.is_false(l:locked())
    end)
  end)

  it("with() and guard() release on error", function()
    run(function()
      local l = asyncio.Lock()
      local ok = pcall(l.with, l, function() error("x") end)
      assert.is_false(ok)
      assert.is_false(l:locked())
      do
        local _ <close> = l:guard()
        assert.is_true(l:locked())
      end
      assert.is_false(l:locked())
    end)
  end)

  it("used from another loop raises RuntimeError", function()
    local l = asyncio.Lock()
    run(function() l:acquire(); l:release() end)
    run(function()
      local err = raises("RuntimeError", l.acquire, l)
      assert.is_truthy(err.message:find("different event loop", 1, true))
    end)
  end)

  it("outside a task raises RuntimeError instead of blocking", function()
    raises("RuntimeError", asyncio.Lock().acquire, asyncio.Lock())
  end)
end)

describe("asyncio.Event", function()
  after_each(support.no_loops_left)

  it("wakes every waiter with true; set then clear still wakes them", function()
    run(function()
      local e = asyncio.Event()
      assert.is_false(e:is_set())
      local woke = 0
      for _ = 1, 3 do
        asyncio.create_task(function() assert.is_true(e:wait()); woke = woke + 1 end)
      end
      settle()
      e:set()
      e:clear()
      settle()
      assert.are.equal(3, woke)
      assert.is_false(e:is_set())
      e:set()
      assert.is_true(e:wait())
    end)
  end)

  it("wait can be bounded with wait_for", function()
    run(function()
      raises("Timeout", asyncio.wait_for, function() return asyncio.Event():wait() end, 0.02)
    end)
  end)
end)

describe("asyncio.Condition", function()
  after_each(support.no_loops_left)

  it("wait/notify without the lock raise RuntimeError", function()
    run(function()
      local c = asyncio.Condition()
      raises("RuntimeError", c.wait, c)
      raises("RuntimeError", c.notify, c)
    end)
  end)

  it("notify(n) wakes n waiters oldest first, notify_all the rest, lock re-held", function()
    local woken = {}
    run(function()
      local c = asyncio.Condition()
      for i = 1, 5 do
        asyncio.create_task(function()
          c:acquire()
          c:wait()
          assert.is_true(c:locked())
          woken[#woken + 1] = i
          c:release()
        end)
      end
      settle()
      c:acquire(); c:notify(2); c:release()
      settle()
      assert.are.same({1, 2}, woken)
      c:acquire(); c:notify_all(); c:release()
      settle()
      assert.are.same({1, 2, 3, 4, 5}, woken)
    end)
  end)

  it("wait_for checks the predicate first and returns its value", function()
    run(function()
      local c = asyncio.Condition()
      local v = 0
      asyncio.create_task(function()
        for _ = 1, 3 do
          asyncio.sleep(0)
          c:acquire(); v = v + 1; c:notify_all(); c:release()
        end
      end)
      c:acquire()
      assert.are.equal(3, c:wait_for(function() return v >= 3 and v end))
      c:release()
    end)
  end)

  it("a cancelled wait re-acquires the lock before raising", function()
    run(function()
      local c = asyncio.Condition()
      local held
      local t = asyncio.create_task(function()
        c:acquire()
        local ok, err = pcall(c.wait, c)
        held = c:locked()
        c:release()
        error(err, 0)
      end)
      settle()
      t:cancel()
      settle()
      assert.is_true(held)
      assert.is_true(t:cancelled())
    end)
  end)
end)

describe("asyncio.Semaphore", function()
  after_each(support.no_loops_left)

  it("counts, is FIFO, and a cancelled waiter never consumes a release", function()
    run(function()
      raises("ValueError", asyncio.Semaphore, -1)
      local s = asyncio.Semaphore(2)
      s:acquire(); s:acquire()
      assert.is_true(s:locked())
      local got = {}
      local a = asyncio.create_task(function() s:acquire(); got[#got + 1] = "a" end)
      local b = asyncio.create_task(function() s:acquire(); got[#got + 1] = "b" end)
      settle()
      a:cancel()
      settle()
      s:release()
      settle()
      assert.are.same({"b"}, got)
      s:release()
      assert.is_false(s:locked())
    end)
  end)

  it("BoundedSemaphore refuses a release beyond its start value", function()
    run(function()
      local s = asyncio.BoundedSemaphore(1)
      s:acquire()
      s:release()
      raises("ValueError", s.release, s)
    end)
  end)

  it("limits concurrency to its value", function()
    local inside, most = 0, 0
    run(function()
      local s = asyncio.Semaphore(3)
      local ts = {}
      for i = 1, 10 do
        ts[i] = asyncio.create_task(function()
          s:with(function()
            inside = inside + 1
            most = math.max(most, inside)
            asyncio.sleep(0)
            inside = inside - 1
          end)
        end)
      end
      asyncio.gather(table.unpack(ts))
    end)
    assert.are.equal(3, most)
  end)
end)

describe("asyncio.Barrier", function()
  after_each(support.no_loops_left)

  it("gives distinct indices and can be reused", function()
    run(function()
      raises("ValueError", asyncio.Barrier, 0)
      local b = asyncio.Barrier(3)
      for _ = 1, 2 do
        local r = asyncio.gather(function() return b:wait() end, function() return b:wait() end,
          function() return b:wait() end)
        table.sort(r)
        assert.are.same({0, 1, 2}, {r[1], r[2], r[3]})
      end
      assert.are.equal(0, b.n_waiting)
    end)
  end)

  it("abort breaks the waiters; reset makes it usable again", function()
    run(function()
      local b = asyncio.Barrier(2)
      local t = asyncio.create_task(function() return b:wait() end)
      settle()
      assert.are.equal(1, b.n_waiting)
      b:abort()
      raises("BrokenBarrier", asyncio.await, t)
      raises("BrokenBarrier", b.wait, b)
      b:reset()
      assert.is_false(b.broken)
      local r = asyncio.gather(function() return b:wait() end, function() return b:wait() end)
      assert.are.equal(1, r[1] + r[2])
    end)
  end)
end)

describe("asyncio.Queue", function()
  after_each(support.no_loops_left)

  it("FIFO, LIFO and priority orders", function()
    run(function()
      local q, l, p = asyncio.Queue(), asyncio.LifoQueue(), asyncio.PriorityQueue()
      for _, v in ipairs({3, 1, 2}) do q:put(v); l:put(v); p:put(v) end
      local function drain(x)
        local out = {}
        while not x:empty() do out[#out + 1] = x:get() end
        return out
      end
      assert.are.same({3, 1, 2}, drain(q))
      assert.are.same({2, 1, 3}, drain(l))
      assert.are.same({1, 2, 3}, drain(p))
      p:put({2, "b"}); p:put({1, "z"}); p:put({2, "a"})
      assert.are.same({{1, "z"}, {2, "a"}, {2, "b"}}, drain(p))
    end)
  end)

  it("maxsize blocks put until a get; nowait variants raise Full and Empty", function()
    run(function()
      local q = asyncio.Queue(1)
      q:put(1)
      assert.is_true(q:full())
      raises("Full", q.put_nowait, q, 2)
      local put_done = false
      asyncio.create_task(function() q:put(2); put_done = true end)
      settle()
      assert.is_false(put_done)
      assert.are.equal(1, q:get())
      settle()
      assert.is_true(put_done)
      assert.are.equal(2, q:get_nowait())
      raises("Empty", q.get_nowait, q)
    end)
  end)

  it("a cancelled get never loses an item and a cancelled put never inserts one", function()
    run(function()
      local q = asyncio.Queue(1)
      local g = asyncio.create_task(function() return q:get() end)
      settle()
      g:cancel()
      settle()
      q:put("kept")
      assert.are.equal("kept", q:get())
      q:put("full")
      local p = asyncio.create_task(function() q:put("never") end)
      settle()
      p:cancel()
      settle()
      assert.are.equal(1, q:qsize())
      assert.are.equal("full", q:get())
      assert.is_true(q:empty())
    end)
  end)

  it("task_done and join; task_done too often raises ValueError", function()
    run(function()
      local q = asyncio.Queue()
      local handled = 0
      for i = 1, 3 do q:put(i) end
      asyncio.create_task(function()
        while true do
          q:get()
          asyncio.sleep(0)
          handled = handled + 1
          q:task_done()
        end
      end)
      q:join()
      assert.are.equal(3, handled)
      raises("ValueError", q.task_done, q)
    end)
  end)

  it("shutdown: put raises ShutDown, get drains then raises; immediate empties it", function()
    run(function()
      local q = asyncio.Queue()
      q:put(1)
      local waiter = asyncio.Queue()
      local t = asyncio.create_task(function() return waiter:get() end)
      settle()
      q:shutdown()
      waiter:shutdown()
      raises("ShutDown", q.put, q, 2)
      assert.are.equal(1, q:get())
      raises("ShutDown", q.get, q)
      raises("ShutDown", asyncio.await, t)
      local q2 = asyncio.Queue()
      q2:put(1); q2:put(2)
      q2:shutdown(true)
      assert.is_true(q2:empty())
      q2:join() -- nothing unfinished is left
    end)
  end)

  it("a producer/consumer pipeline delivers every item once", function()
    local seen = {}
    run(function()
      local q = asyncio.Queue(4)
      local consumers = {}
      for c = 1, 3 do
        consumers[c] = asyncio.create_task(function()
          while true do
            local v = q:get()
            seen[#seen + 1] = v
            q:task_done()
          end
        end)
      end
      for i = 1, 200 do q:put(i) end
      q:join()
      for _, c in ipairs(consumers) do c:cancel() end
    end)
    table.sort(seen)
    assert.are.equal(200, #seen)
    for i = 1, 200 do assert.are.equal(i, seen[i]) end
  end)
end)

describe("asyncio primitive names", function()
  after_each(support.no_loops_left)

  it("every primitive and queue takes name= in an options table, and keeps its positional form", function()
    run(function()
      local l = asyncio.Lock{name = "db"}
      assert.equal("db", l:get_name())
      assert.is_nil(asyncio.Lock():get_name())
      assert.equal("ev", asyncio.Event{name = "ev"}:get_name())
      local c = asyncio.Condition{lock = l, name = "cv"}
      assert.equal("cv", c:get_name())
      assert.equal(l, c._lock)
      assert.equal("cv2", asyncio.Condition{name = "cv2"}:get_name())
      assert.is_nil(asyncio.Condition(asyncio.Lock()):get_name())
      local s = asyncio.Semaphore{value = 2, name = "slots"}
      assert.equal("slots", s:get_name())
      assert.is_true(s:acquire() and s:acquire())
      assert.is_true(s:locked())
      local bs = asyncio.BoundedSemaphore{value = 1, name = "bs"}
      assert.equal("bs", bs:get_name())
      raises("ValueError", bs.release, bs)
      assert.equal(1, asyncio.Semaphore{}._value)
      assert.equal(3, asyncio.Semaphore(3)._value)
      local b = asyncio.Barrier{parties = 1, name = "start"}
      assert.equal("start", b:get_name())
      assert.equal(0, b:wait())
      local q = asyncio.Queue{maxsize = 2, name = "jobs"}
      assert.equal("jobs", q:get_name())
      assert.equal(2, q.maxsize)
      assert.equal(3, asyncio.Queue(3).maxsize)
      local lq = asyncio.LifoQueue{name = "lq"}
      local pq = asyncio.PriorityQueue{maxsize = 1, name = "pq"}
      assert.same({"lq", "pq", 1}, {lq:get_name(), pq:get_name(), pq.maxsize})
      lq:put(1) lq:put(2)
      assert.equal(2, lq:get())
      pq:put(5)
      assert.is_true(pq:full())
    end)
  end)

  it("set_name renames, nil clears; a name that is not a string is a clear error", function()
    local l = asyncio.Lock()
    l:set_name("cache")
    assert.equal("cache", l:get_name())
    l:set_name(nil)
    assert.is_nil(l:get_name())
    l:set_name(7)
    assert.equal("7", l:get_name())
    assert.has_error(function() l:set_name({}) end,
      "bad argument #1 to 'set_name' (string expected, got table)")
    assert.has_error(function() asyncio.Lock{name = true} end,
      "bad option 'name' to 'Lock' (string expected, got boolean)")
    assert.has_error(function() asyncio.Queue{name = {}} end,
      "bad option 'name' to 'Queue' (string expected, got table)")
    for _, k in ipairs{"Event", "Condition", "Semaphore", "BoundedSemaphore", "Barrier",
                       "Queue", "LifoQueue", "PriorityQueue"} do
      local o = k == "Barrier" and asyncio.Barrier(2) or asyncio[k]()
      o:set_name(k:lower())
      assert.equal(k:lower(), o:get_name())
    end
  end)

  it("the live dump names what each task waits on", function()
    local text
    run(function()
      local l = asyncio.Lock{name = "db"}
      local q = asyncio.Queue{name = "jobs"}
      l:acquire()
      local a = asyncio.create_task(function() l:acquire() end)
      local b = asyncio.create_task(function() q:get() end)
      local c = asyncio.create_task(function() asyncio.Event():wait() end)
      a:set_name("A") b:set_name("B") c:set_name("C")
      asyncio.sleep(0)
      text = asyncio._dump_tasks()
      a:cancel() b:cancel() c:cancel()
      l:release()
    end)
    assert.matches("Task 'A' %(id %d+%) waiting on Lock 'db' in acquire for [%d.]+ s", text)
    assert.matches("Task 'B' %(id %d+%) waiting on Queue 'jobs' in get for", text)
    assert.matches("Task 'C' %(id %d+%) waiting on Event 'Event#%d+' in wait for", text)
  end)
end)
