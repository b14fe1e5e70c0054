#!/usr/bin/env python3
"""Overhead of leakhunt against the bare program and against other tools,
measured side by side in the same run (ratios of medians: this machine is
shared and noisy, absolute times mean little).

Usage: run.py [all|c|python]   (default all; RUNS=N sets the runs per tool, 5)

  c       C programs: leakhunt and heaptrack against the bare program.
  python  Python workloads: leakhunt against the bare interpreter, memray
          (installed into target/bench-venv) and heaptrack; see pybench.py.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time

sys.dont_write_bytecode = True  # no __pycache__ in scripts/bench
import pybench  # noqa: E402

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
rel = os.path.join(root, "target", "release")


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
            sys.exit(f"{src} is missing: run `cargo build --release --workspace` first")
        copies.append(shutil.copy2(src, os.path.join(bindir, name)))
    built = time.strftime("%Y-%m-%d %H:%M", time.localtime(max(map(os.path.getmtime, copies))))
    print(f"leakhunt of {built} (target/release, copied for this run)")
    return copies


def build(src, out, flags):
    subprocess.run(["gcc", "-O2", "-g", *flags, "-o", out, src], check=True)
    return out


def bench_c(runs, tmp, leakhunt, preload):
    deep = build(os.path.join(root, "scripts/bench/deep.c"), os.path.join(tmp, "deep"), [])
    stress = build(os.path.join(root, "tests/programs/stress.c"), os.path.join(tmp, "stress"), ["-pthread"])

    workloads = [
        ("deep stack, 1 thread, 1M malloc+free", [deep, "1000000", "20"]),
        ("4 threads x 1M allocs, cross-thread frees", [stress, "1000000"]),
    ]

    def timed(cmd, env=None):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=tmp)
        return time.perf_counter() - t

    have_heaptrack = shutil.which("heaptrack") is not None
    print(f"median of {runs} runs each; ratios are to the bare program; {pybench.loadavg()}")
    for name, cmd in workloads:
        bare, lh, ht, sizes, events = [], [], [], [], None
        for i in range(runs):
            bare.append(timed(cmd))
            out = os.path.join(tmp, f"t{i}.trace")
            env = dict(os.environ, LD_PRELOAD=preload, LEAKHUNT_OUTPUT=out)
            lh.append(timed(cmd, env))
            sizes.append(os.path.getsize(out))
            if events is None:
                rep = subprocess.run([leakhunt, "report", "--format", "json", out],
                                     capture_output=True, text=True, check=True).stdout
                t = json.loads(rep)["totals"]
                events = t["allocations"] + t["frees"]
            os.remove(out)
            if have_heaptrack:
                ht.append(timed(["heaptrack", "-o", os.path.join(tmp, f"h{i}"), *cmd]))
                for f in os.listdir(tmp):
                    if f.startswith(f"h{i}"):
                        os.remove(os.path.join(tmp, f))
        b, l = statistics.median(bare), statistics.median(lh)
        line = f"{name}: bare {b:.3f}s, leakhunt {l:.3f}s ({l / b:.1f}x)"
        if ht:
            h = statistics.median(ht)
            line += f", heaptrack {h:.3f}s ({h / b:.1f}x); leakhunt/heaptrack = {l / h:.2f}"
        line += f"; trace {statistics.median(sizes) / events:.2f} bytes/event"
        print(line, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("part", nargs="?", choices=["all", "c", "python"], default="all")
    part = ap.parse_args().part
    runs = int(os.environ.get("RUNS", "5"))
    tmp = tempfile.mkdtemp(prefix="leakhunt-bench.")
    try:
        leakhunt, preload = snapshot(tmp)
        if part in ("all", "c"):
            bench_c(runs, tmp, leakhunt, preload)
        if part == "all":
            print()
        if part in ("all", "python"):
            pybench.main(root, runs, tmp, leakhunt, preload)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
