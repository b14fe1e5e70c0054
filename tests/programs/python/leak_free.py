"""A leak-free Python program for the exit scan (tests/tests/python_leaks.rs).

It builds the kinds of heap a real program has and keeps them until exit:
dicts, lists, tuples, sets, instances of ordinary classes (3.11+ keeps
their attributes in managed-dict values), instances with __slots__, of a
class with a metaclass, closures, a generator, bound methods, and a
module-level cache. Nothing is lost: everything is held by the module's
globals (reachable through Python object pointers, which point 16 or 32
bytes into their malloc blocks) or freed.
"""

import functools


class Meta(type):
    registry = []

    def __new__(mcs, name, bases, ns):
        cls = super().__new__(mcs, name, bases, ns)
        mcs.registry.append(cls)
        return cls


class Node:
    def __init__(self, name, value):
        self.name = name
        self.value = value
        self.children = []
        self.meta = {"created": value, "tags": [name.upper(), name[::-1]]}

    def add(self, child):
        self.children.append(child)
        return child


class Point:
    __slots__ = ("x", "y")

    def __init__(self, x, y):
        self.x = x
        self.y = y


class Registered(metaclass=Meta):
    def __init__(self, n):
        self.n = n
        self.square = n * n


def make_counter(start):
    count = [start]

    def step(by=1):
        count[0] += by
        return count[0]

    return step


def numbers(limit):
    for i in range(limit):
        yield i * 3


CACHE = {}


@functools.lru_cache(maxsize=None)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def cached_text(key):
    if key not in CACHE:
        CACHE[key] = ("value-%d" % key) * 3
    return CACHE[key]


root = Node("root", 0)
for i in range(200):
    child = root.add(Node("child%d" % i, i))
    for j in range(5):
        child.add(Node("leaf%d.%d" % (i, j), i * 10 + j))

points = [Point(i, -i) for i in range(500)]
registered = [Registered(i) for i in range(100)]
table = {("k", i): {"list": list(range(i % 17)), "set": {i, i + 1}} for i in range(300)}
counters = [make_counter(i) for i in range(50)]
for c in counters:
    c(2)
gen = numbers(1000)
first = [next(gen) for _ in range(10)]
methods = [n.add for n in root.children[:20]]
texts = [cached_text(i % 97) for i in range(1000)]
fibs = [fib(i) for i in range(80)]
big = bytearray(200_000)
strings = " ".join("word%d" % i for i in range(2000)).split()

# Some garbage, made and dropped: freed (cycles by the collector).
for _ in range(50):
    a = Node("a", 1)
    b = Node("b", 2)
    a.children.append(b)
    b.children.append(a)
del a, b
import gc

gc.collect()

print("leak_free: nodes=%d points=%d cache=%d" % (len(root.children), len(points), len(CACHE)))

if "--exit-now" in __import__("sys").argv:
    # Leave through the C library's exit(), skipping the interpreter's
    # finalization, which would free most of the above before the exit
    # scan sees it: the scan then finds the whole heap alive, held through
    # object pointers only.
    import ctypes
    import sys

    sys.stdout.flush()
    ctypes.CDLL(None).exit(0)
