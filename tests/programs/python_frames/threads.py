"""Threads (tests/tests/python_frames.rs): three workers, each allocating in
its own function, and a fourth that inserts rows into an in-memory SQLite
database (sqlite3 allocates inside sqlite3_step, with the GIL released).
Everything stays live until the exit scan (libc's exit()).
"""

import ctypes
import sqlite3
import sys
import threading

KEPT = {"alpha": [], "beta": [], "gamma": []}
DB = []


def work_alpha(n):
    for i in range(n):
        KEPT["alpha"].append("alpha-%06d" % i)  # @site:alpha


def work_beta(n):
    for i in range(n):
        KEPT["beta"].append(("beta", i, "beta-%06d" % i))  # @site:beta


def work_gamma(n):
    for i in range(n):
        KEPT["gamma"].append({"gamma": i, "text": "gamma-%06d" % i})  # @site:gamma


def work_sqlite(n):
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    rows = [(i, "row-%06d-%s" % (i, "x" * 50)) for i in range(n)]
    db.executemany("INSERT INTO t VALUES (?, ?)", rows)  # @site:executemany
    db.commit()
    DB.append(db)


threads = [
    threading.Thread(target=work_alpha, args=(2000,)),
    threading.Thread(target=work_beta, args=(2000,)),
    threading.Thread(target=work_gamma, args=(2000,)),
    threading.Thread(target=work_sqlite, args=(3000,)),
]
for t in threads:
    t.start()
for t in threads:
    t.join()
count = DB[0].execute("SELECT count(*) FROM t").fetchone()[0]
print("threads: alpha=%d beta=%d gamma=%d rows=%d" % (
    len(KEPT["alpha"]), len(KEPT["beta"]), len(KEPT["gamma"]), count))
sys.stdout.flush()
ctypes.CDLL(None).exit(0)
