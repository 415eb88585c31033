-- braid.multiprocessing (API.md §5) against CPython's _test_multiprocessing
-- (_TestProcess): both start methods, exit codes, signals, close, the
-- process tree, subclassing; no child is ever left behind (after_each).
local braid = require "braid"
local mp = require "braid.multiprocessing"
local Error = braid.Error

local support = require "spec.support.multiprocessing"
local EXE, TSAN, METHODS, kind_of = support.EXE, support.TSAN, support.METHODS, support.kind_of
-- busted's process has other specs' idle threads: the fork warning is noise here
mp.fork_warning = false

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
  support.no_child_left()
  for _, name in ipairs(tmpfiles) do os.remove(name) end
  tmpfiles = {}
end

for _, method in ipairs(METHODS) do
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
      if TSAN and method == "fork" then return end
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

  -- CPython's test_threading ThreadJoinOnShutdown / test_enumerate_after_join
  -- after fork: the child holds only the thread that forked
  it("a fork child has only the forking thread: the parent's are not alive there, new ones run", function()
    if TSAN then return end -- TSan cannot start threads in a child of a threaded process
    local threading = require "braid.threading"
    -- idle workers parked in this process (a start in the child must not go to them)
    for _ = 1, 3 do
      local ts = {}
      for i = 1, 4 do
        ts[i] = threading.Thread{target = function() end}
        ts[i]:start()
      end
      for i = 1, 4 do ts[i]:join() end
      local ev = threading.Event()
      local parked = threading.Thread{name = "parked", target = function(e) e:wait() end, args = {ev}}
      parked:start()
      local p = mp.get_context("fork"):Process{target = function(parked)
        local names = {}
        for _, t in ipairs(threading.enumerate()) do names[#names + 1] = t.name end
        if #names ~= 1 or threading.active_count() ~= 1 or parked:is_alive() then
          io.stderr:write("child sees ", table.concat(names, ","), "\n")
          os.exit(3)
        end
        parked:join() -- not alive here: returns at once
        local t = threading.Thread{target = function() return 42 end}
        t:start()
        t:join(30)
        os.exit(t:is_alive() and 4 or 0)
      end, args = {parked}}
      p:start()
      p:join(60)
      ev:set()
      parked:join()
      assert.are.equal(0, p.exitcode)
    end
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
    for _, method in ipairs(METHODS) do
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

local function elapsed(fn)
  local t0 = braid.monotonic()
  local r = table.pack(fn())
  return braid.monotonic() - t0, table.unpack(r, 1, r.n)
end

local function shm_listing()
  local h = io.popen("ls -a /dev/shm 2>/dev/null")
  local s = h:read("a")
  h:close()
  return s
end

for _, method in ipairs(METHODS) do
  local ctx = mp.get_context(method)
  local function run(fn, ...)
    local p = ctx:Process{target = fn, args = table.pack(...)}
    p:start()
    return p
  end

  describe("shared objects across processes (" .. method .. ")", function()
    -- other programs on the machine use /dev/shm too: only names of ours count
    after_each(function()
      no_child_left()
      assert.is_nil(shm_listing():match("braid"), "something was left in /dev/shm")
    end)

    it("Lock: held in a child, acquire(false) is false here; a dead holder → owner died", function()
      local lock, ev = mp.Lock(), mp.Event()
      local p = run(function(l, e)
        l:acquire()
        e:set()
        require("braid").sleep(30)
      end, lock, ev)
      assert.is_true(ev:wait(10))
      assert.is_false(lock:acquire(false))
      local t = elapsed(function() assert.is_false(lock:acquire(true, 0.2)) end)
      assert.is_true(t >= 0.15)
      p:kill()
      p:join()
      local ok, why = lock:acquire(true, 10)
      assert.is_true(ok)
      assert.are.equal("owner died", why)
      lock:release()
      assert.is_true(lock:acquire(false))
      lock:release()
      assert.are.equal("ValueError", kind_of(lock.release, lock))
    end)

    it("Value and Array written by a child are seen here; Array(n) is zeroed", function()
      local v, a, z = mp.Value("i", 7), mp.Array("d", {1, 2, 3}), mp.Array("q", 4)
      assert.are.same({0, 0, 0, 0}, z:totable())
      local p = run(function(v, a)
        local _ <close> = v:get_lock():guard()
        v.value = v.value * 6
        a[3] = a[1] + a[2] + 0.5
      end, v, a)
      p:join()
      assert.are.equal(0, p.exitcode)
      assert.are.equal(42, v.value)
      assert.are.same({1, 2, 3.5}, a:totable())
      assert.are.equal(3, #a)
      assert.are.equal(v:get_lock(), v:get_lock())
    end)

    it("many processes increment one Value under its lock", function()
      local v = mp.Value("q", 0)
      local ps = {}
      for i = 1, 4 do
        ps[i] = run(function(v)
          for _ = 1, 500 do
            local l = v:get_lock()
            l:acquire()
            v.value = v.value + 1
            l:release()
          end
        end, v)
      end
      for _, p in ipairs(ps) do p:join() end
      assert.are.equal(2000, v.value)
    end)

    it("Event set in a child wakes the parent; Semaphore passes across", function()
      local ev, sem = mp.Event(), mp.Semaphore(0)
      local p = run(function(e, s)
        s:acquire()
        e:set()
      end, ev, sem)
      assert.is_false(ev:wait(0.05))
      sem:release()
      assert.is_true(ev:wait(10))
      p:join()
      assert.are.equal(0, p.exitcode)
    end)

    it("Condition: notify wakes a waiting child", function()
      local cond, ready = mp.Condition(), mp.Value("i", 0)
      local p = run(function(c, r)
        c:acquire()
        r.value = 1
        local ok = c:wait_for(function() return r.value == 2 end, 10)
        c:release()
        os.exit(ok and 0 or 3)
      end, cond, ready)
      -- wait until the child is waiting
      local t0 = braid.monotonic()
      while ready.value ~= 1 and braid.monotonic() - t0 < 10 do braid.sleep(0.001) end
      cond:acquire()
      ready.value = 2
      cond:notify_all()
      cond:release()
      p:join()
      assert.are.equal(0, p.exitcode)
    end)

    it("Barrier: 3 processes pass in lockstep", function()
      local b, log = mp.Barrier(3), mp.Array("i", 30)
      local ps = {}
      for i = 1, 2 do
        -- each child its own slot of round r: an increment of one shared
        -- slot by two processes is not atomic, and lost one under TSan
        ps[i] = run(function(b, log, i)
          for r = 1, 10 do
            b:wait(10)
            log[(i - 1) * 10 + r] = log[(i - 1) * 10 + r] + 1
            b:wait(10)
          end
        end, b, log, i)
      end
      for r = 1, 10 do
        b:wait(10)
        b:wait(10)
        assert.are.same({1, 1}, {log[r], log[10 + r]}) -- both children did round r, once
      end
      for _, p in ipairs(ps) do p:join(); assert.are.equal(0, p.exitcode) end
      assert.is_false(b.broken)
    end)

    it("Pipe: values both ways, 16 MiB intact, EOF when the peer is gone", function()
      local a, b = mp.Pipe()
      local p = run(function(conn)
        local v = conn:recv()
        conn:send({echo = v, big = string.rep("x", 16 * 1024 * 1024)})
        conn:close()
      end, b)
      b:close()
      assert.is_false(a:poll())
      local t = elapsed(function() assert.is_false(a:poll(0.1)) end)
      assert.is_true(t >= 0.08)
      a:send({1, nil, "two", n = 3})
      local r = a:recv()
      assert.are.same({1, nil, "two", n = 3}, r.echo)
      assert.are.equal(16 * 1024 * 1024, #r.big)
      p:join()
      local ok, err = pcall(a.recv, a)
      assert.is_false(ok)
      assert.is_true(Error.is(err, "EOFError"), tostring(err))
    end)

    it("Queue: items from parent and child arrive in per-producer order", function()
      local q = mp.Queue()
      local p = run(function(q)
        for i = 1, 200 do q:put({"child", i}) end
      end, q)
      local last = {child = 0, parent = 0}
      local function take()
        local item = q:get(true, 10)
        assert.are.equal(last[item[1]] + 1, item[2])
        last[item[1]] = item[2]
      end
      for i = 1, 200 do
        q:put({"parent", i})
        take()
      end
      for _ = 1, 200 do take() end
      p:join()
      assert.is_true(q:empty())
      assert.are.equal("Empty", kind_of(q.get, q, false))
      assert.are.equal("Empty", kind_of(q.get, q, true, 0.05))
    end)

    it("Queue:put never waits for a slow reader (the feeder thread); all arrive in order", function()
      local q = mp.Queue()
      local chunk = string.rep("x", 64 * 1024)
      -- 8 MiB put with nobody reading: far past what the socket holds
      local t, _ = elapsed(function()
        for i = 1, 128 do q:put(chunk .. i) end
      end)
      assert.is_true(t < 5, "put waited for the reader: " .. t)
      assert.are.equal(128, q:qsize())
      -- a child that puts too and exits at once: its feeder finishes first
      local p = run(function(q, chunk)
        for i = 1, 64 do q:put({i, chunk}) end
      end, q, chunk)
      local nparent, nchild = 0, 0 -- the producers interleave, each in order
      for _ = 1, 128 + 64 do
        local item = q:get(true, 30)
        if type(item) == "string" then
          nparent = nparent + 1
          assert.are.equal(chunk .. nparent, item)
        else
          nchild = nchild + 1
          assert.are.equal(nchild, item[1])
          assert.are.equal(#chunk, #item[2])
        end
      end
      assert.are.equal(128, nparent)
      p:join()
      assert.are.equal(0, p.exitcode)
      q:put("last")
      q:join_thread() -- written through
      assert.are.equal("last", q:get(false))
    end)

    it("Queue: cancel_join_thread lets a child exit with items nobody reads", function()
      local q = mp.Queue()
      local p = run(function(q)
        q:cancel_join_thread()
        local chunk = string.rep("y", 64 * 1024)
        for _ = 1, 64 do q:put(chunk) end
      end, q)
      p:join(30)
      assert.is_false(p:is_alive())
      assert.are.equal(0, p.exitcode)
    end)

    it("objects made after the child started reach it through a Queue", function()
      local q, back = mp.Queue(), mp.Queue()
      local p = run(function(q, back)
        local l = q:get()
        l:acquire()
        back:put("held")
        local v = q:get()
        v.value = 99
        back:put("set")
      end, q, back)
      local lock = mp.Lock()
      q:put(lock)
      assert.are.equal("held", back:get(true, 10))
      assert.is_false(lock:acquire(false))
      local v = mp.Value("i", 0)
      q:put(v)
      assert.are.equal("set", back:get(true, 10))
      assert.are.equal(99, v.value)
      p:join()
      assert.are.equal(0, p.exitcode)
    end)

    it("JoinableQueue: join returns once every item is task_done", function()
      local q, out = mp.JoinableQueue(), mp.Value("q", 0)
      local p = run(function(q, out)
        for _ = 1, 50 do
          out.value = out.value + q:get()
          q:task_done()
        end
      end, q, out)
      for i = 1, 50 do q:put(i) end
      assert.is_true(q:join(10))
      assert.are.equal(1275, out.value)
      p:join()
      assert.are.equal("ValueError", kind_of(q.task_done, q))
    end)
  end)
end

describe("shared objects", function()
  after_each(no_child_left)

  it("Queue: an item that cannot cross fails that put with a TypeError; the queue carries on", function()
    local q = mp.Queue()
    local err = select(2, pcall(q.put, q, {lock = require("braid.threading").Lock()}))
    assert.is_true(Error.is(err, "TypeError"), tostring(err))
    assert.matches("braid.Lock", err.message, 1, true)
    assert.are.equal("TypeError", kind_of(q.put, q, coroutine.create(print)))
    assert.are.equal(0, q:qsize())
    q:put("fine")
    assert.are.equal("fine", q:get(true, 5))
  end)

  it("Queue(maxsize): Full, qsize, closed queue", function()
    local q = mp.Queue(2)
    q:put(1)
    q:put_nowait(2)
    assert.is_true(q:full())
    assert.are.equal(2, q:qsize())
    assert.are.equal("Full", kind_of(q.put, q, 3, false))
    local t = elapsed(function() assert.are.equal("Full", kind_of(q.put, q, 3, true, 0.1)) end)
    assert.is_true(t >= 0.08)
    assert.are.equal(1, q:get())
    assert.are.equal(2, q:get_nowait())
    q:put(nil)
    assert.is_nil(q:get())
    q:close()
    assert.are.equal("ValueError", kind_of(q.put, q, 1))
    local s = mp.SimpleQueue()
    s:put("a")
    assert.are.equal("a", s:get())
    assert.is_true(s:empty())
  end)

  it("Lock, RLock, Semaphore keep Python's rules", function()
    local r = mp.RLock()
    r:acquire(); r:acquire()
    assert.is_true(r:_is_owned())
    r:release(); r:release()
    assert.are.equal("RuntimeError", kind_of(r.release, r))
    local s = mp.Semaphore(2)
    assert.is_true(s:acquire(false))
    assert.is_true(s:acquire(false))
    assert.is_false(s:acquire(false))
    local t = elapsed(function() assert.is_false(s:acquire(true, 0.1)) end)
    assert.is_true(t >= 0.08)
    s:release(2)
    assert.are.equal(2, s:get_value())
    assert.are.equal("ValueError", kind_of(mp.Semaphore, -1))
    local b = mp.BoundedSemaphore(1)
    assert.are.equal("ValueError", kind_of(b.release, b))
    local l = mp.Lock()
    do
      local _ <close> = l:guard()
      assert.is_true(l:locked())
    end
    assert.is_false(l:locked())
    assert.are.equal(5, l:with(function(ok, x) assert.is_true(ok) return x end, 5))
  end)

  it("a Value read while another thread writes it sees old or new, never a torn value", function()
    -- (the sanitizer stage fails this if an element access is a data race)
    local threading = require "braid.threading"
    for _, case in ipairs{{"q", 0, -1}, {"d", 0.5, -2.25}, {"i", 7, -8}, {"c", "a", "z"}} do
      local tc, a, b = case[1], case[2], case[3]
      local v, go, stop = mp.Value(tc, a), threading.Event(), threading.Event()
      local t = threading.Thread{target = function(v, go, stop, a, b)
        go:set()
        local n = 0
        while not stop:is_set() or n < 1000 do
          v.value = n % 2 == 0 and b or a
          n = n + 1
        end
      end, args = {v, go, stop, a, b}}
      t:start()
      go:wait()
      for _ = 1, 2000 do
        local x = v.value
        assert(x == a or x == b, tostring(x))
      end
      stop:set()
      t:join()
    end
  end)

  it("Value/Array check typecodes, ranges and indexes", function()
    assert.are.equal("TypeError", kind_of(mp.Value, "z", 1))
    assert.are.equal("ValueError", kind_of(mp.Value, "b", 200))
    assert.are.equal("TypeError", kind_of(mp.Value, "i", 1.5))
    local a = mp.Array("B", "abc")
    assert.are.equal(98, a[2])
    assert.are.equal("IndexError", kind_of(function() return a[4] end))
    assert.are.equal("IndexError", kind_of(function() a[0] = 1 end))
    local c = mp.Value("c", "x")
    assert.are.equal("x", c.value)
    local d = mp.Value("d")
    assert.are.equal(0, d.value)
    d.value = 2.5
    assert.are.equal(2.5, d.value)
    assert.are.equal("d", d.typecode)
  end)

  it("Pipe(false) is one-way; a closed connection is an OSError", function()
    local r, w = mp.Pipe(false)
    assert.are.equal("OSError", kind_of(r.send, r, 1))
    assert.are.equal("OSError", kind_of(w.recv, w))
    w:send(5)
    assert.are.equal(5, r:recv())
    w:close()
    assert.is_true(w:closed())
    assert.are.equal("OSError", kind_of(w.send, w, 1))
    assert.are.equal("EOFError", kind_of(r.recv, r))
  end)

  it("a threading object cannot cross to a spawned process: TypeError", function()
    local threading = require "braid.threading"
    local p = mp.Process{target = print, args = {threading.Lock()}}
    local ok, err = pcall(p.start, p)
    assert.is_false(ok)
    assert.is_true(Error.is(err, "TypeError"), tostring(err))
    assert.matches("cannot cross to another process", err.message)
    local r, w = mp.Pipe()
    assert.are.equal("TypeError", kind_of(w.send, w, {threading.Event()}))
  end)
end)
