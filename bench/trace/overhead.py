#!/usr/bin/env python3
"""Tracing overhead (issue 13), after MEASURING.md: medians (min-max) of
alternating runs.

  python3 bench/trace/overhead.py [--rounds 5] [--build build]
                                  [--baseline build-notrace]

- off vs baseline: bench/queue/1to1.lua and bench/threading programs on
  the normal build (tracing compiled in, off) and on a build configured
  with -DCMAKE_C_FLAGS=-DBRAID_TRACE_DISABLED (the recorder's branch
  compiled out); goal: <= 1 % slower.
- on vs off: bench/queue/1to1.lua with BRAID_TRACE set (a temp file);
  goal: <= 20 % slower. "on/off" is the program's own rate (items/s while
  it runs); "on/off wall" the whole process, including what the trace
  formats once the program is done (records the flusher had no idle core
  for are formatted at exit).
- per event: bench/trace/events.lua (single-thread put+get, 4 events a
  pair); goal: <= 0.5 us.
"""
import argparse, os, re, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# bench programs timed on both builds (tracing compiled in and off, and out)
OFF_PROGRAMS = [("threading", "lock.lua"), ("threading", "event_pingpong.lua"),
                ("futures", "submit_result.lua")]


def result(cmd, env=None, cwd=None):
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=True).stdout
    r = {m.group(1): float(m.group(2)) for m in re.finditer(r"RESULT (\S+) (\S+)", out)}
    r["wall_s"] = time.perf_counter() - t0
    return r


def fmt(xs):
    return "%.3g (%.3g-%.3g)" % (statistics.median(xs), min(xs), max(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--baseline", default=os.path.join(ROOT, "build-notrace"))
    ap.add_argument("--n", default="2000000",
                    help="items through the queue per run (1to1.lua's own default)")
    a = ap.parse_args()
    exe = os.path.join(a.build, "braid")
    base = os.path.join(a.baseline, "braid")
    qdir = os.path.join(ROOT, "bench", "queue")
    tmp = tempfile.mkdtemp()
    trace = os.path.join(tmp, "t.json")
    env_off = dict(os.environ)
    env_off.pop("BRAID_TRACE", None)
    env_on = dict(env_off, BRAID_TRACE=trace)
    rows = {"off/baseline (1to1)": [], "on/off (1to1)": [], "on/off wall (1to1)": [],
            "event_us": []}
    for r in range(a.rounds):
        r_off = result([exe, "1to1.lua", a.n], env_off, qdir)
        r_on = result([exe, "1to1.lua", a.n], env_on, qdir)
        off, on = r_off["queue_1to1"], r_on["queue_1to1"]
        rows["on/off wall (1to1)"].append(r_on["wall_s"] / r_off["wall_s"])
        os.remove(trace)
        if os.path.exists(base):
            b = result([base, "1to1.lua", a.n], env_off, qdir)["queue_1to1"]
            rows["off/baseline (1to1)"].append(b / off)  # time ratio: > 1 = slower
        rows["on/off (1to1)"].append(off / on)
        if os.path.exists(base):
            for mod, prog in OFF_PROGRAMS:
                d = os.path.join(ROOT, "bench", mod)
                x = result([exe, prog], env_off, d)
                y = result([base, prog], env_off, d)
                for label in x:
                    if label != "wall_s" and label in y and x[label] > 0:
                        cost = label.endswith(("_us", "_bytes", "_kb"))
                        rows.setdefault("off/baseline %s/%s" % (mod, label), []).append(
                            x[label] / y[label] if cost else y[label] / x[label])
        ev = result([exe, os.path.join(ROOT, "bench", "trace", "events.lua"), "0.3"], env_off)
        rows["event_us"].append(ev["trace_event_us"])
        print("round", r + 1, {k: round(v[-1], 3) for k, v in rows.items() if v}, file=sys.stderr)
    print("time ratios (> 1: slower), medians (min-max) of %d alternating rounds:" % a.rounds)
    for k, v in rows.items():
        if v:
            print("  %-22s %s" % (k, fmt(v)))
    os.rmdir(tmp)


if __name__ == "__main__":
    main()
