"""Python workloads: leakhunt against the bare interpreter, memray (with and
without --native) and heaptrack, side by side in one run.

The tools are interleaved round-robin (the starting tool rotates each round)
and the table shows medians, so a noisy neighbour on this shared 2-core
machine hits every tool alike. Workloads:

  churn       scripts/bench/py_churn.py: 200k small dicts and lists built and
              dropped, json dumps/loads round trips (allocator-bound Python).
  compileall  `python -m compileall -f -q` on a fresh copy of a few stdlib
              packages (parser, compiler and marshal: a real tool's mix).

leakhunt records every object under pymalloc (it wraps CPython's allocator
domains); memray and heaptrack, run as users run them, see only pymalloc's
arenas plus the larger blocks. "memray --native (malloc)" runs memray with
PYTHONMALLOC=malloc, so that it sees the same events as leakhunt;
"memray --native --trace-python-allocators" is memray's own way to see every
object under pymalloc (the like-for-like row); "bare (malloc)" shows what the
allocator switch costs by itself.
"""
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
STDLIB_PACKAGES = ["email", "json", "asyncio", "unittest", "xml", "http", "logging"]


def tail(text, lines=6):
    return "\n".join("    " + s for s in text.strip().splitlines()[-lines:])


def interpreter():
    """The real interpreter behind `python3` on PATH (no pyenv shim in the timing)."""
    out = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    if not out:
        sys.exit("python3 on PATH reports no sys.executable")
    return out


def memray_python(py, venv):
    """The venv's python with memray importable, installing it if needed.
    Returns (path, None) or (None, why not)."""
    vpy = os.path.join(venv, "bin", "python")

    def usable():
        if not os.path.exists(vpy) or os.path.realpath(vpy) != os.path.realpath(py):
            return False
        return subprocess.run([vpy, "-c", "import memray"], capture_output=True).returncode == 0

    if usable():
        return vpy, None
    shutil.rmtree(venv, ignore_errors=True)
    print(f"installing memray into {venv} ...", flush=True)
    for argv, what in (([py, "-m", "venv", venv], "python3 -m venv"),
                       ([vpy, "-m", "pip", "install", "-q", "--retries", "2", "memray"], "pip install memray")):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"{what}: {e}"
        if r.returncode != 0:
            return None, f"{what} exited with {r.returncode}:\n{tail(r.stderr or r.stdout)}"
    if not usable():
        return None, "memray installed but `import memray` fails in the venv"
    return vpy, None


class Command:
    def __init__(self, label, argv, env=None):
        self.label, self.argv, self.env = label, argv, env or {}
        self.wall, self.cpu, self.out_bytes = [], [], []
        self.failure = None


def run_once(cmd, base_env, cwd, outdir, errfile):
    """Run one command; returns (wall s, user+sys s of it and its children)."""
    env = dict(base_env, **cmd.env)
    with open(errfile, "w") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd.argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        with open(errfile, errors="replace") as f:
            raise RuntimeError(f"exit status {p.returncode}:\n{tail(f.read())}")
    return wall, ru.ru_utime + ru.ru_stime


def dir_bytes(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def measure(cmds, runs, base_env, cwd, tmp):
    outdir = os.path.join(tmp, "out")
    errfile = os.path.join(tmp, "stderr.txt")
    for r in range(runs):
        k = r % len(cmds)
        for cmd in cmds[k:] + cmds[:k]:
            if cmd.failure:
                continue
            os.makedirs(outdir, exist_ok=True)
            try:
                wall, cpu = run_once(cmd, base_env, cwd, outdir, errfile)
            except (OSError, RuntimeError) as e:
                cmd.failure = str(e)
                print(f"  {cmd.label}: failed, dropped ({cmd.failure})", flush=True)
            else:
                cmd.wall.append(wall)
                cmd.cpu.append(cpu)
                cmd.out_bytes.append(dir_bytes(outdir))
            shutil.rmtree(outdir)  # traces go between runs: the disk does not fill


def fmt_ratio(a, b):
    return f"{a / b:.1f}x" if b else "-"


def table(cmds, runs):
    med = {c.label: statistics.median(c.wall) for c in cmds if c.wall}
    bare = med.get("bare")
    native = med.get("memray --native")
    head = ["command", "median s", "x bare", "x memray --native", "cpu s", "spread", "output MB"]
    rows = []
    for c in cmds:
        if not c.wall:
            rows.append([c.label, "failed", "", "", "", "", ""])
            continue
        m = med[c.label]
        spread = (max(c.wall) - min(c.wall)) / m * 100
        mb = statistics.median(c.out_bytes) / 1e6
        rows.append([c.label, f"{m:.3f}", fmt_ratio(m, bare),
                     fmt_ratio(m, native) if native and not c.label.startswith("bare") else "",
                     f"{statistics.median(c.cpu):.2f}", f"{spread:.0f}%",
                     f"{mb:.1f}" if mb >= 1 else f"{mb:.2f}" if mb else ""])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]

    def line(cells):
        return "| " + " | ".join(s.ljust(w) if i == 0 else s.rjust(w)
                                 for i, (s, w) in enumerate(zip(cells, widths))) + " |"
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    fewer = [c.label for c in cmds if c.wall and len(c.wall) < runs]
    if fewer:
        print(f"(fewer than {runs} runs: {', '.join(fewer)})")
    lh = med.get("leakhunt run")
    same = med.get("memray --native (malloc)")
    if lh and native:
        msg = f"leakhunt run / memray --native = {lh / native:.2f}"
        if same:
            msg += f"; / memray --native with PYTHONMALLOC=malloc (same events) = {lh / same:.2f}"
        every = med.get("memray --native --trace-python-allocators")
        if every:
            msg += f"; / memray --native --trace-python-allocators (every object) = {lh / every:.2f}"
        print(msg)


def loadavg():
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(root, runs, tmp, leakhunt, preload):
    py = interpreter()
    version = subprocess.run([py, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    vpy, why = memray_python(py, os.path.join(root, "target", "bench-venv"))
    if vpy:
        mversion = subprocess.run([vpy, "-c", "import memray; print(memray.__version__)"],
                                  capture_output=True, text=True).stdout.strip()
    else:
        print(f"memray skipped: {why}")
    heaptrack = shutil.which("heaptrack")
    if not heaptrack:
        print("heaptrack skipped: not installed")

    # A fresh copy of some stdlib packages for compileall, sources only.
    stdlib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    src = os.path.join(tmp, "stdlib-copy")
    copied = []
    for pkg in STDLIB_PACKAGES:
        if os.path.isdir(os.path.join(stdlib, pkg)):
            shutil.copytree(os.path.join(stdlib, pkg), os.path.join(src, pkg),
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            copied.append(pkg)
    src_bytes = sum(os.path.getsize(os.path.join(d, f))
                    for d, _, fs in os.walk(src) for f in fs if f.endswith(".py"))

    workloads = [
        ("churn: 200k dicts+lists, json round trips", [os.path.join(HERE, "py_churn.py")]),
        (f"compileall -f -q: {'+'.join(copied)} ({src_bytes / 1e6:.1f} MB of source)",
         ["-m", "compileall", "-f", "-q", src]),
    ]

    # Nothing inherited may change what is measured: each row sets its own.
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("LD_PRELOAD", "PYTHONMALLOC") and not k.startswith("LEAKHUNT_")}
    malloc = {"PYTHONMALLOC": "malloc"}
    out = os.path.join(tmp, "out")
    cwd = os.path.join(tmp, "cwd")
    os.makedirs(cwd, exist_ok=True)

    print(f"python {version} ({py}); memray {mversion if vpy else '-'}; "
          f"median of {runs} runs, tools round-robin; {loadavg()}", flush=True)
    for name, target in workloads:
        cmds = [
            Command("bare", [py, *target]),
            Command("bare (malloc)", [py, *target], malloc),
            Command("leakhunt run", [leakhunt, "run", "-o", os.path.join(out, "t.trace"), "--", py, *target]),
            Command("leakhunt recording only", [py, *target],
                    dict(LD_PRELOAD=preload, LEAKHUNT_OUTPUT=os.path.join(out, "t.%p.trace"))),
        ]
        if vpy:
            memray = [vpy, "-m", "memray", "run", "-q", "-f", "-o", os.path.join(out, "m.bin")]
            cmds += [
                Command("memray", [*memray, *target]),
                Command("memray --native", [*memray, "--native", *target]),
                Command("memray --native (malloc)", [*memray, "--native", *target], malloc),
                # memray's own way to see every object under pymalloc, as
                # leakhunt does: the like-for-like row.
                Command("memray --native --trace-python-allocators",
                        [*memray, "--native", "--trace-python-allocators", *target]),
            ]
        if heaptrack:
            ht = [heaptrack, "-o", os.path.join(out, "h"), py, *target]
            cmds.append(Command("heaptrack", ht))

        print(f"\n{name}", flush=True)
        # One untimed bare run: page cache, and compileall's first write of __pycache__.
        run_once(cmds[0], base_env, cwd, out, os.path.join(tmp, "stderr.txt"))
        t0 = time.perf_counter()
        measure(cmds, runs, base_env, cwd, tmp)
        table(cmds, runs)
        print(f"({time.perf_counter() - t0:.0f} s; {loadavg()})", flush=True)
