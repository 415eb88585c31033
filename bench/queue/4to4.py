# queue_4to4 in Python: 4 producer(s) -> 4 consumer(s) through one
# queue.Queue(1024). usage: python3 4to4.py [N]
import queue, sys, threading, time, os
n = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("BENCH_N", 200000))
P = 4
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
print("RESULT queue_4to4 %.0f" % (per * P / dt))
