-- braid.asyncio's primitives and queues with asyncio semantics: Lock,
-- Event, Condition, Semaphore, BoundedSemaphore, Barrier, Queue,
-- LifoQueue, PriorityQueue. Each belongs to the loop it is first used on.
-- Waiters park their task (A._park); a wake hands over what they waited for.
-- Each takes name= (an options table) and has set_name / get_name.
return function(A)
  local braid = require "braid"
  local Error = braid.Error
  local TR = require "braid.asyncio_trace"
  local check_name = TR.check_name
  local trace_now = braid.trace._now
  local CANCEL, PARK, wake_parked, this_task = A._CANCEL, A._PARK, A._wake_parked, A._this_task
  local co_yield = coroutine.yield
  local setmetatable, type, error, pcall, select = setmetatable, type, error, pcall, select
  local threading_guard = require("braid.threading")._guard_mt

  local function raise(kind, msg, level)
    error(Error.new(kind, msg), (level or 1) + 1)
  end

  -- The primitive's loop: bound on first use, checked after.
  local function bind(self, what)
    local t = this_task(what)
    local loop = self._loop
    if loop == nil then
      self._loop = t.loop
    elseif loop ~= t.loop then
      raise("RuntimeError", ("%s is bound to a different event loop"):format(self.__kind or "object"), 3)
    end
    return t
  end

  -- FIFO of parked tasks: O(1) push and pop; a cancelled waiter leaves a
  -- hole (false) that pop skips. n counts the live entries.
  local function fifo() return {h = 1, t = 0, n = 0} end

  local function fifo_push(d, x)
    local t = d.t + 1
    d.t, d.n = t, d.n + 1
    d[t] = x
  end

  local function fifo_pop(d)
    local h, t = d.h, d.t
    while h <= t do
      local x = d[h]
      d[h] = nil
      h = h + 1
      if x then
        d.h, d.n = h, d.n - 1
        return x
      end
    end
    d.h, d.t, d.n = 1, 0, 0
  end

  local function fifo_remove(d, x)
    for i = d.h, d.t do
      if d[i] == x then
        d[i] = false
        d.n = d.n - 1
        return true
      end
    end
    return false
  end

  -- Wakes every waiter of d in order (with v, or with each's arrival index
  -- when v is nil); d must already be detached from its primitive.
  local function wake_all(d, v)
    local k = 0
    for i = d.h, d.t do
      local x = d[i]
      if x then
        wake_parked(x, v == nil and k or v)
        k = k + 1
      end
    end
  end

  -- Parks t on d (a waiter list of obj, waiting in op) until woken; returns
  -- the wake value. On cancellation takes t off the list and raises.
  local function wait_on(d, t, obj, op)
    fifo_push(d, t)
    t._won, t._wop, t._wsince = obj, op, trace_now() -- what it waits on (TR.begin, inlined)
    local v, e = co_yield(PARK) -- until wake_parked
    if t.loop.tracing then
      TR.done(t, v == CANCEL and "cancelled" or "ok")
    else
      t._won = false -- never nil: see asyncio_trace.lua
    end
    if v == CANCEL then
      fifo_remove(d, t)
      error(e, 0)
    end
    return v
  end

  -- The options table of a constructor called as Kind{...}, or nil; checks
  -- its name.
  local function opts(v, what)
    if type(v) ~= "table" then return nil end
    check_name(v.name, ("option 'name' to '%s'"):format(what), 3)
    return v
  end

  -- Hands v to the oldest waiter still parked; returns whether one took it.
  local function hand_off(d, v)
    while d.n > 0 do
      if wake_parked(fifo_pop(d), v) then return true end
    end
    return false
  end

  local function lock_like(cls)
    function cls:with(fn, ...)
      self:acquire()
      local g <close> = setmetatable({self}, threading_guard)
      return fn(self, ...)
    end
    function cls:guard()
      self:acquire()
      return setmetatable({self}, threading_guard)
    end
    cls.__close = nil
  end

  local function class(name)
    local c = {__name = "braid.asyncio." .. name, __kind = name}
    c.__index = c
    c.__tostring = function(self) return ("<asyncio.%s>"):format(name) end
    TR.nameable(c)
    return c
  end

  -- ---- Lock (FIFO hand-off) ----
  local Lock = class("Lock")
  function A.Lock(o)
    o = opts(o, "Lock")
    return setmetatable({_locked = false, _waiters = fifo(), _name = o and o.name}, Lock)
  end
  function Lock:acquire()
    local t = bind(self, "acquire")
    if not self._locked and self._waiters.n == 0 then
      self._locked = true
      return true
    end
    wait_on(self._waiters, t, self, "acquire")
    return true -- the releaser handed the lock over: still locked, now ours
  end
  function Lock:release()
    if not self._locked then raise("RuntimeError", "Lock is not acquired.", 2) end
    if not hand_off(self._waiters, true) then self._locked = false end
  end
  function Lock:locked() return self._locked end
  lock_like(Lock)

  -- ---- Event ----
  local Event = class("Event")
  function A.Event(o)
    o = opts(o, "Event")
    return setmetatable({_value = false, _waiters = fifo(), _name = o and o.name}, Event)
  end
  function Event:is_set() return self._value end
  function Event:set()
    if self._value then return end
    self._value = true
    local ws = self._waiters
    self._waiters = fifo()
    wake_all(ws, true)
  end
  function Event:clear() self._value = false end
  function Event:wait()
    local t = bind(self, "wait")
    if self._value then return true end
    return wait_on(self._waiters, t, self, "wait")
  end

  -- ---- Condition ----
  local Condition = class("Condition")
  function A.Condition(lock)
    local o = getmetatable(lock) == nil and opts(lock, "Condition")
    if o then lock = o.lock end
    if lock ~= nil and getmetatable(lock) ~= Lock then
      error(("bad argument #1 to 'Condition' (asyncio.Lock expected, got %s)"):format(type(lock)), 2)
    end
    return setmetatable({_lock = lock or A.Lock(), _waiters = fifo(), _name = o and o.name or nil},
      Condition)
  end
  function Condition:acquire() return self._lock:acquire() end
  function Condition:release() return self._lock:release() end
  function Condition:locked() return self._lock:locked() end
  lock_like(Condition)
  function Condition:wait()
    local t = bind(self, "wait")
    if not self._lock._locked then raise("RuntimeError", "cannot wait on un-acquired lock", 2) end
    self._lock:release()
    local ok, err = pcall(wait_on, self._waiters, t, self, "wait")
    -- the lock is re-acquired even when the wait was cancelled
    local cancel
    while true do
      local ok2, err2 = pcall(self._lock.acquire, self._lock)
      if ok2 then break end
      cancel = cancel or err2
    end
    if not ok then error(err, 0) end
    if cancel then error(cancel, 0) end
    return true
  end
  function Condition:wait_for(pred)
    local r = pred()
    while not r do
      self:wait()
      r = pred()
    end
    return r
  end
  function Condition:notify(n)
    if not self._lock._locked then raise("RuntimeError", "cannot notify on un-acquired lock", 2) end
    n = n or 1
    local ws, woken = self._waiters, 0
    while woken < n and ws.n > 0 do
      if wake_parked(fifo_pop(ws), true) then woken = woken + 1 end
    end
  end
  function Condition:notify_all() self:notify(math.huge) end

  -- ---- Semaphore / BoundedSemaphore (FIFO hand-off) ----
  local Semaphore = class("Semaphore")
  -- a BoundedSemaphore is a Semaphore that shows as its own kind
  local BoundedSemaphore = setmetatable({__name = "braid.asyncio.BoundedSemaphore",
    __kind = "BoundedSemaphore", __tostring = function() return "<asyncio.BoundedSemaphore>" end},
    {__index = Semaphore})
  BoundedSemaphore.__index = BoundedSemaphore
  local function new_sem(value, bounded, what)
    local o = opts(value, what)
    if o then value = o.value end
    value = value == nil and 1 or value
    if math.type(value) ~= "integer" then
      error(("bad argument #1 to '%s' (integer expected, got %s)"):format(what, type(value)), 3)
    end
    if value < 0 then raise("ValueError", "Semaphore initial value must be >= 0", 3) end
    return setmetatable({_value = value, _initial = value, _bounded = bounded, _waiters = fifo(),
      _name = o and o.name or nil}, bounded and BoundedSemaphore or Semaphore)
  end
  function A.Semaphore(value) return new_sem(value, false, "Semaphore") end
  function A.BoundedSemaphore(value) return new_sem(value, true, "BoundedSemaphore") end
  function Semaphore:locked() return self._value == 0 end
  function Semaphore:acquire()
    local t = bind(self, "acquire")
    if self._value > 0 and self._waiters.n == 0 then
      self._value = self._value - 1
      return true
    end
    wait_on(self._waiters, t, self, "acquire")
    return true -- a release handed its permit over
  end
  function Semaphore:release()
    if self._bounded and self._value >= self._initial then
      raise("ValueError", "BoundedSemaphore released too many times", 2)
    end
    if not hand_off(self._waiters, true) then self._value = self._value + 1 end
  end
  lock_like(Semaphore)

  -- ---- Barrier ----
  local Barrier = class("Barrier")
  function A.Barrier(parties)
    local o = opts(parties, "Barrier")
    if o then parties = o.parties end
    if math.type(parties) ~= "integer" then
      error(("bad argument #1 to 'Barrier' (integer expected, got %s)"):format(type(parties)), 2)
    end
    if parties < 1 then raise("ValueError", "parties must be >= 1", 2) end
    return setmetatable({parties = parties, _waiters = fifo(), broken = false, n_waiting = 0,
      _name = o and o.name or nil}, Barrier)
  end
  local BROKEN = {}
  function Barrier:wait()
    local t = bind(self, "wait")
    if self.broken then raise("BrokenBarrier", "barrier is broken", 2) end
    local index = self._waiters.n
    if index + 1 == self.parties then
      local ws = self._waiters
      self._waiters, self.n_waiting = fifo(), 0
      wake_all(ws, nil) -- each its arrival index
      return index
    end
    self.n_waiting = index + 1
    local ok, v = pcall(wait_on, self._waiters, t, self, "wait")
    if not ok then
      self.n_waiting = self._waiters.n
      -- a waiter cancelled while others wait breaks the barrier, as in Python
      if self.n_waiting > 0 then self:abort() end
      error(v, 0)
    end
    if v == BROKEN then raise("BrokenBarrier", "barrier is broken", 2) end
    return v
  end
  local function break_all(self)
    local ws = self._waiters
    self._waiters, self.n_waiting = fifo(), 0
    wake_all(ws, BROKEN)
  end
  function Barrier:abort()
    self.broken = true
    break_all(self)
  end
  function Barrier:reset()
    break_all(self)
    self.broken = false
  end

  -- ---- Queue, LifoQueue, PriorityQueue ----
  local Queue = class("Queue")
  -- LifoQueue and PriorityQueue are Queues that show as their own kinds
  local function subqueue(name)
    local c = setmetatable({__name = "braid.asyncio." .. name, __kind = name,
      __tostring = function() return ("<asyncio.%s>"):format(name) end}, {__index = Queue})
    c.__index = c
    return c
  end
  local LifoQueue, PriorityQueue = subqueue("LifoQueue"), subqueue("PriorityQueue")

  local function new_queue(kind, maxsize, what)
    local o = opts(maxsize, what)
    if o then maxsize = o.maxsize end
    maxsize = maxsize or 0
    if math.type(maxsize) ~= "integer" then
      error(("bad argument #1 to '%s' (integer expected, got %s)"):format(what, type(maxsize)), 3)
    end
    return setmetatable({_kind = kind, maxsize = maxsize, _items = {}, _head = 1, _n = 0, _seq = 0,
      _getters = fifo(), _putters = fifo(), _unfinished = 0, _finished = nil, _shutdown = false,
      _name = o and o.name or nil}, kind == "fifo" and Queue or kind == "lifo" and LifoQueue or PriorityQueue)
  end
  function A.Queue(maxsize) return new_queue("fifo", maxsize, "Queue") end
  function A.LifoQueue(maxsize) return new_queue("lifo", maxsize, "LifoQueue") end
  function A.PriorityQueue(maxsize) return new_queue("priority", maxsize, "PriorityQueue") end

  -- PriorityQueue order: numbers and strings by <, tables by their sequence
  -- part element by element (like Python tuples); FIFO among equal keys.
  local function less(a, b)
    local ta, tb = type(a), type(b)
    if ta == "table" and tb == "table" then
      local n = math.max(#a, #b)
      for i = 1, n do
        local x, y = a[i], b[i]
        if x == nil then return y ~= nil end
        if y == nil then return false end
        if less(x, y) then return true end
        if less(y, x) then return false end
      end
      return false
    end
    if ta ~= tb or (ta ~= "number" and ta ~= "string") then
      raise("TypeError", ("'<' not supported between %s and %s"):format(ta, tb), 4)
    end
    return a < b
  end
  local function before(x, y) -- heap entries {item, seq}
    if less(x[1], y[1]) then return true end
    if less(y[1], x[1]) then return false end
    return x[2] < y[2]
  end

  local function q_put(q, item)
    local k = q._kind
    if k == "fifo" then
      q._items[q._head + q._n] = item
    elseif k == "lifo" then
      q._items[q._n + 1] = item
    else
      q._seq = q._seq + 1
      local h, i = q._items, q._n + 1
      local e = {item, q._seq}
      while i > 1 do
        local p = i // 2
        if not before(e, h[p]) then break end
        h[i] = h[p]
        i = p
      end
      h[i] = e
    end
    q._n = q._n + 1
  end

  local function q_get(q)
    local k, items = q._kind, q._items
    local n = q._n
    q._n = n - 1
    if k == "fifo" then
      local h = q._head
      local item = items[h]
      items[h] = nil
      q._head = n == 1 and 1 or h + 1
      return item
    elseif k == "lifo" then
      local item = items[n]
      items[n] = nil
      return item
    end
    local top, last = items[1], items[n]
    items[n] = nil
    n = n - 1
    if n > 0 then
      local i = 1
      while true do
        local c = 2 * i
        if c > n then break end
        if c < n and before(items[c + 1], items[c]) then c = c + 1 end
        if not before(items[c], last) then break end
        items[i] = items[c]
        i = c
      end
      items[i] = last
    end
    return top[1]
  end

  local function wake_next(d)
    hand_off(d, true)
  end

  function Queue:qsize() return self._n end
  function Queue:empty() return self._n == 0 end
  function Queue:full() return self.maxsize > 0 and self._n >= self.maxsize end

  function Queue:put_nowait(item)
    if self._shutdown then raise("ShutDown", "queue is shut down", 2) end
    if self:full() then raise("Full", "queue is full", 2) end
    q_put(self, item)
    self._unfinished = self._unfinished + 1
    wake_next(self._getters)
  end

  function Queue:get_nowait()
    if self._n == 0 then
      if self._shutdown then raise("ShutDown", "queue is shut down", 2) end
      raise("Empty", "queue is empty", 2)
    end
    local item = q_get(self)
    wake_next(self._putters)
    return item
  end

  function Queue:put(item)
    local t = bind(self, "put")
    while self:full() do
      if self._shutdown then raise("ShutDown", "queue is shut down", 2) end
      local ok, err = pcall(wait_on, self._putters, t, self, "put")
      if not ok then
        -- pass a wake-up we may have taken on to the next putter
        if not self:full() then wake_next(self._putters) end
        error(err, 0)
      end
    end
    if self._shutdown then raise("ShutDown", "queue is shut down", 2) end
    return self:put_nowait(item)
  end

  function Queue:get()
    local t = bind(self, "get")
    while self._n == 0 do
      if self._shutdown then raise("ShutDown", "queue is shut down", 2) end
      local ok, err = pcall(wait_on, self._getters, t, self, "get")
      if not ok then
        if self._n > 0 then wake_next(self._getters) end
        error(err, 0)
      end
    end
    return self:get_nowait()
  end

  function Queue:task_done()
    if self._unfinished <= 0 then raise("ValueError", "task_done() called too many times", 2) end
    self._unfinished = self._unfinished - 1
    if self._unfinished == 0 and self._finished then
      local ev = self._finished
      self._finished = nil
      ev:set()
    end
  end

  function Queue:join()
    local t = bind(self, "join")
    if self._unfinished > 0 then
      local ev = self._finished
      if not ev then
        ev = A.Event()
        self._finished = ev
      end
      -- ev:wait(), shown as a wait on the queue
      if not ev._value then wait_on(ev._waiters, t, self, "join") end
    end
  end

  function Queue:shutdown(immediate)
    self._shutdown = true
    if immediate then
      while self._n > 0 do
        q_get(self)
        if self._unfinished > 0 then self._unfinished = self._unfinished - 1 end
      end
      if self._unfinished == 0 and self._finished then
        local ev = self._finished
        self._finished = nil
        ev:set()
      end
    end
    local gs, ps = self._getters, self._putters
    self._getters, self._putters = fifo(), fifo()
    wake_all(gs, true)
    wake_all(ps, true)
  end

  A.QueueEmpty, A.QueueFull, A.QueueShutDown = "Empty", "Full", "ShutDown"
  A.CancelledError, A.TimeoutError, A.InvalidStateError = "Cancelled", "Timeout", "InvalidState"
  A.BrokenBarrierError = "BrokenBarrier"
  -- suppress unused warnings in linters
  local _ = select
end
