-- braid.asyncio streams on loopback, modelled on CPython's
-- test_asyncio/test_streams.py and test_server.py. Every test ends with the
-- loop holding no libuv handle besides its own (no leaks).
local asyncio = require "braid.asyncio"

local support = require "spec.support.asyncio"
local raises = support.raises

local run = support.run_no_handles

local function echo(reader, writer)
  while true do
    local data = reader:read(65536)
    if data == "" then break end
    writer:write(data)
    writer:drain()
  end
  writer:close()
  writer:wait_closed()
end

local function close_server(server)
  server:close()
  server:wait_closed()
end

local function checksum(s, h)
  h = h or 0
  for i = 1, #s, 4096 do
    h = (h * 31 + string.byte(s, i) + #s) % 4294967296
  end
  return h
end

describe("asyncio streams (TCP)", function()
  after_each(support.no_loops_left)

  it("echo server and client in one script", function()
    run(function()
      local server = asyncio.start_server(echo, "127.0.0.1", 0)
      local host, port = server.sockets[1]:getsockname()
      assert.are.equal("127.0.0.1", host)
      assert.is_true(port > 0)
      local reader, writer = asyncio.open_connection(host, port)
      writer:write("hello\n")
      writer:writelines({"wor", "ld\n"})
      writer:drain()
      assert.are.equal("hello\n", reader:readline())
      assert.are.equal("world\n", reader:readline())
      local phost, pport = writer:get_extra_info("peername")
      assert.are.same({host, port}, {phost, pport})
      local shost = writer:get_extra_info("sockname")
      assert.are.equal("127.0.0.1", shost)
      assert.are.equal("x", writer:get_extra_info("nothing", "x"))
      assert.is_false(writer:is_closing())
      writer:write_eof()
      assert.are.equal("", reader:read())
      assert.is_true(reader:at_eof())
      writer:close()
      assert.is_true(writer:is_closing())
      writer:wait_closed()
      close_server(server)
    end)
  end)

  it("resolves names and works over IPv6 loopback", function()
    run(function()
      local server = asyncio.start_server(echo, "::1", 0)
      local host, port = server.sockets[1]:getsockname()
      assert.are.equal("::1", host)
      local reader, writer = asyncio.open_connection("::1", port)
      writer:write("six")
      assert.are.equal("six", reader:readexactly(3))
      writer:close()
      close_server(server)
      server = asyncio.start_server(echo, "localhost", 0)
      host, port = server.sockets[1]:getsockname()
      reader, writer = asyncio.open_connection(host, port)
      writer:write("name")
      assert.are.equal("name", reader:readexactly(4))
      writer:close()
      close_server(server)
    end)
  end)

  it("serves 200 clients at once, each in its own task", function()
    run(function()
      local tasks = {}
      local server = asyncio.start_server(function(r, w)
        tasks[asyncio.current_task()] = true
        echo(r, w)
      end, "127.0.0.1", 0)
      local _, port = server.sockets[1]:getsockname()
      local results = asyncio.gather(table.unpack((function()
        local fs = {}
        for i = 1, 200 do
          fs[i] = function()
            local r, w = asyncio.open_connection("127.0.0.1", port)
            local msg = ("client %d\n"):format(i)
            w:write(msg)
            local got = r:readline()
            w:close()
            w:wait_closed()
            return got == msg
          end
        end
        return fs
      end)()))
      for i = 1, 200 do assert.is_true(results[i]) end
      local n = 0
      for _ in pairs(tasks) do n = n + 1 end
      assert.are.equal(200, n)
      close_server(server)
    end)
  end)

  it("carries 64 MiB through one connection intact, with back-pressure", function()
    run(function()
      local server = asyncio.start_server(echo, "127.0.0.1", 0)
      local _, port = server.sockets[1]:getsockname()
      local reader, writer = asyncio.open_connection("127.0.0.1", port)
      local chunk = {}
      for i = 1, 65536 do chunk[i] = string.char((i * 7 + i // 256) % 256) end
      chunk = table.concat(chunk)
      local total, sent_sum, max_buf = 64 * 1024 * 1024, 0, 0
      local sender = asyncio.create_task(function()
        for i = 1, total // #chunk do
          local c = chunk:sub(i % 97 + 1) .. chunk:sub(1, i % 97)
          sent_sum = checksum(c, sent_sum)
          writer:write(c)
          max_buf = math.max(max_buf, writer:get_write_buffer_size())
          writer:drain()
        end
        writer:write_eof()
      end)
      local got, got_sum = 0, 0
      while true do
        local c = reader:readexactly(65536 * 4)
        got = got + #c
        for i = 0, 3 do got_sum = checksum(c:sub(i * 65536 + 1, (i + 1) * 65536), got_sum) end
        if got == total then break end
      end
      asyncio.await(sender)
      assert.are.equal(total, got)
      assert.are.equal(sent_sum, got_sum)
      assert.are.equal("", reader:read())
      -- drain kept the write buffer bounded (high water 64 KiB + one chunk)
      assert.is_true(max_buf <= 2 * 65536 + 1, "write buffer grew to " .. max_buf)
      writer:close()
      close_server(server)
    end)
  end)

  it("drain blocks several writers until the peer reads", function()
    run(function()
      local go = asyncio.Event()
      local received = 0
      local server = asyncio.start_server(function(r, w)
        go:wait()
        while true do
          local d = r:read(65536)
          if d == "" then break end
          received = received + #d
        end
        w:close()
      end, "127.0.0.1", 0)
      local _, port = server.sockets[1]:getsockname()
      local _, writer = asyncio.open_connection("127.0.0.1", port)
      writer:set_write_buffer_limits(1024, 256)
      local big = string.rep("x", 8 * 1024 * 1024)
      writer:write(big)
      local drained = 0
      local ds = {}
      for i = 1, 3 do
        ds[i] = asyncio.create_task(function() writer:drain(); drained = drained + 1 end)
      end
      asyncio.sleep(0.05)
      assert.are.equal(0, drained) -- the peer is not reading: everyone waits
      go:set()
      asyncio.gather(ds[1], ds[2], ds[3])
      assert.are.equal(3, drained)
      writer:close()
      writer:wait_closed()
      close_server(server)
      assert.are.equal(#big, received)
    end)
  end)

  it("half-close: the server sees EOF and can still answer", function()
    run(function()
      local server = asyncio.start_server(function(r, w)
        local all = r:read(-1)
        w:write("got " .. #all)
        w:close()
      end, "127.0.0.1", 0)
      local _, port = server.sockets[1]:getsockname()
      local reader, writer = asyncio.open_connection("127.0.0.1", port)
      writer:write(string.rep("a", 100000))
      assert.is_true(writer:can_write_eof())
      writer:write_eof()
      raises("ConnectionError", writer.write, writer, "late")
      assert.are.equal("got 100000", reader:read())
      assert.are.equal("", reader:read())
      writer:close()
      close_server(server)
    end)
  end)

  it("a client disconnecting early gives the server EOF; writing then fails", function()
    run(function()
      local done = asyncio.Future()
      local server = asyncio.start_server(function(r, w)
        local line = r:readline()
        local rest = r:read()
        local ok, err = pcall(function()
          for _ = 1, 200 do
            w:write(string.rep("z", 65536))
            w:drain()
            asyncio.sleep(0.001)
          end
        end)
        w:close()
        done:set_result({line, rest, ok, err})
      end, "127.0.0.1", 0)
      local _, port = server.sockets[1]:getsockname()
      local _, writer = asyncio.open_connection("127.0.0.1", port)
      writer:write("partial line")
      writer:close()
      writer:wait_closed()
      local res = asyncio.await(done)
      assert.are.equal("partial line", res[1])
      assert.are.equal("", res[2])
      assert.is_false(res[3])
      assert.are.equal("ConnectionError", res[4].kind)
      assert.is_string(res[4].errno)
      close_server(server)
    end)
  end)

  it("a server closed while clients are connected stops accepting; clients carry on", function()
    run(function()
      local server = asyncio.start_server(echo, "127.0.0.1", 0)
      local _, port = server.sockets[1]:getsockname()
      local reader, writer = asyncio.open_connection("127.0.0.1", port)
      writer:write("1")
      assert.are.equal("1", reader:read(1))
      server:close()
      assert.is_false(server:is_serving())
      local closed = false
      local wc = asyncio.create_task(function() server:wait_closed(); closed = true end)
      asyncio.sleep(0.02)
      assert.is_false(closed) -- a client is still connected
      local err = raises("ConnectionError", asyncio.open_connection, "127.0.0.1", port)
      assert.are.equal("ECONNREFUSED", err.errno)
      writer:write("2")
      assert.are.equal("2", reader:read(1))
      writer:close()
      asyncio.await(wc)
      assert.is_true(closed)
    end)
  end)

  it("refused connections raise ConnectionError with the errno name", function()
    run(function()
      local server = asyncio.start_server(echo, "127.0.0.1", 0)
      local _, port = server.sockets[1]:getsockname()
      close_server(server)
      local err = raises("ConnectionError", asyncio.open_connection, "127.0.0.1", port)
      assert.are.equal("ECONNREFUSED", err.errno)
      assert.matches("refused", err.message)
      assert.matches(tostring(port), err.message)
      raises("OSError", asyncio.open_connection, "no-such-host.invalid", 80)
    end)
  end)

  it("readexactly and readuntil errors keep or hand back the data", function()
    run(function()
      local server = asyncio.start_server(function(r, w)
        w:write("abc--def" .. string.rep("x", 100) .. "\nlast")
        w:close()
      end, "127.0.0.1", 0)
      local _, port = server.sockets[1]:getsockname()
      local reader, writer = asyncio.open_connection("127.0.0.1", port, {limit = 50})
      assert.are.equal(50, reader:get_limit())
      assert.are.equal("abc--", reader:readuntil("--"))
      local err = raises("LimitOverrun", reader.readuntil, reader, "\n")
      assert.are.equal(103, err.consumed)
      assert.are.equal("def", reader:readexactly(3)) -- the data was kept
      assert.are.equal(string.rep("x", 50), reader:readexactly(50))
      assert.are.equal(string.rep("x", 50), reader:readexactly(50))
      assert.are.equal("\n", reader:readuntil("\n"))
      err = raises("IncompleteRead", reader.readexactly, reader, 10)
      assert.are.equal("last", err.partial)
      assert.are.equal(10, err.expected)
      err = raises("IncompleteRead", reader.readuntil, reader, "\n")
      assert.are.equal("", err.partial)
      assert.are.equal("", reader:readline())
      assert.are.equal("", reader:read(0))
      raises("ValueError", reader.readuntil, reader, "")
      raises("ValueError", reader.readexactly, reader, -1)
      assert.has_error(function() reader:read("x") end)
      writer:close()
      close_server(server)
    end)
  end)

  it("readline returns a partial line at EOF; separators split across chunks are found", function()
    run(function()
      local server = asyncio.start_server(function(r, w)
        w:write("ab<")
        w:drain()
        asyncio.sleep(0.01)
        w:write("|>cd\nno newline")
        w:close()
      end, "127.0.0.1", 0)
      local _, port = server.sockets[1]:getsockname()
      local reader, writer = asyncio.open_connection("127.0.0.1", port)
      assert.are.equal("ab<|>", reader:readuntil("<|>"))
      assert.are.equal("cd\n", reader:readline())
      assert.are.equal("no newline", reader:readline())
      assert.are.equal("", reader:readline())
      writer:close()
      close_server(server)
    end)
  end)

  it("a cancelled or timed-out read leaves the stream usable", function()
    run(function()
      local server = asyncio.start_server(echo, "127.0.0.1", 0)
      local _, port = server.sockets[1]:getsockname()
      local reader, writer = asyncio.open_connection("127.0.0.1", port)
      local t = asyncio.create_task(function() return reader:readline() end)
      asyncio.sleep(0.01)
      t:cancel()
      raises("Cancelled", asyncio.await, t)
      raises("Timeout", asyncio.wait_for, function() return reader:readexactly(4) end, 0.02)
      writer:write("ab")
      raises("Timeout", asyncio.wait_for, function() return reader:readexactly(4) end, 0.05)
      writer:write("cd\n")
      assert.are.equal("abcd\n", reader:readline())
      -- two readers at once is an error, not a corruption
      local t2 = asyncio.create_task(function() return reader:read(10) end)
      asyncio.sleep(0.01)
      raises("RuntimeError", reader.read, reader, 10)
      writer:write("z")
      assert.are.equal("z", asyncio.await(t2))
      writer:close()
      close_server(server)
    end)
  end)

  it("serve_forever runs until cancelled, then closes the server", function()
    run(function()
      local server = asyncio.start_server(echo, "127.0.0.1", 0)
      local t = asyncio.create_task(function() server:serve_forever() end)
      asyncio.sleep(0.01)
      assert.is_true(server:is_serving())
      t:cancel()
      raises("Cancelled", asyncio.await, t)
      assert.is_false(server:is_serving())
      server:wait_closed()
    end)
  end)

  it("a server and a stream closed by <close>; loop exit closes what is left", function()
    run(function()
      do
        local server <close> = asyncio.start_server(echo, "127.0.0.1", 0)
        local _, port = server.sockets[1]:getsockname()
        local reader, writer <close> = asyncio.open_connection("127.0.0.1", port)
        writer:write("q")
        assert.are.equal("q", reader:read(1))
      end
      asyncio.sleep(0.01)
    end)
    collectgarbage()
    collectgarbage()
    local live = asyncio._live_loops()
    asyncio.run(function()
      local server = asyncio.start_server(echo, "127.0.0.1", 0)
      local _, port = server.sockets[1]:getsockname()
      local _, writer = asyncio.open_connection("127.0.0.1", port)
      writer:write("left open")
      KEEP = {server, writer}
    end)
    KEEP = nil
    collectgarbage()
    collectgarbage()
    assert.are.equal(live, asyncio._live_loops())
  end)

  it("a failing client function closes its connection", function()
    run(function()
      local server = asyncio.start_server(function() error("boom") end, "127.0.0.1", 0)
      local _, port = server.sockets[1]:getsockname()
      local reader, writer = asyncio.open_connection("127.0.0.1", port)
      assert.are.equal("", reader:read())
      writer:close()
      close_server(server)
      collectgarbage()
    end)
  end)

  it("bad arguments raise clear errors; calls outside a task are refused", function()
    run(function()
      assert.has_error(function() asyncio.start_server(42, "127.0.0.1", 0) end)
      assert.has_error(function() asyncio.open_connection("127.0.0.1", 1, 5) end)
      raises("ValueError", asyncio.open_connection, "127.0.0.1", 1, {limit = 0})
      local server = asyncio.start_server(echo, "127.0.0.1", 0)
      local _, port = server.sockets[1]:getsockname()
      local _, writer = asyncio.open_connection("127.0.0.1", port)
      assert.has_error(function() writer:write(42) end)
      writer:close()
      writer:wait_closed()
      raises("ConnectionError", writer.write, writer, "after close")
      raises("ConnectionError", writer.drain, writer)
      close_server(server)
    end)
    assert.has_error(function() asyncio.open_connection("127.0.0.1", 1) end)
  end)
end)

describe("asyncio.start_server{workers = N}", function()
  after_each(support.no_loops_left)

  local function whoami(r, w)
    local threading = require "braid.threading"
    r:readline()
    w:write(threading.current_thread().name .. "\n")
    w:close()
  end

  local function ask(port)
    local r, w = asyncio.open_connection("127.0.0.1", port)
    w:write("who?\n")
    local name = r:readline()
    w:close()
    w:wait_closed()
    return name
  end

  it("answers from more than one thread on one port; close stops every worker", function()
    run(function()
      local server = asyncio.start_server(whoami, "127.0.0.1", 0, {workers = 2})
      local host, port = server.sockets[1]:getsockname()
      assert.are.equal("127.0.0.1", host)
      local fs = {}
      for i = 1, 60 do fs[i] = function() return ask(port) end end
      local seen, n = {}, 0
      for _, name in ipairs(asyncio.gather(table.unpack(fs))) do
        assert.matches("^asyncio%-worker%-%d\n$", name)
        if not seen[name] then n = n + 1 end
        seen[name] = true
      end
      assert.are.equal(2, n)
      assert.is_true(server:is_serving())
      server:close()
      server:wait_closed()
      assert.is_false(server:is_serving())
      local err = raises("ConnectionError", asyncio.open_connection, "127.0.0.1", port)
      assert.are.equal("ECONNREFUSED", err.errno)
    end)
  end)

  it("serve_forever and <close> work as for one loop; bad counts are refused", function()
    run(function()
      do
        local server <close> = asyncio.start_server(whoami, "127.0.0.1", 0, {workers = 1})
        local _, port = server.sockets[1]:getsockname()
        local t = asyncio.create_task(function() server:serve_forever() end)
        assert.are.equal("asyncio-worker-1\n", ask(port))
        t:cancel()
        raises("Cancelled", asyncio.await, t)
        server:wait_closed()
      end
      local plain = asyncio.start_server(whoami, "127.0.0.1", 0)
      local _, taken = plain.sockets[1]:getsockname()
      local err = raises("OSError", asyncio.start_server, whoami, "127.0.0.1", taken, {workers = 2})
      assert.are.equal("EADDRINUSE", err.errno)
      plain:close()
      plain:wait_closed()
      raises("ValueError", asyncio.start_server, whoami, "127.0.0.1", 0, {workers = 0})
      assert.has_error(function() asyncio.start_server(whoami, "127.0.0.1", 0, {workers = 1.5}) end)
    end)
  end)
end)

describe("asyncio streams (Unix sockets)", function()
  after_each(support.no_loops_left)

  local function tmp_path()
    local p = os.tmpname()
    os.remove(p)
    return p .. ".sock"
  end

  it("echo over a Unix socket; the path is removed on close", function()
    run(function()
      local path = tmp_path()
      local server = asyncio.start_unix_server(echo, path)
      assert.are.equal(path, server.sockets[1]:getsockname())
      local reader, writer = asyncio.open_unix_connection(path)
      writer:write("unix\n")
      assert.are.equal("unix\n", reader:readline())
      assert.are.equal(path, writer:get_extra_info("peername"))
      writer:close()
      writer:wait_closed()
      close_server(server)
      assert.is_nil(io.open(path, "r"))
    end)
  end)

  it("connecting to a missing path raises with the errno name", function()
    run(function()
      local err = raises("OSError", asyncio.open_unix_connection, tmp_path())
      assert.are.equal("ENOENT", err.errno)
    end)
  end)

  it("serves many clients at once", function()
    run(function()
      local path = tmp_path()
      local server = asyncio.start_unix_server(echo, path)
      local fs = {}
      for i = 1, 50 do
        fs[i] = function()
          local r, w = asyncio.open_unix_connection(path)
          w:write(i .. "\n")
          local got = r:readline()
          w:close()
          return got == i .. "\n"
        end
      end
      local res = asyncio.gather(table.unpack(fs))
      for i = 1, 50 do assert.is_true(res[i]) end
      close_server(server)
    end)
  end)
end)

-- The echo fast paths (docs/performance.md) keep Python's semantics: a read
-- that finds its data buffered and a drain under the high-water mark return
-- without suspending the task (as `await` on them does not yield in
-- Python); over the mark drain suspends; a cancellation waits for the
-- task's next real suspension.
describe("asyncio streams: calls that need not wait do not suspend", function()
  local braid = require "braid"
  after_each(support.no_loops_left)

  -- ticks counts the passes of a busy neighbour task: unchanged across a
  -- call means the calling task never let the loop run another task
  local function with_neighbour(body)
    run(function()
      local ticks, stop = 0, false
      local n = asyncio.create_task(function()
        while not stop do
          ticks = ticks + 1
          asyncio.sleep(0)
        end
      end)
      body(function() return ticks end)
      stop = true
      asyncio.await(n)
    end)
  end

  local function pair(server_fn)
    local server = asyncio.start_server(server_fn, "127.0.0.1", 0)
    local _, port = server.sockets[1]:getsockname()
    local reader, writer = asyncio.open_connection("127.0.0.1", port)
    return server, reader, writer
  end

  it("buffered reads and drain under the high-water mark return in the same step", function()
    for _ = 1, 20 do
      with_neighbour(function(ticks)
        local server, reader, writer = pair(function(r, w)
          w:write("abcdefgh\n")
          w:drain()
          r:read()
          w:close()
        end)
        assert.are.equal("a", reader:readexactly(1)) -- waits: the rest comes in the same segment
        local t0 = ticks()
        assert.are.equal("bc", reader:readexactly(2))
        assert.are.equal("de", reader:read(2))
        assert.are.equal("fgh\n", reader:readline())
        writer:write("x")
        writer:drain()
        writer:write("y")
        writer:drain()
        assert.are.equal(t0, ticks())
        writer:close()
        writer:wait_closed()
        close_server(server)
      end)
    end
  end)

  it("drain over the high-water mark suspends until the buffer falls to the low mark", function()
    with_neighbour(function(ticks)
      local go = asyncio.Event()
      local server, _, writer = pair(function(r, w)
        go:wait()
        while r:read(65536) ~= "" do end
        w:close()
      end)
      writer:set_write_buffer_limits(1024, 256)
      writer:write(string.rep("z", 16 * 1024 * 1024))
      assert.is_true(writer:get_write_buffer_size() > 1024)
      local t0 = ticks()
      local drainer = asyncio.create_task(function() writer:drain() end)
      asyncio.sleep(0.02)
      assert.is_false(drainer:done()) -- still over the mark: it waits
      go:set()
      asyncio.await(drainer)
      assert.is_true(ticks() > t0)
      assert.is_true(writer:get_write_buffer_size() <= 256)
      writer:close()
      writer:wait_closed()
      close_server(server)
    end)
  end)

  it("a task cancelled while running gets buffered data, then Cancelled at its next wait", function()
    run(function()
      local server, reader, writer = pair(function(r, w)
        w:write("0123456789")
        w:drain()
        r:read()
        w:close()
      end)
      assert.are.equal("0", reader:readexactly(1))
      local t = asyncio.create_task(function()
        asyncio.current_task():cancel()
        local got = reader:readexactly(4) -- buffered: no suspension
        writer:write("q")
        writer:drain() -- under the mark: no suspension
        assert(reader:readexactly(1) == "5") -- buffered too
        local ok, err = pcall(asyncio.sleep, 0) -- the first real suspension
        return got, ok, err
      end)
      local ok, got, sok, serr = pcall(asyncio.await, t)
      assert.is_true(ok)
      assert.are.equal("1234", got)
      assert.is_false(sok)
      assert.is_true(braid.Error.is(serr, "Cancelled"))
      assert.are.equal("6789", reader:read(4)) -- the stream is intact
      writer:close()
      writer:wait_closed()
      close_server(server)
    end)
  end)

  -- the server side writes to the client, then sets go: the loop's next
  -- pass finds the data (loopback delivers it within the write) and wakes
  -- the task reading it, queued after the task go woke
  local function data_pair()
    local go, swriter = asyncio.Event(), nil
    local server, reader, writer = pair(function(r, w)
      swriter = w
      r:read()
      w:close()
    end)
    while not swriter do asyncio.sleep(0) end
    local function send(data)
      swriter:write(data)
      go:set()
    end
    return server, reader, writer, send, go
  end

  -- t read "data", then got Cancelled at its next read; the stream is
  -- intact and readable by another task
  local function cancelled_after_data(t, server, reader, writer, send)
    local ok, got, rok, rerr = pcall(asyncio.await, t)
    assert.is_true(ok, tostring(got))
    assert.are.equal("data", got)
    assert.is_false(rok)
    assert.is_true(braid.Error.is(rerr, "Cancelled"))
    send("more")
    assert.are.equal("more", reader:read(100))
    writer:close()
    writer:wait_closed()
    close_server(server)
  end

  it("a task cancelled after its data came, before it ran, reads it, then gets Cancelled at its next wait", function()
    run(function()
      local server, reader, writer, send, go = data_pair()
      local t = asyncio.create_task(function()
        local got = reader:read(100) -- waits: nothing there yet
        local ok, err = pcall(reader.read, reader, 100) -- the next wait
        return got, ok, err
      end)
      asyncio.create_task(function() send("data") end)
      go:wait() -- woken by send: this task runs before t in the next pass
      t:cancel()
      cancelled_after_data(t, server, reader, writer, send)
    end)
  end)

  it("a task woken by its data that cancels itself gets Cancelled at its next wait", function()
    run(function()
      local server, reader, writer, send = data_pair()
      local first
      local t = asyncio.create_task(function()
        local got = reader:read(100)
        first = got
        asyncio.current_task():cancel()
        local ok, err = pcall(reader.read, reader, 100) -- no data comes: the cancellation ends it
        return got, ok, err
      end)
      asyncio.sleep(0) -- t waits in read
      send("data")
      while not first do asyncio.sleep(0) end
      -- t's step has ended in its second read, with the cancellation queued:
      -- it ends at its next step, not when more data comes
      for _ = 1, 10 do
        if t:done() then break end
        asyncio.sleep(0)
      end
      assert.is_true(t:done())
      cancelled_after_data(t, server, reader, writer, send)
    end)
  end)

  it("write refuses non-strings with the caller's position; earlier data is kept", function()
    run(function()
      local server, reader, writer = pair(echo)
      writer:write("ok")
      local ok, err = pcall(writer.write, writer, 42)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'write' %(string expected, got number%)", err)
      ok, err = pcall(function() writer:write({}) end)
      assert.matches("asyncio_streams_spec.lua:%d+: bad argument #1 to 'write' %(string expected, got table%)", err)
      writer:drain()
      assert.are.equal("ok", reader:readexactly(2))
      writer:close()
      writer:wait_closed()
      close_server(server)
    end)
  end)

  it("the hot methods held by each reader and writer act as the classes' own", function()
    run(function()
      local server, reader, writer = pair(echo)
      for _, k in ipairs({"read", "readexactly"}) do
        assert.is_function(reader[k]) -- bound to the reader
        assert.is_nil(debug.getinfo(reader[k], "S").source:match("^@"))
      end
      for _, k in ipairs({"write", "drain"}) do
        assert.is_function(writer[k])
      end
      asyncio.StreamWriter.write(writer, "abc") -- called through the class
      asyncio.StreamWriter.drain(writer)
      assert.are.equal("ab", asyncio.StreamReader.readexactly(reader, 2))
      assert.are.equal("c", asyncio.StreamReader.read(reader, 10))
      -- one object's method called on another acts on that other
      local server2, reader2, writer2 = pair(echo)
      writer.write(writer2, "xy")
      writer.drain(writer2)
      assert.are.equal("x", reader.readexactly(reader2, 1))
      assert.are.equal("y", reader.read(reader2, 10))
      writer2:write("z")
      assert.are.equal("z", reader2:read(10))
      writer2:close()
      writer2:wait_closed()
      close_server(server2)
      local ok, err = pcall(reader.read, {}, 1) -- a table holding no stream
      assert.is_false(ok)
      assert.matches("braid.asyncio.stream expected, got nil", err)
      ok, err = pcall(writer.write, 42, "x")
      assert.is_false(ok)
      assert.matches("stream reader or writer expected, got number", err)
      for _, c in ipairs({{asyncio.StreamWriter.write, "x"}, {asyncio.StreamWriter.drain},
          {asyncio.StreamReader.read, 1}, {asyncio.StreamReader.readexactly, 1}}) do
        ok, err = pcall(c[1], nil, c[2]) -- the classes' own, on no object
        assert.is_false(ok)
        assert.matches("stream reader or writer expected, got nil", err)
      end
      writer:close()
      writer:wait_closed()
      close_server(server)
    end)
  end)
end)
