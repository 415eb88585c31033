-- braid.multiprocessing's queues: Queue, SimpleQueue and JoinableQueue, a
-- one-way Pipe with a shared lock on each end (installed into the module).
return function(M, raise)
    local braid = require "braid"
    local setmetatable, rawget, rawset, tostring, pcall, error, type =
        setmetatable, rawget, rawset, tostring, pcall, error, type
    -- put -> get arrows across processes: while recording, an item travels
    -- as {[FLOW] = id, item}, id unique in the merged trace (docs/tracing.md)
    local trace = braid.trace
    local trace_on, trace_now, trace_flow, trace_id = trace._on, trace._now, trace._flow, trace._async_id
    local FLOW = "\0braid.flow"

    local function flow_id() -- 20 bits of the pid, 22 of a per-process count
        local id = trace_id()
        return (id >> 30 & 0xfffff) << 22 | (id & 0x3fffff)
    end

    local conn_get = M._conn_get
    local Queue = {__name = "braid.mp.Queue"}
    Queue.__index = Queue
    M._Queue = Queue

    local function new_queue(cls, maxsize)
        local r, w = M.Pipe(false)
        local q = {_r = r, _w = w, _rlock = M.Lock(), _wlock = M.Lock(), _size = M.Value("q", 0),
            _ring = M._Ring()}
        if maxsize ~= nil and maxsize > 0 then
            q._sem = M.BoundedSemaphore(maxsize)
            q._maxsize = maxsize
        end
        return setmetatable(q, cls)
    end

    function M.Queue(maxsize)
        return new_queue(Queue, maxsize)
    end

    local function check_queue_open(self, level)
        if rawget(self, "_closed") then
            raise("ValueError", ("Queue %s is closed"):format(tostring(self)), level + 1)
        end
    end

    function Queue:put(item, block, timeout)
        check_queue_open(self, 2)
        if block == nil then
            block = true
        end
        local sem = self._sem
        if sem and not sem:acquire(block, block and timeout or nil) then
            raise("Full", "queue is full", 2)
        end
        local fid, t0
        if trace_on() then
            fid, t0 = flow_id(), trace_now()
            item = {[FLOW] = fid, item}
        end
        -- never waits for the reader: a small item goes into the queue's
        -- shared ring (core/mpring.c), and what the ring or the socket
        -- cannot take at once to this process's feeder thread (core/feed.c)
        local ok, err = pcall(M._conn_put, self._w, item, self._wlock, self._ring)
        if ok then
            self._size:_add(1)
            if fid then
                trace_flow(true, "put", fid, 0, t0)
            end
        end
        if not ok then
            if sem then
                sem:release()
            end
            error(err, 2)
        end
    end

    -- put of a value M._encode_plain already encoded (the process pool's
    -- backlog keeps its jobs encoded, so each is encoded once)
    function Queue:_put_encoded(bytes)
        check_queue_open(self, 2)
        local sem = self._sem
        if sem then
            sem:acquire()
        end
        local ok, err = pcall(M._conn_put_raw, self._w, bytes, self._wlock, self._ring)
        if ok then
            self._size:_add(1)
        else
            if sem then
                sem:release()
            end
            error(err, 2)
        end
    end

    function Queue:get(block, timeout)
        check_queue_open(self, 2)
        if block == nil then
            block = true
        end
        local rl = self._rlock
        local deadline = block and timeout and timeout >= 0 and braid.monotonic() + timeout or nil
        if not rl:acquire(block, block and timeout or nil) then
            raise("Empty", "queue is empty", 2)
        end
        local wait -- how long the receive may wait for a message (nil: forever)
        if not block then
            wait = 0
        elseif deadline then
            wait = math.max(0, deadline - braid.monotonic())
        end
        local ok, ready, item = pcall(conn_get, self._r, wait, self._ring)
        if ok and ready then
            self._size:_add(-1)
            local fid = type(item) == "table" and rawget(item, FLOW)
            if fid then
                item = item[1]
                trace_flow(false, "get", fid, 0)
            end
        end
        rl:release()
        if not ok then
            error(ready, 2)
        end
        if not ready then
            raise("Empty", "queue is empty", 2)
        end
        if self._sem then
            self._sem:release()
        end
        return item
    end

    function Queue:put_nowait(item)
        return self:put(item, false)
    end

    function Queue:get_nowait()
        return self:get(false)
    end

    function Queue:qsize()
        return self._size.value
    end

    function Queue:empty()
        return self._size.value == 0
    end

    function Queue:full()
        return self._maxsize ~= nil and self._size.value >= self._maxsize
    end

    -- Closes this process's use of the queue: later put/get here → ValueError.
    function Queue:close()
        rawset(self, "_closed", true)
    end

    -- Waits until this process's feeder has written every item put here.
    function Queue:join_thread()
        M._conn_flush(self._w)
    end

    -- This process's exit stops waiting for the items still to be written.
    function Queue:cancel_join_thread()
        M._conn_nojoin(self._w)
    end

    local SimpleQueue = setmetatable({__name = "braid.mp.SimpleQueue"}, {__index = Queue})
    SimpleQueue.__index = SimpleQueue
    M._SimpleQueue = SimpleQueue

    function M.SimpleQueue()
        return new_queue(SimpleQueue)
    end

    function SimpleQueue:get()
        return Queue.get(self)
    end

    function SimpleQueue:put(item)
        return Queue.put(self, item)
    end

    local JoinableQueue = setmetatable({__name = "braid.mp.JoinableQueue"}, {__index = Queue})
    JoinableQueue.__index = JoinableQueue
    M._JoinableQueue = JoinableQueue

    function M.JoinableQueue(maxsize)
        local q = new_queue(JoinableQueue, maxsize)
        q._unfinished = M.Value("q", 0)
        q._alldone = M.Event()
        q._alldone:set()
        return q
    end

    function JoinableQueue:put(item, block, timeout)
        local u = self._unfinished
        local l = u:get_lock()
        l:acquire()
        u.value = u.value + 1
        self._alldone:clear()
        l:release()
        local ok, err = pcall(Queue.put, self, item, block, timeout)
        if not ok then
            l:acquire()
            u.value = u.value - 1
            if u.value == 0 then
                self._alldone:set()
            end
            l:release()
            error(err, 2)
        end
    end

    function JoinableQueue:task_done()
        local u = self._unfinished
        local l = u:get_lock()
        l:acquire()
        if u.value <= 0 then
            l:release()
            raise("ValueError", "task_done() called too many times", 2)
        end
        u.value = u.value - 1
        if u.value == 0 then
            self._alldone:set()
        end
        l:release()
    end

    function JoinableQueue:join(timeout)
        return self._alldone:wait(timeout)
    end
end
