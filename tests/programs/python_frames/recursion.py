"""Deep recursion (tests/tests/python_frames.rs): `dive` allocates at every
level until RecursionError (at about 1,000 frames), which is caught; three
times over. What the deepest levels made is kept until exit. Exits 0.
"""

import sys

KEPT = []


def dive(depth, out):
    out.append("depth-%06d" % depth)  # @site:dive
    return dive(depth + 1, out)  # @site:recurse


def attempt():
    out = []
    try:
        dive(0, out)
    except RecursionError:
        pass
    return out


for _ in range(3):
    KEPT.append(attempt())
print("recursion: depths=%s" % [len(k) for k in KEPT])
