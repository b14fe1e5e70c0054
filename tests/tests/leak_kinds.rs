//! Leak kinds, program by program, against memcheck.
//!
//! Every program of `tests/programs/leaks/` (built with `-g -O0`) says in its
//! header comment what it leaks and how; each test asserts leakhunt's bytes
//! and blocks per kind (`leaks.{definitely_lost,...}` of the JSON report)
//! are exactly those, and, where valgrind is installed, that memcheck's LEAK
//! SUMMARY for the same program (`valgrind --leak-check=full`) says the same.
//! memcheck prints no summary when nothing is left ("All heap blocks were
//! freed"): that is all zeros.
//!
//! Both tools hide some runtime noise: memcheck with its default
//! suppressions, leakhunt with its built-in list. Where they hide different
//! things (the DTV glibc allocates for every thread still alive at exit), the
//! comparison takes out memcheck's loss records of that noise by stack, says
//! so, and a separate test (ignored, a known mismatch) compares the raw
//! summaries.

use leakhunt_tests::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---------------------------------------------------------------- kinds

/// Bytes and blocks of each leak kind, and of the suppressed blocks.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct Leaks {
    definite: (u64, u64),
    indirect: (u64, u64),
    possible: (u64, u64),
    reachable: (u64, u64),
    suppressed: (u64, u64),
}

impl fmt::Debug for Leaks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = |(b, n): (u64, u64)| format!("{b} B/{n}");
        write!(
            f,
            "definite {}, indirect {}, possible {}, reachable {}, suppressed {}",
            p(self.definite),
            p(self.indirect),
            p(self.possible),
            p(self.reachable),
            p(self.suppressed)
        )
    }
}

const ZERO: Leaks = Leaks {
    definite: (0, 0),
    indirect: (0, 0),
    possible: (0, 0),
    reachable: (0, 0),
    suppressed: (0, 0),
};

impl Leaks {
    fn kind_mut(&mut self, kind: &str) -> &mut (u64, u64) {
        match kind {
            "definitely_lost" => &mut self.definite,
            "indirectly_lost" => &mut self.indirect,
            "possibly_lost" => &mut self.possible,
            "still_reachable" => &mut self.reachable,
            "suppressed" => &mut self.suppressed,
            _ => panic!("unknown leak kind {kind}"),
        }
    }
}

/// The `leaks` of a JSON report.
fn reported(v: &Value) -> Leaks {
    let mut l = ZERO;
    for kind in [
        "definitely_lost",
        "indirectly_lost",
        "possibly_lost",
        "still_reachable",
        "suppressed",
    ] {
        *l.kind_mut(kind) = (
            num(v, &format!("leaks/{kind}/bytes")),
            num(v, &format!("leaks/{kind}/blocks")),
        );
    }
    l
}

/// The report's `leaks.reachable_via_heuristic`, non-zero entries only.
fn reported_heuristics(v: &Value) -> BTreeMap<String, (u64, u64)> {
    let mut m = BTreeMap::new();
    if let Some(o) = v["leaks"]["reachable_via_heuristic"].as_object() {
        for (k, x) in o {
            let n = (
                x["bytes"].as_u64().unwrap_or(0),
                x["blocks"].as_u64().unwrap_or(0),
            );
            if n != (0, 0) {
                m.insert(k.clone(), n);
            }
        }
    }
    m
}

// ---------------------------------------------------------------- memcheck

/// What memcheck said about one process.
struct Memcheck {
    log: String,
}

impl Memcheck {
    /// Its LEAK SUMMARY (zeros when "All heap blocks were freed").
    fn leaks(&self) -> Leaks {
        let freed = self.log.contains("All heap blocks were freed");
        assert!(
            freed || self.log.contains("LEAK SUMMARY:"),
            "memcheck printed no leak summary:\n{}",
            self.log
        );
        let mut l = ZERO;
        for (k, n) in parse_valgrind_leaks(&self.log) {
            *l.kind_mut(&k) = n;
        }
        l
    }

    /// Its "of which reachable via heuristic:" lines.
    fn heuristics(&self) -> BTreeMap<String, (u64, u64)> {
        let mut m = BTreeMap::new();
        for name in ["stdstring", "length64", "newarray", "multipleinheritance"] {
            let Some(line) = self.log.lines().find(|l| {
                let body = strip_pid(l).trim_start();
                body.starts_with(name) && body[name.len()..].trim_start().starts_with(':')
            }) else {
                continue;
            };
            let rest = line.split_once(':').map(|x| x.1).unwrap_or("");
            // "  72 bytes in 1 blocks"
            let w: Vec<&str> = rest.split_whitespace().collect();
            let n = |s: Option<&&str>| s.and_then(|s| s.replace(',', "").parse::<u64>().ok());
            if let (Some(b), Some(k)) = (n(w.first()), n(w.get(3))) {
                m.insert(name.to_string(), (b, k));
            }
        }
        m
    }

    /// Its loss records.
    fn records(&self) -> Vec<VgRecord> {
        let mut out: Vec<VgRecord> = Vec::new();
        let mut current: Option<VgRecord> = None;
        for line in self.log.lines().map(strip_pid) {
            let body = line.trim();
            if let Some(r) = parse_record_header(body) {
                out.extend(current.replace(r));
            } else if body.starts_with("at ") || body.starts_with("by ") {
                if let Some(r) = current.as_mut() {
                    r.stack.push(body.to_string());
                }
            } else {
                out.extend(current.take());
            }
        }
        out.extend(current);
        out
    }

    /// The summary without the loss records whose stack mentions `function`
    /// (runtime noise that leakhunt hides and memcheck does not).
    fn leaks_without(&self, function: &str) -> (Leaks, Vec<VgRecord>) {
        let mut l = self.leaks();
        let mut taken = Vec::new();
        for r in self.records() {
            if r.stack.iter().any(|f| f.contains(function)) {
                let k = l.kind_mut(&r.kind);
                k.0 -= r.bytes;
                k.1 -= r.blocks;
                taken.push(r);
            }
        }
        (l, taken)
    }
}

/// One memcheck loss record ("N bytes in M blocks are K in loss record i of n").
#[derive(Debug)]
struct VgRecord {
    kind: String,
    /// direct bytes (what the LEAK SUMMARY counts for this kind)
    bytes: u64,
    blocks: u64,
    stack: Vec<String>,
}

fn strip_pid(line: &str) -> &str {
    // "==123== text"
    match line.strip_prefix("==") {
        Some(rest) => rest.split_once("== ").map(|x| x.1).unwrap_or(rest),
        None => line,
    }
}

fn parse_record_header(body: &str) -> Option<VgRecord> {
    if !body.contains(" in loss record ") {
        return None;
    }
    let kind = [
        ("are definitely lost", "definitely_lost"),
        ("are indirectly lost", "indirectly_lost"),
        ("are possibly lost", "possibly_lost"),
        ("are still reachable", "still_reachable"),
    ]
    .iter()
    .find(|(p, _)| body.contains(p))?
    .1;
    let n = |s: &str| s.replace(',', "").parse::<u64>().ok();
    // "N bytes in M blocks" or "N (D direct, I indirect) bytes in M blocks"
    let (size, rest) = body.split_once(" bytes in ")?;
    let bytes = match size.split_once('(') {
        Some((_, inner)) => n(inner.split_whitespace().next()?)?,
        None => n(size.trim())?,
    };
    let blocks = n(rest.split_whitespace().next()?)?;
    Some(VgRecord {
        kind: kind.to_string(),
        bytes,
        blocks,
        stack: Vec::new(),
    })
}

/// `valgrind --leak-check=full --show-leak-kinds=all prog args`; `None`
/// (skip, with the reason printed) when valgrind is not installed.
fn memcheck(prog: &Path, args: &[&str]) -> Option<Memcheck> {
    let o = valgrind(prog, args, &["--leak-check=full", "--show-leak-kinds=all"])?;
    eprintln!("memcheck ran {} in {:?}", prog.display(), o.elapsed);
    Some(Memcheck { log: o.stderr })
}

// ---------------------------------------------------------------- programs

/// Builds `tests/programs/leaks/<src>` with `-g -O0` (and `flags`).
fn build(dir: &TestDir, src: &str, flags: &[&str]) -> Option<PathBuf> {
    let out = src.rsplit_once('.').map(|(b, _)| b).unwrap_or(src);
    let mut extra = vec!["-O0"];
    extra.extend_from_slice(flags);
    match try_compile(dir.path(), &format!("leaks/{src}"), out, &extra) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// A program of the corpus run under leakhunt (and memcheck), checked.
struct Checked {
    dir: TestDir,
    prog: PathBuf,
    report: Value,
    run: Run,
}

/// Runs `src` under `leakhunt run`, asserts the scan ran and found exactly
/// `want` (and reached exactly `heuristics` via memcheck's heuristics), then,
/// if valgrind is installed, that memcheck's LEAK SUMMARY says the same.
///
/// `live_threads`: threads still alive at exit. glibc's DTV of each is
/// reached from the thread's control block through an interior pointer:
/// leakhunt's `dtv` heuristic counts it still reachable (checked here as one
/// block per thread, of a size that depends on the TLS modules loaded, and
/// then taken out of the comparison with `want`); memcheck, which has no
/// such heuristic, says possibly lost: its loss records of it are taken out
/// of the comparison, by stack, and say so.
fn check(
    name: &str,
    src: &str,
    flags: &[&str],
    args: &[&str],
    want: Leaks,
    heuristics: &[(&str, u64, u64)],
    live_threads: u64,
) -> Option<Checked> {
    let dir = TestDir::new(name);
    let prog = build(&dir, src, flags)?;
    let run = leakhunt_run(dir.path(), &prog, args);
    assert!(
        run.out.code().is_some(),
        "{src}: leakhunt run ended by a signal: {:?}\n{}",
        run.out.status,
        run.out.stderr
    );
    let v = report_json(&run.trace);
    assert_eq!(
        v["leaks"]["scanned"], true,
        "{src}: the exit scan did not run: {}",
        v["leaks"]
    );
    let mut got = reported(&v);
    let mut got_heur = reported_heuristics(&v);
    let want_heur: BTreeMap<String, (u64, u64)> = heuristics
        .iter()
        .map(|&(k, b, n)| (k.to_string(), (b, n)))
        .collect();
    eprintln!("{src}: leakhunt: {got:?}; via heuristics {got_heur:?}");
    let dtv = got_heur.remove("dtv").unwrap_or((0, 0));
    assert_eq!(
        dtv.1, live_threads,
        "{src}: one DTV per live thread, reachable via the dtv heuristic: {dtv:?}"
    );
    assert!(dtv.0.is_multiple_of(16), "{src}: DTV bytes: {dtv:?}");
    got.reachable.0 -= dtv.0;
    got.reachable.1 -= dtv.1;
    assert_eq!(
        got, want,
        "{src}: leakhunt (left) vs what the program leaks (right); records: {:#}",
        v["records"]
    );
    assert_eq!(got_heur, want_heur, "{src}: reachable via heuristics");

    if let Some(mc) = memcheck(&prog, args) {
        let (theirs, taken) = if live_threads > 0 {
            mc.leaks_without(DTV)
        } else {
            (mc.leaks(), Vec::new())
        };
        eprintln!(
            "{src}: memcheck: {theirs:?}; via heuristics {:?}",
            mc.heuristics()
        );
        for r in &taken {
            eprintln!(
                "{src}: memcheck's {} B in {} block(s) {} under {DTV} left out of the comparison",
                r.bytes, r.blocks, r.kind
            );
        }
        if live_threads > 0 {
            // What leakhunt's heuristic reached is what was taken out of
            // memcheck's: the same blocks, each one slot (16 bytes) larger
            // as libleakhunt.so is one more TLS module (see
            // `live_thread_dtv_matches_memcheck`).
            let (bytes, blocks) = taken
                .iter()
                .fold((0, 0), |(b, n), r| (b + r.bytes, n + r.blocks));
            assert_eq!(
                (bytes + 16 * live_threads, blocks),
                dtv,
                "{src}: memcheck's records under {DTV}: {taken:#?}"
            );
        }
        assert_eq!(
            got, theirs,
            "{src}: leakhunt (left) vs memcheck (right):\n{}",
            mc.log
        );
        assert_eq!(got_heur, mc.heuristics(), "{src}: heuristics vs memcheck");
    }
    Some(Checked {
        dir,
        prog,
        report: v,
        run,
    })
}

/// The records of a report of one kind, as (bytes, blocks, indirect bytes).
fn records_of(v: &Value, kind: &str) -> Vec<(u64, u64, u64)> {
    let mut out: Vec<(u64, u64, u64)> = records(v)
        .into_iter()
        .filter(|r| r["kind"] == kind)
        .map(|r| {
            (
                r["bytes"].as_u64().unwrap_or(0),
                r["blocks"].as_u64().unwrap_or(0),
                r["indirect_bytes"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    out.sort_unstable();
    out
}

// ---------------------------------------------------------------- the corpus

/// Program 1: One plain lost block.
#[test]
fn plain_lost_block() {
    let want = Leaks {
        definite: (123, 1),
        ..ZERO
    };
    let Some(c) = check("plain", "plain.c", &[], &[], want, &[], 0) else {
        return;
    };
    assert_eq!(c.run.out.code(), Some(3), "the program's own status");
    assert_eq!(records_of(&c.report, "definitely_lost"), [(123, 1, 0)]);
}

/// Program 2: A lost list of 10: the head definite, nine indirect, carried by the
/// head's record as its indirect bytes.
#[test]
fn lost_list_of_ten() {
    let want = Leaks {
        definite: (48, 1),
        indirect: (432, 9),
        ..ZERO
    };
    let Some(c) = check("list10", "list10.c", &[], &[], want, &[], 0) else {
        return;
    };
    let v = &c.report;
    assert_eq!(records_of(v, "definitely_lost"), [(48, 1, 432)]);
    assert_eq!(records_of(v, "indirectly_lost"), [(432, 9, 0)]);
    let head = records(v)
        .into_iter()
        .find(|r| r["kind"] == "definitely_lost")
        .expect("the head's record");
    assert_eq!(head["indirect_blocks"], 9, "{head}");
}

/// Program 3: An unreachable cycle of three: one leader, two indirect.
#[test]
fn unreachable_cycle_of_three() {
    let want = Leaks {
        definite: (32, 1),
        indirect: (64, 2),
        ..ZERO
    };
    check("cycle3", "cycle3.c", &[], &[], want, &[], 0);
}

/// Program 4: Interior pointers only (from a global, from a reachable block).
#[test]
fn interior_pointer_is_possibly_lost() {
    let want = Leaks {
        possible: (300, 2),
        reachable: (50, 1),
        ..ZERO
    };
    check("interior", "interior.c", &[], &[], want, &[], 0);
}

/// Program 5: Blocks held by globals (.bss, .data, and a chain through a block).
#[test]
fn globals_hold_reachable_blocks() {
    let want = Leaks {
        reachable: (140, 6),
        ..ZERO
    };
    check("globals", "globals.c", &[], &[], want, &[], 0);
}

/// Program 6: A static local holds a block.
#[test]
fn static_local_holds_a_block() {
    let want = Leaks {
        definite: (5, 1),
        reachable: (77, 1),
        ..ZERO
    };
    check("static_local", "static_local.c", &[], &[], want, &[], 0);
}

/// Program 7: exit() from a nested function: main's frame is live, its block reachable.
#[test]
fn exit_from_nested_function_keeps_mains_frame() {
    let want = Leaks {
        definite: (11, 1),
        reachable: (55, 1),
        ..ZERO
    };
    check("exit_nested", "exit_nested.c", &[], &[], want, &[], 0);
}

/// glibc's DTV of a thread still alive at exit (`allocate_dtv` under
/// `_dl_allocate_tls`): memcheck reports it possibly lost, leakhunt's `dtv`
/// heuristic still reachable. See `live_thread_dtv_matches_memcheck`.
const DTV: &str = "_dl_allocate_tls";

/// Asserts each still-reachable record of a threaded program is one of
/// `holders` (bytes, function in its stack: the thread that made it), but
/// for the live threads' DTVs (checked by `check`).
fn assert_holders(c: &Checked, holders: &[(u64, &str)]) {
    let recs: Vec<&Value> = records(&c.report)
        .into_iter()
        .filter(|r| r["kind"] == "still_reachable")
        .filter(|r| !frames(r).iter().any(|x| x["function"] == DTV))
        .collect();
    assert_eq!(recs.len(), holders.len(), "{:#}", c.report["records"]);
    for r in recs {
        let bytes = r["bytes"].as_u64().unwrap_or(0);
        let f = holders
            .iter()
            .find(|h| h.0 == bytes)
            .unwrap_or_else(|| panic!("unexpected reachable record {r}"))
            .1;
        assert!(
            frames(r).iter().any(|x| x["function"] == f),
            "the {bytes}-byte block is not {f}'s: {r}"
        );
    }
}

/// Program 8: Blocks held only by the stacks of threads blocked in read(2) and in
/// pthread_cond_wait when main returns.
#[test]
fn blocked_threads_stacks_are_roots() {
    let want = Leaks {
        reachable: (160, 2),
        ..ZERO
    };
    let Some(c) = check(
        "thread_blocked",
        "thread_blocked.c",
        &["-pthread"],
        &[],
        want,
        &[],
        2,
    ) else {
        return;
    };
    assert_holders(&c, &[(64, "reader"), (96, "waiter")]);
    assert_eq!(
        num(&c.report, "leaks/scan/threads"),
        2,
        "{}",
        c.report["leaks"]["scan"]
    );
}

/// Program 8b: a thread that blocks every signal, so it never parks for the
/// scan, holding a block on its stack and one in its TLS while blocked in
/// read(): scanned from the stack pointer the kernel shows (and its TCB),
/// both still reachable as memcheck says.
#[test]
fn signal_blocking_thread_stack_is_a_root() {
    let want = Leaks {
        reachable: (110, 2),
        ..ZERO
    };
    let Some(c) = check(
        "signals_blocked",
        "signals_blocked.c",
        &["-pthread"],
        &[],
        want,
        &[],
        1,
    ) else {
        return;
    };
    assert_holders(&c, &[(33, "holder"), (77, "holder")]);
    assert_eq!(
        num(&c.report, "leaks/scan/threads_missed"),
        0,
        "{}",
        c.report["leaks"]["scan"]
    );
    assert!(
        c.report["leaks"]["scan"]["duration_ms"]
            .as_f64()
            .is_some_and(|ms| ms < 500.0),
        "the scan must not wait for a thread that cannot take its signal: {}",
        c.report["leaks"]["scan"]
    );
}

/// Program 9a: A busy-looping thread holding a block in a live stack slot.
#[test]
fn spinning_thread_stack_is_a_root() {
    let want = Leaks {
        reachable: (40, 1),
        ..ZERO
    };
    let Some(c) = check(
        "spin_stack",
        "spin.c",
        &["-pthread"],
        &["stack"],
        want,
        &[],
        1,
    ) else {
        return;
    };
    assert_holders(&c, &[(40, "spin_stack")]);
}

/// Program 9b: A busy-looping thread holding a block in registers only.
#[test]
fn spinning_thread_registers_are_roots() {
    let want = Leaks {
        reachable: (48, 1),
        ..ZERO
    };
    let Some(c) = check(
        "spin_reg",
        "spin.c",
        &["-pthread"],
        &["register"],
        want,
        &[],
        1,
    ) else {
        return;
    };
    assert_holders(&c, &[(48, "spin_register")]);
}

/// Program 10: `__thread` variables of main and of a live second thread.
#[test]
fn thread_local_storage_is_a_root() {
    let want = Leaks {
        reachable: (80, 2),
        ..ZERO
    };
    let Some(c) = check("tls", "tls.c", &["-pthread"], &[], want, &[], 1) else {
        return;
    };
    assert_holders(&c, &[(24, "main"), (56, "second")]);
}

/// Program 11: An anonymous mmap region of the program's holds a block.
#[test]
fn mmap_region_is_a_root() {
    let want = Leaks {
        definite: (7, 1),
        reachable: (33, 1),
        ..ZERO
    };
    check("mmap_root", "mmap_root.c", &[], &[], want, &[], 0);
}

/// Program 12: newarray, multipleinheritance and length64 heuristics; std::string
/// of libstdc++'s current ABI (pointers to the buffer's start: no heuristic).
#[test]
fn cpp_heuristics() {
    let want = Leaks {
        reachable: (486, 6),
        ..ZERO
    };
    check(
        "cpp_heur",
        "cpp_heuristics.cpp",
        &[],
        &[],
        want,
        &[
            ("length64", 72, 1),
            ("multipleinheritance", 40, 1),
            ("newarray", 40, 1),
        ],
        0,
    );
}

/// Program 12b: std::string of the old copy-on-write ABI: the stdstring heuristic.
#[test]
fn cow_string_stdstring_heuristic() {
    let want = Leaks {
        reachable: (358, 3),
        ..ZERO
    };
    check(
        "cow_string",
        "cow_string.cpp",
        &["-D_GLIBCXX_USE_CXX11_ABI=0"],
        &[],
        want,
        &[("stdstring", 350, 2)],
        0,
    );
}

/// Program 13: Everything freed.
#[test]
fn leak_free_program() {
    let Some(c) = check("free_all", "free_all.c", &[], &[], ZERO, &[], 0) else {
        return;
    };
    assert!(records(&c.report).is_empty(), "{:#}", c.report["records"]);
    if let Some(mc) = memcheck(&c.prog, &[]) {
        assert!(mc.log.contains("All heap blocks were freed"), "{}", mc.log);
    }
}

/// Program 14: Everything freed by atexit handlers and destructors.
#[test]
fn freed_in_exit_handlers() {
    let Some(c) = check("atexit_free", "atexit_free.c", &[], &[], ZERO, &[], 0) else {
        return;
    };
    assert!(records(&c.report).is_empty(), "{:#}", c.report["records"]);
}

/// Program 15: fork: parent and child each compared with memcheck's report for
/// that pid.
#[test]
fn fork_parent_and_child_each_match_memcheck() {
    let dir = TestDir::new("fork");
    let Some(prog) = build(&dir, "fork.c", &[]) else {
        return;
    };
    let pids = |text: &str| -> (u64, u64) {
        let pid = |who: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{who} pid=")))
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no `{who} pid=` line in:\n{text}"))
        };
        (pid("parent"), pid("child"))
    };
    let run = leakhunt_run(dir.path(), &prog, &[]);
    assert_eq!(run.out.code(), Some(0), "{}", run.out.stderr);
    let (parent_pid, child_pid) = pids(&run.out.stderr);
    let child_trace = PathBuf::from(format!("{}.{child_pid}", run.trace.display()));
    let parent = report_json(&run.trace);
    let child = report_json(&child_trace);
    assert_eq!(num(&parent, "program/pid"), parent_pid);
    assert_eq!(num(&child, "program/pid"), child_pid);
    let want_parent = Leaks {
        definite: (96, 1),
        reachable: (15, 2),
        ..ZERO
    };
    let want_child = Leaks {
        definite: (32, 1),
        indirect: (64, 2),
        possible: (300, 1),
        reachable: (5, 1),
        ..ZERO
    };
    for (who, v, want) in [
        ("parent", &parent, want_parent),
        ("child", &child, want_child),
    ] {
        assert_eq!(v["leaks"]["scanned"], true, "{who}");
        assert_eq!(reported(v), want, "{who}: leakhunt vs the program");
    }

    if !have("valgrind") {
        skip("valgrind is not installed");
        return;
    }
    let log = dir.join("vg.%p");
    let o = run_cmd(
        std::process::Command::new("valgrind")
            .arg(leakhunt_tests::MEMCHECK_HIGH_HEAP)
            .arg("--leak-check=full")
            .arg("--trace-children=yes")
            .arg("--child-silent-after-fork=no")
            .arg(format!("--log-file={}", log.display()))
            .arg(&prog)
            .env_remove("LD_PRELOAD"),
        Duration::from_secs(120),
    );
    assert_eq!(o.code(), Some(0), "{}", o.stderr);
    let (vg_parent, vg_child) = pids(&o.stderr);
    for (who, pid, want) in [
        ("parent", vg_parent, want_parent),
        ("child", vg_child, want_child),
    ] {
        let path = dir.join(format!("vg.{pid}"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "no memcheck log {} ({e}); files: {:?}",
                path.display(),
                dir.files_starting_with("vg.")
            )
        });
        let mc = Memcheck { log: text };
        assert_eq!(mc.leaks(), want, "{who}: memcheck vs leakhunt:\n{}", mc.log);
    }
}

/// Program 16: Four threads, each losing some blocks and keeping others in a global
/// array; all joined before exit.
#[test]
fn four_threads_lose_and_keep() {
    let want = Leaks {
        definite: (320, 10),
        reachable: (608, 8),
        ..ZERO
    };
    check("threads4", "threads4.c", &["-pthread"], &[], want, &[], 0);
}

/// Program 17: 150,000 lost blocks, exact: a list of 100,000 and 50,000 lone ones.
#[test]
fn hundred_thousand_blocks_exact() {
    let want = Leaks {
        definite: (800_032, 50_001),
        indirect: (3_199_968, 99_999),
        ..ZERO
    };
    let Some(c) = check("big", "big.c", &[], &[], want, &[], 0) else {
        return;
    };
    let v = &c.report;
    assert_eq!(
        records_of(v, "definitely_lost"),
        [(32, 1, 3_199_968), (800_000, 50_000, 0)]
    );
    assert_eq!(records_of(v, "indirectly_lost"), [(3_199_968, 99_999, 0)]);
    eprintln!(
        "big: leakhunt run took {:?}, scan {} ms",
        c.run.out.elapsed, v["leaks"]["scan"]["duration_ms"]
    );
}

/// Program 18: C++ hello world: nothing left (libstdc++'s pool released first).
#[test]
fn cpp_hello_world_leaks_nothing() {
    let Some(c) = check("hello", "hello.cpp", &[], &[], ZERO, &[], 0) else {
        return;
    };
    assert!(records(&c.report).is_empty(), "{:#}", c.report["records"]);
    assert_eq!(c.run.out.stdout.trim(), "hello, world");
    if let Some(mc) = memcheck(&c.prog, &[]) {
        assert!(mc.log.contains("All heap blocks were freed"), "{}", mc.log);
    }
}

/// Program 19: Killed by abort(): no scan, and the never-freed blocks are listed
/// (memcheck, which scans even then, agrees on what was in use).
#[test]
fn abort_means_no_scan_but_lists_blocks() {
    let dir = TestDir::new("abort");
    let Some(prog) = build(&dir, "abort.c", &[]) else {
        return;
    };
    let run = leakhunt_run(dir.path(), &prog, &[]);
    assert_eq!(
        run.out.shell_status(),
        128 + libc::SIGABRT,
        "status: {}",
        run.out.stderr
    );
    let v = report_json(&run.trace);
    assert_eq!(v["leaks"]["scanned"], false, "{}", v["leaks"]);
    let why = v["leaks"]["why_not_scanned"].as_str().unwrap_or("");
    assert!(why.contains("did not exit normally"), "why: {why:?}");
    assert_eq!(reported(&v), ZERO, "no kinds without a scan");
    assert_eq!(num(&v, "leaks/never_freed/bytes"), 300);
    assert_eq!(num(&v, "leaks/never_freed/blocks"), 2);
    assert_eq!(records_of(&v, "never_freed"), [(100, 1, 0), (200, 1, 0)]);
    let text = report_text(&run.trace);
    assert!(text.contains("did not exit normally"), "{text}");
    assert!(text.contains("never freed"), "{text}");

    if let Some(mc) = memcheck(&prog, &[]) {
        let line = mc
            .log
            .lines()
            .find(|l| l.contains("in use at exit:"))
            .unwrap_or_else(|| panic!("no 'in use at exit' from memcheck:\n{}", mc.log));
        assert!(
            line.ends_with("in use at exit: 300 bytes in 2 blocks"),
            "memcheck: {line}"
        );
    }
}

/// Program 20: libraries dlopen()ed and never dlclose()d (a plugin host, an
/// interpreter importing extension modules). What ld.so allocated for them is
/// still reachable for memcheck, which scans every `rw` mapping, among them
/// the anonymous pages ld.so's start-up minimal malloc mapped: the first
/// dlopen()ed link map hangs off the `l_next` of the last startup library's
/// link map, which lies there (`dlopen_dep2.so`'s under the preload, see
/// dlopen_dep.c). A library's block held in its `.bss` is reachable too; its
/// forgotten block is definitely lost. memcheck's numbers, kind by kind.
#[test]
fn dlopen_kept_libraries_are_reachable() {
    let dir = TestDir::new("dlopen_kept");
    let d = dir.path().to_string_lossy().into_owned();
    let rpath = format!("-Wl,-rpath,{d}");
    // (source, output, extra flags): the libraries first, each after what it
    // needs.
    let lib = ["-O0", "-shared", "-fPIC"];
    let builds: [(&str, &str, Vec<&str>); 6] = [
        ("dlopen_dep2.c", "libdlopen_dep2.so", lib.to_vec()),
        (
            "dlopen_dep.c",
            "libdlopen_dep.so",
            [&lib[..], &["-L", &d, "-ldlopen_dep2", &rpath]].concat(),
        ),
        (
            "dlopen_plugin_a_dep.c",
            "libdlopen_plugin_a_dep.so",
            lib.to_vec(),
        ),
        (
            "dlopen_plugin_a.c",
            "dlopen_plugin_a.so",
            [&lib[..], &["-L", &d, "-ldlopen_plugin_a_dep", &rpath]].concat(),
        ),
        ("dlopen_plugin_b.c", "dlopen_plugin_b.so", lib.to_vec()),
        (
            "dlopen_kept.c",
            "dlopen_kept",
            vec!["-O0", "-L", &d, "-ldlopen_dep", &rpath],
        ),
    ];
    for (src, out, flags) in &builds {
        match try_compile(dir.path(), &format!("leaks/{src}"), out, flags) {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => panic!("{e}"),
        }
    }
    let prog = dir.join("dlopen_kept");
    let a = dir.join("dlopen_plugin_a.so");
    let b = dir.join("dlopen_plugin_b.so");
    let args = [a.to_str().unwrap(), b.to_str().unwrap()];
    let run = leakhunt_run(dir.path(), &prog, &args);
    assert_eq!(run.out.code(), Some(0), "{}", run.out.stderr);
    let v = report_json(&run.trace);
    assert_eq!(v["leaks"]["scanned"], true, "{}", v["leaks"]);
    let got = reported(&v);
    eprintln!("dlopen_kept: leakhunt: {got:?}");
    // The link maps' sizes hold the libraries' paths (the test directory's
    // name): the reachable bytes are memcheck's to say. The blocks: ld.so's
    // 11 for the three libraries (link maps, scopes, search lists, names)
    // and plugin_b's 48-byte block.
    let want = Leaks {
        definite: (32, 1),
        reachable: (got.reachable.0, 12),
        ..ZERO
    };
    assert_eq!(got, want, "leakhunt (left): records {:#}", v["records"]);
    assert_eq!(records_of(&v, "definitely_lost"), [(32, 1, 0)]);
    let held = records(&v)
        .into_iter()
        .filter(|r| r["kind"] == "still_reachable" && r["bytes"] == 48)
        .count();
    assert_eq!(held, 1, "plugin_b's block: {:#}", v["records"]);
    assert!(
        reported_heuristics(&v).is_empty(),
        "{}",
        v["leaks"]["reachable_via_heuristic"]
    );
    if let Some(mc) = memcheck(&prog, &args) {
        let theirs = mc.leaks();
        eprintln!("dlopen_kept: memcheck: {theirs:?}");
        assert_eq!(
            got, theirs,
            "leakhunt (left) vs memcheck (right):\n{}",
            mc.log
        );
    }
}

// ---------------------------------------------------------------- the command line

/// `leakhunt run --fail-on definite --error-exitcode 42`: 42 with a definite
/// leak, the program's own status without one (also when other kinds are
/// left: reachable only counts with `--fail-on reachable`).
#[test]
fn fail_on_definite_sets_the_exit_status() {
    let dir = TestDir::new("fail_on");
    let Some(plain) = build(&dir, "plain.c", &[]) else {
        return;
    };
    let Some(globals) = build(&dir, "globals.c", &[]) else {
        return;
    };
    let run = |prog: &Path, kinds: &str, args: &[&str]| {
        let trace = dir.join(format!(
            "{}.{kinds}.{}.trace",
            prog.file_name().unwrap().to_string_lossy(),
            args.len()
        ));
        run_cmd(
            leakhunt_cmd()
                .current_dir(dir.path())
                .args(["run", "--fail-on", kinds, "--error-exitcode", "42", "-o"])
                .arg(&trace)
                .arg("--")
                .arg(prog)
                .args(args),
            TIMEOUT,
        )
    };
    let o = run(&plain, "definite", &[]);
    assert_eq!(o.code(), Some(42), "definite leak: {}", o.stderr);
    let o = run(&plain, "definite", &["none"]);
    assert_eq!(
        o.code(),
        Some(3),
        "no leak: the program's status: {}",
        o.stderr
    );
    let o = run(&globals, "definite", &[]);
    assert_eq!(o.code(), Some(0), "reachable only: {}", o.stderr);
    let o = run(&globals, "reachable", &[]);
    assert_eq!(o.code(), Some(42), "--fail-on reachable: {}", o.stderr);
}

/// `leakhunt report --show all` lists the indirectly lost record in
/// memcheck's words.
#[test]
fn show_all_lists_indirect_records_in_memchecks_words() {
    let dir = TestDir::new("show_all");
    let Some(prog) = build(&dir, "list10.c", &[]) else {
        return;
    };
    let run = leakhunt_run(dir.path(), &prog, &[]);
    let text = report_text(&run.trace);
    assert!(
        text.lines().any(
            |l| l.starts_with("480 (48 direct, 432 indirect) bytes in 1 block")
                && l.contains(" definitely lost in loss record ")
        ),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains("are indirectly lost in loss record"))
        .unwrap_or_else(|| panic!("no indirectly lost record:\n{text}"));
    assert!(
        line.starts_with("432 bytes in 9 blocks are indirectly lost in loss record "),
        "{line}"
    );
    if let Some(mc) = memcheck(&prog, &[]) {
        assert!(
            mc.log.lines().map(strip_pid).any(|l| l
                .starts_with("432 bytes in 9 blocks are indirectly lost in loss record ")),
            "memcheck's wording:\n{}",
            mc.log
        );
    }
    // the default shows definite and possible records only
    let o = run_cmd(leakhunt_cmd().arg("report").arg(&run.trace), TIMEOUT);
    assert!(o.status.success(), "{}", o.stderr);
    assert!(
        !o.stdout.contains("indirectly lost in loss record"),
        "{}",
        o.stdout
    );
}

// ---------------------------------------------------------------- known mismatches

/// The raw LEAK SUMMARY of a program with threads alive at exit. memcheck
/// reports each live thread's DTV (glibc's `allocate_dtv`, calloc'ed by
/// `_dl_allocate_tls` under `pthread_create`; the TCB holds `dtv + 1`, an
/// interior pointer) as possibly lost: 272 bytes per thread here; no default
/// suppression covers it. leakhunt's `dtv` heuristic counts it still
/// reachable, as LeakSanitizer does (it is the runtime's record of a live
/// thread), and each DTV is 16 bytes larger (288) because libleakhunt.so,
/// preloaded, has a PT_TLS segment of its own: one more TLS module, one more
/// DTV slot (memcheck with any TLS-using LD_PRELOAD library says 288 too).
#[test]
#[ignore = "by design: live threads' DTV: memcheck possibly lost 272 B/thread; leakhunt still reachable (dtv heuristic), 288 B under the preload"]
fn live_thread_dtv_matches_memcheck() {
    let dir = TestDir::new("dtv");
    let Some(prog) = build(&dir, "thread_blocked.c", &["-pthread"]) else {
        return;
    };
    let Some(mc) = memcheck(&prog, &[]) else {
        return;
    };
    let run = leakhunt_run(dir.path(), &prog, &[]);
    let builtin = reported(&report_json(&run.trace));
    let o = run_cmd(
        leakhunt_cmd()
            .args([
                "report",
                "--format",
                "json",
                "--limit",
                "0",
                "--no-builtin-suppressions",
            ])
            .arg(&run.trace),
        TIMEOUT,
    );
    let raw: Value = serde_json::from_str(&o.stdout).expect("JSON report");
    let raw = reported(&raw);
    let theirs = mc.leaks();
    assert!(
        builtin == theirs && raw == theirs,
        "memcheck:                           {theirs:?}\n\
         leakhunt:                           {builtin:?}\n\
         leakhunt --no-builtin-suppressions: {raw:?}"
    );
}

/// glibc's malloc keeps pointers to free chunks' headers in its `main_arena`
/// (libc's .data: fastbinsY, bins, top, last_remainder). A chunk's header
/// overlaps the last 8 bytes of the block before it when that block's size
/// is n > 8 with n % 16 in 1..8, so those pointers are interior pointers
/// into live blocks, and leakhunt, which scans libc's writable segment as a
/// root, makes lost blocks "possibly lost". memcheck replaces the allocator
/// and never sees such pointers. (Which blocks are hit also changes during
/// the scan: the scan's own allocations come from the same arena.)
/// `LEAKHUNT_SCAN_DEBUG=1` shows the roots: words in libc.so.6 pointing 96
/// bytes into 100-byte blocks.
#[test]
fn allocator_bookkeeping_is_no_root() {
    let want = Leaks {
        definite: (3200, 32),
        reachable: (512, 32),
        ..ZERO
    };
    check("arena", "arena_bookkeeping.c", &[], &[], want, &[], 0);
}

// ---------------------------------------------------------------- ordinary programs

/// Runs a program written the ordinary way (partial writes, padding, reused
/// memory) once through `check` (memcheck's numbers, when valgrind is
/// installed) and then again with other output paths and environments,
/// which move the program's stack and change what the recorder does: every
/// run must give the same numbers.
fn exact_run_after_run(name: &str, src: &str, args: &[&str], want: Leaks) -> Option<Checked> {
    let c = check(name, src, &[], args, want, &[], 0)?;
    for i in 1..=4usize {
        let trace = c
            .dir
            .join(format!("{}-{i}.trace", "long-output-path".repeat(i * 3)));
        let pad = "x".repeat(i * 1000);
        let run = leakhunt_run_env(
            c.dir.path(),
            &trace,
            &c.prog,
            args,
            &[("LEAKHUNT_TEST_PAD", pad.as_str())],
        );
        assert_eq!(run.out.code(), c.run.out.code(), "{src} run {i}: status");
        let v = report_json(&run.trace);
        assert_eq!(reported(&v), want, "{src} run {i}: {}", v["leaks"]);
    }
    Some(c)
}

/// Program 30: formatted messages and a list with padding, nothing zeroed,
/// and the probe: no leaked message holds an address of another block
/// (nothing of the recorder's lands in the program's heap).
#[test]
fn ordinary_messages_match_memcheck_every_run() {
    let want = Leaks {
        definite: (9640, 151),
        indirect: (1960, 49),
        ..ZERO
    };
    let Some(c) = exact_run_after_run("ordinary", "ordinary_messages.c", &[], want) else {
        return;
    };
    assert_eq!(c.run.out.stdout.trim(), "probe: 0", "{}", c.run.out.stderr);
    // Also recorded without the clearing of new blocks (LEAKHUNT_CLEAR=0):
    // the probe reads what the program's heap holds, which our own data
    // must not have reached.
    let trace = c.dir.join("noclear.trace");
    let run = leakhunt_run_env(
        c.dir.path(),
        &trace,
        &c.prog,
        &[],
        &[("LEAKHUNT_CLEAR", "0")],
    );
    assert_eq!(run.out.stdout.trim(), "probe: 0", "{}", run.out.stderr);
}

/// Program 31: a freed table's chunk reused by a buffer written in part,
/// and a realloc'ed array whose new tail was never written.
#[test]
fn reused_memory_holds_nothing() {
    let want = Leaks {
        definite: (2336, 89),
        reachable: (712, 2),
        ..ZERO
    };
    exact_run_after_run("reused", "reused_memory.c", &[], want);
}

/// Program 32: heap memory made PROT_NONE: the scan reads around it, the
/// program keeps its own status, and the report says what was not read.
#[test]
fn unreadable_heap_does_not_kill_the_scan() {
    let want = Leaks {
        definite: (41000, 2),
        ..ZERO
    };
    let Some(c) = exact_run_after_run("unreadable", "unreadable_heap.c", &[], want) else {
        return;
    };
    assert_eq!(c.run.out.code(), Some(0), "{}", c.run.out.stderr);
    assert!(
        c.run.out.stderr.contains("could not read"),
        "{}",
        c.run.out.stderr
    );
}
