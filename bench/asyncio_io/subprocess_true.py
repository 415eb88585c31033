# Subprocess start + communicate of `true` (stdout piped), one after the
# other for about a second: reports processes/s. usage: python3 subprocess_true.py
import asyncio, time


async def main():
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(20):
            p = await asyncio.create_subprocess_exec("true", stdout=asyncio.subprocess.PIPE)
            await p.communicate()
            assert p.returncode == 0
        n += 20
        dt = time.perf_counter() - t0
        if dt >= 1:
            break
    print("RESULT subprocess_true %.0f" % (n / dt))


asyncio.run(main())
