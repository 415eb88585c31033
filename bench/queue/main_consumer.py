# queue.Queue(1024), one producer thread -> the main thread as consumer, 300k ints.
import sys, queue, threading, time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 300000
q = queue.Queue(1024)


def producer():
    for i in range(1, n + 1):
        q.put(i)
    q.put(-1)


t0 = time.perf_counter()
p = threading.Thread(target=producer)
p.start()
s = 0
while True:
    v = q.get()
    if v < 0:
        break
    s += v
dt = time.perf_counter() - t0
p.join()
assert s == n * (n + 1) // 2
print("RESULT queue_main_consumer %.0f" % (n / dt))
