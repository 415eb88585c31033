#!/usr/bin/env python3
# Benchmark runner: runs every bench/<module>/NAME.{lua,py,c} for braid, Python
# 3's stdlib and raw C, and prints ops/s side by side with the ratios.
"""usage: python3 bench/run.py [--build DIR] [--list] [--check] [filter ...]

Each benchmark NAME under bench/<module>/ has NAME.lua (run with build/braid),
and optionally NAME.py (run with python3) and NAME.c (compiled here with
cc -O2, plus lua5.4's flags when it includes lua.h). Each program prints lines
`RESULT <label> <ops_per_second>`; labels pair up across the three. A filter
is a substring of "module/name" (runs those benchmarks) or a full
"module/name/label" prefix (runs that benchmark, keeps the matching rows). --check exits non-zero
when a goal ratio is missed (a failing program always does).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
TIMEOUT = 120  # seconds per program

# Goals the issues name: "module/name/label" -> (baseline, minimum ratio), or
# a list of them. The baseline is a column ("python", "c"), or "value": the
# braid number itself (for benchmarks that print a ratio, such as a speed-up).
GOALS = {
    "codec/roundtrip/table_roundtrip": ("python", 2.0),  # issue 2
    "codec/roundtrip/function_roundtrip": ("python", 2.0),  # issue 2
    "queue/pingpong/queue_pingpong": ("python", 5.0),  # issue 4
    "queue/1to1/queue_1to1": ("python", 5.0),  # issue 4
    "queue/4to4/queue_4to4": ("python", 5.0),  # issue 4
    "futures/submit_result/submit_result_4w": ("python", 5.0),  # issue 5
    "futures/map/map_100k": ("python", 5.0),  # issue 5
    # issue 3: start+join ≥ 2× Python and within 1.3× of raw C (≥ C / 1.3)
    "threading/start_join/thread_start_join": [("python", 2.0), ("c", 1 / 1.3)],
    "threading/lock/lock_acquire_release": ("python", 2.0),  # issue 3
    "threading/cpu2/cpu_two_threads_speedup": ("value", 1.8),  # issue 3
    "threading/event_pingpong/event_round_trip": ("python", 3.0),  # issue 3
    "asyncio/gather_sleep0/gather_sleep0": ("python", 10.0),  # issue 8
    "asyncio/async_tree/async_tree": ("python", 5.0),  # issue 8
    # issue 8: <= 1.2 KB (1200 B) per parked task, printed as 1e6 / bytes
    "asyncio/park_memory/park_tasks_per_mb": ("value", 1e6 / 1200),
    "asyncio/sleep_10k/sleep_10k": ("value", 5.0),  # issue 8: <= 0.2 s, printed as 1 / s
    "asyncio/thread_task_handoff/handoff_thread_task": ("python", 5.0),  # issue 8
    # issue 8: thread -> task round trip within 2x of thread -> thread
    "asyncio/thread_task_handoff/handoff_task_vs_thread": ("value", 0.5),
    "mpi/map/mpi_map_cs1": ("python", 2.0),  # issue 14 (mpi4py.futures)
    "mpi/map/mpi_map_cs100": ("python", 2.0),  # issue 14
    "mpi/cpu_map/mpi_cpu_map_speedup": ("value", 1.8),  # issue 14: 2 ranks vs sequential
}

RESULT_RE = re.compile(r"^RESULT\s+(\S+)\s+([0-9.eE+-]+)\s*$")


def discover():
    """Returns [(module, name, {"lua": path, "py": path, "c": path})], sorted."""
    found = []
    for module in sorted(os.listdir(BENCH)):
        d = os.path.join(BENCH, module)
        if not os.path.isdir(d):
            continue
        for f in sorted(os.listdir(d)):
            if not f.endswith(".lua"):
                continue
            name = f[:-4]
            impls = {}
            for ext in ("lua", "py"):
                p = os.path.join(d, name + "." + ext)
                if os.path.isfile(p):
                    impls[ext] = p
            # raw-C baselines: NAME.c, or several variants NAME_<variant>.c
            impls["c"] = {}
            for c in sorted(os.listdir(d)):
                if c == name + ".c":
                    impls["c"][""] = os.path.join(d, c)
                elif c.startswith(name + "_") and c.endswith(".c"):
                    impls["c"][c[len(name) + 1:-2]] = os.path.join(d, c)
            found.append((module, name, impls))
    return found


def run(cmd, cwd):
    """Runs cmd; returns ({label: ops}, error text or None)."""
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return {}, "timed out after %d s" % TIMEOUT
    except OSError as e:
        return {}, str(e)
    results = {}
    for line in p.stdout.splitlines():
        m = RESULT_RE.match(line)
        if m:
            results[m.group(1)] = float(m.group(2))
    if p.returncode != 0:
        return results, "exit %d: %s" % (p.returncode, (p.stderr or p.stdout).strip()[-2000:])
    if not results:
        return results, "printed no RESULT line"
    return results, None


def compile_c(src, tmp):
    """Compiles src into tmp; returns (exe path, error text or None)."""
    exe = os.path.join(tmp, os.path.basename(src)[:-2])
    cmd = ["cc", "-O2", "-o", exe, src]
    with open(src, encoding="utf-8", errors="replace") as f:
        if re.search(r"#\s*include\s*[<\"](lua|lauxlib|lualib)\.h", f.read()):
            try:
                flags = subprocess.run(["pkg-config", "--cflags", "--libs", "lua5.4"],
                                       capture_output=True, text=True, check=True).stdout
            except (OSError, subprocess.CalledProcessError):
                return None, "pkg-config lua5.4 failed (install liblua5.4-dev)"
            cmd += flags.split()
    cmd += ["-lpthread", "-lm"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return None, "cc failed: " + p.stderr.strip()[-2000:]
    return exe, None


def fmt_ops(v):
    if v is None:
        return "-"
    if v >= 100:
        return "{:,.0f}".format(v)
    return "{:.2f}".format(v)


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return "{:.2f}×".format(a / b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("filters", nargs="*", help="substrings of module/name/label")
    ap.add_argument("--build", default=os.environ.get("BRAID_BUILD", os.path.join(ROOT, "build")),
                    help="build directory holding braid and braid.so (default: build/)")
    ap.add_argument("--list", action="store_true", help="list benchmarks and exit")
    ap.add_argument("--check", action="store_true", help="exit 1 if a goal is missed")
    args = ap.parse_args()

    def wanted(key):  # key is module/name/label
        return not args.filters or any(f in key.rsplit("/", 1)[0] or f in key
                                       for f in args.filters)

    benches = discover()
    if args.list:
        for module, name, impls in benches:
            kinds = [k for k in ("lua", "py") if k in impls]
            kinds += ["c" + (":" + v if v else "") for v in impls["c"]]
            print("%s/%s: %s" % (module, name, " ".join(kinds)))
        return 0

    braid = os.path.join(os.path.abspath(args.build), "braid")
    if not os.access(braid, os.X_OK):
        sys.stderr.write(
            "bench: %s not found. Build it first, from the repository root:\n"
            "  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build -j\n"
            "(or: bash tools/setup.sh; or point --build at another build directory)\n" % braid)
        return 2
    if not os.path.isfile(os.path.join(os.path.dirname(braid), "braid.so")):
        sys.stderr.write("bench: warning: braid.so missing next to %s\n" % braid)

    rows, errors, missed = [], [], []
    tmp = tempfile.mkdtemp(prefix="braid-bench-")
    try:
        for module, name, impls in benches:
            prefix = "%s/%s" % (module, name)
            if args.filters and not any(f in prefix or f.startswith(prefix + "/")
                                        for f in args.filters):
                continue
            d = os.path.dirname(impls["lua"])
            res = {}
            for col, ext in (("braid", "lua"), ("python", "py")):
                res[col] = {}
                if ext not in impls:
                    continue
                sys.stderr.write("bench: %s.%s ...\n" % (prefix, ext))
                cmd = [braid] if ext == "lua" else [sys.executable]
                res[col], err = run(cmd + [impls[ext]], d)
                if err:
                    errors.append("%s.%s: %s" % (prefix, ext, err))
            cres = {}  # variant -> {label: ops}
            for variant, src in impls["c"].items():
                sys.stderr.write("bench: %s ...\n" % os.path.relpath(src, BENCH))
                exe, err = compile_c(src, tmp)
                cres[variant] = {}
                if exe:
                    cres[variant], err = run([exe], d)
                if err:
                    errors.append("%s: %s" % (os.path.relpath(src, BENCH), err))
            labels = []
            for out in [res["braid"], res["python"]] + list(cres.values()):
                labels += [lab for lab in out if lab not in labels]
            for lab in labels:
                key = "%s/%s" % (prefix, lab)
                if not wanted(key):
                    continue
                # one row per C baseline variant (or one row without C)
                for variant in cres or [None]:
                    shown = key + (" [C: %s]" % variant if variant else "")
                    c = cres[variant].get(lab) if variant is not None else None
                    rows.append((key, shown, res["braid"].get(lab),
                                 res["python"].get(lab), c))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    head = ("benchmark/label", "braid ops/s", "python ops/s", "C ops/s",
            "braid÷python", "braid÷C", "goal")
    table = []
    for key, shown, b, py, c in rows:
        goals = GOALS.get(key, [])
        texts = []
        for base, want in [goals] if isinstance(goals, tuple) else goals:
            ref = {"python": py, "c": c, "value": 1.0}[base]
            what = "≥%.3g%s" % (want, "" if base == "value" else "× " + base)
            ok = b is not None and ref is not None and b / ref >= want
            if b is None or ref is None:
                texts.append("%s: not measured" % what)
            else:
                texts.append("%s: %s" % (what, "met" if ok else "MISSED"))
            if not ok and shown not in missed:
                missed.append(shown)
        goal = "; ".join(texts)
        table.append((shown, fmt_ops(b), fmt_ops(py), fmt_ops(c),
                      fmt_ratio(b, py), fmt_ratio(b, c), goal))
    widths = [max(len(r[i]) for r in [head] + table) for i in range(len(head))]
    line = "  ".join("{:<%d}" % widths[0] if i == 0 else "{:>%d}" % w
                     for i, w in enumerate(widths[:-1])) + "  {}"
    print(line.format(*head))
    print(line.format(*("-" * w for w in widths[:-1]), "-" * widths[-1]))
    for r in table:
        print(line.format(*r))
    if not rows:
        print("(no benchmark matched)")
    for e in errors:
        print("ERROR " + e)
    if errors:
        return 1
    if args.check and missed:
        print("goals missed: " + ", ".join(missed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
