# CPU-bound map on 2 workers against sequential (the GIL keeps threads from helping).
import sys, time
from concurrent.futures import ThreadPoolExecutor
N = int(sys.argv[1]) if len(sys.argv) > 1 else 64
def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)
t0 = time.monotonic(); seq = sum(fib(24) for _ in range(N)); t_seq = time.monotonic() - t0
with ThreadPoolExecutor(2) as ex:
    t0 = time.monotonic(); par = sum(ex.map(fib, [24] * N)); t_par = time.monotonic() - t0
assert par == seq
print("RESULT cpu_map_sequential %.1f" % (N / t_seq))
print("RESULT cpu_map_2workers %.1f" % (N / t_par))
print("speedup %.2fx" % (t_seq / t_par))
