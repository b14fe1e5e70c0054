"""Control for py_mutable_default.py: the same 5,000 requests, each record
built through a `functools.lru_cache(maxsize=64)` function, so at most 64
records are kept: steady or early-growth (the cache fills in the first few
ms)."""
import functools
import json
import time


@functools.lru_cache(maxsize=64)
def cached_record(i):
    body = json.dumps({"id": i, "path": f"/item/{i}", "agent": "client/1.0 " + "x" * 120})
    return json.loads(body)


def handle(i):
    record = cached_record(i)  # @site:lru_cache
    return len(record["agent"])


def main():
    n = 0
    for i in range(5000):
        n += handle(i)
        if i % 10 == 9:
            time.sleep(0.003)
    print("served", n, cached_record.cache_info())


if __name__ == "__main__":
    main()
