# Process-shared Lock acquire + release, uncontended (issue 9).
import multiprocessing as mp
import time

if __name__ == "__main__":
    lock = mp.Lock()
    assert lock.acquire() and not lock.acquire(False)
    lock.release()
    N, best = 1000000, 0
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(N):
            lock.acquire()
            lock.release()
        best = max(best, N / (time.perf_counter() - t0))
    print("RESULT mp_lock_acquire_release %.1f" % best)
