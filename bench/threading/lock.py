# Uncontended Lock acquire+release: pairs per second.
import sys, threading, time
N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000000
l = threading.Lock()
acquire, release = l.acquire, l.release
t0 = time.perf_counter()
for _ in range(N):
    l.acquire(); l.release()
print("RESULT lock_acquire_release %.0f" % (N / (time.perf_counter() - t0)))
