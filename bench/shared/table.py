# For scale beside braid's shared.table: a plain dict of 100,000 int keys and
# values (not shared between threads: Python's GIL makes it thread-safe).
import sys, time


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


N = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
rss0 = rss_kb()
t = {}
t0 = time.perf_counter()
for i in range(1, N + 1):
    t[i] = i
dset = time.perf_counter() - t0
grown = rss_kb() - rss0
s = 0
t0 = time.perf_counter()
for i in range(1, N + 1):
    s += t[i]
dget = time.perf_counter() - t0
assert s == N * (N + 1) // 2
t0 = time.perf_counter()
for i in range(1, N + 1):
    t[i] = -i
dover = time.perf_counter() - t0
print("RESULT shared_table_bytes %.1f" % (grown * 1024 / N))
print("RESULT shared_table_sets %.0f" % (N / dset))
print("RESULT shared_table_overwrites %.0f" % (N / dover))
print("RESULT shared_table_gets %.0f" % (N / dget))
