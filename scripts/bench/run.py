#!/usr/bin/env python3
"""Overhead of leakhunt against the bare program and against other tools, in
one table (issue 12 item 6), measured side by side in the same run: the tools
of a row run round-robin, the starting tool rotating each round, and the
table shows medians, so a noisy neighbour on this shared machine hits every
tool alike (ratios of medians: absolute times mean little here).

Usage: run.py [all|c|python]   (default all)

  c       C and C++ rows: churn at 1/2/4 threads, sqlite3, STL, xz, gcc.
  python  Python rows (pybench.py): churn, compileall; memray columns.

Environment:
  RUNS=N            timed runs per tool and row (default 5)
  LEAKHUNT_BIN=DIR  where leakhunt and libleakhunt.so are (default
                    target/release of this checkout)
  MEMCHECK=0        skip valgrind memcheck (else one run per row, cut at
                    MEMCHECK_TIMEOUT seconds, default 60)
  BENCH_VENV=DIR    memray's venv (default target/bench-venv, made if needed)
"""
import argparse, json, os, shutil, signal, statistics, subprocess, sys, tempfile, time

sys.dont_write_bytecode = True  # no __pycache__ in scripts/bench
import pybench  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(HERE))
rel = os.environ.get("LEAKHUNT_BIN") or os.path.join(root, "target", "release")
LSAN = "/usr/lib/x86_64-linux-gnu/liblsan.so.0"
CHURN_PAIRS = 2_000_000  # malloc/free pairs per churn run, split over its threads


def snapshot(tmp):
    """Copies of leakhunt and libleakhunt.so, so that a build finishing
    mid-run does not change what is measured (leakhunt finds the preload
    beside itself)."""
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir)
    copies = []
    for name in ("leakhunt", "libleakhunt.so"):
        src = os.path.join(rel, name)
        if not os.path.exists(src):
            sys.exit(f"{src} is missing: run `cargo build --release --workspace` first "
                     "(or point LEAKHUNT_BIN at a directory holding both)")
        copies.append(shutil.copy2(src, os.path.join(bindir, name)))
    built = time.strftime("%Y-%m-%d %H:%M", time.localtime(max(map(os.path.getmtime, copies))))
    print(f"leakhunt of {built} ({rel}, copied for this run)")
    return copies


def gen_c_file(path, functions=400):
    """A mid-size C file for the gcc row: many functions with loops, switches
    and structs, so that -O2 has real work (no large C source ships here)."""
    with open(path, "w") as f:
        f.write("#include <string.h>\nstruct s { int a[16]; double d; char name[32]; };\n")
        for i in range(functions):
            f.write(f"""
int fn{i}(struct s *p, int n) {{
    int acc = {i};
    for (int k = 0; k < n; k++) {{
        switch ((k + {i}) % 5) {{
        case 0: acc += p->a[k % 16] * {i % 7 + 1}; break;
        case 1: acc ^= (int)(p->d * k); break;
        case 2: if (strlen(p->name) > (unsigned)k) acc -= p->name[k]; break;
        case 3: p->a[(k * 3) % 16] = acc; break;
        default: acc = acc * 31 + k;
        }}
    }}
    return acc{f" + fn{i - 1}(p, n / 2)" if i else ""};
}}
""")


def gen_text(path, size=20_000_000):
    """~20 MB of word-salad text for xz (deterministic, compressible)."""
    import random
    r = random.Random(1)
    words = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 9)))
             for _ in range(5000)]
    n = 0
    with open(path, "w") as f:
        while n < size:
            line = " ".join(r.choices(words, k=12)) + f" {r.randint(0, 10**6)}\n"
            f.write(line)
            n += len(line)


class Row:
    def __init__(self, name, argv, python=False, children=False):
        self.name, self.argv, self.python, self.children = name, argv, python, children
        self.wall, self.rss, self.out_bytes = {}, {}, {}  # tool -> list per run
        self.failed = {}  # tool -> why
        self.memcheck = None  # seconds, or a string (">60s", "failed")
        self.events = self.report = self.print_time = None


def tools_for(row, ctx):
    """(tool, function outdir -> (argv, extra env)) of a row, in table order.
    Tools that are not installed are left out (their cells say "-")."""
    cmd = row.argv
    t = [("bare", lambda d: (cmd, {})),
         # Recording only: the preload alone, no summary at the end.
         ("rec", lambda d: (cmd, {"LD_PRELOAD": ctx["preload"],
                                  "LEAKHUNT_OUTPUT": os.path.join(d, "t.%p.trace")})),
         # What users run: recording, the leak scan and the summary on stderr.
         ("run", lambda d: ([ctx["leakhunt"], "run", "-o", os.path.join(d, "t.trace"), "--", *cmd], {}))]
    if ctx["heaptrack"]:
        t.append(("heaptrack", lambda d: ([ctx["heaptrack"], "-o", os.path.join(d, "h"), *cmd], {})))
    if ctx["lsan"] and not row.python:
        # exitcode=0: a leak found must not fail the run (xz, gcc do leak).
        opts = "detect_leaks=1:exitcode=0"
        t.append(("lsan", lambda d: (cmd, {"LD_PRELOAD": ctx["lsan"], "LSAN_OPTIONS": opts,
                                           "ASAN_OPTIONS": opts})))
    if ctx["memray"] and row.python:
        memray = [ctx["memray"], "-m", "memray", "run", "-q", "-f"]
        t.append(("memray", lambda d: ([*memray, "-o", os.path.join(d, "m.bin"), *cmd[1:]], {})))
        # --native: the Python issue's target (memray's own default view
        # of pymalloc's arenas, with native stacks).
        t.append(("memray -n", lambda d: ([*memray, "--native", "-o", os.path.join(d, "m.bin"),
                                           *cmd[1:]], {})))
        t.append(("memray -n -tpa", lambda d: ([*memray, "--native", "--trace-python-allocators",
                                                "-o", os.path.join(d, "m.bin"), *cmd[1:]], {})))
    return t


def run_once(argv, env, cwd, errfile):
    """Wall seconds and peak RSS in KB. wait4's ru_maxrss is the largest of
    the child and of every descendant it waited for, so for leakhunt run,
    heaptrack and gcc it is the largest single process, not a sum."""
    with open(errfile, "w") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        with open(errfile, errors="replace") as f:
            text = f.read()
        # A child's segfault shows only in the text (gcc: "internal compiler error").
        crash = " (segfault)" if code == -11 or "Segmentation fault" in text else ""
        raise RuntimeError(f"exit status {code}{crash}: {pybench.tail(text, 3).strip()}")
    return wall, ru.ru_maxrss


def dir_bytes(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def timed_quiet(argv):
    """Seconds of a report command, its output thrown away."""
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def measure(row, ctx, runs, base_env, tmp):
    tools = tools_for(row, ctx)
    cwd = os.path.join(tmp, "cwd")
    errfile = os.path.join(tmp, "stderr.txt")
    keep = os.path.join(tmp, "keep")
    shutil.rmtree(keep, ignore_errors=True)
    os.makedirs(keep)
    # One untimed bare run: page cache, and compileall's first write of __pycache__.
    run_once(row.argv, base_env, cwd, errfile)
    for r in range(runs):
        k = r % len(tools)
        for tool, make in tools[k:] + tools[:k]:
            if tool in row.failed:
                continue
            out = os.path.join(tmp, "out")
            os.makedirs(out)
            argv, env = make(out)
            try:
                wall, rss = run_once(argv, dict(base_env, **env), cwd, errfile)
            except (OSError, RuntimeError) as e:
                row.failed[tool] = str(e)
                print(f"  {row.name}: {tool} failed, dropped ({e})", flush=True)
                shutil.rmtree(out)
                continue
            row.wall.setdefault(tool, []).append(wall)
            row.rss.setdefault(tool, []).append(rss)
            row.out_bytes.setdefault(tool, []).append(dir_bytes(out))
            if r == runs - 1 and tool in ("run", "heaptrack"):
                os.rename(out, os.path.join(keep, tool))  # for events and report times
            else:
                shutil.rmtree(out)  # traces go between runs: the disk does not fill

    # Events, and report times on the traces of the same (last) run. With
    # children (gcc) each process has its own trace: events and report
    # times are summed over them.
    lh_dir = os.path.join(keep, "run")
    if os.path.isdir(lh_dir):
        traces = [os.path.join(lh_dir, f) for f in sorted(os.listdir(lh_dir))]
        events, report = 0, 0.0
        for t in traces:
            out = subprocess.run([ctx["leakhunt"], "report", "--format", "json", t],
                                 capture_output=True, text=True)
            if out.returncode == 0:
                tot = json.loads(out.stdout)["totals"]
                events += tot["allocations"] + tot["frees"]
            report += timed_quiet([ctx["leakhunt"], "report", t])
        row.events, row.report = events, report
    ht_dir = os.path.join(keep, "heaptrack")
    if os.path.isdir(ht_dir) and ctx["heaptrack_print"]:
        try:
            row.print_time = sum(timed_quiet([ctx["heaptrack_print"], os.path.join(ht_dir, f)])
                                 for f in sorted(os.listdir(ht_dir)))
        except subprocess.CalledProcessError:
            row.print_time = None
    shutil.rmtree(keep)

    if ctx["memcheck"]:
        row.memcheck = memcheck(row, ctx, base_env, cwd)


def memcheck(row, ctx, base_env, cwd):
    """One memcheck run, cut at the timeout: its time, or why there is none.
    In a session of its own so that a timeout also ends what it started."""
    argv = ["valgrind", "-q", "--leak-check=full", *row.argv]
    limit = ctx["memcheck_timeout"]
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, env=base_env, cwd=cwd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        code = p.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        return f">{limit:.0f}s"
    wall = time.perf_counter() - t0
    return wall if code == 0 else f"exit {code}"


def med(xs):
    return statistics.median(xs) if xs else None


def count(n):
    if n is None:
        return "–"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e4 else str(n)


def cells(row):
    """The table's cells of one row, "-" where a tool is missing or failed."""
    bare = med(row.wall.get("bare", []))
    m = {t: med(w) for t, w in row.wall.items()}

    def ratio(tool):
        if tool in row.failed:
            # LSan preloaded segfaults in some binaries (see the notes).
            why = row.failed[tool]
            return "crash" if "(segfault)" in why else "fail"
        return f"{m[tool] / bare:.1f}x" if m.get(tool) and bare else "–"

    def ns_per_event(tool):
        # Below 10k events (xz) the noise of the wall times swamps any
        # per-event figure.
        if not (m.get(tool) and bare and row.events and row.events >= 10_000):
            return "–"
        return f"{(m[tool] - bare) / row.events * 1e9:.0f}"

    def bytes_per_event(tool):
        b = med(row.out_bytes.get(tool, []))
        return f"{b / row.events:.1f}" if b and row.events else "–"

    def extra_rss(tool):
        r, b = med(row.rss.get(tool, [])), med(row.rss.get("bare", []))
        return f"{(r - b) / 1024:+.0f}" if r is not None and b is not None else "–"

    if isinstance(row.memcheck, float):
        mc = f"{row.memcheck / bare:.0f}x" if bare else "–"
    else:
        mc = row.memcheck or "–"
    py = row.python
    return [row.name, f"{bare:.3f}" if bare else "fail",
            ratio("rec"), ratio("run"), ratio("heaptrack"),
            "–" if py else ratio("lsan"),
            ratio("memray") if py else "–", ratio("memray -n") if py else "–",
            ratio("memray -n -tpa") if py else "–", mc,
            count(row.events),
            ns_per_event("run"), ns_per_event("heaptrack"),
            bytes_per_event("run"), bytes_per_event("heaptrack"),
            extra_rss("rec"), extra_rss("run"), extra_rss("heaptrack"),
            f"{row.report:.2f}" if row.report is not None else "–",
            f"{row.print_time:.2f}" if row.print_time is not None else "–"]


HEAD = ["workload", "bare s", "rec", "run", "heaptrack", "LSan", "memray", "memray -n", "memray -n -tpa",
        "memcheck", "events", "ns/ev run", "ns/ev ht", "B/ev lh", "B/ev ht",
        "+MB rec", "+MB run", "+MB ht", "report s", "ht_print s"]


def print_table(rows):
    body = [cells(r) for r in rows]
    widths = [max(len(r[i]) for r in [HEAD] + body) for i in range(len(HEAD))]

    def line(cs):
        return "| " + " | ".join(s.ljust(w) if i == 0 else s.rjust(w)
                                 for i, (s, w) in enumerate(zip(cs, widths))) + " |"
    print(line(HEAD))
    print("|" + "|".join(("-" * (w + 1) + ":") if i else "-" * (w + 2)
                         for i, w in enumerate(widths)) + "|")
    for b in body:
        print(line(b))


FOOTNOTES = """\
rec: LD_PRELOAD=libleakhunt.so LEAKHUNT_OUTPUT=... (recording only); run: `leakhunt run -o T -- cmd`
(recording, leak scan, summary); heaptrack: `heaptrack -o F cmd`; LSan: liblsan.so preloaded,
detect_leaks=1 exitcode=0 (C/C++ rows); memray: `memray run`, memray -n: `memray run --native`
(the Python target), memray -n -tpa: `memray run --native
--trace-python-allocators` (Python rows); memcheck: `valgrind --leak-check=full`, one run, cut at the timeout.
Times are ratios of medians to bare. events: allocations + frees in leakhunt's traces of the row.
ns/ev: (tool - bare) / leakhunt's events, "–" under 10k events; B/ev: trace bytes (leakhunt) or
.zst bytes (heaptrack) per leakhunt event. +MB: peak RSS over bare, of the largest single process
(wait4 ru_maxrss: for run and heaptrack that may be leakhunt's summary or heaptrack_interpret).
report s: `leakhunt report TRACE`, ht_print s: `heaptrack_print FILE`, on the traces of the same
(last) run, output thrown away.
gcc: leakhunt and LSan follow gcc's children (cc1, as), their traces summed; heaptrack and memcheck
record only the driver, so their per-event figures there are not comparable.
Python: leakhunt sees every object (it wraps the allocator domains, as tracemalloc does);
heaptrack and plain memray see only pymalloc's arenas and large blocks, so fewer events than counted.
LSan "crash": liblsan.so preloaded into an uninstrumented binary segfaults in /usr/bin/sqlite3 (even
for `select 1`) and in gcc's `as` (gcc then reports an internal compiler error)."""


def c_rows(tmp):
    def build(cc, src, out, flags):
        subprocess.run([cc, "-O2", "-g", *flags, "-o", out, os.path.join(HERE, src)], check=True)
        return out

    churn = build("gcc", "churn.c", os.path.join(tmp, "churn"), ["-pthread"])
    stl = build("g++", "stl.cpp", os.path.join(tmp, "stl"), [])
    text = os.path.join(tmp, "text.txt")
    gen_text(text)
    csrc = os.path.join(tmp, "gen.c")
    gen_c_file(csrc)
    rows = [Row(f"churn {n} thr, 2M pairs", [churn, str(n), str(CHURN_PAIRS // n)]) for n in (1, 2, 4)]
    if shutil.which("sqlite3"):
        rows.append(Row("sqlite3 50k inserts", [shutil.which("sqlite3"), ":memory:",
                                                f".read {os.path.join(HERE, 'sqlite.sql')}"]))
    else:
        print("sqlite3 row skipped: no sqlite3")
    rows.append(Row("C++ map/vector 1M ops", [stl, "1000000"]))
    # -0: xz's default -6 takes 20 s on this text bare, too long to repeat.
    rows.append(Row("xz -0 of 20 MB", ["xz", "-T1", "-0", "-c", text]))
    rows.append(Row("gcc -O2 -c, 400 fns", ["gcc", "-O2", "-c", csrc, "-o", os.path.join(tmp, "gen.o")],
                    children=True))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("part", nargs="?", choices=["all", "c", "python"], default="all")
    part = ap.parse_args().part
    runs = int(os.environ.get("RUNS", "5"))
    tmp = tempfile.mkdtemp(prefix="leakhunt-bench.")
    os.makedirs(os.path.join(tmp, "cwd"))
    try:
        leakhunt, preload = snapshot(tmp)
        ctx = {"leakhunt": leakhunt, "preload": preload,
               "heaptrack": shutil.which("heaptrack"), "heaptrack_print": shutil.which("heaptrack_print"),
               "lsan": LSAN if os.path.exists(LSAN) else None, "memray": None,
               "memcheck": os.environ.get("MEMCHECK", "1") != "0" and shutil.which("valgrind"),
               "memcheck_timeout": float(os.environ.get("MEMCHECK_TIMEOUT", "60"))}
        for tool, why in (("heaptrack", "not installed"), ("heaptrack_print", "not installed"),
                          ("lsan", f"no {LSAN}")):
            if not ctx[tool]:
                print(f"{tool}: – ({why})")
        if not ctx["memcheck"]:
            print("memcheck: – (" + ("MEMCHECK=0" if os.environ.get("MEMCHECK") == "0"
                                     else "valgrind not installed") + ")")
        rows = []
        if part in ("all", "c"):
            rows += c_rows(tmp)
        if part in ("all", "python"):
            py, ctx["memray"], workloads = pybench.setup(root, tmp)
            rows += [Row(name, [py, *args], python=True) for name, args in workloads]

        # Nothing inherited may change what is measured: each tool sets its own.
        base_env = {k: v for k, v in os.environ.items()
                    if k not in ("LD_PRELOAD", "PYTHONMALLOC", "LSAN_OPTIONS", "ASAN_OPTIONS")
                    and not k.startswith("LEAKHUNT_")}
        print(f"median of {runs} runs, tools round-robin; {pybench.loadavg()}", flush=True)
        t0 = time.perf_counter()
        for row in rows:
            t = time.perf_counter()
            measure(row, ctx, runs, base_env, tmp)
            print(f"  {row.name}: {time.perf_counter() - t:.0f} s; {pybench.loadavg()}", flush=True)
        print(f"\n{time.perf_counter() - t0:.0f} s in all; {pybench.loadavg()}\n")
        print_table(rows)
        print()
        print(FOOTNOTES)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
