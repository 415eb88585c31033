# gather_sleep0 in Python: one asyncio.gather of 100,000 tasks that each
# sleep(0) once, repeated for about a second; reports tasks/s (creating the
# tasks included). usage: python3 gather_sleep0.py [N]
import asyncio, os, sys, time
n = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("BENCH_N", 100000))


async def leaf(i):
    await asyncio.sleep(0)
    return i


async def round_():
    tasks = [asyncio.create_task(leaf(i)) for i in range(1, n + 1)]
    return await asyncio.gather(*tasks)


async def main():
    res = await round_()  # warm-up and check
    assert len(res) == n and res[0] == 1 and res[-1] == n
    rounds, t0 = 0, time.perf_counter()
    while True:
        await round_()
        rounds += 1
        dt = time.perf_counter() - t0
        if dt >= 1 and rounds >= 2:
            break
    print("RESULT gather_sleep0 %.0f" % (rounds * n / dt))


asyncio.run(main())
