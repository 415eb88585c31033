# Process start + join of an empty target, spawn and fork (issue 9).
import multiprocessing as mp
import time


def nothing():
    pass


def rate(method, secs):
    ctx = mp.get_context(method)

    def once():
        p = ctx.Process(target=nothing)
        p.start()
        p.join()
        assert p.exitcode == 0

    once()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < secs:
        once()
        n += 1
    return n / (time.perf_counter() - t0)


if __name__ == "__main__":
    print("RESULT spawn_start_join %.1f" % rate("spawn", 2))
    print("RESULT fork_start_join %.1f" % rate("fork", 1))
