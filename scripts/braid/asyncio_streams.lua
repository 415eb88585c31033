-- braid.asyncio streams, Lua half: open_connection, start_server and
-- their Unix-socket variants, StreamReader, StreamWriter and Server, on the
-- C stream boxes of bindings/lstreams.c (whose waits suspend only the task).
return function(M, C)
  local braid = require "braid"
  local Error = braid.Error
  local setmetatable, type, tostring, error, pcall, ipairs, next =
    setmetatable, type, tostring, error, pcall, ipairs, next
  local mtype, concat = math.type, table.concat
  local this_task, get_loop = M._this_task, M._get_loop
  local c_read, c_write = C._read, C._write
  local READ_UNTIL, READ_LINE = C.READ_UNTIL, C.READ_LINE

  local function raise(kind, msg, level)
    error(Error.new(kind, msg), (level or 1) + 1)
  end

  local function check_int(v, argn, what)
    if mtype(v) ~= "integer" then
      error(("bad argument #%d to '%s' (integer expected, got %s)"):format(argn, what,
        mtype(v) or type(v)), 3)
    end
  end

  -- ---- StreamReader ----

  local StreamReader = {__name = "braid.asyncio.StreamReader"}
  StreamReader.__index = StreamReader

  function StreamReader:readline()
    return c_read(self._s, READ_LINE, "\n")
  end

  function StreamReader:readuntil(sep)
    if sep == nil then sep = "\n" end
    if type(sep) ~= "string" then
      error(("bad argument #1 to 'readuntil' (string expected, got %s)"):format(type(sep)), 2)
    end
    if sep == "" then raise("ValueError", "Separator should be at least one-byte string", 2) end
    return c_read(self._s, READ_UNTIL, sep)
  end

  -- the hot ones in C (bindings/lstreams.c), same arguments and errors
  StreamReader.read, StreamReader.readexactly = C._m_read, C._m_readexactly

  function StreamReader:at_eof() return C._at_eof(self._s) end
  function StreamReader:get_limit() return C._limit(self._s) end

  function StreamReader:__tostring() return "<StreamReader>" end

  -- ---- StreamWriter ----

  local StreamWriter = {__name = "braid.asyncio.StreamWriter"}
  StreamWriter.__index = StreamWriter

  StreamWriter.write = C._m_write -- in C, as read

  function StreamWriter:writelines(list)
    if type(list) ~= "table" then
      error(("bad argument #1 to 'writelines' (table expected, got %s)"):format(type(list)), 2)
    end
    c_write(self._s, concat(list))
  end

  StreamWriter.drain = C._m_drain
  function StreamWriter:write_eof() C._shutdown(self._s) end
  function StreamWriter:can_write_eof() return true end
  function StreamWriter:close() C._close(self._s) end
  function StreamWriter:is_closing() return C._is_closing(self._s) end
  function StreamWriter:wait_closed() C._close_wait(self._s) end
  StreamWriter.__close = StreamWriter.close

  -- "peername" / "sockname": host, port (TCP) or the path (Unix)
  function StreamWriter:get_extra_info(name, default)
    if name == "peername" or name == "sockname" then
      local a, b = C._name(self._s, name == "peername")
      if a ~= nil then return a, b end
    end
    return default
  end

  function StreamWriter:set_write_buffer_limits(high, low)
    if high == nil then high = 65536 end
    C._set_water(self._s, high, low)
  end

  function StreamWriter:get_write_buffer_size() return C._write_size(self._s) end
  function StreamWriter:__tostring() return "<StreamWriter>" end

  local function streams(s, limit)
    if limit ~= nil then C._set_limit(s, limit) end
    -- the hot methods held by the objects themselves (a method found
    -- through the metatable costs the VM's slow path at every call), bound
    -- to them and their stream (no lookup of self._s at each call)
    local r = setmetatable({_s = s, read = false, readexactly = false}, StreamReader)
    r.read, r.readexactly = C._bind_reader(r, s)
    local w = setmetatable({_s = s, reader = r, write = false, drain = false}, StreamWriter)
    w.write, w.drain = C._bind_writer(w, s)
    return r, w
  end

  local function check_opts(opts, what)
    if opts == nil then return {} end
    if type(opts) ~= "table" then
      error(("bad argument to '%s' (options table expected, got %s)"):format(what, type(opts)), 3)
    end
    if opts.limit ~= nil then
      check_int(opts.limit, 1, what)
      if opts.limit <= 0 then raise("ValueError", "limit must be positive", 3) end
    end
    return opts
  end

  local function resolve(loop, host, port, passive)
    local r <close> = C._resolver(loop.c, host, tostring(port), passive)
    local addrs = C._resolve(r)
    if #addrs == 0 then
      raise("OSError", ("getaddrinfo %s: no address"):format(tostring(host)), 3)
    end
    return addrs
  end

  -- ---- clients ----

  local function connect(s, where, what)
    C._connect(s, where)
    C._connect_wait(s, what)
  end

  function M.open_connection(host, port, opts)
    opts = check_opts(opts, "open_connection")
    local loop = get_loop()
    this_task("open_connection")
    if port == nil then raise("ValueError", "open_connection: port is required", 2) end
    local lasterr
    for _, a in ipairs(resolve(loop, host, port, false)) do
      local s = C._tcp_new(loop.c, nil, false)
      local ok, err = pcall(connect, s, a.addr, a.host .. ":" .. a.port)
      if ok then return streams(s, opts.limit) end
      C._release(s)
      if Error.is(err, "Cancelled") or not Error.is(err) then error(err, 0) end
      lasterr = err
    end
    error(lasterr, 0)
  end

  function M.open_unix_connection(path, opts)
    opts = check_opts(opts, "open_unix_connection")
    if type(path) ~= "string" then
      error(("bad argument #1 to 'open_unix_connection' (string expected, got %s)"):format(
        type(path)), 2)
    end
    local loop = get_loop()
    this_task("open_unix_connection")
    local s = C._pipe_new(loop.c)
    local ok, err = pcall(connect, s, path, path)
    if not ok then
      C._release(s)
      error(err, 0)
    end
    return streams(s, opts.limit)
  end

  -- ---- servers ----

  local Socket = {__name = "braid.asyncio.Socket"}
  Socket.__index = Socket
  function Socket:getsockname() return C._name(self._s, false) end
  function Socket:__tostring()
    local a, b = self:getsockname()
    return ("<Socket %s%s>"):format(tostring(a), b and (":" .. b) or "")
  end

  local Server = {__name = "braid.asyncio.Server"}
  Server.__index = Server

  local function client_done(server)
    server._nclients = server._nclients - 1
    if server._nclients == 0 and server._closed then server._idle:set() end
  end

  -- Runs the client function in its own task; the connection is closed
  -- if it fails (the failure is reported as any task's would be).
  local function client_task(server, s)
    local reader, writer = streams(s, server._limit)
    local ok, err = pcall(server._fn, reader, writer)
    client_done(server)
    if not ok then
      writer:close()
      error(err, 0)
    end
  end

  local function accept_loop(server, ls)
    while true do
      local ok, c = pcall(C._accept, ls)
      if not ok then
        if Error.is(c, "Cancelled") or server._closed then return end
        io.stderr:write("asyncio server: " .. tostring(c) .. "\n") -- EMFILE...
        M.sleep(0.1)
      elseif c == nil then
        return
      else
        server._nclients = server._nclients + 1
        server._idle:clear()
        M.create_task(client_task, server, c)
      end
    end
  end

  local function new_server(loop, fn, listeners, opts)
    local server = setmetatable({_loop = loop, _fn = fn, _limit = opts.limit, _listeners = listeners,
      sockets = {}, _acceptors = {}, _nclients = 0, _closed = false, _idle = M.Event(),
      _stopped = M.Future()}, Server)
    server._idle:set()
    for i, ls in ipairs(listeners) do
      server.sockets[i] = setmetatable({_s = ls}, Socket)
      server._acceptors[i] = M.create_task(accept_loop, server, ls)
    end
    return server
  end

  local function check_fn(fn, what)
    if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
      error(("bad argument #1 to '%s' (function expected, got %s)"):format(what, type(fn)), 3)
    end
  end

  local function listen_all(loop, listeners, addrs, backlog, reuse_port)
    for _, a in ipairs(addrs) do
      local s = C._tcp_new(loop.c, a.family, reuse_port)
      listeners[#listeners + 1] = s
      C._listen(s, a.addr, backlog)
    end
  end

  local start_workers -- below

  function M.start_server(client_fn, host, port, opts)
    check_fn(client_fn, "start_server")
    opts = check_opts(opts, "start_server")
    local loop = get_loop()
    this_task("start_server")
    if host == "" then host = nil end
    if opts.workers ~= nil then return start_workers(loop, client_fn, host, port, opts) end
    local addrs = resolve(loop, host, port or 0, true)
    local listeners = {}
    local ok, err = pcall(listen_all, loop, listeners, addrs, opts.backlog or 100,
      opts.reuse_port or false)
    if not ok then
      for _, s in ipairs(listeners) do C._release(s) end
      error(err, 0)
    end
    return new_server(loop, client_fn, listeners, opts)
  end

  function M.start_unix_server(client_fn, path, opts)
    check_fn(client_fn, "start_unix_server")
    opts = check_opts(opts, "start_unix_server")
    if type(path) ~= "string" then
      error(("bad argument #2 to 'start_unix_server' (string expected, got %s)"):format(
        type(path)), 2)
    end
    local loop = get_loop()
    local s = C._pipe_new(loop.c)
    local ok, err = pcall(C._listen, s, path, opts.backlog or 100)
    if not ok then
      C._release(s)
      error(err, 0)
    end
    return new_server(loop, client_fn, {s}, opts)
  end

  -- Stops accepting (connected clients carry on, as in Python).
  function Server:close()
    if self._closed then return end
    self._closed = true
    for _, ls in ipairs(self._listeners) do C._close(ls) end
    if self._stopped:done() == false then self._stopped:set_result(true) end
    if self._nclients == 0 then self._idle:set() end
  end

  function Server:is_serving() return not self._closed end
  function Server:get_loop() return self._loop end
  function Server:start_serving() end

  -- Waits until the server is closed, its sockets are released and every
  -- client function has returned.
  function Server:wait_closed()
    this_task("wait_closed")
    if not self._closed then M.await(self._stopped) end
    for _, ls in ipairs(self._listeners) do C._close_wait(ls) end
    self._idle:wait()
  end

  -- Serves until cancelled (then closes the server).
  function Server:serve_forever()
    this_task("serve_forever")
    if self._closed then raise("RuntimeError", "server is closed", 2) end
    if self._serving then raise("RuntimeError", "server is already being awaited on serve_forever()", 2) end
    self._serving = true
    local ok, err = pcall(M.await, self._stopped)
    self._serving = false
    if not ok then
      self:close()
      error(err, 0)
    end
  end

  Server.__close = Server.close
  function Server:__tostring()
    return ("<Server sockets=%d%s>"):format(#self.sockets, self._closed and " closed" or "")
  end

  -- ---- one server on every core: {workers = N} ----

  -- The body of each worker thread (crosses by name, as a module function):
  -- its own loop serving the same port through SO_REUSEPORT until stop.
  function M._worker_main(client_fn, host, port, opts, ready, stop)
    local asyncio = require "braid.asyncio"
    return asyncio.run(function()
      local ok, server = pcall(asyncio.start_server, client_fn, host, port,
        {limit = opts.limit, backlog = opts.backlog, reuse_port = true})
      if not ok then
        ready:put(server)
        return
      end
      ready:put(true)
      stop:wait()
      server:close()
      server:wait_closed()
    end)
  end

  local WorkerServer = {__name = "braid.asyncio.Server"}
  WorkerServer.__index = WorkerServer

  local WorkerSocket = {__name = "braid.asyncio.Socket"}
  WorkerSocket.__index = WorkerSocket
  function WorkerSocket:getsockname() return self.host, self.port end
  WorkerSocket.__tostring = Socket.__tostring

  start_workers = function(loop, client_fn, host, port, opts)
    local n = opts.workers
    check_int(n, 4, "start_server")
    if n < 1 then raise("ValueError", "workers must be at least 1", 3) end
    local threading, queue = require "braid.threading", require "braid.queue"
    local a = resolve(loop, host, port or 0, true)[1]
    -- port 0: a probe socket picks the port the workers then share
    local probe = C._tcp_new(loop.c, a.family, true)
    local ok, err = pcall(C._listen, probe, a.addr, 1)
    if not ok then
      C._release(probe)
      error(err, 0)
    end
    local bhost, bport = C._name(probe, false)
    local ready, stop = queue.Queue(), threading.Event()
    local threads, failure = {}, nil
    local wopts = {limit = opts.limit, backlog = opts.backlog}
    for i = 1, n do
      local t = threading.Thread{target = M._worker_main, name = "asyncio-worker-" .. i,
        args = {client_fn, host, bport, wopts, ready, stop}, daemon = true}
      t:start()
      threads[i] = t
    end
    for _ = 1, n do
      local r = ready:get()
      if r ~= true then failure = failure or r end
    end
    C._release(probe)
    if failure then
      stop:set()
      for _, t in ipairs(threads) do t:join() end
      error(failure, 0)
    end
    return setmetatable({_loop = loop, _threads = threads, _stop = stop, _closed = false,
      _stopped = M.Future(), sockets = {setmetatable({host = bhost, port = bport}, WorkerSocket)}},
      WorkerServer)
  end

  -- Stops every worker's server (their connected clients carry on).
  function WorkerServer:close()
    if self._closed then return end
    self._closed = true
    self._stop:set()
    if not self._stopped:done() then self._stopped:set_result(true) end
  end

  -- Waits until every worker thread has finished (its clients included).
  function WorkerServer:wait_closed()
    this_task("wait_closed")
    if not self._closed then M.await(self._stopped) end
    for _, t in ipairs(self._threads) do t:join() end
  end

  WorkerServer.serve_forever = Server.serve_forever
  WorkerServer.is_serving = Server.is_serving
  WorkerServer.get_loop = Server.get_loop
  WorkerServer.start_serving = Server.start_serving
  WorkerServer.__close = WorkerServer.close
  function WorkerServer:__tostring()
    return ("<Server workers=%d%s>"):format(#self._threads, self._closed and " closed" or "")
  end

  M.StreamReader = StreamReader
  M.StreamWriter = StreamWriter
  M.Server = Server

  -- How many libuv handles (streams, listeners) the running loop holds.
  function M._handle_count() return C._handle_count(get_loop().c) end

  require("braid.asyncio_subprocess")(M, C, streams)
end
