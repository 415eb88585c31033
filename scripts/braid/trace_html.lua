-- braid.trace_html: `braid --trace-html trace.json [-o out.html]`. Reads a
-- Chrome trace (braid.trace_json), gathers it (braid.trace_model) and writes
-- one self-contained HTML page: the summary tables as static HTML, the
-- timeline's data as an inline JSON block, and the script that draws it as
-- SVG (braid.trace_page). Nothing in the page refers to the network.
local M = ...

local json = require("braid.trace_json")
local model = require("braid.trace_model")
local page = require("braid.trace_page")

local concat, floor, format = table.concat, math.floor, string.format

-- Text for HTML: escaped, and "://" broken so no address appears in the page.
local function html(s)
  s = tostring(s):gsub("[&<>\"']", {
    ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;",
  })
  return (s:gsub("://", ":&#47;&#47;"))
end

local JSON_ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["<"] = "\\u003c", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function jstr(s)
  s = tostring(s):gsub('[%c"\\<]', function(c)
    return JSON_ESC[c] or format("\\u%04x", c:byte())
  end)
  return '"' .. s:gsub("://", ":\\/\\/") .. '"'
end

local function jnum(x)
  if x ~= x or x == math.huge or x == -math.huge then return "0" end
  return x
end

-- Microseconds as a short human duration.
local function dur_text(us)
  if us >= 1e6 then return format("%.3g s", us / 1e6) end
  if us >= 1e3 then return format("%.3g ms", us / 1e3) end
  return format("%.3g µs", us)
end

local function pct(x) return format("%.1f %%", 100 * x) end
local function us(x) return format("%.3f", x) end

-- ---- the timeline's data ----

local function encode_data(m, title)
  local t0 = m.t0
  local function ns(t) return floor((t - t0) * 1000 + 0.5) end
  local out = {}
  local function put(s) out[#out + 1] = s end
  put('{"title":' .. jstr(title) .. ',"t0":' .. jnum(t0) .. ',"span":' .. jnum(m.t1 - t0))
  local strings = {}
  for i, s in ipairs(m.strings) do strings[i] = jstr(s) end
  put(',"strings":[' .. concat(strings, ",") .. "]")
  local kinds = {}
  for i, k in ipairs(m.kinds) do
    kinds[3 * i - 2], kinds[3 * i - 1], kinds[3 * i] = k[1] - 1, k[2] - 1, k[3] - 1
  end
  put(',"kinds":[' .. concat(kinds, ",") .. "]")
  put(',"procs":[')
  for pi, p in ipairs(m.proc_list) do
    local tids = {}
    for i, t in ipairs(p.list) do tids[i] = t.index - 1 end
    put((pi > 1 and "," or "") .. '{"pid":' .. jstr(p.pid) .. ',"name":' .. jstr(p.name))
    put(',"threads":[' .. concat(tids, ",") .. '],"counters":[')
    for ci, c in ipairs(p.counter_list) do
      local keys = {}
      for k in pairs(c.values) do keys[#keys + 1] = k end
      table.sort(keys)
      local ts, prev = {}, 0
      for i = 1, c.n do
        local x = ns(c.ts[i])
        ts[i], prev = x - prev, x
      end
      local vals, jk = {}, {}
      for i, k in ipairs(keys) do
        local col = {}
        for j = 1, c.n do col[j] = jnum(c.values[k][j]) end
        vals[i] = "[" .. concat(col, ",") .. "]"
        jk[i] = jstr(k)
      end
      put((ci > 1 and "," or "") .. '{"name":' .. jstr(c.name) .. ',"keys":[' .. concat(jk, ","))
      put('],"ts":[' .. concat(ts, ",") .. '],"v":[' .. concat(vals, ",") .. "]}")
    end
    put("]}")
  end
  put('],"threads":[')
  for ti, t in ipairs(m.thread_list) do
    put((ti > 1 and "," or "") .. '{"pid":' .. jstr(t.pid) .. ',"tid":' .. jstr(t.tid))
    put(',"name":' .. jstr(t.name) .. ',"rows":[')
    for ri, r in ipairs(t.rows) do
      local ts, dur, k, prev = {}, {}, {}, 0
      local rts, rdur, rk = r.ts, r.dur, r.kind
      for i = 1, r.n do
        local x = ns(rts[i])
        ts[i], prev = x - prev, x
        dur[i] = floor(rdur[i] * 1000 + 0.5)
        k[i] = rk[i] - 1
      end
      put((ri > 1 and "," or "") .. '{"ts":[' .. concat(ts, ",") .. '],"dur":[' .. concat(dur, ","))
      put('],"k":[' .. concat(k, ",") .. "]}")
    end
    local its, ik, prev = {}, {}, 0
    local order = {}
    for i = 1, t.ni do order[i] = i end
    table.sort(order, function(a, b) return t.its[a] < t.its[b] end)
    for i, j in ipairs(order) do
      local x = ns(t.its[j])
      its[i], prev = x - prev, x
      ik[i] = t.ikind[j] - 1
    end
    put('],"its":[' .. concat(its, ",") .. '],"ik":[' .. concat(ik, ",") .. "]}")
  end
  local fl = {}
  for i, f in ipairs(m.flow_list) do
    local b = 5 * (i - 1)
    fl[b + 1], fl[b + 2], fl[b + 3], fl[b + 4], fl[b + 5] =
      f[1].index - 1, ns(f[2]), f[3].index - 1, ns(f[4]), f[5] - 1
  end
  put('],"flows":[' .. concat(fl, ",") .. "]}")
  return concat(out)
end

-- ---- the summary tables (static HTML, numbers in data- attributes) ----

local function summary(m)
  local o = {}
  local function put(s) o[#o + 1] = s end
  put('<section id="summary"><h2>Summary</h2>')
  put('<h3>Threads</h3><table id="summary-threads"><thead><tr><th>process</th><th>thread</th>')
  put("<th>run</th><th>busy</th><th>waiting</th><th>idle</th><th></th></tr></thead><tbody>")
  for _, t in ipairs(m.thread_list) do
    local run = t.run_us
    local function share(x) return run > 0 and x / run or 0 end
    local b, w, i = share(t.busy_us), share(t.wait_us), share(t.idle_us)
    put(format('<tr class="thread-row" data-pid="%s" data-tid="%s" data-name="%s"', html(t.pid), html(t.tid), html(t.name)))
    put(format(' data-run-us="%s" data-busy-us="%s" data-wait-us="%s" data-idle-us="%s"', us(run), us(t.busy_us), us(t.wait_us), us(t.idle_us)))
    put(format(' data-busy="%.4f" data-waiting="%.4f" data-idle="%.4f">', b, w, i))
    put(format("<td>%s</td><td>%s</td><td>%s</td>", html(m.procs[t.pid].name), html(t.name), dur_text(run)))
    put(format("<td>%s</td><td>%s</td><td>%s</td>", pct(b), pct(w), pct(i)))
    put(format('<td><div class="bar"><span class="busy" style="width:%.1f%%"></span>', 100 * b))
    put(format('<span class="wait" style="width:%.1f%%"></span></div></td></tr>', 100 * w))
  end
  put("</tbody></table>")
  put('<h3>Most contended objects</h3>')
  if m.async_waits > 0 then
    put(format("<p>including %d asyncio task waits (they are not drawn)</p>", m.async_waits))
  end
  put(format('<table id="summary-contended" data-objects="%d" data-task-waits="%d">', m.wait_objects,
    m.async_waits))
  put("<thead><tr><th>#</th><th>object</th><th>kind</th><th>waits</th><th>total wait</th>")
  put("<th>longest wait</th><th>timeouts</th></tr></thead><tbody>")
  for rank, w in ipairs(m.contended) do
    put(format('<tr class="contended" data-rank="%d" data-object="%s" data-kind="%s"', rank, html(w.object), html(w.kind)))
    put(format(' data-count="%d" data-total-us="%s" data-max-us="%s" data-timeouts="%d">', w.count, us(w.total), us(w.max), w.timeouts))
    put(format("<td>%d</td><td>%s</td><td>%s</td><td>%d</td>", rank, html(w.object), html(w.kind), w.count))
    put(format("<td>%s</td><td>%s</td><td>%d</td></tr>", dur_text(w.total), dur_text(w.max), w.timeouts))
  end
  if #m.contended == 0 then put('<tr><td colspan="7">no waits recorded</td></tr>') end
  put('</tbody></table><h3>Queues</h3><table id="summary-queues"><thead><tr><th>queue</th>')
  put("<th>peak depth</th></tr></thead><tbody>")
  for _, q in ipairs(m.queue_list) do
    put(format('<tr class="queue" data-name="%s" data-peak="%s"><td>%s</td><td>%s</td></tr>', html(q.name), jnum(q.peak), html(q.name), jnum(q.peak)))
  end
  if #m.queue_list == 0 then put('<tr><td colspan="2">no queue counters recorded</td></tr>') end
  put('</tbody></table><h3>Executors</h3><table id="summary-executors"><thead><tr><th>executor</th>')
  put("<th>workers</th><th>mean running</th><th>utilisation</th><th>jobs</th><th>job time</th></tr></thead><tbody>")
  for _, e in ipairs(m.executor_list) do
    put(format('<tr class="executor" data-name="%s" data-workers="%d" data-mean-running="%.4f"', html(e.name), e.workers, e.mean_running))
    put(format(' data-utilisation="%.4f" data-jobs="%d" data-job-us="%s">', e.utilisation, e.jobs, us(e.job_us)))
    put(format("<td>%s</td><td>%d</td><td>%.2f</td><td>%s</td>", html(e.name), e.workers, e.mean_running, pct(e.utilisation)))
    put(format("<td>%d</td><td>%s</td></tr>", e.jobs, dur_text(e.job_us)))
  end
  if #m.executor_list == 0 then put('<tr><td colspan="6">no executors recorded</td></tr>') end
  put("</tbody></table></section>")
  return concat(o)
end

-- Converts a trace file's text to the page. opts.title names the page.
-- Returns the HTML and the model (its counts: events, ignored, truncated).
function M.convert(text, opts)
  opts = opts or {}
  local m = model.new()
  local add = m.add
  local _, truncated = json.each_event(text, function(ev) add(m, ev) end)
  m:finish()
  m.truncated = truncated
  local title = opts.title or "trace"
  local nslices = 0
  for _, t in ipairs(m.thread_list) do
    for _, r in ipairs(t.rows) do nslices = nslices + r.n end
  end
  m.slices = nslices
  local meta = format("%d events, %d slices, %d threads in %d processes, %s", m.events, nslices,
    #m.thread_list, #m.proc_list, dur_text(m.t1 - m.t0))
  if m.ignored > 0 then meta = meta .. format("; %d events ignored", m.ignored) end
  if truncated then meta = meta .. "; the file was truncated (its last event dropped)" end
  local parts = {
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width">',
    "<title>", html(title), " — braid trace</title><style>", page.css, "</style></head>\n",
    format('<body data-events="%d" data-slices="%d" data-threads="%d" data-truncated="%s">', m.events,
      nslices, #m.thread_list, truncated and "1" or "0"),
    '<header><h1>braid trace: ', html(title), '</h1><p id="meta">', html(meta), "</p></header>\n",
    page.body, "\n", summary(m), "\n",
    '<script type="application/json" id="braid-data">', encode_data(m, title), "</script>\n",
    "<script>", page.js, "</script>\n</body></html>\n",
  }
  return concat(parts), m
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then error("cannot open " .. err, 0) end
  local s = f:read("a")
  f:close()
  return s
end

-- braid --trace-html IN [-o OUT]: OUT defaults to IN with .html. Prints the
-- error and exits with status 1 on failure (no traceback: a user's mistake).
function M.main(...)
  local args = { ... }
  local input, output
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-o" then
      output = args[i + 1]
      if not output then input = nil break end
      i = i + 2
    elseif input == nil and (a == "-" or a:sub(1, 1) ~= "-") then
      input = a
      i = i + 1
    else
      input = nil
      break
    end
  end
  if not input then
    io.stderr:write("usage: braid --trace-html trace.json [-o out.html]\n")
    os.exit(2)
  end
  output = output or (input:gsub("%.json$", "") .. ".html")
  local ok, err = pcall(function()
    local text = input == "-" and io.read("a") or read_file(input)
    local title = input:match("([^/]*)$")
    local out = M.convert(text, { title = title })
    local f, e = io.open(output, "wb")
    if not f then error("cannot write " .. e, 0) end
    assert(f:write(out))
    assert(f:close())
  end)
  if not ok then
    io.stderr:write("braid --trace-html: ", tostring(err), "\n")
    os.exit(1)
  end
end

return M
