//! `leakhunt run` prints its summary from what the recorder counted at the
//! end of the image (no replay of the allocation records): those numbers
//! must be exactly what a full replay gives, for threads with cross-thread
//! frees and reallocs, fork children with inherited blocks, and Python.

use leakhunt_tests::*;
use serde_json::Value;
use std::path::Path;

/// The full replay's totals equal the recorder's own.
fn assert_recorded_equals_replayed(trace: &Path) -> Value {
    let v = report_json(trace);
    let r = &v["trace"]["recorded_totals"];
    assert!(
        r.is_object(),
        "{}: no recorded totals: {}",
        trace.display(),
        v["trace"]
    );
    for k in [
        "allocations",
        "frees",
        "allocated_bytes",
        "peak_bytes",
        "live_blocks_at_end",
        "live_bytes_at_end",
    ] {
        assert_eq!(
            v["totals"][k],
            r[k],
            "{}: {k}: replay {} vs recorder {}",
            trace.display(),
            v["totals"][k],
            r[k]
        );
    }
    v
}

/// The LEAK SUMMARY `run` printed is the one `report` prints.
fn assert_same_leak_summary(run: &Run) {
    let text = report_text(&run.trace);
    let pick = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.trim_start_matches("leakhunt:").trim().to_string())
            .filter(|l| {
                [
                    "definitely lost:",
                    "indirectly lost:",
                    "possibly lost:",
                    "still reachable:",
                ]
                .iter()
                .any(|k| l.starts_with(k))
            })
            .collect()
    };
    let (from_run, from_report) = (pick(&run.out.stderr), pick(&text));
    assert_eq!(from_run.len(), 4, "{}", run.out.stderr);
    assert_eq!(
        from_run, from_report,
        "run:\n{}\nreport:\n{text}",
        run.out.stderr
    );
}

#[test]
fn threads_with_cross_thread_frees() {
    let dir = TestDir::new("summary_stress");
    let Some(prog) = compile(dir.path(), "stress.c", &["-pthread"]) else {
        return;
    };
    let run = leakhunt_run(dir.path(), &prog, &["50000"]);
    assert_eq!(run.out.code(), Some(0), "{}", run.out.stderr);
    assert_recorded_equals_replayed(&run.trace);
    assert_same_leak_summary(&run);
}

#[test]
fn leaks_and_a_fork_child() {
    let dir = TestDir::new("summary_fork");
    let Some(prog) = compile(dir.path(), "fork.c", &[]) else {
        return;
    };
    let run = leakhunt_run(dir.path(), &prog, &[]);
    assert_eq!(run.out.code(), Some(0), "{}", run.out.stderr);
    assert_recorded_equals_replayed(&run.trace);
    assert_same_leak_summary(&run);
    let children = dir.files_starting_with("fork.trace.");
    assert_eq!(children.len(), 1, "{children:?}");
    // The child's peak counts the blocks it inherited, as the replay does.
    assert_recorded_equals_replayed(&dir.path().join(&children[0]));
}

#[test]
fn python_program() {
    let py = [
        "/root/.pyenv/versions/3.11.7/bin/python3.11",
        "/usr/bin/python3.11",
    ]
    .into_iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.is_file());
    let Some(py) = py else {
        skip("no Python 3.11 interpreter is installed");
        return;
    };
    let dir = TestDir::new("summary_python");
    let script = source("python_frames/grow.py");
    let run = leakhunt_run(dir.path(), &py, &[script.to_str().unwrap(), "300"]);
    assert_eq!(run.out.code(), Some(0), "{}", run.out.stderr);
    assert_recorded_equals_replayed(&run.trace);
    assert_same_leak_summary(&run);
}
