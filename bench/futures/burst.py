# ThreadPoolExecutor(4): a burst of 50k submit(noop), then 50k result().
import sys, time
from concurrent.futures import ThreadPoolExecutor

N = int(sys.argv[1]) if len(sys.argv) > 1 else 50000


def schedstat():
    """ns on a CPU and ns runnable but waiting for one, of this thread."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            run, wait = f.read().split()[:2]
        return int(run), int(wait)
    except (OSError, ValueError):
        return None


def noop():
    pass


with ThreadPoolExecutor(4) as ex:
    for _ in range(1000):
        ex.submit(noop).result()
    s0 = schedstat()
    t0 = time.perf_counter()
    fs = [ex.submit(noop) for _ in range(N)]
    t1 = time.perf_counter()
    s1 = schedstat()
    for f in fs:
        f.result()
    dt = time.perf_counter() - t0
print("RESULT burst_50k %.0f" % (N / dt))
print("RESULT burst_submit_us %.3f" % ((t1 - t0) / N * 1e6))
if s0 and s1:
    print("RESULT burst_submit_cpu_us %.3f" % ((s1[0] - s0[0]) / N / 1e3))
    print("RESULT burst_submit_runq_us %.3f" % ((s1[1] - s0[1]) / N / 1e3))
