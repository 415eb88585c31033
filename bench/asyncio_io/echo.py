# TCP echo in Python asyncio: one loop serves and drives loopback
# connections; 64-byte messages, one at a time per connection (write,
# drain, readexactly), for about a second: reports round trips/s over 1 and
# over 50 connections. Then 64 MiB through one connection (echoed back):
# reports MiB/s. usage: python3 echo.py; BRAID_UVLOOP=1 /usr/bin/python3
# echo.py runs it on uvloop (Debian's python3-uvloop).
import asyncio, os, time


async def echo(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()


async def pingpong(port, nconn):
    msg = b"x" * 64
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(nconn)]
    t0 = time.perf_counter()
    stop = t0 + 1
    total = 0

    async def client(reader, writer):
        nonlocal total
        n = 0
        while True:
            for _ in range(100):
                writer.write(msg)
                await writer.drain()
                assert len(await reader.readexactly(64)) == 64
            n += 100
            if time.perf_counter() >= stop:
                break
        total += n

    await asyncio.gather(*(client(r, w) for r, w in conns))
    dt = time.perf_counter() - t0
    for _, w in conns:
        w.close()
    return total / dt


async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print("RESULT echo_64b_1conn %.0f" % await pingpong(port, 1))
    print("RESULT echo_64b_50conn %.0f" % await pingpong(port, 50))

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    chunk = b"y" * 65536
    total = 64 * 1024 * 1024
    t0 = time.perf_counter()

    async def sender():
        for _ in range(total // len(chunk)):
            writer.write(chunk)
            await writer.drain()

    st = asyncio.create_task(sender())
    got = 0
    while got < total:
        got += len(await reader.read(262144))
    await st
    dt = time.perf_counter() - t0
    print("RESULT echo_64mib_MiBps %.1f" % (total / dt / 1048576))
    writer.close()
    server.close()
    await server.wait_closed()


if os.environ.get("BRAID_UVLOOP"):
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
asyncio.run(main())
