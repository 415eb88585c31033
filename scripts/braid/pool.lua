-- braid.pool: multiprocessing.pool.ThreadPool and AsyncResult, a second
-- face on the ThreadPoolExecutor core (braid.multiprocessing.pool re-exports it).
local M = ... or {}
local braid = require "braid"
local futures = require "braid.futures"
local Error = braid.Error
local pack, unpack = table.pack, table.unpack

local function raise(kind, msg, level)
  error(Error.new(kind, msg), (level or 1) + 1)
end

local RUN, CLOSE, TERMINATE = "RUN", "CLOSE", "TERMINATE"

---------------------------------------------------------------------------
-- AsyncResult: one future (apply_async) or a list of chunk futures (map_async)

local AsyncResult = {}
AsyncResult.__index = AsyncResult
AsyncResult.__name = "braid.AsyncResult"

-- fs: futures; collect(fs) -> the value get() returns (raises on error).
local function new_result(fs, collect, callback, error_callback)
  local self = setmetatable({ _fs = fs, _collect = collect, _pending = #fs }, AsyncResult)
  if callback or error_callback then
    local fired = false
    local function on_done()
      self._pending = self._pending - 1
      if self._pending > 0 or fired then return end
      fired = true
      local ok, v = pcall(collect, fs)
      if ok then
        if callback then callback(v) end
      elseif error_callback then
        error_callback(v)
      end
    end
    if #fs == 0 then on_done() end
    for _, f in ipairs(fs) do f:add_done_callback(on_done) end
  end
  return self
end

--- r:ready() -> whether the call(s) completed
function AsyncResult:ready()
  for _, f in ipairs(self._fs) do
    if not f:done() then return false end
  end
  return true
end

--- r:wait(timeout): waits until ready or the timeout passes
function AsyncResult:wait(timeout)
  futures.wait(self._fs, { timeout = timeout })
end

--- r:get(timeout) -> the result, or raises the call's error / Timeout
function AsyncResult:get(timeout)
  self:wait(timeout)
  if not self:ready() then raise("Timeout", "the result is not ready", 2) end
  return self._collect(self._fs)
end

--- r:successful() -> whether the call(s) completed without error
function AsyncResult:successful()
  if not self:ready() then raise("ValueError", "the result is not ready", 2) end
  return (pcall(self._collect, self._fs))
end

---------------------------------------------------------------------------
-- ThreadPool

local ThreadPool = {}
ThreadPool.__index = ThreadPool
ThreadPool.__name = "braid.ThreadPool"

--- ThreadPool(processes) or ThreadPool{processes=, initializer=, initargs=}
function M.ThreadPool(opts)
  if type(opts) ~= "table" then opts = { processes = opts } end
  local n = opts.processes
  if n == nil then n = braid.cpu_count() end
  if math.type(n) ~= "integer" or n < 1 then
    raise("ValueError", "Number of processes must be at least 1", 2)
  end
  local ex = futures.ThreadPoolExecutor {
    max_workers = n,
    initializer = opts.initializer,
    initargs = opts.initargs,
    thread_name_prefix = "ThreadPool",
  }
  return setmetatable({ _ex = ex, _state = RUN, _processes = n }, ThreadPool)
end

function ThreadPool:_check_running()
  if self._state ~= RUN then raise("ValueError", "Pool not running", 3) end
end

local function one_result(fs)
  return fs[1]:result()
end

--- pool:apply_async(fn, args, {callback=, error_callback=}) -> AsyncResult
function ThreadPool:apply_async(fn, args, opts)
  self:_check_running()
  args = args or {}
  opts = opts or {}
  local f = self._ex:submit(fn, unpack(args, 1, args.n or #args))
  return new_result({ f }, one_result, opts.callback, opts.error_callback)
end

--- pool:apply(fn, args) -> fn(table.unpack(args))
function ThreadPool:apply(fn, args)
  return self:apply_async(fn, args):get()
end

-- Rows of argument tuples from an iterable (one argument each, or star).
local function rows_of(iterable, star)
  local its = futures._map_args(iterable)
  local rows = futures._collect_rows(its)
  if star then
    for i, r in ipairs(rows) do
      local a = r[1]
      if type(a) ~= "table" then
        raise("TypeError", ("starmap item %d is not a table"):format(i), 4)
      end
      rows[i] = pack(unpack(a, 1, a.n or #a))
    end
  end
  return rows
end

-- Python's Pool.map default: len/(4*workers), rounded up.
local function default_chunksize(n, workers)
  if n == 0 then return 1 end
  local cs, extra = n // (workers * 4), n % (workers * 4)
  if extra > 0 then cs = cs + 1 end
  return cs
end

local function chunk_futures(self, fn, rows, chunksize)
  local fs = {}
  for i = 1, #rows, chunksize do
    fs[#fs + 1] = self._ex:submit(futures._run_chunk, fn,
      { unpack(rows, i, math.min(#rows, i + chunksize - 1)) })
  end
  return fs
end

-- The flat list of first results of every chunk, or the first error.
local function collect_chunks(fs)
  local out, n = {}, 0
  for _, f in ipairs(fs) do
    local chunk = f:result()
    for i = 1, chunk.n do
      n = n + 1
      out[n] = chunk[i][2]
    end
    if chunk.failed then futures._raise(chunk.err, chunk.tb) end
  end
  out.n = n
  return out
end

local function map_async(self, fn, iterable, chunksize, opts, star)
  self:_check_running()
  local rows = rows_of(iterable, star)
  chunksize = futures._check_chunksize(chunksize, nil) or default_chunksize(#rows, self._processes)
  local fs = chunk_futures(self, fn, rows, chunksize)
  opts = opts or {}
  return new_result(fs, collect_chunks, opts.callback, opts.error_callback)
end

--- pool:map_async(fn, iterable, chunksize, {callback=, error_callback=})
function ThreadPool:map_async(fn, iterable, chunksize, opts)
  return map_async(self, fn, iterable, chunksize, opts, false)
end

--- pool:map(fn, iterable, chunksize) -> list of results in order
function ThreadPool:map(fn, iterable, chunksize)
  return map_async(self, fn, iterable, chunksize, nil, false):get()
end

--- pool:starmap_async(fn, iterable_of_arg_tables, chunksize, opts)
function ThreadPool:starmap_async(fn, iterable, chunksize, opts)
  return map_async(self, fn, iterable, chunksize, opts, true)
end

--- pool:starmap(fn, iterable_of_arg_tables, chunksize) -> list of results
function ThreadPool:starmap(fn, iterable, chunksize)
  return map_async(self, fn, iterable, chunksize, nil, true):get()
end

--- pool:imap(fn, iterable, chunksize) -> iterator of results in order
function ThreadPool:imap(fn, iterable, chunksize)
  self:_check_running()
  local rows = rows_of(iterable, false)
  chunksize = futures._check_chunksize(chunksize, 1)
  local fs = chunk_futures(self, fn, rows, chunksize)
  local fi, chunk, ci = 0, nil, 0
  return function()
    while true do
      if chunk then
        ci = ci + 1
        if ci <= chunk.n then
          local r = chunk[ci]
          return r[2]
        end
        if chunk.failed then
          local c = chunk
          chunk = nil
          fi = #fs
          futures._raise(c.err, c.tb)
        end
        chunk = nil
      end
      fi = fi + 1
      if fi > #fs then return nil end
      chunk, ci = fs[fi]:result(), 0
    end
  end
end

--- pool:imap_unordered(fn, iterable, chunksize) -> iterator, completion order
function ThreadPool:imap_unordered(fn, iterable, chunksize)
  self:_check_running()
  local rows = rows_of(iterable, false)
  chunksize = futures._check_chunksize(chunksize, 1)
  local fs = chunk_futures(self, fn, rows, chunksize)
  local nextf = futures.as_completed(fs)
  local chunk, ci = nil, 0
  return function()
    while true do
      if chunk then
        ci = ci + 1
        if ci <= chunk.n then return chunk[ci][2] end
        if chunk.failed then
          local c = chunk
          chunk = nil
          futures._raise(c.err, c.tb)
        end
        chunk = nil
      end
      local f = nextf()
      if not f then return nil end
      chunk, ci = f:result(), 0
    end
  end
end

--- pool:close(): no more tasks; workers exit once the queue is done
function ThreadPool:close()
  if self._state == RUN then
    self._state = CLOSE
    self._ex:shutdown(false)
  end
end

--- pool:terminate(): drops queued tasks; workers exit after their current
--- task (threads cannot be killed); join() waits for that
function ThreadPool:terminate()
  self._state = TERMINATE
  self._ex:shutdown(false, true)
end

--- pool:join(): waits for the workers to exit (after close or terminate)
function ThreadPool:join()
  if self._state == RUN then raise("ValueError", "Pool is still running", 2) end
  self._ex:shutdown(true)
end

--- pool:with(fn, ...) -> fn(pool, ...)'s results; terminates on exit
function ThreadPool:with(fn, ...)
  self:_check_running()
  local r = pack(pcall(fn, self, ...))
  self:terminate()
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2, r.n)
end

ThreadPool.__close = function(self) self:terminate() end
ThreadPool.__gc = function(self)
  if self._state == RUN then self._ex:shutdown(false) end
end

M.AsyncResult = AsyncResult
M.ThreadPoolClass = ThreadPool
return M
