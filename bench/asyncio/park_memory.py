# park_memory in Python: process RSS growth per task for 100,000 tasks
# parked on one asyncio.Event (VmRSS from /proc/self/status, after
# gc.collect() on both sides of the measure). RESULT is in tasks per MB
# (1e6 / bytes per task); the bytes per task is printed too.
# usage: python3 park_memory.py [N]
import asyncio, gc, os, sys
n = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("BENCH_N", 100000))


def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024


async def main():
    ev = asyncio.Event()
    woke = 0

    async def waiter():
        nonlocal woke
        await ev.wait()
        woke += 1

    gc.collect()
    before = rss()
    tasks = [asyncio.create_task(waiter()) for _ in range(n)]
    await asyncio.sleep(0)  # every task runs up to its wait and parks
    gc.collect()
    per_task = (rss() - before) / n
    ev.set()
    await asyncio.gather(*tasks)
    assert woke == n, woke
    print("park_bytes_per_task %.0f" % per_task)
    print("RESULT park_tasks_per_mb %.1f" % (1e6 / per_task))


asyncio.run(main())
