# sleep_10k in Python: 10,000 tasks each sleep(0.1) at once, gathered; the
# wall time of one such round (task creation included), best of 5 rounds
# after a warm-up, reported as rounds per second (1 / wall time). The wall
# time is printed too. usage: python3 sleep_10k.py [N]
import asyncio, os, sys, time
n = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("BENCH_N", 10000))


async def sleeper(i):
    await asyncio.sleep(0.1)
    return i


async def round_():
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(sleeper(i)) for i in range(1, n + 1)]
    res = await asyncio.gather(*tasks)
    dt = time.perf_counter() - t0
    assert len(res) == n and res[-1] == n
    return dt


async def main():
    await round_()  # warm-up
    best = min([await round_() for _ in range(5)])
    print("sleep_10k_wall_s %.4f" % best)
    print("RESULT sleep_10k %.3f" % (1 / best))


asyncio.run(main())
