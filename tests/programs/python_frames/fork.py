"""fork (tests/tests/python_frames.rs): the parent allocates, forks; the
child allocates in `child_work` and leaves with os._exit(5); the parent
waits for it and exits 3. Both print their pid.
"""

import os
import sys

KEPT = []


def parent_work(n):
    for i in range(n):
        KEPT.append("parent-%06d" % i)  # @site:parent


def child_work(n):
    for i in range(n):
        KEPT.append("child-%06d" % i)  # @site:child


parent_work(500)
sys.stdout.flush()
pid = os.fork()
if pid == 0:
    child_work(1000)
    print("child: pid=%d items=%d" % (os.getpid(), len(KEPT)))
    sys.stdout.flush()
    os._exit(5)
_, status = os.waitpid(pid, 0)
print("parent: pid=%d child=%d child_status=%d" % (os.getpid(), pid, os.waitstatus_to_exitcode(status)))
sys.exit(3)
