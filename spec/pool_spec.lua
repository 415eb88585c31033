-- braid.pool's ThreadPool against the ThreadPool parts of CPython's
-- _test_multiprocessing.py (_TestPool, _TestPoolWorkerLifetime).
local braid = require "braid"
local pool_mod = require "braid.pool"
local ThreadPool = pool_mod.ThreadPool
local Error = braid.Error

local function is_err(kind, ok, e)
  assert.is_false(ok)
  assert.is_true(Error.is(e, kind), "expected " .. kind .. ", got " .. tostring(e))
end

local function sqr(x, wait)
  if wait then braid.sleep(wait) end
  return x * x
end

local function range(n)
  local t = {}
  for i = 1, n do t[i] = i - 1 end
  return t
end

describe("ThreadPool", function()
  local pool
  setup(function() pool = ThreadPool(4) end)
  teardown(function() pool:terminate(); pool:join() end)

  it("apply", function()
    assert.equal(25, pool:apply(sqr, { 5 }))
    assert.equal(9, pool:apply(sqr, { 3, nil }))
  end)

  it("map and starmap keep order for any chunksize", function()
    for _, cs in ipairs { nil, 1, 3, 100 } do
      local r = pool:map(sqr, range(50), cs)
      assert.equal(50, #r)
      for i = 1, 50 do assert.equal((i - 1) ^ 2, r[i]) end
    end
    local pairs_ = {}
    for i = 1, 20 do pairs_[i] = { i, i + 1 } end
    local r = pool:starmap(function(a, b) return a * b end, pairs_, 3)
    for i = 1, 20 do assert.equal(i * (i + 1), r[i]) end
    local ar = pool:starmap_async(function(a, b) return a - b end, { { 5, 1 }, { 2, 2 } })
    assert.same({ 4, 0, n = 2 }, ar:get(10))
  end)

  it("empty input gives empty results", function()
    assert.equal(0, #pool:map(sqr, {}))
    local n = 0
    for _ in pool:imap(sqr, {}) do n = n + 1 end
    assert.equal(0, n)
  end)

  it("apply_async: get, ready, successful, wait", function()
    local gate = require("braid.futures").Future()
    local res = pool:apply_async(function(g) g:result(10); return 7 end, { gate })
    assert.is_false(res:ready())
    is_err("ValueError", pcall(res.successful, res))
    is_err("Timeout", pcall(res.get, res, 0.05))
    gate:set_result(true)
    assert.equal(7, res:get(10))
    assert.is_true(res:ready())
    assert.is_true(res:successful())
    local bad = pool:apply_async(function() error("nope") end)
    bad:wait(10)
    assert.is_true(bad:ready())
    assert.is_false(bad:successful())
    local ok, e = pcall(bad.get, bad)
    assert.is_false(ok)
    assert.matches("nope", e)
  end)

  it("get(timeout) too short raises Timeout after about that long", function()
    local res = pool:apply_async(sqr, { 6, 0.5 })
    local t0 = braid.monotonic()
    is_err("Timeout", pcall(res.get, res, 0.1))
    local dt = braid.monotonic() - t0
    assert.is_true(dt >= 0.06 and dt < 2)
    assert.equal(36, res:get(10))
  end)

  it("callback once on success, error_callback once on failure, never both", function()
    local calls = {}
    local r = pool:map_async(sqr, { 1, 2, 3 }, nil, {
      callback = function(v) calls[#calls + 1] = { "ok", v } end,
      error_callback = function(e) calls[#calls + 1] = { "err", e } end,
    })
    r:wait(10)
    braid.poll()
    assert.equal(1, #calls)
    assert.equal("ok", calls[1][1])
    assert.same({ 1, 4, 9, n = 3 }, calls[1][2])
    calls = {}
    r = pool:map_async(function(x) if x == 2 then error("two") end return x end, { 1, 2, 3 }, 1, {
      callback = function(v) calls[#calls + 1] = { "ok", v } end,
      error_callback = function(e) calls[#calls + 1] = { "err", e } end,
    })
    r:wait(10)
    braid.poll()
    assert.equal(1, #calls)
    assert.equal("err", calls[1][1])
    assert.matches("two", calls[1][2])
    local got
    pool:apply_async(sqr, { 4 }, { callback = function(v) got = v end }):wait(10)
    braid.poll()
    assert.equal(16, got)
  end)

  it("imap yields in order up to the failing item, then raises", function()
    local out = {}
    for v in pool:imap(sqr, range(10), 3) do out[#out + 1] = v end
    assert.equal(10, #out)
    assert.equal(81, out[10])
    local it = pool:imap(function(x) if x == 4 then error("four") end return x end, range(8), 2)
    for k = 0, 3 do assert.equal(k, it()) end
    local ok, e = pcall(it)
    assert.is_false(ok)
    assert.matches("four", e)
  end)

  it("imap_unordered yields every result, fast ones first", function()
    local got = {}
    for v in pool:imap_unordered(function(x)
      if x == 0 then braid.sleep(0.3) end
      return x
    end, range(6)) do got[#got + 1] = v end
    assert.equal(6, #got)
    assert.equal(0, got[#got])
    table.sort(got)
    assert.same(range(6), got)
  end)

  it("an input iterator raising makes map raise and the pool stays usable", function()
    local i = 0
    local ok = pcall(pool.map, pool, sqr, function()
      i = i + 1
      if i == 3 then error("input fails") end
      return i
    end)
    assert.is_false(ok)
    assert.equal(4, pool:apply(sqr, { 2 }))
  end)

  it("chunksize 0 is a ValueError", function()
    is_err("ValueError", pcall(pool.map, pool, sqr, { 1 }, 0))
  end)
end)

describe("ThreadPool lifetime", function()
  it("rejects 0 processes", function()
    is_err("ValueError", pcall(ThreadPool, 0))
  end)

  it("runs the initializer in each worker", function()
    local p = ThreadPool { processes = 2, initializer = function(v) POOL_INIT = v end, initargs = { "set" } }
    assert.equal("set", p:apply(function() return POOL_INIT end))
    p:close()
    p:join()
  end)

  it("join on a running pool is a ValueError; after close, use is a ValueError", function()
    local p = ThreadPool(2)
    is_err("ValueError", pcall(p.join, p))
    p:close()
    is_err("ValueError", pcall(p.apply, p, sqr, { 1 }))
    p:join()
  end)

  it("close + join never hangs, even after a failing map", function()
    local p = ThreadPool(2)
    pcall(p.map, p, function(x) if x == 3 then error("x") end return x end, range(10))
    p:close()
    p:join()
  end)

  it("terminate with many queued tasks returns promptly", function()
    local p = ThreadPool(2)
    local results = {}
    for i = 1, 10000 do results[i] = p:apply_async(sqr, { i, 0.0001 }) end
    local t0 = braid.monotonic()
    p:terminate()
    p:join()
    assert.is_true(braid.monotonic() - t0 < 5)
  end)

  it("with() terminates; later use is a ValueError", function()
    local p = ThreadPool(2)
    assert.equal(9, p:with(function(pp) return pp:apply(sqr, { 3 }) end))
    is_err("ValueError", pcall(p.apply, p, sqr, { 1 }))
    do
      local q <close> = ThreadPool(1)
      assert.equal(1, q:apply(sqr, { 1 }))
    end
  end)
end)
