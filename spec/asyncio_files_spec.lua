-- braid.asyncio files (asyncio.open on libuv's fs): reads and writes in Lua
-- io's formats, seek, lines in a for loop, OSError objects, the loop running
-- during file I/O, and cancellation. Every test ends with no libuv handle and
-- no fs request of the loop left.
local asyncio = require "braid.asyncio"

local support = require "spec.support.asyncio"
local raises = support.raises

local function run(main)
  return support.run_no_handles(function()
    local r = main()
    assert.are.equal(0, asyncio._request_count(), "fs requests left in flight")
    return r
  end)
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

describe("asyncio files", function()
  local path
  before_each(function() path = os.tmpname() end)
  after_each(function()
    os.remove(path)
    support.no_loops_left()
  end)

  it("writes and reads back in every format", function()
    run(function()
      local f = asyncio.open(path, "w")
      assert.are.equal(f, f:write("line one\n", 2, "\n", "", "tail"))
      assert.is_true(f:close())
      assert.is_true(f:close()) -- closing twice is fine
      assert.are.equal("line one\n2\ntail", slurp(path))
      local r <close> = asyncio.open(path)
      assert.are.equal("line one", r:read())
      assert.are.equal("2\n", r:read("L"))
      assert.are.equal("ta", r:read(2))
      assert.are.equal("", r:read(0))
      assert.are.equal("il", r:read("a"))
      assert.is_nil(r:read(1))
      assert.is_nil(r:read(0))
      assert.is_nil(r:read("l"))
      assert.are.equal("", r:read("a"))
      r:seek("set")
      local a, b, c = r:read("l", 1, "a")
      assert.are.same({"line one", "2", "\ntail"}, {a, b, c})
    end)
  end)

  it("lines iterates in a for loop inside a task, with formats", function()
    local f = assert(io.open(path, "w"))
    for i = 1, 1000 do f:write("row ", i, "\n") end
    f:write("no newline")
    f:close()
    run(function()
      local got = {}
      local file <close> = asyncio.open(path)
      for l in file:lines() do got[#got + 1] = l end
      assert.are.equal(1001, #got)
      assert.are.equal("row 1", got[1])
      assert.are.equal("row 1000", got[1000])
      assert.are.equal("no newline", got[1001])
      file:seek("set")
      local n = 0
      for chunk in file:lines(4096) do n = n + #chunk end
      assert.are.equal(#slurp(path), n)
    end)
  end)

  it("seek: set, cur, end; reads and writes follow the position", function()
    run(function()
      local f <close> = asyncio.open(path, "w+")
      f:write("0123456789")
      assert.are.equal(10, f:seek())
      assert.are.equal(2, f:seek("set", 2))
      assert.are.equal("234", f:read(3))
      assert.are.equal(5, f:seek())
      assert.are.equal(7, f:seek("cur", 2))
      assert.are.equal("789", f:read("a"))
      assert.are.equal(10, f:seek("end"))
      assert.are.equal(8, f:seek("end", -2))
      f:seek("set", 3)
      assert.are.equal("3", f:read(1)) -- read-ahead buffered the rest
      f:write("XY")                     -- lands at 4, not at the buffer's end
      f:seek("set")
      assert.are.equal("0123XY6789", f:read("a"))
      raises("OSError", f.seek, f, "set", -1)
      assert.has_error(function() f:seek("middle") end)
    end)
  end)

  it("append and exclusive-create modes", function()
    run(function()
      local f = asyncio.open(path, "w")
      f:write("abc")
      f:close()
      f = asyncio.open(path, "a")
      assert.are.equal(3, f:seek())
      f:write("def")
      f:close()
      f = asyncio.open(path, "a+")
      f:write("g")
      f:seek("set")
      assert.are.equal("abcdefg", f:read("a"))
      f:close()
      local e = raises("OSError", asyncio.open, path, "x")
      assert.are.equal("EEXIST", e.errno)
      os.remove(path)
      f = asyncio.open(path, "x")
      f:write("new")
      f:close()
      assert.are.equal("new", slurp(path))
    end)
  end)

  it("errors are OSError objects with the errno name and the path", function()
    run(function()
      local e = raises("OSError", asyncio.open, "/nonexistent-dir/file.txt")
      assert.are.equal("ENOENT", e.errno)
      assert.are.equal("/nonexistent-dir/file.txt", e.filename)
      assert.truthy(tostring(e):find("/nonexistent-dir/file.txt", 1, true))
      e = raises("OSError", asyncio.open, "/", "w")
      assert.are.equal("EISDIR", e.errno)
      local w <close> = asyncio.open(path, "w")
      raises("OSError", w.read, w, 1)
      local r = asyncio.open(path)
      raises("OSError", r.write, r, "x")
      r:close()
      raises("ValueError", r.read, r, 1)
      raises("ValueError", r.write, r, "x")
      raises("ValueError", r.seek, r)
      assert.has_error(function() asyncio.open(path, "q") end)
      assert.has_error(function() asyncio.open(42) end)
      assert.has_error(function() w:write({}) end)
      assert.has_error(function() w:read("z") end)
    end)
  end)

  it("a big file round-trips intact while other tasks keep running", function()
    local parts = {}
    for i = 1, 4096 do parts[i] = ("%07d:"):format(i):rep(128) end -- 4 MiB
    local data = table.concat(parts)
    run(function()
      local turns = 0
      local spinner = asyncio.create_task(function()
        while true do
          asyncio.sleep(0)
          turns = turns + 1
        end
      end)
      local f = asyncio.open(path, "w")
      for i = 1, #parts do f:write(parts[i]) end
      f:close()
      local writes_turns = turns
      f = asyncio.open(path)
      local got = {}
      while true do
        local s = f:read(65536)
        if not s then break end
        got[#got + 1] = s
      end
      f:close()
      spinner:cancel()
      assert.are.equal(#data, #table.concat(got))
      assert.is_true(table.concat(got) == data)
      assert.is_true(writes_turns >= 1000, "the loop ran " .. writes_turns .. " turns")
      assert.is_true(turns - writes_turns >= 32)
    end)
  end)

  it("concurrent tasks copy different files at once", function()
    run(function()
      local n = 8
      local tasks = {}
      for i = 1, n do
        tasks[i] = asyncio.create_task(function()
          local src, dst = path .. ".src" .. i, path .. ".dst" .. i
          local w = asyncio.open(src, "w")
          w:write(("task %d\n"):format(i):rep(5000))
          w:close()
          local r <close> = asyncio.open(src)
          local o <close> = asyncio.open(dst, "w")
          for chunk in r:lines(8192) do o:write(chunk) end
          o:close()
          local same = slurp(src) == slurp(dst)
          os.remove(src)
          os.remove(dst)
          return same
        end)
      end
      for i = 1, n do assert.is_true(asyncio.wait_for(tasks[i], 10)) end
    end)
  end)

  it("a read blocked on a FIFO does not stop the loop; cancelling it leaks nothing", function()
    os.remove(path)
    assert.is_true(os.execute("mkfifo " .. path))
    run(function()
      local ticker = support.ticker()
      local reader
      local opened = asyncio.create_task(function() reader = asyncio.open(path, "r") end)
      local writer = asyncio.open(path, "w") -- both opens block until the other end is there
      asyncio.wait_for(opened, 10)
      local before = ticker.n
      raises("Timeout", asyncio.wait_for, function() return reader:read(5) end, 0.05)
      assert.is_true(ticker.n > before, "the loop kept running while the read was blocked")
      writer:write("hello")
      -- the cancelled read was still running in libuv's pool: it takes
      -- "hello" (pipes cannot un-read), and the next read waits for it first
      writer:write("world")
      writer:close()
      local rest = reader:read("a")
      assert.is_true(rest == "world" or rest == "helloworld" or rest == "", rest)
      reader:close()
      ticker.task:cancel()
      assert.are.equal(0, asyncio._request_count())
    end)
  end)

  it("cancelling reads of a regular file leaves the position unchanged (20 rounds)", function()
    local f = assert(io.open(path, "w"))
    f:write(("0123456789"):rep(100000))
    f:close()
    run(function()
      local file <close> = asyncio.open(path)
      local pos = 0
      for round = 1, 20 do
        local t = asyncio.create_task(function() return file:read(1000) end)
        for _ = 1, round % 3 do asyncio.sleep(0) end
        t:cancel()
        local ok, got = pcall(asyncio.wait_for, t, 10)
        if ok then pos = pos + #got end
        assert.are.equal(pos, file:seek())
        local s = file:read(10)
        assert.are.equal(("0123456789"):sub(pos % 10 + 1) .. ("0123456789"):sub(1, pos % 10), s)
        pos = pos + 10
      end
    end)
  end)

  it("outside a task it raises a clear error", function()
    assert.has_error(function() asyncio.open(path) end)
  end)
end)
