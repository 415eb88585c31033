-- braid.asyncio, Lua half: the scheduler (one loop per state at a time),
-- Future and Task, run, sleep, await, the loop and the REPL hooks;
-- gather, wait, timeouts and TaskGroup are in asyncio_combinators.lua.
-- Tasks are coroutines; a task suspends by yielding a request to step().
local C = ...
local braid = require "braid"
local Error = braid.Error
local monotonic = braid.monotonic

local co_create, co_resume, co_yield = coroutine.create, coroutine.resume, coroutine.yield
local co_running, co_close = coroutine.running, coroutine.close
local stepping = C._stepping
local setmetatable, getmetatable, rawget, type, select, tostring, error, pcall =
  setmetatable, getmetatable, rawget, type, select, tostring, error, pcall
local pack, unpack = table.pack, table.unpack
local trace = braid.trace
local trace_on, trace_now, trace_slice = trace._on, trace._now, trace._slice

local M = {}
M.PIPE, M.DEVNULL, M.STDOUT = -1, -3, -2
M.FIRST_COMPLETED = "FIRST_COMPLETED"
M.FIRST_EXCEPTION = "FIRST_EXCEPTION"
M.ALL_COMPLETED = "ALL_COMPLETED"

-- What a task yields to step(): (nil) run again soon; (PARK) wait for
-- wake(); (SLEEP, when); (a Future) wait for it; C's (THREAD_WAIT, when)
-- and (DEFER_CANCEL, err). A task is resumed with nothing, with wake()'s
-- values, or with (CANCEL, err) at a suspension point it must abandon.
local THREAD_WAIT, CANCEL, DEFER_CANCEL = C.THREAD_WAIT, C.CANCEL, C.DEFER_CANCEL
local PARK, SLEEP, DONE = {}, {}, {}
local PENDING, FINISHED, CANCELLED = "PENDING", "FINISHED", "CANCELLED"

local running_loop -- the loop running in this state, if any
local current -- the task running now
-- `require "luv"` shares the running loop (scripts/braid/asyncio_luv.lua)
local luv_enter, luv_leave = require("braid.asyncio_luv")(M, C, function() return running_loop end)
local task_counter = 0

local function raise(kind, msg, level)
  error(Error.new(kind, msg), (level or 1) + 1)
end

local function is_cancel(err)
  return Error.is(err, "Cancelled")
end

local function callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__call") ~= nil
end

local function get_loop(what)
  local loop = running_loop
  if not loop then raise("RuntimeError", "no running event loop", 3) end
  return loop
end

-- The running task, checking that the caller runs in its coroutine.
local function this_task(what)
  local t = current
  if not t or t.co ~= co_running() then
    local msg = t and "a coroutine inside a task cannot suspend it" or "no running task"
    raise("RuntimeError", ("%s: %s() must be called from an asyncio task"):format(msg, what), 3)
  end
  return t
end

-- ---- the ready queue and timers ----

local function push(loop, x)
  local n = loop.qn + 1
  loop.qn = n
  loop.q[n] = x
end

local Handle = {__name = "braid.asyncio.Handle"}
Handle.__index = Handle
function Handle:cancel() self.cancelled = true end
function Handle:when() return self.when_ end
function Handle:get_loop() return self.loop end

-- Timer order: by time, then by creation (seq) among equal times.
local function before(a, b)
  return a.when_ < b.when_ or (a.when_ == b.when_ and a.seq < b.seq)
end

local function heap_push(loop, h)
  local heap, i = loop.heap, loop.hn + 1
  loop.hn = i
  while i > 1 do
    local p = i // 2
    local ph = heap[p]
    if before(ph, h) then break end
    heap[i] = ph
    i = p
  end
  heap[i] = h
end

local function heap_pop(loop)
  local heap, n = loop.heap, loop.hn
  local top, last = heap[1], heap[n]
  heap[n] = nil
  n = n - 1
  loop.hn = n
  if n > 0 then
    local i = 1
    while true do
      local c = 2 * i
      if c > n then break end
      local ch = heap[c]
      if c < n then
        local r = heap[c + 1]
        if before(r, ch) then c, ch = c + 1, r end
      end
      if before(last, ch) then break end
      heap[i] = ch
      i = c
    end
    heap[i] = last
  end
  return top
end

local function add_timer(loop, when, fn, a, b)
  local seq = loop.seq + 1
  loop.seq = seq
  local h = setmetatable({when_ = when, seq = seq, fn = fn, a = a, b = b, loop = loop}, Handle)
  heap_push(loop, h)
  return h
end

-- ---- waking tasks ----

local function wake(task, a1, a2)
  local w = task._wait
  task._wait = nil
  if w == THREAD_WAIT then task.loop.waiting[task.id] = nil end
  local h = task._timer
  if h then
    h.cancelled = true
    task._timer = nil
  end
  task._a1, task._a2 = a1, a2
  push(task.loop, task)
end

-- Wakes a task that yielded PARK (a primitive's waiter); false when it is
-- no longer parked there (cancelled meanwhile): hand nothing to it.
local function wake_parked(task, a1, a2)
  if task._wait ~= PARK then return false end
  wake(task, a1, a2)
  task._handoff = true -- a cancellation must not replace what it hands over
  return true
end

-- A task's timer h (sleep, thread-wait deadline) fired: wake it unless it
-- was woken otherwise meanwhile (which dropped or replaced task._timer).
local function wake_timer(task, h)
  if task._timer == h then
    task._timer = nil
    wake(task)
  end
end

-- ---- Future ----

local Future = {__name = "braid.asyncio.Future"}
Future.__index = Future
M.Future_class = Future

local function is_future(x)
  return type(x) == "table" and x._state ~= nil and getmetatable(x) ~= nil and x.loop ~= nil
end
M.isfuture = is_future

local function new_future(loop)
  return setmetatable({loop = loop, _state = PENDING}, Future)
end

function M.Future()
  return new_future(get_loop("Future"))
end

-- Internal done-callbacks (gather, wait, TaskGroup...) run at once when the
-- future completes, with no Handle and no pcall; user callbacks go through
-- the loop as Python's do.
local Hook = {__name = "braid.asyncio.hook"}
local function hook(fn) return setmetatable({fn = fn}, Hook) end

local function schedule_callbacks(fut)
  local cbs = fut._cbs
  if not cbs then return end
  fut._cbs = nil
  local loop = fut.loop
  for i = 1, #cbs do
    local cb = cbs[i]
    if type(cb) == "table" then
      if cb.co then
        if cb._wait == fut then wake(cb) end -- a task awaiting fut
      else
        cb.fn(fut)
      end
    else
      push(loop, setmetatable({fn = cb, a = fut, n = 1}, Handle))
    end
  end
end

local function set_outcome(fut, state, n, v, err)
  fut._state, fut._v, fut._err = state, v, err
  if n ~= 0 then fut._n = n end -- absent means none: one field less per task
  schedule_callbacks(fut)
end

function Future:done() return self._state ~= PENDING end
function Future:cancelled() return self._state == CANCELLED end
function Future:get_loop() return self.loop end

function Future:set_result(...)
  if self._state ~= PENDING then raise("InvalidState", "invalid state: " .. self._state, 2) end
  local n = select("#", ...)
  set_outcome(self, FINISHED, n, n > 1 and pack(...) or (...), nil)
end

function Future:set_exception(err)
  if self._state ~= PENDING then raise("InvalidState", "invalid state: " .. self._state, 2) end
  if err == nil then error("bad argument #1 to 'set_exception' (error value expected, got nil)", 2) end
  self._failed = true
  set_outcome(self, FINISHED, 0, nil, err)
end

function Future:cancel(msg)
  if self._state ~= PENDING then return false end
  self._cancel_msg = msg
  set_outcome(self, CANCELLED, 0, nil, nil)
  return true
end

local function cancelled_error(fut)
  local e = fut._err
  if e == nil then
    e = Error.new("Cancelled", fut._cancel_msg ~= nil and tostring(fut._cancel_msg) or "")
    fut._err = e
  end
  return e
end

local function values(fut)
  local n = fut._n
  if not n then return end
  if n == 1 then return fut._v end
  return unpack(fut._v, 1, n)
end

function Future:result()
  local s = self._state
  if s == FINISHED then
    self._retrieved = true
    if self._failed then error(self._err, 0) end
    return values(self)
  end
  if s == CANCELLED then error(cancelled_error(self), 0) end
  raise("InvalidState", "result is not set", 2)
end

function Future:exception()
  local s = self._state
  if s == PENDING then raise("InvalidState", "exception is not set", 2) end
  if s == CANCELLED then error(cancelled_error(self), 0) end
  self._retrieved = true
  if self._failed then return self._err end
  return nil
end

function Future:add_done_callback(fn)
  if not callable(fn) then
    error(("bad argument #1 to 'add_done_callback' (function expected, got %s)"):format(type(fn)), 2)
  end
  if self._state ~= PENDING then
    push(self.loop, setmetatable({fn = fn, a = self, n = 1}, Handle))
    return
  end
  local cbs = self._cbs
  if not cbs then
    cbs = {}
    self._cbs = cbs
  end
  cbs[#cbs + 1] = fn
end

function Future:remove_done_callback(fn)
  local cbs, n = self._cbs, 0
  if not cbs then return 0 end
  for i = #cbs, 1, -1 do
    if cbs[i] == fn then
      table.remove(cbs, i)
      n = n + 1
    end
  end
  return n
end

-- Adds a task awaiting fut, or a hook.
local function add_waiter(fut, task)
  local cbs = fut._cbs
  if not cbs then
    fut._cbs = {task}
  else
    cbs[#cbs + 1] = task
  end
end

function Future:__tostring()
  return ("<%s %s>"):format(self._is_task and "Task" or "Future", self._state:lower())
end

-- ---- Task ----

-- Task's methods are Future's plus its own, in one flat table: a field a
-- task lacks then costs one metatable lookup, not a chain.
local Task = {__name = "braid.asyncio.Task"}
for k, v in pairs(Future) do
  if k ~= "__index" and k ~= "__name" then Task[k] = v end
end
Task.__index = Task
Task._is_task = true
Task.__tostring = Future.__tostring

local function nres(n, ...)
  if n <= 1 then return n, (...) end
  return n, pack(...)
end

local function finish(...)
  return DONE, nres(select("#", ...), ...)
end

local function task_body(fn, ...)
  return finish(fn(...))
end

local function new_task(loop, fn, name, n, ...)
  if not callable(fn) then
    error(("bad argument #1 to 'create_task' (function expected, got %s)"):format(type(fn)), 3)
  end
  local id = task_counter + 1
  task_counter = id
  local t = setmetatable({loop = loop, _state = PENDING, co = co_create(task_body), id = id,
    _fn = fn}, Task)
  if name then t._name = name end
  if n > 0 then t._args = pack(...) end
  loop.tasks[t] = true
  loop.ntasks = loop.ntasks + 1
  push(loop, t)
  return t
end

function M.create_task(fn, ...)
  local loop = get_loop("create_task")
  if type(fn) == "table" and fn._is_task then return fn end
  return new_task(loop, fn, nil, select("#", ...), ...)
end

function M.ensure_future(x, ...)
  if is_future(x) then return x end
  return M.create_task(x, ...)
end

function Task:get_name() return self._name or ("Task-" .. self.id) end
function Task:set_name(name) self._name = tostring(name) end
function Task:get_coro() return self.co end
function Task:cancelling() return self._ncancel or 0 end

function Task:uncancel()
  local n = self._ncancel or 0
  if n > 0 then
    n = n - 1
    self._ncancel = n
    if n == 0 then self._must_cancel = nil end
  end
  return n
end

function Task:__tostring()
  return ("<Task %s name='%s'>"):format(self._state:lower(), self:get_name())
end

function Task:cancel(msg)
  if self._state ~= PENDING then return false end
  self._ncancel = (self._ncancel or 0) + 1
  local err = Error.new("Cancelled", msg ~= nil and tostring(msg) or "")
  local w = self._wait
  if w == PARK or w == SLEEP or w == THREAD_WAIT then
    wake(self, CANCEL, err)
  elseif w ~= nil and w:cancel(msg) then
    -- the awaited future's cancellation wakes us
  else
    self._must_cancel = err
  end
  return true
end

-- Unretrieved failures: reported once, when the task is collected or its
-- loop closes. A failed task gets a metatable with __gc (only then).
local function report(task)
  if task._retrieved or task._reported then return end
  task._reported = true
  local tb = task._tb or tostring(task._err)
  io.stderr:write(("Task exception was never retrieved\nfuture: %s\n%s\n"):format(tostring(task), tb))
  io.stderr:flush()
end

local FailedTask = setmetatable({__name = "braid.asyncio.Task", __gc = function(t) report(t) end},
  {__index = Task})
FailedTask.__index = Task
FailedTask.__tostring = Task.__tostring

local function task_finished(loop, task)
  loop.tasks[task] = nil
  loop.ntasks = loop.ntasks - 1
  task._wait, task._a1, task._a2, task._must_cancel = nil, nil, nil, nil
end

local function err_string(err)
  if type(err) == "string" then return err end
  local ok, s = pcall(tostring, err)
  return ok and s or "(error object is a " .. type(err) .. " value)"
end

local function task_failed(loop, task, err)
  local co = task.co
  if is_cancel(err) then
    co_close(co)
    task_finished(loop, task)
    task._err = err
    set_outcome(task, CANCELLED, 0, nil, err)
    return
  end
  local tb = debug.traceback(co, err_string(err))
  co_close(co) -- runs the <close> variables an error leaves pending
  task._tb = tb
  if Error.is(err) or type(err) == "table" then pcall(C._set_traceback, err, tb) end
  task_finished(loop, task)
  task._failed = true
  setmetatable(task, FailedTask)
  loop.failed[task] = true
  set_outcome(task, FINISHED, 0, nil, err)
end

local function bad_yield(loop, task)
  co_close(task.co)
  task_failed(loop, task, Error.new("RuntimeError",
    "coroutine.yield inside an asyncio task: use asyncio.sleep(0) or await instead"))
end

local step

-- step with a "task" slice on the timeline (tracing on)
local function traced_step(loop, task)
  local t0 = trace_now()
  step(loop, task)
  local lb = loop.label
  if not lb then
    lb = "Loop " .. tostring(loop.c):gsub("^.-: ", "")
    loop.label = lb
  end
  local name = rawget(task, "_name") or ("Task-" .. task.id)
  trace_slice("task", name, t0, nil, {loop = lb})
  if task._state == CANCELLED then
    trace._instant("cancel", name, {loop = lb})
  elseif task._failed then
    local ok, s = pcall(tostring, task._err)
    trace._instant("error", ok and s:match("[^\n]*") or "error", {task = name})
  end
end

-- Runs task until it suspends or ends, and files what it waits on.
function step(loop, task)
  local a1, a2 = task._a1, task._a2
  task._a1, task._a2 = nil, nil
  local mc = task._must_cancel
  if mc ~= nil then
    if task._fn then -- cancelled before it started: it never runs
      task._fn, task._args, task._must_cancel = nil, nil, nil
      return task_failed(loop, task, mc)
    end
    if not task._handoff and a1 ~= CANCEL then
      task._must_cancel = nil
      a1, a2 = CANCEL, mc
    end
  end
  task._handoff = nil
  local prev = current
  current = task
  local w = task._w
  if w then stepping(task.co, w) end
  local ok, r1, r2, r3
  local fn = task._fn
  if fn then
    task._fn = nil
    local args = task._args
    if args then
      task._args = nil
      ok, r1, r2, r3 = co_resume(task.co, fn, unpack(args, 1, args.n))
    else
      ok, r1, r2, r3 = co_resume(task.co, fn)
    end
  else
    ok, r1, r2, r3 = co_resume(task.co, a1, a2)
  end
  stepping()
  current = prev
  if not ok then return task_failed(loop, task, r1) end
  if r1 == DONE then
    task_finished(loop, task)
    return set_outcome(task, FINISHED, r2, r3, nil)
  end
  mc = task._must_cancel
  if mc ~= nil and r1 ~= DEFER_CANCEL then
    task._must_cancel = nil
    task._a1, task._a2 = CANCEL, mc -- its suspension point abandons that wait
    return push(loop, task)
  end
  if r1 == nil then
    push(loop, task)
  elseif r1 == PARK then
    task._wait = PARK
  elseif r1 == THREAD_WAIT then
    task._wait = THREAD_WAIT
    loop.waiting[task.id] = task
    if r2 then task._timer = add_timer(loop, r2, wake_timer, task) end
  elseif r1 == SLEEP then
    task._wait = SLEEP
    task._timer = add_timer(loop, r2, wake_timer, task)
  elseif r1 == DEFER_CANCEL then
    task._must_cancel = r2
    task._handoff = true -- resumed plainly: it returns what its wait got
    push(loop, task)
  elseif is_future(r1) and r1._state == PENDING then
    task._wait = r1
    add_waiter(r1, task)
  elseif is_future(r1) then
    push(loop, task)
  else
    bad_yield(loop, task)
  end
end

-- The task hook (bindings/lwait.c): the waiter of the task running in co.
C._set_task_hook(function(co)
  local t = current
  if t and t.co == co then
    local w = t._w
    if not w then
      w = C._waiter(t.loop.c, t.id)
      t._w = w
    end
    return w
  end
end)

-- ---- the loop ----

local Loop = {__name = "braid.asyncio.Loop"}
Loop.__index = Loop

local function new_loop()
  return setmetatable({c = C._loop_new(), q = {}, qn = 0, spare = {}, heap = {}, hn = 0, seq = 0,
    tasks = {}, ntasks = 0, waiting = {}, woken = {}, failed = setmetatable({}, {__mode = "k"})}, Loop)
end

local function run_ready(loop)
  local q, n = loop.q, loop.qn
  loop.q, loop.qn = loop.spare, 0
  local tr = n > 0 and trace_on()
  for i = 1, n do
    local x = q[i]
    q[i] = nil
    if x.co then
      if tr then traced_step(loop, x) else step(loop, x) end
    elseif not x.cancelled then
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
  local woken = loop.woken
  local waiting = loop.waiting
  local n, why = C._run_once(loop.c, timeout, woken, next(waiting) ~= nil)
  for i = 1, n do
    local t = waiting[woken[i]]
    if t and t._wait == THREAD_WAIT then wake(t) end
  end
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
  if running_loop and running_loop.repl and current == running_loop.main then
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
  current = nil
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
  current = nil
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
  this_task("sleep")
  local m, e
  if delay <= 0 then
    m, e = co_yield()
  else
    m, e = co_yield(SLEEP, monotonic() + delay)
  end
  if m == CANCEL then error(e, 0) end
  return result
end

M._CANCEL = CANCEL
function M._current() return current end
M._this_task = this_task
M._new_future = new_future
M._get_loop = get_loop

local function await_future(fut)
  if fut._state == PENDING then
    local t = this_task("await")
    if fut == t then raise("RuntimeError", "a task cannot await itself", 3) end
    local m, e = co_yield(fut)
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
  PENDING = PENDING, Future = Future, add_timer = add_timer, add_waiter = add_waiter,
  as_task = as_task, await_future = await_future, callable = callable,
  cancelled_error = cancelled_error, get_loop = get_loop, hook = hook, is_cancel = is_cancel,
  is_future = is_future, new_future = new_future, new_task = new_task, raise = raise,
  set_outcome = set_outcome, this_task = this_task, current = function() return current end})

M._live_loops = C._live_loops
M.Task = Task
M.Handle = Handle
M.Loop = Loop
M._wake_parked = wake_parked
M._PARK = PARK

-- primitives and queues (scripts/braid/asyncio_locks.lua)
require("braid.asyncio_locks")(M)
require("braid.asyncio_streams")(M, C) -- streams (scripts/braid/asyncio_streams.lua)
require("braid.asyncio_files")(M, C) -- files (scripts/braid/asyncio_files.lua)

return M
