-- braid.multiprocessing.Manager, the server half: what the manager
-- process runs — one thread per client, the served objects and their methods.
local mp = require "braid.multiprocessing"
local braid = require "braid"
local Error = braid.Error
local C = mp -- the _mgr_* helpers (bindings/lmpmanager.c) live on the module

local M = {}
local next, tostring, type, error, pcall = next, tostring, type, error, pcall
local pack, unpack = table.pack, table.unpack
local mtype = math.type

local AUTH_TIMEOUT = 20 -- seconds a peer has to answer the key challenge
M._AUTH_TIMEOUT = AUTH_TIMEOUT

local function raise(kind, msg, level)
    error(Error.new(kind, msg), (level or 1) + 1)
end


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

M._EXPOSED, M._CREATE = EXPOSED, CREATE
return M
