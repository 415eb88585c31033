-- braid.process_pool: futures.ProcessPoolExecutor and multiprocessing.Pool.
-- Worker processes take jobs from one shared Queue and answer on another; a
-- manager thread in the parent completes the futures and watches the workers.
local M = ... or {}
local braid = require "braid"
local trace = braid.trace
local mp = require "braid.multiprocessing"
local futures = require "braid.futures"
local threading = require "braid.threading"
local queue = require "braid.queue"
local poolmod = require "braid.pool"
local Error = braid.Error
local pack, unpack = table.pack, table.unpack

local function raise(kind, msg, level)
    error(Error.new(kind, msg), (level or 1) + 1)
end

-- A job crosses as {id, fn, {args...}} and an answer as {id, true,
-- {results...}}: the codec's path "item[3][2].conn" is the caller's
-- "args[2].conn" (what = "args") or "result[2].conn" (what = "result").
local function in_caller_terms(err, what)
    if type(err) == "table" and type(err.message) == "string" then
        err.message = err.message:gsub("item%[3%]%[(%d+)%]", what .. "[%1]")
    elseif type(err) == "string" then
        err = err:gsub("item%[3%]%[(%d+)%]", what .. "[%1]")
    end
    return err
end

local SIGNAMES = {[1] = "SIGHUP", [2] = "SIGINT", [3] = "SIGQUIT", [4] = "SIGILL",
                  [6] = "SIGABRT", [7] = "SIGBUS", [8] = "SIGFPE", [9] = "SIGKILL",
                  [11] = "SIGSEGV", [13] = "SIGPIPE", [14] = "SIGALRM", [15] = "SIGTERM"}

-- "signal 9 (SIGKILL)" or "exit code 3"
local function how_died(code)
    if code == nil then
        return "an unknown cause"
    elseif code < 0 then
        return ("signal %d (%s)"):format(-code, SIGNAMES[-code] or "?")
    end
    return ("exit code %d"):format(code)
end
M._how_died = how_died

-- ---- the worker process ----

-- jobs: {id, fn, args} or nil (stop); answers: {id, ok, results|err, tb}
-- or {"exit", slot} when max_tasks is reached. cur[slot] = running job id.
function M._worker(jobs, answers, cur, slot, initializer, initargs, max_tasks)
    if initializer then
        initializer(unpack(initargs or {}, 1, (initargs or {}).n or #(initargs or {})))
    end
    local done = 0
    local tb
    local function handler(e)
        tb = braid.traceback(e) or debug.traceback(type(e) == "string" and e or tostring(e), 2)
        return e
    end
    while true do
        local job = jobs:get()
        if job == nil then
            return
        end
        cur[slot] = job[1]
        local a = job[3]
        local t0
        if job[4] then -- traced: the submit's arrow ends here
            t0 = trace._now()
            trace._flow(false, "submit", job[4], 1, t0)
        end
        local r = pack(xpcall(job[2], handler, unpack(a, 1, a.n)))
        if t0 then
            local info = debug.getinfo(job[2], "S")
            trace._slice("job", info.short_src .. ":" .. info.linedefined, t0, nil,
                         {executor = job[5]})
            if not r[1] then
                trace._instant("error", tostring(type(r[2]) == "table" and r[2].message or r[2]))
            end
            trace._flow(true, "result", job[4], 2) -- to the parent's result()
        end
        local answer
        if r[1] then
            answer = {job[1], true, pack(unpack(r, 2, r.n))}
        else
            answer = {job[1], false, r[2], tb}
        end
        answer[5] = t0 and trace._on() or nil -- traced: result() ends the arrow
        local ok, err = pcall(answers.put, answers, answer)
        if not ok then -- a result that cannot cross: say so instead
            err = in_caller_terms(err, "result")
            answers:put({job[1], false, Error.new("TypeError", tostring(err.message or err)), nil})
        end
        cur[slot] = 0
        done = done + 1
        if max_tasks and done >= max_tasks then
            answers:put({"exit", slot})
            return
        end
    end
end

local BROKEN_MSG = "A child process terminated abruptly, the process pool is not usable anymore"

-- ---- the manager thread (in the parent) ----

-- ctl: a braid.queue of {id, future} and {"shutdown"}, {"signal", sig}.
-- Jobs wait, pending, in the backlog ({id, future, job}) while max_workers
-- + 1 are in the workers' hands (sem's permits); forward() hands them over
-- as places free up, marking each future running then, so a job still in
-- the backlog can be cancelled and never runs. (jobs:put never waits for
-- the workers: the Queue's feeder thread does.)
function M._manager(cfg, ctl, jobs, answers, cur, state, sem, backlog, reg)
    local mpm = require "braid.multiprocessing"
    local pp = require "braid.process_pool"
    local ctx = mpm.get_context(cfg.start_method)
    mpm.fork_warning = false -- this thread forks by design (documented)
    local workers = {}
    local function start(slot)
        -- daemon: a pool never shut down does not keep the program from exiting
        local p = ctx:Process{name = ("%s-%d"):format(cfg.name, slot), target = pp._worker,
                              daemon = true,
                              args = {jobs, answers, cur, slot, cfg.initializer, cfg.initargs,
                                      cfg.max_tasks}}
        p:start()
        workers[slot] = p
    end
    for slot = 1, cfg.n do
        start(slot)
    end
    local pending, npending = {}, 0
    local shutting = false
    local broken = nil
    local function fail_all(err)
        for id, f in pairs(pending) do
            pcall(f.set_exception, f, err)
            pending[id] = nil
        end
        npending = 0
    end
    local function forward()
        while not backlog:empty() and sem:acquire(false) do
            local ok, item = pcall(backlog.get_nowait, backlog)
            if not ok then
                sem:release()
                return
            end
            local id, f, job = item[1], item[2], item[3]
            if not f:set_running_or_notify_cancel() then
                sem:release() -- cancelled while pending: it never runs
            else
                local sent, err
                if type(job) == "string" then -- encoded by submit
                    sent, err = pcall(jobs._put_encoded, jobs, job)
                else
                    sent, err = pcall(jobs.put, jobs, job)
                end
                if sent then
                    pending[id] = f
                    npending = npending + 1
                else -- an argument that cannot cross another process
                    sem:release()
                    pcall(f.set_exception, f, in_caller_terms(err, "args"))
                end
            end
        end
    end
    local function fail_backlog(err)
        while true do
            local ok, item = pcall(backlog.get_nowait, backlog)
            if not ok then
                return
            end
            if item[2]:set_running_or_notify_cancel() then
                pcall(item[2].set_exception, item[2], err)
            end
        end
    end
    local function drain()
        while not ctl:empty() do -- (an Empty error each turn costs)
            local ok, m = pcall(ctl.get_nowait, ctl)
            if not ok then
                return
            end
            if m[1] == "shutdown" then
                shutting = true
            elseif m[1] == "forget" then -- its job never reached the workers
                if pending[m[2]] then
                    pending[m[2]] = nil
                    npending = npending - 1
                end
            elseif m[1] == "signal" then
                for _, p in pairs(workers) do
                    if p:is_alive() then p[m[2]](p) end
                end
                broken = broken or Error.new("BrokenProcessPool",
                    "the pool's workers were stopped by " .. m[2] .. "_workers()")
                state.value = 1
                fail_all(broken)
            elseif broken then
                pcall(m[2].set_exception, m[2], broken)
            else -- {id, future}: running (the submitter marked it)
                pending[m[1]] = m[2]
                npending = npending + 1
            end
        end
    end
    local function check_workers()
        for slot, p in pairs(workers) do
            if not p:is_alive() then
                local job = cur[slot]
                if job ~= 0 or (not shutting and not broken) then
                    local code = p.exitcode
                    local msg = ("worker %d (%s) died of %s while running job %d"):format(p.pid,
                        p.name, how_died(code), job)
                    if job == 0 then
                        msg = ("worker %d (%s) died of %s between jobs"):format(p.pid, p.name,
                                                                             how_died(code))
                    end
                    local err = Error.new("BrokenProcessPool", msg)
                    workers[slot] = nil
                    cur[slot] = 0
                    if cfg.replace then -- Pool: fail that job, replace the worker
                        drain()
                        local f = pending[job]
                        if f then
                            pending[job] = nil
                            npending = npending - 1
                            sem:release()
                            pcall(f.set_exception, f, err)
                        end
                        if not shutting then start(slot) end
                    else
                        broken = broken or err
                        state.value = 1
                    end
                else
                    workers[slot] = nil
                end
            end
        end
        if broken then
            for _, p in pairs(workers) do
                if p:is_alive() then p:terminate() end
            end
            drain()
            fail_all(broken)
        end
    end
    local count = 0
    while true do
        drain()
        if not broken then
            forward()
        end
        local ok, a = pcall(answers.get, answers, true, 0.05)
        if ok then
            if a[1] == "exit" then
                local p = workers[a[2]]
                if p then p:join() end
                workers[a[2]] = nil
                if not shutting and not broken then start(a[2]) end
            else
                local f = pending[a[1]]
                if f == nil then
                    drain()
                    f = pending[a[1]]
                end
                if f then
                    pending[a[1]] = nil
                    npending = npending - 1
                    sem:release()
                    if not broken then
                        forward()
                    end
                    if a[5] then futures._set_traced(f) end
                    if a[2] then
                        local r = a[3]
                        pcall(f.set_result, f, unpack(r, 1, r.n))
                    else
                        pcall(f.set_exception, f, a[3])
                    end
                end
            end
            count = count + 1
        elseif not Error.is(a, "Empty") then
            broken = broken or Error.new("BrokenProcessPool", "result queue: " .. tostring(a))
            state.value = 1
        end
        if not ok or count % 64 == 0 or broken then
            check_workers()
        end
        if (shutting and ((npending == 0 and backlog:empty()) or next(workers) == nil)) or
            broken then
            if shutting and not broken then
                for _ = 1, cfg.n do jobs:put(nil) end
            end
            for _, p in pairs(workers) do
                p:join(shutting and 30 or 1)
                if p:is_alive() then p:kill(); p:join() end
            end
            reg:acquire()
            if broken then
                state.value = 1
            end
            drain()
            local err = broken or Error.new("BrokenProcessPool", "the pool was shut down")
            fail_all(err)
            fail_backlog(err)
            reg:release()
            return
        end
    end
end

-- ---- ProcessPoolExecutor ----

local PPE = {__name = "braid.ProcessPoolExecutor"}
PPE.__index = PPE
M._ProcessPoolExecutorClass = PPE

local instances = 0

local function new_pool(opts, replace)
    if type(opts) ~= "table" then
        opts = {max_workers = opts}
    end
    local n = opts.max_workers
    if n == nil then
        n = braid.cpu_count()
    end
    if math.type(n) ~= "integer" or n < 1 then
        raise("ValueError", "max_workers must be greater than 0", 3)
    end
    local mt = opts.max_tasks_per_child
    if mt ~= nil and (math.type(mt) ~= "integer" or mt < 1) then
        raise("ValueError", "max_tasks_per_child must be >= 1", 3)
    end
    if opts.initializer ~= nil and type(opts.initializer) ~= "function" then
        error("bad argument #1 to 'ProcessPoolExecutor' (initializer must be a function)", 3)
    end
    local method = opts.start_method or mp.get_start_method()
    mp.get_context(method)
    if opts.name ~= nil and type(opts.name) ~= "string" then
        error("bad option 'name' (string expected, got " .. type(opts.name) .. ")", 3)
    end
    instances = instances + 1
    -- at most n + 1 jobs are in the workers' hands (running or in the jobs
    -- Queue), as Python's call queue; the rest wait in the backlog, pending
    local self = setmetatable({_name = opts.name, _serial = instances - 1, _n = n, _jobs = mp.Queue(), _answers = mp.Queue(),
                               _cur = mp.Array("q", n), _state = mp.Value("i", 0),
                               _ctl = queue.SimpleQueue(), _backlog = queue.SimpleQueue(),
                               _sem = threading.Semaphore(n + 1), _reg = threading.Lock(), _next = 0,
                               _shutdown = false}, PPE)
    local cfg = {n = n, start_method = method, initializer = opts.initializer,
                 initargs = opts.initargs, max_tasks = mt, replace = replace,
                 name = (replace and "PoolWorker" or "ProcessPoolWorker") .. "-" .. instances}
    self._thread = threading.Thread{target = M._manager, daemon = true,
                                    args = {cfg, self._ctl, self._jobs, self._answers, self._cur,
                                            self._state, self._sem, self._backlog, self._reg}}
    self._thread:start()
    return self
end

--- ProcessPoolExecutor{max_workers=, initializer=, initargs=, max_tasks_per_child=, start_method=}
function M.ProcessPoolExecutor(opts)
    return new_pool(opts, false)
end

function PPE:get_name()
    return self._name
end

function PPE:set_name(name)
    if name ~= nil and type(name) ~= "string" then
        error("bad argument #1 to 'set_name' (string expected, got " .. type(name) .. ")", 2)
    end
    self._name = name
end

function PPE:_max_workers()
    return self._n
end

function PPE:submit(fn, ...)
    if self._shutdown then
        raise("RuntimeError", "cannot schedule new futures after shutdown", 2)
    end
    if self._state.value ~= 0 then
        raise("BrokenProcessPool", BROKEN_MSG, 2)
    end
    if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
        error("bad argument #1 to 'submit' (function expected, got " .. type(fn) .. ")", 2)
    end
    self._next = self._next + 1
    local id = self._next
    local f = futures.Future()
    local job = {id, fn, pack(...)}
    if trace._on() then
        job[4] = trace._flow_object(true, "submit", f, 1)
        job[5] = self._name or ("ProcessPoolExecutor-" .. self._serial)
    end
    if self._backlog:empty() and self._sem:acquire(false) then
        -- a free place in the window: straight to the workers, running
        f:set_running_or_notify_cancel()
        local reg = self._reg
        reg:acquire()
        local live = self._state.value == 0
        if live then
            self._ctl:put({id, f}) -- first: the answer may come back at once
        end
        reg:release()
        if not live then
            self._sem:release()
            f:set_exception(Error.new("BrokenProcessPool", BROKEN_MSG))
            return f
        end
        local ok, err = pcall(self._jobs.put, self._jobs, job)
        if not ok then -- an argument that cannot cross fails this future only
            self._ctl:put({"forget", id})
            self._sem:release()
            f:set_exception(in_caller_terms(err, "args"))
        end
    else -- pending in the backlog until the manager thread hands it over
        local reg = self._reg
        reg:acquire()
        local live = self._state.value == 0
        local ok, err = true, nil
        if live then
            -- encoded once, here: the manager sends these bytes as they are
            -- (a job carrying shared objects stays a table: only a message
            -- carries their descriptors)
            local bytes
            ok, bytes = pcall(mp._encode_plain, job)
            if ok then
                ok, err = pcall(self._backlog.put, self._backlog, {id, f, bytes or job})
            else
                err = bytes
            end
        end
        reg:release()
        if not live then
            raise("BrokenProcessPool", BROKEN_MSG, 2)
        elseif not ok then
            f:set_running_or_notify_cancel()
            f:set_exception(in_caller_terms(err, "args"))
        end
    end
    return f
end

function PPE:shutdown(wait, cancel_futures)
    if wait == nil then
        wait = true
    end
    if not self._shutdown then
        self._shutdown = true
        if cancel_futures then
            -- jobs still pending (in the backlog) are cancelled
            while true do
                local ok, item = pcall(self._backlog.get_nowait, self._backlog)
                if not ok then break end
                item[2]:cancel()
            end
        end
        self._ctl:put({"shutdown"}) -- the manager hands over the backlog first
    end
    if wait then
        self._thread:join()
    end
end

local function stop_workers(self, how)
    if not self._shutdown then
        self._ctl:put({"signal", how})
        self._shutdown = true
    end
    self._thread:join()
end

--- ex:terminate_workers(): SIGTERM to every worker; pending futures fail
function PPE:terminate_workers()
    stop_workers(self, "terminate")
end

--- ex:kill_workers(): SIGKILL to every worker; pending futures fail
function PPE:kill_workers()
    stop_workers(self, "kill")
end

PPE.map = futures._Executor_methods.map
PPE.with = futures._Executor_methods.with
PPE.__close = function(self) self:shutdown(true) end

-- ---- Pool (the ThreadPool's API on a process pool) ----

--- Pool(processes) or Pool{processes=, initializer=, initargs=, maxtasksperchild=}
function M.Pool(opts)
    if type(opts) ~= "table" then
        opts = {processes = opts}
    end
    local n = opts.processes
    if n == nil then
        n = braid.cpu_count()
    end
    if math.type(n) ~= "integer" or n < 1 then
        raise("ValueError", "Number of processes must be at least 1", 2)
    end
    local mt = opts.maxtasksperchild
    if mt ~= nil and (math.type(mt) ~= "integer" or mt < 1) then
        raise("ValueError", "maxtasksperchild must be a positive int or nil", 2)
    end
    local ex = new_pool({max_workers = n, initializer = opts.initializer,
                         initargs = opts.initargs, max_tasks_per_child = mt}, true)
    return setmetatable({_ex = ex, _state = "RUN", _processes = n}, poolmod.ThreadPoolClass)
end

return M
