//! Programs that do not end normally: SIGKILL, a crash, _exit(), abort().
//! The trace written so far stays readable and says how the program ended.

use leakhunt_tests::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

const N: u64 = 1000;

/// The incomplete-trace checks shared by the SIGKILL tests.
fn assert_killed_trace(trace: &std::path::Path) {
    let text = report_text(trace);
    assert!(
        text.contains("killed or crashed") || text.contains("cut short"),
        "the text report does not say the trace is incomplete:\n{text}"
    );
    let v = report_json(trace);
    assert_eq!(v["trace"]["complete"], false, "{}", v["trace"]);
    // Everything was allocated >= 300 ms before the kill: all of it is there.
    let t = program_totals(&v);
    assert_eq!(t.allocations, N, "{t:?}");
    assert_eq!(t.allocated_bytes, N * 64);
    assert_eq!(t.live_blocks_at_end, N);
    assert_eq!(t.frees, 0);
    assert_eq!(
        program_records(&v).len(),
        1,
        "one never-freed record: {:#}",
        v["records"]
    );
}

#[test]
fn sigkill_with_ld_preload_leaves_readable_trace() {
    let dir = TestDir::new("killed");
    let Some(prog) = compile(dir.path(), "killed.c", &[]) else {
        return;
    };
    let trace = dir.join("k.trace");
    let mut child = preload_cmd(&prog, &[&N.to_string()], Some(&trace))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = LineWatcher::new(child.stdout.take().unwrap());
    lines.wait_for("ready", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    kill(child.id() as i32, libc::SIGKILL);
    let o = finish(&mut child, &"killed", Instant::now(), TIMEOUT);
    assert_eq!(o.signal(), Some(libc::SIGKILL));
    assert_killed_trace(&trace);
    let v = report_json(&trace);
    let ending = v["program"]["ending"].as_str().unwrap_or("");
    assert!(ending.contains("killed or crashed"), "ending: {ending:?}");
}

#[test]
fn sigkill_under_leakhunt_run() {
    let dir = TestDir::new("killed_run");
    let Some(prog) = compile(dir.path(), "killed.c", &[]) else {
        return;
    };
    let trace = dir.join("k.trace");
    let mut child = leakhunt_cmd()
        .current_dir(dir.path())
        .arg("run")
        .arg("-o")
        .arg(&trace)
        .arg("--")
        .arg(&prog)
        .arg(N.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn leakhunt run");
    let mut lines = LineWatcher::new(child.stdout.take().unwrap());
    let ready = lines.wait_for("ready", Duration::from_secs(20));
    let pid: i32 = ready
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("ready <pid>");
    std::thread::sleep(Duration::from_millis(300));
    kill(pid, libc::SIGKILL);
    let o = finish(&mut child, &"leakhunt run", Instant::now(), TIMEOUT);
    assert_eq!(
        o.code(),
        Some(128 + libc::SIGKILL),
        "leakhunt run's status; stderr:\n{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("killed by signal 9"),
        "stderr:\n{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("incomplete"),
        "the summary does not say the trace is incomplete:\n{}",
        o.stderr
    );
    assert!(!o.stderr.contains("panicked"));
    assert_killed_trace(&trace);
    let v = report_json(&trace);
    assert_eq!(v["program"]["signal"], libc::SIGKILL);
}

#[test]
fn crash_after_flush_leaves_readable_trace() {
    let dir = TestDir::new("segv");
    let Some(prog) = compile(dir.path(), "ending.c", &[]) else {
        return;
    };
    let run = leakhunt_run(dir.path(), &prog, &["late-segv"]);
    assert_eq!(
        run.out.code(),
        Some(128 + libc::SIGSEGV),
        "{}",
        run.out.stderr
    );
    let v = report_json(&run.trace);
    assert_eq!(v["trace"]["complete"], false);
    assert_eq!(v["program"]["signal"], libc::SIGSEGV);
    let ending = v["program"]["ending"].as_str().unwrap_or("");
    assert!(ending.contains("SIGSEGV"), "ending: {ending:?}");
    let c = counts(&run.out.stderr, "allocs=");
    assert_totals_match(&v, &c, 0, 0);
}

#[test]
fn quick_exit_status_and_ending() {
    let dir = TestDir::new("quick_exit");
    let Some(prog) = compile(dir.path(), "ending.c", &[]) else {
        return;
    };
    let run = leakhunt_run(dir.path(), &prog, &["_exit"]);
    assert_eq!(
        run.out.code(),
        Some(3),
        "leakhunt run passes _exit(3) through: {}",
        run.out.stderr
    );
    let v = report_json(&run.trace);
    assert_eq!(v["program"]["exit_code"], 3);
    assert!(
        v["program"]["ending"].as_str().unwrap_or("").contains('3'),
        "ending: {}",
        v["program"]["ending"]
    );
    assert_eq!(v["trace"]["complete"], true);
    assert_totals_match(&v, &counts(&run.out.stderr, "allocs="), 0, 0);

    // The recorder's own account (no `leakhunt run` to append a status).
    let trace = dir.join("direct.trace");
    let o = run_cmd(&mut preload_cmd(&prog, &["_exit"], Some(&trace)), TIMEOUT);
    assert_eq!(o.code(), Some(3));
    let v = report_json(&trace);
    let ending = v["program"]["ending"].as_str().unwrap_or("");
    assert!(ending.contains("_exit(3)"), "ending: {ending:?}");
    assert_eq!(v["program"]["exit_code"], 3);
    assert_eq!(v["trace"]["complete"], true);
}

#[test]
fn abort_status_and_ending() {
    let dir = TestDir::new("abort");
    let Some(prog) = compile(dir.path(), "ending.c", &[]) else {
        return;
    };
    let run = leakhunt_run(dir.path(), &prog, &["abort"]);
    assert_eq!(
        run.out.code(),
        Some(128 + libc::SIGABRT),
        "leakhunt run exits 134: {}",
        run.out.stderr
    );
    let v = report_json(&run.trace);
    assert_eq!(v["program"]["signal"], libc::SIGABRT);
    let ending = v["program"]["ending"].as_str().unwrap_or("");
    assert!(
        ending.contains("SIGABRT") || ending.contains("abort"),
        "ending: {ending:?}"
    );
    assert_totals_match(&v, &counts(&run.out.stderr, "allocs="), 0, 0);

    let trace = dir.join("direct.trace");
    let o = run_cmd(&mut preload_cmd(&prog, &["abort"], Some(&trace)), TIMEOUT);
    assert_eq!(o.signal(), Some(libc::SIGABRT));
    let v = report_json(&trace);
    let ending = v["program"]["ending"].as_str().unwrap_or("");
    assert!(ending.contains("abort"), "ending: {ending:?}");
}

/// A crash in the first milliseconds: the recorder creates its file from the
/// writer thread, lazily, so the file may not exist yet or be empty; and
/// `leakhunt run` then appends its exit-status chunk to the empty file, which
/// makes it "not a leakhunt trace (bad magic)".
#[test]
fn immediate_crash_leaves_readable_trace() {
    let dir = TestDir::new("segv_now");
    let Some(prog) = compile(dir.path(), "ending.c", &[]) else {
        return;
    };
    for i in 0..5 {
        let trace = dir.join(format!("s{i}.trace"));
        let run = leakhunt_run_to(dir.path(), &trace, &prog, &["segv"]);
        assert_eq!(run.out.code(), Some(128 + libc::SIGSEGV));
        assert!(
            !run.out.stderr.contains("no trace was written"),
            "run {i}:\n{}",
            run.out.stderr
        );
        let v = report_json(&trace);
        assert_eq!(v["trace"]["complete"], false);
        assert_eq!(v["program"]["signal"], libc::SIGSEGV);
    }
}

/// A crash (SIGSEGV, a stack overflow, SIGBUS sent to itself) loses nothing
/// that was recorded: the recorder's handler has the writer write out what
/// is queued, then the signal kills the program as it would have.
#[test]
fn crash_flushes_what_was_recorded() {
    let dir = TestDir::new("crash");
    let Some(prog) = compile(dir.path(), "crash.c", &[]) else {
        return;
    };
    for (arg, sig) in [
        ("segv", libc::SIGSEGV),
        ("overflow", libc::SIGSEGV),
        ("kill", libc::SIGBUS),
    ] {
        let trace = dir.join(format!("{arg}.trace"));
        let run = leakhunt_run_to(dir.path(), &trace, &prog, &[arg]);
        assert_eq!(
            run.out.shell_status(),
            128 + sig,
            "{arg}: the program's own death: {}",
            run.out.stderr
        );
        let c = counts(&run.out.stderr, "allocs=");
        let v = report_json(&trace);
        assert_totals_match(&v, &c, 0, 0);
    }
}
