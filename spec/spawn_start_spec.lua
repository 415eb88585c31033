-- What a spawned process loads at start (issue 9, spawn speed): libmpi only
-- in processes that require braid.mpi (its C half is the plugin
-- braid_mpi.so), and braid's embedded scripts loaded as bytecode that keeps
-- its debug information (tracebacks name [braid.x]:line).
local mp = require "braid.multiprocessing"
local support = require "spec.support.multiprocessing"

-- 0: this process maps no libmpi; 3: it does; 4: /proc/self/maps unreadable
local function libmpi_mapped()
  local f = io.open("/proc/self/maps")
  if not f then return 4 end
  local maps = f:read("a")
  f:close()
  if not maps:find("libc[.-]") then return 4 end
  return maps:find("libmpi", 1, true) and 3 or 0
end

describe("spawn start", function()
  after_each(support.no_child_left)

  it("a spawned child that uses no MPI does not map libmpi", function()
    for _ = 1, 3 do
      local p = mp.get_context("spawn"):Process{target = function() os.exit(libmpi_mapped()) end}
      p:start()
      p:join()
      assert.are.equal(0, p.exitcode)
    end
  end)

  it("a plain Process's child loads neither braid.multiprocessing nor braid.threading for it", function()
    for _ = 1, 3 do
      local p = mp.get_context("spawn"):Process{target = function(a, b)
        local loaded = package.loaded
        os.exit((loaded["braid.multiprocessing"] and 1 or 0) + (loaded["braid.threading"] and 2 or 0)
                + (a == "x" and b == nil and 0 or 4))
      end, args = {"x", nil, n = 2}}
      p:start()
      p:join()
      assert.are.equal(0, p.exitcode)
    end
  end)

  it("a spawned child starts with no signal blocked, SIGPIPE/INT/TERM/CHLD not ignored, one thread", function()
    -- the braid executable's child starts with all signals blocked (no
    -- posix_spawn) and unblocks them first thing; no thread watches the parent
    for _ = 1, 3 do
      local p = mp.get_context("spawn"):Process{target = function()
        local f = io.open("/proc/self/status")
        if not f then os.exit(0) end
        local st = f:read("a")
        f:close()
        local blk, ign = st:match("SigBlk:%s*(%x+)"), st:match("SigIgn:%s*(%x+)")
        local bits = 0
        for _, sig in ipairs({2, 13, 15, 17}) do bits = bits | (1 << (sig - 1)) end
        local code = tonumber(blk, 16) ~= 0 and 1 or 0
        code = code + ((tonumber(ign, 16) & bits) ~= 0 and 2 or 0)
        code = code + (st:match("Threads:%s*(%d+)") ~= "1" and 4 or 0)
        os.exit(code)
      end}
      p:start()
      p:join()
      assert.are.equal(0, p.exitcode)
    end
  end)

  it("that child's Process is current_process() once the target requires the module", function()
    local out = os.tmpname()
    local p = mp.get_context("spawn"):Process{name = "lazy-1", daemon = true, target = function(path, n)
      local m = require "braid.multiprocessing"
      local me = m.current_process()
      local f = assert(io.open(path, "w"))
      f:write(tostring(getmetatable(me) == m.Process), " ", me.name, " ", tostring(me.daemon), " ",
              me.pid, " ", m.parent_process().pid, " ", tostring(me:is_alive()), " ",
              tostring(m.current_process() == me), " ", tostring(n), " ", tostring(me))
      f:close()
    end, args = {out, 7}}
    p:start()
    p:join()
    local f = assert(io.open(out))
    local got = f:read("a")
    f:close()
    os.remove(out)
    assert.are.equal(0, p.exitcode)
    assert.are.equal(("true lazy-1 true %d %d true true 7 <Process name='lazy-1' started daemon>")
                       :format(p.pid, mp.current_process().pid), got)
  end)

  it("a subclass's child, or one whose target refers to the module, runs as before", function()
    local Worker = mp.Process:extend()
    function Worker:run()
      os.exit(self.name == "sub" and getmetatable(self) == Worker and self.extra == 3 and 0 or 5)
    end
    local w = Worker{name = "sub"}
    w.extra = 3
    w:start()
    w:join()
    assert.are.equal(0, w.exitcode)
    local p = mp.get_context("spawn"):Process{name = "up", target = function()
      os.exit(mp.current_process().name == "up" and getmetatable(mp.current_process()) == mp.Process
              and 0 or 6)
    end}
    p:start()
    p:join()
    assert.are.equal(0, p.exitcode)
  end)

  it("the braid executable does not map libmpi until braid.mpi is required", function()
    local out = support.run_script([[
      require "braid.multiprocessing"
      require "braid.futures"
      local f = assert(io.open("/proc/self/maps"))
      local maps = f:read("a")
      f:close()
      print(maps:find("libmpi", 1, true) and "mapped" or "not mapped")
    ]])
    assert.are.equal("not mapped\n", out)
  end)

  it("embedded scripts keep their debug information (tracebacks name [braid.x]:line)", function()
    local _, tb = xpcall(mp.Process.join, debug.traceback, 42) -- not a Process
    assert.matches("^%[braid%.multiprocessing%]:%d+: bad argument", tb)
    assert.matches("\n%s*%[braid%.multiprocessing%]:%d+: in upvalue 'check_open'", tb)
    local info = debug.getinfo(mp.Process.start, "SL")
    assert.are.equal("=[braid.multiprocessing]", info.source)
    assert.is_true(info.linedefined > 0)
    assert.is_not_nil(next(info.activelines))
  end)
end)

-- The kernel's parent-death signal, which every child asks for, comes when
-- the *thread* that started the child ends (prctl(2)), not the process: a
-- child started from a braid thread must outlive that thread's OS thread.
describe("a child started from a thread", function()
  after_each(support.no_child_left)

  local threading = require "braid.threading"

  local function state(pid) -- "R", "S", ... or "Z" (exited, not reaped); nil: gone
    local f = io.open("/proc/" .. pid .. "/stat")
    if not f then return nil end
    local s = f:read("l"):match("^%d+ %b() (%a)")
    f:close()
    return s
  end

  local function until_true(what, pred) -- polls /proc: nothing to wait on
    local deadline = os.time() + 30
    while not pred() do
      assert(os.time() < deadline, "timed out waiting for " .. what)
      threading.Event():wait(0.02)
    end
  end

  for _, method in ipairs(support.METHODS) do
    it("outlives the OS thread that started it (" .. method .. ")", function()
      local ev = mp.Event()
      local t = threading.Thread{target = function(method, ev)
        local mp = require "braid.multiprocessing"
        local p = mp.get_context(method).Process{target = function(ev) ev:wait(60) end, args = {ev}}
        p:start()
        return p.pid, require("braid.threading").get_native_id()
      end, args = {method, ev}}
      t:start()
      local pid, tid = t:result()
      -- a finished thread's OS thread idles in the pool, then ends (2 s)
      until_true("the starting OS thread to end", function()
        local f = io.open("/proc/self/task/" .. tid)
        if f then f:close() end
        return f == nil
      end)
      local s = state(pid)
      assert.is_truthy(s)
      assert.are_not.equal("Z", s, "the child died with the thread that started it")
      ev:set()
      until_true("the child to exit", function()
        mp.active_children() -- reaps the children that have exited
        return mp._count() == 0
      end)
    end)
  end

  it("ctx.Process{...} works as ctx:Process{...} does", function()
    local ctx = mp.get_context("spawn")
    local p = ctx.Process{target = function(n) os.exit(n) end, args = {7}}
    p:start()
    p:join()
    assert.are.equal(7, p.exitcode)
    local q = ctx.Queue()
    q:put("x")
    assert.are.equal("x", ctx:Queue() and q:get())
    assert.are.equal("spawn", ctx.get_start_method())
  end)
end)
