# ThreadPoolExecutor(4): a burst of 50k submit(noop), then 50k result().
import sys, time
from concurrent.futures import ThreadPoolExecutor

N = int(sys.argv[1]) if len(sys.argv) > 1 else 50000


def noop():
    pass


with ThreadPoolExecutor(4) as ex:
    for _ in range(1000):
        ex.submit(noop).result()
    t0 = time.perf_counter()
    fs = [ex.submit(noop) for _ in range(N)]
    t1 = time.perf_counter()
    for f in fs:
        f.result()
    dt = time.perf_counter() - t0
print("RESULT burst_50k %.0f" % (N / dt))
print("RESULT burst_submit_us %.3f" % ((t1 - t0) / N * 1e6))
