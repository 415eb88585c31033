-- braid.mpi: COMM_WORLD for SPMD scripts and PoolExecutor (mpi4py.futures'
-- MPIPoolExecutor) for `mpiexec -n N braid -m braid.mpi script.lua`.
local M = ...
local braid = require "braid"
local futures = require "braid.futures"
local Error = braid.Error
local pack, unpack = table.pack, table.unpack

if not M._init then
  error("braid.mpi: this braid was built without MPI (install libopenmpi-dev and rebuild)", 2)
end

local rank, size = M._init()
local C_send, C_recv, C_bcast, C_barrier = M._send, M._recv, M._bcast, M._barrier
local C_submit = M._submit
local serving = false -- rank 0 of `braid -m braid.mpi`: the workers listen

local function raise(kind, fmt, ...)
  error(Error.new(kind, fmt:format(...)), 3)
end

---------------------------------------------------------------------------
-- COMM_WORLD

local Comm = {}
Comm.__index = Comm
Comm.__name = "braid.mpi.Comm"

--- comm:send(value, dest, tag=0, timeout=nil)
function Comm:send(value, dest, tag, timeout) return C_send(value, dest, tag, timeout) end
--- comm:recv(source=ANY_SOURCE, tag=ANY_TAG, timeout=nil) -> value, source, tag
function Comm:recv(source, tag, timeout)
  return C_recv(source or M.ANY_SOURCE, tag or M.ANY_TAG, timeout)
end
--- comm:bcast(value, root=0, timeout=nil) -> root's value on every rank
function Comm:bcast(value, root, timeout) return C_bcast(value, root or 0, timeout) end
--- comm:barrier(timeout=nil)
function Comm:barrier(timeout) return C_barrier(timeout) end
function Comm:Get_rank() return self.rank end
function Comm:Get_size() return self.size end
function Comm:__tostring() return ("braid.mpi.COMM_WORLD (rank %d of %d)"):format(self.rank, self.size) end

M.COMM_WORLD = setmetatable({ rank = rank, size = size }, Comm)

---------------------------------------------------------------------------
-- PoolExecutor

local Executor = {}
Executor.__index = Executor
Executor.__name = "braid.mpi.PoolExecutor"
local live = setmetatable({}, { __mode = "k" }) -- executors not shut down

--- PoolExecutor{max_workers=} -> executor over the worker ranks
function M.PoolExecutor(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error(("bad argument #1 to 'PoolExecutor' (table expected, got %s)"):format(type(opts)), 2)
  end
  if rank ~= 0 or not serving then
    raise("RuntimeError", "MPIPoolExecutor needs rank 0 of `mpiexec -n N braid -m braid.mpi script.lua`")
  end
  if size < 2 then
    raise("RuntimeError", "MPIPoolExecutor: no worker ranks (run with mpiexec -n 2 or more)")
  end
  local n = opts.max_workers or size - 1
  if math.type(n) ~= "integer" then n = math.tointeger(n) or error("max_workers must be an integer", 2) end
  if n < 1 then raise("ValueError", "max_workers must be greater than 0") end
  if n > size - 1 then n = size - 1 end
  local ex = setmetatable({ _n = n, _fs = {}, _nfs = 0, _shutdown = false }, Executor)
  live[ex] = true
  return ex
end


--- ex:submit(fn, ...) -> Future
function Executor:submit(fn, ...)
  if self._shutdown then raise("RuntimeError", "cannot schedule new futures after shutdown") end
  local f = C_submit(self._n, fn, ...)
  local fs, n = self._fs, self._nfs + 1
  fs[n] = f
  if n >= 1024 then -- keep only the futures not done yet
    local j = 0
    for i = 1, n do
      local g = fs[i]
      fs[i] = nil
      if not g:done() then j = j + 1; fs[j] = g end
    end
    n = j
  end
  self._nfs = n
  return f
end

function Executor:_max_workers() return self._n end

-- Runs fn over a chunk of single arguments on a worker: out[i] is item
-- i's only result, or out.multi[i] its packed results when it has several;
-- stops at the first error (out.err, out.tb, out.n = items before it).
local function settle(out, i, ok, ...)
  if not ok then return false, ... end
  if select("#", ...) == 1 then
    out[i] = ...
  else -- none or several: packed as xpcall's results, as _run_chunk's rows
    out.multi = out.multi or {}
    out.multi[i] = pack(true, ...)
  end
  return true
end

local function run_chunk1(fn, items)
  local out, tb = { n = 0 }, nil
  local function handler(e)
    tb = braid.traceback(e) or debug.traceback(type(e) == "string" and e or tostring(e), 2)
    return e
  end
  for i = 1, items.n do
    local ok, err = settle(out, i, xpcall(fn, handler, items[i]))
    if not ok then
      out.failed, out.err, out.tb = true, err, tb
      return out
    end
    out.n = i
  end
  return out
end
M._run_chunk1 = run_chunk1

-- map over one iterable in chunks: items travel as plain arrays.
local function map1(ex, fn, items, n, chunksize, deadline)
  local fs = {}
  for i = 1, n, chunksize do
    local j = math.min(n, i + chunksize - 1)
    fs[#fs + 1] = ex:submit(run_chunk1, fn, { n = j - i + 1, unpack(items, i, j) })
  end
  local fi, chunk, ci, finished = 0, nil, 0, false
  local function remaining()
    if not deadline then return nil end
    local r = deadline - braid.monotonic()
    return r > 0 and r or 0
  end
  local function cancel_rest()
    finished = true
    for j = fi + 1, #fs do fs[j]:cancel() end
  end
  return function()
    if finished then return end
    while true do
      if chunk then
        ci = ci + 1
        if ci <= chunk.n then
          local m = chunk.multi and chunk.multi[ci]
          if m then return unpack(m, 2, m.n) end
          return chunk[ci]
        end
        if chunk.failed then
          local e, tb = chunk.err, chunk.tb
          chunk = nil
          cancel_rest()
          futures._raise(e, tb)
        end
        chunk = nil
      end
      fi = fi + 1
      local f = fs[fi]
      if not f then finished = true; return end
      local ok, r = pcall(f.result, f, remaining())
      if not ok then cancel_rest(); error(r, 0) end
      chunk, ci = r, 0
    end
  end
end

--- ex:map(fn, iterable, ..., {timeout=, chunksize=1}) -> iterator of results
function Executor:map(fn, ...)
  local its, opts = futures._map_args(...)
  if #its == 0 then error("bad argument #2 to 'map' (iterable expected)", 2) end
  local deadline = opts.timeout and opts.timeout >= 0 and braid.monotonic() + opts.timeout or nil
  local chunksize = futures._check_chunksize(opts.chunksize, 1)
  if #its == 1 and chunksize > 1 then
    local items, n, next_item = {}, 0, its[1]
    while true do
      local ok, v = next_item()
      if not ok then break end
      n = n + 1
      items[n] = v
    end
    return map1(self, fn, items, n, chunksize, deadline)
  end
  local rows = futures._collect_rows(its)
  local fs = futures._submit_all(self, fn, rows, chunksize)
  return futures._results_iter(fs, chunksize, deadline)
end

--- ex:shutdown(wait=true, cancel_futures=false)
function Executor:shutdown(wait, cancel_futures)
  self._shutdown = true
  live[self] = nil
  local fs = self._fs
  if cancel_futures then
    for i = 1, self._nfs do fs[i]:cancel() end
  end
  if wait == nil or wait then
    for i = 1, self._nfs do
      local f = fs[i]
      if not f:done() then pcall(f.exception, f) end
    end
    self._fs, self._nfs = {}, 0
  end
end

--- ex:with(fn, ...) -> fn(ex, ...)'s results; shuts down on every path
Executor.with = futures._Executor_methods.with -- the thread pool's, as is

Executor.__close = function(ex) ex:shutdown(true) end
Executor.__tostring = function(ex)
  return ("braid.mpi.PoolExecutor (%d workers%s)"):format(ex._n, ex._shutdown and ", shut down" or "")
end

---------------------------------------------------------------------------
-- `braid -m braid.mpi script.lua args...`

--- main(script, ...): rank 0 runs script with args; the other ranks serve it
function M.main(script, ...)
  if rank ~= 0 then
    M._serve()
    return
  end
  if script == nil then error("usage: mpiexec -n N braid -m braid.mpi script.lua [args]", 0) end
  serving = true
  M._start()
  local args = pack(...)
  _G.arg = { [0] = script, unpack(args, 1, args.n) }
  local ok, err = xpcall(function()
    local chunk, lerr = loadfile(script)
    if not chunk then error(lerr, 0) end
    return chunk(unpack(args, 1, args.n))
  end, function(e)
    if type(e) == "string" then return debug.traceback(e, 2) end
    return e
  end)
  for ex in pairs(live) do pcall(ex.shutdown, ex, true) end
  serving = false
  M._stop()
  if not ok then error(err, 0) end
end

return M
