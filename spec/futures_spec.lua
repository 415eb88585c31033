-- braid.futures against CPython's test_concurrent_futures (test_future,
-- test_wait, test_as_completed, test_shutdown, executor, test_init).
local braid = require "braid"
local futures = require "braid.futures"
local Error = braid.Error

local function is_err(kind, ok, e)
  assert.is_false(ok)
  assert.is_true(Error.is(e, kind), "expected " .. kind .. ", got " .. tostring(e))
end

-- futures in each state, like test_future's module-level helpers
local function pending() return futures.Future() end
local function running()
  local f = futures.Future(); f:set_running_or_notify_cancel(); return f
end
local function cancelled()
  local f = futures.Future(); f:cancel(); return f
end
local function with_result(...)
  local f = futures.Future(); f:set_result(...); return f
end
local function with_error(e)
  local f = futures.Future(); f:set_exception(e); return f
end

describe("Future", function()
  it("cancel() follows Python's rules", function()
    local f = pending()
    assert.is_true(f:cancel())
    assert.is_true(f:cancelled())
    assert.is_true(f:cancel())
    assert.is_false(running():cancel())
    assert.is_false(with_result(1):cancel())
    assert.is_false(with_error("x"):cancel())
  end)

  it("reports its state", function()
    assert.is_false(pending():done())
    assert.is_true(running():running())
    assert.is_false(running():done())
    assert.is_true(cancelled():done())
    assert.is_true(with_result(1):done())
    assert.is_false(with_result(1):running())
    assert.is_false(with_result(1):cancelled())
  end)

  it("result(0) raises Timeout while pending/running", function()
    is_err("Timeout", pcall(pending().result, pending(), 0))
    local r = running()
    is_err("Timeout", pcall(r.result, r, 0))
    local c = cancelled()
    is_err("Cancelled", pcall(c.result, c, 0))
    local e = with_error("boom")
    local ok, err = pcall(e.result, e, 0)
    assert.is_false(ok)
    assert.equal("boom", err)
    assert.same({ 1, nil, 3 }, { with_result(1, nil, 3):result(0) })
    assert.equal(3, select("#", with_result(1, nil, 3):result(0)))
  end)

  it("exception() returns the error or nil", function()
    local p = pending()
    is_err("Timeout", pcall(p.exception, p, 0))
    local c = cancelled()
    is_err("Cancelled", pcall(c.exception, c, 0))
    assert.equal("boom", with_error("boom"):exception(0))
    assert.is_nil(with_result(1):exception(0))
  end)

  it("result(timeout) times out after about that long", function()
    local t0 = braid.monotonic()
    local p = pending()
    is_err("Timeout", pcall(p.result, p, 0.2))
    local dt = braid.monotonic() - t0
    assert.is_true(dt >= 0.12 and dt < 2, dt)
  end)

  it("a falsy error value is still raised", function()
    local f = with_error(false)
    local ok, e = pcall(f.result, f)
    assert.is_false(ok)
    assert.equal(false, e)
  end)

  it("setting a done future again raises InvalidState and keeps the first outcome", function()
    local f = with_result(1)
    is_err("InvalidState", pcall(f.set_result, f, 2))
    is_err("InvalidState", pcall(f.set_exception, f, "x"))
    assert.equal(1, f:result())
    local c = cancelled()
    is_err("InvalidState", pcall(c.set_result, c, 2))
  end)

  it("a thread blocked in result() wakes with the value or with Cancelled", function()
    local ex <close> = futures.ThreadPoolExecutor(2)
    local f = futures.Future()
    local waiter = ex:submit(function(fut) return fut:result(10) end, f)
    f:set_result(42)
    assert.equal(42, waiter:result(10))
    local g = futures.Future()
    local w2 = ex:submit(function(fut)
      local ok, e = pcall(fut.result, fut, 10)
      return ok, e.kind
    end, g)
    g:cancel()
    assert.same({ false, "Cancelled" }, { w2:result(10) })
  end)
end)

describe("add_done_callback", function()
  it("runs on success, error and cancel, with the future", function()
    local seen = {}
    local f = futures.Future()
    f:add_done_callback(function(fut) seen.r = fut:result(); seen.same = fut == f end)
    f:set_result(5)
    braid.poll()
    assert.equal(5, seen.r)
    assert.is_true(seen.same)
    local g = futures.Future()
    g:add_done_callback(function(fut) seen.e = fut:exception() end)
    g:set_exception("bad")
    braid.poll()
    assert.equal("bad", seen.e)
    local h = futures.Future()
    h:add_done_callback(function(fut) seen.c = fut:cancelled() end)
    h:cancel()
    braid.poll()
    assert.is_true(seen.c)
  end)

  it("on a done future runs at once", function()
    local ran = false
    with_result(1):add_done_callback(function() ran = true end)
    assert.is_true(ran)
  end)

  it("runs in the registering state, appending to the main script's table", function()
    local ex <close> = futures.ThreadPoolExecutor(4)
    local results = {}
    local fs = {}
    for i = 1, 20 do
      fs[i] = ex:submit(function(x) return x * x end, i)
      fs[i]:add_done_callback(function(f) results[#results + 1] = f:result() end)
    end
    futures.wait(fs)
    braid.poll()
    assert.equal(20, #results)
    table.sort(results)
    assert.equal(400, results[20])
  end)

  it("runs callbacks in registration order; a raising one does not stop the rest", function()
    local order = {}
    local f = futures.Future()
    f:add_done_callback(function() order[#order + 1] = 1 end)
    f:add_done_callback(function() error("callback fails") end)
    f:add_done_callback(function() order[#order + 1] = 3 end)
    f:set_result(true)
    braid.poll()
    assert.same({ 1, 3 }, order)
  end)

  it("is delivered while the state waits on another future", function()
    local ex <close> = futures.ThreadPoolExecutor(2)
    local fired = false
    local gate = futures.Future()
    local quick = ex:submit(function() return 1 end)
    quick:add_done_callback(function() fired = true; gate:set_result(true) end)
    -- the callback itself is what finishes gate: result must deliver it
    assert.is_true(gate:result(10))
    assert.is_true(fired)
  end)
end)

describe("ThreadPoolExecutor", function()
  it("submit returns results and errors with the remote traceback", function()
    local ex <close> = futures.ThreadPoolExecutor(2)
    assert.same({ 3, "x" }, { ex:submit(function(a, b) return a + b, "x" end, 1, 2):result() })
    local f = ex:submit(function() error({ code = 7 }) end)
    local ok, e = pcall(f.result, f)
    assert.is_false(ok)
    assert.equal(7, e.code)
    assert.matches("stack traceback", braid.traceback(e))
    -- the worker survives and takes the next task
    assert.equal(2, ex:submit(function() return 2 end):result())
  end)

  it("a submitted future handed on and back is the same box", function()
    local ex <close> = futures.ThreadPoolExecutor(1)
    local queue = require("braid.queue")
    local q = queue.Queue()
    local f = ex:submit(function() return 5 end)
    q:put(f)
    assert.is_true(rawequal(f, q:get()))
    local g = ex:submit(function() return 6 end)
    q:put({ g }) -- inside a table: the codec's path
    assert.is_true(rawequal(g, q:get()[1]))
    -- back from another thread: sent there, returned by it
    local h = ex:submit(function() return 7 end)
    local back = ex:submit(function(x) return x end, h):result()
    assert.is_true(rawequal(h, back))
    local seen = { [f] = 1 } -- as a table key too
    q:put(f)
    assert.equal(1, seen[q:get()])
    assert.same({ 5, 6, 7 }, { f:result(), g:result(), h:result() })
  end)

  it("a submit nested in another's encoding, and a submit after one that raised, both work", function()
    local ex <close> = futures.ThreadPoolExecutor(2)
    local inner
    -- encoding g reads its global X through __index, which submits again
    local env = setmetatable({}, { __index = function(_, k)
      if k == "X" then
        inner = ex:submit(function(a) return a * 2 end, 21)
        return 1
      end
    end })
    local g = load("return X", "=g", "t", env)
    for _ = 1, 3 do
      local f = ex:submit(g, "arg")
      assert.equal(1, f:result(10))
      assert.equal(42, inner:result(10))
    end
    -- an argument that cannot cross raises in the middle of the encoding
    local co = coroutine.create(function() end)
    local function task(x) return x end
    for i = 1, 3 do
      is_err("TypeError", pcall(ex.submit, ex, task, co))
      assert.equal(i, ex:submit(task, i):result(10))
    end
    -- a call bigger than the reused buffer's limit, then small ones again
    local big = string.rep("x", 100000)
    assert.equal(100000, ex:submit(function(s) return #s end, big):result(10))
    assert.equal(7, ex:submit(task, 7):result(10))
  end)

  it("a function submitted again, then reachable by module name, crosses by name", function()
    local ex <close> = futures.ThreadPoolExecutor(1)
    local function f() return "by value" end
    for _ = 1, 3 do assert.equal("by value", ex:submit(f):result(10)) end
    -- now package.loaded names it: the worker looks the name up (and has
    -- no such module), exactly as for a function encoded the first time
    package.loaded["spec_i11_named"] = { f = f }
    local ok = pcall(function() return ex:submit(f):result(10) end)
    package.loaded["spec_i11_named"] = nil
    assert.is_false(ok)
  end)

  it("keeps nils in arguments and results", function()
    local ex <close> = futures.ThreadPoolExecutor(1)
    local r = table.pack(ex:submit(function(...) return select("#", ...), ... end, nil, 2, nil):result())
    assert.equal(4, r.n)
    assert.equal(3, r[1])
    assert.equal(2, r[3])
  end)

  it("rejects bad max_workers", function()
    is_err("ValueError", pcall(futures.ThreadPoolExecutor, 0))
    is_err("ValueError", pcall(futures.ThreadPoolExecutor, -1))
    is_err("ValueError", pcall(futures.ThreadPoolExecutor, { max_workers = 0 }))
  end)

  it("defaults to min(32, cpu_count + 4) workers", function()
    local ex <close> = futures.ThreadPoolExecutor()
    assert.equal(math.min(32, braid.cpu_count() + 4), ex:_max_workers())
  end)

  it("never starts more threads than max_workers and reuses idle ones", function()
    local ex <close> = futures.ThreadPoolExecutor(3)
    for _ = 1, 20 do ex:submit(function() return 1 end):result() end
    assert.is_true(ex:_threads() <= 2)
    local fs = {}
    for i = 1, 50 do fs[i] = ex:submit(function() braid.sleep(0.001) end) end
    futures.wait(fs)
    assert.equal(3, ex:_threads())
  end)

  it("wakes an idle worker for a task queued behind one that blocks on it", function()
    -- the first task waits for the second: the second must get the idle
    -- worker even though one worker is awake (inside the first task)
    local threading = require "braid.threading"
    local ex <close> = futures.ThreadPoolExecutor(2)
    local warm = {}
    for i = 1, 2 do warm[i] = ex:submit(function() braid.sleep(0.01) end) end
    futures.wait(warm)
    assert.equal(2, ex:_threads())
    for _ = 1, 50 do
      local ev = threading.Event()
      local first = ex:submit(function(e) return e:wait(10) end, ev)
      local second = ex:submit(function(e) e:set(); return true end, ev)
      assert.is_true(first:result(10))
      assert.is_true(second:result(10))
    end
  end)

  it("names threads prefix_0..k", function()
    local ex <close> = futures.ThreadPoolExecutor { max_workers = 1, thread_name_prefix = "pfx" }
    local ok, name = pcall(function()
      return ex:submit(function()
        return require("braid.threading").current_thread().name
      end):result()
    end)
    if ok then assert.equal("pfx_0", name) end
  end)

  it("submit after shutdown raises RuntimeError", function()
    local ex = futures.ThreadPoolExecutor(1)
    ex:shutdown()
    is_err("RuntimeError", pcall(ex.submit, ex, function() end))
  end)

  it("shutdown waits for queued work", function()
    local ex = futures.ThreadPoolExecutor(2)
    local fs = {}
    for i = 1, 50 do fs[i] = ex:submit(function(x) braid.sleep(0.001); return x end, i) end
    ex:shutdown(true)
    for i = 1, 50 do assert.is_true(fs[i]:done()) end
  end)

  it("bursts reuse tasks and futures without carrying an outcome over", function()
    -- two bursts over the 1,024 tasks a pool keeps (its task slabs are
    -- freed and made again between them; futures come back from the
    -- thread's cache): results, errors, cancels and big calls, each future
    -- with its own outcome
    local ex <close> = futures.ThreadPoolExecutor(2)
    local N = 1500
    for round = 1, 2 do
      local gate = futures.Future()
      local fs = {}
      for i = 1, N do
        if i <= 2 then -- hold both workers: the rest stays queued
          fs[i] = ex:submit(function(g, v) g:result(10); return v end, gate, i)
        elseif i % 7 == 3 then
          fs[i] = ex:submit(function(v) error("e" .. v, 0) end, i + round)
        else
          fs[i] = ex:submit(function(v, s) return v * 2, #s end, i + round, ("x"):rep(i % 300))
        end
      end
      for i = 10, N, 11 do assert.is_true(fs[i]:cancel()) end
      gate:set_result(true)
      for i = 1, N do
        local f = fs[i]
        if i % 11 == 10 then
          assert.is_true(f:cancelled())
          is_err("Cancelled", pcall(f.result, f, 10))
        elseif i <= 2 then
          assert.equal(i, f:result(10))
        elseif i % 7 == 3 then
          assert.equal("e" .. (i + round), f:exception(10))
          assert.is_false(f:cancelled())
        else
          local a, b = f:result(10)
          assert.equal(2 * (i + round), a)
          assert.equal(i % 300, b)
          assert.is_nil(f:exception(0))
        end
      end
    end
  end)

  it("shutdown(wait, cancel_futures) cancels queued futures and leaves none pending", function()
    local ex = futures.ThreadPoolExecutor(1)
    local gate = futures.Future()
    local first = ex:submit(function(g) return g:result(10) end, gate)
    local fs = {}
    for i = 1, 20 do fs[i] = ex:submit(function() return i end) end
    while not first:running() do braid.sleep(0.001) end
    -- the only worker is held by `first`: everything else is still queued
    ex:shutdown(false, true)
    for i = 1, 20 do assert.is_true(fs[i]:cancelled()) end
    gate:set_result("go")
    ex:shutdown(true, true)
    assert.equal("go", first:result())
    for i = 1, 20 do assert.is_true(fs[i]:done()) end
  end)

  it("shutdown(false) returns at once and work still finishes", function()
    local ex = futures.ThreadPoolExecutor(1)
    local gate = futures.Future()
    local f = ex:submit(function(g) return g:result(10) end, gate)
    ex:shutdown(false)
    assert.is_false(f:done())
    gate:set_result(9)
    assert.equal(9, f:result(10))
  end)

  it("with() and <close> shut the executor down", function()
    local ex = futures.ThreadPoolExecutor(1)
    local r = ex:with(function(e, x) return e:submit(function() return x end):result() end, 5)
    assert.equal(5, r)
    is_err("RuntimeError", pcall(ex.submit, ex, print))
    local ex2
    do
      local e <close> = futures.ThreadPoolExecutor(1)
      ex2 = e
    end
    is_err("RuntimeError", pcall(ex2.submit, ex2, print))
  end)

  it("runs the initializer once per worker before its tasks", function()
    local ex <close> = futures.ThreadPoolExecutor {
      max_workers = 2,
      initializer = function(v) INIT_VALUE = (INIT_VALUE or 0) + v end,
      initargs = { 10 },
    }
    for _ = 1, 10 do
      assert.equal(10, ex:submit(function() return INIT_VALUE end):result())
    end
  end)

  it("a failing initializer breaks the pool", function()
    local ex = futures.ThreadPoolExecutor {
      max_workers = 2,
      initializer = function() error("init fails") end,
    }
    local f = ex:submit(function() return 1 end)
    is_err("BrokenExecutor", pcall(f.result, f, 10))
    is_err("BrokenExecutor", pcall(ex.submit, ex, function() end))
    ex:shutdown()
  end)

  it("objects cross by reference", function()
    local ex <close> = futures.ThreadPoolExecutor(2)
    local q = require("braid.queue").Queue()
    ex:submit(function(qq) qq:put("hi") end, q):result()
    assert.equal("hi", q:get())
  end)

  it("many submitters share one executor", function()
    local ex <close> = futures.ThreadPoolExecutor(4)
    local outer <close> = futures.ThreadPoolExecutor(3)
    local fs = {}
    for k = 1, 3 do
      fs[k] = outer:submit(function(e, base)
        local s = 0
        for i = 1, 200 do s = s + e:submit(function(x) return x end, base + i):result() end
        return s
      end, ex, k * 1000)
    end
    for k = 1, 3 do assert.equal(k * 1000 * 200 + 200 * 201 / 2, fs[k]:result(30)) end
  end)
end)

describe("Executor:map", function()
  local ex
  setup(function() ex = futures.ThreadPoolExecutor(4) end)
  teardown(function() ex:shutdown() end)

  local function collect(it)
    local out = {}
    for v in it do out[#out + 1] = v end
    return out
  end

  it("keeps input order for any chunksize", function()
    local items = {}
    for i = 1, 300 do items[i] = i end
    for _, cs in ipairs { 1, 2, 7, 64, 1000 } do
      local out = collect(ex:map(function(x) return x * 10 end, items, { chunksize = cs }))
      assert.equal(300, #out)
      for i = 1, 300 do assert.equal(i * 10, out[i]) end
    end
    local out = collect(ex:map(function(x) return -x end, items))
    assert.equal(-300, out[300])
  end)

  it("zips several iterables, stopping at the shortest, and takes iterator functions", function()
    local i = 0
    local gen = function() i = i + 1; if i <= 5 then return i end end
    assert.same({ 11, 22, 33 }, collect(ex:map(function(a, b) return a + b end, { 1, 2, 3, 4 }, gen_or({ 10, 20, 30 }))))
    assert.same({ 1, 4, 9, 16, 25 }, collect(ex:map(function(x) return x * x end, gen)))
  end)

  it("raises the error of item k when k is reached, earlier results first", function()
    for _, cs in ipairs { 1, 3 } do
      local it = ex:map(function(x) if x == 5 then error("item five") end return x end,
        { 1, 2, 3, 4, 5, 6, 7 }, { chunksize = cs })
      for k = 1, 4 do assert.equal(k, it()) end
      local ok, e = pcall(it)
      assert.is_false(ok)
      assert.matches("item five", e)
    end
  end)

  it("returns nil results as values, then nothing at the end", function()
    local it = ex:map(function() return nil end, { 1, 2 })
    assert.equal(1, select("#", it()))
    assert.equal(1, select("#", it()))
    assert.equal(0, select("#", it()))
  end)

  it("honours timeout: nil, nil, then Timeout", function()
    local it = ex:map(function(t) braid.sleep(t) end, { 0, 0, 2 }, { timeout = 0.3 })
    assert.is_nil(it())
    assert.is_nil(it())
    is_err("Timeout", pcall(it))
  end)

  it("submits everything without iteration", function()
    local q = require("braid.queue").Queue()
    local _ = ex:map(function(x, qq) qq:put(x) end, { 1, 2, 3 }, { q, q, q })
    local got = {}
    for i = 1, 3 do got[i] = q:get(true, 10) end
    table.sort(got)
    assert.same({ 1, 2, 3 }, got)
  end)

  it("chunksize below 1 is a ValueError; empty input gives nothing", function()
    is_err("ValueError", pcall(ex.map, ex, print, { 1 }, { chunksize = 0 }))
    assert.same({}, collect(ex:map(print, {})))
  end)
end)

function gen_or(t) return t end

describe("wait", function()
  local ex
  setup(function() ex = futures.ThreadPoolExecutor(2) end)
  teardown(function() ex:shutdown() end)

  local function count(set) local n = 0 for _ in pairs(set) do n = n + 1 end return n end

  it("ALL_COMPLETED counts failed and cancelled futures as done; removes duplicates", function()
    local a, b, c = with_result(1), with_error("x"), cancelled()
    local d = ex:submit(function() return 1 end)
    local done, not_done = futures.wait({ a, b, c, d, a, d })
    assert.equal(4, count(done))
    assert.equal(0, count(not_done))
  end)

  it("FIRST_COMPLETED returns at once with all the done ones", function()
    local p = pending()
    local done, not_done = futures.wait({ with_result(1), cancelled(), p },
      { return_when = futures.FIRST_COMPLETED })
    assert.equal(2, count(done))
    assert.is_true(not_done[p])
  end)

  it("FIRST_COMPLETED waits for the first completion", function()
    local p = pending()
    local f = ex:submit(function() braid.sleep(0.05); return 1 end)
    local done, not_done = futures.wait({ p, f }, { return_when = futures.FIRST_COMPLETED, timeout = 10 })
    assert.is_true(done[f])
    assert.is_true(not_done[p])
  end)

  it("FIRST_EXCEPTION returns on the first failure, else like ALL_COMPLETED", function()
    local p = pending()
    local bad = ex:submit(function() braid.sleep(0.02); error("x") end)
    local done, not_done = futures.wait({ p, bad }, { return_when = futures.FIRST_EXCEPTION, timeout = 10 })
    assert.is_true(done[bad])
    assert.is_true(not_done[p])
    local g = ex:submit(function() return 1 end)
    done = futures.wait({ with_result(1), g, cancelled() }, { return_when = futures.FIRST_EXCEPTION })
    assert.equal(3, count(done))
  end)

  it("timeout returns (done, not_done) without raising", function()
    local p = pending()
    local t0 = braid.monotonic()
    local done, not_done = futures.wait({ p, with_result(1) }, { timeout = 0.2 })
    local dt = braid.monotonic() - t0
    assert.is_true(dt >= 0.12 and dt < 2)
    assert.equal(1, count(done))
    assert.is_true(not_done[p])
  end)

  it("accepts a set keyed by futures", function()
    local a = with_result(1)
    local done = futures.wait({ [a] = true })
    assert.is_true(done[a])
  end)
end)

describe("as_completed", function()
  it("yields each future once, done ones first, in completion order", function()
    local ex <close> = futures.ThreadPoolExecutor(2)
    local a = with_result(1)
    local gate = futures.Future()
    local slow = ex:submit(function(g) g:result(10); return "slow" end, gate)
    local fast = ex:submit(function() return "fast" end)
    local seen = {}
    for f in futures.as_completed({ slow, a, fast, a }) do
      seen[#seen + 1] = f
      if f == fast then gate:set_result(true) end
    end
    assert.equal(3, #seen)
    assert.equal(a, seen[1])
    assert.equal(slow, seen[3])
  end)

  it("raises Timeout naming how many are unfinished", function()
    local fs = { with_result(1), cancelled(), pending(), pending() }
    local n = 0
    local ok, e = pcall(function()
      for _ in futures.as_completed(fs, 0.1) do n = n + 1 end
    end)
    is_err("Timeout", ok, e)
    assert.equal(2, n)
    assert.matches("2 %(of 4%) futures unfinished", e.message)
  end)
end)

-- submit keeps the encoding of the function it sent last (a burst submits
-- the same one over and over); it must re-encode whenever what that
-- encoding depended on changed.
describe("submit's function memo", function()
  it("sends the same function many times, then others", function()
    local ex <close> = futures.ThreadPoolExecutor(2)
    local function a(x) return x + 1 end
    local function b(x) return x * 2 end
    local fs = {}
    for i = 1, 200 do fs[i] = ex:submit(i % 50 == 0 and b or a, i) end
    for i = 1, 200 do
      assert.equal(i % 50 == 0 and i * 2 or i + 1, fs[i]:result())
    end
  end)

  it("re-encodes a function whose _ENV upvalue changed", function()
    local ex <close> = futures.ThreadPoolExecutor(1)
    local function make() local _ENV = {}; return function() return _ENV == nil end end
    local f = make()
    for _ = 1, 3 do assert.is_false(ex:submit(f):result()) end
    debug.setupvalue(f, 1, nil) -- now sent with its nil upvalue
    assert.is_true(ex:submit(f):result())
    debug.setupvalue(f, 1, {})
    assert.is_false(ex:submit(f):result())
  end)

  it("re-encodes a function that became a module (sent by name then)", function()
    local ex <close> = futures.ThreadPoolExecutor(1)
    local function g() return 42 end
    for _ = 1, 3 do assert.equal(42, ex:submit(g):result()) end
    package.loaded.braid_spec_memo_mod = g
    local ok, e = pcall(function() return ex:submit(g):result() end)
    rawset(package.loaded, "braid_spec_memo_mod", nil)
    assert.is_false(ok)
    assert.matches("braid_spec_memo_mod", tostring(e))
  end)

  it("re-encodes a function that became a module while package.loaded had no hook", function()
    local ex <close> = futures.ThreadPoolExecutor(1)
    local function g() return 42 end
    for _ = 1, 3 do assert.equal(42, ex:submit(g):result()) end
    local mt = getmetatable(package.loaded)
    setmetatable(package.loaded, nil) -- the count of added modules is off
    package.loaded.braid_spec_memo_mod2 = g
    local ok, e = pcall(function() return ex:submit(g):result() end)
    package.loaded.braid_spec_memo_mod2 = nil
    setmetatable(package.loaded, mt)
    assert.is_false(ok)
    assert.matches("braid_spec_memo_mod2", tostring(e))
  end)

  it("does not mix up a collected function with a new one", function()
    local ex <close> = futures.ThreadPoolExecutor(1)
    for i = 1, 100 do
      local k = i
      local f = load("return function() return " .. k .. " end")()
      assert.equal(k, ex:submit(f):result())
      f = nil
      if i % 10 == 0 then collectgarbage() end
    end
  end)
end)
