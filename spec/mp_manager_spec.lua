-- braid.multiprocessing.Manager against CPython's _TestContainers and
-- TestSyncManagerTypes: proxies shared by processes of both start
-- methods, the key challenge, and cleanup (no socket directory, no child).
local braid = require "braid"
local mp = require "braid.multiprocessing"
local Error = braid.Error

local support = require "spec.support.multiprocessing"
local METHODS, kind_of, no_child_left = support.METHODS, support.kind_of, support.no_child_left
mp.fork_warning = false

local function exists(path)
  return os.execute("test -e '" .. path .. "'") == true
end

local function run_all(ctx, n, fn, ...)
  local ps = {}
  for i = 1, n do
    ps[i] = ctx:Process{target = fn, args = table.pack(i, ...)}
    ps[i]:start()
  end
  for i = 1, n do
    ps[i]:join()
    assert.are.equal(0, ps[i].exitcode)
  end
end

for _, method in ipairs(METHODS) do
  local ctx = mp.get_context(method)

  describe("Manager (" .. method .. " clients)", function()
    local m
    before_each(function() m = mp.Manager() end)
    after_each(function()
      local dir = m._dir
      m:shutdown()
      assert.is_false(exists(dir), "the socket directory remains")
      no_child_left()
    end)

    it("shares a dict updated from several processes", function()
      local d, lock = m:dict{start = true}, m:Lock()
      run_all(ctx, 4, function(i, d, lock)
        for j = 1, 25 do
          d[("p%d-%d"):format(i, j)] = i * j
        end
        local _ <close> = lock:guard()
        d.total = (d.total or 0) + i
      end, d, lock)
      assert.are.equal(4 * 25 + 2, #d)
      assert.are.equal(10, d.total)
      assert.are.equal(3 * 7, d["p3-7"])
      local copy = d:copy()
      assert.is_true(copy.start)
      local n = 0
      for _ in pairs(d) do n = n + 1 end
      assert.are.equal(#d, n)
    end)

    it("shares a list, a Namespace, a Queue and an Event", function()
      local l, ns, q, ev = m:list(), m:Namespace(), m:Queue(), m:Event()
      ns.count = 0
      run_all(ctx, 3, function(i, l, ns, q, ev)
        l:append(i)
        q:put({from = i})
        if i == 3 then
          ns.last = "three"
          ev:set()
        end
      end, l, ns, q, ev)
      assert.is_true(ev:is_set())
      assert.is_true(ev:wait(0))
      assert.are.equal(3, #l)
      local got = l:copy()
      table.sort(got)
      assert.are.same({1, 2, 3}, got)
      assert.are.equal("three", ns.last)
      assert.are.equal(0, ns.count)
      local froms = {}
      for _ = 1, 3 do froms[#froms + 1] = q:get(true, 5).from end
      table.sort(froms)
      assert.are.same({1, 2, 3}, froms)
      assert.are.equal("Empty", kind_of(q.get, q, true, 0.05))
    end)

    it("lets a Lock acquired in a child be released in the parent", function()
      local lock = m:Lock()
      run_all(ctx, 1, function(_, lock) assert(lock:acquire()) end, lock)
      assert.is_false(lock:acquire(false))
      lock:release()
      assert.is_true(lock:acquire(true, 1))
      lock:release()
    end)

    it("wakes a parent waiting on a manager Event set by a child", function()
      local ev = m:Event()
      local p = ctx:Process{target = function(ev) ev:set() end, args = {ev}}
      p:start()
      assert.is_true(ev:wait(10))
      p:join()
    end)
  end)
end

describe("Manager proxies", function()
  local m
  setup(function() m = mp.Manager() end)
  teardown(function() m:shutdown() end)
  after_each(function()
    for _, p in ipairs(mp.active_children()) do
      assert.are.equal(m:get_process(), p, "only the manager may be running")
    end
  end)

  it("dict: items, get/pop/setdefault/update/keys/values/items/clear", function()
    local d = m:dict()
    d.a, d[1], d[true] = 1, "one", false
    assert.are.equal(3, #d)
    assert.is_nil(d.missing)
    assert.are.equal(7, d:get("missing", 7))
    assert.is_true(d:contains("a"))
    assert.are.equal(1, d:pop("a"))
    assert.are.equal("KeyError", kind_of(d.pop, d, "a"))
    assert.are.equal("dflt", d:pop("a", "dflt"))
    assert.are.equal(5, d:setdefault("s", 5))
    assert.are.equal(5, d:setdefault("s", 6))
    d:update{x = 1, y = 2}
    local keys = d:keys()
    assert.are.equal(#d, #keys)
    assert.are.equal(#d, #d:values())
    for _, kv in ipairs(d:items()) do assert.are.equal(d[kv[1]], kv[2]) end
    d.x = nil
    assert.is_nil(d.x)
    d:clear()
    assert.are.equal(0, #d)
    assert.are.equal("KeyError", kind_of(d.popitem, d))
    assert.are.equal("TypeError", kind_of(d.update, d, 5))
  end)

  it("list: indexing from both ends, append/extend/insert/pop/remove/index/count/sort", function()
    local l = m:list{3, 1, 2}
    assert.are.equal(3, #l)
    assert.are.equal(3, l[1])
    assert.are.equal(2, l[-1])
    assert.is_nil(l[4])
    l[2] = 10
    assert.are.same({3, 10, 2}, l:copy())
    assert.are.equal("IndexError", kind_of(function() l[4] = 1 end))
    l:extend{4, 5}
    l:insert(1, 0)
    l:insert(-1, 99)
    l:insert(100, 7)
    assert.are.same({0, 3, 10, 2, 4, 99, 5, 7}, l:copy())
    assert.are.equal(7, l:pop())
    assert.are.equal(0, l:pop(1))
    assert.are.equal(99, l:pop(-2))
    l:remove(10)
    assert.are.equal("ValueError", kind_of(l.remove, l, 10))
    assert.are.equal(2, l:index(2))
    l:append(3)
    assert.are.equal(2, l:count(3))
    l:sort()
    assert.are.same({2, 3, 3, 4, 5}, l:copy())
    l:sort(function(a, b) return a > b end)
    assert.are.same({5, 4, 3, 3, 2}, l:copy())
    l:reverse()
    assert.are.equal(2, l[1])
    local seen = {}
    for i, v in pairs(l) do seen[i] = v end
    assert.are.same(l:copy(), seen)
    l:clear()
    assert.are.equal("IndexError", kind_of(l.pop, l))
    assert.are.equal("ValueError", kind_of(l.append, l, nil))
  end)

  it("Queue: put/get with timeouts, maxsize, task_done/join", function()
    local q = m:Queue(1)
    q:put("a")
    assert.is_true(q:full())
    local t0 = braid.monotonic()
    assert.are.equal("Full", kind_of(q.put, q, "b", true, 0.1))
    assert.is_true(braid.monotonic() - t0 >= 0.06)
    assert.are.equal(1, q:qsize())
    assert.are.equal("a", q:get_nowait())
    assert.is_true(q:empty())
    assert.are.equal("Empty", kind_of(q.get_nowait, q))
    q:put(nil)
    assert.is_nil(q:get())
    q:task_done()
    q:task_done()
    q:join()
    assert.are.equal("ValueError", kind_of(q.task_done, q))
  end)

  it("Lock, RLock, Semaphore, Condition, Barrier", function()
    local lock = m:Lock()
    assert.is_true(lock:with(function(ok) return ok end))
    assert.is_false(lock:locked())
    do
      local _ <close> = lock:guard()
      assert.is_true(lock:locked())
    end
    assert.is_false(lock:locked())
    assert.are.equal("RuntimeError", kind_of(lock.release, lock))
    local r = m:RLock()
    assert.is_true(r:acquire())
    assert.is_true(r:acquire())
    r:release()
    r:release()
    local s = m:Semaphore(1)
    assert.is_true(s:acquire())
    assert.is_false(s:acquire(true, 0.02))
    s:release()
    local cond = m:Condition()
    cond:acquire()
    assert.is_false(cond:wait(0.02))
    assert.are.equal(5, cond:wait_for(function() return 5 end, 0.1))
    cond:release()
    local b = m:Barrier(1)
    assert.are.equal(0, b:wait())
    assert.are.equal(1, b.parties)
  end)

  it("Namespace attributes and its tostring", function()
    local ns = m:Namespace()
    ns.b, ns.a = 2, "x"
    assert.are.equal(2, ns.b)
    assert.is_nil(ns.c)
    assert.are.equal("Namespace(a=x, b=2)", tostring(ns))
    ns.b = nil
    assert.are.equal("Namespace(a=x)", tostring(ns))
  end)

  it("raises the manager's errors in the caller; the connection carries on", function()
    local d = m:dict()
    local err = select(2, pcall(function() d[{}] = 1 end))
    assert.is_true(Error.is(err, "TypeError"), tostring(err))
    local ok, e2 = pcall(function() d[nil] = 1 end)
    assert.is_false(ok)
    assert.are.equal("TypeError", kind_of(function() return m:list{1}[{}] end))
    d.ok = 1
    assert.are.equal(1, d.ok)
    assert.is_truthy(e2)
  end)

  it("an argument that cannot cross fails that call only", function()
    local d = m:dict()
    local co = coroutine.create(function() end)
    assert.are.equal("TypeError", kind_of(function() d.co = co end))
    d.fine = 1
    assert.are.equal(1, d.fine)
  end)

  it("proxies inside manager containers stay proxies", function()
    local d, inner = m:dict(), m:list{1}
    d.inner = inner
    d.inner:append(2)
    assert.are.same({1, 2}, inner:copy())
  end)

  it("refuses a client without the key; the manager keeps serving", function()
    local d = m:dict()
    local ok, err = pcall(mp.managers._connect, m.address, string.rep("k", 32))
    assert.is_false(ok)
    assert.are.equal("AuthenticationError", err.kind)
    -- a client that sends garbage instead of the digest
    local raw = mp._mgr_connect(m.address)
    assert.is_true(raw:poll(5))
    raw:send(string.rep("x", 100))
    local rok = pcall(raw.recv, raw)
    assert.is_false(rok)
    raw:close()
    -- one that connects and goes away at once
    mp._mgr_connect(m.address):close()
    d.still = "serving"
    assert.are.equal("serving", d.still)
    assert.is_true(m:get_process():is_alive())
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() mp.Manager(5) end)
    assert.are.equal("TypeError", kind_of(m.dict, m, 5))
    assert.are.equal("TypeError", kind_of(function() local l = m:list{1}; return l.x end))
    assert.are.equal("ValueError", kind_of(m.list, m, {1, nil, 3, n = 3}))
    assert.are.equal("ValueError", kind_of(m.Barrier, m, 0))
  end)
end)

describe("Manager lifetime", function()
  after_each(no_child_left)

  it("works as a to-be-closed value and refuses use after shutdown", function()
    local dir, d
    do
      local m <close> = mp.Manager()
      dir = m._dir
      d = m:dict()
      d.x = 1
      assert.is_true(exists(dir))
    end
    assert.is_false(exists(dir))
    assert.are.equal("ConnectionError", kind_of(function() return d.x end))
    local m = mp.Manager()
    m:shutdown()
    m:shutdown()
    assert.are.equal("ValueError", kind_of(m.dict, m))
  end)

  it("proxies reach pool workers; a terminated manager removes its directory", function()
    local futures = require "braid.futures"
    local m = mp.Manager()
    local d = m:dict()
    do
      local ex <close> = futures.ProcessPoolExecutor(2)
      local fs = {}
      for i = 1, 6 do
        fs[i] = ex:submit(function(d, i) d[i] = i * i; return #d > 0 end, d, i)
      end
      for i = 1, 6 do assert.is_true(fs[i]:result(30)) end
    end
    assert.are.equal(6, #d)
    assert.are.equal(25, d[5])
    local p = m:get_process()
    p:terminate()
    p:join()
    assert.are.equal(-15, p.exitcode)
    assert.is_false(exists(m._dir))
    m:shutdown()
  end)

  it("the socket directory is private (0700) and the socket 0600", function()
    local m = mp.Manager()
    local h = io.popen("stat -c '%a' " .. m._dir .. " " .. m.address)
    local modes = h:read("a")
    h:close()
    m:shutdown()
    assert.are.equal("700\n600\n", modes)
  end)

  it("the manager dies with its parent and leaves no socket directory", function()
    for _, method in ipairs(METHODS) do
      local t0 = braid.monotonic()
      -- the pipe reaches EOF only when the manager, which holds it too, is gone
      local out = support.run_script(([[
local mp = require "braid.multiprocessing"
local m = mp.Manager{start_method = "%s"}
local d = m:dict()
d.x = 1
io.stdout:write(m._dir, "\n") io.stdout:flush()
os.execute("kill -9 " .. mp.current_process().pid)
]]):format(method))
      local dir = out:match("^(%S+)\n")
      assert.is_truthy(dir, out)
      assert.is_true(braid.monotonic() - t0 < 20, method .. ": the manager outlived its parent")
      assert.is_false(exists(dir), method .. ": " .. dir .. " remains")
    end
  end)

  it("a parent that exits without shutdown leaves no directory", function()
    local out = support.run_script([[
local mp = require "braid.multiprocessing"
local m = mp.Manager()
m:dict().x = 1
io.stdout:write(m._dir, "\n")
]])
    local dir = out:match("^(%S+)\n")
    assert.is_truthy(dir, out)
    assert.is_false(exists(dir), dir .. " remains")
  end)
end)
