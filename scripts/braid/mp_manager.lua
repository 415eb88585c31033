-- braid.multiprocessing.Manager: a manager process serving dict, list,
-- Namespace, Queue, Lock, Event... over a Unix socket, and their proxies.
local mp = require "braid.multiprocessing"
local braid = require "braid"
local Error = braid.Error
local C = mp -- the _mgr_* helpers (bindings/lmpmanager.c) live on the module

local M = {}
local rawget, rawset, setmetatable, getmetatable = rawget, rawset, setmetatable, getmetatable
local type, next, tostring, select, error, pcall = type, next, tostring, select, error, pcall
local pack, unpack = table.pack, table.unpack
local mtype = math.type

local AUTH_TIMEOUT = 20 -- seconds a peer has to answer the key challenge

local function raise(kind, msg, level)
    error(Error.new(kind, msg), (level or 1) + 1)
end

-- ======================================================================
-- The server (runs in the manager process)
-- ======================================================================

-- Python's sequence index rules on 1-based positions: -1 is the last.
local function norm(i, n, what)
    if mtype(i) ~= "integer" then
        if mtype(i) == "float" and i == math.floor(i) then
            i = math.tointeger(i)
        else
            raise("TypeError", what .. " indices must be integers, got " .. type(i), 3)
        end
    end
    if i < 0 then
        i = n + 1 + i
    end
    return i
end

local function snapshot(t)
    local shared = require "braid.shared"
    return shared.totable(t)
end

local function count(t)
    local n = 0
    for _ in next, snapshot(t) do
        n = n + 1
    end
    return n
end

local function locked(t, fn, ...)
    local shared = require "braid.shared"
    local l = shared.lock(t)
    l:acquire()
    local r = pack(pcall(fn, ...))
    l:release()
    if not r[1] then
        error(r[2], 0)
    end
    return unpack(r, 2, r.n)
end

-- What each type exposes: name -> function(obj, ...) run in the manager.
local EXPOSED = {}

EXPOSED.dict = {
    __getitem = function(t, k)
        return t[k]
    end,
    __setitem = function(t, k, v)
        t[k] = v
    end,
    __len = count,
    get = function(t, k, default)
        local v = t[k]
        if v == nil then
            return default
        end
        return v
    end,
    contains = function(t, k)
        return t[k] ~= nil
    end,
    keys = function(t)
        local r = {}
        for k in next, snapshot(t) do
            r[#r + 1] = k
        end
        return r
    end,
    values = function(t)
        local r = {}
        for _, v in next, snapshot(t) do
            r[#r + 1] = v
        end
        return r
    end,
    items = function(t)
        local r = {}
        for k, v in next, snapshot(t) do
            r[#r + 1] = {k, v}
        end
        return r
    end,
    copy = snapshot,
    pop = function(t, ...)
        local args = pack(...)
        return locked(t, function()
            local k = args[1]
            local v = t[k]
            if v == nil then
                if args.n < 2 then
                    raise("KeyError", tostring(k), 2)
                end
                return args[2]
            end
            t[k] = nil
            return v
        end)
    end,
    popitem = function(t)
        return locked(t, function()
            local k, v = next(snapshot(t))
            if k == nil then
                raise("KeyError", "popitem(): dictionary is empty", 2)
            end
            t[k] = nil
            return k, v
        end)
    end,
    setdefault = function(t, k, default)
        return locked(t, function()
            local v = t[k]
            if v == nil then
                t[k] = default
                return default
            end
            return v
        end)
    end,
    update = function(t, other)
        if type(other) ~= "table" then
            raise("TypeError", "update expects a table, got " .. type(other), 2)
        end
        locked(t, function()
            for k, v in next, other do
                t[k] = v
            end
        end)
    end,
    clear = function(t)
        locked(t, function()
            for k in next, snapshot(t) do
                t[k] = nil
            end
        end)
    end,
}

EXPOSED.Namespace = {
    __getitem = EXPOSED.dict.__getitem,
    __setitem = EXPOSED.dict.__setitem,
    copy = snapshot,
}

local function list_set(t, i, v)
    local n = #t
    local j = norm(i, n, "list")
    if j < 1 or j > n then
        raise("IndexError", "list assignment index out of range", 3)
    end
    if v == nil then
        raise("ValueError", "a list item cannot be nil (remove items with pop)", 3)
    end
    t[j] = v
end

local function list_insert(t, i, v)
    local n = #t
    local j = norm(i, n, "list")
    j = math.max(1, math.min(j, n + 1))
    for k = n, j, -1 do
        t[k + 1] = t[k]
    end
    t[j] = v
end

local function list_pop(t, i)
    local n = #t
    if n == 0 then
        raise("IndexError", "pop from empty list", 3)
    end
    local j = i == nil and n or norm(i, n, "list")
    if j < 1 or j > n then
        raise("IndexError", "pop index out of range", 3)
    end
    local v = t[j]
    for k = j, n - 1 do
        t[k] = t[k + 1]
    end
    t[n] = nil
    return v
end

local function list_index(t, v)
    local n = #t
    for k = 1, n do
        if t[k] == v then
            return k
        end
    end
    return nil
end

local function list_fill(t, seq, n)
    for k = #t, 1, -1 do
        t[k] = nil
    end
    for k = 1, n do
        t[k] = seq[k]
    end
end

EXPOSED.list = {
    __getitem = function(t, i)
        local n = #t
        local j = norm(i, n, "list")
        if j < 1 or j > n then
            return nil
        end
        return t[j]
    end,
    __setitem = function(t, i, v)
        locked(t, list_set, t, i, v)
    end,
    __len = function(t)
        return #t
    end,
    append = function(t, v)
        if v == nil then
            raise("ValueError", "a list item cannot be nil", 2)
        end
        locked(t, function()
            t[#t + 1] = v
        end)
    end,
    extend = function(t, seq)
        if type(seq) ~= "table" then
            raise("TypeError", "extend expects a sequence, got " .. type(seq), 2)
        end
        locked(t, function()
            local n = #t
            for k = 1, seq.n or #seq do
                if seq[k] == nil then
                    raise("ValueError", "a list item cannot be nil", 2)
                end
                t[n + k] = seq[k]
            end
        end)
    end,
    insert = function(t, i, v)
        if v == nil then
            raise("ValueError", "a list item cannot be nil", 2)
        end
        locked(t, list_insert, t, i, v)
    end,
    pop = function(t, i)
        return locked(t, list_pop, t, i)
    end,
    remove = function(t, v)
        locked(t, function()
            local j = list_index(t, v)
            if not j then
                raise("ValueError", "list.remove(x): x not in list", 2)
            end
            list_pop(t, j)
        end)
    end,
    index = function(t, v)
        local j = list_index(t, v)
        if not j then
            raise("ValueError", tostring(v) .. " is not in list", 2)
        end
        return j
    end,
    count = function(t, v)
        local c = 0
        for k = 1, #t do
            if t[k] == v then
                c = c + 1
            end
        end
        return c
    end,
    reverse = function(t)
        locked(t, function()
            local s = snapshot(t)
            local n = #t
            for k = 1, n do
                t[k] = s[n + 1 - k]
            end
        end)
    end,
    sort = function(t, comp)
        locked(t, function()
            local s = snapshot(t)
            table.sort(s, comp)
            list_fill(t, s, #s)
        end)
    end,
    clear = function(t)
        locked(t, list_fill, t, {}, 0)
    end,
    copy = function(t)
        local s = snapshot(t)
        return s
    end,
}

-- braid.threading / braid.queue objects: their own methods, by name.
local function forward(names)
    local e = {}
    for _, name in next, names do
        e[name] = function(obj, ...)
            return obj[name](obj, ...)
        end
    end
    return e
end

EXPOSED.Queue = forward {"put", "get", "put_nowait", "get_nowait", "qsize", "empty", "full",
                         "task_done", "join"}
EXPOSED.JoinableQueue = EXPOSED.Queue
EXPOSED.Lock = forward {"acquire", "release", "locked"}
EXPOSED.RLock = forward {"acquire", "release"}
EXPOSED.Semaphore = forward {"acquire", "release"}
EXPOSED.BoundedSemaphore = EXPOSED.Semaphore
EXPOSED.Condition = forward {"acquire", "release", "wait", "notify", "notify_all"}
EXPOSED.Event = forward {"set", "clear", "is_set", "wait"}
EXPOSED.Barrier = forward {"wait", "reset", "abort"}
EXPOSED.Barrier.__getitem = function(b, k)
    if k == "parties" or k == "n_waiting" or k == "broken" then
        return b[k]
    end
end

-- typeid -> function(...) making the served object.
local CREATE = {
    dict = function(init)
        local shared = require "braid.shared"
        if init ~= nil and type(init) ~= "table" then
            raise("TypeError", "dict() expects a table, got " .. type(init), 2)
        end
        return shared.table(init)
    end,
    list = function(init)
        local shared = require "braid.shared"
        if init ~= nil and type(init) ~= "table" then
            raise("TypeError", "list() expects a sequence, got " .. type(init), 2)
        end
        local t = shared.table()
        for k = 1, init and (init.n or #init) or 0 do
            if init[k] == nil then
                raise("ValueError", "a list item cannot be nil", 2)
            end
            t[k] = init[k]
        end
        return t
    end,
    Queue = function(maxsize)
        return require("braid.queue").Queue(maxsize)
    end,
    Lock = function()
        return require("braid.threading").Lock()
    end,
    RLock = function()
        return require("braid.threading").RLock()
    end,
    Semaphore = function(n)
        return require("braid.threading").Semaphore(n)
    end,
    BoundedSemaphore = function(n)
        return require("braid.threading").BoundedSemaphore(n)
    end,
    Condition = function(lock)
        return require("braid.threading").Condition(lock)
    end,
    Event = function()
        return require("braid.threading").Event()
    end,
    Barrier = function(parties, action, timeout)
        return require("braid.threading").Barrier(parties, action, timeout)
    end,
}
CREATE.JoinableQueue = CREATE.Queue
CREATE.Namespace = CREATE.dict

-- One request: {id, method, args}; id 0 is the manager itself.
local function dispatch(state, cache, req, conn_stop)
    local id, name, args = req[1], req[2], req[3]
    if type(args) ~= "table" then
        raise("ValueError", "malformed request", 2)
    end
    if id == 0 then
        if name == "create" then
            local typeid = args[1]
            local make = CREATE[typeid]
            if not make then
                raise("ValueError", "unknown type " .. tostring(typeid), 2)
            end
            local obj = make(unpack(args, 2, args.n))
            local shared = require "braid.shared"
            local newid = shared.update(state.seq, "n", function(n)
                return n + 1
            end)
            state.objs[newid] = obj
            state.types[newid] = typeid
            return newid
        elseif name == "shutdown" then
            conn_stop.stop = true
            return true
        elseif name == "ping" then
            return true
        end
        raise("AttributeError", "the manager has no method " .. tostring(name), 2)
    end
    local obj = cache[id]
    if obj == nil then
        obj = state.objs[id]
        if obj == nil then
            raise("KeyError", "no object with id " .. tostring(id), 2)
        end
        cache[id] = obj
    end
    local typeid = state.types[id]
    local fn = EXPOSED[typeid][name]
    if not fn then
        raise("AttributeError", ("'%s' object has no method '%s'"):format(typeid, tostring(name)), 2)
    end
    return fn(obj, unpack(args, 1, args.n))
end

-- The body of one client's thread: the key challenge, then requests
-- until the client goes away (or the manager is stopping).
function M._handle(conn, key, state, stop)
    local ok, good = pcall(C._mgr_auth, conn, key, true, AUTH_TIMEOUT)
    if not (ok and good) then
        conn:close()
        return
    end
    local cache, flags = {}, {}
    while true do
        local rok, req = pcall(conn.recv, conn)
        if not rok or type(req) ~= "table" then
            break
        end
        local r = pack(pcall(dispatch, state, cache, req, flags))
        if not r[1] and Error.is(r[2], "Cancelled") then
            break
        end
        local reply = r[1] and {true, pack(unpack(r, 2, r.n))} or {false, r[2]}
        local sok, err = pcall(conn.send, conn, reply)
        if not sok then
            if not Error.is(err, "TypeError") then
                break
            end
            pcall(conn.send, conn, {false, err}) -- a result that cannot cross
        end
        if flags.stop then
            stop:set()
            break
        end
    end
    conn:close()
end

-- Accepts clients, one thread each, until cancelled; then cancels and
-- joins them all.
function M._accept_loop(listener, key, state, stop)
    local threading = require "braid.threading"
    local threads = {}
    pcall(function()
        while true do
            local conn = C._mgr_accept(listener)
            local live = {}
            for _, t in next, threads do
                if t:is_alive() then
                    live[#live + 1] = t
                else
                    t:join()
                end
            end
            threads = live
            local t = threading.Thread{target = M._handle, args = {conn, key, state, stop},
                                       name = "manager-client", daemon = true}
            t:start()
            threads[#threads + 1] = t
        end
    end)
    for _, t in next, threads do
        t:cancel()
    end
    for _, t in next, threads do
        pcall(t.join, t)
    end
end

-- The manager process's body: listen in dir, say ready, serve until a
-- shutdown request, then remove the socket and the directory.
function M._serve(dir, key, ready)
    local threading = require "braid.threading"
    local shared = require "braid.shared"
    local path = dir .. "/listener"
    local ok, listener = pcall(C._mgr_listen, path)
    if not ok then
        ready:send({false, tostring(listener)})
        return 1
    end
    C._mgr_cleanup_at_death(path, dir)
    local state = {objs = shared.table(), types = shared.table(), seq = shared.table{n = 0}}
    local stop = threading.Event()
    local acceptor = threading.Thread{target = M._accept_loop, args = {listener, key, state, stop},
                                      name = "manager-acceptor", daemon = true}
    acceptor:start()
    ready:send({true})
    ready:close()
    stop:wait()
    acceptor:cancel()
    pcall(acceptor.join, acceptor)
    listener:close()
    C._mgr_remove(path, dir)
end

-- ======================================================================
-- The client side: connections and proxies
-- ======================================================================

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
M._ConditionProxy._methods.wait_for = function(self, predicate, timeout)
    local result = predicate()
    local endtime = timeout and timeout >= 0 and braid.monotonic() + timeout or nil
    while not result do
        local waittime
        if endtime then
            waittime = endtime - braid.monotonic()
            if waittime <= 0 then
                break
            end
        end
        self:wait(waittime)
        result = predicate()
    end
    return result
end

-- ======================================================================
-- The manager object
-- ======================================================================

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
    local popts = {target = M._serve, args = {dir, key, w}, name = "SyncManager-" .. nmanagers,
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
