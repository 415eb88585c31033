-- braid.asyncio, Lua half: the scheduler (one loop per state at a time),
-- Future and Task, run, sleep, await, gather, wait, wait_for, as_completed,
-- shield, timeout, TaskGroup, the loop's call_* methods and introspection.
-- Tasks are coroutines; a task suspends by yielding a request to step().
local C = ...
local braid = require "braid"
local Error = braid.Error
local monotonic = braid.monotonic

local co_create, co_resume, co_yield = coroutine.create, coroutine.resume, coroutine.yield
local co_running, co_close = coroutine.running, coroutine.close
local setmetatable, getmetatable, rawget, type, select, tostring, error, pcall =
  setmetatable, getmetatable, rawget, type, select, tostring, error, pcall
local pack, unpack = table.pack, table.unpack

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

-- Runs task until it suspends or ends, and files what it waits on.
local function step(loop, task)
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
  for i = 1, n do
    local x = q[i]
    q[i] = nil
    if x.co then
      step(loop, x)
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
  local main = new_task(loop, fn, nil, select("#", ...), ...)
  loop.main = main
  local ok, err = pcall(run_until, loop, main)
  main._retrieved = true
  local ok2, err2 = pcall(close_loop, loop)
  running_loop = nil
  current = nil
  C._set_running(false)
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
end

local function leave()
  running_loop = nil
  current = nil
  C._set_running(false)
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

-- gather: an outer future whose cancellation cancels every child
local Gathering = setmetatable({__name = "braid.asyncio.Future"}, {__index = Future})
Gathering.__index = Gathering
Gathering.__tostring = Future.__tostring

function Gathering:cancel(msg)
  if self._state ~= PENDING then return false end
  local any = false
  for _, c in ipairs(self.children) do
    if c:cancel(msg) then any = true end
  end
  if any then self._cancel_requested = msg or true end
  return any
end

function M.gather(...)
  local n = select("#", ...)
  local opts = n > 0 and select(n, ...) or nil
  local return_exceptions = false
  if type(opts) == "table" and not is_future(opts) and getmetatable(opts) == nil then
    return_exceptions = opts.return_exceptions and true or false
    n = n - 1
  end
  local loop = get_loop("gather")
  local args = pack(...)
  local children, seen, index = {}, {}, {}
  for i = 1, n do
    local aw = args[i]
    local t = seen[aw]
    if not t then
      t = as_task(loop, aw, "gather", i)
      if aw ~= nil then seen[aw] = t end
      children[#children + 1] = t
    end
    index[i] = t
  end
  this_task("gather")
  local outer = setmetatable({loop = loop, _state = PENDING, children = children}, Gathering)
  if #children == 0 then return {n = 0} end
  local left = #children
  local function on_done(child)
    if outer._state ~= PENDING then
      if not child:cancelled() and child._failed then child._retrieved = true end
      return
    end
    if not return_exceptions then
      if child:cancelled() then
        outer._failed = true
        set_outcome(outer, FINISHED, 0, nil, cancelled_error(child))
        return
      elseif child._failed then
        child._retrieved = true
        outer._failed = true
        set_outcome(outer, FINISHED, 0, nil, child._err)
        return
      end
    end
    left = left - 1
    if left > 0 then return end
    local res = {n = n}
    for i = 1, n do
      local c = index[i]
      if c._state == CANCELLED then
        res[i] = cancelled_error(c)
      elseif c._failed then
        c._retrieved = true
        res[i] = c._err
      else
        c._retrieved = true
        local cn = c._n
        if cn == 1 then
          res[i] = c._v
        elseif cn then
          res[i] = c._v[1]
        end
      end
    end
    if outer._cancel_requested then
      outer._failed = true
      return set_outcome(outer, FINISHED, 0, nil,
        Error.new("Cancelled", outer._cancel_requested ~= true and tostring(outer._cancel_requested) or ""))
    end
    set_outcome(outer, FINISHED, 1, res, nil)
  end
  local h = hook(on_done)
  for _, c in ipairs(children) do
    if c._state ~= PENDING then
      on_done(c)
    else
      add_waiter(c, h)
    end
  end
  return await_future(outer)
end

-- wait(aws, {timeout=, return_when=}) -> done, pending (sets keyed by task)
function M.wait(aws, opts)
  if type(aws) ~= "table" or is_future(aws) then
    error(("bad argument #1 to 'wait' (table of tasks expected, got %s)"):format(type(aws)), 2)
  end
  local loop = get_loop("wait")
  opts = opts or {}
  local timeout, when = opts.timeout, opts.return_when or M.ALL_COMPLETED
  if when ~= M.ALL_COMPLETED and when ~= M.FIRST_COMPLETED and when ~= M.FIRST_EXCEPTION then
    raise("ValueError", "Invalid return_when value: " .. tostring(when), 2)
  end
  local fs, seen = {}, {}
  local function add(x)
    if x ~= nil and not seen[x] then
      local t = as_task(loop, x, "wait")
      seen[x] = true
      fs[#fs + 1] = t
    end
  end
  for i = 1, #aws do add(aws[i]) end
  for k, v in pairs(aws) do
    if math.type(k) ~= "integer" then add(is_future(k) and k or v) end
  end
  if #fs == 0 then raise("ValueError", "Set of Tasks/Futures is empty.", 2) end
  local t = this_task("wait")
  local function finished()
    local left = 0
    for _, f in ipairs(fs) do
      if f._state ~= PENDING then
        if when == M.FIRST_COMPLETED then return true end
        if when == M.FIRST_EXCEPTION and f._failed then return true end
      else
        left = left + 1
      end
    end
    return left == 0
  end
  if not finished() then
    local waiter = new_future(loop)
    local function on_done()
      if waiter._state == PENDING and finished() then waiter:set_result() end
    end
    local hk = hook(on_done)
    for _, f in ipairs(fs) do add_waiter(f, hk) end
    local h = timeout and timeout >= 0 and loop:call_later(timeout, function()
      if waiter._state == PENDING then waiter:set_result() end
    end)
    local ok, err = pcall(await_future, waiter)
    if h then h:cancel() end
    for _, f in ipairs(fs) do f:remove_done_callback(hk) end
    if not ok then error(err, 0) end
  end
  local done, pending = {}, {}
  for _, f in ipairs(fs) do
    if f._state ~= PENDING then done[f] = true else pending[f] = true end
  end
  return done, pending
end

-- timeout(delay, fn, ...): runs fn(cm, ...) with cm the Timeout (Python's
-- `async with timeout() as cm`); past the deadline the task is cancelled
-- and the cancellation leaves as a Timeout error.
local Timeout = {__name = "braid.asyncio.Timeout"}
Timeout.__index = Timeout

function Timeout:when() return self._when end
function Timeout:expired() return self._expired end

local function timeout_fire(cm)
  cm._expired = true
  cm._handle = nil
  cm._task:cancel()
end

function Timeout:reschedule(when)
  if self._done then raise("RuntimeError", "Timeout has already exited", 2) end
  if when ~= nil and type(when) ~= "number" then
    error(("bad argument #1 to 'reschedule' (number expected, got %s)"):format(type(when)), 2)
  end
  if self._handle then self._handle.cancelled = true end
  self._handle, self._when = nil, when
  if when and not self._expired then
    local h = add_timer(self._task.loop, when, timeout_fire)
    h.a = {self, n = 1}
    self._handle = h
  end
end

local function run_with_timeout(when, fn, ...)
  local t = this_task("timeout")
  local cm = setmetatable({_task = t, _expired = false}, Timeout)
  local entry = t._ncancel or 0
  cm:reschedule(when)
  local res = pack(pcall(fn, cm, ...))
  cm._done = true
  if cm._handle then cm._handle.cancelled = true end
  if cm._expired then
    local left = t:uncancel()
    if not res[1] and is_cancel(res[2]) and left <= entry then
      raise("Timeout", "timed out", 3)
    end
  end
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

function M.timeout(delay, fn, ...)
  if delay ~= nil and type(delay) ~= "number" then
    error(("bad argument #1 to 'timeout' (number expected, got %s)"):format(type(delay)), 2)
  end
  if not callable(fn) then
    error(("bad argument #2 to 'timeout' (function expected, got %s)"):format(type(fn)), 2)
  end
  return run_with_timeout(delay and monotonic() + delay, fn, ...)
end

function M.timeout_at(when, fn, ...)
  return run_with_timeout(when, fn, ...)
end

local function cancel_and_wait(fut)
  fut:cancel()
  local loop = fut.loop
  local waiter = new_future(loop)
  fut:add_done_callback(function() if waiter._state == PENDING then waiter:set_result() end end)
  -- the caller being cancelled meanwhile still waits for fut to unwind
  while fut._state == PENDING do
    local ok, err = pcall(await_future, waiter)
    if not ok and fut._state ~= PENDING then error(err, 0) end
  end
end

function M.wait_for(aw, timeout, ...)
  local loop = get_loop("wait_for")
  local fut = is_future(aw) and aw or as_task(loop, aw, "wait_for")
  if timeout == nil then return await_future(fut) end
  if type(timeout) ~= "number" then
    error(("bad argument #2 to 'wait_for' (number expected, got %s)"):format(type(timeout)), 2)
  end
  this_task("wait_for")
  if timeout <= 0 then
    if fut._state ~= PENDING then return fut:result() end
    cancel_and_wait(fut)
    if fut._state == CANCELLED then raise("Timeout", "timed out", 2) end
    return fut:result()
  end
  return run_with_timeout(monotonic() + timeout, function(_, f) return await_future(f) end, fut)
end

-- as_completed(aws, timeout) -> iterator over the tasks as they finish
function M.as_completed(aws, timeout)
  local loop = get_loop("as_completed")
  if type(aws) ~= "table" then
    error(("bad argument #1 to 'as_completed' (table expected, got %s)"):format(type(aws)), 2)
  end
  local todo, seen = {}, {}
  for i = 1, #aws do
    if not seen[aws[i]] then
      seen[aws[i]] = true
      todo[#todo + 1] = as_task(loop, aws[i], "as_completed")
    end
  end
  local done_q, left = {}, #todo
  local head = 1
  local waiter
  local function on_done(f)
    done_q[#done_q + 1] = f
    if waiter and waiter._state == PENDING then waiter:set_result() end
  end
  for _, f in ipairs(todo) do f:add_done_callback(on_done) end
  local deadline = timeout and monotonic() + timeout
  return function()
    if left == 0 then return nil end
    while head > #done_q do
      this_task("as_completed")
      waiter = new_future(loop)
      if deadline then
        local ok, err = pcall(M.wait_for, waiter, math.max(0, deadline - monotonic()))
        if not ok then
          if Error.is(err, "Timeout") then
            for _, f in ipairs(todo) do f:remove_done_callback(on_done) end
          end
          error(err, 0)
        end
      else
        await_future(waiter)
      end
    end
    local f = done_q[head]
    head = head + 1
    left = left - 1
    return f
  end
end

-- shield(aw) -> aw's results; cancelling the caller does not cancel aw
function M.shield(aw, ...)
  local loop = get_loop("shield")
  local inner = is_future(aw) and aw or as_task(loop, aw, "shield")
  if inner._state ~= PENDING then return inner:result() end
  local outer = new_future(loop)
  inner:add_done_callback(function(f)
    if outer._state ~= PENDING then
      if not f:cancelled() then f._retrieved = true end
      return
    end
    if f:cancelled() then
      outer:cancel()
    elseif f._failed then
      f._retrieved = true
      outer:set_exception(f._err)
    else
      set_outcome(outer, FINISHED, f._n or 0, f._v, nil)
    end
  end)
  return await_future(outer)
end

function M.to_thread(fn, ...)
  local loop = get_loop("to_thread")
  return await_future(loop:run_in_executor(nil, fn, ...))
end

function M.current_task()
  return current
end

function M.all_tasks()
  local loop = get_loop("all_tasks")
  local set = {}
  for t in pairs(loop.tasks) do set[t] = true end
  return set
end

-- ---- TaskGroup ----

local TaskGroup = {__name = "braid.asyncio.TaskGroup"}
TaskGroup.__index = TaskGroup

local function tg_abort(tg)
  tg._aborting = true
  for t in pairs(tg._tasks) do
    if t._state == PENDING then t:cancel() end
  end
end

local function tg_on_done(tg, t)
  tg._tasks[t] = nil
  tg._n = tg._n - 1
  if tg._n == 0 and tg._waiter and tg._waiter._state == PENDING then tg._waiter:set_result() end
  if t:cancelled() or not t._failed then return end
  t._retrieved = true
  tg._errors[#tg._errors + 1] = t._err
  if not tg._aborting then tg_abort(tg) end
  if not tg._exiting and not tg._parent_cancel_requested then
    tg._parent_cancel_requested = true
    tg._parent:cancel()
  end
end

function TaskGroup:create_task(fn, ...)
  if not self._entered then raise("RuntimeError", "TaskGroup has not been entered", 2) end
  if self._done or (self._exiting and self._n == 0) then
    raise("RuntimeError", "TaskGroup is finished", 2)
  end
  if self._aborting then raise("RuntimeError", "TaskGroup is shutting down", 2) end
  local t = new_task(self._loop, fn, nil, select("#", ...), ...)
  self._tasks[t] = true
  self._n = self._n + 1
  -- a scheduled callback, as in Python: siblings already ready run (and
  -- may fail too) before the first failure aborts the group
  t:add_done_callback(function(task) tg_on_done(self, task) end)
  return t
end

function M.TaskGroup(fn, ...)
  if not callable(fn) then
    error(("bad argument #1 to 'TaskGroup' (function expected, got %s)"):format(type(fn)), 2)
  end
  local parent = this_task("TaskGroup")
  local tg = setmetatable({_loop = parent.loop, _parent = parent, _tasks = {}, _n = 0, _errors = {},
    _entered = true}, TaskGroup)
  local res = pack(pcall(fn, tg, ...))
  tg._exiting = true
  local propagate
  if not res[1] then
    if is_cancel(res[2]) then
      propagate = res[2]
    else
      tg._errors[#tg._errors + 1] = res[2]
    end
    if not tg._aborting then tg_abort(tg) end
  end
  while tg._n > 0 do
    tg._waiter = new_future(tg._loop)
    local ok, err = pcall(await_future, tg._waiter)
    if not ok then
      if not tg._aborting then tg_abort(tg) end
      propagate = propagate or err
    end
  end
  tg._waiter = nil
  tg._done = true
  if tg._parent_cancel_requested then
    -- our own cancellation of the parent is not the parent's: drop it
    if parent:uncancel() == 0 and propagate and #tg._errors > 0 then propagate = nil end
  end
  if propagate and #tg._errors == 0 then error(propagate, 0) end
  if propagate and (parent._ncancel or 0) > 0 and not tg._parent_cancel_requested then
    error(propagate, 0) -- the parent is being cancelled from outside: not swallowed
  end
  if #tg._errors > 0 then
    local errs = tg._errors
    local e = Error.new("ExceptionGroup",
      ("unhandled errors in a TaskGroup (%d sub-exception%s)"):format(#errs, #errs > 1 and "s" or ""))
    e.errors = errs
    error(e, 0)
  end
  return unpack(res, 2, res.n)
end

-- ---- introspection ----

local function awaiters(fut, out)
  out = out or {}
  for _, cb in ipairs(fut._cbs or {}) do
    if type(cb) == "table" and cb.co then out[#out + 1] = cb end
  end
  for t in pairs(fut.loop.tasks) do -- tasks awaiting a gather / wait on fut
    local w = t._wait
    if type(w) == "table" and w ~= fut and w.children then
      for _, c in ipairs(w.children) do
        if c == fut then out[#out + 1] = t end
      end
    end
  end
  return out
end

-- capture_call_graph(task) -> {future=task, call_stack=traceback, awaited_by={graph...}}
function M.capture_call_graph(fut, depth)
  fut = fut or current
  if fut == nil then return nil end
  depth = depth or 0
  local g = {future = fut, awaited_by = {}}
  if fut.co and fut._state == PENDING then g.call_stack = debug.traceback(fut.co, nil) end
  if depth < 64 then
    for _, t in ipairs(awaiters(fut)) do
      g.awaited_by[#g.awaited_by + 1] = M.capture_call_graph(t, depth + 1)
    end
  end
  return g
end

function M.format_call_graph(fut)
  local lines = {}
  local function walk(g, indent)
    local f = g.future
    lines[#lines + 1] = ("%s* %s"):format(indent, f._is_task and ("Task(name='%s', id=%d)"):format(f:get_name(), f.id) or tostring(f))
    if g.call_stack then
      for line in g.call_stack:gmatch("[^\n]+") do
        if not line:match("^stack traceback") then lines[#lines + 1] = indent .. "  |" .. line end
      end
    end
    if #g.awaited_by > 0 then
      lines[#lines + 1] = indent .. "  + awaited by:"
      for _, a in ipairs(g.awaited_by) do walk(a, indent .. "    ") end
    end
  end
  local g = M.capture_call_graph(fut)
  if g then walk(g, "") end
  return table.concat(lines, "\n")
end

function M.print_call_graph(fut)
  print(M.format_call_graph(fut or current))
end

M._live_loops = C._live_loops
M.Task = Task
M.Handle = Handle
M.Loop = Loop
M._wake_parked = wake_parked
M._PARK = PARK

-- primitives and queues (scripts/braid/asyncio_locks.lua)
require("braid.asyncio_locks")(M)
require("braid.asyncio_streams")(M, C) -- streams (scripts/braid/asyncio_streams.lua)

return M
