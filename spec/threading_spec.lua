-- braid.threading (API.md §2): primitives and threads with Python 3.13's
-- semantics, modelled on CPython's lock_tests.py and test_threading.py,
-- plus cancellation (+) and many-thread races.
local braid = require "braid"
local threading = require "braid.threading"
local has_shared, shared = pcall(require, "braid.shared")

local Thread = threading.Thread

local function kind_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  if braid.Error.is(err) then return err.kind end
  return tostring(err)
end

local function elapsed(fn)
  local t0 = braid.monotonic()
  local r = fn()
  return braid.monotonic() - t0, r
end

-- starts n threads running fn(i, ...) and returns them
local function spawn(n, fn, ...)
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

local function results(ts)
  local r = {}
  for i, t in ipairs(ts) do r[i] = t:result() end
  return r
end

-- waits until pred() is true (polling with a short sleep; a bound, not a sync)
local function eventually(pred, limit)
  local deadline = braid.monotonic() + (limit or 10)
  while not pred() do
    assert(braid.monotonic() < deadline, "condition not reached in time")
    braid.sleep(0.002)
  end
end

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

  describe("Thread", function()
    -- the targets below capture nothing, so only their arguments cross
    it("a primitive crossing into a thread loads only the C half; the script runs on first need", function()
      local t = Thread{target = function(lock, sem)
        local before = package.loaded["braid.threading"]
        assert(lock:acquire()); lock:release() -- a C method: no load
        local still = package.loaded["braid.threading"]
        local r = lock:with(function(ok, x) return ok and x end, "in") -- Lua half's method
        local g <close> = sem:guard()
        local loaded = package.loaded["braid.threading"]
        return before == nil, still == nil, r, loaded ~= nil and loaded.Thread ~= nil,
          getmetatable(getmetatable(lock).__index) == nil
      end, args = {threading.Lock(), threading.Semaphore(1)}}
      t:start()
      assert.same({true, true, "in", true, true}, {t:result()})
    end)

    it("require after such a load keeps the same metatables; a missing method is nil", function()
      local t = Thread{target = function(ev, cond)
        local mt = getmetatable(ev)
        local th = require "braid.threading"
        local wait_for = getmetatable(cond).__index.wait_for
        return mt == getmetatable(th.Event()), getmetatable(mt.__index) == nil, type(wait_for),
          ev.no_such_method == nil, cond:acquire(), th.Lock():with(function(ok) return ok end)
      end, args = {threading.Event(), threading.Condition()}}
      t:start()
      assert.same({true, true, "function", true, true, true}, {t:result()})
      local u = Thread{target = function(ev)
        local missing = ev.no_such_method -- loads the script, then finds nothing
        return missing == nil, package.loaded["braid.threading"] ~= nil, ev:is_set()
      end, args = {threading.Event()}}
      u:start()
      assert.same({true, true, false}, {u:result()})
    end)

    it("a primitive crossing registers its own type only; require registers the others", function()
      local t = Thread{target = function(ev)
        local reg = debug.getregistry()
        local alone = reg["braid.Event"] ~= nil and reg["braid.Lock"] == nil and reg["braid.Semaphore"] == nil
        local before = ev:is_set()
        require "braid.threading"
        return alone, before, reg["braid.Lock"] ~= nil, reg["braid.Semaphore"] ~= nil, ev:wait(0)
      end, args = {threading.Event()}}
      t:start()
      assert.same({true, false, true, true, false}, {t:result()})
    end)

    it("braid modules come from a searcher after package.preload's: a preload entry wins", function()
      local t = Thread{target = function()
        package.preload["braid.queue"] = function(name, extra) return "mine:" .. name .. ":" .. extra end
        local q = require "braid.queue"
        local ok, err = pcall(require, "braid.no_such_module")
        return q, ok, err:find("not found", 1, true) ~= nil, err:find("braid build", 1, true) == nil,
          type(require "braid.shared"), package.preload["braid.shared"] == nil
      end}
      t:start()
      assert.same({"mine:braid.queue::preload:", false, true, true, "table", true}, {t:result()})
    end)

    it("a starter's package.path and cpath cross to its threads", function()
      local old, oldc = package.path, package.cpath
      package.path, package.cpath = "/nowhere/?.lua;" .. old, "/nowhere/?.so;" .. oldc
      local ok, t = pcall(Thread, {target = function() return package.path, package.cpath end})
      package.path, package.cpath = old, oldc
      assert(ok, t)
      package.path, package.cpath = "/nowhere/?.lua;" .. old, "/nowhere/?.so;" .. oldc
      local started = pcall(t.start, t)
      package.path, package.cpath = old, oldc
      assert.is_true(started)
      assert.same({"/nowhere/?.lua;" .. old, "/nowhere/?.so;" .. oldc}, {t:result()})
      local u = Thread{target = function() return package.path, package.cpath end}
      u:start()
      assert.same({old, oldc}, {u:result()})
    end)

    it("runs the target with args (nils kept) and returns its results", function()
      local t = Thread{target = function(a, b, c) return c, b, a end, args = table.pack(1, nil, 3)}
      assert.is_nil(t.ident)
      assert.is_nil(t.native_id)
      assert.is_false(t:is_alive())
      t:start()
      assert.same({3, nil, 1}, {t:result()})
      t:join()
      assert.is_false(t:is_alive())
      assert.is_number(t.ident)
      assert.is_number(t.native_id)
      local p = Thread(function(x) return x * 2 end, {21})
      p:start()
      assert.equal(42, p:result())
    end)

    it("start twice, join unstarted, join self, daemon after start → RuntimeError", function()
      local t = Thread{target = function() end}
      assert.equal("RuntimeError", kind_of(t.join, t))
      t:start()
      assert.equal("RuntimeError", kind_of(t.start, t))
      assert.equal("RuntimeError", kind_of(function() t.daemon = true end))
      t:join()
      local s = Thread{target = function()
        local th = require "braid.threading"
        local ok, e = pcall(th.current_thread().join, th.current_thread())
        return e.kind
      end}
      s:start()
      assert.equal("RuntimeError", s:result())
      assert.equal("RuntimeError", kind_of(threading.current_thread().join, threading.current_thread()))
    end)

    it("a target that is not callable is an argument error; untransferable args → TypeError with the path", function()
      assert.is_truthy(kind_of(Thread, {target = 42}):match("bad argument"))
      local t = Thread{target = function() end, args = {1, {conn = coroutine.create(print)}}}
      local ok, e = pcall(t.start, t)
      assert.is_false(ok)
      assert.equal("TypeError", e.kind)
      assert.is_truthy(e.message:find("args[2].conn", 1, true), e.message)
    end)

    it("re-raises the target's error value in result(), with the remote traceback", function()
      local t = Thread{target = function() error({code = 7}) end}
      local old = threading.excepthook
      threading.excepthook = function() end
      t:start()
      threading.excepthook = old
      t:join() -- join itself does not raise
      local ok, e = pcall(t.result, t)
      assert.is_false(ok)
      assert.equal(7, e.code)
      local tb = braid.traceback(e)
      assert.is_string(tb)
      assert.is_truthy(tb:find("stack traceback", 1, true))
    end)

    it("names, daemon flag and their defaults", function()
      local t = Thread{target = function() end}
      assert.is_truthy(t.name:match("^Thread%-%d+$"))
      local u = Thread{target = function() end}
      assert.is_true(tonumber(u.name:match("%d+")) > tonumber(t.name:match("%d+")))
      local n = Thread{target = function() return require("braid.threading").current_thread().name end, name = "worker"}
      assert.equal("worker", n.name)
      n.name = "renamed"
      assert.is_false(n.daemon)
      n.daemon = true
      assert.is_true(n.daemon)
      n:start()
      assert.equal("renamed", n:result())
      local d = Thread{target = function()
        local th = require "braid.threading"
        local inner = th.Thread{target = function() end}
        return th.current_thread().daemon, inner.daemon
      end, daemon = true}
      d:start()
      assert.same({true, true}, {d:result()}) -- daemon-ness is inherited
      assert.equal("MainThread", threading.main_thread().name)
      assert.equal(threading.main_thread(), threading.current_thread())
      assert.is_true(threading.main_thread():is_alive())
      assert.matches("^<Thread%(Thread%-%d+, initial%)>$", tostring(u))
    end)

    it("current_thread in a worker is its own object; main_thread works everywhere", function()
      local t = Thread{target = function()
        local th = require "braid.threading"
        local cur = th.current_thread()
        return cur.name, cur.ident == th.get_ident(), cur.native_id == th.get_native_id(),
          th.main_thread().name, cur ~= th.main_thread(), cur == th.current_thread()
      end, name = "w1"}
      t:start()
      assert.same({"w1", true, true, "MainThread", true, true}, {t:result()})
      assert.equal(threading.get_ident(), threading.main_thread().ident)
    end)

    it("enumerate / active_count include running threads and never joined ones", function()
      local go = threading.Event()
      local base = threading.active_count()
      local ts = spawn(4, function(_, ev) ev:wait(10) end, go)
      local list = threading.enumerate()
      assert.equal(base + 4, #list)
      assert.equal(base + 4, threading.active_count())
      local found = 0
      for _, x in ipairs(list) do
        for _, t in ipairs(ts) do if x == t then found = found + 1 end end
      end
      assert.equal(4, found)
      go:set()
      for _, t in ipairs(ts) do t:join() end
      for _, x in ipairs(threading.enumerate()) do
        for _, t in ipairs(ts) do assert.are_not.equal(t, x) end
      end
      assert.equal(base, threading.active_count())
    end)

    it("join(timeout) on a blocked thread returns with is_alive true; many threads may join one", function()
      local go = threading.Event()
      local t = Thread{target = function(ev) ev:wait(10) return "done" end, args = {go}}
      t:start()
      local dt = elapsed(function() t:join(0.05) end)
      assert.is_true(dt >= 0.03 and dt < 2)
      assert.is_true(t:is_alive())
      local joiners = spawn(4, function(_, th) th:join() return th:is_alive() end, t)
      go:set()
      for _, r in ipairs(results(joiners)) do assert.is_false(r) end
      assert.equal("done", t:result())
      assert.equal("Timeout", kind_of(Thread{target = function(e) e:wait() end, args = {threading.Event()}}.result,
        (function() local x = Thread{target = function(e) e:wait(0.3) end, args = {threading.Event()}} x:start() return x end)(), 0.01))
    end)

    it("many threads start and finish (100 x repetition)", function()
      local ts = {}
      for i = 1, 100 do
        ts[i] = Thread{target = function(x) return x + 1 end, args = {i}}
        ts[i]:start()
      end
      for i = 1, 100 do assert.equal(i + 1, ts[i]:result()) end
    end)

    it("subclasses: run override, fields cross, init override", function()
      local Worker = Thread:extend()
      function Worker:init(x)
        Thread.init(self, {name = "sub"})
        self.x = x
      end
      function Worker:run()
        local th = require "braid.threading"
        return self.x * 2, self.name, th.current_thread() == self, th.current_thread().x
      end
      local w = Worker(21)
      w:start()
      assert.same({42, "sub", true, 21}, {w:result()})
      local plain = Thread{target = function(self) return 1 end}
      plain.extra = "field"
      plain:start()
      assert.equal(1, plain:result())
    end)

    it("helpers and constants defined in the script are reachable from the target", function()
      local function helper(x) return x * 3 end
      local K = 5
      local t = Thread{target = function() return helper(K) end}
      t:start()
      assert.equal(15, t:result())
    end)

    it("a thread ending by error does not disturb the others", function()
      local ok = Thread{target = function() return "fine" end}
      local threading_ = threading
      local old = threading_.excepthook
      threading_.excepthook = function() end
      local bad = Thread{target = function() error("bad") end}
      bad:start(); ok:start()
      threading_.excepthook = old
      assert.equal("fine", ok:result())
      assert.is_false(pcall(bad.result, bad))
    end)
  end)

  describe("excepthook", function()
    it("a custom hook crosses to threads started afterwards and gets exc_value/exc_traceback/thread", function()
      local got = threading.Event()
      local q = has_shared and shared.table{} or nil
      local old = threading.excepthook
      threading.excepthook = function(args)
        if q then
          q.value = args.exc_value
          q.tb = type(args.exc_traceback) == "string"
          q.name = args.thread and args.thread.name
        end
        got:set()
      end
      local t = Thread{target = function() error("oops", 0) end, name = "hooked"}
      t:start()
      threading.excepthook = old
      t:join()
      assert.is_true(got:wait(10))
      if q then
        assert.equal("oops", q.value)
        assert.is_true(q.tb)
        assert.equal("hooked", q.name)
      end
    end)

    it("a custom hook crosses as itself, not by the module's name", function()
      local braid = require "braid"
      local old = threading.excepthook
      threading.excepthook = function() return "mine" end
      package.loaded["spec.excepthook.dummy"] = {} -- the codec rescans modules
      local ok, got = pcall(braid.transfer_test, function(h) return h() end, threading.excepthook)
      package.loaded["spec.excepthook.dummy"] = nil
      threading.excepthook = old
      assert.is_true(ok, got)
      assert.equal("mine", got)
    end)

    it("Cancelled is not reported by the default hook; __excepthook is the default", function()
      assert.equal(threading.__excepthook, threading.excepthook)
    end)
  end)

  describe("local", function()
    it("attributes are per thread", function()
      local data = threading["local"]()
      data.x = 1
      assert.equal(1, data.x)
      local t = Thread{target = function(d)
        local before = d.x
        d.x = 2
        return before, d.x
      end, args = {data}}
      t:start()
      assert.same({nil, 2}, {t:result()})
      assert.equal(1, data.x)
      assert.equal(threading["local"], threading.thread_local)
    end)
  end)

  describe("Timer", function()
    it("fires after the interval, or never when cancelled first", function()
      local fired = threading.Event()
      local t = threading.Timer(0.05, function(ev) ev:set() end, {fired})
      local dt = elapsed(function() t:start() return fired:wait(10) end)
      assert.is_true(fired:is_set())
      assert.is_true(dt >= 0.03)
      t:join()
      local never = threading.Event()
      local c = threading.Timer(10, function(ev) ev:set() end, {never})
      c:start()
      c:cancel()
      c:join(5)
      assert.is_false(c:is_alive())
      assert.is_false(never:is_set())
      c:cancel() -- after the end: no-op
    end)
  end)

  describe("cancel (+)", function()
    -- runs body(ready, obj) in a thread, cancels it once ready is set, and
    -- returns the error kind the thread saw plus whether cleanup ran
    local function cancel_case(body, obj)
      local ready, closed = threading.Event(), threading.Event()
      local t = Thread{target = function(rd, cl, o)
        local ok, e = pcall(function()
          local _ <close> = setmetatable({}, {__close = function() cl:set() end})
          body(rd, o)
        end)
        return ok, type(e) == "table" and e.kind or tostring(e)
      end, args = {ready, closed, obj}}
      t:start()
      assert.is_true(ready:wait(10))
      assert.is_true(t:cancel())
      t:join(10)
      assert.is_false(t:is_alive())
      local ok, kind = t:result()
      return ok, kind, closed:is_set()
    end

    local cases = {
      ["a pure Lua loop"] = {function(rd) rd:set() local n = 0 while true do n = n + 1 end end},
      ["Lock:acquire"] = {function(rd, l) rd:set() l:acquire() end, function() local l = threading.Lock() l:acquire() return l end},
      ["Event:wait"] = {function(rd, e) rd:set() e:wait() end, threading.Event},
      ["Condition:wait"] = {function(rd, c) c:acquire() rd:set() c:wait() end, threading.Condition},
      ["Semaphore:acquire"] = {function(rd, s) rd:set() s:acquire() end, function() return threading.Semaphore(0) end},
      ["Barrier:wait"] = {function(rd, b) rd:set() b:wait() end, function() return threading.Barrier(2) end},
      ["braid.sleep"] = {function(rd) rd:set() require("braid").sleep(60) end},
      ["Thread:join"] = {function(rd, t) rd:set() t:join() end, function()
        local t = Thread{target = function(e) e:wait(30) end, args = {threading.Event()}, daemon = true}
        t:start()
        return t
      end},
    }
    for name, case in pairs(cases) do
      it("stops a thread blocked in " .. name .. " and closes its <close> variables", function()
        local obj = case[2] and case[2]() or nil
        local ok, kind, closed = cancel_case(case[1], obj)
        assert.is_false(ok)
        assert.equal("Cancelled", kind)
        assert.is_true(closed)
        if name == "Thread:join" then obj:cancel() obj:join() end
      end)
    end

    it("releases guards on the way out", function()
      local l = threading.Lock()
      local ready = threading.Event()
      local t = Thread{target = function(lk, rd)
        local _ <close> = lk:guard()
        rd:set()
        while true do end
      end, args = {l, ready}}
      t:start()
      ready:wait()
      assert.is_true(l:locked())
      t:cancel()
      t:join()
      assert.is_false(l:locked())
      local ok, e = pcall(t.result, t)
      assert.equal("Cancelled", e.kind)
    end)

    it("raises RuntimeError on a thread not started yet", function()
      local ok, err = pcall(Thread.cancel, Thread{target = print})
      assert.is_false(ok)
      assert.is_true(braid.Error.is(err, "RuntimeError"))
    end)

    it("is a no-op (false) on a finished thread; a condition wait re-holds its lock", function()
      local t = Thread{target = function() end}
      t:start(); t:join()
      assert.is_false(t:cancel())
      local c = threading.Condition()
      local ready = threading.Event()
      local w = Thread{target = function(cv, rd)
        cv:acquire()
        -- the cancel may land just before the wait too: both inside pcall
        local ok = pcall(function() rd:set(); cv:wait() end)
        local owned = cv:_is_owned()
        cv:release()
        return ok, owned
      end, args = {c, ready}}
      w:start()
      ready:wait()
      w:cancel()
      assert.same({false, true}, {w:result()})
    end)
  end)

  describe("primitives cross threads by reference", function()
    it("a Lock taken in one thread is seen held in another", function()
      local l = threading.Lock()
      local t = Thread{target = function(lk) lk:acquire() end, args = {l}}
      t:start(); t:join()
      assert.is_true(l:locked())
      l:release()
    end)
  end)
end)
