# thread_task_handoff in Python: round trips between a thread and an asyncio
# task. handoff_thread_task: the thread hands i to the loop with
# loop.call_soon_threadsafe(aq.put_nowait, i), a task gets it from the
# asyncio.Queue and answers on a queue.Queue the thread gets from (Python has
# no queue that both sides can block on). handoff_thread_thread: the same
# round trip between two threads through two queue.Queue.
# handoff_task_vs_thread is the ratio of the two.
# usage: python3 thread_task_handoff.py [N]
import asyncio, os, queue, sys, threading, time
n = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("BENCH_N", 20000))


def driver(put, q2, out):
    for i in range(1000):
        put(i)
        assert q2.get() == i
    t0 = time.perf_counter()
    for i in range(n):
        put(i)
        assert q2.get() == i
    dt = time.perf_counter() - t0
    put(-1)
    out.append(n / dt)


async def main():
    loop = asyncio.get_running_loop()
    aq, q2, out = asyncio.Queue(), queue.Queue(), []
    t = threading.Thread(target=driver,
                         args=(lambda v: loop.call_soon_threadsafe(aq.put_nowait, v), q2, out))
    t.start()
    while True:
        v = await aq.get()
        if v < 0:
            break
        q2.put(v)
    t.join()
    return out[0]


task_rate = asyncio.run(main())


def echo(q1, q2):
    while True:
        v = q1.get()
        if v < 0:
            return
        q2.put(v)


q1, q2, out = queue.Queue(), queue.Queue(), []
e = threading.Thread(target=echo, args=(q1, q2))
e.start()
d = threading.Thread(target=driver, args=(q1.put, q2, out))
d.start()
d.join()
e.join()
thread_rate = out[0]

print("RESULT handoff_thread_task %.0f" % task_rate)
print("RESULT handoff_thread_thread %.0f" % thread_rate)
print("RESULT handoff_task_vs_thread %.3f" % (task_rate / thread_rate))
