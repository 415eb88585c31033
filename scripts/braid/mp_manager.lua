-- braid.multiprocessing.Manager, the client half: the SyncManager that
-- starts the manager process (braid.mp_manager_server), connections, proxies.
local mp = require "braid.multiprocessing"
local braid = require "braid"
local Error = braid.Error
local C = mp -- the _mgr_* helpers (bindings/lmpmanager.c) live on the module

local M = {}
local rawget, setmetatable, getmetatable = rawget, setmetatable, getmetatable
local type, next, tostring, select, error, pcall = type, next, tostring, select, error, pcall
local pack, unpack = table.pack, table.unpack

local server = require "braid.mp_manager_server"
local EXPOSED, CREATE = server._EXPOSED, server._CREATE
local AUTH_TIMEOUT = server._AUTH_TIMEOUT

local function raise(kind, msg, level)
    error(Error.new(kind, msg), (level or 1) + 1)
end

-- ---- connections ----

local conns = {} -- address -> {conn=, pid=}: this state's connection per manager

local function mypid()
    return (select(2, C._info()))
end

local function connect(addr, key)
    local conn = C._mgr_connect(addr)
    local ok, err = pcall(C._mgr_auth, conn, key, false, AUTH_TIMEOUT)
    if not ok then
        conn:close()
        error(err, 0)
    end
    return conn
end
M._connect = connect

local function connection(addr, key)
    local c = conns[addr]
    local pid = mypid()
    if c and c.pid == pid then
        return c.conn
    end
    local conn = connect(addr, key)
    conns[addr] = {conn = conn, pid = pid}
    return conn
end

local function drop(addr, conn)
    local c = conns[addr]
    if c and c.conn == conn then
        conns[addr] = nil
        if c.pid == mypid() then
            conn:close()
        end
    end
end

-- Calls method name of object id at the manager; returns its results or
-- raises its error (level: where the caller's error points).
local function request(addr, key, id, name, level, ...)
    local conn = connection(addr, key)
    local ok, err = pcall(conn.send, conn, {id, name, pack(...)})
    if not ok then
        if not Error.is(err, "TypeError") then
            drop(addr, conn) -- nothing was sent for a TypeError: the connection is fine
        end
        error(err, level + 1)
    end
    local rok, rep = pcall(conn.recv, conn)
    if not rok then
        drop(addr, conn) -- cancelled mid-call or the manager gone: start afresh
        if Error.is(rep, "EOFError") then
            raise("ConnectionError", "the manager process is gone", level + 1)
        end
        error(rep, level + 1)
    end
    if rep[1] then
        local r = rep[2]
        return unpack(r, 1, r.n)
    end
    error(rep[2], level + 1)
end

local function call(self, name, ...)
    return request(rawget(self, "_addr"), rawget(self, "_key"), rawget(self, "_id"), name, 2, ...)
end

local PROXY = {} -- typeid -> proxy metatable
M._proxy_types = PROXY

local function make_proxy(typeid, addr, key, id)
    return setmetatable({_addr = addr, _key = key, _id = id}, PROXY[typeid])
end

local function proxy_tostring(self)
    local mt = getmetatable(self)
    return ("<%s object, id %d, manager %s>"):format(mt.__name, rawget(self, "_id"),
                                                     rawget(self, "_addr"))
end

-- A proxy class: methods forwarding to EXPOSED[typeid]; items (k -> a
-- remote __getitem) when the type has them.
local function proxy_class(typeid, extra)
    local cls = {__name = "braid.mp." .. typeid .. "Proxy", __tostring = proxy_tostring}
    local meths = {}
    for name in next, EXPOSED[typeid] do
        if name:sub(1, 2) ~= "__" then
            meths[name] = function(self, ...)
                return call(self, name, ...)
            end
        end
    end
    for k, v in next, extra or {} do
        meths[k] = v
    end
    cls._methods = meths
    local items = EXPOSED[typeid].__getitem ~= nil
    cls.__index = function(self, k)
        local m = meths[k]
        if m ~= nil or not items then
            return m
        end
        return call(self, "__getitem", k)
    end
    if EXPOSED[typeid].__setitem then
        cls.__newindex = function(self, k, v)
            call(self, "__setitem", k, v)
        end
    end
    if EXPOSED[typeid].__len then
        cls.__len = function(self)
            return call(self, "__len")
        end
    end
    PROXY[typeid] = cls
    return cls
end

local threading = require "braid.threading"
local lockish = {guard = threading._guard, with = threading._with}

local DictProxy = proxy_class("dict")
DictProxy.__pairs = function(self)
    return next, call(self, "copy"), nil
end
M._DictProxy = DictProxy

local ListProxy = proxy_class("list")
ListProxy.__pairs = function(self)
    return ipairs(call(self, "copy"))
end
M._ListProxy = ListProxy

local NamespaceProxy = proxy_class("Namespace")
NamespaceProxy.__index = function(self, k)
    return call(self, "__getitem", k)
end
NamespaceProxy.__tostring = function(self)
    local parts = {}
    for k, v in next, call(self, "copy") do
        parts[#parts + 1] = ("%s=%s"):format(tostring(k), tostring(v))
    end
    table.sort(parts)
    return "Namespace(" .. table.concat(parts, ", ") .. ")"
end
M._NamespaceProxy = NamespaceProxy

M._QueueProxy = proxy_class("Queue")
M._JoinableQueueProxy = proxy_class("JoinableQueue")
M._LockProxy = proxy_class("Lock", lockish)
M._RLockProxy = proxy_class("RLock", lockish)
M._SemaphoreProxy = proxy_class("Semaphore", lockish)
M._BoundedSemaphoreProxy = proxy_class("BoundedSemaphore", lockish)
M._ConditionProxy = proxy_class("Condition", lockish)
M._EventProxy = proxy_class("Event")
M._BarrierProxy = proxy_class("Barrier")

-- Condition:wait_for runs the predicate here, between remote waits.
M._ConditionProxy._methods.wait_for = threading._wait_for

-- ---- the manager object ----

local Manager = {__name = "braid.mp.SyncManager"}
Manager.__index = Manager
M.SyncManager = Manager
local nmanagers = 0

-- Manager{start_method=} → a started manager.
function M.Manager(opts)
    if opts ~= nil and type(opts) ~= "table" then
        error("bad argument #1 to 'Manager' (table expected, got " .. type(opts) .. ")", 2)
    end
    opts = opts or {}
    local dir = C._mgr_mkdtemp()
    local path = dir .. "/listener"
    local key = C._mgr_random(32)
    local r, w = mp.Pipe(false)
    nmanagers = nmanagers + 1
    local popts = {target = server._serve, args = {dir, key, w}, name = "SyncManager-" .. nmanagers,
                   daemon = true}
    local p
    if opts.start_method then
        p = mp.get_context(opts.start_method):Process(popts)
    else
        p = mp.Process(popts)
    end
    local ok, err = pcall(p.start, p)
    w:close()
    local msg
    if ok then
        ok, msg = pcall(r.recv, r)
    end
    r:close()
    if not ok or type(msg) ~= "table" or not msg[1] then
        if p:is_alive() then
            p:kill()
        end
        if rawget(p, "_handle") then
            p:join()
        end
        C._mgr_remove(path, dir)
        raise("ProcessError", "the manager process failed to start" ..
              (type(msg) == "table" and (": " .. tostring(msg[2])) or
               (err and (": " .. tostring(err)) or "")), 2)
    end
    return setmetatable({address = path, _dir = dir, _key = key, _process = p,
                         _state = "started"}, Manager)
end

function Manager:__tostring()
    return ("<SyncManager %s %s>"):format(self.address, self._state)
end

local function check_started(self, level)
    if self._state ~= "started" then
        raise("ValueError", "the manager is " .. self._state, level + 1)
    end
end

for typeid in next, CREATE do
    Manager[typeid] = function(self, ...)
        check_started(self, 2)
        local id = request(self.address, self._key, 0, "create", 2, typeid, ...)
        return make_proxy(typeid, self.address, self._key, id)
    end
end

-- The manager's process (a braid.multiprocessing Process).
function Manager:get_process()
    return self._process
end

-- Asks the manager to stop, waits for it (killing it after timeout
-- seconds, default 5), and removes its socket directory.
function Manager:shutdown(timeout)
    if self._state ~= "started" then
        return
    end
    self._state = "shutdown"
    local p = self._process
    pcall(request, self.address, self._key, 0, "shutdown", 1)
    local c = conns[self.address]
    if c then
        drop(self.address, c.conn)
    end
    p:join(timeout or 5)
    if p:is_alive() then
        p:kill()
        p:join()
    end
    C._mgr_remove(self.address, self._dir)
end

function Manager:with(fn, ...)
    local _ <close> = self
    return fn(self, ...)
end

Manager.__close = function(self)
    self:shutdown()
end

Manager.__gc = function(self)
    pcall(Manager.shutdown, self)
end

return M
