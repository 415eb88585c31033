# 4 threads each submit 10k noop tasks to one ThreadPoolExecutor(4) and
# collect their results: tasks per second.
import sys, threading, time
from concurrent.futures import ThreadPoolExecutor

P, PER = 4, int(sys.argv[1]) if len(sys.argv) > 1 else 10000


def noop():
    pass


def producer(ex):
    fs = [ex.submit(noop) for _ in range(PER)]
    for f in fs:
        f.result()


with ThreadPoolExecutor(4) as ex:
    for _ in range(1000):
        ex.submit(noop).result()
    t0 = time.perf_counter()
    ts = [threading.Thread(target=producer, args=(ex,)) for _ in range(P)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
print("RESULT producers_4x10k %.0f" % (P * PER / dt))
