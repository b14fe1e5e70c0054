#!/usr/bin/env python3
"""Record the growth-verdict corpus: programs whose memory curves have known
shapes (tests/programs/growth/, and a few real programs), each run N times
under the recorder.

usage: python3 scripts/growth/record.py --bin DIR --out DIR [--runs N] [--load]
                                        [--build DIR] [--venv DIR] [names...]

--bin DIR   holds `leakhunt` and `libleakhunt.so` (e.g. target/release)
--out DIR   traces go to OUT/<name>/<i>.trace, with OUT/<name>/<i>.json (how the
            run went: argv, load, exit status, wall time, how it was stopped)
            and OUT/<name>/<i>.log (leakhunt run's stderr); <i> continues after
            the highest index already there, so a second call adds runs
            (e.g. unloaded ones next to loaded ones) and never reuses a path
--runs N    runs per program (default 10)
--load      run one busy process per core (niced, --load-nice) while recording:
            verdicts must hold on a loaded machine
--build DIR where programs and generated inputs are built (default
            target/growth/build)
--venv DIR  a venv with Flask (default target/growth/venv); --venv-deb DIR the
            same for Debian's /usr/bin/python3.11 (default target/growth/venv-deb)
names       programs (or shell-style patterns such as 'py_*') to record; all by
            default; --list prints them

Programs whose dependency is missing (Flask, the sqlite3 CLI, mawk, Debian's
python3.11) are skipped with the reason printed. The expected verdicts are in
expected.json next to this script (EXPECTED.md is generated from it by
verdicts.py --write-md).
"""
import argparse
import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SRC = REPO / "tests" / "programs" / "growth"
DEB_PY = "/usr/bin/python3.11"
RUN_TIMEOUT_S = 120


def path_python():
    """The interpreter `python3` on PATH runs, resolved past pyenv's shim (a
    bash script that forks a dozen helpers, each of which would record its own
    trace)."""
    exe = shutil.which("python3")
    if not exe:
        return None
    out = subprocess.run([exe, "-c", "import sys; print(sys.executable)"],
                         capture_output=True, text=True)
    return out.stdout.strip() or None


# ---------------------------------------------------------------- programs
#
# Each program: name -> dict(kind, ...). Kinds:
#   c, cpp:   src (in SRC), args
#   py:       script (in SRC), interp ("path" or "deb"), args
#   flask:    mode (keep|nothing), stop (int|term|kill), interp
#   argv:     a real program: needs (executable), argv (with {build} expanded),
#             stdin (a file in build), prepare (a function name below)

PROGRAMS = {}


def prog(name, **kw):
    PROGRAMS[name] = kw


prog("sawtooth", kind="c", src="sawtooth.c")
prog("early_explosion", kind="c", src="early_explosion.c")
prog("surge", kind="c", src="surge.c")
prog("trend", kind="c", src="trend.c")
prog("startup_trend", kind="c", src="startup_trend.c")
prog("small_leak", kind="c", src="small_leak.c")
prog("short", kind="c", src="short.c")
prog("few_events", kind="c", src="few_events.c")
prog("lru_bounded", kind="cpp", src="lru_cache.cpp", args=["bounded"])
prog("lru_unbounded", kind="cpp", src="lru_cache.cpp", args=["unbounded"])
for interp, suffix in (("path", ""), ("deb", ".deb")):
    prog("py_mutable_default" + suffix, kind="py", script="py_mutable_default.py", interp=interp)
    prog("py_lru_cache" + suffix, kind="py", script="py_lru_cache.py", interp=interp)
    prog("py_sqlite" + suffix, kind="py", script="py_sqlite.py", interp=interp)
prog("flask_keep", kind="flask", mode="keep", stop="int", interp="path")
prog("flask_nothing", kind="flask", mode="nothing", stop="int", interp="path")
prog("flask_keep_term", kind="flask", mode="keep", stop="term", interp="path")
prog("flask_keep_kill", kind="flask", mode="keep", stop="kill", interp="path")
prog("flask_keep.deb", kind="flask", mode="keep", stop="int", interp="deb")
prog("flask_nothing.deb", kind="flask", mode="nothing", stop="int", interp="deb")
prog("sqlite_cli_mem", kind="argv", needs="sqlite3", argv=["sqlite3", ":memory:"],
     stdin="sqlite_200k.sql", prepare="sqlite_script")
prog("sqlite_cli_file", kind="argv", needs="sqlite3", argv=["sqlite3", "{tmpdb}"],
     stdin="sqlite_200k.sql", prepare="sqlite_script")
prog("py_compileall", kind="argv", needs="python3",
     argv=["{python}", "-m", "compileall", "-f", "-q", "{build}/compileall_src"],
     prepare="compileall_src")
prog("mawk_assoc", kind="argv", needs="mawk",
     argv=["mawk", "{ seen[$1] = $0 } END { n = 0; for (k in seen) n++; print n }",
           "{build}/mawk_input.txt"], prepare="mawk_input")


# ---------------------------------------------------------------- building

def build_native(p, build):
    src = SRC / p["src"]
    out = build / src.stem
    header = SRC / "growth_common.h"
    deps = [src] + ([header] if p["kind"] == "c" else [])
    if out.exists() and all(out.stat().st_mtime >= d.stat().st_mtime for d in deps):
        return out
    cc = ["gcc", "-g", "-O1", "-Wall"] if p["kind"] == "c" else ["g++", "-g", "-O1", "-Wall"]
    print(f"build: {' '.join(cc)} -o {out} {src}", flush=True)
    subprocess.run(cc + ["-o", str(out), str(src)], check=True)
    return out


def prepare_sqlite_script(build):
    """200,000 INSERTs in one transaction (~20 MB of SQL, ~14 MB of data)."""
    path = build / "sqlite_200k.sql"
    if path.exists():
        return
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, payload TEXT);\nBEGIN;\n")
        for i in range(200_000):
            f.write(f"INSERT INTO t VALUES({i}, 'name-{i % 977}', 'payload-{i:07d}-{'z' * 40}');\n")
        f.write("COMMIT;\nSELECT COUNT(*) FROM t;\n")
    tmp.rename(path)


def prepare_compileall_src(build):
    """A copy of ~1.3 MB of the stdlib's .py files (email, http, json, logging,
    urllib, xml, concurrent) to byte-compile."""
    dst = build / "compileall_src"
    if dst.exists():
        return
    py = path_python()
    lib = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
                              capture_output=True, text=True, check=True).stdout.strip())
    tmp = build / "compileall_src.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for d in ("email", "http", "json", "logging", "urllib", "xml", "concurrent"):
        for f in (lib / d).rglob("*.py"):
            t = tmp / f.relative_to(lib)
            t.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, t)
    tmp.rename(dst)


def prepare_mawk_input(build):
    """500,000 lines with distinct keys for mawk to keep in an array."""
    path = build / "mawk_input.txt"
    if path.exists():
        return
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for i in range(500_000):
            f.write(f"key-{i:07d} value {i * 7919 % 100003} {'w' * 30}\n")
    tmp.rename(path)


PREPARE = {"sqlite_script": prepare_sqlite_script, "compileall_src": prepare_compileall_src,
           "mawk_input": prepare_mawk_input}


def venv_python(venv):
    py = Path(venv) / "bin" / "python"
    return str(py) if py.exists() else None


def has_flask(py):
    return py and subprocess.run([py, "-c", "import flask, werkzeug"],
                                 capture_output=True).returncode == 0


def resolve(name, p, args, build):
    """(argv, stdin path or None, extra) for one program, or raise Skip."""
    kind = p["kind"]
    if kind in ("c", "cpp"):
        return [str(build_native(p, build))] + p.get("args", []), None
    if kind == "py":
        py = path_python() if p["interp"] == "path" else (DEB_PY if os.path.exists(DEB_PY) else None)
        if not py:
            raise Skip(f"no interpreter ({'python3 on PATH' if p['interp'] == 'path' else DEB_PY})")
        return [py, str(SRC / p["script"])] + p.get("args", []), None
    if kind == "flask":
        venv = args.venv if p["interp"] == "path" else args.venv_deb
        py = venv_python(venv)
        if not has_flask(py):
            raise Skip(f"Flask is not importable from {venv} (make it: "
                       f"{'python3' if p['interp'] == 'path' else DEB_PY} -m venv {venv} && "
                       f"{venv}/bin/pip install flask)")
        return [py, str(SRC / "flask_app.py"), p["mode"]], None
    if kind == "argv":
        need = p["needs"]
        if need == "python3":
            if not path_python():
                raise Skip("no python3 on PATH")
        elif not shutil.which(need):
            raise Skip(f"`{need}` is not installed (Debian package `{need}`)")
        if p.get("prepare"):
            PREPARE[p["prepare"]](build)
        subst = {"{build}": str(build), "{python}": path_python() or "python3"}
        argv = []
        for a in p["argv"]:
            for k, v in subst.items():
                a = a.replace(k, v)
            argv.append(a)
        return argv, (str(build / p["stdin"]) if p.get("stdin") else None)
    raise ValueError(kind)


class Skip(Exception):
    pass


# ---------------------------------------------------------------- load

class Load:
    """One busy process per core, niced, for as long as the recording lasts."""

    def __init__(self, nice):
        self.procs = []
        for _ in range(os.cpu_count() or 1):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-c", f"import os\nos.nice({nice})\nwhile True: pass"],
                stdin=subprocess.DEVNULL))

    def stop(self):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


# ---------------------------------------------------------------- running

def default_sigint():
    # A child started from a background job inherits SIGINT ignored, and
    # Python then never installs its KeyboardInterrupt handler: Ctrl-C
    # would do nothing. A terminal's foreground job has the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.setpgrp()


def next_index(d):
    n = 0
    for f in d.glob("*.trace"):
        try:
            n = max(n, int(f.stem) + 1)
        except ValueError:
            pass
    return n


def record_argv(lh, trace, argv, stdin, log, build):
    """`leakhunt run -o TRACE -- argv` (stdin from a file), with a timeout."""
    tmpdb = None
    if "{tmpdb}" in argv:
        tmpdb = build / f"tmp-{os.getpid()}.db"
        for f in (tmpdb, Path(str(tmpdb) + "-journal")):
            f.unlink(missing_ok=True)
        argv = [str(tmpdb) if a == "{tmpdb}" else a for a in argv]
    cmd = [lh, "run", "-o", str(trace), "--"] + argv
    t0 = time.monotonic()
    with open(log, "w") as err, open(stdin or os.devnull) as inp:
        p = subprocess.Popen(cmd, stdin=inp, stdout=subprocess.DEVNULL, stderr=err,
                             preexec_fn=default_sigint)
        try:
            rc = p.wait(timeout=RUN_TIMEOUT_S)
            hang = False
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            rc = p.wait()
            hang = True
    if tmpdb:
        for f in (tmpdb, Path(str(tmpdb) + "-journal")):
            f.unlink(missing_ok=True)
    return {"argv": cmd, "exit_status": rc, "wall_s": round(time.monotonic() - t0, 3),
            "timeout": hang}


def record_flask(lh, trace, argv, stop, log, client_py):
    """Start the app under `leakhunt run` in its own process group, wait for
    its "listening" line, send 40 requests over ~3 s from a second process,
    then stop it: `int` sends SIGINT to the whole group (what Ctrl-C in a
    terminal does: leakhunt run and the app both get it), `term` SIGTERM and
    `kill` SIGKILL to the app's own pid (what a process manager does)."""
    cmd = [lh, "run", "-o", str(trace), "--"] + argv
    t0 = time.monotonic()
    meta = {"argv": cmd, "stop": stop}
    with open(log, "w") as err:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                             text=True, preexec_fn=default_sigint)
        try:
            line = ""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = p.stdout.readline()
                if not line or line.startswith("listening"):
                    break
            if not line.startswith("listening"):
                raise RuntimeError(f"the app did not start (got {line!r})")
            fields = dict(kv.split("=") for kv in line.split()[1:])
            port, pid = fields["port"], int(fields["pid"])
            meta["startup_s"] = round(time.monotonic() - t0, 3)
            c = subprocess.run([client_py, str(SRC / "flask_client.py"), port, "40", "0.075"],
                               capture_output=True, text=True, timeout=60)
            meta["client"] = (c.stdout + c.stderr).strip()[-300:]
            meta["stopped_at_s"] = round(time.monotonic() - t0, 3)
            if stop == "int":
                os.killpg(p.pid, signal.SIGINT)
            elif stop == "term":
                os.kill(pid, signal.SIGTERM)
            else:
                os.kill(pid, signal.SIGKILL)
            rc = p.wait(timeout=60)
            meta["timeout"] = False
        except Exception as e:  # a hang or a failed start: leave nothing running
            meta["error"] = str(e)
            meta["timeout"] = isinstance(e, subprocess.TimeoutExpired)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            rc = p.wait()
        finally:
            p.stdout.close()
    meta.update(exit_status=rc, wall_s=round(time.monotonic() - t0, 3))
    return meta


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=False, default=os.path.join(ROOT, "target", "release"))
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "growth", "traces"))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--load", action="store_true")
    ap.add_argument("--load-nice", type=int, default=10)
    ap.add_argument("--build", default=os.path.join(ROOT, "target", "growth", "build"))
    ap.add_argument("--venv", default=os.path.join(ROOT, "target", "growth", "venv"))
    ap.add_argument("--venv-deb", default=os.path.join(ROOT, "target", "growth", "venv-deb"))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("names", nargs="*")
    args = ap.parse_args()

    if args.list:
        for n, p in PROGRAMS.items():
            print(n, p["kind"])
        return 0
    names = list(PROGRAMS)
    if args.names:
        names = [n for n in PROGRAMS if any(fnmatch.fnmatchcase(n, pat) for pat in args.names)]
        unknown = [pat for pat in args.names if not any(fnmatch.fnmatchcase(n, pat) for n in PROGRAMS)]
        if unknown:
            print(f"unknown program(s): {' '.join(unknown)} (--list)", file=sys.stderr)
            return 2
    lh = str(Path(args.bin) / "leakhunt")
    if not os.access(lh, os.X_OK) or not (Path(args.bin) / "libleakhunt.so").exists():
        print(f"{args.bin} must hold leakhunt and libleakhunt.so", file=sys.stderr)
        return 2
    build = Path(args.build)
    build.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)

    # Resolve (build, prepare, check dependencies) before any load starts.
    plan = []
    for n in names:
        try:
            argv, stdin = resolve(n, PROGRAMS[n], args, build)
            plan.append((n, argv, stdin))
        except Skip as e:
            print(f"skip {n}: {e}", flush=True)
    load = Load(args.load_nice) if args.load else None
    failures = 0
    try:
        for n, argv, stdin in plan:
            p = PROGRAMS[n]
            d = out / n
            d.mkdir(parents=True, exist_ok=True)
            first = next_index(d)
            for i in range(first, first + args.runs):
                trace, log = d / f"{i}.trace", d / f"{i}.log"
                if p["kind"] == "flask":
                    client = path_python() if p["interp"] == "path" else DEB_PY
                    meta = record_flask(lh, trace, argv, p["stop"], log, client)
                else:
                    meta = record_argv(lh, trace, argv, stdin, log, build)
                meta.update(name=n, run=i, load=bool(args.load),
                            load_nice=args.load_nice if args.load else None,
                            stdin=stdin, trace_exists=trace.exists(),
                            recorded_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
                (d / f"{i}.json").write_text(json.dumps(meta, indent=1) + "\n")
                bad = meta.get("timeout") or meta.get("error") or not trace.exists()
                failures += bool(bad)
                print(f"{n}/{i}: exit {meta['exit_status']}, {meta['wall_s']:.2f} s"
                      + (" TIMEOUT" if meta.get("timeout") else "")
                      + (f" ERROR {meta['error']}" if meta.get("error") else "")
                      + ("" if trace.exists() else " NO TRACE"), flush=True)
    finally:
        if load:
            load.stop()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
