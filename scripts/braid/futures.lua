-- braid.futures' Lua half: Executor:map/with/__close, wait, as_completed,
-- the return_when constants and exception names of concurrent.futures.
local M = ...
local braid = require "braid"
local Error = braid.Error

M.FIRST_COMPLETED = "FIRST_COMPLETED"
M.FIRST_EXCEPTION = "FIRST_EXCEPTION"
M.ALL_COMPLETED = "ALL_COMPLETED"

M.Timeout = "Timeout"
M.Cancelled = "Cancelled"
M.CancelledError = "Cancelled"
M.TimeoutError = "Timeout"
M.InvalidState = "InvalidState"
M.InvalidStateError = "InvalidState"
M.BrokenExecutor = "BrokenExecutor"
M.BrokenProcessPool = "BrokenProcessPool"

--- MPIPoolExecutor{max_workers=}: braid.mpi's PoolExecutor (docs/mpi.md)
function M.MPIPoolExecutor(opts) return require("braid.mpi").PoolExecutor(opts) end

local C_waitset, C_id, C_raise, C_state = M._waitset, M._id, M._raise, M._state
local monotonic = braid.monotonic
local pack, unpack = table.pack, table.unpack

local function raise(kind, fmt, ...)
  error(Error.new(kind, fmt:format(...)), 2)
end

local function is_future(x)
  return C_id(x) ~= nil
end
M._is_future = is_future

-- The distinct futures of fs (a list, or a set keyed by future), in order.
local function unique(fs, what)
  if type(fs) ~= "table" then
    error(("bad argument #1 to '%s' (table of futures expected, got %s)"):format(what, type(fs)), 3)
  end
  local list, seen = {}, {}
  local function add(f)
    local id = C_id(f)
    if id and not seen[id] then
      seen[id] = true
      list[#list + 1] = f
    end
  end
  for i = 1, #fs do add(fs[i]) end
  for k, v in pairs(fs) do
    if is_future(k) then add(k) elseif is_future(v) then add(v) end
  end
  return list
end

local function deadline_of(timeout)
  if timeout == nil or timeout < 0 then return nil end
  return monotonic() + timeout
end

local function remaining(deadline)
  if not deadline then return nil end
  local r = deadline - monotonic()
  return r > 0 and r or 0
end

--- wait(fs, {timeout=, return_when=}) -> done, not_done (sets keyed by future)
function M.wait(fs, opts)
  local list = unique(fs, "wait")
  opts = opts or {}
  local return_when = opts.return_when or M.ALL_COMPLETED
  if return_when ~= M.ALL_COMPLETED and return_when ~= M.FIRST_COMPLETED
    and return_when ~= M.FIRST_EXCEPTION then
    raise("ValueError", "Invalid return condition: %s", tostring(return_when))
  end
  local deadline = deadline_of(opts.timeout)
  local ws <close> = C_waitset(list)
  local ndone = 0
  local function failed(i)
    local _, f = C_state(list[i])
    return f
  end
  while true do
    -- take everything already done without blocking
    local i = ws:next(0)
    while i do
      ndone = ndone + 1
      if return_when == M.FIRST_EXCEPTION and failed(i) then goto finished end
      i = ws:next(0)
    end
    if ndone == #list then break end
    if return_when == M.FIRST_COMPLETED and ndone > 0 then break end
    local r = remaining(deadline)
    if r == 0 then break end
    i = ws:next(r)
    if not i then break end -- timed out
    ndone = ndone + 1
    if return_when == M.FIRST_EXCEPTION and failed(i) then break end
  end
  ::finished::
  local done, not_done = {}, {}
  for _, f in ipairs(list) do
    if f:done() then done[f] = true else not_done[f] = true end
  end
  return done, not_done
end

--- as_completed(fs, timeout) -> iterator over the futures as they finish
function M.as_completed(fs, timeout)
  local list = unique(fs, "as_completed")
  local deadline = deadline_of(timeout)
  local ws = C_waitset(list)
  local total = #list
  return function()
    if not ws then return nil end
    local i = ws:next(remaining(deadline))
    if i == nil then
      local left = ws:remaining()
      ws:close()
      ws = nil
      raise("Timeout", "%d (of %d) futures unfinished", left, total)
    elseif i == false then
      ws:close()
      ws = nil
      return nil
    end
    return list[i]
  end
end

---------------------------------------------------------------------------
-- Executor methods written in Lua

local Executor = M._Executor_methods
local ExecutorMeta = M._Executor_meta

-- Turns an iterable (a table's sequence, or an iterator function) into a
-- function returning (true, value) or nil at the end.
local function iterate(x, pos)
  if type(x) == "table" and not getmetatable(x) or type(x) == "table" and not getmetatable(x).__call then
    local n, i = x.n or #x, 0
    return function()
      if i >= n then return nil end
      i = i + 1
      return true, x[i]
    end
  elseif type(x) == "function" or type(x) == "table" then
    local done = false
    return function()
      if done then return nil end
      local v = x()
      if v == nil then done = true; return nil end
      return true, v
    end
  end
  error(("bad argument #%d to 'map' (table or iterator function expected, got %s)")
    :format(pos, type(x)), 3)
end

-- Splits map's arguments into iterables and the options table.
local function map_args(...)
  local n = select("#", ...)
  local args = pack(...)
  local opts = {}
  if n >= 2 and type(args[n]) == "table" and #args[n] == 0 and getmetatable(args[n]) == nil then
    local only_opts, any = true, false
    for k in pairs(args[n]) do
      any = true
      if k ~= "timeout" and k ~= "chunksize" then only_opts = false end
    end
    if only_opts and any then
      opts = args[n]
      n = n - 1
    end
  end
  local its = {}
  for i = 1, n do its[i] = iterate(args[i], i + 2) end
  return its, opts
end
M._map_args = map_args

-- Runs fn over a chunk of argument tuples in a worker: per item results,
-- stopping at the first error (whose value and traceback are returned).
function M._run_chunk(fn, items)
  local out, tb = { n = 0 }, nil
  local function handler(e)
    tb = debug.traceback(type(e) == "string" and e or tostring(e), 2)
    return e
  end
  for i = 1, #items do
    local a = items[i]
    local r = pack(xpcall(fn, handler, unpack(a, 1, a.n)))
    if not r[1] then
      out.err, out.failed, out.tb = r[2], true, braid.traceback(r[2]) or tb
      return out
    end
    r[1] = r.n - 1
    out[i] = r
    out.n = i
  end
  return out
end

-- Reads the zipped argument rows of every iterable (all at once, like
-- Python's map, which submits everything before returning).
local function collect_rows(its)
  local rows = {}
  while true do
    local row = { n = #its }
    for k = 1, #its do
      local ok, v = its[k]()
      if not ok then return rows end
      row[k] = v
    end
    rows[#rows + 1] = row
  end
end
M._collect_rows = collect_rows

-- The chunk size map uses when none is given: single items for short
-- inputs (so slow items overlap as in Python), chunks of up to 256 items
-- when there are at least 8 per worker (transfer and wake-ups amortised).
local function auto_chunksize(n, workers)
  local cs = n // (8 * workers)
  if cs < 1 then return 1 end
  return cs > 256 and 256 or cs
end
M._auto_chunksize = auto_chunksize

-- Submits fn over rows in chunks; returns the list of futures.
local function submit_all(ex, fn, rows, chunksize)
  local fs = {}
  if chunksize == 1 then
    for i = 1, #rows do
      local row = rows[i]
      fs[i] = ex:submit(fn, unpack(row, 1, row.n))
    end
    return fs
  end
  for i = 1, #rows, chunksize do
    fs[#fs + 1] = ex:submit(M._run_chunk, fn, { unpack(rows, i, math.min(#rows, i + chunksize - 1)) })
  end
  return fs
end
M._submit_all = submit_all

-- An iterator over results in order; a chunk's results are unpacked in
-- turn. Each call returns one item's results (at least one value), or
-- nothing at the end. Errors in item k are raised when k is reached.
local function results_iter(fs, chunksize, deadline, on_close)
  local fi, chunk, ci = 0, nil, 0
  local finished = false
  local function cancel_rest()
    finished = true
    for j = fi + 1, #fs do fs[j]:cancel() end
    if on_close then on_close() end
  end
  local function next_item()
    if finished then return end
    if chunksize == 1 then
      fi = fi + 1
      local f = fs[fi]
      if not f then finished = true; return end
      local r = pack(pcall(f.result, f, remaining(deadline)))
      if not r[1] then cancel_rest(); error(r[2], 0) end
      if r.n == 1 then return nil end
      return unpack(r, 2, r.n)
    end
    while true do
      if chunk then
        ci = ci + 1
        if ci <= chunk.n then
          local r = chunk[ci]
          if r[1] == 0 then return nil end
          return unpack(r, 2, r[1] + 1)
        end
        if chunk.failed then
          local e, tb = chunk.err, chunk.tb
          chunk = nil
          cancel_rest()
          C_raise(e, tb)
        end
        chunk = nil
      end
      fi = fi + 1
      local f = fs[fi]
      if not f then finished = true; return end
      local ok, r = pcall(f.result, f, remaining(deadline))
      if not ok then cancel_rest(); error(r, 0) end
      chunk, ci = r, 0
    end
  end
  return next_item
end
M._results_iter = results_iter

local function check_chunksize(cs, default)
  if cs == nil then return default end
  if math.type(cs) ~= "integer" then
    cs = math.tointeger(cs) or error("chunksize must be an integer", 3)
  end
  if cs < 1 then raise("ValueError", "chunksize must be >= 1.") end
  return cs
end
M._check_chunksize = check_chunksize

--- ex:map(fn, iterable, ..., {timeout=, chunksize=}) -> iterator of results
function Executor:map(fn, ...)
  local its, opts = map_args(...)
  if #its == 0 then error("bad argument #2 to 'map' (iterable expected)", 2) end
  local deadline = deadline_of(opts.timeout)
  local rows = collect_rows(its)
  local chunksize = check_chunksize(opts.chunksize, nil)
    or auto_chunksize(#rows, self:_max_workers())
  local fs = submit_all(self, fn, rows, chunksize)
  return results_iter(fs, chunksize, deadline)
end

--- ex:with(fn, ...) -> fn(ex, ...)'s results; shuts down on every path
function Executor:with(fn, ...)
  local r = pack(pcall(fn, self, ...))
  self:shutdown(true)
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2, r.n)
end

ExecutorMeta.__close = function(ex) ex:shutdown(true) end

-- ProcessPoolExecutor lives in braid.process_pool (docs/multiprocessing.md)
function M.ProcessPoolExecutor(...)
  return require("braid.process_pool").ProcessPoolExecutor(...)
end

return M
