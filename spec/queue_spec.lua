-- braid.queue (API.md §3): Python 3.13's queue semantics, checked the way
-- CPython's Lib/test/test_queue.py checks them, plus many-thread stress.
local braid = require "braid"
local queue = require "braid.queue"
local has_threading, threading = pcall(require, "braid.threading")

local function kind_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  if braid.Error.is(err) then return err.kind end
  return tostring(err)
end

local function needs_threads()
  if not has_threading then pending("braid.threading not built yet") end
  return has_threading
end

describe("queue", function()
  describe("orders", function()
    it("Queue is FIFO, LifoQueue LIFO, PriorityQueue smallest first", function()
      local want = {
        Queue = {111, 333, 222}, LifoQueue = {222, 333, 111},
        PriorityQueue = {111, 222, 333}, SimpleQueue = {111, 333, 222},
      }
      for name, expected in pairs(want) do
        local q = queue[name]()
        for _, v in ipairs{111, 333, 222} do q:put(v) end
        assert.equal(3, q:qsize())
        assert.equal(expected[1], q:get())
        assert.equal(expected[2], q:get())
        assert.equal(expected[3], q:get())
        assert.is_true(q:empty())
      end
    end)

    it("PriorityQueue compares tables like tuples and keeps FIFO among equal keys", function()
      local q = queue.PriorityQueue()
      q:put{2, "b"}; q:put{1, "z"}; q:put{2, "a"}; q:put{1, "y"}
      assert.same({1, "y"}, q:get())
      assert.same({1, "z"}, q:get())
      assert.same({2, "a"}, q:get())
      assert.same({2, "b"}, q:get())
      -- equal keys (only the sequence part compares): first in, first out
      for i = 1, 50 do q:put{i % 3, id = i} end
      local last = {}
      for _ = 1, 50 do
        local item = q:get()
        local k = item[1]
        assert.is_true((last[k] or 0) < item.id)
        last[k] = item.id
      end
      -- strings by byte order, numbers across subtypes
      for _, v in ipairs{"pear", "apple", "fig"} do q:put(v) end
      assert.same({"apple", "fig", "pear"}, {q:get(), q:get(), q:get()})
      q:put(2.5); q:put(1); q:put(3)
      assert.same({1, 2.5, 3}, {q:get(), q:get(), q:get()})
    end)

    it("PriorityQueue rejects items it cannot order with a TypeError", function()
      local q = queue.PriorityQueue()
      q:put(1)
      assert.equal("TypeError", kind_of(q.put, q, "one"))
      assert.equal("TypeError", kind_of(q.put, q, {1}))
      assert.equal(1, q:qsize())
      q:task_done()
      assert.is_true(q:join(0))
    end)
  end)

  describe("items", function()
    it("accepts nil and copies tables", function()
      local q = queue.Queue()
      local t = {1, 2, {x = "y"}}
      q:put(nil)
      q:put(t)
      q:put(false)
      assert.is_nil(q:get())
      local got = q:get()
      assert.same(t, got)
      assert.are_not.equal(t, got)
      assert.is_false(q:get())
    end)

    it("refuses values that cannot cross, naming them", function()
      local q = queue.Queue()
      local err = select(2, pcall(q.put, q, {co = coroutine.create(print)}))
      assert.equal("TypeError", err.kind)
      assert.matches("item", err.message)
      assert.equal(0, q:qsize())
    end)

    it("passes queues by reference inside items", function()
      local q, inner = queue.Queue(), queue.Queue()
      q:put{reply = inner}
      local got = q:get()
      assert.equal(inner, got.reply)
    end)
  end)

  describe("Full and Empty", function()
    it("raises Full when a bounded queue is full", function()
      local q = queue.Queue(2)
      assert.equal(2, q:maxsize())
      q:put(1); q:put(2)
      assert.is_true(q:full())
      assert.equal("Full", kind_of(q.put, q, 3, false))
      assert.equal("Full", kind_of(q.put_nowait, q, 3))
      local t0 = braid.monotonic()
      assert.equal("Full", kind_of(q.put, q, 3, true, 0.05))
      assert.is_true(braid.monotonic() - t0 >= 0.03)
      assert.equal(2, q:qsize())
      assert.equal(queue.Full, "Full")
    end)

    it("raises Empty when empty", function()
      local q = queue.Queue()
      assert.equal("Empty", kind_of(q.get, q, false))
      assert.equal("Empty", kind_of(q.get_nowait, q))
      local t0 = braid.monotonic()
      assert.equal("Empty", kind_of(q.get, q, true, 0.05))
      local dt = braid.monotonic() - t0
      assert.is_true(dt >= 0.03 and dt < 0.5)
      assert.equal("Empty", kind_of(q.get, q, true, 0))
    end)

    it("rejects negative timeouts, unless not blocking", function()
      local q = queue.Queue(1)
      assert.equal("ValueError", kind_of(q.put, q, 1, true, -1))
      assert.equal("ValueError", kind_of(q.get, q, true, -1))
      q:put(1, false, -1) -- block=false ignores the timeout
      assert.equal(1, q:get(false, -1))
    end)

    it("treats maxsize <= 0 as unbounded", function()
      for _, q in ipairs{queue.Queue(), queue.Queue(0), queue.Queue(-5), queue.Queue{maxsize = 0}} do
        for i = 1, 2000 do q:put_nowait(i) end
        assert.is_false(q:full())
        assert.equal(2000, q:qsize())
      end
      assert.equal(3, queue.LifoQueue{maxsize = 3}:maxsize())
    end)
  end)

  describe("task_done and join", function()
    it("raises ValueError when called too often", function()
      local q = queue.Queue()
      assert.equal("ValueError", kind_of(q.task_done, q))
      q:put(1)
      q:get()
      q:task_done()
      assert.equal("ValueError", kind_of(q.task_done, q))
    end)

    it("join returns once every item is done, and again after", function()
      local q = queue.Queue()
      assert.is_true(q:join())
      for i = 1, 3 do q:put(i) end
      assert.is_false(q:join(0.01)) -- (+) timeout
      for _ = 1, 3 do q:get(); q:task_done() end
      assert.is_true(q:join())
      assert.is_true(q:join())
    end)
  end)

  describe("shutdown", function()
    it("refuses puts and drains remaining items before ShutDown", function()
      local q = queue.Queue()
      q:put(1); q:put(2)
      q:shutdown()
      assert.is_true(q:is_shutdown())
      assert.equal("ShutDown", kind_of(q.put, q, 3))
      assert.equal("ShutDown", kind_of(q.put_nowait, q, 3))
      assert.equal(1, q:get())
      assert.equal(2, q:get_nowait())
      assert.equal("ShutDown", kind_of(q.get, q))
      assert.equal("ShutDown", kind_of(q.get, q, false))
      assert.equal("ShutDown", kind_of(q.get_nowait, q))
      q:task_done(); q:task_done()
      assert.is_true(q:join())
    end)

    it("shutdown(true) drops items and counts them done", function()
      local q = queue.LifoQueue()
      for i = 1, 5 do q:put(i) end
      assert.equal(5, q:get())
      q:shutdown(true)
      assert.equal(0, q:qsize())
      assert.equal("ShutDown", kind_of(q.get, q))
      q:task_done() -- the one item taken before shutdown
      assert.is_true(q:join())
      q:shutdown(false) -- immediate -> plain is allowed
      q:shutdown(true)
    end)
  end)

  describe("SimpleQueue", function()
    it("is an unbounded FIFO without tasks or shutdown", function()
      local q = queue.SimpleQueue()
      assert.is_nil(q.task_done)
      assert.is_nil(q.join)
      assert.is_nil(q.shutdown)
      for i = 1, 1000 do q:put(i, true, 0.001) end
      assert.equal(1000, q:qsize())
      for i = 1, 1000 do assert.equal(i, q:get()) end
      assert.is_true(q:empty())
      assert.equal("Empty", kind_of(q.get, q, true, 0.01))
      assert.equal("Empty", kind_of(q.get_nowait, q))
    end)
  end)

  describe("with threads", function()
    it("a blocked get resumes on put, a blocked put on get", function()
      if not needs_threads() then return end
      local q, out = queue.Queue(1), queue.Queue()
      local t = threading.Thread{target = function(q, out) out:put(q:get() * 2) end, args = {q, out}}
      t:start()
      q:put(21)
      assert.equal(42, out:get(true, 10))
      t:join()
      q:put("first")
      t = threading.Thread{target = function(q) q:put("second") end, args = {q}}
      t:start()
      assert.equal("first", q:get(true, 10))
      assert.equal("second", q:get(true, 10))
      t:join()
    end)

    it("shutdown releases blocked getters and putters with ShutDown", function()
      if not needs_threads() then return end
      local q, out = queue.Queue(1), queue.Queue()
      local function getter(q, out)
        local ok, err = pcall(q.get, q)
        out:put(ok and "got" or err.kind)
      end
      local ts = {}
      for i = 1, 3 do
        ts[i] = threading.Thread{target = getter, args = {q, out}}
        ts[i]:start()
      end
      q:put(1) -- one getter may take it
      q:put(2, true, 10)
      q:shutdown()
      local counts = {}
      for _ = 1, 3 do
        local k = out:get(true, 10)
        counts[k] = (counts[k] or 0) + 1
      end
      for i = 1, 3 do ts[i]:join() end
      assert.equal(2, counts.got)
      assert.equal(1, counts.ShutDown)
    end)

    it("task_done wakes join in another thread", function()
      if not needs_threads() then return end
      local q = queue.Queue()
      for i = 1, 10 do q:put(i) end
      local t = threading.Thread{target = function(q)
        for _ = 1, 10 do q:get(); q:task_done() end
      end, args = {q}}
      t:start()
      assert.is_true(q:join(10))
      t:join()
    end)

    it("a cancelled thread blocked in get raises Cancelled and loses no item", function()
      if not needs_threads() then return end
      local q, started = queue.Queue(), threading.Event()
      local t = threading.Thread{target = function(q, started)
        started:set()
        return q:get()
      end, args = {q, started}}
      t:start()
      started:wait()
      t:cancel()
      local ok, err = pcall(t.result, t, 10)
      assert.is_false(ok)
      assert.equal("Cancelled", err.kind)
      q:put("kept")
      assert.equal("kept", q:get_nowait())
    end)

    it("8 producers x 8 consumers x 100k items: nothing lost or duplicated, order per producer", function()
      if not needs_threads() then return end
      local P, C, N = 8, 8, tonumber(os.getenv("BRAID_QUEUE_STRESS_N")) or 100000
      for _, maxsize in ipairs{0, 64} do
        local q, results = queue.Queue(maxsize), queue.SimpleQueue()
        local consumers, producers = {}, {}
        for c = 1, C do
          consumers[c] = threading.Thread{target = function(q, results, P, N)
            local last, count, bad = {}, {}, 0
            for p = 1, P do last[p], count[p] = -1, 0 end
            while true do
              local ok, item = pcall(q.get, q)
              if not ok then break end -- ShutDown
              local p, i = item // N + 1, item % N
              if i <= last[p] then bad = bad + 1 end
              last[p], count[p] = i, count[p] + 1
            end
            results:put{count = count, bad = bad}
          end, args = {q, results, P, N}}
          consumers[c]:start()
        end
        for p = 1, P do
          producers[p] = threading.Thread{target = function(q, base, N)
            for i = 0, N - 1 do q:put(base + i) end
          end, args = {q, (p - 1) * N, N}}
          producers[p]:start()
        end
        for p = 1, P do producers[p]:join() end
        q:shutdown()
        local total = {}
        for c = 1, C do consumers[c]:join() end
        for _ = 1, C do
          local r = results:get(false)
          assert.equal(0, r.bad)
          for p = 1, P do total[p] = (total[p] or 0) + r.count[p] end
        end
        for p = 1, P do assert.equal(N, total[p]) end
      end
    end)
  end)

  describe("a bounded Queue traced", function()
    it("pairs each put's flow with the get that took the item, across threads", function()
      needs_threads()
      local json = require "spec.support.json"
      local files = require "spec.support.files"
      local out, script = files.tmpname(), files.tmpname()
      files.writefile(script, [[
local threading = require "braid.threading"
local q = require("braid.queue").Queue{maxsize = 3, name = "ring"}
local t = threading.Thread{target = function(q)
  for i = 1, 300 do q:put(i) end
end, args = {q}}
t:start()
local s = 0
for _ = 1, 300 do s = s + q:get() end
t:join()
print(s)
]])
      local p = io.popen("env -u BRAID_TRACE -u BRAID_TRACE_PARENT BRAID_TRACE_ARROWS=all " ..
        files.quote(files.EXE) .. " --trace " .. files.quote(out) .. " " .. files.quote(script))
      local stdout = p:read("a")
      p:close()
      assert.equal("45150\n", stdout)
      local evs = json.decode(files.readfile(out)).traceEvents
      local starts, ends, n, depth = {}, {}, 0, false
      for i = 1, evs.n do
        local e = evs[i]
        if e.ph == "s" then
          assert.is_nil(starts[e.id]); starts[e.id] = e; n = n + 1
        elseif e.ph == "f" then
          assert.is_nil(ends[e.id]); ends[e.id] = e
        elseif e.ph == "C" and e.name == "queue ring" then
          depth = depth or math.type(e.args.depth) == "integer"
        end
      end
      assert.equal(300, n)
      for id, s in pairs(starts) do
        local f = ends[id]
        assert.is_truthy(f, "flow start without end: " .. id)
        assert.is_true(f.ts >= s.ts, "the arrow points back in time")
        assert.are_not.equal(s.tid, f.tid)
      end
      for id in pairs(ends) do assert.is_truthy(starts[id], "flow end without start: " .. id) end
      assert.is_true(depth)
      files.remove_tmpfiles()
    end)

    -- arrows of a traced stream of n items: their count, whether each start
    -- has its end, the time the puts took (us) and the last depth counter
    local function stream_arrows(n, env)
      local json = require "spec.support.json"
      local files = require "spec.support.files"
      local out, script = files.tmpname(), files.tmpname()
      files.writefile(script, ([[
local q = require("braid.queue").Queue{maxsize = 1024, name = "stream"}
for i = 1, %d do q:put(i) q:get() end
]]):format(n))
      local p = io.popen("env -u BRAID_TRACE -u BRAID_TRACE_PARENT " .. env .. " " ..
        files.quote(files.EXE) .. " --trace " .. files.quote(out) .. " " .. files.quote(script))
      p:read("a")
      assert.is_true(p:close())
      local evs = json.decode(files.readfile(out)).traceEvents
      local starts, ends, arrows, first, last, depth = {}, {}, 0, math.huge, 0, nil
      for i = 1, evs.n do
        local e = evs[i]
        if e.ph == "s" then
          starts[e.id] = true; arrows = arrows + 1
          first, last = math.min(first, e.ts), math.max(last, e.ts)
        elseif e.ph == "f" then
          ends[e.id] = true
        elseif e.ph == "C" and e.name == "queue stream" and (not depth or e.ts >= depth.ts) then
          depth = e
        end
      end
      for id in pairs(starts) do assert.is_truthy(ends[id], "flow start without end: " .. id) end
      for id in pairs(ends) do assert.is_truthy(starts[id], "flow end without start: " .. id) end
      files.remove_tmpfiles()
      return arrows, last - first, depth and depth.args.depth
    end

    it("samples the arrows of a fast stream, each kept arrow whole; BRAID_TRACE_ARROWS=all keeps all", function()
      local n = 50000
      local arrows, span, depth = stream_arrows(n, "")
      assert.is_true(arrows >= 64, arrows) -- a burst's first items keep theirs
      assert.equal(0, depth) -- the depth counter still comes back to 0
      -- sampling starts when puts with arrows come < 1 us apart: on a fast
      -- run (not under valgrind) most of the items have none
      if span / n < 0.5 then assert.is_true(arrows < n / 2, arrows .. " arrows in " .. span .. " us") end
      assert.equal(5000, (stream_arrows(5000, "BRAID_TRACE_ARROWS=all")))
    end)
  end)
end)
