-- braid.asyncio's task waits: what a suspended task waits on (a primitive,
-- a future, sleep), for the live dump and, while recording, as nestable
-- async events on one track per task (docs/tracing.md); object labels.
local braid = require "braid"
local trace = braid.trace
local on, now, async, async_id = trace._on, trace._now, trace._async, trace._async_id
local rawget, type, tostring, error = rawget, type, tostring, error

local numbers = {} -- kind -> the last Kind#n given

-- The label of a primitive (a table whose class has __kind): its name,
-- else Kind#n, numbered per kind on first use (kind: obj.__kind, or given).
local function label(obj, kind)
  local n = rawget(obj, "_name")
  if n then return n end
  local l = rawget(obj, "_label")
  if not l then
    kind = kind or obj.__kind or "object"
    local k = (numbers[kind] or 0) + 1
    numbers[kind] = k
    l = kind .. "#" .. k
    obj._label = l
  end
  return l
end

-- A name option or set_name argument: a string (numbers are converted) or nil.
local function check_name(v, what, level)
  if v == nil or type(v) == "string" then return v end
  if type(v) == "number" then return tostring(v) end
  error(("bad %s (string expected, got %s)"):format(what, type(v)), level + 1)
end

-- Adds set_name / get_name to a primitive class.
local function nameable(cls)
  function cls:set_name(name)
    self._name = check_name(name, "argument #1 to 'set_name'", 2)
  end
  function cls:get_name() return self._name end
end

-- What w (the object a task waits on) shows as: kind, label.
local function describe(w)
  if w == nil then return "sleep", nil end
  if w._is_task then return "Task", w:get_name() end
  if w.__kind then return w.__kind, label(w) end
  return "Future", label(w, "Future")
end

-- What a sleeping task waits on. A task's _won is false when it waits on
-- nothing (never nil: a key set to nil and back costs a rehash).
local SLEEPING = {}

-- Task t suspends waiting on obj (nil: sleep) in op.
local function begin(t, obj, op)
  t._won, t._wop, t._wsince = obj or SLEEPING, op, now()
end

local function task_name(t) return rawget(t, "_name") or ("Task-" .. t.id) end

-- Task t's wait ended (outcome "ok" or "cancelled"): while recording, an
-- async slice on the task's track (which opens with the task's name).
local function done(t, outcome)
  local obj, t0 = t._won, t._wsince
  t._won = false
  if not on() or not obj then return end
  local kind, lb = describe(obj ~= SLEEPING and obj or nil)
  local op = t._wop
  local aid = t._aid
  if not aid then
    aid = async_id()
    t._aid = aid
    async("b", "asyncio", task_name(t), aid, t0, {task = task_name(t)})
  end
  local name = kind == "sleep" and "sleep" or (kind .. " " .. op)
  async("b", "asyncio", name, aid, t0, {object = lb, kind = kind, op = op})
  async("e", "asyncio", name, aid, now(), {outcome = outcome})
end

-- Task t ended: closes its track's outer slice.
local function task_end(t)
  async("e", "asyncio", task_name(t), t._aid, now(), nil)
end

-- "waiting on Lock 'db' in acquire for 1.20 s", or nil.
local function dump_line(t)
  local obj = t._won
  if not obj then return nil end
  local kind, lb = describe(obj ~= SLEEPING and obj or nil)
  local secs = (now() - t._wsince) / 1e9
  if kind == "sleep" then return ("in sleep for %.2f s"):format(secs) end
  return ("waiting on %s '%s' in %s for %.2f s"):format(kind, lb, t._wop, secs)
end

return {label = label, check_name = check_name, nameable = nameable, describe = describe,
  begin = begin, done = done, task_end = task_end, dump_line = dump_line}
