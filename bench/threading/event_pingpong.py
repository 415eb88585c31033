# Event set→wait hand-off between two threads: round trips per second.
import sys, threading, time
N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
ping, pong = threading.Event(), threading.Event()
def other():
    for _ in range(N):
        ping.wait(); ping.clear(); pong.set()
t = threading.Thread(target=other); t.start()
t0 = time.perf_counter()
for _ in range(N):
    ping.set(); pong.wait(); pong.clear()
dt = time.perf_counter() - t0
t.join()
print("RESULT event_round_trip %.0f" % (N / dt))
