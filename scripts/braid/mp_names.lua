-- braid.multiprocessing: name= options and set_name / get_name for the
-- objects built in Lua (Condition, Barrier, the queues) and for Value and
-- Array. A Lua-side object's name is its own field (it crosses to a child
-- with the object) and names the shared objects it is made of, so their
-- waits show the label in the trace and the live dump.
return function(M)
    local type, getmetatable, rawget, rawset, tostring, error, next =
        type, getmetatable, rawget, rawset, tostring, error, next

    local function check_name(v, what, level)
        if v == nil or type(v) == "string" then
            return v
        end
        if type(v) == "number" then
            return tostring(v)
        end
        error(("bad %s (string expected, got %s)"):format(what, type(v)), level + 1)
    end

    -- An options table (a plain table, not an object), its name checked.
    local function opts(v, what)
        if type(v) ~= "table" or getmetatable(v) ~= nil then
            return nil
        end
        check_name(v.name, ("option 'name' to '%s'"):format(what), 3)
        return v
    end

    -- The parts of each Lua-side object that carry its name.
    local parts = {
        [M._Condition] = {"_wait", "_sleeping", "_woken"},
        [M._Barrier] = {"_cond", "_st"},
        [M._Queue] = {"_rlock", "_wlock", "_sem", "_size", "_unfinished", "_alldone"},
    }
    parts[M._SimpleQueue] = parts[M._Queue]
    parts[M._JoinableQueue] = parts[M._Queue]

    local function name_parts(self, name)
        for _, k in next, parts[getmetatable(self)] do
            local p = rawget(self, k)
            if p ~= nil then
                p:set_name(name)
            end
        end
    end

    local function set_name(self, name)
        name = check_name(name, "argument #1 to 'set_name'", 2)
        rawset(self, "_name", name)
        name_parts(self, name)
    end

    local function get_name(self)
        return rawget(self, "_name")
    end

    for cls in next, parts do
        cls.set_name, cls.get_name = set_name, get_name
    end

    local function named(obj, o)
        if o.name ~= nil then
            obj:set_name(o.name)
        end
        return obj
    end

    -- Each constructor's positional form is a tail call of the original
    -- (its errors point at the caller); the options form names the result.
    local Condition, Barrier, Value, Array = M.Condition, M.Barrier, M.Value, M.Array

    -- Condition{lock=, name=}
    function M.Condition(lock)
        local o = opts(lock, "Condition")
        if not o then
            return Condition(lock)
        end
        local c = Condition(o.lock)
        if o.name ~= nil and o.lock == nil then
            c._lock:set_name(o.name) -- its own RLock
        end
        return named(c, o)
    end

    -- Barrier{parties=, action=, timeout=, name=}
    function M.Barrier(parties, action, timeout)
        local o = opts(parties, "Barrier")
        if not o then
            return Barrier(parties, action, timeout)
        end
        return named(Barrier(o.parties, o.action, o.timeout), o)
    end

    -- Queue{maxsize=, name=}, SimpleQueue{name=}, JoinableQueue{maxsize=, name=}
    for _, k in next, {"Queue", "SimpleQueue", "JoinableQueue"} do
        local new = M[k]
        M[k] = function(maxsize)
            local o = opts(maxsize, k)
            if not o then
                return new(maxsize)
            end
            return named(new(o.maxsize), o)
        end
    end

    -- Value{typecode=, value=, name=}, Array{typecode=, size= | init=, name=}
    function M.Value(typecode, init)
        local o = opts(typecode, "Value")
        if not o then
            return Value(typecode, init)
        end
        return named(Value(o.typecode, o.value), o)
    end

    function M.Array(typecode, size_or_sequence)
        local o = opts(typecode, "Array")
        if not o then
            return Array(typecode, size_or_sequence)
        end
        local init = o.init
        if init == nil then
            init = o.size
        end
        return named(Array(o.typecode, init), o)
    end
end
