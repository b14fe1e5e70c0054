//! Real programs under `leakhunt run`: the output and exit status are
//! unchanged, the trace is complete and consistent; for sqlite3 and ls the
//! allocation counts are compared with valgrind and heaptrack.

use leakhunt_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const SQL: &str = "create table t(a); insert into t values(1); select * from t;";

/// Runs `prog args` plainly and under `leakhunt run`; checks they behave the
/// same and the trace is sound. Returns the report.
fn same_under_leakhunt(name: &str, prog: &Path, args: &[&str]) -> serde_json::Value {
    let dir = TestDir::new(name);
    let plain = run_cmd(
        Command::new(prog)
            .args(args)
            .current_dir(dir.path())
            .env_remove("LD_PRELOAD"),
        TIMEOUT,
    );
    let run = leakhunt_run_to(dir.path(), &dir.join(format!("{name}.trace")), prog, args);
    assert_eq!(
        run.out.code(),
        plain.code(),
        "{name}: exit status; stderr:\n{}",
        run.out.stderr
    );
    assert_eq!(
        run.out.stdout, plain.stdout,
        "{name}: output changed under leakhunt"
    );
    assert!(!run.out.stderr.contains("panicked"), "{}", run.out.stderr);
    let v = report_json(&run.trace);
    assert!(
        num(&v, "totals/allocations") > 0,
        "{name}: no allocations recorded"
    );
    assert_eq!(v["trace"]["anomalies"], 0, "{name}");
    assert_eq!(v["trace"]["dropped_events"], 0, "{name}");
    assert_eq!(v["trace"]["inconsistencies"], 0, "{name}");
    assert_eq!(v["trace"]["complete"], true, "{name}: {}", v["trace"]);
    assert_eq!(
        v["program"]["exit_code"].as_i64(),
        plain.code().map(i64::from),
        "{name}"
    );
    eprintln!("{name}: {:?}", program_totals(&v));
    v
}

fn tool(name: &str) -> Option<PathBuf> {
    let p = which(name);
    if p.is_none() {
        skip(&format!("{name} is not installed"));
    }
    p
}

#[test]
fn sqlite3_in_memory() {
    let Some(sqlite) = tool("sqlite3") else {
        return;
    };
    let v = same_under_leakhunt("sqlite3", &sqlite, &[":memory:", SQL]);
    let t = program_totals(&v);

    // valgrind sees the same allocations, to the byte.
    if let Some(vg) = valgrind_summary(&sqlite, &[":memory:", SQL]) {
        eprintln!(
            "sqlite3: valgrind {vg:?}, leakhunt {} allocations, {} bytes",
            t.allocations, t.allocated_bytes
        );
        assert_eq!(t.allocations, vg.allocs, "allocations vs memcheck");
        assert_eq!(t.allocated_bytes, vg.bytes, "bytes vs memcheck");
    }
    // heaptrack counts one more: its own preload pulls in libstdc++, whose
    // emergency pool is allocated in the recorded process.
    let dir = TestDir::new("sqlite3_heaptrack");
    if let Some(ht) = heaptrack_calls(dir.path(), &sqlite, &[":memory:", SQL]) {
        eprintln!(
            "sqlite3: heaptrack {ht} calls to allocation functions, leakhunt {} allocations",
            t.allocations
        );
        assert!(
            ht.abs_diff(t.allocations + 1) <= 2,
            "heaptrack {ht} vs leakhunt {} (+1 for heaptrack's libstdc++)",
            t.allocations
        );
    }
}

#[test]
fn python3_one_liner() {
    let Some(py) = tool("python3") else { return };
    // python3 may be a launcher script (pyenv): record the interpreter itself.
    let o = run_cmd(
        Command::new(&py).args(["-c", "import sys; print(sys.executable)"]),
        TIMEOUT,
    );
    let exe = PathBuf::from(o.stdout.trim());
    if !o.status.success() || !exe.is_file() {
        skip("cannot find python3's executable");
        return;
    }
    let v = same_under_leakhunt("python3", &exe, &["-c", "print(sum(range(1000)))"]);
    // PYTHONMALLOC=malloc: every object allocation is visible
    assert!(num(&v, "totals/allocations") > 10_000, "{}", v["totals"]);
}

#[test]
fn git_version() {
    let Some(git) = tool("git") else { return };
    same_under_leakhunt("git", &git, &["--version"]);
}

#[test]
fn ls_root() {
    let Some(ls) = tool("ls") else { return };
    let v = same_under_leakhunt("ls", &ls, &["/"]);
    let t = program_totals(&v);
    if let Some(vg) = valgrind_summary(&ls, &["/"]) {
        eprintln!(
            "ls: valgrind {vg:?}, leakhunt {} allocations, {} bytes",
            t.allocations, t.allocated_bytes
        );
        assert_eq!(t.allocations, vg.allocs, "allocations vs memcheck");
    }
}
