-- braid.threading, Lua half: the Thread class (subclassing, current/main
-- thread objects), with/guard, Condition.wait_for, Timer and local().
local C = ...
local M = C
local methods = C.__methods
C.__methods = nil

local rawget, rawset, setmetatable, getmetatable = rawget, rawset, setmetatable, getmetatable
local type, next, tostring, select = type, next, tostring, select
local pack, unpack = table.pack, table.unpack

local function callable(v)
    if type(v) == "function" then
        return true
    end
    local mt = getmetatable(v)
    return type(mt) == "table" and rawget(mt, "__call") ~= nil
end
M._callable = callable -- multiprocessing's too

-- ---- with / guard for lock-like objects ----

local Guard = {__name = "braid.threading.guard"}
function Guard.__close(g)
    local obj = g[1]
    if obj then
        g[1] = nil
        obj:release()
    end
end
M._guard_mt = Guard

local function guard(self, ...)
    self:acquire(...)
    return setmetatable({self}, Guard)
end

local function with(self, fn, ...)
    local ok = self:acquire()
    local g <close> = setmetatable({self}, Guard)
    return fn(ok, ...)
end

for _, name in next, {"Lock", "RLock", "Condition", "Semaphore"} do
    methods[name].guard = guard
    methods[name].with = with
end
M._guard, M._with = guard, with -- multiprocessing's lock-likes share them

-- Condition:wait_for(predicate, timeout) → the predicate's last value;
-- any object with wait(timeout) may use it (multiprocessing's Conditions do)
local function wait_for(self, predicate, timeout)
    if timeout ~= nil and timeout < 0 then
        timeout = nil
    end
    local endtime, waittime = nil, timeout
    local result = predicate()
    while not result do
        if waittime ~= nil then
            if endtime == nil then
                endtime = C._monotonic() + waittime
            else
                waittime = endtime - C._monotonic()
                if waittime <= 0 then
                    break
                end
            end
        end
        self:wait(waittime)
        result = predicate()
    end
    return result
end
methods.Condition.wait_for = wait_for
M._wait_for = wait_for

-- ---- Thread ----

-- Thread objects of this state by handle id, so every lookup of one
-- thread (current_thread, enumerate) gives the same table here.
local instances = setmetatable({}, {__mode = "v"})
local private = {_handle = true, _target = true, _args = true}
local props = {name = C._name, ident = C._ident, native_id = C._native_id, daemon = C._daemon}

local Thread = {__name = "braid.Thread"}
M.Thread = Thread

local function thread_index(self, k)
    local p = props[k]
    if p then
        local h = rawget(self, "_handle")
        if h then
            return p(h)
        end
        return nil
    end
    return getmetatable(self)[k]
end

local function thread_newindex(self, k, v)
    if k == "name" then
        C._set_name(rawget(self, "_handle"), v)
    elseif k == "daemon" then
        C._set_daemon(rawget(self, "_handle"), v)
    elseif k == "ident" or k == "native_id" then
        error("attribute '" .. k .. "' of Thread is read-only", 2)
    else
        rawset(self, k, v)
    end
end

local function thread_tostring(self)
    local h = rawget(self, "_handle")
    local status
    if not C._started(h) then
        status = "initial"
    elseif C._is_alive(h) then
        status = "started " .. tostring(C._ident(h))
    else
        status = "stopped " .. tostring(C._ident(h))
    end
    if C._daemon(h) then
        status = status .. " daemon"
    end
    local cls = getmetatable(self)
    local cname = rawget(cls, "__name") or "Thread"
    return ("<%s(%s, %s)>"):format(cname:match("[^.]*$"), C._name(h), status)
end

-- Metamethods every Thread class carries.
local function setup_class(cls)
    cls.__index = thread_index
    cls.__newindex = thread_newindex
    cls.__tostring = thread_tostring
end
setup_class(Thread)
M._thread_index, M._thread_newindex, M._thread_tostring = thread_index, thread_newindex,
    thread_tostring

function M._instantiate(cls, ...)
    local self = setmetatable({}, cls)
    self:init(...)
    return self
end
setmetatable(Thread, {__call = M._instantiate})

-- Thread:extend(fields) → a subclass (override run, init...).
function Thread:extend(def)
    local cls = def or {}
    setup_class(cls)
    return setmetatable(cls, {__index = self, __call = M._instantiate})
end

local function instance_of(h)
    local id = C._id(h)
    local t = instances[id]
    if t == nil then
        local ok, copy = pcall(C._selfcopy, h)
        t = ok and type(copy) == "table" and copy or setmetatable({}, Thread)
        rawset(t, "_handle", h)
        instances[id] = t
    end
    return t
end

-- The constructor arguments of Thread and multiprocessing's Process (kind
-- names which): {target=, args=, name=, daemon=} or (target, args), checked;
-- errors blame the constructor's caller. -> target, args, name, daemon
function M._target_opts(kind, opts, args)
    local target, name, daemon
    if opts == nil then
        target = nil
    elseif callable(opts) then
        target = opts
    elseif type(opts) == "table" then
        target, args, name, daemon = opts.target, opts.args, opts.name, opts.daemon
    else
        error("bad argument #1 to '" .. kind .. "' (table or function expected, got " ..
                  type(opts) .. ")", 4)
    end
    if target ~= nil and not callable(target) then
        error("bad argument #1 to '" .. kind .. "' (target must be callable, got " ..
                  type(target) .. ")", 4)
    end
    if args ~= nil and type(args) ~= "table" then
        error("bad argument #1 to '" .. kind .. "' (args must be a table, got " .. type(args) ..
                  ")", 4)
    end
    return target, args, name, daemon
end

-- Thread{target=, args=, name=, daemon=} or Thread(target, args)
function Thread:init(opts, args)
    local target, name, daemon
    target, args, name, daemon = M._target_opts("Thread", opts, args)
    if name ~= nil then
        name = tostring(name)
    end
    if daemon == nil then
        daemon = C._daemon(C._current())
    end
    local h = C._new(name, daemon)
    rawset(self, "_handle", h)
    rawset(self, "_target", target)
    rawset(self, "_args", args or {})
    instances[C._id(h)] = self
end

function Thread:start()
    local h = rawget(self, "_handle")
    local target = rawget(self, "_target")
    local copy = nil
    local plain = getmetatable(self) == Thread and target ~= nil
    if plain then
        for k in next, self do
            if not private[k] then
                plain = false
                break
            end
        end
    end
    if not plain then
        copy = setmetatable({}, getmetatable(self))
        for k, v in next, self do
            if not private[k] then
                rawset(copy, k, v)
            end
        end
    end
    local hook = M.excepthook
    if hook == C.__excepthook then
        hook = nil
    end
    C._start(h, copy, hook, target, rawget(self, "_args"))
end

-- Runs in the new thread for subclasses and threads with fields.
function M._run(h, self, target, ...)
    rawset(self, "_handle", h)
    rawset(self, "_target", target)
    rawset(self, "_args", pack(...))
    instances[C._id(h)] = self
    return self:run()
end

function Thread:run()
    local target = rawget(self, "_target")
    if target ~= nil then
        local a = rawget(self, "_args") or {}
        return target(unpack(a, 1, a.n or #a))
    end
end

function Thread:join(timeout)
    C._join(rawget(self, "_handle"), timeout)
end

-- (+) the target's return values, or its error re-raised here
function Thread:result(timeout)
    return C._result(rawget(self, "_handle"), timeout)
end

function Thread:get_name()
    return self.name
end

function Thread:set_name(name)
    self.name = name
end

function Thread:is_alive()
    return C._is_alive(rawget(self, "_handle"))
end

-- (+) asks the thread to stop with a Cancelled error; false if it is not
-- running (or is not a braid thread)
function Thread:cancel()
    return C._cancel(rawget(self, "_handle"))
end

function M.current_thread()
    return instance_of(C._current())
end

function M.main_thread()
    return instance_of(C._main())
end

function M.enumerate()
    local list = C._enumerate()
    for i = 1, #list do
        list[i] = instance_of(list[i])
    end
    return list
end

-- The hook lives outside the module table: a function stored in a loaded
-- module crosses to other states by name (docs/transfer.md), and a user's
-- hook must cross as itself, not as the receiver's threading.excepthook.
local excepthook = C.__excepthook
setmetatable(M, {
    __index = function(_, k)
        if k == "excepthook" then return excepthook end
    end,
    __newindex = function(t, k, v)
        if k == "excepthook" then
            excepthook = v
        else
            rawset(t, k, v)
        end
    end,
})

-- ---- Timer ----

local Timer = Thread:extend({__name = "braid.Timer"})
M.Timer = Timer

function Timer:init(interval, fn, args)
    Thread.init(self)
    if not callable(fn) then
        error("bad argument #2 to 'Timer' (function expected, got " .. type(fn) .. ")", 3)
    end
    self.interval = interval
    self.fn = fn
    self.args = args or {}
    self.finished = M.Event()
end

-- Stops the timer if it has not fired yet (Thread.cancel(t) still cancels
-- the thread itself).
function Timer:cancel()
    self.finished:set()
end

function Timer:run()
    self.finished:wait(self.interval)
    if not self.finished:is_set() then
        local a = self.args
        self.fn(unpack(a, 1, a.n or #a))
    end
    self.finished:set()
end

-- ---- thread-local data ----

-- Values live in a per-state table keyed by the local object: a copy of
-- the object in another thread's state starts empty.
local storage = setmetatable({}, {__mode = "k"})
local Local = {__name = "braid.threading.local"}
function Local.__index(self, k)
    local s = storage[self]
    return s and s[k]
end
function Local.__newindex(self, k, v)
    local s = storage[self]
    if not s then
        s = {}
        storage[self] = s
    end
    s[k] = v
end
function Local.__pairs(self)
    return next, storage[self] or {}, nil
end
M._local_mt = Local

M["local"] = function()
    return setmetatable({}, Local)
end
M.thread_local = M["local"]

return M
