-- braid.multiprocessing (API.md §5) against CPython's _test_multiprocessing
-- (_TestProcess): both start methods, exit codes, signals, close, the
-- process tree, subclassing; no child is ever left behind (after_each).
local braid = require "braid"
local mp = require "braid.multiprocessing"
local Error = braid.Error

local EXE = os.getenv("BRAID_EXE") or "build/braid"

local function kind_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  if Error.is(err) then return err.kind end
  return tostring(err)
end

local function readfile(name)
  local f = assert(io.open(name, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local tmpfiles = {}
local function tmpname()
  local name = os.tmpname()
  tmpfiles[#tmpfiles + 1] = name
  return name
end

local function no_child_left()
  for _, p in ipairs(mp.active_children()) do
    p:kill()
    p:join()
  end
  assert.are.equal(0, mp._count(), "a child was not reaped")
  assert.is_false(mp._has_children(), "a child process remains")
  for _, name in ipairs(tmpfiles) do os.remove(name) end
  tmpfiles = {}
end

for _, method in ipairs({"spawn", "fork"}) do
  local ctx = mp.get_context(method)

  describe("Process (" .. method .. ")", function()
    after_each(no_child_left)

    it("runs its target with args (nils kept) and exits 0", function()
      local out = tmpname()
      local p = ctx:Process{target = function(path, a, b, c)
        local f = assert(io.open(path, "w"))
        f:write(tostring(a), " ", tostring(b), " ", tostring(c))
        f:close()
      end, args = table.pack(out, 1, nil, "x")}
      assert.is_nil(p.exitcode)
      assert.is_false(p:is_alive())
      assert.is_nil(p.pid)
      p:start()
      assert.is_number(p.pid)
      p:join()
      assert.are.equal(0, p.exitcode)
      assert.is_false(p:is_alive())
      assert.are.equal("1 nil x", readfile(out))
    end)

    it("exitcode is the code given to os.exit, 1 on an uncaught error", function()
      local cases = {{function() os.exit(8) end, 8}, {function() os.exit(true) end, 0},
                     {function() os.exit(false) end, 1}, {function() error({}) end, 1}}
      for _, c in ipairs(cases) do
        local p = ctx:Process{target = c[1]}
        p:start()
        p:join()
        assert.are.equal(c[2], p.exitcode)
      end
    end)

    it("terminate() gives -SIGTERM, kill() -SIGKILL; join(0) returns at once", function()
      for _, case in ipairs({{"terminate", -15}, {"kill", -9}}) do
        local p = ctx:Process{target = function() require("braid").sleep(30) end}
        p:start()
        local t0 = braid.monotonic()
        p:join(0)
        p:join(0.05)
        assert.is_true(p:is_alive())
        assert.is_nil(p.exitcode)
        p[case[1]](p)
        p:join()
        assert.is_true(braid.monotonic() - t0 < 10)
        assert.are.equal(case[2], p.exitcode)
      end
    end)

    it("start twice, join before start, close while alive are errors", function()
      local p = ctx:Process{target = function() require("braid").sleep(30) end}
      assert.are.equal("RuntimeError", kind_of(p.join, p))
      p:start()
      assert.are.equal("RuntimeError", kind_of(p.start, p))
      assert.are.equal("ValueError", kind_of(p.close, p))
      p:kill()
      p:join()
      p:close()
      p:close()
      assert.are.equal("ValueError", kind_of(function() return p.pid end))
      assert.are.equal("ValueError", kind_of(p.is_alive, p))
      assert.are.equal("ValueError", kind_of(p.join, p))
      assert.are.equal("ValueError", kind_of(function() return p.exitcode end))
    end)

    it("knows its name and parent; the main process has none", function()
      assert.is_nil(mp.parent_process())
      assert.are.equal("MainProcess", mp.current_process().name)
      local out = tmpname()
      local p = ctx:Process{name = "worker-7", target = function(path)
        local m = require "braid.multiprocessing"
        local f = assert(io.open(path, "w"))
        f:write(m.current_process().name, " ", m.current_process().pid, " ",
                m.parent_process().pid, " ", tostring(m.parent_process():is_alive()))
        f:close()
      end, args = {out}}
      assert.are.equal("worker-7", p.name)
      p:start()
      p:join()
      assert.are.equal(0, p.exitcode)
      assert.are.equal(("worker-7 %d %d true"):format(p.pid, mp.current_process().pid),
                       readfile(out))
    end)

    it("active_children lists running children only", function()
      local p = ctx:Process{target = function() require("braid").sleep(30) end}
      p:start()
      local list = mp.active_children()
      assert.are.equal(1, #list)
      assert.are.equal(p, list[1])
      p:terminate()
      p:join()
      assert.are.same({}, mp.active_children())
    end)

    it("a subclass overriding run crosses with its fields", function()
      local Worker = mp.Process:extend()
      function Worker:run()
        local f = assert(io.open(self.path, "w"))
        f:write("ran ", self.word)
        f:close()
      end
      local out = tmpname()
      local w = Worker()
      w.path, w.word = out, "subclass"
      if method == "fork" then mp.set_start_method("fork", true) end
      w:start()
      mp.set_start_method(nil, true)
      w:join()
      assert.are.equal(0, w.exitcode)
      assert.are.equal("ran subclass", readfile(out))
    end)

    it("children start grandchildren", function()
      local p = ctx:Process{target = function(m)
        local mp2 = require "braid.multiprocessing"
        local c = mp2.get_context(m):Process{target = function() os.exit(5) end}
        c:start()
        c:join()
        os.exit(c.exitcode + 1)
      end, args = {method}}
      p:start()
      p:join()
      assert.are.equal(6, p.exitcode)
    end)

    it("many short processes, started and joined in turn", function()
      local ps = {}
      for i = 1, 20 do
        ps[i] = ctx:Process{target = function(n) os.exit(n) end, args = {i}}
        ps[i]:start()
      end
      for i = 1, 20 do
        ps[i]:join()
        assert.are.equal(i, ps[i].exitcode)
      end
    end)
  end)
end

describe("multiprocessing", function()
  after_each(no_child_left)

  it("start methods: default spawn, set/get, unknown → ValueError", function()
    assert.are.equal("spawn", mp.get_start_method())
    assert.are.equal("RuntimeError", kind_of(mp.set_start_method, "fork"))
    assert.are.equal("ValueError", kind_of(mp.set_start_method, "forkserver", true))
    assert.are.equal("ValueError", kind_of(mp.get_context, "nope"))
    assert.are.equal("fork", mp.get_context("fork"):get_start_method())
    assert.is_true(mp.cpu_count() >= 1)
  end)

  it("bad arguments are argument errors", function()
    assert.has_error(function() mp.Process(42) end)
    assert.has_error(function() mp.Process{target = 42} end)
    assert.has_error(function() mp.Process{target = print, args = 1} end)
    assert.has_error(function() mp.set_executable(1) end)
  end)

  it("an untransferable argument fails start with a TypeError naming it", function()
    local p = mp.Process{target = print, args = {1, {conn = coroutine.create(print)}}}
    local ok, err = pcall(p.start, p)
    assert.is_false(ok)
    assert.is_true(Error.is(err, "TypeError"))
    assert.matches("args%[%d%]%[2%]%.conn", err.message)
    assert.is_false(p:is_alive())
  end)

  it("set_executable: a missing executable is an OSError at start", function()
    mp.set_executable("/nonexistent/braid")
    local p = mp.Process{target = print}
    local ok, err = pcall(p.start, p)
    mp.set_executable(nil)
    assert.is_false(ok)
    assert.is_true(Error.is(err, "OSError"), tostring(err))
  end)

  it("an uncaught error prints the traceback on the child's stderr", function()
    local script = tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
local mp = require "braid.multiprocessing"
local p = mp.Process{name = "P9", target = function() error("boom in child") end}
p:start() p:join() print("code", p.exitcode)
]])
    f:close()
    local h = io.popen(EXE .. " " .. script .. " 2>&1")
    local out = h:read("a")
    h:close()
    assert.matches("Process P9:", out, 1, true)
    assert.matches("boom in child", out, 1, true)
    assert.matches("stack traceback", out, 1, true)
    assert.matches("code\t1", out, 1, true)
  end)

  it("children die with their parent (SIGKILL leaves no orphan)", function()
    for _, method in ipairs({"spawn", "fork"}) do
      local script = tmpname()
      local f = assert(io.open(script, "w"))
      f:write(([[
local mp = require "braid.multiprocessing"
local p = mp.get_context("%s"):Process{target = function() require("braid").sleep(30) end}
p:start()
io.stdout:write(p.pid, "\n") io.stdout:flush()
os.execute("kill -9 " .. mp.current_process().pid)
]]):format(method))
      f:close()
      local t0 = braid.monotonic()
      -- the pipe reaches EOF only when the orphan, which holds it too, is gone
      local h = io.popen(EXE .. " " .. script)
      local out = h:read("a")
      h:close()
      assert.is_truthy(out:match("^%d+"))
      assert.is_true(braid.monotonic() - t0 < 20, method .. ": the child outlived its parent")
    end
  end)
end)
