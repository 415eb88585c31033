-- The value codec (API.md §1): what crosses between states and how.
local braid = require "braid"

local function rt(v) return braid.decode(braid.encode(v)) end
local transfer = braid.transfer_test

describe("codec", function()
  describe("scalars", function()
    it("keeps nil, booleans and integer/float subtypes", function()
      assert.is_nil(rt(nil))
      assert.is_true(rt(true))
      assert.is_false(rt(false))
      assert.equal("integer", math.type(rt(42)))
      assert.equal("float", math.type(rt(42.0)))
      assert.equal(math.mininteger, rt(math.mininteger))
      assert.equal(math.maxinteger, rt(math.maxinteger))
      assert.equal(math.huge, rt(math.huge))
      assert.equal(-math.huge, rt(-math.huge))
      local nan = rt(0/0)
      assert.is_true(nan ~= nan)
      assert.equal(-0.0, rt(-0.0))
      assert.equal("-0.0", tostring(rt(-0.0)))
    end)

    it("keeps binary strings byte for byte", function()
      local s = {}
      for i = 0, 255 do s[#s + 1] = string.char(i) end
      s = table.concat(s)
      assert.equal(s, rt(s))
      assert.equal("", rt(""))
      local big = string.rep("ab\0", 100000)
      assert.equal(big, rt(big))
    end)
  end)

  describe("functions", function()
    it("encodes a function the same way the first time and again (its cached form)", function()
      local function plain(a) return a + 1 end
      local up = 5
      local function with_up() return up end
      local g = load("return X", "=g", "t", { X = 1 })
      for _, fn in ipairs({ plain, with_up, g }) do
        local first = braid.encode(fn)
        for _ = 1, 3 do assert.equal(first, braid.encode(fn)) end
      end
      assert.equal(3, braid.decode(braid.encode(plain))(2))
      assert.equal(1, braid.decode(braid.encode(g))())
    end)
  end)

  describe("tables", function()
    it("deep-copies nested tables", function()
      local t = {1, 2, {3, {4, {5}}}, x = {y = {z = "deep"}}, [true] = "t", [2.5] = "f"}
      local u = rt(t)
      assert.are_not.equal(t, u)
      assert.same(t, u)
    end)

    it("preserves cycles and shared references", function()
      local shared = {"s"}
      local t = {a = shared, b = shared}
      t.self = t
      local u = rt(t)
      assert.equal(u, u.self)
      assert.equal(u.a, u.b)
      assert.are_not.equal(shared, u.a)
    end)

    it("uses tables as keys", function()
      local k = {1}
      local u = rt({[k] = "v", k = k})
      assert.equal("v", u[u.k])
    end)

    it("copies metatables that can cross", function()
      local Point = {}
      Point.__index = Point
      function Point:len2() return self.x * self.x + self.y * self.y end
      local p = rt(setmetatable({x = 3, y = 4}, Point))
      assert.equal(25, p:len2())
    end)

    it("keeps shared references however many there are", function()
      -- the decoder keeps its first back-references in stack slots, the
      -- next 500,000 on a thread's stack and the rest in a table
      for _, n in ipairs({5, 300, 2000, 510000}) do
        local shared, t = {}, {}
        for i = 1, n do shared[i] = {i} end
        for i = 1, n do t[i] = shared[i]; t[n + i] = shared[n + 1 - i] end
        local u = rt(t)
        for _, i in ipairs({1, 2, n // 2 + 1, n}) do
          assert.equal(i, u[i][1])
          assert.equal(u[i], u[2 * n + 1 - i])
        end
      end
    end)

    it("keeps references right in a decode after one that failed", function()
      local shared, t = {}, {}
      for i = 1, 100 do shared[i] = {i} end
      for i = 1, 100 do t[i] = shared[i]; t[100 + i] = shared[i] end
      local good = braid.encode(t)
      assert.is_false(pcall(braid.decode, good:sub(1, -2)))
      local u = braid.decode(good)
      assert.equal(u[100], u[200])
      assert.equal(100, u[200][1])
    end)

    it("keeps lists of records: repeated keys of any length, mixed shapes, nesting", function()
      local recs = {}
      for i = 1, 300 do
        local r = {id = i, x = i % 7, name = "user" .. i, vals = {i, i * 0.5, true}}
        if i % 3 == 0 then r.extra = {a = {b = {}}} end -- another shape, nested
        if i % 5 == 0 then r.vals = {} end -- empty tables
        if i % 11 == 0 then r[i] = "int key"; r[true] = false; r[2.5] = "float key" end
        if i % 13 == 0 then r.id = "id" end -- a value equal to a key
        recs[i] = r
      end
      local u = rt(recs)
      assert.same(recs, u)
      assert.equal("id", u[13].id)
      assert.equal("int key", u[11][11])
      assert.is_false(u[22][true])
      assert.equal("float key", u[33][2.5])
      assert.equal(0, #u[5].vals)
      assert.is_true(math.type(u[2].vals[1]) == "integer" and math.type(u[2].vals[2]) == "float")
    end)

    it("writes a repeated key once, then back-references it", function()
      local function size(n)
        local list = {}
        for i = 1, n do list[i] = {id = i % 2, k = true, key = false} end
        return #braid.encode(list)
      end
      -- each record after the first adds its 4-byte table header, three
      -- 2-byte back-references and its values (4 bytes), not its key names
      assert.equal(100 * 14, size(101) - size(1))
      -- short values equal to keys, and keys equal to earlier values
      local t = {{a = "b", b = "a"}, {b = "b", a = "a"}, "a", "b", {ab = "ab"}, {ab = 1}}
      assert.same(t, rt(t))
    end)

    it("writes tables as no back-reference targets until one is met again, then starts over", function()
      -- a list of records: no table is a target (flag 2), short strings are SSTR
      local recs = {}
      for i = 1, 50 do recs[i] = {id = i, name = "user" .. i, vals = {i, i * 0.5, true}} end
      local plain = braid.encode(recs)
      assert.equal(string.char(6, 50, 0, 2), plain:sub(1, 4))
      assert.same(recs, braid.decode(plain))
      -- the same records with a shared table, a cycle or a function met last:
      -- the encode starts over with every table a target, and refers back
      local shared = {"x"}
      local function f() return #recs end
      for _, last in ipairs({shared, "cycle", f}) do
        local t = {}
        for i = 1, 50 do t[i] = {id = i, name = "user" .. i, vals = {i, i * 0.5, true}} end
        if last == "cycle" then t[50].up = t else t[1].s, t[50].s = shared, last end
        local u = rt(t)
        assert.equal(string.char(6, 50, 0, 0), braid.encode(t):sub(1, 4))
        assert.same(t[49], u[49])
        if last == "cycle" then
          assert.equal(u, u[50].up)
        elseif last == shared then
          assert.equal(u[1].s, u[50].s)
        else
          assert.equal(50, u[50].s())
        end
      end
      -- strings of 16 bytes or more are targets; shorter ones (SSTR, tag 13) not
      local long = string.rep("y", 16)
      assert.equal(string.char(6, 3, 0, 2, 13, 1, 97, 5, 16) .. long .. string.char(7, 0),
                   braid.encode({"a", long, long}))
      assert.same({"a", long, long, {"a"}}, rt({"a", long, long, {"a"}}))
    end)

    it("keeps a table with holes", function()
      local u = rt({1, nil, 3, n = 3})
      assert.equal(1, u[1]); assert.is_nil(u[2]); assert.equal(3, u[3]); assert.equal(3, u.n)
    end)

    it("keeps sequences however their items are stored: in order, backwards, after holes, with other keys", function()
      local back = {}
      for i = 40, 1, -1 do back[i] = i * 2 end -- mostly in the hash part
      local grown = {}
      for i = 1, 100 do grown[#grown + 1] = "v" .. i; grown["k" .. i] = i end
      local mixed = {1, 2, 3, x = 1, [2.5] = "f", [-1] = "neg", [0] = "zero", [1e3] = "far"}
      local holes = {nil, nil, 3, nil, 5, n = 5}
      local cleared = {1, 2, 3, 4, 5, 6, 7, 8}
      cleared[2], cleared[5] = nil, nil
      for _, t in ipairs {back, grown, mixed, holes, cleared, {{1}, {2, {3}}, "s", 4.5, false}} do
        local u = rt(t)
        assert.equal(#t, #u)
        for k, v in pairs(t) do
          if type(v) ~= "table" then assert.equal(v, u[k]) end
        end
        for k in pairs(u) do assert.is_not_nil(t[k]) end
      end
      local ok, err = pcall(braid.encode, {1, 2, {x = {coroutine.create(print)}}})
      assert.is_false(ok)
      assert.matches("value%[3%]%.x%[1%]", err.message)
    end)
  end)

  describe("functions", function()
    it("copy code and upvalues recursively", function()
      local base = {10}
      local function inner(x) return x + base[1] end
      local function outer(x) return inner(x) * 2 end
      assert.equal(24, rt(outer)(2))
      assert.equal(24, transfer(outer, 2))
    end)

    it("keep recursive local functions working", function()
      local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
      assert.equal(55, transfer(fib, 10))
    end)

    it("copy the globals they name that the receiver lacks", function()
      CODEC_SPEC_CONST = 21
      function codec_spec_helper(x) return x * CODEC_SPEC_CONST end
      assert.equal(42, transfer(function() return codec_spec_helper(2) end))
      CODEC_SPEC_CONST, codec_spec_helper = nil, nil
    end)

    it("cross modules by name, not by copy", function()
      local str = string
      assert.equal("HI", transfer(function() return str.upper("hi") end))
      local upper = string.upper
      assert.equal(string.upper, rt(upper))
      assert.equal(string, rt(string))
      assert.equal(io.stdout, rt(io.stdout))
      local b = require "braid"
      assert.equal(b.monotonic, rt(b.monotonic))
    end)

    it("cross by name modules loaded, replaced or re-loaded after an encode", function()
      local name, name2 = "codec_spec_mod_" .. tostring({}):sub(-6), "codec_spec_mod2"
      braid.encode(print) -- the module map is built
      package.loaded[name] = {f = function() return 1 end, it = string.gmatch("a", "a")}
      local m = package.loaded[name]
      assert.equal(m.f, braid.decode(braid.encode(m.f)))
      assert.equal(m.it, braid.decode(braid.encode(m.it)))
      -- a present key set to another module: C functions still cross
      package.loaded[name] = {it = string.gmatch("b", "b")}
      local m2 = package.loaded[name]
      assert.equal(m2.it, braid.decode(braid.encode(m2.it)))
      -- package.loaded with a metatable of the user's own
      local meta = getmetatable(package.loaded)
      setmetatable(package.loaded, {})
      package.loaded[name2] = {it = string.gmatch("c", "c")}
      local ok, err = pcall(function()
        assert.equal(package.loaded[name2].it, braid.decode(braid.encode(package.loaded[name2].it)))
      end)
      setmetatable(package.loaded, meta)
      package.loaded[name], package.loaded[name2] = nil, nil
      assert(ok, err)
      assert.is_false(pcall(braid.encode, string.gmatch("d", "d")))
    end)

    it("keep closures that share an upvalue sharing it", function()
      local count = 0
      local function inc() count = count + 1 end
      local function get() return count end
      local pair = rt({inc = inc, get = get})
      pair.inc(); pair.inc()
      assert.equal(2, pair.get())
      assert.equal(0, count)
      assert.equal(3, transfer(function(p) p.inc(); p.inc(); p.inc(); return p.get() end,
        {inc = inc, get = get}))
    end)

    it("number back-references the same way after values sent by name", function()
      local shared = {1}
      local u = rt({string, shared, io.write, shared, {shared}})
      assert.equal(string, u[1])
      assert.equal(u[2], u[4])
      assert.equal(u[2], u[5][1])
    end)

    it("keep integer/float subtypes inside tables and upvalues", function()
      local f3, i3 = 3.0, 3
      local t = rt({3.0, 3, x = -0.0, y = 2^53, f = function() return f3, i3 end})
      assert.equal("float", math.type(t[1]))
      assert.equal("integer", math.type(t[2]))
      assert.equal("float", math.type(t.x))
      assert.equal("float", math.type(t.y))
      local a, b = t.f()
      assert.equal("float", math.type(a))
      assert.equal("integer", math.type(b))
    end)

    it("give each decode of the same bytes its own closure and upvalues", function()
      local n, label = 0, "counter"
      local s = braid.encode(function() n = n + 1; return label, n end)
      local f, g = braid.decode(s), braid.decode(s)
      assert.are_not.equal(f, g)
      f(); f()
      assert.same({"counter", 3}, {f()})
      assert.same({"counter", 1}, {g()})
      assert.equal(0, n)
      assert.same({"counter", 1}, {braid.decode(s)()})
    end)

    it("keep code without upvalues, with many, varargs and nested closures", function()
      local function none(...) return select("#", ...), ... end
      assert.same({2, "a", "b"}, {rt(none)("a", "b")})
      local u = {}
      for i = 1, 60 do u[i] = i end
      local src = {"local u = ...; local "}
      for i = 1, 60 do src[#src + 1] = (i > 1 and ", " or "") .. "v" .. i end
      src[#src + 1] = " = table.unpack(u); return function() return v1 + v30 + v60 end"
      local many = assert(load(table.concat(src)))(u)
      assert.equal(91, rt(many)())
      local base = 10
      local function maker(k) return function(x) return x * k + base end end
      assert.equal(25, rt(maker)(3)(5))
      assert.equal(25, transfer(function(m) return m(3)(5) end, maker))
    end)

    it("copy functions too large for the decoded-chunk cache", function()
      local src = {"local a, b = ... return function(x) local t = {} "}
      for i = 1, 1000 do src[#src + 1] = ("t[%d] = x + %d "):format(i, i) end
      src[#src + 1] = "return t[1000] + a + b end"
      local s = braid.encode(assert(load(table.concat(src)))(1, 2))
      assert.is_true(#s > 32768)
      assert.equal(1013, braid.decode(s)(10))
      assert.equal(1023, braid.decode(s)(20))
    end)

    it("keep the function's source and lines for tracebacks", function()
      local function f() error("here") end
      local g = rt(f)
      local a, b = debug.getinfo(f, "S"), debug.getinfo(g, "S")
      assert.equal(a.short_src, b.short_src)
      assert.equal(a.linedefined, b.linedefined)
      local _, err = pcall(g)
      assert.matches("codec_spec.lua:%d+: here", err)
    end)

    it("encode inside an encode (a global read through __index)", function()
      local env = setmetatable({}, {__index = function(_, k)
        local inner = braid.decode(braid.encode({k, {k}, k .. "!"}))
        return inner[3]
      end})
      local f = load("return answer", "=env", "t", env)
      local shared = {1}
      local t = rt({f, shared, "a long string", shared})
      assert.equal(t[2], t[4])
      assert.equal("answer!", transfer(function(g) return g() end, f))
    end)

    it("keep working after an encode raised", function()
      for _ = 1, 3 do
        local shared = {"s"}
        assert.is_false(pcall(braid.encode, {shared, shared, coroutine.create(print)}))
        local t = rt({shared, shared, "abcd", "abcd"})
        assert.equal(t[1], t[2])
        assert.equal("abcd", t[4])
      end
    end)

    it("keep multiple results and nils", function()
      local a, b, c, d = transfer(function(...) return ... end, 1, nil, "x", nil)
      assert.equal(1, a); assert.is_nil(b); assert.equal("x", c); assert.is_nil(d)
      assert.equal(4, select("#", transfer(function(...) return ... end, 1, nil, "x", nil)))
    end)
  end)

  describe("errors", function()
    it("raise TypeError naming the path of what cannot cross", function()
      local co = coroutine.create(print)
      local ok, err = pcall(transfer, print, 1, {conn = co})
      assert.is_false(ok)
      assert.is_true(braid.Error.is(err, "TypeError"))
      assert.matches("args%[3%]%.conn", err.message)
      ok, err = pcall(braid.encode, {["a b"] = {1, {co}}})
      assert.matches('value%["a b"%]%[2%]%[1%]', err.message)
      ok, err = pcall(braid.encode, function() return co end)
      assert.matches("<upvalue co>", err.message)
    end)

    it("reject C functions that no module names", function()
      local f = load("return ...") -- a Lua function is fine
      assert.equal(3, rt(f)(3))
      local cf = coroutine.wrap(function() end) -- a C closure
      local ok, err = pcall(braid.encode, cf)
      assert.is_false(ok)
      assert.is_true(braid.Error.is(err, "TypeError"))
    end)

    it("re-raise a remote error as the same value with its traceback", function()
      local ok, err = pcall(transfer, function() error({code = 7}) end)
      assert.is_false(ok)
      assert.equal(7, err.code)
      assert.matches("stack traceback", braid.traceback(err))
      ok, err = pcall(transfer, function() error("boom", 0) end)
      assert.equal("boom", err)
      assert.matches("stack traceback", braid.traceback(err))
    end)

    it("cross braid.Error objects from states that never loaded braid", function()
      local ok, err = pcall(transfer, function()
        local t = {}
        for k in pairs(package.loaded) do t[#t + 1] = k end
        return t
      end)
      assert.is_true(ok)
      ok, err = pcall(transfer, function(e) error(e) end, braid.Error.new("Full", "x"))
      assert.is_true(braid.Error.is(err, "Full"))
    end)

    it("cross braid.Error objects with their kind", function()
      local ok, err = pcall(transfer, function()
        local b = require "braid"
        error(b.Error.new("Empty", "nothing"))
      end)
      assert.is_false(ok)
      assert.is_true(braid.Error.is(err, "Empty"))
      assert.equal("Empty: nothing", tostring(err))
      assert.is_nil(err.cause)
      assert.matches("stack traceback", braid.traceback(err))
    end)
  end)

  describe("untrusted input", function()
    local function bad(s)
      local ok, err = pcall(braid.decode, s)
      assert.is_false(ok)
      assert.is_true(braid.Error.is(err, "ValueError"), tostring(err))
    end

    it("rejects truncated and garbled input", function()
      local good = braid.encode({1, "two", {three = 3.0}, function() return 1 end})
      for i = 0, #good - 1 do bad(good:sub(1, i)) end
      bad(good .. "x")
      bad("\255")
      bad("")
    end)

    it("rejects truncated, garbled and misnumbered lists of records", function()
      local recs = {}
      for i = 1, 20 do recs[i] = {id = i, name = "user" .. i, vals = {i, i * 0.5, true}} end
      local good = braid.encode(recs)
      for i = 0, #good - 1, 3 do bad(good:sub(1, i)) end
      -- every byte changed in turn: a value or a clean ValueError (or, when
      -- the bytes came to name a module, require's error for it)
      for i = 1, #good do
        for _, x in ipairs({0, 6, 7, 0x80, 255}) do
          local ok, err = pcall(braid.decode, good:sub(1, i - 1) .. string.char(x) .. good:sub(i + 1))
          assert.is_true(ok or braid.Error.is(err, "ValueError") or
                         tostring(err):find("module '.*' not found") ~= nil, tostring(err))
        end
      end
      assert.is_false(select(2, next(braid.decode("\6\0\1\0\7\0\1")))) -- t[t] = false
      bad("\6\0\1\0\7\1\1") -- a key referring to itself
      bad("\6\0\1\0\7\5\1") -- to a string not yet seen
      bad("\6\0\1\0\5\2id\7\2") -- to a reference past the last
      bad("\6\0\1\2\13\2id\7\0") -- to a table that is no target (flag 2)
      bad("\6\1\1\2\6\0\0\2\2\7\0") -- likewise, after one inside it
      bad("\6\0\0\4") -- an unknown table flag
      bad("\6\1\0\2\13\1\97\7\0") -- to an SSTR, never a target
      bad("\6\1\0\2\13\9x") -- an SSTR longer than the input
      assert.same({"a"}, braid.decode("\6\1\0\2\13\1\97"))
    end)

    it("rejects huge counts without allocating them", function()
      bad("\6\255\255\255\255\255\255\255\255\127\0\0")
      bad("\5\255\255\255\255\15")
    end)

    it("rejects deep nesting", function()
      bad(string.rep("\6\1\0\0", 100000) .. "\0")
      local t = {}
      local cur = t
      for _ = 1, 1000 do cur[1] = {}; cur = cur[1] end
      local ok, err = pcall(braid.encode, t)
      assert.is_false(ok)
      assert.is_true(braid.Error.is(err, "TypeError"))
    end)

    it("refuses bytecode it did not encode", function()
      local s = braid.encode(function() return 1 end)
      -- flip a byte inside the chunk: the MAC no longer matches
      local i = 10
      local forged = s:sub(1, i - 1) .. string.char((s:byte(i) + 1) % 256) .. s:sub(i + 1)
      bad(forged)
    end)

    it("refuses a changed chunk even after decoding the original", function()
      local s = braid.encode(function() return 1 end)
      assert.equal(1, braid.decode(s)())
      for _, i in ipairs({10, 20, #s - 12}) do
        bad(s:sub(1, i - 1) .. string.char((s:byte(i) + 1) % 256) .. s:sub(i + 1))
      end
      assert.equal(1, braid.decode(s)())
    end)
  end)

  describe("large decodes and the collector", function()
    -- a large decode lends the collector a credit and pays it back at the
    -- next one (lcodec_dec.c): the collector must still keep up
    local function records(n)
      local recs = {}
      for i = 1, n do recs[i] = {id = i, name = "user" .. i, vals = {i, i * 0.5, true}} end
      return recs
    end

    local function growth_over(msg, rounds, bad)
      collectgarbage()
      local before = collectgarbage("count")
      for _ = 1, rounds do
        braid.decode(msg)
        if bad then assert.is_false(pcall(braid.decode, bad)) end
      end
      return collectgarbage("count") - before
    end

    it("lets dropped values be collected, in both collector modes", function()
      local msg = braid.encode(records(1000)) -- ~300 KB of tables per decode
      local bad = msg:sub(1, -2) -- truncated: raises near the end
      local old = collectgarbage("incremental")
      local inc = growth_over(msg, 300, bad)
      collectgarbage("generational")
      local gen = growth_over(msg, 300, bad)
      collectgarbage(old)
      -- 300 rounds make ~180 MB of garbage; credits never paid back would
      -- keep most of it
      assert.is_true(inc < 32 * 1024, inc)
      assert.is_true(gen < 32 * 1024, gen)
    end)

    it("leaves a stopped collector stopped", function()
      local msg = braid.encode(records(500))
      collectgarbage("stop")
      local r = braid.decode(msg)
      local running = collectgarbage("isrunning")
      collectgarbage("restart")
      assert.is_false(running)
      assert.equal("user500", r[500].name)
    end)

    it("decodes in a finalizer", function()
      local msg, got = braid.encode(records(500)), nil
      setmetatable({}, {__gc = function() got = braid.decode(msg) end})
      collectgarbage()
      collectgarbage()
      assert.equal(500, #got)
      assert.is_true(collectgarbage("isrunning"))
    end)
  end)

  describe("root helpers", function()
    it("has version, cpu_count, monotonic, sleep", function()
      assert.is_string(braid.version)
      assert.is_true(braid.cpu_count() >= 1)
      local t0 = braid.monotonic()
      braid.sleep(0.05)
      local dt = braid.monotonic() - t0
      assert.is_true(dt >= 0.04 and dt < 2, dt)
      assert.has_error(function() braid.sleep(-1) end)
      assert.has_error(function() braid.sleep("x") end)
    end)

    it("reaches submodules as fields", function()
      assert.equal(braid.Error, require("braid").Error)
    end)
  end)
end)
