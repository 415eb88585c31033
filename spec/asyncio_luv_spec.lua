-- `require "luv"` inside asyncio.run uses the running loop: luv handles and
-- braid tasks in one libuv loop. Every test ends with the loop holding no
-- handle besides its own.
local asyncio = require "braid.asyncio"

local support = require "spec.support.asyncio"
local raises = support.raises

local has_luv = package.searchpath("luv", package.cpath) ~= nil
local describe_luv = has_luv and describe or pending

describe_luv("luv on the asyncio loop", function()
  after_each(support.no_loops_left)

  it("a luv timer fires while a braid task sleeps, in one asyncio.run", function()
    local log = support.run_no_handles(function()
      local uv = require "luv"
      local log = {}
      local timer = uv.new_timer()
      timer:start(10, 0, function()
        log[#log + 1] = "luv timer"
        timer:close()
      end)
      local t0 = uv.now()
      asyncio.sleep(0.1)
      log[#log + 1] = "braid task woke"
      assert.is_true(uv.now() - t0 >= 90, "uv.now() reads the shared loop's clock")
      return log
    end)
    assert.are.same({"luv timer", "braid task woke"}, log)
  end)

  it("luv callbacks wake tasks: an Event, a Future, a new task", function()
    support.run_no_handles(function()
      local uv = require "luv"
      local ev, fut = asyncio.Event(), asyncio.get_running_loop():create_future()
      local spawned
      local a, b = uv.new_timer(), uv.new_timer()
      a:start(5, 0, function()
        ev:set()
        a:close()
      end)
      b:start(10, 0, function()
        fut:set_result("from luv")
        spawned = asyncio.create_task(function() return "task from a luv callback" end)
        b:close()
      end)
      ev:wait()
      assert.are.equal("from luv", asyncio.await(fut))
      assert.are.equal("task from a luv callback", asyncio.await(spawned))
    end)
  end)

  it("a luv TCP echo server answers a braid stream client in the same loop", function()
    support.run_no_handles(function()
      local uv = require "luv"
      local server = uv.new_tcp()
      assert(server:bind("127.0.0.1", 0))
      assert(server:listen(16, function()
        local client = uv.new_tcp()
        server:accept(client)
        client:read_start(function(err, data)
          if data then client:write(data) else client:close() end
        end)
      end))
      local port = server:getsockname().port
      local reader, writer = asyncio.open_connection("127.0.0.1", port)
      for i = 1, 100 do
        writer:write(("line %d\n"):format(i))
        assert.are.equal(("line %d\n"):format(i), reader:readline())
      end
      writer:close()
      writer:wait_closed()
      asyncio.sleep(0.01) -- the luv side sees EOF and closes its client
      server:close()
    end, 0.01)
  end)

  it("uv.run() inside a run raises; outside it luv runs its own loop", function()
    local uv = require "luv"
    support.run_no_handles(function()
      raises("RuntimeError", uv.run)
      raises("RuntimeError", uv.walk, function() end)
    end)
    local n = 0
    local t = uv.new_timer()
    t:start(1, 0, function()
      n = n + 1
      t:close()
    end)
    uv.run()
    assert.are.equal(1, n)
    -- a luv opened outside is bound to the loop during the next run
    support.run_no_handles(function()
      local t2 = uv.new_timer()
      local done = asyncio.Event()
      t2:start(1, 0, function()
        t2:close()
        done:set()
      end)
      asyncio.wait_for(function() return done:wait() end, 5)
    end)
  end)

  it("a luv handle left open is closed with the loop; luv goes on working after", function()
    local uv = require "luv"
    asyncio.run(function()
      local t = uv.new_timer()
      t:start(100000, 0, function() end)
      assert.are.equal(1, asyncio._handle_count())
    end)
    local t = uv.new_timer()
    local n = 0
    t:start(1, 0, function()
      n = n + 1
      t:close()
    end)
    uv.run()
    assert.are.equal(1, n)
  end)

  it("each braid thread's luv uses that thread's loop", function()
    local threading = require "braid.threading"
    local ts = {}
    for i = 1, 3 do
      ts[i] = threading.Thread{target = function(k)
        local aio = require "braid.asyncio"
        return aio.run(function()
          local uv = require "luv"
          local fired = 0
          local t = uv.new_timer()
          t:start(5, 0, function()
            fired = fired + 1
            t:close()
          end)
          aio.sleep(0.05)
          return k * 10 + fired
        end)
      end, args = {i}}
      ts[i]:start()
    end
    for i = 1, 3 do assert.are.equal(i * 10 + 1, ts[i]:result()) end
  end)

  it("an error in a luv callback is reported and the program goes on", function()
    local exe = os.getenv("BRAID_EXE") or "build/braid"
    local p = io.popen(("%q -e %q 2>&1"):format(exe, [[
      local asyncio = require "braid.asyncio"
      asyncio.run(function()
        local uv = require "luv"
        local t = uv.new_timer()
        t:start(1, 0, function() t:close(); error("boom in a callback") end)
        asyncio.sleep(0.05)
        print("still running")
      end)]]))
    local out = p:read("a")
    p:close()
    assert.truthy(out:find("boom in a callback", 1, true), out)
    assert.truthy(out:find("still running", 1, true), out)
  end)
end)
