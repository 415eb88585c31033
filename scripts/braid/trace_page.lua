-- braid.trace_page: the HTML view's fixed parts (style, timeline frame and
-- the script that draws it), inlined into every page braid.trace_html
-- writes. The script reads the JSON block #braid-data and draws the
-- timeline as SVG: a track group per process, a track per thread (a row
-- per nesting depth), counters, flow arrows and instants. Wheel zooms
-- around the pointer, drag pans, hover shows a slice's details. When
-- zoomed out, neighbouring slices narrower than a pixel are drawn as one
-- grey bar, so the number of SVG elements stays near one per pixel per row.
-- page.html#view=2.5,4 opens on 2.5 ms to 4 ms.
local css = [==[
body{font:13px/1.35 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;background:#fafafa}
header{padding:8px 14px 2px}h1{font-size:17px;margin:0 0 2px}h2{font-size:15px;margin:14px 0 4px}
h3{font-size:13px;margin:12px 0 4px}#meta{margin:0;color:#555}
#toolbar{padding:4px 14px;display:flex;gap:10px;align-items:center;flex-wrap:wrap;color:#444}
#toolbar button{font:inherit;padding:1px 8px}
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;vertical-align:-1px;margin-right:3px}
#note{color:#a35c00}
#timeline{margin:0 14px;border:1px solid #ccc;background:#fff;max-height:72vh;overflow-y:auto;overflow-x:hidden}
#timeline-svg{display:block;cursor:grab;user-select:none}#timeline-svg.dragging{cursor:grabbing}
#tooltip{position:fixed;display:none;pointer-events:none;background:#fff;border:1px solid #888;
border-radius:3px;padding:5px 8px;box-shadow:0 2px 6px rgba(0,0,0,.2);max-width:460px;white-space:pre-line;z-index:9}
#summary{padding:0 14px 20px}table{border-collapse:collapse;margin-bottom:6px}
td,th{border-bottom:1px solid #ddd;padding:2px 9px;text-align:left}td{font-variant-numeric:tabular-nums}
.bar{width:140px;height:10px;background:#e8e8e8;display:flex}.bar span{display:block;height:10px}
.bar .busy,.c-job{background:#4e79a7}.bar .wait,.c-wait{background:#e15759}
.c-thread{background:#c7d3e0}.c-task{background:#59a14f}.c-other{background:#b07aa1}.c-agg{background:#999}
rect.c-thread{fill:#c7d3e0}rect.c-job{fill:#4e79a7}rect.c-task{fill:#59a14f}rect.c-wait{fill:#e15759}
rect.c-other{fill:#b07aa1}rect.c-agg{fill:#999}rect.s{stroke:#fff;stroke-width:.5}rect.to{stroke:#600;stroke-width:1.2}
rect.lane{fill:#fff}rect.lane.odd{fill:#f4f6f8}rect.ph{fill:#e4e7eb}
text{font-size:11px;fill:#222}text.st{fill:#fff;pointer-events:none}text.st.dark{fill:#222}
text.ph{font-weight:600}text.tick{fill:#666;font-size:10px}line.tick{stroke:#eee}
path.inst{fill:#d62728;stroke:#fff;stroke-width:.5}path.inst.c-cancel{fill:#ff7f0e}
path.flow{fill:none;stroke:#333;stroke-opacity:.55;stroke-width:1}path.flowhead{fill:#333}
path.cnt{stroke-width:1;fill-opacity:.25}
]==]

local body = [==[
<div id="toolbar"><span>wheel: zoom · drag: pan · shift+wheel: pan · double-click: reset</span>
<button id="zoom-in" type="button">+</button><button id="zoom-out" type="button">−</button>
<button id="reset" type="button">reset</button><span id="range"></span>
<span><span class="sw c-thread"></span>thread <span class="sw c-job"></span>job <span class="sw c-task"></span>task
<span class="sw c-wait"></span>wait <span class="sw c-other"></span>other <span class="sw c-agg"></span>merged</span>
<span id="note"></span></div>
<div id="timeline"><svg id="timeline-svg" width="800" height="100"></svg></div>
<div id="tooltip"></div>]==]

local js = [==[
(function () {
"use strict";
var body = document.body;
window.addEventListener("error", function (e) { body.setAttribute("data-error", String(e.message)); });
var started = performance.now();
var D = JSON.parse(document.getElementById("braid-data").textContent);
var svg = document.getElementById("timeline-svg"), box = document.getElementById("timeline");
var tip = document.getElementById("tooltip"), noteEl = document.getElementById("note");
var rangeEl = document.getElementById("range");
var S = D.strings, K = D.kinds;
var LABEL_W = 190, ROW_H = 17, AXIS_H = 20, PROC_H = 19, CNT_H = 32, GAP = 6;
var MAX_ELEMS = 60000, MAX_FLOWS = 2000;
var CATS = { thread: "c-thread", job: "c-job", task: "c-task", wait: "c-wait" };
var CNT_COLORS = ["#7b4fa0", "#f28e2b", "#4e79a7", "#59a14f", "#e15759"];
function kname(k) { return S[K[3 * k]]; }
function kcat(k) { return S[K[3 * k + 1]]; }
function kargs(k) { return S[K[3 * k + 2]]; }
function esc(s) {
  return String(s).replace(/[&<>"]/g, function (c) {
    return c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : "&quot;";
  });
}
function undelta(a) {
  var out = new Float64Array(a.length), acc = 0;
  for (var i = 0; i < a.length; i++) { acc += a[i]; out[i] = acc / 1000; }
  return out;
}
// first index i with a[i] >= x (a ascending)
function lower(a, x) {
  var lo = 0, hi = a.length;
  while (lo < hi) { var mid = (lo + hi) >> 1; if (a[mid] < x) lo = mid + 1; else hi = mid; }
  return lo;
}
function fmtDur(us) {
  var a = Math.abs(us);
  if (a >= 1e6) return (us / 1e6).toPrecision(4) + " s";
  if (a >= 1e3) return (us / 1e3).toPrecision(4) + " ms";
  return us.toPrecision(4) + " µs";
}

var threads = D.threads.map(function (t, ti) {
  var rows = t.rows.map(function (r) {
    var ts = undelta(r.ts), n = ts.length, dur = new Float64Array(n), pmax = new Float64Array(n), m = -Infinity;
    for (var i = 0; i < n; i++) {
      dur[i] = r.dur[i] / 1000;
      if (ts[i] + dur[i] > m) m = ts[i] + dur[i];
      pmax[i] = m;
    }
    return { ts: ts, dur: dur, k: r.k, pmax: pmax };
  });
  return { i: ti, pid: t.pid, tid: t.tid, name: t.name, rows: rows, its: undelta(t.its), ik: t.ik, y: 0, h: 0 };
});
var layout = [], y = AXIS_H;
D.procs.forEach(function (p) {
  layout.push({ type: "proc", p: p, y: y });
  y += PROC_H;
  p.threads.forEach(function (ti) {
    var t = threads[ti];
    t.y = y;
    t.h = Math.max(1, t.rows.length) * ROW_H + 4;
    layout.push({ type: "thread", t: t });
    y += t.h;
  });
  p.counters.forEach(function (c) {
    c.tsu = undelta(c.ts);
    c.max = 0;
    c.v.forEach(function (col) { for (var i = 0; i < col.length; i++) if (col[i] > c.max) c.max = col[i]; });
    c.y = y;
    layout.push({ type: "counter", c: c });
    y += CNT_H;
  });
  y += GAP;
});
var totalH = y + 2;
var flows = D.flows, flowRows = new Int32Array(flows.length / 5 * 2);
// the deepest row of thread t with a slice around ts: where an arrow ends
function rowAt(t, ts) {
  for (var ri = t.rows.length - 1; ri > 0; ri--) {
    var r = t.rows[ri], i = lower(r.ts, ts + 1e-3) - 1;
    if (i >= 0 && r.ts[i] + r.dur[i] >= ts - 1e-3) return ri;
  }
  return 0;
}
for (var fi = 0; fi < flows.length; fi += 5) {
  flowRows[fi / 5 * 2] = rowAt(threads[flows[fi]], flows[fi + 1] / 1000);
  flowRows[fi / 5 * 2 + 1] = rowAt(threads[flows[fi + 2]], flows[fi + 3] / 1000);
}
var span = D.span > 0 ? D.span : 1;
var v0, v1, W = 800;
function reset() { v0 = -span * 0.01; v1 = span * 1.01; schedule(); }
v0 = -span * 0.01; v1 = span * 1.01;
var hv = /view=([-+\d.e]+),([-+\d.e]+)/.exec(location.hash); // page.html#view=START,END in ms
if (hv && +hv[2] > +hv[1]) { v0 = hv[1] * 1000; v1 = hv[2] * 1000; }

function render() {
  var r0 = performance.now();
  W = Math.max(500, box.clientWidth || 800);
  var plotW = W - LABEL_W - 6, sc = plotW / (v1 - v0);
  function X(t) { return LABEL_W + (t - v0) * sc; }
  var h = [], elems = 0, capped = false, merged = 0, bars = 0, hiddenFlows = 0, shownFlows = 0;
  h.push('<defs><marker id="ah" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" orient="auto">' +
    '<path d="M0,0L8,4L0,8z" class="flowhead"/></marker><clipPath id="plot"><rect x="' + LABEL_W +
    '" y="0" width="' + (plotW + 6) + '" height="' + totalH + '"/></clipPath></defs>');
  // time axis
  var target = 110 / sc, p10 = Math.pow(10, Math.floor(Math.log10(target))), step = p10;
  [1, 2, 5, 10].some(function (m) { step = m * p10; return step >= target; });
  var unit = step >= 1e6 ? 1e6 : step >= 1e3 ? 1e3 : 1, uname = unit === 1e6 ? " s" : unit === 1e3 ? " ms" : " µs";
  var dec = Math.max(0, -Math.floor(Math.log10(step / unit) + 1e-9));
  h.push('<g class="axis">');
  for (var tk = Math.ceil(v0 / step) * step; tk <= v1; tk += step) {
    var tx = X(tk).toFixed(1);
    h.push('<line class="tick" x1="' + tx + '" x2="' + tx + '" y1="' + (AXIS_H - 4) + '" y2="' + totalH + '"/>');
    h.push('<text class="tick" x="' + (+tx + 3) + '" y="12">' + (tk / unit).toFixed(dec) + uname + "</text>");
  }
  h.push("</g>");
  layout.forEach(function (it, li) {
    if (it.type === "proc") {
      h.push('<g class="process" data-pid="' + esc(it.p.pid) + '"><rect class="ph" x="0" y="' + it.y + '" width="' + W +
        '" height="' + (PROC_H - 2) + '"/><text class="ph" x="6" y="' + (it.y + 13) + '">' + esc(it.p.name) +
        " (pid " + esc(it.p.pid) + ")</text></g>");
      return;
    }
    if (it.type === "counter") {
      var c = it.c, base = c.y + CNT_H - 4, hh = CNT_H - 8;
      h.push('<g class="counter" data-name="' + esc(c.name) + '" data-c="' + li + '"><rect class="lane" x="0" y="' + c.y +
        '" width="' + W + '" height="' + CNT_H + '"/><text x="14" y="' + (c.y + 13) + '">' + esc(c.name) +
        '</text><text class="tick" x="14" y="' + (c.y + 25) + '">peak ' + c.max + " (" + esc(c.keys.join(", ")) +
        ')</text><g clip-path="url(#plot)">');
      c.v.forEach(function (col, j) {
        var d = counterPath(c.tsu, col, X, function (v) { return (base - (c.max > 0 ? v / c.max : 0) * hh).toFixed(1); });
        if (d) h.push('<path class="cnt" d="' + d + "V" + base + 'Z" fill="' + CNT_COLORS[j % 5] + '" stroke="' +
          CNT_COLORS[j % 5] + '"/>');
      });
      h.push("</g></g>");
      return;
    }
    var t = it.t;
    h.push('<g class="track" data-pid="' + esc(t.pid) + '" data-tid="' + esc(t.tid) + '" data-name="' + esc(t.name) +
      '" data-t="' + t.i + '"><rect class="lane' + (t.i % 2 ? " odd" : "") + '" x="0" y="' + t.y + '" width="' + W +
      '" height="' + t.h + '"/><text class="label" x="14" y="' + (t.y + 13) + '" data-t="' + t.i + '">' +
      esc(t.name.length > 28 ? t.name.slice(0, 27) + "…" : t.name) + '</text><g clip-path="url(#plot)">');
    t.rows.forEach(function (r, ri) {
      var n = r.ts.length, yy = t.y + 2 + ri * ROW_H, aggN = 0, aggX0 = 0, aggX1 = 0, aggI = 0, aggT1 = 0;
      function flush() {
        if (!aggN) return;
        if (aggN === 1) slice(aggI, aggX0, aggX0 + 1);
        else {
          h.push('<rect class="c-agg" x="' + aggX0.toFixed(1) + '" y="' + yy + '" width="' + Math.max(1, aggX1 - aggX0).toFixed(1) +
            '" height="' + (ROW_H - 2) + '" data-t="' + t.i + '" data-r="' + ri + '" data-a="' + aggI + '" data-n="' + aggN + '"/>');
          merged += aggN; bars++; elems++;
        }
        aggN = 0;
      }
      function slice(i, x0, x1) {
        var k = r.k[i], cat = kcat(k), cls = CATS[cat] || "c-other";
        if (cat === "wait" && /outcome=(timeout|cancelled)/.test(kargs(k))) cls += " to";
        if (x0 < LABEL_W - 2) x0 = LABEL_W - 2;
        if (x1 > W + 2) x1 = W + 2;
        var w = Math.max(1, x1 - x0);
        h.push('<rect class="s ' + cls + '" x="' + x0.toFixed(1) + '" y="' + yy + '" width="' + w.toFixed(1) + '" height="' +
          (ROW_H - 2) + '" data-t="' + t.i + '" data-r="' + ri + '" data-i="' + i + '"/>');
        if (w > 36) {
          var name = kname(k), chars = Math.floor((w - 6) / 6.2);
          if (name.length > chars) name = name.slice(0, Math.max(1, chars - 1)) + "…";
          h.push('<text class="st' + (cat === "thread" ? " dark" : "") + '" x="' + (x0 + 3).toFixed(1) + '" y="' + (yy + 11) +
            '">' + esc(name) + "</text>");
        }
        elems++;
      }
      for (var i = lower(r.pmax, v0); i < n && !capped; i++) {
        var s = r.ts[i];
        if (s > v1) break;
        var e = s + r.dur[i];
        if (e < v0) continue;
        var x0 = X(s), x1 = X(e);
        if (x1 - x0 < 1) {
          if (aggN && x0 <= aggX1 + 1) { if (x1 > aggX1) aggX1 = x1; if (e > aggT1) aggT1 = e; aggN++; }
          else { flush(); aggN = 1; aggX0 = x0; aggX1 = x1; aggI = i; aggT1 = e; }
          continue;
        }
        flush();
        if (elems >= MAX_ELEMS) { capped = true; break; }
        slice(i, x0, x1);
      }
      flush();
    });
    var last = -1;
    for (var j = lower(t.its, v0); j < t.its.length && t.its[j] <= v1; j++) {
      var ix = X(t.its[j]);
      if (Math.round(ix) === last) continue;
      last = Math.round(ix);
      var icat = kcat(t.ik[j]);
      h.push('<path class="inst c-' + esc(icat) + '" d="M' + ix.toFixed(1) + "," + (t.y + 1) + "l5,8h-10z" +
        '" data-t="' + t.i + '" data-j="' + j + '"/>');
    }
    h.push("</g></g>");
  });
  h.push('<g clip-path="url(#plot)">');
  for (var f = 0; f < flows.length; f += 5) {
    var a = threads[flows[f]], b = threads[flows[f + 2]];
    var fx0 = X(flows[f + 1] / 1000), fx1 = X(flows[f + 3] / 1000);
    if (Math.max(fx0, fx1) < LABEL_W || Math.min(fx0, fx1) > W) continue;
    if (shownFlows >= MAX_FLOWS) { hiddenFlows = 1; break; } // the rest: zoom in
    var fy0 = a.y + ROW_H * (flowRows[f / 5 * 2] + 0.5) + 2, fy1 = b.y + ROW_H * (flowRows[f / 5 * 2 + 1] + 0.5) + 2, dx = Math.max(12, Math.abs(fx1 - fx0) / 3);
    if (a === b && Math.abs(fx1 - fx0) < 2) continue;
    h.push('<path class="flow" marker-end="url(#ah)" d="M' + fx0.toFixed(1) + "," + fy0 + "C" + (fx0 + dx).toFixed(1) + "," +
      (a === b ? fy0 - 10 : fy0) + " " + (fx1 - dx).toFixed(1) + "," + (a === b ? fy1 - 10 : fy1) + " " + fx1.toFixed(1) +
      "," + fy1 + '" data-f="' + f + '"/>');
    shownFlows++;
  }
  h.push("</g>");
  svg.setAttribute("width", W);
  svg.setAttribute("height", totalH);
  svg.innerHTML = h.join("");
  var notes = [];
  if (bars) notes.push(merged + " slices narrower than a pixel drawn as " + bars + " grey bars: zoom in");
  if (capped) notes.push("drawing capped at " + MAX_ELEMS + " shapes: zoom in for the rest");
  if (hiddenFlows) notes.push("only " + MAX_FLOWS + " flow arrows drawn: zoom in for the rest");
  noteEl.textContent = notes.join(" · ");
  rangeEl.textContent = fmtDur(Math.max(0, v0)) + " – " + fmtDur(v1) + " of " + fmtDur(span);
  body.setAttribute("data-drawn", elems);
  body.setAttribute("data-merged", merged);
  body.setAttribute("data-capped", capped ? "1" : "0");
  body.setAttribute("data-flows-drawn", shownFlows);
  body.setAttribute("data-render-ms", (performance.now() - r0).toFixed(1));
  body.setAttribute("data-view", v0.toFixed(3) + "," + v1.toFixed(3));
  body.setAttribute("data-plot-w", plotW);
  body.setAttribute("data-rendered", "ok");
}

// A step line through (ts, v), one point per pixel (keeping each pixel's
// low and high) so a long series costs the width, not its length.
function counterPath(ts, v, X, Y) {
  var n = ts.length, i = Math.max(0, lower(ts, v0) - 1), d = [], px = null, lo, hi, lastV, x;
  function flushPx() { if (px !== null && lo !== hi) d.push("V" + Y(hi) + "V" + Y(lo) + "V" + Y(lastV)); }
  for (; i < n; i++) {
    x = X(ts[i]);
    var val = v[i], p = Math.round(x);
    if (p === px) { if (val < lo) lo = val; if (val > hi) hi = val; lastV = val; continue; }
    flushPx();
    d.push(d.length ? "H" + x.toFixed(1) + "V" + Y(val) : "M" + x.toFixed(1) + "," + Y(0) + "V" + Y(val));
    px = p; lo = hi = lastV = val;
    if (ts[i] > v1) break;
  }
  flushPx();
  if (!d.length) return "";
  d.push("H" + Math.min(X(span), W + 2).toFixed(1));
  return d.join("");
}

var pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(function () { pending = false; render(); });
}

function showTip(e, title, lines) {
  tip.textContent = "";
  var b = document.createElement("b");
  b.textContent = title;
  tip.appendChild(b);
  var div = document.createElement("div");
  div.textContent = lines.join("\n");
  tip.appendChild(div);
  tip.style.display = "block";
  var x = e.clientX + 14, yy = e.clientY + 14, r = tip.getBoundingClientRect();
  if (x + r.width > window.innerWidth) x = Math.max(0, e.clientX - r.width - 10);
  if (yy + r.height > window.innerHeight) yy = Math.max(0, e.clientY - r.height - 10);
  tip.style.left = x + "px";
  tip.style.top = yy + "px";
}
function hideTip() { tip.style.display = "none"; }
function argLines(k) { var a = kargs(k); return a ? a.split("\n") : []; }

function hover(e) {
  var el = e.target, d = el.dataset || {};
  if (d.t !== undefined && d.i !== undefined) {
    var t = threads[+d.t], r = t.rows[+d.r], i = +d.i, k = r.k[i];
    showTip(e, kname(k), ["cat: " + kcat(k), "thread: " + t.name + " (tid " + t.tid + ")",
      "start: " + fmtDur(r.ts[i]), "duration: " + fmtDur(r.dur[i])].concat(argLines(k)));
  } else if (d.t !== undefined && d.a !== undefined) {
    var t2 = threads[+d.t], r2 = t2.rows[+d.r], a0 = +d.a, n = +d.n;
    showTip(e, n + " slices", ["each narrower than a pixel: zoom in", "thread: " + t2.name,
      "from " + fmtDur(r2.ts[a0]) + " to " + fmtDur(r2.ts[a0 + n - 1] + r2.dur[a0 + n - 1])]);
  } else if (d.t !== undefined && d.j !== undefined) {
    var t3 = threads[+d.t], j = +d.j, k3 = t3.ik[j];
    showTip(e, kname(k3), ["instant, cat: " + kcat(k3), "thread: " + t3.name, "at: " + fmtDur(t3.its[j])].concat(argLines(k3)));
  } else if (d.f !== undefined) {
    var f = +d.f, fa = threads[flows[f]], fb = threads[flows[f + 2]];
    showTip(e, kname(flows[f + 4]), ["flow, cat: " + kcat(flows[f + 4]), "from " + fa.name + " at " + fmtDur(flows[f + 1] / 1000),
      "to " + fb.name + " at " + fmtDur(flows[f + 3] / 1000), "latency: " + fmtDur((flows[f + 3] - flows[f + 1]) / 1000)]);
  } else if (d.t !== undefined) {
    var t4 = threads[+d.t];
    showTip(e, t4.name, ["pid " + t4.pid + ", tid " + t4.tid, t4.rows.reduce(function (s, r) { return s + r.ts.length; }, 0) + " slices"]);
  } else {
    var g = el.closest && el.closest("g.counter");
    if (!g) { hideTip(); return; }
    var c = layout[+g.dataset.c].c, rect = svg.getBoundingClientRect();
    var at = v0 + (e.clientX - rect.left - LABEL_W) / ((W - LABEL_W - 6) / (v1 - v0));
    var ci = lower(c.tsu, at + 1e-9) - 1;
    if (ci < 0) { hideTip(); return; }
    showTip(e, c.name, ["at " + fmtDur(at)].concat(c.keys.map(function (key, kk) { return key + " = " + c.v[kk][ci]; })));
  }
}

function zoom(factor, mx) {
  var plotW = W - LABEL_W - 6, at = v0 + (mx - LABEL_W) / plotW * (v1 - v0);
  var ns = Math.min(span * 4, Math.max(0.01, (v1 - v0) * factor));
  v0 = at - (mx - LABEL_W) / plotW * ns;
  v1 = v0 + ns;
  schedule();
}
function pan(px) { var dt = px * (v1 - v0) / (W - LABEL_W - 6); v0 += dt; v1 += dt; schedule(); }
svg.addEventListener("wheel", function (e) {
  e.preventDefault();
  hideTip();
  var dx = e.shiftKey ? e.deltaY : e.deltaX, unitPx = e.deltaMode === 1 ? 16 : 1;
  if (Math.abs(dx) > Math.abs(e.deltaY) || e.shiftKey) { pan(dx * unitPx); return; }
  var rect = svg.getBoundingClientRect();
  zoom(Math.exp(Math.max(-400, Math.min(400, e.deltaY * unitPx)) * 0.002), Math.max(LABEL_W, e.clientX - rect.left));
}, { passive: false });
var drag = null;
svg.addEventListener("mousedown", function (e) {
  if (e.button !== 0) return;
  drag = { x: e.clientX, v0: v0, v1: v1 };
  svg.classList.add("dragging");
  hideTip();
  e.preventDefault();
});
window.addEventListener("mousemove", function (e) {
  if (!drag) return;
  var dt = (e.clientX - drag.x) * (drag.v1 - drag.v0) / (W - LABEL_W - 6);
  v0 = drag.v0 - dt;
  v1 = drag.v1 - dt;
  schedule();
});
window.addEventListener("mouseup", function () { drag = null; svg.classList.remove("dragging"); });
svg.addEventListener("mousemove", function (e) { if (!drag) hover(e); });
svg.addEventListener("mouseleave", hideTip);
svg.addEventListener("dblclick", reset);
document.getElementById("reset").addEventListener("click", reset);
document.getElementById("zoom-in").addEventListener("click", function () { zoom(0.5, LABEL_W + (W - LABEL_W) / 2); });
document.getElementById("zoom-out").addEventListener("click", function () { zoom(2, LABEL_W + (W - LABEL_W) / 2); });
window.addEventListener("resize", schedule);
if (window.ResizeObserver) { // a page scrollbar appearing narrows the box without a resize event
  new ResizeObserver(function () { if ((box.clientWidth || 800) !== W) schedule(); }).observe(box);
}
render();
body.setAttribute("data-load-ms", (performance.now() - started).toFixed(1));
})();
]==]

return { css = css, body = body, js = js }
