# ex.map over 100k items with a trivial function, 4 workers: items per second.
import sys, time
from concurrent.futures import ThreadPoolExecutor
N = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
def f(x): return x * 2
with ThreadPoolExecutor(4) as ex:
    t0 = time.monotonic()
    s = sum(ex.map(f, range(1, N + 1)))
    dt = time.monotonic() - t0
assert s == N * (N + 1)
print("RESULT map_100k %.0f" % (N / dt))
