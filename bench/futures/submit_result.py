# submit + result of a trivial task, 4 workers: round trips per second.
import sys, time
from concurrent.futures import ThreadPoolExecutor
N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
def task(x): return x + 1
with ThreadPoolExecutor(4) as ex:
    for i in range(1000): ex.submit(task, i).result()
    t0 = time.monotonic()
    for i in range(N):
        assert ex.submit(task, i).result() == i + 1
    dt = time.monotonic() - t0
print("RESULT submit_result_4w %.0f" % (N / dt))
