#!/usr/bin/env python3
"""Overhead of leakhunt against the bare program and against heaptrack,
measured side by side in the same run (ratios of medians: this machine is
shared and noisy, absolute times mean little)."""
import os, shutil, statistics, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
rel = os.path.join(root, "target", "release")
preload = os.path.join(rel, "libleakhunt.so")
runs = int(os.environ.get("RUNS", "5"))
tmp = tempfile.mkdtemp(prefix="leakhunt-bench.")

def build(src, out, flags):
    subprocess.run(["gcc", "-O2", "-g", *flags, "-o", out, src], check=True)
    return out

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
print(f"median of {runs} runs each; ratios are to the bare program")
for name, cmd in workloads:
    bare, lh, ht, sizes, events = [], [], [], [], None
    for i in range(runs):
        bare.append(timed(cmd))
        out = os.path.join(tmp, f"t{i}.trace")
        env = dict(os.environ, LD_PRELOAD=preload, LEAKHUNT_OUTPUT=out)
        lh.append(timed(cmd, env))
        sizes.append(os.path.getsize(out))
        if events is None:
            rep = subprocess.run([os.path.join(rel, "leakhunt"), "report", "--format", "json", out],
                                 capture_output=True, text=True, check=True).stdout
            import json
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
shutil.rmtree(tmp)
