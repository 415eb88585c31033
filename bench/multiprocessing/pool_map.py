# ProcessPoolExecutor.map of a trivial function over 20,000 items with
# chunksize 1 (issue 9). Python's CPU-bound speed-up is not a goal: skipped.
import concurrent.futures as cf
import time

N = 20000


def trivial(x):
    return x


if __name__ == "__main__":
    with cf.ProcessPoolExecutor(max_workers=2) as ex:
        t0 = time.perf_counter()
        n = sum(ex.map(trivial, range(1, N + 1), chunksize=1))
        dt = time.perf_counter() - t0
        assert n == N * (N + 1) // 2
        print("RESULT ppe_map_20k_chunksize1 %.1f" % (N / dt))
