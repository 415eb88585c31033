-- braid.shared (API.md §7): tables every thread sees the same, their lock,
-- atomic update, and the balance race that plain read-then-write loses.
local braid = require "braid"
local shared = require "braid.shared"
local queue = require "braid.queue"
local has_threading, threading = pcall(require, "braid.threading")

local function needs_threads()
  if not has_threading then pending("braid.threading not built yet") end
  return has_threading
end

describe("shared.table", function()
  it("reads, writes and deletes like a Lua table", function()
    local t = shared.table{10, 20, 30, name = "x"}
    assert.equal(10, t[1])
    assert.equal("x", t.name)
    assert.equal(3, #t)
    t.name = nil
    assert.is_nil(t.name)
    t[4] = 40
    assert.equal(4, #t)
    t[2] = nil
    assert.equal(1, #t)
    t[2] = 20
    assert.equal(4, #t)
    assert.is_nil(t.missing)
  end)

  it("keeps integer keys filled in any order, with holes and long values", function()
    local t = shared.table()
    for i = 200, 1, -1 do t[i] = i * 2 end -- the last one, 1, comes first
    assert.equal(200, #t)
    for i = 201, 3000 do t[i] = i * 2 end
    t[1500] = nil
    assert.equal(1499, #t)
    t[1500], t[7] = "a string value longer than any inline cell", {x = 1}
    assert.equal(3000, #t)
    t[0], t[-1], t[2.0], t[1e9] = "zero", "minus", "two", "far"
    assert.same({"two", "zero", "minus", "far"}, {t[2], t[0], t[-1], t[1e9]})
    assert.equal("a string value longer than any inline cell", t[1500])
    assert.same({x = 1}, t[7])
    local n, sum = 0, 0
    for k in pairs(t) do
      n = n + 1
      sum = sum + k
    end
    assert.equal(3003, n)
    assert.equal(3000 * 3001 // 2 - 1 + 1e9, sum)
    local copy = shared.totable(t)
    assert.equal(3000, #copy)
    assert.equal(6000, copy[3000])
  end)

  it("keeps value types and copies plain tables", function()
    local t = shared.table()
    t.i, t.f, t.s, t.b = 1, 1.5, "a\0b", false
    assert.equal("integer", math.type(t.i))
    assert.equal(1.5, t.f)
    assert.equal("a\0b", t.s)
    assert.is_false(t.b)
    local plain = {1, {2}}
    t.p = plain
    assert.same(plain, t.p)
    t.p[1] = 99 -- changes a copy, not the stored value
    assert.equal(1, t.p[1])
  end)

  it("normalises integral float keys like Lua", function()
    local t = shared.table()
    t[1.0] = "one"
    assert.equal("one", t[1])
    assert.equal(1, #t)
    t[2.5] = "x"
    assert.equal("x", t[2.5])
    -- a numeric string stays a string key; values keep their number subtype
    t["1"] = "string one"
    assert.equal("one", t[1])
    assert.equal("string one", t["1"])
    t.f, t.i, t.big = 3.0, 3, math.mininteger
    assert.equal("float", math.type(t.f))
    assert.equal("integer", math.type(t.i))
    assert.equal(math.mininteger, t.big)
    t[math.maxinteger] = -1
    assert.equal(-1, t[math.maxinteger])
    assert.has_error(function() t[nil] = 1 end)
    assert.has_error(function() t[0/0] = 1 end)
    local ok, err = pcall(function() t[{}] = 1 end)
    assert.is_false(ok)
    assert.equal("TypeError", err.kind)
  end)

  it("keeps small and big keys and values, moving between the two", function()
    local t = shared.table()
    local long = string.rep("long value ", 10)
    for _, k in ipairs({1, -7, 2^40, 0.25, true, "k", "a key longer than sixteen bytes"}) do
      for _, v in ipairs({1, 2.5, false, "s", long, {1, 2}, "s", 3}) do
        t[k] = v
        if type(v) == "table" then assert.same(v, t[k]) else assert.equal(v, t[k]) end
      end
      t[k] = nil
      assert.is_nil(t[k])
    end
  end)

  it("raises the usual errors from its metamethods", function()
    local t = shared.table()
    local meta = getmetatable(t)
    assert.has_error(function() meta.__index({}, 1) end)
    assert.has_error(function() meta.__newindex({}, 1, 2) end)
    assert.has_error(function() meta.__index(shared.lock(t), 1) end)
  end)

  it("keeps nested shared tables shared and braid objects by reference", function()
    local t = shared.table()
    local inner = shared.table{x = 1}
    t.inner = inner
    assert.equal(inner, t.inner)
    t.inner.x = 2
    assert.equal(2, inner.x)
    local q = queue.Queue()
    t.q = q
    assert.equal(q, t.q)
    t[q] = "queue as key"
    assert.equal("queue as key", t[q])
  end)

  it("iterates over a snapshot with pairs and ipairs", function()
    local t = shared.table{"a", "b", "c", x = 1}
    local seen, n = {}, 0
    for k, v in pairs(t) do
      seen[k] = v
      n = n + 1
      t["new" .. n] = n -- changes during iteration do not disturb it
    end
    assert.equal(4, n)
    assert.same({"a", "b", "c", x = 1}, seen)
    local list = {}
    for i, v in ipairs(t) do list[i] = v end
    assert.same({"a", "b", "c"}, list)
    assert.same({"a", "b", "c", x = 1, new1 = 1, new2 = 2, new3 = 3, new4 = 4}, shared.totable(t))
  end)

  it("update is a read-modify-write that returns the new value", function()
    local t = shared.table()
    assert.equal(1, shared.update(t, "n", function(v) return (v or 0) + 1 end))
    assert.equal(2, shared.update(t, "n", function(v) return v + 1 end))
    assert.is_nil(shared.update(t, "n", function() return nil end))
    assert.is_nil(t.n)
    -- an error in fn leaves the value alone and the lock free
    t.n = 5
    assert.has_error(function() shared.update(t, "n", function() error("boom") end) end, nil)
    assert.equal(5, t.n)
    assert.equal(6, shared.update(t, "n", function(v) return v + 1 end))
  end)

  it("shared.lock returns the table's RLock", function()
    if not needs_threads() then return end
    local t = shared.table()
    local lock = shared.lock(t)
    assert.equal(lock, shared.lock(t))
    assert.is_true(lock:acquire())
    assert.is_true(lock:acquire()) -- reentrant
    t.x = 1 -- the holder may use the table
    lock:release(); lock:release()
    lock:with(function() t.y = 2 end)
    assert.equal(2, t.y)
  end)

  it("is seen the same from other threads", function()
    if not needs_threads() then return end
    local t = shared.table{count = 0}
    local th = threading.Thread{target = function(t)
      t.from_thread = "hi"
      t.list = {1, 2, 3}
    end, args = {t}}
    th:start(); th:join()
    assert.equal("hi", t.from_thread)
    assert.same({1, 2, 3}, t.list)
  end)

  describe("the balance race", function()
    local N = 100000

    local function run(body)
      local t = shared.table{balance = 0}
      local ts = {}
      for i = 1, 2 do
        ts[i] = threading.Thread{target = body, args = {t, N}}
        ts[i]:start()
      end
      for i = 1, 2 do ts[i]:join() end
      return t.balance
    end

    it("plain read-then-write may lose updates", function()
      if not needs_threads() then return end
      local total = run(function(t, n)
        for _ = 1, n do t.balance = t.balance + 1 end
      end)
      assert.is_true(total >= 1 and total <= 2 * N)
    end)

    it("shared.update loses none", function()
      if not needs_threads() then return end
      local total = run(function(t, n)
        local shared = require "braid.shared"
        local inc = function(v) return v + 1 end
        for _ = 1, n do shared.update(t, "balance", inc) end
      end)
      assert.equal(2 * N, total)
    end)

    it("the table's lock loses none", function()
      if not needs_threads() then return end
      local total = run(function(t, n)
        local lock = require("braid.shared").lock(t)
        for _ = 1, n do
          local _ <close> = lock:guard()
          t.balance = t.balance + 1
        end
      end)
      assert.equal(2 * N, total)
    end)
  end)
end)
