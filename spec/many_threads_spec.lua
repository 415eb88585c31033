-- What one braid thread costs (issue 11 §6): its C stack is 1 MB, enough
-- for Lua's deepest C recursion; its Lua state starts small; the decoder's
-- function cache grows from a few slots as a state decodes more functions.
local braid = require "braid"
local threading = require "braid.threading"

-- runs fn in a braid thread and returns its results
local function in_thread(fn, ...)
  local t = threading.Thread{target = fn, args = table.pack(...)}
  t:start()
  return t:result()
end

describe("a braid thread's C stack", function()
  -- each test goes to Lua's C-recursion limit (200 levels): Lua raises
  -- "C stack overflow" there, before the thread's stack runs out
  it("holds string.gsub callbacks nested to Lua's limit (the deepest frames)", function()
    local msg = in_thread(function()
      local function g(s, n)
        if n > 300 then return s end
        return (s:gsub(".", function(c) return g(c, n + 1) end))
      end
      local ok, err = pcall(g, "a", 0)
      return not ok and tostring(err)
    end)
    assert.truthy(msg and msg:find("C stack overflow", 1, true), msg)
  end)

  it("holds metamethods, sort comparators and coroutines nested to the limit", function()
    local a, b, c = in_thread(function()
      local mt = {}
      mt.__index = function(_, k) return setmetatable({}, mt)[k] end
      local ok1, e1 = pcall(function() return setmetatable({}, mt).x end)
      local function s(n)
        local t = {3, 2, 1}
        table.sort(t, function(x, y) if n < 300 then s(n + 1) end return x < y end)
      end
      local ok2, e2 = pcall(s, 0)
      local function co(n) return coroutine.wrap(function() return co(n + 1) end)() end
      local ok3, e3 = pcall(co, 0)
      return not ok1 and tostring(e1), not ok2 and tostring(e2), not ok3 and tostring(e3)
    end)
    for _, msg in ipairs{a, b, c} do
      assert.truthy(msg and (msg:find("C stack overflow", 1, true) or msg:find("stack", 1, true)), msg)
    end
  end)

  it("parses source nested to the parser's limit", function()
    local msg = in_thread(function()
      local f, err = load("return " .. ("("):rep(400) .. "1" .. (")"):rep(400))
      return not f and err
    end)
    assert.truthy(msg and msg:find("overflow", 1, true), msg)
    assert.equal(1, in_thread(function()
      return load("return " .. ("("):rep(150) .. "1" .. (")"):rep(150))()
    end))
  end)

  it("copies a table nested to the codec's depth limit from deep inside pcalls", function()
    assert.equal(199, in_thread(function()
      local function nest(n)
        local t = {}
        local c = t
        for _ = 1, n do c[1] = {}; c = c[1] end
        return t
      end
      local function depth(t) local d = 0; while t[1] do d = d + 1; t = t[1] end; return d end
      local function at(n) -- ~150 C levels of pcall, then the copy
        if n == 0 then return depth(braid.decode(braid.encode(nest(199)))) end
        return select(2, pcall(at, n - 1))
      end
      return at(150)
    end))
  end)
end)

describe("a braid thread's Lua state", function()
  it("starts small: under 23 KB with its target and an Event decoded (27.3, then 23.7 before)", function()
    local go = threading.Event()
    local kb = in_thread(function(ev)
      assert(ev)
      return collectgarbage("count")
    end, go)
    assert.is_true(kb < 23, ("%.1f KB"):format(kb))
  end)
end)

describe("the decoder's function cache", function()
  it("is not made for a fresh state's first function (its target), then is from the second", function()
    local shared = {n = 1}
    local function get() return shared.n end
    local r = {in_thread(function()
      shared.n = shared.n + 1 -- the target's upvalue and get's are one table
      local again = braid.decode(braid.encode(get)) -- the second function: cached
      shared.n = shared.n + 1
      local twice = braid.decode(braid.encode(get)) -- found in the cache
      return get(), again(), twice()
    end)}
    assert.same({3, 2, 3}, r)
  end)

  it("decodes many distinct functions, each again, to the right one", function()
    local fs = {}
    for i = 1, 100 do fs[i] = load(("return function(x) return x + %d end"):format(i))() end
    for round = 1, 3 do
      for i = 1, 100 do
        assert.equal(i + round, braid.decode(braid.encode(fs[i]))(round))
      end
    end
  end)

  it("keeps functions decoded before it grew (in a thread's fresh state)", function()
    local ok = in_thread(function()
      local fs = {}
      for i = 1, 70 do fs[i] = load(("return function() return %d end"):format(i))() end
      local dec = {}
      for i = 1, 70 do dec[i] = braid.decode(braid.encode(fs[i])) end
      for i = 70, 1, -1 do
        if dec[i]() ~= i or braid.decode(braid.encode(fs[i]))() ~= i then return false end
      end
      return true
    end)
    assert.is_true(ok)
  end)
end)
