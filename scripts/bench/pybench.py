"""The Python rows of run.py's table and what they need: the interpreter
behind `python3`, and memray installed into the benchmark's own venv.

  churn       scripts/bench/py_churn.py: 200k small dicts and lists built and
              dropped, json dumps/loads round trips (allocator-bound Python).
  compileall  `python -m compileall -f -q` on a fresh copy of a few stdlib
              packages (parser, compiler and marshal: a real tool's mix).

leakhunt records every object under pymalloc (it wraps CPython's allocator
domains); memray and heaptrack, run as users run them, see only pymalloc's
arenas plus the larger blocks. "memray -n -tpa" (memray run --native
--trace-python-allocators) is memray's own way to see every object under
pymalloc: the like-for-like column.
"""
import os
import shutil
import subprocess
import sys

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


def memray_python(py, venv, install=True):
    """The venv's python with memray importable; if install, a fresh venv
    with memray is made there when needed (a venv named by BENCH_VENV is
    someone else's: never removed or remade). Returns (path, None) or
    (None, why not)."""
    vpy = os.path.join(venv, "bin", "python")

    def usable():
        if not os.path.exists(vpy) or os.path.realpath(vpy) != os.path.realpath(py):
            return False
        return subprocess.run([vpy, "-c", "import memray"], capture_output=True).returncode == 0

    if usable():
        return vpy, None
    if not install:
        return None, f"{vpy} is not this python3 with memray importable"
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


def loadavg():
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def setup(root, tmp):
    """The Python rows of run.py's table: (interpreter, memray's venv python
    or None, workloads as (name, args after the interpreter)). Prints a
    one-line note for a tool that is missing."""
    py = interpreter()
    version = subprocess.run([py, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # BENCH_VENV: a venv made elsewhere (another checkout's target/bench-venv)
    # instead of installing memray again; it must be of the same interpreter.
    own = not os.environ.get("BENCH_VENV")
    venv = os.environ.get("BENCH_VENV") or os.path.join(root, "target", "bench-venv")
    vpy, why = memray_python(py, venv, install=own)
    if vpy:
        mversion = subprocess.run([vpy, "-c", "import memray; print(memray.__version__)"],
                                  capture_output=True, text=True).stdout.strip()
        print(f"python {version} ({py}); memray {mversion} ({venv})")
    else:
        print(f"python {version} ({py}); memray: - ({why.splitlines()[0]})")

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
        ("py churn: 200k dicts+lists, json", [os.path.join(HERE, "py_churn.py")]),
        (f"py compileall ({src_bytes / 1e6:.1f} MB of source)", ["-m", "compileall", "-f", "-q", src]),
    ]
    return py, vpy, workloads
