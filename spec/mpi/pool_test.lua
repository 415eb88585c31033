-- Run by tools/mpi_test.sh: mpiexec -n 3 braid -m braid.mpi spec/mpi/pool_test.lua
-- Rank 0 runs this; ranks 1 and 2 serve it. Prints "ok <name>" per check.
local braid = require "braid"
local futures = require "braid.futures"
local mpi = require "braid.mpi"

local function check(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  print((ok and "ok " or "FAIL ") .. name .. (ok and "" or ": " .. tostring(err)))
  if not ok then os.exit(1) end
end

assert(arg[0]:match("pool_test%.lua$") and arg[1] == "an-arg", "script arguments")
assert(mpi.COMM_WORLD.rank == 0 and mpi.COMM_WORLD.size == 3)

local ex <close> = futures.MPIPoolExecutor{}
assert(require("braid.mpi").PoolExecutor ~= nil)

check("submit", function()
  local f = ex:submit(function(a, b) return a + b, a * b end, 6, 7)
  local s, p = f:result()
  assert(s == 13 and p == 42)
  assert(f:done() and not f:cancelled())
end)

check("submit runs on the worker ranks", function()
  local seen = {}
  local fs = {}
  for i = 1, 40 do
    fs[i] = ex:submit(function() return require("braid.mpi").COMM_WORLD.rank end)
  end
  for _, f in ipairs(fs) do seen[f:result()] = true end
  assert(not seen[0] and (seen[1] or seen[2]))
end)

check("map keeps input order (chunksize 1 and 7)", function()
  for _, cs in ipairs({1, 7}) do
    local out = {}
    for v in ex:map(function(x) return x * x end, (function()
      local t = {} for i = 1, 100 do t[i] = i end return t end)(), {chunksize = cs}) do
      out[#out + 1] = v
    end
    assert(#out == 100)
    for i = 1, 100 do assert(out[i] == i * i, "item " .. i) end
  end
end)

check("chunked map: several results, nil results and holes", function()
  local it = ex:map(function(x) if x == 2 then return nil end if x == 3 then return x, "three" end return x end,
    {1, 2, 3, 4, n = 4}, {chunksize = 3})
  assert(it() == 1)
  local a, b = it()
  assert(a == nil and b == nil)
  a, b = it()
  assert(a == 3 and b == "three")
  assert(it() == 4)
  assert(select("#", it()) == 0)
  local holes = {}
  local h = ex:map(function(x) return x end, {10, nil, 30, n = 3}, {chunksize = 2})
  for i = 1, 3 do holes[i] = tostring(h()) end
  assert(table.concat(holes, ",") == "10,nil,30", table.concat(holes, ","))
end)

check("map with two iterables and a timeout", function()
  local out = {}
  for v in ex:map(function(a, b) return a .. b end, {"a", "b", "c"}, {"x", "y", "z"}, {timeout = 60}) do
    out[#out + 1] = v
  end
  assert(table.concat(out, ",") == "ax,by,cz")
end)

check("map timeout raises Timeout", function()
  local it = ex:map(function() local t = braid.monotonic() + 2 while braid.monotonic() < t do end end,
    {1}, {timeout = 0.05})
  local ok, e = pcall(it)
  assert(not ok and braid.Error.is(e, "Timeout"), tostring(e))
end)

check("as_completed and wait", function()
  local fs = {}
  for i = 1, 20 do fs[i] = ex:submit(function(i) return i end, i) end
  local sum = 0
  for f in futures.as_completed(fs, 60) do sum = sum + f:result() end
  assert(sum == 210)
  local gs = {}
  for i = 1, 10 do gs[i] = ex:submit(function(i) return -i end, i) end
  local done, not_done = futures.wait(gs, {timeout = 60})
  local n = 0
  for _ in pairs(done) do n = n + 1 end
  assert(n == 10 and next(not_done) == nil)
end)

check("callbacks run in rank 0's state", function()
  local got
  local f = ex:submit(function() return "cb" end)
  f:add_done_callback(function(g) got = g:result() end)
  futures.wait({f})
  f:result()
  assert(got == "cb")
end)

check("an error in a worker carries the remote traceback and rank", function()
  local f = ex:submit(function() error("boom on a worker") end)
  local ok, e = pcall(f.result, f)
  assert(not ok and tostring(e):match("boom on a worker"), tostring(e))
  local tb = braid.traceback(e)
  assert(tb and tb:match("^%[MPI rank [12]%]"), tostring(tb))
  assert(f:exception() ~= nil)
  local e2 = ex:submit(function() error(braid.Error.new("ValueError", "bad")) end):exception()
  assert(braid.Error.is(e2, "ValueError"))
end)

check("a map whose item fails raises at that item", function()
  local it = ex:map(function(x) if x == 3 then error("three") end return x end, {1, 2, 3, 4}, {chunksize = 2})
  assert(it() == 1 and it() == 2)
  local ok, e = pcall(it)
  assert(not ok and tostring(e):match("three"))
end)

check("large values: a 10 MB table both ways", function()
  local big = {}
  for i = 1, 1250000 do big[i] = i + 0.5 end -- 1.25M floats = 10 MB of doubles
  local f = ex:submit(function(t)
    local s = 0
    for i = 1, #t do s = s + t[i] end
    local back = {}
    for i = 1, #t do back[i] = t[i] * 2 end
    return s, back
  end, big)
  local s, back = f:result()
  assert(s == 1250000 * 1250001 / 2 + 625000)
  assert(#back == 1250000 and back[1250000] == 2500001)
end)

check("functions with upvalues and module references", function()
  local base, tbl = 100, {k = 5}
  local function add(x) return x + base + tbl.k end
  local strings = string
  local f = ex:submit(function(x)
    return add(x), strings.rep("a", 3), math.floor(2.5), require("braid.mpi").COMM_WORLD.size
  end, 1)
  local a, r, fl, sz = f:result()
  assert(a == 106 and r == "aaa" and fl == 2 and sz == 3)
end)

check("braid objects cannot cross ranks", function()
  local q = require("braid.queue").Queue()
  local ok, e = pcall(ex.submit, ex, function(q) return q end, q)
  assert(not ok and braid.Error.is(e, "TypeError") and tostring(e):match("cannot cross MPI"), tostring(e))
end)

check("max_workers limits the ranks used", function()
  local one <close> = futures.MPIPoolExecutor{max_workers = 1}
  for i = 1, 10 do
    assert(one:submit(function() return require("braid.mpi").COMM_WORLD.rank end):result() == 1)
  end
end)

check("shutdown: cancel_futures, then submit raises", function()
  local e2 = futures.MPIPoolExecutor{}
  local fs = {}
  for i = 1, 50 do
    fs[i] = e2:submit(function() local t = braid.monotonic() + 0.01 while braid.monotonic() < t do end return 1 end)
  end
  e2:shutdown(true, true)
  local cancelled, finished = 0, 0
  for _, f in ipairs(fs) do
    assert(f:done())
    if f:cancelled() then cancelled = cancelled + 1 else finished = finished + 1 end
  end
  assert(cancelled > 0 and cancelled + finished == 50)
  local ok, e = pcall(e2.submit, e2, print)
  assert(not ok and tostring(e):match("after shutdown"))
end)

check("with returns fn's results and shuts down on every path", function()
  local e3 = futures.MPIPoolExecutor{}
  local a, b = e3:with(function(e, x) return e:submit(function(v) return v * 2 end, x):result(), "x" end, 21)
  assert(a == 42 and b == "x")
  assert(not pcall(e3.submit, e3, print))
  local e4 = futures.MPIPoolExecutor{}
  local ok, err = pcall(e4.with, e4, function() error("boom", 0) end)
  assert(not ok and err == "boom")
  assert(not pcall(e4.submit, e4, print))
end)

check("bad arguments", function()
  assert(not pcall(ex.submit, ex, 42))
  local ok, e = pcall(futures.MPIPoolExecutor, {max_workers = 0})
  assert(not ok and braid.Error.is(e, "ValueError"))
  ok, e = pcall(mpi.COMM_WORLD.send, mpi.COMM_WORLD, 1, 99)
  assert(not ok and tostring(e):match("rank out of range"))
end)

print("pool_test done")
