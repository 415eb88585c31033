-- futures.ProcessPoolExecutor and multiprocessing.Pool (braid.process_pool)
-- against CPython's test_concurrent_futures/test_process_pool and
-- _TestPool: results, errors, crashes of every kind, no child left behind.
local braid = require "braid"
local futures = require "braid.futures"
local mp = require "braid.multiprocessing"
local Error = braid.Error

local kind_of = require("spec.support.multiprocessing").kind_of

local function no_child_left()
  collectgarbage()
  local t0 = braid.monotonic()
  while mp._count() > 0 and braid.monotonic() - t0 < 10 do
    mp.active_children()
    braid.sleep(0.01)
  end
  assert.are.equal(0, mp._count(), "a child was not reaped")
  assert.is_false(mp._has_children(), "a child process remains")
end

local function square(x) return x * x end

-- TSan kills a child forked from a threaded process that starts a thread
-- (each worker watches its parent from one): no fork pools under TSan
local METHODS = os.getenv("TSAN_OPTIONS") and {"spawn"} or {"spawn", "fork"}

for _, method in ipairs(METHODS) do
  describe("ProcessPoolExecutor (" .. method .. ")", function()
    after_each(no_child_left)
    local function new(opts)
      opts = opts or {}
      opts.max_workers = opts.max_workers or 2
      opts.start_method = method
      return futures.ProcessPoolExecutor(opts)
    end

    it("submit returns every result; errors re-raise the same value", function()
      local ex <close> = new()
      local f = ex:submit(function(a, b) return a + b, nil, "x" end, 1, 2)
      assert.are.same({3, nil, "x", n = 3}, table.pack(f:result(10)))
      local e = ex:submit(function() error({code = 7}) end)
      local ok, err = pcall(e.result, e, 10)
      assert.is_false(ok)
      assert.are.equal(7, err.code)
    end)

    it("map keeps input order for any chunksize", function()
      local ex <close> = new()
      local t = {}
      for i = 1, 100 do t[i] = i end
      for _, cs in ipairs({1, 7, 100}) do
        local out = {}
        for v in ex:map(square, t, {chunksize = cs}) do out[#out + 1] = v end
        assert.are.equal(100, #out)
        for i = 1, 100 do assert.are.equal(i * i, out[i]) end
      end
    end)

    it("initializer runs in each worker; max_tasks_per_child replaces workers", function()
      local ex <close> = new({max_workers = 1, max_tasks_per_child = 2,
        initializer = function(v) _G.INIT = v end, initargs = {"ready"}})
      local pids = {}
      for i = 1, 6 do
        local f = ex:submit(function()
          return _G.INIT, require("braid.multiprocessing").current_process().pid
        end)
        local init, pid = f:result(10)
        assert.are.equal("ready", init)
        pids[pid] = true
      end
      local n = 0
      for _ in pairs(pids) do n = n + 1 end
      assert.are.equal(3, n)
    end)

    it("an argument that cannot cross fails that future with a TypeError", function()
      local ex <close> = new()
      local f = ex:submit(print, 1, {conn = coroutine.create(print)})
      local ok, err = pcall(f.result, f, 10)
      assert.is_false(ok)
      assert.is_true(Error.is(err, "TypeError"), tostring(err))
      assert.matches("at args%[2%]%.conn", err.message) -- in the caller's terms
      assert.are.equal(3, ex:submit(function() return 3 end):result(10))
    end)

    it("a result that cannot cross fails that future with a TypeError naming it", function()
      local ex <close> = new()
      local f = ex:submit(function() return 1, {co = coroutine.create(print)} end)
      local ok, err = pcall(f.result, f, 10)
      assert.is_false(ok)
      assert.is_true(Error.is(err, "TypeError"), tostring(err))
      assert.matches("at result%[2%]%.co", err.message)
      assert.are.equal(3, ex:submit(function() return 3 end):result(10))
    end)

    it("backlog jobs (encoded once) run in order; shared objects and bad arguments too", function()
      local ex <close> = new()
      local mp = require "braid.multiprocessing"
      local q = mp.Queue()
      local fs = {}
      for i = 1, 40 do -- far more than max_workers + 1: most wait in the backlog
        if i == 20 then
          fs[i] = ex:submit(print, {conn = coroutine.create(print)})
        elseif i == 30 then
          fs[i] = ex:submit(function(qq, v) qq:put(v) return v end, q, 30)
        else
          fs[i] = ex:submit(function(x, t) return x + #t end, i, {"a", "b"})
        end
      end
      for i = 1, 40 do
        if i == 20 then
          local ok, err = pcall(fs[i].result, fs[i], 30)
          assert.is_false(ok)
          assert.is_true(Error.is(err, "TypeError"), tostring(err))
          assert.matches("at args%[1%]%.conn", err.message)
        elseif i == 30 then
          assert.are.equal(30, fs[i]:result(30))
        else
          assert.are.equal(i + 2, fs[i]:result(30))
        end
      end
      assert.are.equal(30, q:get(true, 10))
    end)

    for _, crash in ipairs({
      {"killed", function() os.execute("kill -9 " .. require("braid.multiprocessing").current_process().pid) braid.sleep(10) end, "signal 9 %(SIGKILL%)"},
      {"os.exit", function() os.exit(3) end, "exit code 3"},
      {"segfault", function() require("braid.multiprocessing")._signal_self(11) end, "signal 11 %(SIGSEGV%)"},
    }) do
      it("a worker that dies (" .. crash[1] .. ") breaks the pool and says how", function()
        local ex = new()
        local f = ex:submit(crash[2])
        local pending = {}
        for _ = 1, 4 do
          -- the break may already be known: then submit itself raises it
          local ok, p = pcall(ex.submit, ex, function() require("braid").sleep(10) end)
          if ok then
            pending[#pending + 1] = p
          else
            assert.is_true(Error.is(p, "BrokenProcessPool"), tostring(p))
          end
        end
        local ok, err = pcall(f.result, f, 30)
        assert.is_false(ok)
        assert.is_true(Error.is(err, "BrokenProcessPool"), tostring(err))
        assert.matches("worker %d+", err.message)
        assert.matches(crash[3], err.message)
        assert.matches("job %d+", err.message)
        for _, p in ipairs(pending) do
          assert.are.equal("BrokenProcessPool", kind_of(p.result, p, 30))
        end
        assert.are.equal("BrokenProcessPool", kind_of(ex.submit, ex, print))
        ex:shutdown()
      end)
    end

    it("kill_workers / terminate_workers stop the pool; pending futures fail", function()
      for _, how in ipairs({"kill_workers", "terminate_workers"}) do
        local ex = new()
        local f = ex:submit(function() require("braid").sleep(30) end)
        braid.sleep(0.1)
        ex[how](ex)
        assert.are.equal("BrokenProcessPool", kind_of(f.result, f, 10))
        ex:shutdown()
      end
    end)

    it("a queued future stays pending: cancel() returns true and its job never runs", function()
      -- CPython's executor: only max_workers + 1 jobs leave the pending state
      local ex = new({max_workers = 1})
      local gate, ran = mp.Event(), mp.Value("q", 0)
      finally(function() gate:set(); ex:shutdown(true) end)
      local blocker = ex:submit(function(gate) return gate:wait(30) end, gate)
      local queued = {}
      for i = 1, 6 do
        queued[i] = ex:submit(function(ran, i) ran:_add(i) return i end, ran, i)
      end
      local npending = 0
      for i = 1, 6 do
        if not queued[i]:running() and not queued[i]:done() then npending = npending + 1 end
      end
      assert.is_true(npending >= 4, "pending: " .. npending)
      local last = queued[6]
      assert.is_false(last:running())
      assert.is_true(last:cancel())
      assert.is_true(last:cancelled())
      assert.is_false(blocker:cancel()) -- running
      gate:set()
      assert.is_true(blocker:result(30))
      for i = 1, 5 do assert.are.equal(i, queued[i]:result(30)) end
      ex:shutdown(true)
      assert.are.equal(15, ran.value) -- 1 + ... + 5: job 6 never ran
      assert.are.equal("Cancelled", kind_of(last.result, last, 0))
    end)

    it("shutdown(true, true) cancels the pending futures (CPython: test_cancel_futures)", function()
      local ex = new({max_workers = 2})
      local fs = {}
      for i = 1, 50 do fs[i] = ex:submit(function() require("braid").sleep(0.02) end) end
      ex:shutdown(true, true)
      local cancelled = 0
      for _, f in ipairs(fs) do
        if f:cancelled() then cancelled = cancelled + 1 else assert.is_true(f:done()) end
      end
      assert.is_true(cancelled > 20, "cancelled: " .. cancelled)
    end)

    it("shutdown(true, true) fails the jobs no worker took with Cancelled", function()
      local ex = new({max_workers = 1})
      local started = mp.Event()
      local first = ex:submit(function(ev)
        ev:set()
        require("braid").sleep(0.3)
        return 1
      end, started)
      local rest = {}
      for i = 1, 5 do rest[i] = ex:submit(square, i) end
      assert.is_true(started:wait(30))
      ex:shutdown(true, true)
      assert.are.equal(1, first:result(10))
      local cancelled = 0
      for _, f in ipairs(rest) do
        local ok, err = pcall(f.result, f, 10)
        if not ok then
          assert.is_true(Error.is(err, "Cancelled"), tostring(err))
          cancelled = cancelled + 1
        end
      end
      assert.is_true(cancelled >= 4)
    end)

    it("shutdown waits for queued work; submit after shutdown → RuntimeError", function()
      local ex = new()
      local fs = {}
      for i = 1, 20 do fs[i] = ex:submit(square, i) end
      ex:shutdown(true)
      for i = 1, 20 do assert.are.equal(i * i, fs[i]:result(0)) end
      assert.are.equal("RuntimeError", kind_of(ex.submit, ex, square, 1))
    end)
  end)
end

describe("Pool", function()
  after_each(no_child_left)

  it("apply, map, starmap, imap, imap_unordered, async callbacks", function()
    local pool <close> = mp.Pool(2)
    assert.are.equal(7, pool:apply(function(a, b) return a + b end, {3, 4}))
    assert.are.same({1, 4, 9, n = 3}, pool:map(square, {1, 2, 3}))
    assert.are.same({3, 7, n = 2}, pool:starmap(function(a, b) return a + b end, {{1, 2}, {3, 4}}))
    local out = {}
    for v in pool:imap(square, {1, 2, 3}) do out[#out + 1] = v end
    assert.are.same({1, 4, 9}, out)
    local sum = 0
    for v in pool:imap_unordered(square, {1, 2, 3}) do sum = sum + v end
    assert.are.equal(14, sum)
    local got
    local r = pool:map_async(square, {5}, nil, {callback = function(v) got = v end})
    r:wait(10)
    assert.is_true(r:successful())
    braid.poll()
    assert.are.same({25, n = 1}, got)
  end)

  it("a worker killed mid-task fails that job only and is replaced", function()
    local pool <close> = mp.Pool(2)
    local r = pool:apply_async(function()
      os.execute("kill -9 " .. require("braid.multiprocessing").current_process().pid)
      require("braid").sleep(10)
    end, {})
    local ok, err = pcall(r.get, r, 30)
    assert.is_false(ok)
    assert.is_true(Error.is(err, "BrokenProcessPool"), tostring(err))
    assert.matches("signal 9 %(SIGKILL%)", err.message)
    assert.are.same({1, 4, 9, 16, n = 4}, pool:map(square, {1, 2, 3, 4}))
  end)

  it("bad sizes → ValueError; ThreadPool re-exported", function()
    assert.are.equal("ValueError", kind_of(mp.Pool, 0))
    assert.are.equal("ValueError", kind_of(mp.Pool, {processes = 1, maxtasksperchild = 0}))
    assert.are.equal(require("braid.pool").ThreadPool, mp.pool.ThreadPool)
  end)
end)
