-- braid.asyncio's scheduler core: the ready queue and timers, waking tasks,
-- Future and Task, and step() (a task run until it suspends); the loop
-- that drives them is in asyncio.lua. Returns the internals it shares (I).
return function(M, C, get_loop)
  local braid = require "braid"
  local Error = braid.Error

  local co_create = coroutine.create
  local co_running, co_close = coroutine.running, coroutine.close
  local resume = C._resume -- coroutine.resume telling C the task's waiter
  local c_ready, c_unready = C._ready, C._unready
  local setmetatable, getmetatable, rawget, type, select, tostring, error, pcall =
    setmetatable, getmetatable, rawget, type, select, tostring, error, pcall
  local pack, unpack = table.pack, table.unpack
  local trace = braid.trace
  local trace_now, trace_slice = trace._now, trace._slice
  local TR = require "braid.asyncio_trace"

  -- What a task yields to step(): (nil) run again soon; (PARK) wait for
  -- wake(); (SLEEP, when); (a Future) wait for it; C's (THREAD_WAIT, when)
  -- and (DEFER_CANCEL, err). A task is resumed with nothing, with wake()'s
  -- values, or with (CANCEL, err) at a suspension point it must abandon.
  local THREAD_WAIT, CANCEL, DEFER_CANCEL = C.THREAD_WAIT, C.CANCEL, C.DEFER_CANCEL
  local PARK, SLEEP, DONE = {}, {}, {}
  -- A task starts with few fields (a table of 8 slots: each power of two
  -- more costs memory, and time in every traversal of the collector), and
  -- a field is added when first set. The hot ones (_wait, _w, _won, _slow
  -- after the first step) are then never set back to nil while the task
  -- runs: a key set to nil and back costs a rehash, and a read of a nil
  -- field takes the VM's slow path through the metatable. _slow is true
  -- while any of _a1 (values; absent or NOA: none), _must_cancel, _handoff
  -- or _fn may be set: a step looks at them only then, and at _must_cancel
  -- after it only then; _timer is looked at only in a SLEEP or THREAD_WAIT
  -- wait.
  local NOA = {}
  local PENDING, FINISHED, CANCELLED = "PENDING", "FINISHED", "CANCELLED"

  -- the task running now (false: none), in a table C's run_ready sets
  local cur = {false}
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


  -- The running task, checking that the caller runs in its coroutine.
  local function this_task(what)
    local t = cur[1]
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

  -- (bindings/lasyncio.c has a copy in C for tasks woken from C)
  local function wake(task, a1, a2)
    local w = task._wait
    task._wait = false
    local queued = false
    if w == THREAD_WAIT or w == SLEEP then -- (a timer is only set for these)
      if w == THREAD_WAIT then
        task.loop.waiting[task.id] = nil
        queued = c_unready(task._w) -- (woken from C already: cancel does not come here then)
      end
      local h = task._timer
      if h then
        h.cancelled = true
        task._timer = false
      end
    end
    -- (no values: _a1 is NOA or absent already; a step consumed the last)
    if a1 ~= nil or a2 ~= nil then task._a1, task._a2, task._slow = a1, a2, true end
    if not queued then push(task.loop, task) end
  end

  -- Wakes a task that yielded PARK (a primitive's waiter); false when it is
  -- no longer parked there (cancelled meanwhile): hand nothing to it.
  local function wake_parked(task, a1, a2)
    if task._wait ~= PARK then return false end
    wake(task, a1, a2)
    task._handoff, task._slow = true, true -- a cancellation must not replace what it hands over
    return true
  end

  -- A task's timer h (sleep, thread-wait deadline) fired: wake it unless it
  -- was woken otherwise meanwhile (which dropped or replaced task._timer).
  local function wake_timer(task, h)
    if task._timer == h then
      task._timer = false
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
      _fn = fn, _slow = true}, Task)
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
      if n == 0 then self._must_cancel = false end
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
    -- woken from C, its wait filed still, it is queued or running: not waiting
    if w == THREAD_WAIT and c_ready(self._w) then w = false end
    if w == PARK or w == SLEEP or w == THREAD_WAIT then
      wake(self, CANCEL, err)
    elseif w and w:cancel(msg) then
      -- the awaited future's cancellation wakes us
    else
      self._must_cancel, self._slow = err, true
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
    if task._aid then TR.task_end(task) end -- its track of waits (asyncio_trace.lua)
    loop.tasks[task] = nil
    loop.ntasks = loop.ntasks - 1
    -- the scheduler's fields go (a done task's table shrinks when its
    -- outcome's fields are added); _a1, _a2, _handoff and _timer are no
    -- longer looked at
    task._wait, task._slow, task._won, task._must_cancel = nil, nil, nil, nil
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

  local step, after_step

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
    if task._wait == THREAD_WAIT then -- woken from C, its wait filed still (run_once)
      task._wait = false
      loop.waiting[task.id] = nil
      c_unready(task._w)
    end
    local a1, a2, fn
    if task._slow then
      a1 = task._a1
      if a1 == NOA then
        a1 = nil
      else
        a2 = task._a2
        if a1 ~= nil or a2 ~= nil then task._a1, task._a2 = NOA, false end
      end
      local mc = task._must_cancel
      if mc then
        if task._fn then -- cancelled before it started: it never runs
          task._fn, task._args, task._must_cancel = nil, nil, false
          return task_failed(loop, task, mc)
        end
        if not task._handoff and a1 ~= CANCEL then
          task._must_cancel = false
          a1, a2, mc = CANCEL, mc, false
        end
      end
      if task._handoff then task._handoff = false end
      fn = task._fn
      if mc then
        task._slow = true -- a cancellation kept for after this step
      elseif fn then
        task._slow = nil -- (first step: a task that never needs it again has it not)
      else
        task._slow = false
      end
    end
    local prev = cur[1]
    cur[1] = task
    local w = task._w -- stepping while co runs (false until its first wait)
    local ok, r1, r2, r3
    if fn then
      task._fn = nil -- (goes at the table's next rehash)
      local args = task._args
      if args then
        task._args = nil
        ok, r1, r2, r3 = resume(task.co, w, fn, unpack(args, 1, args.n))
      else
        ok, r1, r2, r3 = resume(task.co, w, fn)
      end
    else
      ok, r1, r2, r3 = resume(task.co, w, a1, a2)
    end
    cur[1] = prev
    return after_step(loop, task, ok, r1, r2, r3)
  end

  -- What a step's resume returned: the task's end, or the wait it files.
  -- (C's run_ready files a THREAD_WAIT with no deadline itself.)
  function after_step(loop, task, ok, r1, r2, r3)
    if not ok then return task_failed(loop, task, r1) end
    if r1 == DONE then
      task_finished(loop, task)
      return set_outcome(task, FINISHED, r2, r3, nil)
    end
    if task._slow then -- (set with every _must_cancel)
      local mc = task._must_cancel
      if mc and r1 ~= DEFER_CANCEL then
        task._must_cancel = false
        task._a1, task._a2 = CANCEL, mc -- its suspension point abandons that wait
        return push(loop, task)
      end
    end
    if r1 == THREAD_WAIT then -- first: every stream wait
      task._wait = THREAD_WAIT
      loop.waiting[task.id] = task
      if r2 then task._timer = add_timer(loop, r2, wake_timer, task) end
    elseif r1 == nil then
      push(loop, task)
    elseif r1 == PARK then
      task._wait = PARK
    elseif r1 == SLEEP then
      task._wait = SLEEP
      task._timer = add_timer(loop, r2, wake_timer, task)
    elseif r1 == DEFER_CANCEL then
      task._must_cancel, task._slow = r2, true
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
    local t = cur[1]
    if t and t.co == co then
      local w = t._w
      if not w then
        w = C._waiter(t.loop.c, t.id)
        t._w = w
        -- a task that waits on C (streams, threads) steps and is woken
        -- often: it keeps the fields each step and wake-up reads
        if not t._slow then t._slow = false end
        if not t._timer then t._timer = false end
      end
      return w
    end
  end)

  return {THREAD_WAIT = THREAD_WAIT, CANCEL = CANCEL, PARK = PARK, SLEEP = SLEEP, NOA = NOA,
    PENDING = PENDING, FINISHED = FINISHED, CANCELLED = CANCELLED,
    Future = Future, Task = Task, Handle = Handle,
    raise = raise, is_cancel = is_cancel, callable = callable, this_task = this_task,
    push = push, add_timer = add_timer, heap_pop = heap_pop,
    wake = wake, wake_parked = wake_parked, wake_timer = wake_timer,
    is_future = is_future, new_future = new_future, hook = hook, set_outcome = set_outcome,
    cancelled_error = cancelled_error, add_waiter = add_waiter, new_task = new_task,
    report = report, task_finished = task_finished, err_string = err_string,
    step = step, traced_step = traced_step, after_step = after_step, cur = cur,
    current = function() return cur[1] or nil end,
    set_current = function(t) cur[1] = t or false end}
end
