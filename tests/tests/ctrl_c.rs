//! Ctrl-C in a terminal: SIGINT goes to the whole foreground process group.
//! The program handles it and exits cleanly; `leakhunt run` survives it,
//! passes the status through and prints its summary.

use leakhunt_tests::*;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn sigint_to_process_group() {
    let dir = TestDir::new("ctrl_c");
    let Some(prog) = compile(dir.path(), "ctrl_c.c", &[]) else {
        return;
    };
    let trace = dir.join("c.trace");
    let mut child = leakhunt_cmd()
        .current_dir(dir.path())
        .arg("run")
        .arg("-o")
        .arg(&trace)
        .arg("--")
        .arg(&prog)
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn leakhunt run");
    let pgid = child.id() as i32;
    let mut lines = LineWatcher::new(child.stdout.take().unwrap());
    lines.wait_for("ready", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(100));
    kill(-pgid, libc::SIGINT);
    let o = finish(&mut child, &"leakhunt run", Instant::now(), TIMEOUT);
    assert_eq!(
        o.code(),
        Some(0),
        "leakhunt run's status; stderr:\n{}",
        o.stderr
    );
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    let lh = o.leakhunt_lines();
    assert!(
        lh.iter().any(|l| l.contains("allocations")),
        "no summary on stderr:\n{}",
        o.stderr
    );
    assert!(
        lh.iter().any(|l| l.contains("exited with status 0")),
        "stderr:\n{}",
        o.stderr
    );

    // The program freed everything after the signal, and the trace says so.
    let c = counts(&o.stderr, "allocs=");
    assert!(c["allocs"] > 1000);
    assert_eq!(c["live_blocks"], 0);
    let v = report_json(&trace);
    assert_eq!(v["trace"]["complete"], true);
    assert_eq!(v["program"]["exit_code"], 0);
    assert_totals_match(&v, &c, 0, 0);
    assert_peak(&v, c["peak"] as u64);
}
