-- The live dump (braid.dump, kill -QUIT, --dump-on-timeout, BRAID_DUMP_AFTER),
-- each run in a child process: $BRAID_EXE (default build/braid), and stock
-- lua5.4 with the braid.so beside it when there is one.

local files = require "spec.support.files"
local EXE, quote, tmpname = files.EXE, files.quote, files.tmpname
local writefile, readfile = files.writefile, files.readfile
local SO_DIR = EXE:match("^(.*)/[^/]*$") or "."

-- Whether stock lua5.4 can load the braid.so beside $BRAID_EXE (not one
-- built with a sanitizer runtime).
local function have_stock()
  return os.execute("LUA_CPATH=" .. quote(SO_DIR .. "/?.so") ..
    " lua5.4 -e 'require \"braid\"' >/dev/null 2>&1")
end

-- Runs `script` (text) with args; the child's stderr goes to a file whose
-- path is also passed as the last argument. opts.stock: run under lua5.4 +
-- braid.so; opts.env: NAME=value pairs; opts.pre: options before the script.
-- Returns stdout, stderr, exit status; checks the child's pid (its first
-- output line, "pid N") is gone.
local function run(script, args, opts)
  opts = opts or {}
  local path = writefile(tmpname(), script)
  local out, err = tmpname(), tmpname()
  local cmd = { "env", "-u", "LUA_INIT", "-u", "LUA_INIT_5_4" }
  for k, v in pairs(opts.env or {}) do cmd[#cmd + 1] = quote(k .. "=" .. v) end
  if opts.stock then
    cmd[#cmd + 1] = quote("LUA_CPATH=" .. SO_DIR .. "/?.so;;")
    cmd[#cmd + 1] = "lua5.4"
  else
    cmd[#cmd + 1] = quote(EXE)
  end
  for _, a in ipairs(opts.pre or {}) do cmd[#cmd + 1] = quote(a) end
  cmd[#cmd + 1] = quote(path)
  for _, a in ipairs(args or {}) do cmd[#cmd + 1] = quote(a) end
  cmd[#cmd + 1] = quote(err)
  cmd[#cmd + 1] = "</dev/null >" .. quote(out) .. " 2>" .. quote(err)
  local line = table.concat(cmd, " ")
  if opts.quit then -- in the background; SIGQUIT once it printed "ready"
    line = line .. " & p=$!; i=0; while ! grep -q ready " .. quote(out) ..
      " && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done; kill -QUIT $p; wait $p"
  end
  local ok, how, code = os.execute(line)
  assert(how == "exit", "killed by signal " .. tostring(code))
  local o = readfile(out)
  local pid = o:match("^pid (%d+)\n")
  if pid then
    assert.is_falsy(os.execute("kill -0 " .. pid .. " 2>/dev/null"), "process " .. pid .. " left")
  end
  return o, readfile(err), code
end

-- The sections of the last dump in err: thread name -> its text.
local function threads_of(err)
  local last
  for d in err:gmatch("==== braid dump.-==== end of braid dump ====") do last = d end
  assert.is_truthy(last, "no complete dump in:\n" .. err)
  local t, cur = {}, nil
  for line in last:gmatch("[^\n]*") do
    local name = line:match('^Thread "([^"]*)"')
    if name then
      cur = name
      t[cur] = line
    elseif line:match("^Executor ") or line:match("^====") then
      cur = nil
    elseif cur then
      t[cur] = t[cur] .. "\n" .. line
    end
  end
  return t, last
end

-- Two threads take two named locks in opposite order and deadlock; the main
-- thread then dumps as arg[1] says: "dump" (braid.dump), "quit" (kill -QUIT
-- itself), "wait" (a timer does it). It waits for the dump to be written
-- (its stderr file is the last argument) and exits; the threads are daemons.
-- It prints "ready" once the threads are stuck.
local DEADLOCK = [==[
local braid = require "braid"
local threading = braid.threading
local mode, errfile = arg[1], arg[#arg]
local f = io.open("/proc/self/stat")
local pid = f:read("n")
f:close()
print("pid " .. pid)
io.stdout:flush()
local accounts = threading.Lock{name = "accounts"}
local ledger = threading.Lock{name = "ledger"}
local both = threading.Barrier(2)
function transfer(from, to)
  from:acquire()
  both:wait()
  to:acquire()
end
function audit(first, second)
  first:acquire()
  both:wait()
  second:acquire()
end
local t1 = threading.Thread{name = "transfer-thread", daemon = true,
  target = function() transfer(accounts, ledger) end}
local t2 = threading.Thread{name = "audit-thread", daemon = true,
  target = function() audit(ledger, accounts) end}
t1:start()
t2:start()
assert(not t1:join(0.5) and t1:is_alive() and t2:is_alive())
local function dumped()
  local f = io.open(errfile)
  local s = f and f:read("a") or ""
  if f then f:close() end
  return s:find("==== end of braid dump ====", 1, true)
end
if mode == "dump" then
  braid.dump()
end
print("ready")
io.stdout:flush()
local deadline = braid.monotonic() + 30
while not dumped() and braid.monotonic() < deadline do braid.sleep(0.01) end
print("carried on")
]==]

local function check_deadlock(out, err, code)
  assert.equal(0, code, err)
  assert.matches("ready\ncarried on\n$", out)
  local t = threads_of(err)
  local tr, au = t["transfer-thread"], t["audit-thread"]
  assert.is_truthy(tr, err)
  assert.is_truthy(au, err)
  assert.matches("in function 'transfer'", tr)
  assert.matches("in function 'audit'", au)
  assert.matches('Lock "ledger"', tr)
  assert.matches('Lock "accounts"', au)
  assert.matches("acquire", tr)
  assert.matches("no timeout", tr)
  assert.matches("native id %d+", tr)
  assert.is_truthy(t.MainThread, err)
end

describe("live dump", function()
  after_each(files.remove_tmpfiles)

  describe("of a deadlock", function()
    it("braid.dump() names both threads, both locks and their functions", function()
      check_deadlock(run(DEADLOCK, { "dump" }))
    end)

    it("kill -QUIT prints the same and the program goes on", function()
      check_deadlock(run(DEADLOCK, { "quit" }, { quit = true }))
    end)

    it("--dump-on-timeout dumps once after that long", function()
      local out, err, code = run(DEADLOCK, { "wait" }, { pre = { "--dump-on-timeout", "0.7" } })
      check_deadlock(out, err, code)
      local _, n = err:gsub("==== end of braid dump ====", "")
      assert.equal(1, n)
    end)

    it("BRAID_DUMP_AFTER does the same", function()
      check_deadlock(run(DEADLOCK, { "wait" }, { env = { BRAID_DUMP_AFTER = "0.7" } }))
    end)

    it("works under stock lua5.4 + braid.so (braid.dump, BRAID_DUMP_AFTER)", function()
      if not have_stock() then return pending("no lua5.4 or braid.so") end
      check_deadlock(run(DEADLOCK, { "dump" }, { stock = true }))
      check_deadlock(run(DEADLOCK, { "wait" }, { stock = true, env = { BRAID_DUMP_AFTER = "0.7" } }))
    end)
  end)

  it("a program that ends first is not dumped", function()
    local out, err, code = run('print("quick")', {}, { pre = { "--dump-on-timeout", "30" } })
    assert.equal(0, code)
    assert.equal("quick\n", out)
    assert.equal("", err)
  end)

  it("--dump-on-timeout needs a number", function()
    local _, err, code = run("print(1)", {}, { pre = { "--dump-on-timeout", "soon" } })
    assert.equal(1, code)
    assert.matches("needs a number of seconds", err)
  end)

  it("shows a thread running Lua code at its next instruction, and cancel still stops it", function()
    local out, err, code = run([==[
local braid = require "braid"
local threading = braid.threading
local started = threading.Event()
function spin()
  started:set()
  local x = 0
  while true do x = x + 1 end
end
local t = threading.Thread{name = "spinner", target = function() spin() end}
t:start()
started:wait()
for _ = 1, 5 do braid.dump() end
t:cancel()
print("joined", t:join(10) == nil and not t:is_alive())
]==])
    assert.equal(0, code, err)
    assert.equal("joined\ttrue\n", out)
    local th = threads_of(err)
    assert.matches("^[^\n]*: running\n", th.spinner)
    assert.matches("in function 'spin'", th.spinner)
  end)

  it("shows executors: each worker's job and wait, the queued jobs, idle workers", function()
    local out, err, code = run([==[
local braid = require "braid"
local threading, futures = braid.threading, braid.futures
local gate, started = threading.Event{name = "gate"}, threading.Event()
local ex = futures.ThreadPoolExecutor{max_workers = 1, name = "jobs"}
local function blocked_job() started:set() gate:wait() return 1 end
local function queued_job() return 2 end
local f = ex:submit(blocked_job)
local q = {}
for i = 1, 3 do q[i] = ex:submit(queued_job) end
started:wait()
for _ = 1, 5 do -- the job may still be between started:set() and gate:wait()
  braid.dump()
  braid.sleep(0.05)
end
gate:set()
local s = f:result()
for i = 1, 3 do s = s + q[i]:result() end
braid.dump()
ex:shutdown()
print("sum", s)
]==])
    assert.equal(0, code, err)
    assert.equal("sum\t7\n", out)
    local dumps = {}
    for d in err:gmatch("==== braid dump.-==== end of braid dump ====") do dumps[#dumps + 1] = d end
    assert.equal(6, #dumps)
    local first, second = dumps[5], dumps[6]
    assert.matches('Executor "jobs" %(max_workers 1, 1 thread, 1 busy, 3 queued%)', first)
    assert.matches("worker [^\n]*: blocked in job [^\n]+:5: on Event \"gate\" in wait for [%d.]+ s, no timeout", first)
    local _, nq = first:gsub("\n    [^\n]+:6", "")
    assert.equal(3, nq)
    assert.matches("worker [^\n]*: idle in pool", second)
  end)

  it("from inside an asyncio task: the traceback goes through the task into the loop", function()
    local out, err, code = run([==[
local braid = require "braid"
local asyncio = braid.asyncio
function napper() asyncio.sleep(30) end
function reporter()
  asyncio.sleep(0)
  braid.dump()
end
asyncio.run(function()
  local t = asyncio.create_task(napper)
  asyncio.await(asyncio.create_task(reporter))
  t:cancel()
end)
print("done")
]==])
    assert.equal(0, code, err)
    assert.equal("done\n", out)
    local main = threads_of(err).MainThread
    assert.matches(":6: in local 'fn'\n.*in field 'run'\n[^\n]*:8: in main chunk", main)
    assert.matches("asyncio loop: 3 tasks", main)
    assert.matches("Task 'Task%-3' %(id 3%) running", main)
    assert.matches("Task 'Task%-2' %(id 2%) in sleep for [%d.]+ s\n[^\n]*\n[^\n]*asyncio.sleep'\n[^\n]*in function 'napper'", main)
    assert.matches("Task 'Task%-1' %(id 1%) waiting on Task 'Task%-3' in await for [%d.]+ s\n", main)
  end)

  -- 8 threads (queues, a lock, an event, sleeps) and 100 asyncio tasks
  -- (asyncio queue, lock, sleeps) in a loop thread, while the main thread
  -- dumps arg[1] times: the results must not change.
  local BUSY = [==[
local braid = require "braid"
local threading, queue = braid.threading, braid.queue
local ndumps = tonumber(arg[1])
local N = 400
local q, sums = queue.Queue(8), queue.Queue()
local go, lock = threading.Event(), threading.Lock()
local loop_started, release = threading.Event(), threading.Event()
local threads = {}
for p = 1, 4 do
  threads[#threads + 1] = threading.Thread{name = "producer-" .. p, target = function()
    go:wait()
    for i = 1, N do
      q:put(i)
      if i % 50 == 0 then braid.sleep(0.002) end
    end
  end}
end
for c = 1, 4 do
  threads[#threads + 1] = threading.Thread{name = "consumer-" .. c, target = function()
    go:wait()
    local s = 0
    while true do
      local v = q:get()
      if v == false then break end
      lock:acquire()
      s = s + v
      lock:release()
    end
    sums:put(s)
  end}
end
local loop = threading.Thread{name = "loop", target = function(n)
  local asyncio = require "braid.asyncio"
  return asyncio.run(function()
    local aq, alock, total = asyncio.Queue(), asyncio.Lock(), 0
    local function worker(i)
      for k = 1, 5 do
        aq:put(i * k)
        asyncio.sleep(0.001 * (i % 3))
        local v = aq:get()
        alock:acquire()
        total = total + v
        alock:release()
      end
      return i
    end
    local ts = {}
    for i = 1, n do ts[i] = asyncio.create_task(worker, i) end
    loop_started:set()
    local r = asyncio.gather(table.unpack(ts))
    release:wait() -- suspends this task until the dumps are done
    local s = 0
    for _, v in ipairs(r) do s = s + v end
    return total, s
  end)
end, args = {100}}
for _, t in ipairs(threads) do t:start() end
loop:start()
go:set()
loop_started:wait()
for _ = 1, ndumps do
  braid.dump()
  braid.sleep(0.005)
end
release:set()
for p = 1, 4 do threads[p]:join() end
for _ = 1, 4 do q:put(false) end
local total = 0
for _ = 1, 4 do total = total + sums:get() end
for _, t in ipairs(threads) do t:join() end
local atotal, acount = loop:result()
print(("threads %d tasks %d %d"):format(total, atotal, acount))
]==]

  it("a dump while 100 tasks and 8 threads are busy loses no work", function()
    local expected = ("threads %d tasks %d %d\n"):format(4 * 400 * 401 // 2, 15 * 100 * 101 // 2,
      100 * 101 // 2)
    local out0, err0, code0 = run(BUSY, { "0" })
    assert.equal(0, code0, err0)
    assert.equal(expected, out0)
    local out, err, code = run(BUSY, { "25" })
    assert.equal(0, code, err)
    assert.equal(expected, out)
    local _, n = err:gsub("==== end of braid dump ====", "")
    assert.equal(25, n)
    assert.matches('Thread "consumer%-1"', err)
    assert.matches("asyncio loop: %d+ task", err)
    assert.matches("Task 'Task%-%d+'", err)
  end)

  -- Threads parked on an event with a timeout, on an event set late and on
  -- a queue fed by the main thread, while another thread dumps again and
  -- again: each keeps its deadline and gets its real wake-ups.
  local PARKED = [==[
local braid = require "braid"
local threading, queue = braid.threading, braid.queue
local never, late, stop = threading.Event(), threading.Event(), threading.Event()
local q, out = queue.Queue(), queue.Queue()
local M = 300
local ts = {
  threading.Thread{name = "timed", target = function()
    local t0 = braid.monotonic()
    local r = never:wait(1.0)
    out:put{"timed", r, braid.monotonic() - t0}
  end},
  threading.Thread{name = "late", target = function() out:put{"late", late:wait()} end},
  threading.Thread{name = "getter", target = function()
    local s = 0
    for _ = 1, M do s = s + q:get(true, 20) end
    out:put{"getter", s}
  end},
}
for _, t in ipairs(ts) do t:start() end
local dumper = threading.Thread{name = "dumper", target = function()
  local n = 0
  while not stop:is_set() do
    braid.dump()
    n = n + 1
    braid.sleep(0.003)
  end
  return n
end}
dumper:start()
for i = 1, M do
  q:put(i)
  if i % 10 == 0 then braid.sleep(0.002) end
end
ts[1]:join()
late:set()
for _, t in ipairs(ts) do t:join() end
stop:set()
local n = dumper:result()
local r = {}
for _ = 1, 3 do
  local v = out:get()
  r[v[1]] = v
end
print("timed", r.timed[2], r.timed[3] >= 1.0, r.timed[3] < 2.5)
print("late", r.late[2])
print("getter", r.getter[2])
print("dumps", n > 3)
]==]

  it("a parked thread woken by a dump keeps its wake-ups and its timeout", function()
    local out, err, code = run(PARKED)
    assert.equal(0, code, err)
    assert.equal("timed\tfalse\ttrue\ttrue\nlate\ttrue\ngetter\t" .. (300 * 301 // 2) .. "\ndumps\ttrue\n", out)
    assert.matches('Thread "getter"', err)
  end)
end)
