# The P producers -> P consumers workload behind 1to1.py and 4to4.py:
# integers through one queue.Queue(1024); prints RESULT <label> <items/s>.
import os, queue, sys, threading, time


def run(P, label):
    n = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("BENCH_N", 200000))
    per = n // P
    q = queue.Queue(1024)
    sums = []

    def producer():
        for i in range(1, per + 1):
            q.put(i)

    def consumer():
        s = 0
        while True:
            v = q.get()
            if v < 0:
                break
            s += v
        sums.append(s)

    t0 = time.perf_counter()
    cs = [threading.Thread(target=consumer) for _ in range(P)]
    ps = [threading.Thread(target=producer) for _ in range(P)]
    for t in cs + ps:
        t.start()
    for t in ps:
        t.join()
    for _ in range(P):
        q.put(-1)
    for t in cs:
        t.join()
    dt = time.perf_counter() - t0
    assert sum(sums) == P * per * (per + 1) // 2
    print("RESULT %s %.0f" % (label, per * P / dt))
