# queue_pingpong in Python: round trips through two queue.Queue between two
# threads. usage: python3 pingpong.py [N]
import queue, sys, threading, time, os
n = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("BENCH_N", 20000))
a, b = queue.Queue(1024), queue.Queue(1024)
def echo():
    while True:
        v = a.get()
        b.put(v)
        if v < 0:
            return
t = threading.Thread(target=echo)
t.start()
t0 = time.perf_counter()
for i in range(n):
    a.put(i)
    assert b.get() == i
dt = time.perf_counter() - t0
a.put(-1); b.get(); t.join()
print("RESULT queue_pingpong %.0f" % (n / dt))
