#!/usr/bin/env python3
"""Leak kinds of leakhunt against memcheck, run after run.

usage: compare.py [--runs N] [--leakhunt BIN ...] [-- CMD ...]

Builds the ordinary programs of tests/programs/leaks (ordinary_messages,
reused_memory, unreadable_heap) and runs each, plus CMD if given, under
valgrind --leak-check=full once and under each leakhunt binary N times
(default 5), each run with a longer output path and a larger environment
than the last. Prints memcheck's four numbers (bytes), what each binary
said, and in how many runs it agreed. Two binaries compare two builds (say,
before and after a change, the first built in a git worktree)."""
import argparse, os, re, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KINDS = ["definitely lost", "indirectly lost", "possibly lost", "still reachable"]
PROGRAMS = ["ordinary_messages", "reused_memory", "unreadable_heap"]


def numbers(text):
    if "All heap blocks were freed" in text:
        return (0, 0, 0, 0)
    out = []
    for k in KINDS:
        m = re.search(k + r": ([\d,]+) bytes in ([\d,]+) block", text)
        out.append(int(m.group(1).replace(",", "")) if m else None)
    return tuple(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--leakhunt", action="append")
    ap.add_argument("cmd", nargs="*")
    a = ap.parse_args()
    bins = a.leakhunt or [os.path.join(ROOT, "target/release/leakhunt")]
    if not shutil.which("valgrind"):
        sys.exit("compare.py: valgrind is not installed")
    tmp = tempfile.mkdtemp(prefix="leakhunt-exact-")
    cmds = []
    for p in PROGRAMS:
        exe = os.path.join(tmp, p)
        subprocess.run(["gcc", "-g", "-O0", "-o", exe, os.path.join(ROOT, "tests/programs/leaks", p + ".c")], check=True)
        cmds.append([exe])
    if a.cmd:
        cmds.append(a.cmd)
    for cmd in cmds:
        vg = subprocess.run(["valgrind", "--leak-check=full", *cmd], capture_output=True, text=True)
        want = numbers(vg.stderr)
        row = [os.path.basename(cmd[0]) + " " + " ".join(cmd[1:]), f"memcheck {want}"]
        for b in bins:
            got, codes = [], set()
            for i in range(a.runs):
                trace = os.path.join(tmp, "p" * (40 * i) + f"{i}.trace")
                env = dict(os.environ, LEAKHUNT_COMPARE_PAD="y" * (500 * i))
                r = subprocess.run([b, "run", "-o", trace, "--", *cmd], capture_output=True, text=True, env=env)
                got.append(numbers(r.stderr))
                codes.add(r.returncode)
                for f in os.listdir(tmp):
                    if f.endswith(".trace") or ".trace." in f:
                        os.remove(os.path.join(tmp, f))
            agree = sum(g == want for g in got)
            row.append(f"{b}: {sorted(set(got), key=str)} exit {sorted(codes)} agreed {agree}/{a.runs}")
        print(" | ".join(row), flush=True)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
