# Codec round trip, Python side: pickle.dumps + pickle.loads (highest protocol)
# of the same 1,000-field nested data and of a function with 5 captured values.
import pickle
import time

PROTO = pickle.HIGHEST_PROTOCOL


def make_records():
    # 100 records x 10 fields (4 of them nested): same shape as roundtrip.lua
    return [
        {
            "id": i,
            "name": "user%d" % i,
            "email": "user%d@example.com" % i,
            "active": i % 2 == 0,
            "score": i * 1.5,
            "balance": -i * 100,
            "tags": ["alpha", "beta", "gamma"],
            "pos": {"x": i, "y": i * 2},
            "history": [i, i + 1, i + 2, i + 3],
            "meta": {"created": 1700000000 + i, "note": "note %d" % i},
        }
        for i in range(1, 101)
    ]


# pickle cannot serialize closures, so the closest equivalent of a Lua function
# with 5 upvalues is a module-level function (pickled by reference: its name,
# not its code) plus a tuple of the 5 values it would have captured.
def scaled(x, count, rate, label, weights, enabled):
    if not enabled:
        return x
    s = 0
    for w in weights:
        s += w * x
    return label, s * rate + count


def make_function():
    return (scaled, (7, 0.25, "scaled", [1, 2, 3, 4], True))


def measure(fn, seconds):
    batch, ops, t0 = 64, 0, time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        ops += batch
        if time.perf_counter() - t0 >= seconds:
            return ops / (time.perf_counter() - t0)


def main():
    dumps, loads = pickle.dumps, pickle.loads
    records, fn = make_records(), make_function()

    r = loads(dumps(records, PROTO))
    assert len(r) == 100 and r[99]["meta"]["note"] == "note 100" and r[6]["history"][3] == 10
    f, ups = loads(dumps(fn, PROTO))
    assert f(2, *ups) == ("scaled", 12.0)

    measure(lambda: loads(dumps(records, PROTO)), 0.1)  # warm up
    print("RESULT table_roundtrip %.1f" % measure(lambda: loads(dumps(records, PROTO)), 0.8))
    print("RESULT function_roundtrip %.1f" % measure(lambda: loads(dumps(fn, PROTO)), 0.8))


if __name__ == "__main__":
    main()
