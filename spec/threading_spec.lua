-- braid.threading (API.md §2): the primitives (Lock, RLock, Condition,
-- Semaphore, Event, Barrier) with Python 3.13's semantics, modelled on
-- CPython's lock_tests.py; threads are in threading_thread_spec.lua.
local braid = require "braid"
local threading = require "braid.threading"
local has_shared, shared = pcall(require, "braid.shared")
local H = require "spec.support.threading"

local Thread = threading.Thread
local kind_of, elapsed, spawn, results, eventually = H.kind_of, H.elapsed, H.spawn, H.results, H.eventually

describe("threading", function()
  describe("Lock", function()
    it("acquire, try-acquire and release", function()
      local l = threading.Lock()
      assert.is_false(l:locked())
      assert.is_true(l:acquire())
      assert.is_true(l:locked())
      assert.is_false(l:acquire(false))
      assert.is_false(l:acquire(true, 0))
      l:release()
      assert.is_false(l:locked())
      assert.is_true(l:acquire(false))
      l:release()
    end)

    it("release unlocked → RuntimeError; bad timeouts → ValueError", function()
      local l = threading.Lock()
      assert.equal("RuntimeError", kind_of(l.release, l))
      assert.equal("ValueError", kind_of(l.acquire, l, false, 1))
      assert.equal("ValueError", kind_of(l.acquire, l, true, -2))
      assert.equal("ValueError", kind_of(l.acquire, l, true, threading.TIMEOUT_MAX + 1e6))
      assert.is_true(l:acquire(true, -1))
      l:release()
      assert.is_true(threading.TIMEOUT_MAX > 1e9)
    end)

    it("is held across threads: try-acquire fails elsewhere, another thread may release", function()
      local l = threading.Lock()
      l:acquire()
      local t = Thread{target = function(lk) return lk:acquire(false) end, args = {l}}
      t:start()
      assert.is_false(t:result())
      local r = Thread{target = function(lk) lk:release() return lk:locked() end, args = {l}}
      r:start()
      assert.is_false(r:result())
      assert.is_false(l:locked())
    end)

    it("contended acquire times out after about the timeout and stays usable", function()
      local l = threading.Lock()
      l:acquire()
      local t = Thread{target = function(lk)
        local t0 = braid.monotonic()
        local ok = lk:acquire(true, 0.2)
        return ok, braid.monotonic() - t0
      end, args = {l}}
      t:start()
      local ok, dt = t:result()
      assert.is_false(ok)
      assert.is_true(dt >= 0.12 and dt < 2, "waited " .. dt)
      l:release()
      assert.is_true(l:acquire(true, 0.2))
      l:release()
    end)

    it("all blocked acquirers get through after release", function()
      local l = threading.Lock()
      l:acquire()
      local ts = spawn(6, function(_, lk) lk:acquire() lk:release() return true end, l)
      l:release()
      for _, r in ipairs(results(ts)) do assert.is_true(r) end
    end)

    it("with() and guard() release on return and on error; errors pass unchanged", function()
      local l = threading.Lock()
      assert.same({true, 1, 2}, {l:with(function(v, a, b) assert.is_true(l:locked()) return v, a, b end, 1, 2)})
      assert.is_false(l:locked())
      local e = {}
      local ok, err = pcall(l.with, l, function() error(e) end)
      assert.is_false(ok)
      assert.equal(e, err)
      assert.is_false(l:locked())
      do
        local _ <close> = l:guard()
        assert.is_true(l:locked())
      end
      assert.is_false(l:locked())
      pcall(function()
        local _ <close> = l:guard()
        error("x")
      end)
      assert.is_false(l:locked())
    end)

    if has_shared then
      it("gives mutual exclusion to 8 threads x 500 read-modify-writes", function()
        local l = threading.Lock()
        local t = shared.table{n = 0}
        local ts = spawn(8, function(_, lk, st)
          for _ = 1, 500 do
            local _g <close> = lk:guard()
            local v = st.n
            st.n = v + 1
          end
        end, l, t)
        results(ts)
        assert.equal(4000, t.n)
      end)
    end
  end)

  describe("RLock", function()
    it("is reentrant with a recursion count; locked until the count is 0", function()
      local l = threading.RLock()
      assert.equal("RuntimeError", kind_of(l.release, l))
      assert.equal(0, l:_recursion_count())
      l:acquire(); l:acquire(); l:acquire()
      assert.equal(3, l:_recursion_count())
      assert.is_true(l:_is_owned())
      local t = Thread{target = function(lk)
        local ok, e = pcall(lk.release, lk)
        return lk:locked(), lk:_is_owned(), lk:_recursion_count(), lk:acquire(false), e.kind
      end, args = {l}}
      t:start()
      assert.same({true, false, 0, false, "RuntimeError"}, {t:result()})
      l:release()
      assert.equal(2, l:_recursion_count())
      l:release(); l:release()
      assert.is_false(l:locked())
      assert.equal("RuntimeError", kind_of(l.release, l))
    end)

    it("with() and guard() work and nest", function()
      local l = threading.RLock()
      l:with(function()
        local _ <close> = l:guard()
        assert.equal(2, l:_recursion_count())
      end)
      assert.is_false(l:locked())
    end)
  end)

  describe("Condition", function()
    it("defaults to an RLock; Condition(lock) shares the lock", function()
      local c = threading.Condition()
      c:acquire(); c:acquire()
      c:release(); c:release()
      local l = threading.Lock()
      local c2 = threading.Condition(l)
      c2:acquire()
      assert.is_true(l:locked())
      c2:release()
      assert.is_false(l:locked())
      assert.is_truthy(kind_of(threading.Condition, 42):match("bad argument"))
    end)

    it("wait/notify without the lock → RuntimeError", function()
      local c = threading.Condition()
      assert.equal("RuntimeError", kind_of(c.wait, c))
      assert.equal("RuntimeError", kind_of(c.notify, c))
      assert.equal("RuntimeError", kind_of(c.notify_all, c))
    end)

    it("notify(3) wakes exactly 3 of 5 waiters; notify_all wakes the rest", function()
      local c = threading.Condition(threading.Lock())
      local ready = threading.Semaphore(0)
      local woke = threading.Semaphore(0)
      local ts = spawn(5, function(_, cv, rd, wk)
        cv:acquire()
        rd:release()
        local r = cv:wait()
        cv:release()
        wk:release()
        return r
      end, c, ready, woke)
      for _ = 1, 5 do ready:acquire() end
      -- every waiter is waiting once it can be seen having released the lock
      c:acquire()
      c:notify(3)
      c:release()
      for _ = 1, 3 do assert.is_true(woke:acquire(true, 10)) end
      assert.is_false(woke:acquire(true, 0.05))
      c:with(function() c:notify_all() end)
      for _ = 1, 2 do assert.is_true(woke:acquire(true, 10)) end
      for _, r in ipairs(results(ts)) do assert.is_true(r) end
    end)

    it("wait(timeout) returns false after the timeout with the lock re-held", function()
      local c = threading.Condition()
      c:acquire()
      local dt, r = elapsed(function() return c:wait(0.1) end)
      assert.is_false(r)
      assert.is_true(dt >= 0.06 and dt < 2)
      assert.is_true(c:_is_owned())
      c:notify() -- no waiters: no-op
      c:release()
    end)

    it("wait_for returns the predicate's value, or its last value on timeout", function()
      local c = threading.Condition()
      local n = 0
      c:acquire()
      assert.equal("yes", c:wait_for(function() return "yes" end))
      local dt, r = elapsed(function()
        return c:wait_for(function() n = n + 1 return false end, 0.1)
      end)
      assert.is_false(r)
      assert.is_true(n >= 2)
      assert.is_true(dt >= 0.06 and dt < 2)
      c:release()
      -- with a producer thread
      local q = threading.Condition()
      local flag = threading.Event()
      local t = Thread{target = function(cv, f)
        cv:acquire()
        local r2 = cv:wait_for(function() return f:is_set() and 42 end, 10)
        cv:release()
        return r2
      end, args = {q, flag}}
      t:start()
      q:with(function() flag:set() q:notify_all() end)
      -- the waiter may not be waiting yet: wait_for checks first anyway
      assert.equal(42, t:result())
    end)

    it("producer/consumer over many rounds loses nothing", function()
      local c = threading.Condition()
      local st = threading.Semaphore(0) -- items
      local done = threading.Event()
      local consumers = spawn(3, function(_, cv, items, fin)
        local got = 0
        while true do
          cv:acquire()
          while not items:acquire(false) do
            if fin:is_set() then cv:release() return got end
            cv:wait(0.05)
          end
          cv:release()
          got = got + 1
        end
      end, c, st, done)
      for _ = 1, 300 do
        c:acquire()
        st:release()
        c:notify()
        c:release()
      end
      eventually(function() return st:_value() == 0 end)
      done:set()
      c:with(function() c:notify_all() end)
      local total = 0
      for _, r in ipairs(results(consumers)) do total = total + r end
      assert.equal(300, total)
    end)
  end)

  describe("Semaphore", function()
    it("constructor: default 1, negative → ValueError", function()
      assert.equal("ValueError", kind_of(threading.Semaphore, -1))
      assert.equal("ValueError", kind_of(threading.BoundedSemaphore, -1))
      local s = threading.Semaphore()
      assert.is_true(s:acquire(false))
      assert.is_false(s:acquire(false))
    end)

    it("try-acquire, timeouts, release(n)", function()
      local s = threading.Semaphore(2)
      assert.is_true(s:acquire(false))
      assert.is_true(s:acquire(false))
      assert.is_false(s:acquire(false))
      assert.equal("ValueError", kind_of(s.acquire, s, false, 1))
      local dt, r = elapsed(function() return s:acquire(true, 0.1) end)
      assert.is_false(r)
      assert.is_true(dt >= 0.06 and dt < 2)
      assert.equal("ValueError", kind_of(s.release, s, 0))
      s:release(3)
      assert.is_true(s:acquire(false) and s:acquire(false) and s:acquire(false))
      assert.is_false(s:acquire(false))
      s:release(5) -- unbounded: beyond the start value
      assert.equal(5, s:_value())
    end)

    it("BoundedSemaphore over-release → ValueError", function()
      local s = threading.BoundedSemaphore(2)
      assert.equal("ValueError", kind_of(s.release, s))
      s:acquire()
      assert.equal("ValueError", kind_of(s.release, s, 2))
      s:release()
    end)

    it("Semaphore(7) with one taken: exactly 6 of 10x2 pass, 7 releases admit 7 more", function()
      local s = threading.Semaphore(7)
      s:acquire()
      local passed = threading.Semaphore(0)
      local ts = spawn(10, function(_, sem, p)
        for _ = 1, 2 do sem:acquire() p:release() end
      end, s, passed)
      for _ = 1, 6 do assert.is_true(passed:acquire(true, 10)) end
      assert.is_false(passed:acquire(true, 0.05))
      s:release(7)
      for _ = 1, 7 do assert.is_true(passed:acquire(true, 10)) end
      assert.is_false(passed:acquire(true, 0.05))
      s:release(7)
      results(ts)
      assert.equal(0, s:_value())
    end)

    it("BoundedSemaphore(3) lets at most 3 of 10 threads in", function()
      local s = threading.BoundedSemaphore(3)
      local inside = threading.BoundedSemaphore(3) -- raises if 4 get in
      local ts = spawn(10, function(_, sem, ins)
        for _ = 1, 50 do
          sem:with(function()
            assert(ins:acquire(false), "more than 3 inside")
            ins:release()
          end)
        end
        return true
      end, s, inside)
      for _, r in ipairs(results(ts)) do assert.is_true(r) end
      assert.equal(3, s:_value())
    end)
  end)

  describe("Event", function()
    it("set/clear/is_set and wait's return values", function()
      local e = threading.Event()
      assert.is_false(e:is_set())
      assert.is_false(e:wait(0))
      local dt, r = elapsed(function() return e:wait(0.1) end)
      assert.is_false(r)
      assert.is_true(dt >= 0.06 and dt < 2)
      e:set(); e:set()
      assert.is_true(e:is_set())
      assert.is_true(e:wait())
      assert.is_true(e:wait(0))
      e:clear(); e:clear()
      assert.is_false(e:is_set())
    end)

    it("wakes every waiter with true, again after clear", function()
      local e = threading.Event()
      for _ = 1, 3 do
        local ts = spawn(8, function(_, ev) return ev:wait(10) end, e)
        e:set()
        for _, r in ipairs(results(ts)) do assert.is_true(r) end
        e:clear()
      end
    end)

    it("set() then clear() still wakes the current waiters with true", function()
      local e = threading.Event()
      local ready = threading.Barrier(6)
      local ts = spawn(5, function(_, ev, rd) rd:wait() return ev:wait(10) end, e, ready)
      ready:wait()
      braid.sleep(0.05) -- not a synchronization: late waiters just wait for the second set
      e:set(); e:clear()
      braid.sleep(0.05)
      e:set()
      for _, r in ipairs(results(ts)) do assert.is_true(r) end
    end)
  end)

  describe("Barrier", function()
    it("constructor checks and attributes", function()
      assert.equal("ValueError", kind_of(threading.Barrier, 0))
      assert.equal("ValueError", kind_of(threading.Barrier, -1))
      local b = threading.Barrier(3)
      assert.equal(3, b.parties)
      assert.equal(0, b.n_waiting)
      assert.is_false(b.broken)
    end)

    it("5 threads pass in lockstep for 10 cycles with distinct indices and one action per cycle", function()
      local count = threading.Semaphore(0)
      local b = threading.Barrier(5, function() count:release() end)
      local ts = spawn(5, function(_, bar)
        local idx = {}
        for c = 1, 10 do idx[c] = bar:wait() end
        return idx
      end, b)
      local rs = results(ts)
      for c = 1, 10 do
        local seen = {}
        for i = 1, 5 do seen[rs[i][c]] = true end
        for k = 0, 4 do assert.is_true(seen[k], "index " .. k) end
      end
      assert.equal(10, count:_value())
      assert.equal(0, b.n_waiting)
      assert.is_false(b.broken)
    end)

    it("Barrier(1) returns at once", function()
      assert.equal(0, threading.Barrier(1):wait())
    end)

    it("abort breaks it for waiters and later calls; reset repairs it", function()
      local b = threading.Barrier(3)
      local ts = spawn(2, function(_, bar)
        local ok, e = pcall(bar.wait, bar)
        return ok, e and e.kind
      end, b)
      eventually(function() return b.n_waiting == 2 end)
      b:abort()
      for _, t in ipairs(ts) do assert.same({false, "BrokenBarrier"}, {t:result()}) end
      assert.is_true(b.broken)
      assert.equal("BrokenBarrier", kind_of(b.wait, b))
      b:reset()
      assert.is_false(b.broken)
      ts = spawn(2, function(_, bar) return bar:wait() end, b)
      local mine = b:wait()
      local got = {[mine] = true}
      for _, t in ipairs(ts) do got[t:result()] = true end
      assert.is_true(got[0] and got[1] and got[2])
    end)

    it("reset while waiting breaks the waiters and leaves the barrier usable", function()
      local b = threading.Barrier(3)
      local ts = spawn(2, function(_, bar)
        local ok, e = pcall(bar.wait, bar)
        return ok, e and e.kind
      end, b)
      eventually(function() return b.n_waiting == 2 end)
      b:reset()
      for _, t in ipairs(ts) do assert.same({false, "BrokenBarrier"}, {t:result()}) end
      assert.is_false(b.broken)
      ts = spawn(2, function(_, bar) return bar:wait(10) end, b)
      b:wait(10)
      results(ts)
    end)

    it("a timed-out wait breaks it for all; the constructor timeout is the default", function()
      local b = threading.Barrier(3)
      local t = Thread{target = function(bar)
        local ok, e = pcall(bar.wait, bar)
        return e.kind
      end, args = {b}}
      t:start()
      local dt, k = elapsed(function() return kind_of(b.wait, b, 0.1) end)
      assert.equal("BrokenBarrier", k)
      assert.is_true(dt >= 0.06 and dt < 2)
      assert.equal("BrokenBarrier", t:result())
      local b2 = threading.Barrier(2, nil, 0.1)
      assert.equal("BrokenBarrier", kind_of(b2.wait, b2))
      assert.is_true(b2.broken)
    end)

    it("an action that raises: that thread gets the error, the others BrokenBarrier", function()
      local b = threading.Barrier(3, function() error({tag = "action"}) end)
      local ts = spawn(3, function(_, bar)
        local ok, e = pcall(bar.wait, bar)
        if type(e) == "table" and e.tag then return "action" end
        return e and e.kind
      end, b)
      local r = results(ts)
      table.sort(r)
      assert.same({"BrokenBarrier", "BrokenBarrier", "action"}, r)
      assert.is_true(b.broken)
    end)
  end)

end)
