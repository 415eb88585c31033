-- braid.multiprocessing, Lua half: the Process class (spawn and fork start
-- methods, subclassing), current/parent process, contexts, start methods.
local C = ...
local M = C
local braid = require "braid"
local Error = braid.Error
local methods = C.__methods
C.__methods = nil

local rawget, rawset, setmetatable, getmetatable = rawget, rawset, setmetatable, getmetatable
local type, next, tostring, select, error = type, next, tostring, select, error

local function raise(kind, msg, level)
    error(Error.new(kind, msg), (level or 1) + 1)
end

local threading = require "braid.threading"
local callable = threading._callable
local boot = require "braid.mp_boot"

M.cpu_count = braid.cpu_count

-- ---- start methods and the executable ----

local METHODS = {spawn = true, fork = true}
local start_method = nil -- nil: not fixed yet (defaults to spawn)
local executable = nil   -- set_executable's path, or nil: this program

local function check_method(method, level)
    if not METHODS[method] then
        raise("ValueError", ("cannot find context for %s"):format(tostring(method)), level + 1)
    end
end

function M.get_start_method(allow_none)
    if start_method == nil and not allow_none then
        start_method = "spawn"
    end
    return start_method
end

function M.set_start_method(method, force)
    if start_method ~= nil and not force then
        raise("RuntimeError", "context has already been set", 2)
    end
    if method ~= nil then
        check_method(method, 2)
    end
    start_method = method
end

function M.get_all_start_methods()
    return {"spawn", "fork"}
end

function M.set_executable(path)
    if path ~= nil and type(path) ~= "string" then
        error("bad argument #1 to 'set_executable' (string expected, got " .. type(path) .. ")", 2)
    end
    executable = path
end

function M.get_executable()
    return executable or (C._exe())
end

-- Long-bracket quoting for a string inside `-e` code.
local function quote(s)
    local eq = ""
    while s:find("]" .. eq .. "]", 1, true) do
        eq = eq .. "="
    end
    return "[" .. eq .. "[" .. s .. "]" .. eq .. "]"
end

-- argv that makes a new process run the worker protocol on fd 3.
local function worker_argv()
    local exe, is_braid = C._exe()
    if executable then
        exe = executable
        is_braid = (exe:match("[^/]*$") or ""):sub(1, 5) == "braid"
    end
    if is_braid then
        return {exe, "--worker"}
    end
    local code = ("package.cpath=%s package.path=%s require('braid')._worker(3)")
        :format(quote(package.cpath), quote(package.path))
    return {exe, "-e", code}
end

-- ---- Process ----

local counter = 0
local instances = setmetatable({}, {__mode = "v"}) -- pid -> Process (started here)
local private = {_handle = true, _target = true, _args = true, _method = true,
                 _closed = true, _popen = true, _pid = true, _parent_pid = true}
local props = {}

local Process = {__name = "braid.Process"}
M.Process = Process

local function proc_index(self, k)
    local p = props[k]
    if p then
        return p(self)
    end
    return getmetatable(self)[k]
end

local function check_open(self, level)
    if rawget(self, "_closed") then
        raise("ValueError", "process object is closed", (level or 1) + 1)
    end
end

function props.pid(self)
    check_open(self, 2)
    local h = rawget(self, "_handle")
    if h then
        return C._pid(h)
    end
    return rawget(self, "_pid")
end
props.ident = props.pid

function props.exitcode(self)
    check_open(self, 2)
    local h = rawget(self, "_handle")
    if h == nil then
        return nil
    end
    C._poll(h)
    return C._exitcode(h)
end

local function proc_tostring(self)
    local status
    if rawget(self, "_closed") then
        status = "closed"
    elseif rawget(self, "_handle") == nil then
        status = rawget(self, "_pid") and "started" or "initial"
    else
        local code = self.exitcode
        if code == nil then
            status = "started"
        else
            status = "stopped exitcode=" .. tostring(code)
        end
    end
    local cname = rawget(getmetatable(self), "__name") or "Process"
    return ("<%s name='%s' %s%s>"):format(cname:match("[^.]*$"), tostring(rawget(self, "name")),
                                           status, rawget(self, "daemon") and " daemon" or "")
end

local function setup_class(cls)
    cls.__index = proc_index
    cls.__tostring = proc_tostring
end
setup_class(Process)

local function instantiate(cls, ...)
    local self = setmetatable({}, cls)
    self:init(...)
    return self
end
setmetatable(Process, {__call = instantiate})

-- Process:extend(fields) → a subclass (override run, init...).
function Process:extend(def)
    local cls = def or {}
    setup_class(cls)
    return setmetatable(cls, {__index = self, __call = instantiate})
end

-- Process{target=, args=, name=, daemon=} or Process(target, args)
function Process:init(opts, args)
    local target, name, daemon
    target, args, name, daemon = threading._target_opts("Process", opts, args)
    counter = counter + 1
    rawset(self, "name", name ~= nil and tostring(name) or ("Process-" .. counter))
    if daemon == nil then
        daemon = M.current_process().daemon
    end
    rawset(self, "daemon", not not daemon)
    rawset(self, "_target", target)
    rawset(self, "_args", args or {})
    if type(opts) == "table" and opts._method then
        rawset(self, "_method", opts._method)
    end
end

-- Calls the target with the args, as Thread:run (the same fields).
Process.run = threading.Thread.run

-- What crosses of self: its fields, and its class unless it is Process.
local function crossing_copy(self)
    local copy = {}
    for k, v in next, self do
        if not private[k] then
            rawset(copy, k, v)
        end
    end
    local cls = getmetatable(self)
    return copy, cls ~= Process and cls or nil
end

-- Runs in the child: self is the crossed copy of the Process.
function M._bootstrap(self, cls, target, args)
    setmetatable(self, cls or Process)
    rawset(self, "_target", target)
    rawset(self, "_args", args)
    local _, pid, ppid, pname = C._info()
    rawset(self, "_pid", pid)
    M._set_current(self, ppid, pname)
    return self:run()
end

function Process:start()
    check_open(self, 2)
    if rawget(self, "_handle") ~= nil then
        raise("RuntimeError", "cannot start a process twice", 2)
    end
    if rawget(self, "daemon") == false and M.current_process().daemon then
        raise("RuntimeError", "daemonic processes are not allowed to have children", 2)
    end
    M.active_children() -- reap what has finished, as Python does
    local method = rawget(self, "_method") or M.get_start_method()
    local info = {name = rawget(self, "name"), daemon = rawget(self, "daemon"),
                  pname = M.current_process().name, ppid = select(2, C._info())}
    local copy, cls = crossing_copy(self)
    local h
    if method == "fork" then
        if C._nthreads() > 1 and M.fork_warning ~= false then
            io.stderr:write(("braid.multiprocessing: warning: this process (pid %d) has other " ..
                "threads; fork() may deadlock the child\n"):format(M.current_process().pid))
        end
        h = C._fork(info, M._bootstrap, copy, cls, rawget(self, "_target"), rawget(self, "_args"))
    else
        info.path, info.cpath = package.path, package.cpath
        h = C._spawn(worker_argv(), info, boot._run, copy, cls, rawget(self, "_target"),
                     rawget(self, "_args"))
    end
    C._set_daemon(h, rawget(self, "daemon"))
    rawset(self, "_handle", h)
    instances[C._pid(h)] = self
end

function Process:join(timeout)
    check_open(self, 2)
    local h = rawget(self, "_handle")
    if h == nil then
        raise("RuntimeError", "can only join a started process", 2)
    end
    if timeout ~= nil and type(timeout) ~= "number" then
        error("bad argument #1 to 'join' (number expected, got " .. type(timeout) .. ")", 2)
    end
    C._wait(h, timeout)
end

function Process:is_alive()
    check_open(self, 2)
    local h = rawget(self, "_handle")
    if h == nil then
        return self == M.current_process() -- a child's own Process, as Python's
    end
    return not C._poll(h)
end

local function signal(self, sig)
    check_open(self, 3)
    local h = rawget(self, "_handle")
    if h ~= nil then
        C._signal(h, sig)
    end
end

function Process:terminate()
    signal(self, C.SIGTERM)
end

function Process:kill()
    signal(self, C.SIGKILL)
end

function Process:close()
    if rawget(self, "_closed") then
        return
    end
    local h = rawget(self, "_handle")
    if h ~= nil then
        if not C._poll(h) then
            raise("ValueError", "Cannot close a process while it is still running. " ..
                "You should first call join() or terminate().", 2)
        end
        instances[C._pid(h)] = nil
        rawset(self, "_handle", nil)
    end
    rawset(self, "_closed", true)
end

-- sentinel-free join for several processes: is the process done?
function Process:_done()
    local h = rawget(self, "_handle")
    return h ~= nil and C._poll(h)
end

-- ---- this process and its parent ----

local current = nil
local parent = nil

-- The object current_process() and parent_process() return when the
-- process is not one started by this state.
local Other = Process:extend({__name = "braid._ProcessInfo"})
function Other:is_alive()
    local pid = rawget(self, "_pid")
    return pid == C._info() and true or C._alive_pid(pid)
end
function Other:join(timeout)
    raise("RuntimeError", "cannot join this process", 2)
end

function M._set_current(self, ppid, pname)
    current = self
    parent = setmetatable({name = pname, daemon = false, _pid = ppid}, Other)
end

-- A spawned child that ran its target without this module (braid.mp_boot):
-- its Process object becomes current_process() now, as _bootstrap makes it.
local pending = rawget(boot, "_pending")
if pending ~= nil then
    boot._pending = nil
    setmetatable(pending, Process)
    local _, pid, ppid, pname = C._info()
    rawset(pending, "_pid", pid)
    M._set_current(pending, ppid, pname)
end

function M.current_process()
    if current == nil then
        local name, pid, ppid, pname, daemon = C._info()
        current = setmetatable({name = name, daemon = daemon, _pid = pid}, Other)
        if ppid ~= 0 then
            parent = setmetatable({name = pname, daemon = false, _pid = ppid}, Other)
        end
    end
    return current
end

function M.parent_process()
    M.current_process()
    return parent
end

-- Live children started from this state (finished ones are reaped).
function M.active_children()
    local list = {}
    for _, pid in next, C._children() do
        local p = instances[pid]
        if p ~= nil then
            list[#list + 1] = p
        end
    end
    return list
end

-- ---- contexts ----

-- A context's functions work called either way, ctx.Process{...} (as in
-- Python) or ctx:Process{...}: a ctx given as the first argument is taken
-- as the receiver. The Context's own methods get the ctx; the module's
-- functions (Queue, Pool, Lock, ...) do not.
local Context = {}
Context.__index = function(self, k)
    local own = Context[k]
    local v = own
    if v == nil then
        v = M[k]
    end
    if type(v) ~= "function" then
        return v
    end
    local f
    if own ~= nil then
        f = function(first, ...)
            if first == self then
                return own(self, ...)
            end
            return own(self, first, ...)
        end
    else
        f = function(first, ...)
            if first == self then
                return v(...)
            end
            return v(first, ...)
        end
    end
    rawset(self, k, f)
    return f
end

function Context:get_start_method()
    return rawget(self, "_method")
end

function Context:Process(opts, args)
    if type(opts) ~= "table" or callable(opts) then
        opts = {target = opts, args = args}
    else
        local o = {}
        for k, v in next, opts do
            o[k] = v
        end
        opts = o
    end
    opts._method = rawget(self, "_method")
    return Process(opts)
end

function M.get_context(method)
    if method == nil then
        method = M.get_start_method()
    end
    check_method(method, 2)
    return setmetatable({_method = method}, Context)
end

-- ---- pools (braid.process_pool), loaded on first use ----

function M.Pool(...)
    return require("braid.process_pool").Pool(...)
end

-- ---- the manager (braid.mp_manager), loaded on first use ----

function M.Manager(...)
    return require("braid.mp_manager").Manager(...)
end

M.managers = setmetatable({}, {__index = function(t, k)
    return require("braid.mp_manager")[k]
end})

M.pool = setmetatable({}, {__index = function(t, k)
    if k == "ThreadPool" then
        return require("braid.pool").ThreadPool
    elseif k == "Pool" then
        return M.Pool
    end
end})

-- ---- with / guard for the shared lock-likes (threading's) ----

local guard, with = threading._guard, threading._with

for _, name in next, {"Lock", "RLock", "Semaphore", "Value"} do
    methods[name].guard = guard
    methods[name].with = with
end

-- ---- Condition (CPython's multiprocessing.synchronize algorithm) ----

local Condition = {__name = "braid.mp.Condition"}
Condition.__index = Condition
M._Condition = Condition

function M.Condition(lock)
    return setmetatable({_lock = lock or M.RLock(), _sleeping = M.Semaphore(0),
                         _woken = M.Semaphore(0), _wait = M.Semaphore(0)}, Condition)
end

function Condition:acquire(...)
    return self._lock:acquire(...)
end

function Condition:release()
    return self._lock:release()
end

Condition.guard = guard
Condition.with = with

local function check_owned(self, level)
    if not self._lock:_is_owned() then
        raise("RuntimeError", "cannot wait on un-acquired lock", level + 1)
    end
end

function Condition:wait(timeout)
    check_owned(self, 2)
    self._sleeping:release()
    local count = self._lock:_count()
    for _ = 1, count do
        self._lock:release()
    end
    local ok, res = pcall(self._wait.acquire, self._wait, true, timeout)
    self._woken:release()
    for _ = 1, count do
        self._lock:acquire()
    end
    if not ok then
        error(res, 0)
    end
    return res
end

function Condition:notify(n)
    n = n or 1
    check_owned(self, 2)
    while self._woken:acquire(false) do
        self._sleeping:acquire(false)
    end
    local sleepers = 0
    while sleepers < n and self._sleeping:acquire(false) do
        self._wait:release()
        sleepers = sleepers + 1
    end
    if sleepers > 0 then
        for _ = 1, sleepers do
            self._woken:acquire()
        end
        while self._wait:acquire(false) do
        end
    end
end

function Condition:notify_all()
    self:notify(math.maxinteger)
end

Condition.wait_for = threading._wait_for

-- ---- Barrier (threading.Barrier's algorithm on shared state) ----

local Barrier = {__name = "braid.mp.Barrier"}
M._Barrier = Barrier
local FILLING, DRAINING, RESETTING, BROKEN = 0, 1, -1, -2

function M.Barrier(parties, action, timeout)
    if math.type(parties) ~= "integer" or parties < 1 then
        raise("ValueError", "parties must be > 0", 2)
    end
    return setmetatable({_cond = M.Condition(M.Lock()), _st = M.Array("q", {FILLING, 0}),
                         parties = parties, _action = action, _timeout = timeout}, Barrier)
end

function Barrier.__index(self, k)
    if k == "n_waiting" then
        local st = rawget(self, "_st")
        return st[1] == FILLING and st[2] or 0
    elseif k == "broken" then
        return rawget(self, "_st")[1] == BROKEN
    end
    return Barrier[k]
end

local function broken_error(level)
    raise("BrokenBarrier", "barrier is broken", level + 1)
end

function Barrier:_break()
    self._st[1] = BROKEN
    self._cond:notify_all()
end

function Barrier:wait(timeout)
    if timeout == nil then
        timeout = self._timeout
    end
    local cond, st = self._cond, self._st
    local _ <close> = cond:guard()
    while st[1] == DRAINING or st[1] == RESETTING do
        cond:wait()
    end
    if st[1] < 0 then
        broken_error(2)
    end
    local index = st[2]
    st[2] = index + 1
    local ok, err = pcall(function()
        if index + 1 == self.parties then
            if self._action then
                local aok, aerr = pcall(self._action)
                if not aok then
                    self:_break()
                    error(aerr, 0)
                end
            end
            st[1] = DRAINING
            cond:notify_all()
        else
            if not cond:wait_for(function() return st[1] ~= FILLING end, timeout) then
                self:_break()
                broken_error(1)
            end
            if st[1] < 0 then
                broken_error(1)
            end
        end
    end)
    st[2] = st[2] - 1
    if st[2] == 0 and (st[1] == RESETTING or st[1] == DRAINING) then
        st[1] = FILLING
        cond:notify_all()
    end
    if not ok then
        error(err, 0)
    end
    return index
end

function Barrier:reset()
    local _ <close> = self._cond:guard()
    local st = self._st
    if st[2] > 0 then
        if st[1] == FILLING then
            st[1] = RESETTING
        elseif st[1] == BROKEN then
            st[1] = RESETTING
        end
    else
        st[1] = FILLING
    end
    self._cond:notify_all()
end

function Barrier:abort()
    local _ <close> = self._cond:guard()
    self:_break()
end

-- ---- Queue, SimpleQueue, JoinableQueue (braid.mp_queues) ----

require("braid.mp_queues")(M, raise)
require("braid.mp_names")(M) -- name= and set_name for the Lua-side objects

return M
