# 1,000 records {"id", "name", "vals": [i, i*0.5, True]}: pickle.dumps +
# pickle.loads (highest protocol). Both rows are the same pickle round trip,
# the baseline for braid's single-thread codec and its thread-to-thread queue.
import pickle, time

PROTO = pickle.HIGHEST_PROTOCOL
recs = [{"id": i, "name": "user%d" % i, "vals": [i, i * 0.5, True]} for i in range(1, 1001)]


def measure(fn, seconds):
    batch, ops, t0 = 16, 0, time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        ops += batch
        if time.perf_counter() - t0 >= seconds:
            return ops / (time.perf_counter() - t0)


dumps, loads = pickle.dumps, pickle.loads
r = loads(dumps(recs, PROTO))
assert len(r) == 1000 and r[999]["name"] == "user1000" and r[6]["vals"][1] == 3.5
measure(lambda: loads(dumps(recs, PROTO)), 0.1)
v = measure(lambda: loads(dumps(recs, PROTO)), 0.8)
print("RESULT records_roundtrip %.1f" % v)
print("RESULT records_queue %.1f" % v)
