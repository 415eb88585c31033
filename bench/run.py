#!/usr/bin/env python3
# Benchmark runner: runs every bench/<module>/NAME.{lua,py,c} for braid, Python
# 3's stdlib and raw C, and prints ops/s side by side with the ratios.
"""usage: python3 bench/run.py [--build DIR] [--list] [--check] [--rounds N] [filter ...]

Each benchmark NAME under bench/<module>/ has NAME.lua (run with build/braid),
and optionally NAME.py (run with python3) and NAME.c (compiled here with
cc -O2, plus lua5.4's flags when it includes lua.h). Each program prints lines
`RESULT <label> <ops_per_second>`; labels pair up across the three. A filter
is a substring of "module/name" (runs those benchmarks) or a full
"module/name/label" prefix (runs that benchmark, keeps the matching rows). --check exits non-zero
when a goal ratio is missed (a failing program always does).

Every benchmark runs --rounds times (default 5), alternating the braid, Python
and C programs within each round; each cell shows the median with min–max, and
ratios are taken between programs of the same round (the machine's speed drifts
between rounds). --check judges the medians. Labels ending in _bytes, _kb, _us
or _ns are costs: lower is better and their ratios are python÷braid.
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
# Modules whose Python programs are anchored on Debian's packages (uvloop):
# they run under /usr/bin/python3, as their anchors/compare.py runs them,
# whatever python3 runs this script (a pyenv build may come first on PATH,
# and its asyncio is ~6% slower: MEASURING.md, docs/asyncio-io.md "Speed").
DEBIAN_PYTHON = {"asyncio_io"}

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
    # issue 11. "steady": the slowest round ≥ that fraction of the median.
    # Costs (labels ending _bytes, _kb, _us) with "value": the median ≤ the bound.
    "queue/main_consumer/queue_main_consumer": [("python", 5.0), ("steady", 0.7)],
    "futures/burst/burst_50k": ("python", 8.0),
    "futures/burst/burst_submit_us": ("value", 1.0),
    "futures/producers/producers_4x10k": ("python", 5.0),
    "codec/records/records_roundtrip": ("python", 1.0),
    "codec/records/records_queue": ("python", 1.5),
    "threading/parked/parked_start_1000": ("python", 2.0),
    "threading/parked/parked_start_5000": ("python", 2.0),
    "threading/parked/parked_rss_1000_kb": ("value", 40),
    "threading/parked/parked_rss_5000_kb": ("value", 40),
    "queue/memory/queue_1m_ints_bytes": ("value", 40),
    "shared/table/shared_table_bytes": ("value", 96),
    "shared/table/shared_table_sets": ("value", 2e6),
    "shared/table/shared_table_gets": ("value", 4e6),
    "multiprocessing/start_join/spawn_start_join": ("python", 20.0),  # issue 9
    "multiprocessing/start_join/fork_start_join": ("python", 2.0),  # issue 9
    "multiprocessing/mp_queue/mp_queue_100k": ("python", 3.0),  # issue 9
    "multiprocessing/lock/mp_lock_acquire_release": ("python", 1.3),  # issue 9
    "multiprocessing/pool_map/ppe_map_20k_chunksize1": ("python", 3.0),  # issue 9
    "multiprocessing/pool_map/ppe_cpu_two_workers_speedup": ("value", 1.8),  # issue 9
    "mpi/map/mpi_map_cs1": ("python", 2.0),  # issue 14 (mpi4py.futures)
    "mpi/map/mpi_map_cs100": ("python", 2.0),  # issue 14
    "mpi/cpu_map/mpi_cpu_map_speedup": ("value", 1.8),  # issue 14: 2 ranks vs sequential
}
GOALS["queue/1to1/queue_1to1"] = [GOALS["queue/1to1/queue_1to1"], ("steady", 0.7)]

RESULT_RE = re.compile(r"^RESULT\s+(\S+)\s+([0-9.eE+-]+)\s*$")


def discover():
    """Returns [(module, name, {"lua": path, "py": path, "c": path})], sorted."""
    found = []
    for module in sorted(os.listdir(BENCH)):
        d = os.path.join(BENCH, module)
        if not os.path.isdir(d) or module == "lib":  # lib/: helpers the benchmarks load
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


def python_for(module):
    """The interpreter of a module's .py programs."""
    if module in DEBIAN_PYTHON and os.access("/usr/bin/python3", os.X_OK):
        return "/usr/bin/python3"
    return sys.executable


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
    return "{:.3g}".format(v)


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def fmt_spread(xs, fmt):
    """'median (min–max)' of a list of numbers, or '-'."""
    if not xs:
        return "-"
    if len(xs) == 1:
        return fmt(xs[0])
    return "%s (%s–%s)" % (fmt(median(xs)), fmt(min(xs)), fmt(max(xs)))


def fmt_ratio(r):
    return "{:.2f}×".format(r)


def lower_is_better(label):
    """Labels naming a cost (bytes, KB, µs) rather than a rate."""
    return re.search(r"_(bytes|kb|us|ns)(_|$)", label) is not None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("filters", nargs="*", help="substrings of module/name/label")
    ap.add_argument("--build", default=os.environ.get("BRAID_BUILD", os.path.join(ROOT, "build")),
                    help="build directory holding braid and braid.so (default: build/)")
    ap.add_argument("--list", action="store_true", help="list benchmarks and exit")
    ap.add_argument("--check", action="store_true", help="exit 1 if a goal is missed")
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds per benchmark, each running braid, Python and C once "
                         "(default 5; --rounds 1 for a quick look)")
    args = ap.parse_args()
    rounds = max(1, args.rounds)

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
            # the programs of one round: (column, variant, command)
            progs = []
            for col, ext in (("braid", "lua"), ("python", "py")):
                if ext in impls:
                    cmd = [braid] if ext == "lua" else [python_for(module)]
                    progs.append((col, None, cmd + [impls[ext]], "%s.%s" % (prefix, ext)))
            variants = []
            for variant, src in impls["c"].items():
                exe, err = compile_c(src, tmp)
                if err:
                    errors.append("%s: %s" % (os.path.relpath(src, BENCH), err))
                    continue
                variants.append(variant)
                progs.append(("c", variant, [exe], os.path.relpath(src, BENCH)))
            # runs[(col, variant)] = [{label: value} per round]
            runs = {(col, v): [] for col, v, _, _ in progs}
            failed = set()
            for r in range(rounds):
                for col, variant, cmd, what in progs:
                    if (col, variant) in failed:
                        continue
                    sys.stderr.write("bench: [%d/%d] %s ...\n" % (r + 1, rounds, what))
                    out, err = run(cmd, d)
                    if err:
                        errors.append("%s: %s" % (what, err))
                        failed.add((col, variant))
                    runs[(col, variant)].append(out)
            labels = []
            for outs in runs.values():
                for out in outs:
                    labels += [lab for lab in out if lab not in labels]

            def series(col, variant, lab):
                return [out.get(lab) for out in runs.get((col, variant), [])]

            for lab in labels:
                key = "%s/%s" % (prefix, lab)
                if not wanted(key):
                    continue
                b = series("braid", None, lab)
                py = series("python", None, lab)
                for variant in variants or [None]:
                    shown = key + (" [C: %s]" % variant if variant else "")
                    c = series("c", variant, lab) if variant is not None else []
                    rows.append((key, shown, b, py, c))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def same_round(a, b, lower):
        """Per-round ratios braid÷base (base÷braid for costs), rounds where both ran."""
        out = []
        for x, y in zip(a, b):
            if x is not None and y is not None and x > 0 and y > 0:
                out.append(y / x if lower else x / y)
        return out

    head = ("benchmark/label", "braid", "python", "C", "braid÷python", "braid÷C", "goal")
    table = []
    for key, shown, b, py, c in rows:
        lab = key.rsplit("/", 1)[1]
        lower = lower_is_better(lab)
        bv = [x for x in b if x is not None]
        rp, rc = same_round(b, py, lower), same_round(b, c, lower)
        goals = GOALS.get(key, [])
        texts = []
        for base, want in [goals] if isinstance(goals, tuple) else goals:
            # judged on medians: of the same-round ratios, or of the braid value
            if base == "steady":
                got = min(bv) / median(bv) if bv else None
                ok = got is not None and (got >= want if not lower else True)
                what = "slowest≥%.2g×median" % want
            elif base == "value":
                got = median(bv) if bv else None
                ok = got is not None and (got <= want if lower else got >= want)
                what = "%s%.3g" % ("≤" if lower else "≥", want)
            else:
                rs = rp if base == "python" else rc
                got = median(rs) if rs else None
                ok = got is not None and got >= want
                what = "≥%.3g× %s" % (want, base)
            if got is None:
                texts.append("%s: not measured" % what)
            else:
                texts.append("%s: %s" % (what, "met" if ok else "MISSED"))
            if not ok and shown not in missed:
                missed.append(shown)
        table.append((shown, fmt_spread(bv, fmt_ops),
                      fmt_spread([x for x in py if x is not None], fmt_ops),
                      fmt_spread([x for x in c if x is not None], fmt_ops),
                      fmt_spread(rp, fmt_ratio), fmt_spread(rc, fmt_ratio), "; ".join(texts)))
    widths = [max(len(r[i]) for r in [head] + table) for i in range(len(head))]
    line = "  ".join("{:<%d}" % widths[0] if i == 0 else "{:>%d}" % w
                     for i, w in enumerate(widths[:-1])) + "  {}"
    print("%d round(s); each cell: median (min–max); ratios are taken within a round" % rounds)
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
