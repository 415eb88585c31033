-- braid.asyncio, Lua half: the loop (one per state at a time) that runs
-- the tasks, run, sleep, await and the REPL hooks. Future, Task and the
-- scheduler core are in asyncio_tasks.lua; gather, wait, timeouts and
-- TaskGroup in asyncio_combinators.lua; primitives in asyncio_locks.lua.
local C = ...
local braid = require "braid"
local monotonic = braid.monotonic

local co_yield = coroutine.yield
local setmetatable, getmetatable, type, select, error, pcall =
  setmetatable, getmetatable, type, select, error, pcall
local pack, unpack = table.pack, table.unpack
local trace_on = braid.trace._on
local TR = require "braid.asyncio_trace" -- task waits and labels

local M = {}
M.PIPE, M.DEVNULL, M.STDOUT = -1, -3, -2
M.FIRST_COMPLETED = "FIRST_COMPLETED"
M.FIRST_EXCEPTION = "FIRST_EXCEPTION"
M.ALL_COMPLETED = "ALL_COMPLETED"

local running_loop -- the loop running in this state, if any
-- `require "luv"` shares the running loop (scripts/braid/asyncio_luv.lua)
local luv_enter, luv_leave = require("braid.asyncio_luv")(M, C, function() return running_loop end)

local I -- the scheduler's internals (asyncio_tasks.lua)

local function get_loop(what)
  local loop = running_loop
  if not loop then I.raise("RuntimeError", "no running event loop", 3) end
  return loop
end

I = require("braid.asyncio_tasks")(M, C, get_loop)
local CANCEL, SLEEP = I.CANCEL, I.SLEEP
local PENDING, FINISHED, CANCELLED = I.PENDING, I.FINISHED, I.CANCELLED
local Future, Task, Handle = I.Future, I.Task, I.Handle
local raise, is_cancel, callable, this_task = I.raise, I.is_cancel, I.callable, I.this_task
local push, add_timer, heap_pop = I.push, I.add_timer, I.heap_pop
local wake_timer, is_future, new_future, new_task = I.wake_timer, I.is_future,
  I.new_future, I.new_task
local step, traced_step, report, task_finished, err_string = I.step, I.traced_step, I.report,
  I.task_finished, I.err_string
local after_step, cur = I.after_step, I.cur
local c_run_ready, c_run_once = C._run_ready, C._run_once
local current, set_current = I.current, I.set_current

-- ---- the loop ----

local Loop = {__name = "braid.asyncio.Loop"}
Loop.__index = Loop

local function new_loop()
  return setmetatable({c = C._loop_new(), q = {}, qn = 0, spare = {}, heap = {}, hn = 0, seq = 0,
    tasks = {}, ntasks = 0, tracing = false, waiting = {}, failed = setmetatable({}, {__mode = "k"})}, Loop)
end

-- A callback queued by call_soon and the like (not a task).
local function run_handle(x)
  if x.cancelled then return end
  local ok, err
  if x.n == 1 then
    ok, err = pcall(x.fn, x.a)
  else
    ok, err = pcall(x.fn, unpack(x.a, 1, x.a.n))
  end
  if not ok then
    io.stderr:write("Exception in callback: " .. err_string(err) .. "\n")
  end
end

-- Runs what is ready now (what this pass queues runs on the next), in C
-- (bindings/lasyncio.c's run_ready) unless tracing.
local function run_ready(loop)
  local q, n = loop.q, loop.qn
  if n == 0 then
    loop.tracing = false
    return
  end
  loop.q, loop.qn = loop.spare, 0
  local tr = trace_on()
  loop.tracing = tr -- read by the tasks' waits this pass (asyncio_locks.lua)
  if tr then
    for i = 1, n do
      local x = q[i]
      q[i] = nil
      if x.co then traced_step(loop, x) else run_handle(x) end
    end
  else
    c_run_ready(nil, loop, q, n, loop.waiting, cur, step, after_step, run_handle)
  end
  loop.spare = q
end

-- One pass: I/O and wake-ups from other threads, then due timers.
local function poll(loop, nowait)
  local timeout
  if loop.qn > 0 or nowait then
    timeout = 0
  elseif loop.hn > 0 then
    timeout = loop.heap[1].when_ - monotonic()
  end
  -- C wakes the tasks whose waiters were woken (wake() for THREAD_WAIT;
  -- their _a1 is NOA: only wake sets it, and wake ends the wait)
  local why = c_run_once(loop.c, timeout, loop.waiting, loop)
  if why and not loop.interrupt then
    loop.interrupt = why
    if loop.main then loop.main:cancel(why == "interrupt" and "interrupted" or "thread cancelled") end
  end
  if loop.hn > 0 then
    local now = monotonic()
    local heap = loop.heap
    while loop.hn > 0 and heap[1].when_ <= now do
      local h = heap_pop(loop)
      if not h.cancelled then
        if h.fn == wake_timer then
          wake_timer(h.a, h)
        else
          push(loop, h)
        end
      end
    end
  end
end

local function run_until(loop, fut)
  while fut._state == PENDING do
    run_ready(loop)
    if fut._state ~= PENDING then break end
    poll(loop)
  end
end

local function close_loop(loop)
  -- cancel what is left and let it unwind (Python's _cancel_all_tasks)
  for _ = 1, 100 do
    if loop.ntasks == 0 then break end
    for t in pairs(loop.tasks) do t:cancel() end
    local guard = new_future(loop)
    while loop.ntasks > 0 and (loop.qn > 0 or loop.hn > 0 or next(loop.waiting)) do
      run_ready(loop)
      if loop.ntasks > 0 then poll(loop) end
    end
    if guard then guard = nil end
  end
  for t in pairs(loop.tasks) do -- never unwound: drop their thread-level waits
    if t._w then C._settle(t._w) end
    task_finished(loop, t)
  end
  local failed = {}
  for t in pairs(loop.failed) do failed[#failed + 1] = t end
  table.sort(failed, function(a, b) return a.id < b.id end)
  for _, t in ipairs(failed) do report(t) end
  if loop.executor then loop.executor:shutdown(true) end
  C._loop_close(loop.c)
  loop.closed = true
end

function M.run(fn, ...)
  if running_loop and running_loop.repl and current() == running_loop.main then
    return fn(...) -- at the REPL prompt the line already runs as a task
  end
  if running_loop then
    raise("RuntimeError", "asyncio.run() cannot be called from a running event loop", 2)
  end
  if not callable(fn) then
    error(("bad argument #1 to 'run' (function expected, got %s)"):format(type(fn)), 2)
  end
  local loop = new_loop()
  running_loop = loop
  C._set_running(true)
  luv_enter(loop)
  local main = new_task(loop, fn, nil, select("#", ...), ...)
  loop.main = main
  local ok, err = pcall(run_until, loop, main)
  main._retrieved = true
  local ok2, err2 = pcall(close_loop, loop)
  running_loop = nil
  set_current(nil)
  C._set_running(false)
  luv_leave()
  if not ok then error(err, 0) end
  if not ok2 then error(err2, 0) end
  if loop.interrupt == "interrupt" then error("interrupted!", 0) end
  if loop.interrupt == "cancel" then raise("Cancelled", "thread cancelled", 2) end
  main._retrieved = true
  return main:result()
end

-- ---- asyncio at the REPL prompt (bindings/repl.c) ----
-- Each line runs as a task on one loop that persists between lines; while
-- the prompt waits for keys the REPL calls __repl_idle, so tasks started on
-- one line keep running while the next is typed.
local repl_loop

local function enter(loop)
  running_loop = loop
  C._set_running(true)
  luv_enter(loop)
end

local function leave()
  running_loop = nil
  set_current(nil)
  C._set_running(false)
  luv_leave()
end

function M.__repl_run(chunk)
  if running_loop then return chunk() end
  if not repl_loop then
    repl_loop = new_loop()
    repl_loop.repl = true
  end
  local loop = repl_loop
  enter(loop)
  local t = new_task(loop, chunk, nil, 0)
  -- Ctrl-C stops the line's own Lua code too (the interpreter's hook only
  -- reaches the main coroutine)
  debug.sethook(t.co, function()
    if C._take_interrupt() then error("interrupted!") end
  end, "", 1000)
  loop.main, loop.interrupt = t, nil
  local ok, err = pcall(run_until, loop, t)
  loop.main = nil
  leave()
  if not ok then
    t:cancel() -- the line unwinds on the next passes
    error(err, 0)
  end
  t._retrieved = true
  if loop.interrupt == "interrupt" and t._state == CANCELLED then error("interrupted!", 0) end
  return t:result()
end

-- One pass of the REPL's loop; returns how long the REPL may wait for a
-- key before calling again (nil: no task left to run).
function M.__repl_idle()
  local loop = repl_loop
  if not loop or running_loop or loop.ntasks == 0 then return nil end
  enter(loop)
  local ok, err = pcall(function()
    run_ready(loop)
    poll(loop, true)
    run_ready(loop)
  end)
  leave()
  if not ok then io.stderr:write(err_string(err), "\n") end
  if loop.qn > 0 then return 0 end
  local wait = 0.05 -- wake-ups from other threads are looked at this often
  if loop.hn > 0 then wait = math.min(wait, math.max(0, loop.heap[1].when_ - monotonic())) end
  return wait
end

function M.get_running_loop()
  return get_loop("get_running_loop")
end
M.get_event_loop = M.get_running_loop

function Loop:time() return monotonic() end

function Loop:call_soon(fn, ...)
  if not callable(fn) then error("bad argument #1 to 'call_soon' (function expected)", 2) end
  local h = setmetatable({fn = fn, a = pack(...), loop = self}, Handle)
  push(self, h)
  return h
end

function Loop:call_at(when, fn, ...)
  if type(when) ~= "number" then error("bad argument #1 to 'call_at' (number expected)", 2) end
  if not callable(fn) then error("bad argument #2 to 'call_at' (function expected)", 2) end
  local h = add_timer(self, when, fn, nil, nil)
  h.a = pack(...)
  return h
end

function Loop:call_later(delay, fn, ...)
  if type(delay) ~= "number" then error("bad argument #1 to 'call_later' (number expected)", 2) end
  return self:call_at(monotonic() + delay, fn, ...)
end

function Loop:create_future() return new_future(self) end

function Loop:create_task(fn, ...)
  return new_task(self, fn, nil, select("#", ...), ...)
end

function Loop:is_running() return running_loop == self end
function Loop:is_closed() return self.closed == true end

function Loop:run_in_executor(executor, fn, ...)
  if executor == nil then
    executor = self.executor
    if not executor then
      executor = require("braid.futures").ThreadPoolExecutor()
      self.executor = executor
    end
  end
  local cf = executor:submit(fn, ...)
  return new_task(self, function()
    local ok, err = pcall(function() return cf:result() end)
    if ok then return cf:result() end
    if is_cancel(err) then cf:cancel() end
    error(err, 0)
  end, nil, 0)
end

-- ---- suspending ----

function M.sleep(delay, result)
  if type(delay) ~= "number" then
    error(("bad argument #1 to 'sleep' (number expected, got %s)"):format(type(delay)), 2)
  end
  if delay ~= delay then raise("ValueError", "Invalid delay: NaN (not a number)", 2) end
  local t = this_task("sleep")
  local m, e
  if delay <= 0 then
    m, e = co_yield()
  else
    TR.begin(t, nil, "sleep")
    m, e = co_yield(SLEEP, monotonic() + delay)
    TR.done(t, m == CANCEL and "cancelled" or "ok")
  end
  if m == CANCEL then error(e, 0) end
  return result
end

M._CANCEL = CANCEL
M._current = current
M._this_task = this_task
M._new_future = new_future
M._get_loop = get_loop

local function await_future(fut)
  if fut._state == PENDING then
    local t = this_task("await")
    if fut == t then raise("RuntimeError", "a task cannot await itself", 3) end
    TR.begin(t, fut, "await")
    local m, e = co_yield(fut)
    TR.done(t, m == CANCEL and "cancelled" or "ok")
    if m == CANCEL then error(e, 0) end
  end
  fut._retrieved = true
  return fut:result()
end

function M.await(x, ...)
  if type(x) == "table" and x._state ~= nil and x.loop then return await_future(x) end
  if type(x) == "function" then return x(...) end
  local mt = getmetatable(x)
  if type(x) == "userdata" and mt and type(mt.__index) == "table" and mt.__index.result then
    return x:result() -- a thread-level Future: suspends only this task
  end
  if type(x) == "table" and type(x.result) == "function" and type(x.join) == "function" then
    return x:result() -- a braid Thread
  end
  error(("bad argument #1 to 'await' (Task, Future or function expected, got %s)"):format(
    mt and mt.__name or type(x)), 2)
end
local await = M.await

-- aw: a Task/Future as it is, a function (+ args) as a new task
local function as_task(loop, aw, what, argn)
  if is_future(aw) then return aw end
  if callable(aw) then return new_task(loop, aw, nil, 0) end
  error(("bad argument #%d to '%s' (Task, Future or function expected, got %s)"):format(
    argn or 1, what, type(aw)), 3)
end

-- gather, wait, wait_for, timeouts, TaskGroup, introspection
-- (scripts/braid/asyncio_combinators.lua)
require("braid.asyncio_combinators")(M, {CANCELLED = CANCELLED, FINISHED = FINISHED,
  PENDING = PENDING, Future = Future, add_timer = add_timer, add_waiter = I.add_waiter,
  as_task = as_task, await_future = await_future, callable = callable,
  cancelled_error = I.cancelled_error, get_loop = get_loop, hook = I.hook, is_cancel = is_cancel,
  is_future = is_future, new_future = new_future, new_task = new_task, raise = raise,
  set_outcome = I.set_outcome, this_task = this_task, current = current})

M._live_loops = C._live_loops
M.Task = Task
M.Handle = Handle
M.Loop = Loop
M._wake_parked = I.wake_parked
M._PARK = I.PARK

-- primitives and queues (scripts/braid/asyncio_locks.lua)
require("braid.asyncio_locks")(M)
require("braid.asyncio_streams")(M, C) -- streams (scripts/braid/asyncio_streams.lua)
require("braid.asyncio_files")(M, C) -- files (scripts/braid/asyncio_files.lua)

return M
