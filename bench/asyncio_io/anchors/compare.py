"""Runs bench/asyncio_io side by side with its anchors, alternately, and
prints medians (min-max) and per-round ratios: braid (echo.lua,
subprocess_true.lua, workers.lua), Python asyncio (echo.py ... with
/usr/bin/python3), uvloop (echo.py with BRAID_UVLOOP=1, Debian's
python3-uvloop), raw luv callbacks (anchors/echo_luv.lua under lua5.4),
node `net` (anchors/echo_node.js), and the raw-C floors: the echo on bare
epoll (echo.c) and posix_spawn (subprocess_true.c). usage: python3 anchors/compare.py [--rounds N] [--build DIR]"""
import argparse, os, re, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = "/usr/bin/python3"
RESULT = re.compile(r"^RESULT\s+(\S+)\s+([0-9.eE+-]+)\s*$")


def run(cmd, env=None):
    e = dict(os.environ, **(env or {}))
    try:
        p = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=180, env=e)
    except (OSError, subprocess.TimeoutExpired) as x:
        sys.stderr.write("compare: %s: %s\n" % (" ".join(cmd), x))
        return {}
    out = {}
    for line in p.stdout.splitlines():
        m = RESULT.match(line)
        if m:
            out[m.group(1)] = float(m.group(2))
    if p.returncode != 0 or not out:
        sys.stderr.write("compare: %s: exit %d %s\n" % (" ".join(cmd), p.returncode, p.stderr[-500:]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    braid = os.path.join(os.path.abspath(args.build), "braid")
    tmp = tempfile.mkdtemp()
    cfloor, cecho = os.path.join(tmp, "subprocess_true"), os.path.join(tmp, "echo")
    subprocess.check_call(["cc", "-O2", "-o", cfloor, os.path.join(HERE, "subprocess_true.c")])
    subprocess.check_call(["cc", "-O2", "-o", cecho, os.path.join(HERE, "echo.c")])
    progs = [  # (column, command, env)
        ("braid", [braid, "echo.lua"], None),
        ("python", [PY, "echo.py"], None),
        ("uvloop", [PY, "echo.py"], {"BRAID_UVLOOP": "1"}),
        ("luv", ["lua5.4", "anchors/echo_luv.lua", "1"], None),
        ("luv", ["lua5.4", "anchors/echo_luv.lua", "50"], None),
        ("node", ["node", "anchors/echo_node.js", "1"], None),
        ("node", ["node", "anchors/echo_node.js", "50"], None),
        ("c", [cecho], None),
        ("braid", [braid, "subprocess_true.lua"], None),
        ("python", [PY, "subprocess_true.py"], None),
        ("c", [cfloor], None),
        ("braid", [braid, "workers.lua"], None),
        ("python", [PY, "workers.py"], None),
    ]
    rounds = []  # [{(col, label): value}]
    for r in range(args.rounds):
        got = {}
        for col, cmd, env in progs:
            sys.stderr.write("compare: [%d/%d] %s %s\n" % (r + 1, args.rounds, col, " ".join(cmd[1:])))
            for lab, v in run(cmd, env).items():
                got[(col, lab)] = v
        rounds.append(got)
        time.sleep(1)

    def series(col, lab):
        return [g[(col, lab)] for g in rounds if (col, lab) in g]

    def fmt(xs, f="%.0f"):
        if not xs:
            return "-"
        return (f + " (" + f + "–" + f + ")") % (statistics.median(xs), min(xs), max(xs))

    labels = []
    for g in rounds:
        for (_, lab) in g:
            if lab not in labels:
                labels.append(lab)
    cols = ["braid", "python", "uvloop", "luv", "node", "c"]
    print("| benchmark | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for lab in labels:
        f = "%.1f" if "MiBps" in lab or "speedup" in lab else "%.0f"
        print("| %s | %s |" % (lab, " | ".join(fmt(series(c, lab), f) for c in cols)))
    print()
    print("ratios, braid ÷ anchor, per round: median (min–max)")
    for lab in labels:
        for c in cols[1:]:
            rs = [g[("braid", lab)] / g[(c, lab)] for g in rounds
                  if ("braid", lab) in g and (c, lab) in g and g[(c, lab)] > 0]
            if rs:
                print("  %s vs %s: %s" % (lab, c, fmt(rs, "%.2f")))
    print("load average after: %s" % open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    main()
