# multiprocessing.Queue between two processes: 100,000 small items from a
# child to the parent (issue 9).
import multiprocessing as mp
import time

N = 100000


def producer(q, n):
    for i in range(1, n + 1):
        q.put(i)


if __name__ == "__main__":
    q = mp.Queue()
    p = mp.Process(target=producer, args=(q, N))
    t0 = time.perf_counter()
    p.start()
    s = 0
    for _ in range(N):
        s += q.get()
    p.join()
    dt = time.perf_counter() - t0
    assert s == N * (N + 1) // 2 and p.exitcode == 0
    print("RESULT mp_queue_100k %.1f" % (N / dt))
