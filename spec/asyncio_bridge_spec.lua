-- braid.asyncio with thread-level objects: inside a task, a blocking call on
-- a braid Queue, Event, Lock, Semaphore, Future, Thread or braid.sleep
-- suspends only the task; loops in many threads at once.
local asyncio = require "braid.asyncio"
local braid = require "braid"
local threading = require "braid.threading"
local queue = require "braid.queue"
local futures = require "braid.futures"
local Error = braid.Error

local run = asyncio.run
local support = require "spec.support.asyncio"
local raises, ticker, settle = support.raises, support.ticker, support.settle



describe("asyncio bridge", function()
  after_each(support.no_loops_left)

  it("a plain coroutine inside a task that has waited before still blocks its thread, not the task", function()
    for _ = 1, 20 do
      local ok, kind, yielded = run(function()
        local q = queue.Queue()
        raises("Empty", q.get, q, true, 0.01) -- the task waited: it now has a waiter
        asyncio.sleep(0)
        local co = coroutine.create(function()
          local got, err = pcall(q.get, q, true, 0.02)
          return got, Error.is(err) and err.kind
        end)
        local resumed, got, k = coroutine.resume(co)
        return resumed and coroutine.status(co) == "dead" and not got, k, not resumed
      end)
      assert.is_true(ok)
      assert.equal("Empty", kind)
      assert.is_false(yielded)
    end
  end)

  it("a thread producer feeds a task consumer through one braid Queue while other tasks tick", function()
    for _ = 1, 3 do
      local q = queue.Queue(16)
      local n = 20000
      local producer = threading.Thread{target = function(q, n)
        for i = 1, n do q:put(i) end
        q:put(false)
      end, args = {q, n}}
      local sum, count, ticks = run(function()
        local tk = ticker()
        producer:start()
        local s, c = 0, 0
        while true do
          local v = q:get()
          if v == false then break end
          s, c = s + v, c + 1
          if c % 5000 == 0 then asyncio.sleep(0.003) end
        end
        tk.task:cancel()
        return s, c, tk.n
      end)
      producer:join()
      assert.are.equal(n, count)
      assert.are.equal(n * (n + 1) // 2, sum)
      assert.is_true(ticks > 0)
    end
  end)

  it("a task puts into a bounded braid Queue that a thread drains", function()
    local q = queue.Queue(2)
    local out = queue.Queue()
    local consumer = threading.Thread{target = function(q, out)
      local s = 0
      while true do
        local v = q:get()
        if v == nil then break end
        s = s + v
      end
      out:put(s)
    end, args = {q, out}}
    consumer:start()
    run(function()
      local tk = ticker()
      for i = 1, 2000 do q:put(i) end
      q:put(nil)
      tk.task:cancel()
    end)
    consumer:join()
    assert.are.equal(2000 * 2001 // 2, out:get())
  end)

  it("a task waits on a ThreadPoolExecutor future; other tasks keep running", function()
    local ex <close> = futures.ThreadPoolExecutor(2)
    local gate = threading.Event()
    run(function()
      local f = ex:submit(function(gate) gate:wait() return "from the pool", 2 end, gate)
      local tk = ticker()
      local waiter = asyncio.create_task(function() return f:result() end)
      asyncio.sleep(0.02)
      assert.is_false(waiter:done())
      gate:set()
      local a, b = asyncio.await(waiter)
      assert.are.same({"from the pool", 2}, {a, b})
      assert.are.same({"from the pool", 2}, {asyncio.await(f)})
      assert.is_true(tk.n > 0)
      tk.task:cancel()
      -- a failing job re-raises in the task
      local g = ex:submit(function() error("pool error", 0) end)
      local ok, err = pcall(g.result, g)
      assert.is_false(ok)
      assert.are.equal("pool error", err)
    end)
  end)

  it("Event, Lock, Semaphore, Thread:join and braid.sleep suspend only the task", function()
    run(function()
      local ev, lock, sem = threading.Event(), threading.Lock(), threading.Semaphore(0)
      lock:acquire()
      local log = {}
      local ts = {
        asyncio.create_task(function() ev:wait(); log[#log + 1] = "event" end),
        asyncio.create_task(function() lock:acquire(); log[#log + 1] = "lock"; lock:release() end),
        asyncio.create_task(function() sem:acquire(); log[#log + 1] = "sem" end),
        asyncio.create_task(function() braid.sleep(0.01); log[#log + 1] = "sleep" end),
      }
      local th = threading.Thread{target = function(ev, lock, sem)
        ev:wait()
        lock:release()
        sem:release()
      end, args = {ev, lock, sem}}
      th:start()
      local joiner = asyncio.create_task(function() th:join(); log[#log + 1] = "join" end)
      -- the loop keeps running every task while they wait: the main task
      -- runs here, and nothing the thread releases can be done yet
      for _ = 1, 3 do asyncio.sleep(0) end
      local early = table.concat(log, ",")
      ev:set() -- before any assertion: a failure must not leave the thread blocked
      assert.is_truthy(early == "" or early == "sleep", early)
      asyncio.gather(table.unpack(ts))
      asyncio.await(joiner)
      table.sort(log)
      assert.are.same({"event", "join", "lock", "sem", "sleep"}, log)
    end)
  end)

  it("Thread:result inside a task returns the thread's results", function()
    run(function()
      local th = threading.Thread{target = function(x) braid.sleep(0.01) return x * 3 end, args = {14}}
      th:start()
      assert.are.equal(42, th:result())
    end)
  end)

  it("timeouts work on thread-level waits inside tasks", function()
    run(function()
      local tk = ticker()
      local t0 = braid.monotonic()
      assert.is_false(threading.Event():wait(0.05))
      assert.is_false(threading.Semaphore(0):acquire(true, 0.02))
      local l = threading.Lock()
      l:acquire()
      assert.is_false(l:acquire(true, 0.02))
      raises("Empty", queue.Queue().get, queue.Queue(), true, 0.02)
      local f = futures.Future()
      raises("Timeout", f.result, f, 0.02)
      local dt = braid.monotonic() - t0
      assert.is_true(dt >= 0.1 and dt < 2, tostring(dt))
      assert.is_true(tk.n > 0)
      tk.task:cancel()
    end)
  end)

  it("cancelling a task blocked on a braid Queue loses no item", function()
    for _ = 1, 20 do
      local q = queue.Queue()
      run(function()
        local t = asyncio.create_task(function() return q:get() end)
        asyncio.sleep(0)
        local th = threading.Thread{target = function(q) q:put("item") end, args = {q}}
        th:start()
        t:cancel()
        local ok, v = pcall(asyncio.await, t)
        th:join()
        if ok then
          assert.are.equal("item", v) -- got it before the cancellation landed
        else
          assert.is_true(t:cancelled())
          local v2 = q:get(false)
          assert.are.equal("item", v2)
        end
      end)
    end
  end)

  it("a cancelled thread-lock wait never takes the lock", function()
    run(function()
      local l = threading.Lock()
      l:acquire()
      local t = asyncio.create_task(function() l:acquire() return "got" end)
      asyncio.sleep(0.01)
      t:cancel()
      raises("Cancelled", asyncio.await, t)
      l:release()
      assert.is_false(l:locked())
    end)
  end)

  it("wait_for bounds a thread-level wait", function()
    run(function()
      local q = queue.Queue()
      raises("Timeout", asyncio.wait_for, function() return q:get() end, 0.03)
      q:put(1)
      assert.are.equal(1, q:get())
    end)
  end)

  it("a woken waiter of a task gone meanwhile is skipped safely, even when a callback collects it first", function()
    -- t's deadline timer queues it (its wait unfiled); s, queued before
    -- it, then sets the event, which puts t's waiter on the loop's woken
    -- list; t runs, gets the event and ends, and nothing holds it. At the
    -- next pass a done callback runs the collector, which frees the waiter
    -- box: the loop must not read the box after that (ASan and valgrind
    -- see it if it does; this spec caught it once).
    local ex <close> = futures.ThreadPoolExecutor(1)
    for _ = 1, 20 do
      local ran, collected = run(function()
        local ev = threading.Event()
        local gone = setmetatable({}, {__mode = "v"})
        local ran, collected = false, false
        local s = asyncio.create_task(function()
          while gone[1] and gone[1]._wait ~= false do asyncio.sleep(0) end
          ev:set()
          local release = threading.Event() -- f ends after its callback is in
          local f = ex:submit(function(e) return e:wait() end, release)
          f:add_done_callback(function()
            ran = true
            collectgarbage()
            collectgarbage()
            collected = gone[1] == nil
          end)
          release:set()
          while not f:done() do end -- its callback runs at the next pass
        end)
        gone[1] = asyncio.create_task(function() return ev:wait(0.01) end)
        asyncio.await(s)
        for _ = 1, 1000 do
          if ran then break end
          asyncio.sleep(0)
        end
        return ran, collected
      end)
      assert.is_true(ran)
      assert.is_true(collected) -- t had ended and was dropped before the collector ran
    end
  end)

  it("8 threads each run their own asyncio.run at once", function()
    local threads = {}
    for i = 1, 8 do
      threads[i] = threading.Thread{target = function(i)
        local asyncio = require "braid.asyncio"
        return asyncio.run(function()
          local r = asyncio.gather(function() asyncio.sleep(0.01) return i end,
            function() asyncio.sleep(0) return i * 10 end)
          return r[1] + r[2]
        end)
      end, args = {i}}
      threads[i]:start()
    end
    for i = 1, 8 do assert.are.equal(i * 11, threads[i]:result()) end
  end)

  it("asyncio.run works inside a pool worker", function()
    local ex <close> = futures.ThreadPoolExecutor(2)
    local fs = {}
    for i = 1, 4 do
      fs[i] = ex:submit(function(i)
        local asyncio = require "braid.asyncio"
        return asyncio.run(function() asyncio.sleep(0) return i + 100 end)
      end, i)
    end
    for i = 1, 4 do assert.are.equal(i + 100, fs[i]:result()) end
  end)

  it("an asyncio primitive cannot cross to a thread once bound to a loop", function()
    local l = asyncio.Lock()
    run(function()
      l:acquire()
      l:release()
      local ok, err = pcall(threading.Thread, {target = function(l) return l end, args = {l}})
      if ok then
        ok, err = pcall(function() err:start() end)
      end
      assert.is_false(ok)
      assert.are.equal("TypeError", err.kind)
    end)
  end)
end)

describe("asyncio bridge: threading.Condition", function()
  after_each(support.no_loops_left)

  it("a task waits on a threading.Condition that a thread notifies", function()
    for _, lock in ipairs({threading.Lock(), threading.RLock()}) do
      local cond = threading.Condition(lock)
      local box = require("braid.shared").table({ready = false})
      local th = threading.Thread{target = function(cond, box)
        cond:acquire()
        box.ready = true
        cond:notify_all()
        cond:release()
      end, args = {cond, box}}
      run(function()
        local tk = ticker()
        cond:acquire()
        th:start()
        local got = cond:wait_for(function() return box.ready end, 5)
        assert.is_true(got)
        assert.is_true(cond:_is_owned())
        cond:release()
        assert.is_true(tk.n >= 0)
        tk.task:cancel()
      end)
      th:join()
    end
  end)

  it("a timed-out Condition wait in a task returns false with the lock held", function()
    run(function()
      local cond = threading.Condition()
      cond:acquire()
      assert.is_false(cond:wait(0.02))
      assert.is_true(cond:_is_owned())
      cond:release()
      local c2 = threading.Condition()
      raises("RuntimeError", c2.wait, c2)
    end)
  end)

  it("a cancelled Condition wait re-acquires the lock before raising", function()
    run(function()
      local cond = threading.Condition(threading.Lock())
      local held
      local t = asyncio.create_task(function()
        cond:acquire()
        local ok, err = pcall(cond.wait, cond)
        held = cond:_is_owned()
        cond:release()
        error(err, 0)
      end)
      asyncio.sleep(0.01)
      t:cancel()
      local ok, err = pcall(asyncio.await, t)
      assert.is_false(ok)
      assert.are.equal("Cancelled", err.kind)
      assert.is_true(held)
    end)
  end)
end)

describe("asyncio bridge: Queue:join", function()
  after_each(support.no_loops_left)

  it("a task joins a braid Queue that threads work off", function()
    local q = queue.Queue()
    local worker = threading.Thread{target = function(q)
      while true do
        local v = q:get()
        if v == nil then q:task_done() break end
        q:task_done()
      end
    end, args = {q}}
    worker:start()
    run(function()
      local tk = ticker()
      for i = 1, 500 do q:put(i) end
      q:put(nil)
      assert.is_true(q:join())
      assert.is_true(q:join(0.01))
      tk.task:cancel()
    end)
    worker:join()
  end)
end)

describe("asyncio bridge: cancelled while re-acquiring", function()
  after_each(support.no_loops_left)

  it("a Condition wait cancelled while its lock is held elsewhere re-acquires it, then raises", function()
    run(function()
      local lock = threading.Lock()
      local cond = threading.Condition(lock)
      local held
      local t = asyncio.create_task(function()
        cond:acquire()
        local ok, err = pcall(cond.wait, cond)
        held = cond:_is_owned()
        cond:release()
        error(err, 0)
      end)
      asyncio.sleep(0.01)
      -- notify while holding the lock, then cancel the waiter before release
      local th = threading.Thread{target = function(cond, lock)
        cond:acquire()
        cond:notify()
        require("braid").sleep(0.05)
        cond:release()
      end, args = {cond, lock}}
      th:start()
      asyncio.sleep(0.02)
      t:cancel()
      local ok, err = pcall(asyncio.await, t)
      th:join()
      assert.is_false(ok)
      assert.are.equal("Cancelled", err.kind)
      assert.is_true(held)
      assert.is_false(lock:locked())
    end)
  end)
end)

describe("asyncio bridge: the loop's thread", function()
  after_each(support.no_loops_left)

  it("thread:cancel() ends an asyncio.run in that thread with Cancelled, unwinding its tasks", function()
    local started = threading.Event()
    local th = threading.Thread{target = function(started)
      local asyncio = require "braid.asyncio"
      return asyncio.run(function()
        asyncio.create_task(function() asyncio.sleep(10) end)
        started:set()
        asyncio.sleep(10)
      end)
    end, args = {started}}
    th:start()
    assert.is_true(started:wait(10))
    th:cancel()
    local ok, err = pcall(th.result, th)
    assert.is_false(ok)
    assert.are.equal("Cancelled", err.kind)
  end)

  it("a thread-level future's done callback runs in the loop's state while it runs", function()
    local ex <close> = futures.ThreadPoolExecutor(1)
    local seen = {}
    run(function()
      local f = ex:submit(function() return 7 end)
      f:add_done_callback(function(fut) seen[#seen + 1] = fut:result() end)
      for _ = 1, 200 do
        if #seen > 0 then break end
        asyncio.sleep(0.005)
      end
    end)
    assert.are.same({7}, seen)
  end)
end)
