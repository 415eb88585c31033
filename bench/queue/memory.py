# Memory per queued item: RSS growth of a queue.Queue holding 1,000,000 ints.
import sys, queue


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
q = queue.Queue()
rss0 = rss_kb()
for i in range(1, N + 1):
    q.put(i)
grown = rss_kb() - rss0
assert q.qsize() == N and q.get() == 1
print("RESULT queue_1m_ints_bytes %.1f" % (grown * 1024 / N))
