-- braid.multiprocessing.Queue's shared ring (core/mpring.c): small items
-- travel through shared memory, big ones and objects through the socket,
-- in per-producer order; killed producers and consumers, a full ring,
-- many producers, closed queues, nothing left in /dev/shm.
local braid = require "braid"
local mp = require "braid.multiprocessing"

local support = require "spec.support.multiprocessing"
local METHODS, kind_of = support.METHODS, support.kind_of
mp.fork_warning = false

-- other programs on the machine use /dev/shm too: only names of ours count
local function shm_ours()
  local h = io.popen("ls -A /dev/shm 2>/dev/null")
  local s = h:read("a")
  h:close()
  return s:match("braid")
end

for _, method in ipairs(METHODS) do
  local ctx = mp.get_context(method)
  local function run(target, ...)
    local p = ctx:Process{target = target, args = table.pack(...)}
    p:start()
    return p
  end

  describe("Queue ring (" .. method .. ")", function()
    after_each(support.no_child_left)

    it("many producers: every item arrives once, each producer's in order", function()
      for _ = 1, 3 do
        local q = mp.Queue()
        local P, N = 4, 3000
        local ps = {}
        for id = 1, P do
          ps[id] = run(function(q, id, n)
            for i = 1, n do q:put(id * 1000000 + i) end
          end, q, id, N)
        end
        local last = {}
        for id = 1, P do last[id] = 0 end
        for _ = 1, P * N do
          local v = q:get(true, 30)
          local id, i = v // 1000000, v % 1000000
          assert.are.equal(last[id] + 1, i)
          last[id] = i
        end
        for id = 1, P do
          ps[id]:join()
          assert.are.equal(0, ps[id].exitcode)
        end
        assert.are.equal("Empty", kind_of(q.get, q, false))
      end
    end)

    it("small, big and object items from one producer keep their order", function()
      local q = mp.Queue()
      local p = run(function(q)
        local big = string.rep("b", 40 * 1024) -- past the ring's item limit
        for i = 1, 600 do
          if i % 7 == 0 then
            q:put({i, big})
          elseif i % 50 == 0 then
            local v = mp.Value("i", i)
            q:put({i, v})
          else
            q:put(i)
          end
        end
      end, q)
      for i = 1, 600 do
        local item = q:get(true, 30)
        if i % 7 == 0 then
          assert.are.equal(i, item[1])
          assert.are.equal(40 * 1024, #item[2])
        elseif i % 50 == 0 then
          assert.are.equal(i, item[1])
          assert.are.equal(i, item[2].value)
        else
          assert.are.equal(i, item)
        end
      end
      p:join()
      assert.are.equal(0, p.exitcode)
    end)

    it("a full ring: put never waits, a child's exit waits for its feeder", function()
      local q = mp.Queue()
      local t0 = braid.monotonic()
      for i = 1, 20000 do q:put(i) end -- far past the ring's 128 KiB
      assert.is_true(braid.monotonic() - t0 < 10)
      local p = run(function(q)
        for i = 20001, 40000 do q:put(i) end
      end, q)
      local last_parent, last_child = 0, 20000
      for _ = 1, 40000 do
        local v = q:get(true, 30)
        if v <= 20000 then
          assert.are.equal(last_parent + 1, v)
          last_parent = v
        else
          assert.are.equal(last_child + 1, v)
          last_child = v
        end
      end
      p:join()
      assert.are.equal(0, p.exitcode)
      q:put("end")
      q:join_thread()
      assert.are.equal("end", q:get(false))
    end)

    it("a reader asleep on an empty queue is woken by a put", function()
      for _ = 1, 20 do
        local q, go = mp.Queue(), mp.Event()
        local p = run(function(q, go)
          go:wait(10)
          q:put("woken")
        end, q, go)
        go:set()
        assert.are.equal("woken", q:get(true, 10))
        p:join()
      end
    end)

    it("get with a timeout and get_nowait on an empty ring raise Empty; later puts arrive", function()
      local q = mp.Queue()
      for _ = 1, 50 do assert.are.equal("Empty", kind_of(q.get_nowait, q)) end
      local t0 = braid.monotonic()
      assert.are.equal("Empty", kind_of(q.get, q, true, 0.1))
      assert.is_true(braid.monotonic() - t0 >= 0.09)
      q:put(1)
      q:put(string.rep("s", 20000))
      assert.are.equal(1, q:get(true, 5))
      assert.are.equal(20000, #q:get(true, 5))
    end)

    it("a producer killed mid-put leaves a queue that works", function()
      for _ = 1, 3 do
        local q = mp.Queue()
        local p = run(function(q)
          local i = 0
          while true do
            i = i + 1
            q:put(i)
          end
        end, q)
        local last = 0
        for _ = 1, 2000 do
          local v = q:get(true, 30)
          assert.are.equal(last + 1, v)
          last = v
        end
        p:kill()
        p:join()
        -- whatever it had put arrives, in order; then the queue is empty
        while true do
          local ok, v = pcall(q.get, q, true, 0.2)
          if not ok then break end
          assert.are.equal(last + 1, v)
          last = v
        end
        q:put("after")
        q:put({big = string.rep("x", 50000)})
        assert.are.equal("after", q:get(true, 5))
        assert.are.equal(50000, #q:get(true, 5).big)
      end
    end)

    it("a consumer killed mid-get leaves a queue that works", function()
      local q, ack = mp.Queue(), mp.Queue()
      local p = run(function(q, ack)
        local n = 0
        while true do
          q:get()
          n = n + 1
          if n == 100 then ack:put(true) end
        end
      end, q, ack)
      for i = 1, 5000 do q:put(i) end
      assert.is_true(ack:get(true, 60))
      p:kill()
      p:join()
      q:put("mine")
      local v
      repeat v = q:get(true, 10) until v == "mine"
      assert.are.equal("Empty", kind_of(q.get, q, false))
    end)

    it("a closed queue refuses put and get", function()
      local q = mp.Queue()
      q:put(1)
      q:close()
      assert.are.equal("ValueError", kind_of(q.put, q, 2))
      assert.are.equal("ValueError", kind_of(q.get, q))
    end)

    it("leaves nothing in /dev/shm, even when its processes are killed", function()
      for _ = 1, 3 do
        local q = mp.Queue()
        local p = run(function(q)
          for i = 1, 100000 do q:put(i) end
        end, q)
        q:get(true, 30)
        p:kill()
        p:join()
      end
      collectgarbage()
      assert.is_nil(shm_ours(), "something was left in /dev/shm")
    end)
  end)
end
