# Many threads at once: start 1,000 (then 5,000) threads that each park on one
# Event; RSS growth per parked thread; then set the Event and join them all.
import sys, threading, time


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


def waiter(go, parked):
    parked.release()
    go.wait()


for n in [int(a) for a in sys.argv[1:]] or [1000, 5000]:
    go, parked = threading.Event(), threading.Semaphore(0)
    rss0 = rss_kb()
    t0 = time.perf_counter()
    ts = [threading.Thread(target=waiter, args=(go, parked)) for _ in range(n)]
    for t in ts:
        t.start()
    for _ in range(n):
        parked.acquire()
    dt = time.perf_counter() - t0
    rss = rss_kb() - rss0
    go.set()
    for t in ts:
        t.join()
    print("RESULT parked_start_%d %.0f" % (n, n / dt))
    print("RESULT parked_rss_%d_kb %.1f" % (n, rss / n))
