#!/usr/bin/env python3
"""The verdict table of the growth corpus, from recorded traces, with any
leakhunt binary.

usage: python3 scripts/growth/verdicts.py --leakhunt PATH --traces DIR
                                          [--jobs N] [--json OUT] [names...]
       python3 scripts/growth/verdicts.py --write-md    (regenerates EXPECTED.md)

Runs `leakhunt report --format json --limit N TRACE` on every DIR/<name>/<i>.trace
(record.py's layout) and prints, per program: the expected set, the verdict
counts across runs, how many runs agree, the median evidence, and the most
common first growth line (the top growth entry's first frames, compacted).
`--limit` (default 5) bounds the loss records and growth entries of the JSON:
with all records, a killed Python service's report takes ~40 s.

A verdict of `null` (no timeline verdict at all, what the recorder's
current code gives a run it cannot judge) counts as agreeing with an
expected `inconclusive`; it is shown as `null`.

Exit status: 0 when every run of every program agrees with its expected set;
1 when some run disagrees; 2 when a report failed (a crash, a timeout, an
unreadable trace: those are bugs of leakhunt, listed after the table).
--json OUT writes every run's verdict, evidence, growth line and timings.
"""
import argparse
import concurrent.futures
import fnmatch
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HERE = Path(__file__).resolve().parent
EXPECTED_JSON = HERE / "expected.json"
EXPECTED_MD = HERE / "EXPECTED.md"
REPORT_TIMEOUT_S = 300


def load_expected():
    d = json.loads(EXPECTED_JSON.read_text())
    d.pop("_doc", None)
    return d


def expected_for(name, expected):
    if name in expected:
        return expected[name]
    base = name.split(".")[0]
    return expected.get(base)


# ---------------------------------------------------------------- one run

def compact_name(fn):
    """A C++ or Rust name without its template arguments and parameters:
    `std::vector<int, std::allocator<int> >::push_back(int const&)` ->
    `std::vector<>::push_back`. Python names (`<module>`, `<lambda>`) are
    left alone."""
    if "::" not in fn:
        return fn
    head = ""
    if fn.startswith("<"):  # Rust's `<T as Trait>::method`: keep the impl
        depth = 0
        for k, ch in enumerate(fn):
            depth += ch == "<"
            depth -= ch == ">"
            if depth == 0:
                head, fn = fn[:k + 1], fn[k + 1:]
                break
    out, depth = [head], 0
    for ch in fn:
        if ch in "<(":
            if depth == 0:
                out.append(ch)
            depth += 1
        elif ch in ">)" and depth:
            depth -= 1
            if depth == 0:
                out.append(ch)
        elif depth == 0:
            out.append(ch)
    name = "".join(out)
    return name[:-2] if name.endswith("()") else name


def compact_frame(f):
    fn = compact_name(f.get("function") or "??")
    file = f.get("file")
    if file:
        loc = f"{os.path.basename(file)}:{f.get('line')}" if f.get("line") is not None else os.path.basename(file)
    else:
        loc = os.path.basename(f.get("module") or "") or "?"
    return f"{fn} ({loc})"


# The corpus's own sources: the first frame in one of them is "the program's
# own code" (what issue 8 wants a growth line to start at). Real programs
# (sqlite3, mawk, compileall) have none.
OWN = {p.name for p in (HERE.parent.parent / "tests" / "programs" / "growth").iterdir()}


def growth_line(g, frames):
    """The first `frames` frames, compacted; when the first frame of the
    corpus's own code is deeper, `... @N fn (file:line)` after them."""
    st = g.get("stack") or []
    line = " < ".join(compact_frame(f) for f in st[:frames]) or "(no frames)"
    for k, f in enumerate(st):
        if os.path.basename(f.get("file") or "") in OWN:
            if k >= frames:
                line += f" ... @{k} {compact_frame(f)}"
            break
    return line


def report_one(lh, trace, limit, frames):
    t0 = time.monotonic()
    r = {"trace": str(trace)}
    meta_path = trace.with_suffix(".json")
    if meta_path.exists():
        try:
            r["meta"] = json.loads(meta_path.read_text())
        except ValueError:
            pass
    cmd = [lh, "report", "--format", "json", "--limit", str(limit), str(trace)]
    r["cmd"] = " ".join(cmd)
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=REPORT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        r.update(error=f"timeout after {REPORT_TIMEOUT_S} s", report_s=REPORT_TIMEOUT_S)
        return r
    r["report_s"] = round(time.monotonic() - t0, 2)
    r["stderr"] = p.stderr.decode(errors="replace").strip()
    if p.returncode != 0:
        r["error"] = f"exit {p.returncode}" + (f" (signal {-p.returncode})" if p.returncode < 0 else "")
        return r
    try:
        v = json.loads(p.stdout)
    except ValueError as e:
        r["error"] = f"unparsable JSON: {e}"
        return r
    tl = v.get("timeline") or {}
    r["verdict"] = tl.get("verdict") or "null"
    r["evidence"] = tl.get("evidence") or {}
    r["duration_ms"] = tl.get("duration_ms")
    tr = v.get("trace") or {}
    r["complete"] = tr.get("complete")
    r["scanned"] = (v.get("leaks") or {}).get("scanned")
    growth = v.get("growth") or []
    if growth:
        g = growth[0]
        r["growth_line"] = growth_line(g, frames)
        r["growth_bytes"] = g.get("bytes")
        r["growth_share"] = g.get("share")
    return r


# ---------------------------------------------------------------- the table

def run_key(trace):
    stem = Path(trace).stem
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)


def human(n):
    a = abs(n)
    for unit, div in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if a >= div:
            return f"{n / div:+.1f}{unit}"
    return f"{n:+.0f}"


# Known evidence keys, shown in this order with these short names; unknown
# numeric keys follow under their own names (a redesigned verdict may add
# keys: they show up without editing this script).
KNOWN = [("minima_slope_bytes_per_s", "slope", lambda x: human(x) + "/s"),
         ("consistency", "cons", lambda x: f"{x:.2f}"),
         ("fit", "fit", lambda x: f"{x:.2f}"),
         ("rise_bytes", "rise", human),
         ("from_ms", "from", lambda x: f"{x:.0f}ms"),
         ("to_ms", "to", lambda x: f"{x:.0f}ms")]
HIDDEN = {"peak_bytes", "windows", "minima_slope_bytes_per_event"}


def median_evidence(runs, all_keys):
    evs = [r["evidence"] for r in runs if isinstance(r.get("evidence"), dict)]
    out = []
    seen = set()
    for key, short, fmt in KNOWN:
        vals = [e[key] for e in evs if isinstance(e.get(key), (int, float))]
        seen.add(key)
        if vals:
            out.append(f"{short}={fmt(statistics.median(vals))}")
    keys = sorted({k for e in evs for k in e} - seen - (set() if all_keys else HIDDEN))
    for key in keys:
        vals = [e[key] for e in evs if isinstance(e.get(key), (int, float)) and not isinstance(e.get(key), bool)]
        if vals:
            m = statistics.median(vals)
            out.append(f"{key}={m:.3g}" if isinstance(m, float) else f"{key}={m}")
        else:
            strs = Counter(str(e[key]) for e in evs if key in e and e[key] is not None)
            if strs:
                out.append(f"{key}={strs.most_common(1)[0][0]}")
    return " ".join(out)


def verdict_counts(runs):
    c = Counter(r["verdict"] for r in runs if "verdict" in r)
    return ", ".join(f"{v} {n}" for v, n in c.most_common())


def agrees(verdict, expect):
    return verdict in expect or (verdict == "null" and "inconclusive" in expect)


def table(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_md(expected):
    lines = ["# Growth corpus: the expected verdicts", "",
             "Generated from `expected.json` by `python3 scripts/growth/verdicts.py --write-md`;",
             "edit that file, not this one. Programs are in `tests/programs/growth/` (real",
             "programs: the sqlite3 CLI, mawk, `python3 -m compileall`); `record.py` runs them.",
             "A `.deb` name is the same program under Debian's `/usr/bin/python3.11`, with",
             "the same expectation.", "",
             "| program | right verdict | judged on | why |", "|---|---|---|---|"]
    for name, e in expected.items():
        lines.append(f"| `{name}` | {' or '.join(e['expect'])} | {e['judge']} | {e['why']} |")
    EXPECTED_MD.write_text("\n".join(lines) + "\n")
    print(f"wrote {EXPECTED_MD}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leakhunt", default=os.path.join(ROOT, "target", "release", "leakhunt"))
    ap.add_argument("--traces", default=os.path.join(ROOT, "target", "growth", "traces"))
    ap.add_argument("--jobs", "-j", type=int, default=1)
    ap.add_argument("--limit", type=int, default=5)
    ap.add_argument("--frames", type=int, default=2, help="frames of the growth line (default 2)")
    ap.add_argument("--load", choices=["all", "loaded", "unloaded"], default="all",
                    help="which runs to count (by their record.py .json)")
    ap.add_argument("--all-evidence", action="store_true")
    ap.add_argument("--json", help="write every run's result here")
    ap.add_argument("--write-md", action="store_true")
    ap.add_argument("names", nargs="*")
    args = ap.parse_args()

    expected = load_expected()
    if args.write_md:
        write_md(expected)
        return 0
    root = Path(args.traces)
    dirs = sorted(d for d in root.iterdir() if d.is_dir())
    if args.names:
        dirs = [d for d in dirs if any(fnmatch.fnmatchcase(d.name, p) for p in args.names)]
    # Order: as in expected.json, then the rest.
    order = {n: i for i, n in enumerate(expected)}
    dirs.sort(key=lambda d: (order.get(d.name.split(".")[0], len(order)), d.name))

    jobs = []
    for d in dirs:
        traces = sorted(d.glob("*.trace"), key=run_key)
        for t in traces:
            jobs.append((d.name, t))
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as ex:
        futs = {ex.submit(report_one, args.leakhunt, t, args.limit, args.frames): (n, t) for n, t in jobs}
        for f in concurrent.futures.as_completed(futs):
            n, t = futs[f]
            results.setdefault(n, []).append(f.result())

    rows = [("program", "expected", "verdicts", "agree", "median evidence", "first growth line")]
    failures, errors, notes = 0, [], []
    for d in dirs:
        runs = sorted(results.get(d.name, []), key=lambda r: run_key(r["trace"]))
        if args.load != "all":
            want = args.load == "loaded"
            runs = [r for r in runs if bool((r.get("meta") or {}).get("load")) == want]
        if not runs:
            continue
        e = expected_for(d.name, expected)
        expect = e["expect"] if e else []
        ok = [r for r in runs if "verdict" in r]
        errors += [r for r in runs if "error" in r]
        agree = sum(agrees(r["verdict"], expect) for r in ok)
        if agree < len(runs):
            failures += 1
        lines = Counter(r.get("growth_line", "(no growth entry)") for r in ok)
        line, k = lines.most_common(1)[0] if lines else ("", 0)
        shares = [r["growth_share"] for r in ok if r.get("growth_line") == line and r.get("growth_share") is not None]
        line_txt = line + (f" [{statistics.median(shares):.0%}]" if shares else "") + (f" ({k}/{len(ok)})" if k != len(ok) else "")
        unloaded = sum(not (r.get("meta") or {}).get("load") for r in runs)
        agree_txt = f"{agree}/{len(runs)}" + ("" if unloaded == 0 else f" ({unloaded} unloaded)")
        rows.append((d.name, "|".join(expect) or "?", verdict_counts(ok) + (f", ERROR {len(runs) - len(ok)}" if len(ok) < len(runs) else ""),
                     agree_txt, median_evidence(ok, args.all_evidence), line_txt))
        incomplete = sum(r.get("complete") is False for r in ok)
        unscanned = sum(r.get("scanned") is False for r in ok)
        slow = max((r.get("report_s", 0) for r in runs), default=0)
        # An unloaded run's index is marked `u` (e.g. 11u=burst).
        bad = [f"{Path(r['trace']).stem}{'' if (r.get('meta') or {}).get('load') else 'u'}={r['verdict']}"
               for r in ok if not agrees(r["verdict"], expect)]
        note = []
        if bad:
            note.append("disagree: " + " ".join(bad))
        if incomplete:
            note.append(f"trace incomplete in {incomplete}/{len(ok)}")
        if unscanned:
            note.append(f"no leak scan in {unscanned}/{len(ok)}")
        if slow > 10:
            note.append(f"slowest report {slow:.0f} s")
        if note:
            notes.append(f"{d.name}: " + "; ".join(note))
    print(table(rows))
    if notes:
        print("\nnotes:")
        for n in notes:
            print("  " + n)
    if errors:
        print("\nreport failures (bugs):")
        for r in errors:
            print(f"  {r['cmd']}: {r['error']}" + (f": {r.get('stderr', '')[-300:]}" if r.get("stderr") else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 2 if errors else 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
