-- braid.asyncio's ways of waiting for many tasks and for time: gather,
-- wait, timeout/timeout_at, wait_for, as_completed, shield, to_thread,
-- TaskGroup, and introspection (call graphs). Loaded by asyncio.lua with
-- the module table M and I, the scheduler's internals.
return function(M, I)
  local braid = require "braid"
  local Error = braid.Error
  local monotonic = braid.monotonic
  local setmetatable, getmetatable, type, select, tostring, error, pcall =
    setmetatable, getmetatable, type, select, tostring, error, pcall
  local pack, unpack = table.pack, table.unpack
  local CANCELLED = I.CANCELLED
  local FINISHED = I.FINISHED
  local PENDING = I.PENDING
  local Future = I.Future
  local add_timer = I.add_timer
  local add_waiter = I.add_waiter
  local as_task = I.as_task
  local await_future = I.await_future
  local callable = I.callable
  local cancelled_error = I.cancelled_error
  local get_loop = I.get_loop
  local hook = I.hook
  local is_cancel = I.is_cancel
  local is_future = I.is_future
  local new_future = I.new_future
  local new_task = I.new_task
  local raise = I.raise
  local set_outcome = I.set_outcome
  local this_task = I.this_task

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
    return I.current()
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
    fut = fut or I.current()
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

  -- _dump_tasks() -> text or nil: the tasks of the loop running in this
  -- state, each with its call stack and await chain (for braid.dump)
  function M._dump_tasks()
    local ok, loop = pcall(get_loop, "dump")
    if not ok then return nil end
    local tasks = {}
    for t in pairs(loop.tasks) do tasks[#tasks + 1] = t end
    table.sort(tasks, function(a, b) return a.id < b.id end)
    local lines = {("  asyncio loop: %d task%s"):format(#tasks, #tasks == 1 and "" or "s")}
    local function name(f) return f._is_task and ("'" .. f:get_name() .. "'") or tostring(f) end
    for _, t in ipairs(tasks) do
      local g = M.capture_call_graph(t, 48)
      local chain, a = {}, g.awaited_by[1]
      while a and #chain < 16 do
        chain[#chain + 1] = name(a.future)
        a = a.awaited_by[1]
      end
      local running = t == I.current()
      local on = not running and require("braid.asyncio_trace").dump_line(t)
      lines[#lines + 1] = ("  Task %s (id %d)%s%s%s"):format(name(t), t.id,
        running and " running (its stack is the thread's, above)" or "",
        on and (" " .. on) or "",
        #chain > 0 and (" awaited by " .. table.concat(chain, " <- ")) or "")
      for line in (not running and g.call_stack or ""):gmatch("[^\n]+") do
        if not line:match("^stack traceback") then lines[#lines + 1] = "\t" .. line:gsub("^\t", "  ") end
      end
    end
    return table.concat(lines, "\n")
  end

  function M.print_call_graph(fut)
    print(M.format_call_graph(fut or I.current()))
  end
end
