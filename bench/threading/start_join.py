# Thread start+join of a no-op target: threads per second.
import sys, threading, time
N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
def noop(): pass
t0 = time.perf_counter()
for _ in range(N):
    t = threading.Thread(target=noop); t.start(); t.join()
print("RESULT thread_start_join %.0f" % (N / (time.perf_counter() - t0)))
