# Two CPU-bound threads vs the same work done twice sequentially: speed-up.
import sys, threading, time
N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000000
def work(n):
    s = 0
    for i in range(1, n + 1):
        s += i % 7
    return s
t0 = time.perf_counter(); work(N); work(N); seq = time.perf_counter() - t0
t0 = time.perf_counter()
a = threading.Thread(target=work, args=(N,)); b = threading.Thread(target=work, args=(N,))
a.start(); b.start(); a.join(); b.join()
par = time.perf_counter() - t0
print("RESULT cpu_two_threads_speedup %.2f" % (seq / par))
