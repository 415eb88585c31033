-- braid.asyncio files, Lua half: asyncio.open(path, mode) -> File, on the
-- libuv fs operations of bindings/lfiles.c (libuv's thread pool does the
-- blocking calls; the task suspends, the loop keeps running). Reads and
-- writes go at explicit offsets, so a cancelled operation never moves the
-- position behind the file's back; one operation runs at a time per file.
return function(M, C)
  local braid = require "braid"
  local Error = braid.Error
  local setmetatable, type, error, pcall, tostring, select, math_type =
    setmetatable, type, error, pcall, tostring, select, math.type
  local concat, find, sub = table.concat, string.find, string.sub
  local get_loop = M._get_loop

  local CHUNK = 65536

  local function raise(kind, msg, level)
    error(Error.new(kind, msg), (level or 1) + 1)
  end

  local File = {__name = "braid.asyncio.File"}
  File.__index = File

  -- An operation this file started earlier and whose task was cancelled
  -- (or failed) before it finished: wait for it to end first, so that at
  -- most one operation uses the descriptor. A cancelled write that still
  -- happened moves the position by what it wrote.
  local function settle(self)
    local op = self._op
    if not op then return end
    local ok, r = pcall(C._fs_wait, op)
    if not ok and Error.is(r, "Cancelled") then error(r, 0) end
    self._op = nil
    if ok and self._op_write and math_type(r) == "integer" then self._off = self._off + r end
  end

  -- runs op to its end and returns its result; the file remembers it while
  -- it runs (a cancellation leaves it to settle)
  local function run(self, op, what, write)
    self._op, self._op_write = op, write
    local r = C._fs_wait(op, what, self.name)
    self._op = nil
    return r
  end

  local function check_open(self, level)
    if not self._f then raise("ValueError", "I/O operation on closed file", (level or 1) + 1) end
  end

  -- the buffered read-ahead is dropped: the position is where the reader is
  local function unbuffer(self)
    local n = #self._buf - self._bi + 1
    if n > 0 then self._off = self._off - n end
    self._buf, self._bi = "", 1
  end

  -- reads one more chunk into the buffer; false at EOF
  local function fill(self, want)
    settle(self)
    local loop = self._loop
    local s = run(self, C._fs_read(loop.c, self._f, want or CHUNK, self:_at()), "read")
    if #s == 0 then return false end
    self._off = self._off + #s
    if self._bi > #self._buf then
      self._buf, self._bi = s, 1
    else
      self._buf, self._bi = sub(self._buf, self._bi) .. s, 1
    end
    return true
  end

  local function read_n(self, n)
    if n == 0 then
      if self._bi <= #self._buf or fill(self) then return "" end
      return nil
    end
    while #self._buf - self._bi + 1 < n do
      if not fill(self, CHUNK > n and CHUNK or n) then break end
    end
    local avail = #self._buf - self._bi + 1
    if avail == 0 then return nil end
    if avail > n then avail = n end
    local s = sub(self._buf, self._bi, self._bi + avail - 1)
    self._bi = self._bi + avail
    return s
  end

  local function read_all(self)
    local parts = {sub(self._buf, self._bi)}
    self._buf, self._bi = "", 1
    while fill(self) do
      parts[#parts + 1] = self._buf
      self._buf, self._bi = "", 1
    end
    return concat(parts)
  end

  local function read_line(self, keep)
    local from = self._bi
    while true do
      local e = find(self._buf, "\n", from, true)
      if e then
        local s = sub(self._buf, self._bi, keep and e or e - 1)
        self._bi = e + 1
        return s
      end
      from = #self._buf + 1
      local start = self._bi
      if not fill(self) then
        if self._bi > #self._buf then return nil end
        local s = sub(self._buf, self._bi)
        self._bi = #self._buf + 1
        return s
      end
      from = from - start + 1
    end
  end

  local function read_one(self, fmt, argn)
    if math_type(fmt) == "integer" then
      if fmt < 0 then raise("ValueError", "read size must not be negative", 3) end
      return read_n(self, fmt)
    end
    if type(fmt) == "string" then
      local f = fmt:gsub("^%*", ""):sub(1, 1)
      if f == "a" then return read_all(self) end
      if f == "l" then return read_line(self, false) end
      if f == "L" then return read_line(self, true) end
    end
    error(("bad argument #%d to 'read' (invalid format)"):format(argn), 3)
  end

  -- read(...): formats as Lua's file:read: n (nil at EOF), "a", "l", "L"
  function File:read(...)
    check_open(self, 2)
    if not self._readable then raise("OSError", "read: file not open for reading", 2) end
    local n = select("#", ...)
    if n == 0 then return read_line(self, false) end
    if n == 1 then return read_one(self, (...), 1) end
    local out = {}
    for i = 1, n do
      out[i] = read_one(self, (select(i, ...)), i)
      if out[i] == nil then return table.unpack(out, 1, i) end
    end
    return table.unpack(out, 1, n)
  end

  -- lines(fmt...): an iterator for a for loop inside a task
  function File:lines(...)
    check_open(self, 2)
    local n, fmts = select("#", ...), {...}
    return function()
      if not self._f then return nil end
      if n == 0 then return self:read("l") end
      return self:read(table.unpack(fmts, 1, n))
    end
  end

  -- write(...): strings and numbers, as Lua's file:write; returns the file
  function File:write(...)
    check_open(self, 2)
    if not self._writable then raise("OSError", "write: file not open for writing", 2) end
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do
      local v = select(i, ...)
      local t = type(v)
      if t ~= "string" and t ~= "number" then
        error(("bad argument #%d to 'write' (string expected, got %s)"):format(i, t), 2)
      end
      parts[i] = tostring(v)
    end
    local data = n == 1 and parts[1] or concat(parts)
    settle(self)
    unbuffer(self)
    local loop = self._loop
    local done = 0
    while done < #data do
      local piece = done == 0 and data or sub(data, done + 1)
      local w = run(self, C._fs_write(loop.c, self._f, piece, not self._append and self:_at() or nil),
        "write", true)
      self._off = self._off + w
      done = done + w
      if w == 0 then raise("OSError", "write: no progress", 2) end
    end
    return self
  end

  local function size(self)
    settle(self)
    return run(self, C._fs_size(self._loop.c, self._f), "seek")
  end

  -- seek([whence [, offset]]): "set", "cur" (default) or "end"; returns the
  -- new position
  function File:seek(whence, offset)
    check_open(self, 2)
    settle(self)
    whence = whence or "cur"
    offset = offset or 0
    if math_type(offset) ~= "integer" then
      error("bad argument #2 to 'seek' (integer expected)", 2)
    end
    local base
    if whence == "set" then
      base = 0
    elseif whence == "cur" then
      base = self._off - (#self._buf - self._bi + 1)
    elseif whence == "end" then
      base = size(self)
    else
      error(("bad argument #1 to 'seek' (invalid option '%s')"):format(tostring(whence)), 2)
    end
    local pos = base + offset
    if pos < 0 then raise("OSError", "seek: Invalid argument", 2) end
    self._buf, self._bi, self._off = "", 1, pos
    return pos
  end

  -- close(): idempotent; waits for the descriptor to be closed
  function File:close()
    if not self._f then return true end
    settle(self)
    local op = C._fs_close(self._loop.c, self._f)
    self._f = nil
    self._buf, self._bi = "", 1
    if op then run(self, op, "close") end
    return true
  end
  File.__close = File.close

  function File:__tostring()
    return ("asyncio file (%s, %s)"):format(self.name, self._f and "open" or "closed")
  end

  -- asyncio.open(path [, mode]): modes as io.open's ("r", "w", "a", "r+",
  -- "w+", "a+", with "b" ignored) and "x" (create, failing if it exists)
  function M.open(path, mode)
    if type(path) ~= "string" then
      error(("bad argument #1 to 'open' (string expected, got %s)"):format(type(path)), 2)
    end
    if mode ~= nil and type(mode) ~= "string" then
      error(("bad argument #2 to 'open' (string expected, got %s)"):format(type(mode)), 2)
    end
    local loop = get_loop()
    local op, append, rd, wr = C._fs_open(loop.c, path, mode)
    local f, seekable = C._fs_wait(op, "open", path)
    local self = setmetatable({name = path, mode = mode or "r", _loop = loop, _f = f, _off = 0,
      _at = seekable and function(s) return s._off end or function() return nil end,
      _buf = "", _bi = 1, _append = append, _readable = rd, _writable = wr}, File)
    if append and seekable then self._off = size(self) end
    return self
  end

  M._request_count = function() return C._request_count(get_loop().c) end
end
