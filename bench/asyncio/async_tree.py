# async_tree in Python: pyperformance's async_tree ("io" variant with
# sleep(0) at the leaves instead of 50 ms): each node gathers 6 children, 6
# levels deep (46,656 leaves); repeated for about a second; reports trees/s.
# usage: python3 async_tree.py [depth]
import asyncio, sys, time
depth = int(sys.argv[1]) if len(sys.argv) > 1 else 6
BRANCHES = 6
leaves = 0


async def recurse_with_gather(level):
    global leaves
    if level == 0:
        await asyncio.sleep(0)  # the leaf's "I/O"
        leaves += 1
        return
    await asyncio.gather(*[recurse_with_gather(level - 1) for _ in range(BRANCHES)])


async def main():
    await recurse_with_gather(depth)  # warm-up and check
    assert leaves == BRANCHES ** depth, leaves
    trees, t0 = 0, time.perf_counter()
    while True:
        await recurse_with_gather(depth)
        trees += 1
        dt = time.perf_counter() - t0
        if dt >= 1 and trees >= 2:
            break
    print("RESULT async_tree %.2f" % (trees / dt))


asyncio.run(main())
