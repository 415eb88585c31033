-- braid --trace-html: the trace decoder, the converter's summary numbers
-- (checked against a brute-force count over the fixture, microsecond by
-- microsecond), the command line, and the page itself opened in headless
-- Chromium: a track per thread, the summary in the DOM, no network.
require("braid")
local json = require("braid.trace_json")
local trace_html = require("braid.trace_html")

local EXE = os.getenv("BRAID_EXE") or "build/braid"
local fmt = string.format

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function readfile(name)
  local f = assert(io.open(name, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
local function writefile(name, text)
  local f = assert(io.open(name, "wb"))
  f:write(text)
  f:close()
  return name
end
local tmpfiles = {}
local function tmpname(suffix)
  local n = os.tmpname()
  tmpfiles[#tmpfiles + 1] = n
  if suffix then
    n = n .. suffix
    tmpfiles[#tmpfiles + 1] = n
  end
  return n
end

-- ---- the fixture: 3 threads of one process, waits on a labelled lock, a
-- queue counter, an executor's counter, flows, instants, a B/E pair ----
local PID = 100
local THREADS = {
  { tid = 100, name = "MainThread", run = { 0, 10000 }, jobs = {}, waits = {
    { 8000, 9500, "Thread", "join", "worker-1" }, { 2000, 2600, "Queue", "put", "jobs" } } },
  { tid = 101, name = "worker-1", run = { 500, 9000 }, jobs = { { 1000, 3000 }, { 3500, 6000 }, { 6500, 8500 } },
    waits = { { 1500, 2000, "Lock", "acquire", "db" }, { 4000, 5200, "Lock", "acquire", "db", "timeout" },
      { 7000, 7300, "Queue", "get", "jobs" } } },
  { tid = 102, name = "worker-2", run = { 600, 9200 }, jobs = { { 1200, 2500 }, { 2600, 7000 } },
    waits = { { 2000, 3000, "Lock", "acquire", "db" }, { 5000, 5600, "Lock", "acquire", "db" },
      { 6000, 6200, "Semaphore", "acquire", "sem" } } },
}
local QUEUE = { { 0, 0 }, { 2000, 3 }, { 2600, 5 }, { 7300, 2 }, { 9000, 0 } }

local function fixture_events()
  local ev = {}
  local function add(s) ev[#ev + 1] = s end
  add(fmt('{"ph":"M","pid":%d,"tid":%d,"name":"process_name","args":{"name":"fixture.lua"}}', PID, PID))
  local marks = {} -- executor counter from the jobs: {ts, +1/-1}
  for _, t in ipairs(THREADS) do
    add(fmt('{"ph":"M","pid":%d,"tid":%d,"name":"thread_name","args":{"name":"%s"}}', PID, t.tid, t.name))
    add(fmt('{"ph":"X","pid":%d,"tid":%d,"ts":%d,"dur":%d,"name":"%s","cat":"thread"}', PID, t.tid, t.run[1],
      t.run[2] - t.run[1], t.name))
    for _, j in ipairs(t.jobs) do
      add(fmt('{"ph":"X","pid":%d,"tid":%d,"ts":%d.000,"dur":%.3f,"name":"job.lua:7","cat":"job","args":{"executor":"pool"}}',
        PID, t.tid, j[1], j[2] - j[1]))
      marks[#marks + 1] = { j[1], 1 }
      marks[#marks + 1] = { j[2], -1 }
    end
    for _, w in ipairs(t.waits) do
      local outcome = w[6] or "ok"
      add(fmt('{"ph":"X","pid":%d,"tid":%d,"ts":%d,"dur":%d,"name":"%s %s","cat":"wait","args":{"object":"%s",' ..
        '"kind":"%s","op":"%s","timeout":%s,"outcome":"%s"}}', PID, t.tid, w[1], w[2] - w[1], w[3], w[4], w[5], w[3],
        w[4], tostring(outcome ~= "ok"), outcome))
    end
  end
  add('{"ph":"B","pid":100,"tid":102,"ts":700,"name":"setup","cat":"user"}')
  add('{"ph":"E","pid":100,"tid":102,"ts":900}')
  add('{"ph":"Z","pid":100,"tid":102,"ts":950,"name":"unknown phase"}')
  add('{"ph":"i","s":"t","pid":100,"tid":101,"ts":5200,"name":"TimeoutError","cat":"error"}')
  add('{"ph":"i","s":"t","pid":100,"tid":100,"ts":9600,"name":"CancelledError","cat":"cancel"}')
  local flows = { { 900, 100, 1000, 101, "submit" }, { 3000, 101, 9400, 100, "result" }, { 2600, 100, 7300, 101, "put\\u2192get" } }
  for id, f in ipairs(flows) do
    add(fmt('{"ph":"s","id":%d,"pid":100,"tid":%d,"ts":%d,"name":"%s","cat":"flow"}', id, f[2], f[1], f[5]))
    add(fmt('{"ph":"f","bp":"e","id":%d,"pid":100,"tid":%d,"ts":%d,"name":"%s","cat":"flow"}', id, f[4], f[3], f[5]))
  end
  for _, q in ipairs(QUEUE) do
    add(fmt('{"ph":"C","pid":100,"tid":100,"ts":%d,"name":"queue jobs","args":{"depth":%d}}', q[1], q[2]))
  end
  table.sort(marks, function(a, b) return a[1] < b[1] end)
  local running = 0
  add('{"ph":"C","pid":100,"tid":100,"ts":0,"name":"executor pool","args":{"running":0,"queued":0}}')
  for _, m in ipairs(marks) do
    running = running + m[2]
    add(fmt('{"ph":"C","pid":100,"tid":100,"ts":%d,"name":"executor pool","args":{"running":%d,"queued":0}}', m[1], running))
  end
  return ev
end

local function fixture_text()
  return '{"traceEvents":[\n' .. table.concat(fixture_events(), ",\n") ..
    '\n],"displayTimeUnit":"ms","otherData":{"tool":"braid"}}\n'
end

-- Expected numbers, counted microsecond by microsecond.
local function inside(list, t)
  for _, iv in ipairs(list) do if t > iv[1] and t < iv[2] then return true end end
  return false
end
local function expected()
  local per = {}
  for _, t in ipairs(THREADS) do
    local busy, waiting, idle = 0, 0, 0
    local work = #t.jobs > 0 and t.jobs or { t.run }
    for us = 0, 9999 do
      local x = us + 0.5
      if inside({ t.run }, x) then
        if inside(t.waits, x) then
          waiting = waiting + 1
        elseif inside(work, x) then
          busy = busy + 1
        else
          idle = idle + 1
        end
      end
    end
    per[t.name] = { run = t.run[2] - t.run[1], busy = busy, waiting = waiting, idle = idle }
  end
  local objects = {}
  for _, t in ipairs(THREADS) do
    for _, w in ipairs(t.waits) do
      local o = objects[w[5]] or { object = w[5], kind = w[3], count = 0, total = 0, max = 0 }
      objects[w[5]] = o
      o.count, o.total, o.max = o.count + 1, o.total + w[2] - w[1], math.max(o.max, w[2] - w[1])
    end
  end
  local ranked = {}
  for _, o in pairs(objects) do ranked[#ranked + 1] = o end
  table.sort(ranked, function(a, b) return a.total > b.total end)
  local job_us, first, last = 0, math.huge, 0
  for _, t in ipairs(THREADS) do
    for _, j in ipairs(t.jobs) do
      job_us, first, last = job_us + j[2] - j[1], math.min(first, j[1]), math.max(last, j[2])
    end
  end
  local peak = 0
  for _, q in ipairs(QUEUE) do peak = math.max(peak, q[2]) end
  -- the executor counter spans 0 .. the last job's end
  return { threads = per, contended = ranked, queue_peak = peak, mean_running = job_us / last, workers = 2 }
end

local function attrs(tag)
  local a = {}
  for k, v in tag:gmatch('([%w-]+)="([^"]*)"') do a[k] = v end
  return a
end
local function rows(html, class)
  local out = {}
  for tag in html:gmatch('<tr class="' .. class .. '"[^>]*>') do out[#out + 1] = attrs(tag) end
  return out
end
local function close(a, b) return math.abs(tonumber(a) - b) < 1e-3 end

-- The summary in html (the page, or the DOM Chromium dumped) is the fixture's.
local function check_summary(html)
  local want = expected()
  local threads = rows(html, "thread%-row")
  assert.equal(#THREADS, #threads)
  for _, r in ipairs(threads) do
    local w = want.threads[r["data-name"]]
    assert.is_truthy(w, r["data-name"])
    assert.is_true(close(r["data-run-us"], w.run), r["data-name"] .. " run")
    assert.is_true(close(r["data-busy-us"], w.busy), r["data-name"] .. " busy " .. r["data-busy-us"] .. " vs " .. w.busy)
    assert.is_true(close(r["data-wait-us"], w.waiting), r["data-name"] .. " waiting")
    assert.is_true(close(r["data-idle-us"], w.idle), r["data-name"] .. " idle")
    assert.is_true(math.abs(tonumber(r["data-busy"]) - w.busy / w.run) < 1e-4)
  end
  local cont = rows(html, "contended")
  assert.equal(math.min(5, #want.contended), #cont)
  for i, r in ipairs(cont) do
    local w = want.contended[i]
    assert.equal(tostring(i), r["data-rank"])
    assert.equal(w.object, r["data-object"])
    assert.equal(w.kind, r["data-kind"])
    assert.equal(tostring(w.count), r["data-count"])
    assert.is_true(close(r["data-total-us"], w.total))
    assert.is_true(close(r["data-max-us"], w.max))
  end
  assert.equal("1", cont[1]["data-timeouts"]) -- db: one acquire timed out
  local q = rows(html, "queue")
  assert.equal(1, #q)
  assert.same({ "jobs", tostring(want.queue_peak) }, { q[1]["data-name"], q[1]["data-peak"] })
  local x = rows(html, "executor")
  assert.equal(1, #x)
  assert.equal("pool", x[1]["data-name"])
  assert.equal(tostring(want.workers), x[1]["data-workers"])
  assert.is_true(close(x[1]["data-mean-running"], want.mean_running))
  assert.is_true(close(x[1]["data-utilisation"], want.mean_running / want.workers))
end

local function assert_offline(html)
  assert.is_nil(html:find("https?://"), "the page names a network address")
  assert.is_nil(html:find("[%s<]src%s*="), "the page loads an external resource")
  assert.is_nil(html:find("[%s<]href%s*="), "the page links an external resource")
  assert.is_nil(html:find("@import"))
  assert.is_nil(html:find("url%([^#]"), "a CSS url() other than a fragment")
end

describe("trace_json", function()
  it("decodes values, escapes and surrogate pairs", function()
    assert.same({ a = { 1, 2.5, -3e2, true, false }, s = 'q"\\/\b\n\t\u{e9}\u{1F600}' },
      json.decode('{"a":[1,2.5,-3e2,true,false,null],"s":"q\\"\\\\\\/\\b\\n\\t\\u00e9\\ud83d\\ude00"}'))
    assert.equal("x", json.decode(' "x" '))
  end)

  it("rejects malformed text with the byte offset", function()
    assert.error_matches(function() json.decode('{"a":1,,}') end, "byte 8")
    assert.error_matches(function() json.decode('[1 2]') end, "expected ',' or ']'")
    assert.error_matches(function() json.decode('{"a":') end, "end of JSON")
    assert.error_matches(function() json.decode('[1] x') end, "trailing")
  end)

  local function names(text)
    local got = {}
    local _, truncated = json.each_event(text, function(e) got[#got + 1] = e.name end)
    return got, truncated
  end

  it("streams both file forms, and a bare array cut anywhere", function()
    assert.same({ { "a", "b" }, false }, { names('{"traceEvents":[{"name":"a"},{"name":"b"}],"x":{"y":[1]}}') })
    assert.same({ { "a", "b" }, false }, { names('{"x":1,"traceEvents":[{"name":"a"},{"name":"b"}]}') })
    assert.same({ { "a", "b" }, false }, { names('[{"name":"a"},{"name":"b"}]') })
    assert.same({ { "a", "b" }, true }, { names('[{"name":"a"},{"name":"b"}') })
    assert.same({ { "a", "b" }, true }, { names('[{"name":"a"},{"name":"b"},\n') })
    assert.same({ { "a" }, true }, { names('[{"name":"a"},{"name":"b","ts":12') })
    assert.same({ { "a" }, true }, { names('[{"name":"a"},{"na') })
    assert.same({ {}, true }, { names("[") })
    assert.error_matches(function() names('[{"name":"a"} {"name":"b"}]') end, "between events")
    assert.error_matches(function() names('{"other":[]}') end, "no traceEvents")
    assert.error_matches(function() names("42") end, "object or array")
  end)
end)

describe("trace_html", function()
  after_each(function()
    for _, n in ipairs(tmpfiles) do os.remove(n) end
    tmpfiles = {}
  end)

  it("computes the summary: busy / waiting / idle, contention, queues, executors", function()
    local html, m = trace_html.convert(fixture_text(), { title = "fixture" })
    assert_offline(html)
    check_summary(html)
    assert.equal(1, m.ignored) -- the unknown phase
    assert.equal(3, #m.flow_list)
    assert.is_truthy(html:find('id="braid-data"', 1, true))
  end)

  it("reads the bare-array form, with or without its end, to the same summary", function()
    local ev = fixture_events()
    local full = trace_html.convert("[\n" .. table.concat(ev, ",\n") .. "\n]")
    check_summary(full)
    local cut, m = trace_html.convert("[\n" .. table.concat(ev, ",\n") .. ",\n")
    check_summary(cut)
    assert.is_true(m.truncated)
    assert.is_truthy(cut:find("truncated", 1, true))
  end)

  it("keeps names from breaking out of the page or naming addresses", function()
    local text = '[{"ph":"M","pid":1,"tid":1,"name":"thread_name","args":{"name":"</script><b>x"}},' ..
      '{"ph":"X","pid":1,"tid":1,"ts":0,"dur":5,"name":"get https://example.org/</script>","cat":"job"}]'
    local html = trace_html.convert(text)
    assert_offline(html)
    local _, scripts = html:gsub("</script>", "")
    assert.equal(2, scripts)
    assert.is_nil(html:find("<b>x", 1, true))
  end)

  it("is a command: braid --trace-html IN [-o OUT]", function()
    local input = writefile(tmpname(".json"), fixture_text())
    local out = input:gsub("%.json$", ".html")
    tmpfiles[#tmpfiles + 1] = out
    local function run(args)
      local err = tmpname()
      local ok, _, code = os.execute(quote(EXE) .. " " .. args .. " >/dev/null 2>" .. quote(err))
      return ok and 0 or code, readfile(err)
    end
    assert.same({ 0, "" }, { run("--trace-html " .. quote(input)) })
    check_summary(readfile(out))
    local other = tmpname(".html")
    assert.same({ 0, "" }, { run("--trace-html " .. quote(input) .. " -o " .. quote(other)) })
    check_summary(readfile(other))
    local code, err = run("--trace-html /nonexistent/x.json")
    assert.equal(1, code)
    assert.matches("^braid %-%-trace%-html: cannot open /nonexistent/x.json", err)
    assert.is_nil(err:find("traceback"))
    code, err = run("--trace-html")
    assert.equal(2, code)
    assert.matches("usage: braid %-%-trace%-html", err)
    code, err = run("--trace-html " .. quote(writefile(tmpname(), '{"traceEvents":[{"ph":"X"} {}]}')))
    assert.equal(1, code)
    assert.matches("byte", err)
  end)
end)

-- ---- in a real browser ----
local function have_chromium()
  local p = io.popen("command -v chromium 2>/dev/null")
  local path = p:read("l")
  p:close()
  return path
end

-- Processes whose command line names dir (the profile of a Chromium we ran).
local function processes_using(dir)
  local found = {}
  local p = io.popen("ls /proc")
  for pid in p:lines() do
    if pid:match("^%d+$") then
      local f = io.open("/proc/" .. pid .. "/cmdline", "rb")
      local cmd = f and f:read("a")
      if f then f:close() end
      if cmd and cmd:find(dir, 1, true) then found[#found + 1] = pid end
    end
  end
  p:close()
  return found
end

describe("the HTML view in headless Chromium", function()
  local profile

  local function chromium(args, page, fragment)
    profile = os.tmpname()
    os.remove(profile)
    assert(os.execute("mkdir -p " .. quote(profile)))
    local out, err = tmpname(), tmpname()
    local cmd = "timeout -k 5 90 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run " ..
      "--disable-background-networking --disable-component-update --disable-sync --user-data-dir=" ..
      quote(profile) .. " --virtual-time-budget=3000 " .. args .. " " .. quote("file://" .. page .. (fragment or "")) ..
      " >" .. quote(out) .. " 2>" .. quote(err)
    local ok = os.execute(cmd)
    assert(ok, "chromium failed: " .. readfile(err):sub(-2000))
    return readfile(out)
  end

  -- Chromium's helper processes (zygote, crash handler) leave a moment
  -- after the browser: on a loaded machine they were still there when
  -- looked at once. They get 20 s to go; one still there is left behind.
  local function lingering(dir)
    local left = processes_using(dir)
    for _ = 1, 200 do
      if #left == 0 then break end
      os.execute("sleep 0.1")
      left = processes_using(dir)
    end
    return left
  end

  after_each(function()
    if profile then
      local left = lingering(profile)
      for _, pid in ipairs(left) do os.execute("kill -9 " .. pid) end -- ours, by id
      os.execute("rm -rf " .. quote(profile))
      profile = nil
      assert.same({}, left, "a chromium process was left behind")
    end
    for _, n in ipairs(tmpfiles) do os.remove(n) end
    tmpfiles = {}
  end)

  it("draws a track per thread and shows the summary numbers", function()
    if not have_chromium() then
      pending("chromium is not installed (tools/deps.sh installs it): browser checks skipped")
      return
    end
    local page = tmpname(".html")
    writefile(page, (trace_html.convert(fixture_text(), { title = "fixture" })))
    local dom = chromium("--dump-dom", page):gsub("<script.-</script>", "") -- the DOM, not its source
    local b = attrs(dom:match("<body[^>]*>"))
    assert.is_nil(b["data-error"], b["data-error"])
    assert.equal("ok", b["data-rendered"])
    local tracks = {}
    for tag in dom:gmatch('<g class="track"[^>]*>') do
      local a = attrs(tag)
      tracks[#tracks + 1] = a["data-pid"] .. "/" .. a["data-tid"] .. "/" .. a["data-name"]
    end
    assert.same({ "100/100/MainThread", "100/101/worker-1", "100/102/worker-2" }, tracks)
    assert.is_truthy(dom:find('<g class="process" data-pid="100"', 1, true))
    assert.is_truthy(dom:find('<g class="counter" data-name="queue jobs"', 1, true))
    assert.equal("3", b["data-flows-drawn"])
    local classes = {}
    for c in dom:gmatch('<rect class="s ([^"]*)"') do classes[#classes + 1] = c end
    local slices = #classes
    assert.equal(3 + 5 + 8 + 1, slices, table.concat(classes, ",")) -- thread runs, jobs, waits, the B/E pair
    local _, waits = dom:gsub('<rect class="s c%-wait', "")
    assert.equal(8, waits)
    local _, instants = dom:gsub('<path class="inst', "")
    assert.equal(2, instants)
    check_summary(dom)
  end)

  it("opens on a time range given in the address, drawing only what is in it", function()
    if not have_chromium() then
      pending("chromium is not installed (tools/deps.sh installs it): browser checks skipped")
      return
    end
    local page = tmpname(".html")
    writefile(page, (trace_html.convert(fixture_text())))
    local dom = chromium("--dump-dom", page, "#view=1,3.5"):gsub("<script.-</script>", "")
    local b = attrs(dom:match("<body[^>]*>"))
    assert.equal("ok", b["data-rendered"])
    assert.equal("1000.000,3500.000", b["data-view"])
    local want = 0 -- waits reaching into 1 ms .. 3.5 ms
    for _, t in ipairs(THREADS) do
      for _, w in ipairs(t.waits) do if w[2] >= 1000 and w[1] <= 3500 then want = want + 1 end end
    end
    local _, waits = dom:gsub('<rect class="s c%-wait', "")
    assert.equal(want, waits)
  end)

  it("merges slices narrower than a pixel when zoomed out", function()
    if not have_chromium() then
      pending("chromium is not installed (tools/deps.sh installs it): browser checks skipped")
      return
    end
    local ev = { '{"ph":"X","pid":1,"tid":1,"ts":0,"dur":40000,"name":"busy","cat":"thread"}' }
    for i = 0, 19999 do -- 20,000 jobs of 1 us, 2 us apart: 40 ms
      ev[#ev + 1] = fmt('{"ph":"X","pid":1,"tid":1,"ts":%d,"dur":1,"name":"tiny","cat":"job"}', 2 * i)
    end
    local page = tmpname(".html")
    writefile(page, (trace_html.convert("[" .. table.concat(ev, ",") .. "]")))
    local dom = chromium("--dump-dom --window-size=1200,600", page):gsub("<script.-</script>", "")
    local b = attrs(dom:match("<body[^>]*>"))
    assert.equal("ok", b["data-rendered"])
    assert.equal("20000", b["data-merged"])
    assert.is_true(tonumber(b["data-drawn"]) < 50, b["data-drawn"])
    assert.matches("20000 slices narrower than a pixel", dom)
    -- zoomed in to 20 us, each is drawn
    dom = chromium("--dump-dom --window-size=1200,600", page, "#view=0,0.02"):gsub("<script.-</script>", "")
    b = attrs(dom:match("<body[^>]*>"))
    assert.equal("0", b["data-merged"])
    local _, jobs = dom:gsub('<rect class="s c%-job', "")
    assert.equal(11, jobs) -- those starting at 0, 2, ... 20 us
  end)

  it("zooms with the wheel, pans with a drag, resets on double-click, shows a tooltip", function()
    if not (have_chromium() and os.execute("command -v python3 >/dev/null")) then
      pending("chromium or python3 is not installed (tools/deps.sh installs them): mouse checks skipped")
      return
    end
    local page = tmpname(".html")
    writefile(page, (trace_html.convert(fixture_text())))
    profile = os.tmpname()
    os.remove(profile)
    local p = io.popen("timeout -k 5 90 python3 spec/support/trace_cdp.py " .. quote(page) .. " " .. quote(profile))
    local text = p:read("a")
    p:close()
    local r = json.decode(text)
    assert.equal("", r.error)
    local function view(s)
      local a, b = s:match("^([-%d.]+),([-%d.]+)$")
      return tonumber(a), tonumber(b)
    end
    local a0, b0 = view(r.initial)
    local a1, b1 = view(r.wheel)
    local plot_w, mx = r.plot[3], 500 -- the wheel turned 200 px up at x = 500 in the page's SVG
    local at = a0 + (mx - 190) / plot_w * (b0 - a0)
    assert.is_true(math.abs((b1 - a1) / (b0 - a0) - math.exp(-0.4)) < 1e-3, r.wheel) -- zoomed in
    assert.is_true(math.abs(a1 + (mx - 190) / plot_w * (b1 - a1) - at) < 1, text) -- around the pointer
    local a2, b2 = view(r.drag) -- dragged 100 px to the left: later times come into view
    local shift = 100 / plot_w * (b1 - a1)
    assert.is_true(math.abs(a2 - a1 - shift) < 1 and math.abs(b2 - b1 - shift) < 1, text)
    assert.equal(r.initial, r.reset)
    assert.matches("^block|", r.tooltip)
    assert.matches("cat: wait", r.tooltip)
    assert.matches("duration: ", r.tooltip)
    assert.matches("object=", r.tooltip)
  end)

  it("takes a PNG screenshot", function()
    if not have_chromium() then
      pending("chromium is not installed (tools/deps.sh installs it): screenshot skipped")
      return
    end
    local page, png = tmpname(".html"), tmpname(".png")
    writefile(page, (trace_html.convert(fixture_text(), { title = "fixture" })))
    chromium("--hide-scrollbars --window-size=1000,700 --screenshot=" .. quote(png), page)
    local data = readfile(png)
    assert.equal("\137PNG\r\n\26\n", data:sub(1, 8))
    assert.is_true(#data > 5000)
  end)
end)
