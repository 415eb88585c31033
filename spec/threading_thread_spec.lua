-- braid.threading (API.md §2): Thread, excepthook, local, Timer and
-- cancellation (+), modelled on CPython's test_threading.py, plus
-- many-thread races; the primitives are in threading_spec.lua.
local braid = require "braid"
local threading = require "braid.threading"
local has_shared, shared = pcall(require, "braid.shared")
local H = require "spec.support.threading"

local Thread = threading.Thread
local kind_of, elapsed, spawn, results = H.kind_of, H.elapsed, H.spawn, H.results

describe("threading", function()
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

    it("such a primitive's C methods are made on first use, each once, without the module", function()
      local t = Thread{target = function(ev, lock)
        local methods = getmetatable(ev).__index
        local none = rawget(methods, "is_set") == nil and rawget(methods, "wait") == nil
        local first = ev:is_set()
        local made = rawget(methods, "is_set")
        local same = ev.is_set == made
        assert(lock:acquire()); lock:release() -- the fast path's own-box check holds
        local ok, err = pcall(lock.release, ev) -- and refuses another type's box
        ev:set_name("e1") -- the naming methods too
        return none, first, type(made), same, rawget(methods, "wait") == nil, ok, ev:get_name(),
          rawget(methods, "get_name") ~= nil, package.loaded["braid.threading"] == nil
      end, args = {threading.Event(), threading.Lock()}}
      t:start()
      assert.same({true, false, "function", true, true, false, "e1", true, true}, {t:result()})
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
