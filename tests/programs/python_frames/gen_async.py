"""Generators and coroutines (tests/tests/python_frames.rs): allocations in
a generator's body consumed by a for loop, and in an `async def` run by
asyncio.run. Each object made there is leaked (one reference too many, the
refcount bug of a C extension), so it outlives the interpreter's
finalization; the rest is freed at a normal exit.
"""

import asyncio
import ctypes

INCREF = ctypes.pythonapi.Py_IncRef
INCREF.argtypes = [ctypes.py_object]
KEPT = []


def produce(n):
    for i in range(n):
        yield "produced-%06d" % i  # @site:produce


def consume(n):
    for item in produce(n):  # @site:consume
        KEPT.append(item)


async def fetch(i):
    await asyncio.sleep(0)
    return {"fetched": i, "text": "fetched-%06d" % i}  # @site:fetch


async def gather(n):
    return await asyncio.gather(*(fetch(i) for i in range(n)))


consume(2000)
KEPT.extend(asyncio.run(gather(500)))
for item in KEPT:
    INCREF(item)
print("gen_async: kept=%d" % len(KEPT))
