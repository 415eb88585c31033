-- Seeing a run (API.md §9), the timeline part: object names and the trace.
local threading = require "braid.threading"
local queue = require "braid.queue"
local futures = require "braid.futures"

describe("object names", function()
  it("every primitive, queue and executor takes name= and keeps the positional form", function()
    local l = threading.Lock{name = "db"}
    assert.equal("db", l:get_name())
    assert.is_nil(threading.Lock():get_name())
    assert.equal("r", threading.RLock{name = "r"}:get_name())
    local c = threading.Condition{lock = l, name = "cv"}
    assert.equal("cv", c:get_name())
    assert.equal("cv2", threading.Condition{name = "cv2"}:get_name())
    local s = threading.Semaphore{value = 3, name = "sem"}
    assert.equal("sem", s:get_name())
    assert.is_true(s:acquire(false) and s:acquire(false) and s:acquire(false))
    assert.is_false(s:acquire(false))
    assert.equal("bs", threading.BoundedSemaphore{value = 2, name = "bs"}:get_name())
    assert.equal(2, threading.Semaphore(2):_value())
    assert.equal("ev", threading.Event{name = "ev"}:get_name())
    local b = threading.Barrier{parties = 1, name = "bar"}
    assert.equal("bar", b:get_name())
    assert.equal(0, b:wait())
    local q = queue.Queue{maxsize = 8, name = "jobs"}
    assert.equal("jobs", q:get_name())
    assert.equal(8, q:maxsize())
    assert.equal("lq", queue.LifoQueue{name = "lq"}:get_name())
    assert.equal("sq", queue.SimpleQueue{name = "sq"}:get_name())
    local ex = futures.ThreadPoolExecutor{max_workers = 2, name = "pool"}
    assert.equal("pool", ex:get_name())
    assert.equal(3, ex:submit(function() return 3 end):result())
    ex:shutdown()
  end)

  it("unnamed objects are labelled Kind#N; set_name renames, nil clears", function()
    local l = threading.Lock()
    assert.matches("^Lock#%d+$", l:_label())
    assert.matches("^Queue#%d+$", queue.Queue():_label())
    l:set_name("renamed")
    assert.equal("renamed", l:get_name())
    assert.equal("renamed", l:_label())
    l:set_name(nil)
    assert.is_nil(l:get_name())
  end)

  it("a name crosses with the object to another thread", function()
    local l = threading.Lock{name = "shared-lock"}
    local t = threading.Thread{target = function(lk)
      local n = lk:get_name()
      lk:set_name("from-thread")
      return n
    end, args = {l}}
    t:start()
    assert.equal("shared-lock", t:result())
    assert.equal("from-thread", l:get_name())
  end)

  it("Thread has get_name/set_name alongside .name", function()
    local t = threading.Thread{target = function() end, name = "w"}
    assert.equal("w", t:get_name())
    t:set_name("w2")
    assert.equal("w2", t.name)
  end)

  it("multiprocessing Lock, RLock, Event, Semaphore and BoundedSemaphore take name=", function()
    local mp = require "braid.multiprocessing"
    assert.equal("a", mp.Lock{name = "a"}:get_name())
    assert.equal("b", mp.RLock{name = "b"}:get_name())
    assert.equal("e", mp.Event{name = "e"}:get_name())
    local s = mp.Semaphore{value = 3, name = "s"}
    assert.equal("s", s:get_name())
    assert.equal(3, s:get_value())
    local bs = mp.BoundedSemaphore{name = "bs", value = 2}
    assert.equal("bs", bs:get_name())
    bs:acquire()
    bs:release()
    assert.has_error(function() bs:release() end)
    assert.equal(2, mp.Semaphore(2):get_value()) -- the positional form still works
    assert.equal(1, mp.Semaphore{}:get_value())
    assert.has_error(function() mp.Lock{name = 3} end,
                     "bad option 'name' (string expected, got number)")
    assert.has_error(function() mp.Semaphore{value = 1, name = {}} end,
                     "bad option 'name' (string expected, got table)")
  end)

  it("multiprocessing Condition, Barrier, the queues, Value and Array take name= and set_name", function()
    local mp = require "braid.multiprocessing"
    local c = mp.Condition{name = "ready"}
    assert.equal("ready", c:get_name())
    assert.equal("ready", c._wait:get_name()) -- its waits show the label
    assert.equal("ready", c._lock:get_name())
    local l = mp.Lock{name = "own"}
    local c2 = mp.Condition{lock = l, name = "c2"}
    assert.same({"c2", "own"}, {c2:get_name(), l:get_name()}) -- a given lock keeps its name
    assert.is_nil(mp.Condition():get_name())
    local b = mp.Barrier{parties = 1, name = "start", timeout = 5}
    assert.same({"start", 5, 1}, {b:get_name(), b._timeout, b.parties})
    assert.equal(0, b:wait())
    assert.equal(1, mp.Barrier(1):wait() + 1) -- the positional form still works
    local q = mp.Queue{maxsize = 2, name = "jobs"}
    assert.same({"jobs", 2, "jobs", "jobs"}, {q:get_name(), q._maxsize, q._rlock:get_name(), q._sem:get_name()})
    q:put(1)
    assert.equal(1, q:get())
    assert.equal("sq", mp.SimpleQueue{name = "sq"}:get_name())
    local jq = mp.JoinableQueue{name = "jq"}
    assert.same({"jq", "jq"}, {jq:get_name(), jq._alldone:get_name()})
    local v = mp.Value{typecode = "i", value = 7, name = "hits"}
    assert.same({"hits", 7}, {v:get_name(), v.value})
    local a = mp.Array{typecode = "d", size = 3, name = "grid"}
    assert.same({"grid", 3, 0.0}, {a:get_name(), #a, a[1]})
    assert.equal(2, mp.Array{typecode = "i", init = {1, 2}}[2])
    assert.equal(5, mp.Value("i", 5).value)
    q:set_name("renamed")
    assert.same({"renamed", "renamed"}, {q:get_name(), q._wlock:get_name()})
    q:set_name(nil)
    assert.is_nil(q:get_name())
    for _, o in ipairs{mp.Condition(), mp.Barrier(2), mp.Queue(), mp.SimpleQueue(), mp.JoinableQueue()} do
      o:set_name("x")
      assert.equal("x", o:get_name())
    end
    assert.has_error(function() mp.Queue{name = 3.5}:set_name({}) end,
                     "bad argument #1 to 'set_name' (string expected, got table)")
    assert.has_error(function() mp.Barrier{parties = 2, name = true} end,
                     "bad option 'name' to 'Barrier' (string expected, got boolean)")
  end)

  it("a name that is not a string is a clear error", function()
    assert.has_error(function() threading.Lock{name = 3} end,
                     "bad option 'name' (string expected, got number)")
    assert.has_error(function() queue.Queue{name = {}} end,
                     "bad option 'name' (string expected, got table)")
    assert.has_error(function() futures.ThreadPoolExecutor{name = true} end,
                     "bad option 'name' (string expected, got boolean)")
    assert.has_error(function() threading.Lock():set_name(false) end)
  end)
end)

-- ---- the timeline ----

local braid = require "braid"
local json = require "spec.support.json"

local files = require "spec.support.files"
local EXE, quote, tmpname = files.EXE, files.quote, files.tmpname
local writefile, readfile = files.writefile, files.readfile

-- Runs `braid [pre...] script` (the script's text in a temp file) with env
-- (NAME=value pairs); returns stdout, stderr, how ("exit"/"signal"), code.
local function run(pre, text, env)
  local out, err = tmpname(), tmpname()
  local cmd = {"env", "-u", "LUA_INIT", "-u", "LUA_INIT_5_4", "-u", "BRAID_TRACE", "-u",
               "BRAID_TRACE_PARENT"}
  for k, v in pairs(env or {}) do cmd[#cmd + 1] = quote(k .. "=" .. v) end
  cmd[#cmd + 1] = quote(EXE)
  for _, a in ipairs(pre) do cmd[#cmd + 1] = quote(a) end
  cmd[#cmd + 1] = quote(writefile(tmpname(), text))
  cmd[#cmd + 1] = "</dev/null >" .. quote(out) .. " 2>" .. quote(err)
  local _, how, code = os.execute(table.concat(cmd, " "))
  return readfile(out), readfile(err), how, code
end

local function events(path)
  local doc = json.decode(readfile(path))
  assert.equal("braid", doc.otherData.tool)
  assert.equal("ms", doc.displayTimeUnit)
  return doc.traceEvents
end

local function select_events(evs, pred)
  local r = {}
  for i = 1, evs.n do
    if pred(evs[i]) then r[#r + 1] = evs[i] end
  end
  return r
end

-- every flow end has its start and the other way round
local function check_flows(evs)
  local s, f, n = {}, {}, 0
  for i = 1, evs.n do
    local e = evs[i]
    if e.ph == "s" then s[e.id] = (s[e.id] or 0) + 1; n = n + 1 end
    if e.ph == "f" then
      f[e.id] = (f[e.id] or 0) + 1
      assert.equal("e", e.bp)
    end
  end
  for id in pairs(f) do assert.is_truthy(s[id], "flow end without start: " .. id) end
  for id in pairs(s) do assert.is_truthy(f[id], "flow start without end: " .. id) end
  return n
end

describe("trace", function()
  after_each(files.remove_tmpfiles)

  it("braid --trace records named thread tracks, wait slices on a labelled lock, " ..
     "jobs with source:line and paired flows", function()
    local out = tmpname()
    local stdout, stderr, how, code = run({"--trace", out}, [[
local threading = require "braid.threading"
local queue = require "braid.queue"
local futures = require "braid.futures"
local db = threading.Lock{name = "db"}
local q = queue.Queue{name = "jobs"}
local ts = {}
for i = 1, 3 do
  ts[i] = threading.Thread{name = "worker-" .. i, target = function()
    for k = 1, 10 do
      db:acquire()
      require("braid").sleep(0.002)
      db:release()
      q:put(k)
    end
  end}
  ts[i]:start()
end
for _ = 1, 30 do q:get() end
for i = 1, 3 do ts[i]:join() end
local ex = futures.ThreadPoolExecutor{max_workers = 2, name = "pool"}
local fs = {}
for i = 1, 4 do
  fs[i] = ex:submit(function(x) return x * 2 end, i)
end
for i = 1, 4 do assert(fs[i]:result() == 2 * i) end
ex:shutdown()
print("done")
]])
    assert.equal("done\n", stdout, stderr)
    assert.equal(0, code)
    local evs = events(out)
    local names = {}
    for _, e in ipairs(select_events(evs, function(e) return e.name == "thread_name" end)) do
      names[e.args.name] = e.tid
    end
    for i = 1, 3 do assert.is_truthy(names["worker-" .. i]) end
    assert.is_truthy(names.MainThread)
    assert.equal(1, #select_events(evs, function(e)
      return e.name == "process_name" and e.args.name:find("^braid ")
    end))
    -- each thread's run is a slice on its own track
    for i = 1, 3 do
      assert.equal(1, #select_events(evs, function(e)
        return e.cat == "thread" and e.name == "worker-" .. i and e.tid == names["worker-" .. i]
      end))
    end
    -- three threads on one lock: somebody waited on "db"
    local waits = select_events(evs, function(e) return e.cat == "wait" and e.args.object == "db" end)
    assert.is_true(#waits > 0)
    for _, w in ipairs(waits) do
      assert.equal("X", w.ph)
      assert.equal("Lock acquire", w.name)
      assert.same({"Lock", "acquire", false, "ok"}, {w.args.kind, w.args.op, w.args.timeout, w.args.outcome})
      assert.is_true(w.dur >= 0)
    end
    -- jobs: source:line of their function, the executor's label
    local jobs = select_events(evs, function(e) return e.cat == "job" end)
    assert.equal(4, #jobs)
    for _, j in ipairs(jobs) do
      assert.matches(":23$", j.name)
      assert.equal("pool", j.args.executor)
    end
    assert.is_true(#select_events(evs, function(e)
      return e.ph == "C" and e.name == "executor pool" and e.args.running ~= nil and e.args.queued ~= nil
    end) > 0)
    -- depth counters (throttled to one per 10 us unless the queue empties,
    -- so not necessarily one per put and get on a slow, sanitized run)
    assert.is_true(#select_events(evs, function(e)
      return e.ph == "C" and e.name == "queue jobs" and math.type(e.args.depth) == "integer"
    end) >= 2)
    -- 30 put->get arrows, 4 submit->job, 4 job->result
    assert.equal(38, check_flows(evs))
  end)

  it("samples the put->get arrows of a fast stream and keeps both ends of each", function()
    local out = tmpname()
    local stdout, stderr, _, code = run({"--trace", out}, [[
local braid = require "braid"
local threading = require "braid.threading"
local queue = require "braid.queue"
local q = queue.Queue(1024)
for i = 1, 10 do q:put(i) end -- a short burst: an arrow for each item
for _ = 1, 10 do q:get() end
local N = 200000
local t = threading.Thread{target = function(q, n) for i = 1, n do q:put(i) end end, args = {q, N}}
local t0 = braid.monotonic()
t:start()
local s = 0
for _ = 1, N do s = s + q:get() end
t:join()
print(N / (braid.monotonic() - t0), s)
]])
    assert.equal(0, code, stderr)
    local rate, sum = stdout:match("^(%S+)%s+(%S+)")
    assert.equal(200000 * 200001 // 2, math.tointeger(tonumber(sum)))
    local arrows = check_flows(events(out))
    assert.is_true(arrows >= 10, arrows)
    assert.is_true(arrows <= 200010, arrows)
    -- at over 2 million items a second the sampled puts come closer than
    -- 10 us with a stride of 32, so it climbs at least that far (a slow,
    -- sanitized run may keep more arrows)
    if tonumber(rate) > 2e6 then assert.is_true(arrows < 200000 // 8, arrows) end
  end)

  it("braid.trace.start/stop record a part of a run; tasks steps and errors show", function()
    local out = tmpname()
    local asyncio = require "braid.asyncio"
    braid.trace.start(out)
    assert.equal(out, braid.trace.path())
    assert.has_error(function() braid.trace.start(out) end)
    asyncio.run(function()
      local t = asyncio.create_task(function() asyncio.sleep(0) error("task broke") end)
      pcall(asyncio.wait_for, t, 5)
    end)
    local hook = threading.excepthook
    threading.excepthook = function() end -- quiet: the trace is what we look at
    local t = threading.Thread{target = function() error("thread broke") end, name = "bad"}
    t:start()
    t:join()
    threading.excepthook = hook
    assert.equal(out, braid.trace.stop())
    assert.is_nil(braid.trace.stop())
    local evs = events(out)
    assert.is_true(#select_events(evs, function(e)
      return e.cat == "task" and e.ph == "X" and e.args.loop ~= nil
    end) >= 2)
    assert.equal(1, #select_events(evs, function(e)
      return e.cat == "error" and e.ph == "i" and e.s == "t" and e.name:find("task broke")
    end))
    assert.equal(1, #select_events(evs, function(e)
      return e.cat == "error" and e.name:find("thread broke")
    end))
  end)

  it("records each asyncio task's waits as nestable async slices on its own track", function()
    local out = tmpname()
    local asyncio = require "braid.asyncio"
    braid.trace.start(out)
    asyncio.run(function()
      local l = asyncio.Lock{name = "db"}
      local q = asyncio.Queue{maxsize = 1, name = "jobs"}
      local ev = asyncio.Event{name = "go"}
      local ts = {}
      for i = 1, 3 do
        ts[i] = asyncio.create_task(function()
          l:acquire()
          asyncio.sleep(0.001)
          l:release()
          q:put(i)
          ev:wait()
        end)
        ts[i]:set_name("w" .. i)
      end
      while q._putters.n == 0 do asyncio.sleep(0.001) end -- a put waits: the queue is full
      for _ = 1, 3 do q:get() end
      ev:set()
      for i = 1, 3 do asyncio.await(ts[i]) end
      local slow = asyncio.create_task(function() asyncio.sleep(10) end)
      asyncio.sleep(0)
      slow:cancel()
      pcall(asyncio.await, slow)
    end)
    braid.trace.stop()
    local evs = events(out)
    -- per id, the b/e events nest (the file keeps each track's order), and
    -- each track opens with its task's name
    local stacks, track, waits, tid = {}, {}, {}, nil
    for _, e in ipairs(select_events(evs, function(e) return e.cat == "asyncio" end)) do
      assert.is_true(e.ph == "b" or e.ph == "e", e.ph)
      assert.equal("number", type(e.id))
      tid = tid or e.tid
      assert.equal(tid, e.tid) -- the loop's thread
      local st = stacks[e.id] or {}
      stacks[e.id] = st
      if e.ph == "b" then
        if #st == 0 then
          track[e.id] = e.name
          assert.equal(e.name, e.args.task)
        else
          waits[#waits + 1] = {task = track[e.id], name = e.name, args = e.args, ts = e.ts}
        end
        st[#st + 1] = e
      else
        local b = table.remove(st)
        assert.is_truthy(b, "an end without a begin")
        assert.equal(b.name, e.name)
        assert.is_true(e.ts >= b.ts)
        if #st > 0 then
          waits[#waits].dur, waits[#waits].outcome = e.ts - b.ts, e.args.outcome
        end
      end
    end
    for id, st in pairs(stacks) do assert.equal(0, #st, "track " .. id .. " left open") end
    local function count(pred)
      local n = 0
      for _, w in ipairs(waits) do if pred(w) then n = n + 1 end end
      return n
    end
    -- w2 and w3 queue on the lock; the bounded queue holds back a put; all wait for go
    assert.is_true(count(function(w)
      return w.name == "Lock acquire" and w.args.object == "db" and w.args.kind == "Lock" and
             w.args.op == "acquire" and w.outcome == "ok" and w.dur > 0
    end) >= 2)
    assert.is_true(count(function(w) return w.name == "Queue put" and w.args.object == "jobs" end) >= 1)
    assert.equal(3, count(function(w)
      return w.name == "Event wait" and w.args.object == "go" and w.task:match("^w%d$")
    end))
    assert.is_true(count(function(w) return w.name == "sleep" and w.args.kind == "sleep" end) >= 3)
    assert.equal(1, count(function(w) return w.name == "sleep" and w.outcome == "cancelled" end))
    assert.is_true(count(function(w) return w.name == "Task await" and w.args.object == "w1" end) >= 1)
    -- a task's waits are not thread waits: no "wait" slice for them
    assert.equal(0, #select_events(evs, function(e) return e.cat == "wait" and e.args.object == "db" end))
  end)

  it("a child process's events are in the same file, under its own pid", function()
    local out = tmpname()
    local stdout, stderr, _, code = run({"--trace", out}, [[
local futures = require "braid.futures"
local ex = futures.ProcessPoolExecutor{max_workers = 1, name = "procs"}
assert(ex:submit(function(x) return x + 1 end, 1):result() == 2)
ex:shutdown()
print("done")
]])
    assert.equal("done\n", stdout, stderr)
    assert.equal(0, code)
    local evs = events(out)
    local main = select_events(evs, function(e) return e.name == "process_name" end)
    assert.is_true(#main >= 2)
    local job = select_events(evs, function(e) return e.cat == "job" end)
    assert.equal(1, #job)
    assert.equal("procs", job[1].args.executor)
    assert.not_equal(main[1].pid, job[1].pid)
    check_flows(evs) -- submit -> job, job -> result(), the pool's own queues
    local rs = select_events(evs, function(e) return e.name == "result" and e.ph == "s" end)
    local rf = select_events(evs, function(e) return e.name == "result" and e.ph == "f" end)
    assert.equal(1, #rs)
    assert.equal(1, #rf)
    assert.equal(job[1].pid, rs[1].pid) -- from the worker's job
    assert.equal(main[1].pid, rf[1].pid) -- to the parent's result()
    assert.equal(rs[1].id, rf[1].id)
    -- no chunk left behind
    local leftovers = io.popen("ls " .. quote(out) .. ".*.part 2>/dev/null"):read("a")
    assert.equal("", leftovers)
  end)

  it("the live dump names the multiprocessing object a thread is blocked on", function()
    local function try()
      return select(2, run({}, [[
local mp = require "braid.multiprocessing"
local braid = require "braid"
local threading = require "braid.threading"
local q = mp.Queue{maxsize = 1, name = "slots"}
q:put(1)
local c = mp.Condition{name = "ready"}
local about = threading.Event()
local t = threading.Thread{name = "putter", target = function() about:set() q:put(2) end}
local t2 = threading.Thread{name = "waiter", target = function() c:acquire() c:wait(30) c:release() end}
t:start() t2:start()
about:wait()
while c._sleeping:get_value() < 1 do braid.sleep(0.001) end -- in c:wait
braid.sleep(0.3) -- both block a few instructions after these points
braid.dump()
q:get()
c:acquire() c:notify() c:release()
t:join() t2:join()
]]))
    end
    local out
    for _ = 1, 3 do -- a thread that starts late on a loaded machine: try again
      out = try()
      if out:match('"putter"[^\n]*blocked on') and out:match('"waiter"[^\n]*blocked on') then break end
    end
    assert.matches('Thread "putter"[^\n]*blocked on Semaphore "slots" in acquire', out)
    assert.matches('Thread "waiter"[^\n]*blocked on Semaphore "ready" in acquire[^\n]*timeout in', out)
  end)

  it("draws multiprocessing.Queue put->get arrows across processes into the merged file", function()
    local out = tmpname()
    local stdout, stderr, _, code = run({"--trace", out}, [[
local mp = require "braid.multiprocessing"
local jobs, answers = mp.Queue{name = "jobs"}, mp.JoinableQueue{name = "answers"}
local p = mp.Process{target = function(jobs, answers)
  for _ = 1, 5 do answers:put(jobs:get() * 2) end
end, args = {jobs, answers}}
p:start()
for i = 1, 5 do jobs:put(i) end
jobs:put({nested = {1, 2}}) -- a table item comes back as it was
local got = {}
for _ = 1, 5 do got[#got + 1] = answers:get() answers:task_done() end
answers:join()
p:join()
local t = jobs:get()
assert(t.nested[2] == 2 and t[1] == nil)
print(table.concat(got, " "), jobs:get_name(), answers:get_name())
]])
    assert.equal(0, code, stderr)
    assert.equal("2 4 6 8 10\tjobs\tanswers\n", stdout)
    local evs = events(out)
    assert.equal(11, check_flows(evs))
    local parent = select_events(evs, function(e) return e.name == "process_name" end)[1].pid
    local starts, ends = {}, {}
    for _, e in ipairs(select_events(evs, function(e) return e.cat == "flow" end)) do
      if e.ph == "s" then starts[e.id] = e else ends[e.id] = e end
      assert.equal(e.ph == "s" and "put" or "get", e.name)
    end
    local down, up = 0, 0
    for id, s in pairs(starts) do
      local f = ends[id]
      assert.is_true(f.ts >= s.ts)
      if s.pid == parent and f.pid ~= parent then down = down + 1 end
      if s.pid ~= parent and f.pid == parent then up = up + 1 end
    end
    assert.equal(5, down) -- jobs: parent -> child
    assert.equal(5, up) -- answers: child -> parent
  end)

  it("names multiprocessing's Lua-side objects' parts: their waits show the label", function()
    -- the put must have blocked before the get frees it: a few tries
    -- absorb a thread that starts late on a loaded machine
    local waits
    for _ = 1, 3 do
      local out = tmpname()
      local stdout, stderr, _, code = run({"--trace", out}, [[
local mp = require "braid.multiprocessing"
local braid = require "braid"
local threading = require "braid.threading"
local q = mp.Queue{maxsize = 1, name = "slots"}
q:put(1)
local about = threading.Event()
local t = threading.Thread{target = function() about:set() q:put(2) end}
t:start()
about:wait()
braid.sleep(0.1)
q:get()
t:join()
q:get()
print("ok")
]])
      assert.equal(0, code, stderr)
      assert.equal("ok\n", stdout)
      waits = select_events(events(out), function(e) return e.cat == "wait" and e.args.object == "slots" end)
      if #waits > 0 then break end
    end
    assert.is_true(#waits >= 1)
    assert.same({"Semaphore acquire", "Semaphore", "ok"}, {waits[1].name, waits[1].args.kind, waits[1].args.outcome})
  end)

  it("os.exit(3), an error and SIGTERM still leave a valid JSON file", function()
    for _, case in ipairs{
      {"threading = require 'braid.threading'; threading.Lock{name='x'}:acquire(); os.exit(3)", 3},
      {"require 'braid.threading'; error('the end')", 1},
      {"local mp = require 'braid.multiprocessing'; " ..
       "os.execute('kill -TERM ' .. mp.current_process().pid); require('braid').sleep(5)", nil},
    } do
      local out = tmpname()
      local _, _, how, code = run({"--trace", out}, case[1])
      if case[2] then
        assert.equal("exit", how)
        assert.equal(case[2], code)
      else -- killed by SIGTERM (the shell reports 128 + 15)
        assert.is_true(how == "signal" or code == 143, how .. " " .. tostring(code))
      end
      local evs = events(out)
      assert.is_true(evs.n >= 1)
    end
  end)

  it("SIGTERM formats what was spilled and buffered: the file stays valid and whole", function()
    local out = tmpname()
    local _, stderr, how, code = run({"--trace", out}, [[
local braid = require "braid"
local q = require("braid.queue").Queue{name = "q"}
for i = 1, 20000 do q:put(i) q:get() end
local pid = io.open("/proc/self/stat"):read("n")
os.execute("kill -TERM " .. pid)
braid.sleep(5)
]], {BRAID_TRACE_BUFFER = "16384", BRAID_TRACE_ARROWS = "all"})
    assert.is_true(how == "signal" or code == 143, how .. " " .. tostring(code) .. stderr)
    local evs = events(out)
    local flows = #select_events(evs, function(e) return e.ph == "s" or e.ph == "f" end)
    -- all but at most the half the flusher was formatting (16 KiB of 32-byte records)
    assert.is_true(flows >= 40000 - 16384 // 32, flows)
    local ls = io.popen("ls " .. out .. ".*.spill 2>/dev/null")
    assert.equal("", ls:read("a")) -- the spill file is removed
    ls:close()
  end)

  it("BRAID_TRACE records too", function()
    local out = tmpname()
    local stdout, _, _, code = run({}, "print(require('braid').trace.path() ~= nil)",
                                   {BRAID_TRACE = out})
    assert.equal("true\n", stdout)
    assert.equal(0, code)
    assert.is_true(events(out).n >= 1)
  end)

  it("BRAID_TRACE works under stock lua5.4 with braid.so", function()
    local dir = EXE:match("^(.*)/[^/]*$") or "."
    if not io.open(dir .. "/braid.so") or os.execute("LUA_CPATH=" .. quote(dir .. "/?.so") ..
        " lua5.4 -e 'require \"braid\"' >/dev/null 2>&1") ~= true then
      return -- no lua5.4 that loads braid.so from dir (a sanitizer build)
    end
    local out = tmpname()
    local ok = os.execute("env -u BRAID_TRACE_PARENT BRAID_TRACE=" .. quote(out) .. " LUA_CPATH=" ..
      quote(dir .. "/?.so") .. " lua5.4 -e " ..
      -- the thread's timed acquires fail (each a wait) until main sees one did
      quote("local t = require('braid.threading'); local l, tried = t.Lock{name='L'}, t.Event(); " ..
            "local th = t.Thread{target=function() " ..
            "while not l:acquire(true, 0.005) do tried:set() end l:release() end}; " ..
            "l:acquire(); th:start(); tried:wait(); l:release(); th:join()"))
    assert.is_true(ok)
    local evs = events(out)
    assert.is_true(#select_events(evs, function(e) return e.cat == "wait" and e.args.object == "L" end) >= 1)
  end)

  it("draws put->get arrows to the get that took the item in LifoQueue and PriorityQueue", function()
    local out = tmpname()
    local stdout, stderr, _, code = run({"--trace", out}, [[
local queue = require "braid.queue"
local lq, pq = queue.LifoQueue{name = "lq"}, queue.PriorityQueue{name = "pq"}
for _, v in ipairs{10, 20, 30} do lq:put(v) end
for _, v in ipairs{30, 10, 20} do pq:put(v) end
local got = {}
for _ = 1, 3 do got[#got + 1] = lq:get() end
for _ = 1, 3 do got[#got + 1] = pq:get() end
print(table.concat(got, " "))
]])
    assert.equal(0, code, stderr)
    assert.equal("30 20 10 10 20 30\n", stdout)
    local evs = events(out)
    assert.equal(6, check_flows(evs))
    local puts, gets = {}, {}
    for i = 1, evs.n do -- one thread: the file keeps the order of recording
      local e = evs[i]
      if e.ph == "s" then puts[#puts + 1] = e.id end
      if e.ph == "f" then gets[#gets + 1] = e.id end
    end
    -- LIFO takes puts 3, 2, 1; the heap takes 10 (put 2), 20 (put 3), 30 (put 1)
    assert.same({puts[3], puts[2], puts[1], puts[5], puts[6], puts[4]}, gets)
  end)

  it("throttles a queue's depth counter, and writes depth 0 when the queue empties", function()
    local out = tmpname()
    local _, stderr, _, code = run({"--trace", out}, [[
local queue = require "braid.queue"
local q = queue.Queue{name = "fast"}
for i = 1, 5000 do q:put(i) q:get() end
for i = 1, 2000 do q:put(i) end
for _ = 1, 2000 do q:get() end
]])
    assert.equal(0, code, stderr)
    local c = select_events(events(out), function(e) return e.ph == "C" and e.name == "queue fast" end)
    assert.is_true(#c >= 2)
    -- the file is not in time order (buffers spilled while recording are
    -- formatted at stop): sort by time, keeping the file order of a tie
    for i, e in ipairs(c) do e.seq = i end
    table.sort(c, function(a, b) return a.ts < b.ts or (a.ts == b.ts and a.seq < b.seq) end)
    -- at most one per 10 us, plus the return to 0 after each: whatever the speed
    -- (a fast machine records ~1 in 10 of the 14,000; under a sanitizer, more)
    local span = c[#c].ts - c[1].ts -- microseconds
    assert.is_true(#c <= 2 * (span / 10 + 1) + 1, #c .. " counters in " .. span .. " us")
    assert.equal(0, c[#c].args.depth) -- the last value is there
    local peak = 0
    for _, e in ipairs(c) do peak = math.max(peak, e.args.depth) end
    assert.is_true(peak > 0)
  end)

  it("keeps memory bounded: full buffers spill to the file while recording", function()
    local out = tmpname()
    local stdout, stderr, _, code = run({}, [[
local braid = require "braid"
local queue = require "braid.queue"
local q = queue.Queue{name = "q"}
local OUT = os.getenv("OUT")
braid.trace.start(OUT)
for i = 1, 40000 do q:put(i) q:get() end -- 2 flow events each (counters: throttled)
-- out of memory by now: the events formatted into the file, and the
-- records spilled unformatted (the flusher was behind) to OUT.<pid>.spill
local function count(path)
  local f = io.open(path, "rb")
  local _, n = f:read("a"):gsub("\n{", "")
  f:close()
  return n
end
local pid = io.open("/proc/self/stat"):read("n")
local n_spill, f = 0, io.open(OUT .. "." .. pid .. ".spill", "rb")
if f then
  local s, at = f:read("a"), 1
  f:close()
  while at + 16 <= #s + 1 do -- a half: magic, len, pid, tid, then its records
    local len = string.unpack("<I4", s, at + 4)
    at = at + 16
    local stop = at + len
    while at < stop do
      n_spill = n_spill + 1
      at = at + string.unpack("<I4", s, at) -- each record starts with its size
    end
  end
end
local out_now = count(OUT) + n_spill
braid.trace.stop()
print(out_now, count(OUT), io.open(OUT .. "." .. pid .. ".spill") == nil)
]], {BRAID_TRACE_BUFFER = "16384", OUT = out, BRAID_TRACE_ARROWS = "all"})
    assert.equal(0, code, stderr)
    local before, after, removed = stdout:match("(%d+)%s+(%d+)%s+(%a+)")
    before, after = tonumber(before), tonumber(after)
    assert.is_true(after > 80000)
    -- at most two buffers of 16 KiB (records of 32 bytes) were in memory
    assert.is_true(after - before <= 2 * 16384 // 32 + 4, before .. " " .. after)
    assert.equal("true", removed) -- stop removed the spill file
    check_flows(events(out))
  end)
end)

describe("the HTML view and asyncio task waits", function()
  it("counts a task's async wait slices in the most contended objects, not as thread time", function()
    local trace_html = require "braid.trace_html"
    local ev = {
      '{"ph":"M","name":"thread_name","pid":1,"tid":1,"args":{"name":"loop"}}',
      '{"ph":"X","cat":"task","name":"A","pid":1,"tid":1,"ts":0,"dur":10}',
      '{"ph":"X","cat":"task","name":"B","pid":1,"tid":1,"ts":20,"dur":10}',
      -- task A (track 7) waits 100 us on "db", B (track 8) 40 us on "db" and 30 us asleep;
      -- the waits overlap the thread's other slices and each other
      '{"ph":"b","cat":"asyncio","name":"A","pid":1,"tid":1,"ts":10,"id":7,"args":{"task":"A"}}',
      '{"ph":"b","cat":"asyncio","name":"Lock acquire","pid":1,"tid":1,"ts":10,"id":7,' ..
        '"args":{"object":"db","kind":"Lock","op":"acquire"}}',
      '{"ph":"b","cat":"asyncio","name":"B","pid":1,"tid":1,"ts":30,"id":8,"args":{"task":"B"}}',
      '{"ph":"b","cat":"asyncio","name":"Lock acquire","pid":1,"tid":1,"ts":30,"id":8,' ..
        '"args":{"object":"db","kind":"Lock","op":"acquire"}}',
      '{"ph":"e","cat":"asyncio","name":"Lock acquire","pid":1,"tid":1,"ts":70,"id":8,"args":{"outcome":"ok"}}',
      '{"ph":"b","cat":"asyncio","name":"sleep","pid":1,"tid":1,"ts":70,"id":8,' ..
        '"args":{"kind":"sleep","op":"sleep"}}',
      '{"ph":"e","cat":"asyncio","name":"sleep","pid":1,"tid":1,"ts":100,"id":8,"args":{"outcome":"ok"}}',
      '{"ph":"e","cat":"asyncio","name":"Lock acquire","pid":1,"tid":1,"ts":110,"id":7,"args":{"outcome":"ok"}}',
      '{"ph":"e","cat":"asyncio","name":"B","pid":1,"tid":1,"ts":120,"id":8}',
      '{"ph":"e","cat":"asyncio","name":"A","pid":1,"tid":1,"ts":120,"id":7}',
    }
    local html, m = trace_html.convert("[" .. table.concat(ev, ",\n") .. "]")
    assert.equal(0, m.ignored)
    assert.equal(3, m.async_waits)
    assert.same({"db", "Lock", 2, 140, 100}, {m.contended[1].object, m.contended[1].kind,
      m.contended[1].count, m.contended[1].total, m.contended[1].max})
    assert.same({"sleep", 1, 30}, {m.contended[2].object, m.contended[2].count, m.contended[2].total})
    assert.equal(0, m.thread_list[1].wait_us) -- a task's wait does not block its thread
    assert.matches('<tr class="contended" data%-rank="1" data%-object="db" data%-kind="Lock" data%-count="2"', html)
    assert.matches('data%-task%-waits="3"', html)
  end)
end)
