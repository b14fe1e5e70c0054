#!/usr/bin/env python3
"""Benchmark workload: Python object churn, the allocator traffic of ordinary
Python code.

Builds 200,000 small records (a dict holding a str, a list and a nested dict)
in one list, walks them and drops them all, then round-trips 20,000 such
records (1.7 MB of JSON text) through json.dumps/json.loads twice. Nearly
every step allocates or frees a small object, and the cyclic GC walks the
growing list: under PYTHONMALLOC=malloc each object is a malloc/free call,
under pymalloc only its 256 KB arenas reach the C allocator. About 1 s on the
bare interpreter of this project's 2-core machine.

Usage: py_churn.py [ROUNDS]   (default 1; each round is the whole workload)
"""
import json
import sys


def record(i):
    return {"id": i, "name": f"item-{i}", "tags": [i % 7, i % 11], "pos": {"x": i * 0.5, "y": -i}}


def churn(n):
    """Build n records in a list, touch each, drop them all."""
    items = [record(i) for i in range(n)]
    total = 0
    for it in items:
        total += len(it["tags"]) + it["pos"]["y"]
    del items
    return total


def json_round_trips(n_records, trips):
    """json.dumps then json.loads of n_records records, `trips` times."""
    data = [record(i) for i in range(n_records)]
    size = 0
    for _ in range(trips):
        text = json.dumps(data)
        size += len(text)
        data = json.loads(text)
    return size


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    check = 0
    for _ in range(rounds):
        check += churn(200_000)
        check += json_round_trips(20_000, 2)
    print(check)


if __name__ == "__main__":
    main()
