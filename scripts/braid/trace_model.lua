-- braid.trace_model: a Chrome trace's events gathered into what the HTML
-- view draws and summarises. new() gives a model, model:add(event) takes
-- the events one at a time (braid.trace_json.each_event feeds it), and
-- model:finish() lays the slices out in rows and computes the summary.
-- Times stay in the file's microseconds; slices are columns of plain
-- arrays (ts, dur, kind) so a million of them stay small.
local M = ...

local sort = table.sort
local Model = {}
Model.__index = Model

local function intern(pool, s)
  local id = pool.index[s]
  if not id then
    id = #pool + 1
    pool[id] = s
    pool.index[s] = id
  end
  return id
end

local function scalar_text(v)
  if type(v) == "table" then
    local parts = {}
    for k, x in pairs(v) do parts[#parts + 1] = tostring(k) .. ":" .. scalar_text(x) end
    sort(parts)
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return tostring(v)
end

-- An event's args as one canonical line per key ("key=value"), sorted.
local function args_text(args)
  if type(args) ~= "table" then return "" end
  local k1, v1 = next(args)
  if k1 == nil then return "" end
  if next(args, k1) == nil then return tostring(k1) .. "=" .. scalar_text(v1) end
  local keys = {}
  for k in pairs(args) do keys[#keys + 1] = tostring(k) end
  sort(keys)
  for n, k in ipairs(keys) do keys[n] = k .. "=" .. scalar_text(args[k]) end
  return table.concat(keys, "\n")
end

function M.new()
  return setmetatable({
    strings = { index = {} }, -- names, cats and args texts
    kinds = { index = {} }, -- "name\0cat\0args" -> {name id, cat id, args id}
    procs = {}, -- pid -> {pid, name, threads = {tid -> thread}, counters}
    flows = {}, -- id key -> {from = {thread, ts}, to = {...}, kind}
    flow_list = {},
    waits = {}, -- object label -> {kind, count, total, max, timeouts}
    async_open = {}, -- "pid\0cat\0id" -> stack of open async slices {ts, name, args}
    async_waits = 0, -- asyncio task waits counted in waits
    executor_jobs = {}, -- executor label -> {tids set, n, total, first, last}
    t0 = math.huge,
    t1 = -math.huge,
    events = 0,
    ignored = 0,
  }, Model)
end

-- The id of a (name, cat, args text) triple; index[name][cat][args].
local function kind_id(self, name, cat, args)
  local by_name = self.kinds.index[name]
  if not by_name then
    by_name = {}
    self.kinds.index[name] = by_name
  end
  local by_cat = by_name[cat]
  if not by_cat then
    by_cat = {}
    by_name[cat] = by_cat
  end
  local id = by_cat[args]
  if not id then
    id = #self.kinds + 1
    self.kinds[id] = { intern(self.strings, name), intern(self.strings, cat), intern(self.strings, args) }
    by_cat[args] = id
  end
  return id
end

local function get_proc(self, pid)
  local p = self.procs[pid]
  if not p then
    p = { pid = pid, threads = {}, counters = {} }
    self.procs[pid] = p
  end
  return p
end

local function get_thread(self, pid, tid)
  local p = get_proc(self, pid)
  local t = p.threads[tid]
  if not t then
    t = {
      pid = pid, tid = tid, ts = {}, dur = {}, kind = {}, n = 0,
      its = {}, ikind = {}, ni = 0, open = {}, first = math.huge, last = -math.huge,
    }
    p.threads[tid] = t
  end
  return t
end

local function span(self, t, ts, e)
  if ts < t.first then t.first = ts end
  if e > t.last then t.last = e end
  if ts < self.t0 then self.t0 = ts end
  if e > self.t1 then self.t1 = e end
end

-- One wait on an object (a thread's wait slice, a task's async wait).
local function add_wait(self, name, dur, a, outcome)
  local obj = tostring(a.object or name)
  local w = self.waits[obj]
  if not w then
    w = { object = obj, kind = tostring(a.kind or ""), count = 0, total = 0, max = 0, timeouts = 0 }
    self.waits[obj] = w
  end
  w.count = w.count + 1
  w.total = w.total + dur
  if dur > w.max then w.max = dur end
  if outcome == "timeout" then w.timeouts = w.timeouts + 1 end
end

local function add_slice(self, t, ts, dur, name, cat, args)
  if dur < 0 then dur = 0 end
  local n = t.n + 1
  t.n = n
  t.ts[n], t.dur[n] = ts, dur
  t.kind[n] = kind_id(self, name, cat, args_text(args))
  span(self, t, ts, ts + dur)
  if cat == "wait" then
    local a = type(args) == "table" and args or {}
    add_wait(self, name, dur, a, a.outcome)
  elseif cat == "job" and type(args) == "table" and args.executor ~= nil then
    local label = tostring(args.executor)
    local x = self.executor_jobs[label]
    if not x then
      x = { tids = {}, workers = 0, n = 0, total = 0, first = math.huge, last = -math.huge }
      self.executor_jobs[label] = x
    end
    if not x.tids[t] then
      x.tids[t] = true
      x.workers = x.workers + 1
    end
    x.n, x.total = x.n + 1, x.total + dur
    if ts < x.first then x.first = ts end
    if ts + dur > x.last then x.last = ts + dur end
  end
end

local function add_flow(self, ev, t, ts)
  local key = tostring(ev.cat) .. "\0" .. tostring(ev.id or ev.id2 or ev.bind_id)
  local ph = ev.ph
  if ph == "s" then
    self.flows[key] = { t = t, ts = ts, name = tostring(ev.name or "flow"), cat = tostring(ev.cat or "flow") }
    return
  end
  local from = self.flows[key]
  if not from then return end
  local f = self.flow_list
  f[#f + 1] = { from.t, from.ts, t, ts, kind_id(self, from.name, from.cat, "") }
  if ph == "f" then
    self.flows[key] = nil
  else -- "t": a step continues the flow from here
    self.flows[key] = { t = t, ts = ts, name = from.name, cat = from.cat }
  end
end

-- Nestable async events ("b" / "e"), paired per (pid, cat, id): an ended
-- slice whose args name an operation (an asyncio task's wait: args object,
-- kind, op) counts as a wait on its object; the rest is not drawn.
local function add_async(self, ev, pid, ts, name, cat)
  local key = tostring(pid) .. "\0" .. cat .. "\0" .. tostring(ev.id or (type(ev.id2) == "table" and
    (ev.id2["local"] or ev.id2.global)) or "")
  local open = self.async_open[key]
  if ev.ph == "b" then
    if not open then
      open = {}
      self.async_open[key] = open
    end
    open[#open + 1] = { ts, name, type(ev.args) == "table" and ev.args or {} }
    return
  end
  local b = open and table.remove(open)
  if not b then return end
  if #open == 0 then self.async_open[key] = nil end
  local a = b[3]
  if a.op ~= nil then
    local e = type(ev.args) == "table" and ev.args or {}
    add_wait(self, b[2], math.max(0, ts - b[1]), a, e.outcome or a.outcome)
    self.async_waits = self.async_waits + 1
  end
end

local function add_counter(self, p, ts, name, args)
  if type(args) ~= "table" then return end
  local c = p.counters[name]
  if not c then
    c = { name = name, ts = {}, values = {}, n = 0 }
    p.counters[name] = c
  end
  local n = c.n + 1
  c.n = n
  c.ts[n] = ts
  for k, v in pairs(args) do
    if type(v) == "number" then
      local col = c.values[k]
      if not col then
        col = {}
        for i = 1, n - 1 do col[i] = 0 end
        c.values[k] = col
      end
      col[n] = v
    end
  end
  for _, col in pairs(c.values) do
    if col[n] == nil then col[n] = col[n - 1] or 0 end
  end
  if ts < self.t0 then self.t0 = ts end
  if ts > self.t1 then self.t1 = ts end
end

-- Takes one decoded event; ignores (and counts) what it cannot use.
local function add(self, ev)
  self.events = self.events + 1
  if type(ev) ~= "table" then
    self.ignored = self.ignored + 1
    return
  end
  local ph, pid, tid, ts = ev.ph, ev.pid, ev.tid, ev.ts
  if pid == nil then pid = 0 end
  if tid == nil then tid = pid end
  if ph == "M" then
    local name = type(ev.args) == "table" and ev.args.name
    if name == nil then return end
    if ev.name == "process_name" then
      get_proc(self, pid).name = tostring(name)
    elseif ev.name == "thread_name" then
      get_thread(self, pid, tid).name = tostring(name)
    end
    return
  end
  if type(ts) ~= "number" then
    self.ignored = self.ignored + 1
    return
  end
  local name, cat = tostring(ev.name or "?"), tostring(ev.cat or "")
  if ph == "X" then
    add_slice(self, get_thread(self, pid, tid), ts, tonumber(ev.dur) or 0, name, cat, ev.args)
  elseif ph == "B" then
    local t = get_thread(self, pid, tid)
    t.open[#t.open + 1] = { ts, name, cat, ev.args }
  elseif ph == "E" then
    local t = get_thread(self, pid, tid)
    local b = table.remove(t.open)
    if b then add_slice(self, t, b[1], ts - b[1], b[2], b[3], b[4]) end
  elseif ph == "i" or ph == "I" then
    local t = get_thread(self, pid, tid)
    local n = t.ni + 1
    t.ni = n
    t.its[n], t.ikind[n] = ts, kind_id(self, name, cat, args_text(ev.args))
    span(self, t, ts, ts)
  elseif ph == "s" or ph == "t" or ph == "f" then
    add_flow(self, ev, get_thread(self, pid, tid), ts)
  elseif ph == "C" then
    add_counter(self, get_proc(self, pid), ts, name, ev.args)
  elseif ph == "b" or ph == "e" then
    add_async(self, ev, pid, ts, name, cat)
  else
    self.ignored = self.ignored + 1
  end
end

-- ---- finishing: rows, sorted tracks, summary ----

-- Sorts intervals {a, b} and merges overlaps: a sorted disjoint list.
local function union(list)
  sort(list, function(x, y) return x[1] < y[1] end)
  local out = {}
  for _, iv in ipairs(list) do
    local last = out[#out]
    if last and iv[1] <= last[2] then
      if iv[2] > last[2] then last[2] = iv[2] end
    else
      out[#out + 1] = { iv[1], iv[2] }
    end
  end
  return out
end

local function total(list)
  local s = 0
  for _, iv in ipairs(list) do s = s + iv[2] - iv[1] end
  return s
end

-- The intersection of two sorted disjoint lists.
local function intersect(a, b)
  local out, i, j = {}, 1, 1
  while i <= #a and j <= #b do
    local lo = math.max(a[i][1], b[j][1])
    local hi = math.min(a[i][2], b[j][2])
    if lo < hi then out[#out + 1] = { lo, hi } end
    if a[i][2] < b[j][2] then i = i + 1 else j = j + 1 end
  end
  return out
end

-- Lays a thread's slices out in nesting rows: row r holds the slices r
-- deep, each row sorted by start. Also computes the busy/waiting/idle split.
local function finish_thread(self, t)
  local ts, dur, kind, kinds, strings = t.ts, t.dur, t.kind, self.kinds, self.strings
  local order = {}
  for i = 1, t.n do order[i] = i end
  sort(order, function(a, b)
    local x, y = ts[a], ts[b]
    if x ~= y then return x < y end
    if dur[a] ~= dur[b] then return dur[a] > dur[b] end
    return a < b
  end)
  local rows, stack = {}, {}
  local run, work, waits, other = {}, {}, {}, {}
  for _, i in ipairs(order) do
    local s, e = ts[i], ts[i] + dur[i]
    -- a slice ending where the next starts (to the nanosecond) is its sibling
    while #stack > 0 and stack[#stack] <= s + 1e-3 do stack[#stack] = nil end
    local depth = #stack + 1
    stack[depth] = e
    local row = rows[depth]
    if not row then
      row = { ts = {}, dur = {}, kind = {}, n = 0 }
      rows[depth] = row
    end
    local n = row.n + 1
    row.n = n
    row.ts[n], row.dur[n], row.kind[n] = s, dur[i], kind[i]
    local cat = strings[kinds[kind[i]][2]]
    local iv = { s, e }
    if cat == "thread" then
      run[#run + 1] = iv
    elseif cat == "job" or cat == "task" then
      work[#work + 1] = iv
    elseif cat == "wait" then
      waits[#waits + 1] = iv
    else
      other[#other + 1] = iv
    end
  end
  t.rows = rows
  t.ts, t.dur, t.kind = nil, nil, nil
  -- the run: the thread's slices, else everything it recorded
  run = union(run)
  local has_thread = #run > 0
  if not has_thread and t.last >= t.first then run = { { t.first, t.last } } end
  if #work == 0 then work = has_thread and run or union(other) end
  if #work == 0 then work = run end -- only waits recorded: all else is work
  waits = intersect(union(waits), run)
  local wait_us = total(waits)
  -- busy: work inside the run, minus the waits inside it
  local busy_us = total(intersect(union(work), run)) - total(intersect(intersect(union(work), run), waits))
  local run_us = total(run)
  t.run_us, t.busy_us, t.wait_us = run_us, busy_us, wait_us
  t.idle_us = math.max(0, run_us - busy_us - wait_us)
end

local function tidkey(x) return type(x) == "number" and x or math.huge end

-- Executor utilisation from its "executor <label>" counter: the time-weighted
-- mean of running over the samples' span, over the number of workers.
local function counter_mean(c, key)
  local ts, v = c.ts, c.values[key]
  if not v or c.n == 0 then return nil end
  if c.n == 1 or ts[c.n] <= ts[1] then return v[c.n] end
  local area = 0
  for i = 1, c.n - 1 do area = area + v[i] * (ts[i + 1] - ts[i]) end
  return area / (ts[c.n] - ts[1])
end

local function colmax(col)
  local m = 0
  for _, x in ipairs(col or {}) do if x > m then m = x end end
  return m
end

local function finish(self)
  if self.t0 == math.huge then self.t0, self.t1 = 0, 0 end
  local procs = {}
  for _, p in pairs(self.procs) do procs[#procs + 1] = p end
  sort(procs, function(a, b)
    if tidkey(a.pid) ~= tidkey(b.pid) then return tidkey(a.pid) < tidkey(b.pid) end
    return tostring(a.pid) < tostring(b.pid)
  end)
  local threads, queues, executors = {}, {}, {}
  for _, p in ipairs(procs) do
    p.name = p.name or ("process " .. tostring(p.pid))
    local list = {}
    for _, t in pairs(p.threads) do
      t.name = t.name or ("thread " .. tostring(t.tid))
      finish_thread(self, t)
      list[#list + 1] = t
    end
    sort(list, function(a, b)
      local am, bm = a.tid == p.pid, b.tid == p.pid -- the main thread first
      if am ~= bm then return am end
      if a.first ~= b.first then return a.first < b.first end
      return tostring(a.tid) < tostring(b.tid)
    end)
    p.list = list
    for _, t in ipairs(list) do
      threads[#threads + 1] = t
      t.index = #threads
    end
    local cl = {}
    for name, c in pairs(p.counters) do
      cl[#cl + 1] = c
      local q = name:match("^queue (.*)$")
      local x = name:match("^executor (.*)$")
      if q then
        local peak = colmax(c.values.depth)
        queues[q] = math.max(queues[q] or 0, peak)
      elseif x then
        executors[x] = executors[x] or { name = x }
        local e = executors[x]
        e.mean_running = counter_mean(c, "running")
        e.peak_running = colmax(c.values.running)
        e.peak_queued = colmax(c.values.queued)
        e.counter_workers = c.values.workers and colmax(c.values.workers) or nil
      end
    end
    sort(cl, function(a, b) return a.name < b.name end)
    p.counter_list = cl
  end
  self.proc_list, self.thread_list = procs, threads
  -- executors: workers are those declared, else the threads seen running jobs
  for label, j in pairs(self.executor_jobs) do
    executors[label] = executors[label] or { name = label }
    local e = executors[label]
    e.jobs, e.job_us = j.n, j.total
    e.job_workers = j.workers
    if not e.mean_running and j.last > j.first then e.mean_running = j.total / (j.last - j.first) end
  end
  local exlist = {}
  for _, e in pairs(executors) do
    e.workers = e.counter_workers or e.job_workers or e.peak_running or 0
    if e.workers == 0 then e.workers = e.peak_running or 0 end
    e.jobs, e.job_us = e.jobs or 0, e.job_us or 0
    e.mean_running = e.mean_running or 0
    e.utilisation = e.workers > 0 and e.mean_running / e.workers or 0
    exlist[#exlist + 1] = e
  end
  sort(exlist, function(a, b) return a.name < b.name end)
  local qlist = {}
  for name, peak in pairs(queues) do qlist[#qlist + 1] = { name = name, peak = peak } end
  sort(qlist, function(a, b) return a.name < b.name end)
  local wl = {}
  for _, w in pairs(self.waits) do wl[#wl + 1] = w end
  sort(wl, function(a, b)
    if a.total ~= b.total then return a.total > b.total end
    return a.object < b.object
  end)
  self.contended = { table.unpack(wl, 1, math.min(5, #wl)) }
  self.wait_objects = #wl
  self.queue_list, self.executor_list = qlist, exlist
  self.flows, self.async_open = nil, nil
  return self
end

Model.add, Model.finish = add, finish
return M
