"""Qualified names of Python frames (tests/tests/python_frames.rs): a
method, a nested function and a method of a nested class allocate, and keep
what they made until the exit scan (libc's exit(), no finalization).
"""

import ctypes
import sys


class Cache:
    def __init__(self):
        self.data = {}

    def put(self, key, value):
        self.data[key] = [value, "cached-%06d" % key]  # @site:put

    class Entry:
        def build(self, n):
            return {"entry": n, "text": "entry-%06d" % n}  # @site:build


def outer(n):
    kept = []

    def inner(i):
        kept.append("inner-%06d" % i)  # @site:inner

    for i in range(n):
        inner(i)  # @site:outer
    return kept


cache = Cache()
for k in range(1000):
    cache.put(k, k * 2)
entries = [Cache.Entry().build(n) for n in range(500)]
kept = outer(1000)
print("qualnames: cache=%d entries=%d kept=%d" % (len(cache.data), len(entries), len(kept)))
sys.stdout.flush()
ctypes.CDLL(None).exit(0)
