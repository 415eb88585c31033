# TCP echo in Python asyncio: one loop serves and drives one loopback
# connection; 64-byte messages, one at a time (write, drain, readexactly),
# for about a second: reports round trips/s. Then 64 MiB through one
# connection (echoed back): reports MiB/s. usage: python3 echo.py
import asyncio, time


handlers_done = None


async def echo(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()
    handlers_done.set()


async def main():
    global handlers_done
    handlers_done = asyncio.Event()
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    msg = b"x" * 64
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(1000):
            writer.write(msg)
            await writer.drain()
            assert len(await reader.readexactly(64)) == 64
        n += 1000
        dt = time.perf_counter() - t0
        if dt >= 1:
            break
    print("RESULT echo_64b_1conn %.0f" % (n / dt))

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
    await handlers_done.wait()
    server.close()
    await server.wait_closed()


asyncio.run(main())
