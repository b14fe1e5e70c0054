"""A module-level list that grows (tests/tests/python_frames.rs).

`remember(i)` appends a new str to a global list, N times (argv[1], default
5000), pausing a millisecond every 100 so the heap grows steadily over the
run. Options:
  --leak       each str also gets one reference too many (the refcount bug
               of a C extension): it outlives the list, definitely lost
  --exit-now   leave through libc's exit(), skipping finalization: the list
               and its strings are still live at the exit scan
  --status=K   exit with status K
"""

import sys
import time

ITEMS = []
LEAK = "--leak" in sys.argv
if LEAK:
    import ctypes

    INCREF = ctypes.pythonapi.Py_IncRef
    INCREF.argtypes = [ctypes.py_object]


def remember(i):
    ITEMS.append("item-%06d" % i)  # @site:remember
    if LEAK:
        INCREF(ITEMS[-1])


def handle(n):
    for i in range(n):
        remember(i)  # @site:handle
        if i % 100 == 99:
            time.sleep(0.001)


handle(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 5000)  # @site:module
print("grow: items=%d" % len(ITEMS), flush=True)
if LEAK:
    ITEMS.clear()
status = [int(a.split("=")[1]) for a in sys.argv if a.startswith("--status=")]
if "--exit-now" in sys.argv:
    import ctypes

    ctypes.CDLL(None).exit(status[0] if status else 0)
sys.exit(status[0] if status else 0)
