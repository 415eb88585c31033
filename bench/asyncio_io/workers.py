# The same server in Python asyncio (one loop: Python cannot spread one
# asyncio server over cores): a handler doing about 100 µs of Python work
# per request, 50 connections from a load generator in its own process
# (anchors/loadgen.c compiled with cc, as workers.lua does; else this
# script with `client`).
# usage: python3 workers.py
import asyncio, os, subprocess, sys, tempfile, time


async def work(reader, writer):
    while True:
        req = await reader.read(64)
        if not req:
            break
        x = 0
        for i in range(1, 2500):  # ~100 µs of Python
            x += i % 7
        writer.write(b"r" * 63 + str(x % 10).encode())
    writer.close()


async def client(port, secs):
    n = 0
    stop = time.monotonic() + secs

    async def one():
        nonlocal n
        r, w = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < stop:
            w.write(b"q" * 64)
            await r.readexactly(64)
            n += 1
        w.close()

    await asyncio.gather(*(one() for _ in range(50)))
    print(n / secs)


async def main():
    server = await asyncio.start_server(work, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    here = os.path.dirname(os.path.abspath(sys.argv[0]))
    loadgen = tempfile.mktemp()
    if subprocess.call(["cc", "-O2", "-o", loadgen, os.path.join(here, "anchors", "loadgen.c")],
                       stderr=subprocess.DEVNULL) == 0:
        cmd = [loadgen, str(port), "1.5", "50"]
    else:
        cmd = [sys.executable, sys.argv[0], "client", str(port), "1.5"]
    p = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
    out, _ = await p.communicate()
    if os.path.exists(loadgen):
        os.remove(loadgen)
    server.close()
    print("RESULT workers_1loop %.0f" % float(out.split()[0]))


if len(sys.argv) > 1 and sys.argv[1] == "client":
    asyncio.run(client(int(sys.argv[2]), float(sys.argv[3])))
else:
    asyncio.run(main())
