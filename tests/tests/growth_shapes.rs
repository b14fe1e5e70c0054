//! The growth verdict on the shapes of memory graphs people draw
//! (`programs/growth/`, the corpus of `scripts/growth/`): each program once
//! under `leakhunt run`, its verdict one of the allowed ones, the judged part
//! said, and the first growth line at the program's own code.
//!
//! `make growth` records the same programs (and real ones: sqlite3, Flask,
//! mawk, compileall) ten times each under a CPU hog and checks every run;
//! this is the part that fits in `make test`.

use leakhunt_tests::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// One recording: the JSON report and the text report's growth lines.
struct Judged {
    json: Value,
    text: String,
}

impl Judged {
    fn verdict(&self) -> &str {
        self.json["timeline"]["verdict"]
            .as_str()
            .unwrap_or("(none)")
    }

    fn reason(&self) -> &str {
        self.json["timeline"]["evidence"]["reason"]
            .as_str()
            .unwrap_or("")
    }

    /// The first growth line of the text report.
    fn first_site(&self) -> &str {
        self.text
            .lines()
            .skip_while(|l| !l.starts_with("HEAP GROWTH:"))
            .find(|l| l.starts_with("   +"))
            .unwrap_or("(no growth line)")
    }

    fn assert_verdict(&self, name: &str, allowed: &[&str]) {
        assert!(
            allowed.contains(&self.verdict()),
            "{name}: verdict {} not in {allowed:?}: {}",
            self.verdict(),
            self.reason()
        );
        eprintln!("{name}: {} ({})", self.verdict(), self.reason());
    }

    /// The first growth line names `function (file:line)` of the marker.
    fn assert_site(&self, name: &str, function: &str, src: &str, marker: &str) {
        let line = marker_line(src, marker);
        let file = Path::new(src).file_name().unwrap().to_string_lossy();
        let want = format!("{function} ({file}:{line})");
        let got = self.first_site();
        let at = got
            .split_once("of the growth)")
            .and_then(|(_, rest)| rest.split_once(": "))
            .map_or(got, |(_, site)| site);
        assert!(
            at.starts_with(&want),
            "{name}: the first growth line should start at {want}: {got}\n{}",
            self.text
        );
    }
}

fn judge(trace: &Path) -> Judged {
    Judged {
        json: report_json(trace),
        text: report_text(trace),
    }
}

fn native(name: &str, src: &str, args: &[&str]) -> Option<Judged> {
    let dir = TestDir::new(name);
    let exe = try_compile(dir.path(), src, name, &["-O1"]).unwrap_or_else(|e| panic!("{e}"))?;
    let run = leakhunt_run(dir.path(), &exe, args);
    assert!(run.out.status.success(), "{name}: {}", run.out.stderr);
    Some(judge(&run.trace))
}

/// The interpreter on the PATH (its real executable, not a launcher).
fn python() -> Option<PathBuf> {
    let Some(py) = which("python3") else {
        skip("no python3 on the PATH");
        return None;
    };
    let o = run_cmd(
        Command::new(&py).args(["-c", "import sys; print(sys.executable)"]),
        Duration::from_secs(30),
    );
    let exe = PathBuf::from(o.stdout.trim());
    if exe.is_file() {
        Some(exe)
    } else {
        skip(&format!("cannot find {}'s executable", py.display()));
        None
    }
}

fn script(name: &str, src: &str) -> Option<Judged> {
    let py = python()?;
    let dir = TestDir::new(name);
    let path = source(src);
    let run = leakhunt_run(dir.path(), &py, &[path.to_str().unwrap()]);
    assert!(run.out.status.success(), "{name}: {}", run.out.stderr);
    Some(judge(&run.trace))
}

#[test]
fn a_sawtooth_is_steady() {
    if let Some(j) = native("sawtooth", "growth/sawtooth.c", &[]) {
        j.assert_verdict("sawtooth", &["steady"]);
    }
}

#[test]
fn an_early_explosion_is_early_growth() {
    if let Some(j) = native("early_explosion", "growth/early_explosion.c", &[]) {
        j.assert_verdict("early_explosion", &["early-growth"]);
        assert!(j.reason().contains("after the startup"), "{}", j.reason());
    }
}

#[test]
fn a_surge_that_stays_is_a_burst() {
    if let Some(j) = native("surge", "growth/surge.c", &[]) {
        j.assert_verdict("surge", &["burst"]);
    }
}

#[test]
fn a_trend_is_growing_at_its_line() {
    if let Some(j) = native("trend", "growth/trend.c", &[]) {
        j.assert_verdict("trend", &["growing"]);
        j.assert_site("trend", "remember", "growth/trend.c", "trend_node");
    }
}

/// 1.5 s of imports, then a list growing while serving: judged on the
/// serving part, which the evidence names.
#[test]
fn a_startup_then_a_trend_is_judged_on_the_trend() {
    if let Some(j) = native("startup_trend", "growth/startup_trend.c", &[]) {
        j.assert_verdict("startup_trend", &["growing"]);
        assert!(j.reason().contains("after the startup"), "{}", j.reason());
        let from = j.json["timeline"]["evidence"]["from_ms"].as_f64().unwrap();
        assert!(from > 1000.0, "judged from {from} ms: {}", j.reason());
        j.assert_site(
            "startup_trend",
            "log_request",
            "growth/startup_trend.c",
            "startup_trend_log",
        );
    }
}

/// 48 of every 64 bytes, ~19 KB/s: far under any fixed floor, but every
/// window rises.
#[test]
fn a_small_steady_leak_is_growing() {
    if let Some(j) = native("small_leak", "growth/small_leak.c", &[]) {
        j.assert_verdict("small_leak", &["growing"]);
        j.assert_site(
            "small_leak",
            "leak_some",
            "growth/small_leak.c",
            "small_leak",
        );
    }
}

#[test]
fn short_or_sparse_runs_are_inconclusive() {
    for (name, why) in [("short", "ms"), ("few_events", "events")] {
        if let Some(j) = native(name, &format!("growth/{name}.c"), &[]) {
            j.assert_verdict(name, &["inconclusive"]);
            assert!(j.reason().contains(why), "{name}: {}", j.reason());
            assert!(
                j.text.contains("HEAP GROWTH: inconclusive ("),
                "{name}: {}",
                j.text
            );
        }
    }
}

#[test]
fn a_bounded_cache_is_not_growing_and_an_unbounded_one_is() {
    if let Some(j) = native("lru_bounded", "growth/lru_cache.cpp", &["bounded"]) {
        j.assert_verdict("lru_bounded", &["steady", "early-growth"]);
    }
    if let Some(j) = native("lru_unbounded", "growth/lru_cache.cpp", &["unbounded"]) {
        j.assert_verdict("lru_unbounded", &["growing"]);
        // The program's frame, not libstdc++'s string constructor.
        let site = j.first_site();
        assert!(site.contains("lru_cache.cpp:"), "{site}");
        assert!(!site.contains(": std::"), "{site}");
    }
}

#[test]
fn a_mutable_default_argument_is_growing() {
    if let Some(j) = script("py_mutable_default", "growth/py_mutable_default.py") {
        j.assert_verdict("py_mutable_default", &["growing"]);
        let site = j.first_site();
        assert!(site.contains("(py_mutable_default.py:"), "{site}");
    }
}

#[test]
fn an_lru_cache_is_not_growing() {
    if let Some(j) = script("py_lru_cache", "growth/py_lru_cache.py") {
        j.assert_verdict("py_lru_cache", &["steady", "early-growth"]);
    }
}

/// The rows of an in-memory database are the growth, under sqlite3's
/// own allocator frames: the line shown is the script's.
#[test]
fn sqlite_inserts_are_growing_at_the_script_line() {
    if let Some(j) = script("py_sqlite", "growth/py_sqlite.py") {
        j.assert_verdict("py_sqlite", &["growing"]);
        let site = j.first_site();
        assert!(site.contains("(py_sqlite.py:"), "{site}");
    }
}

/// Rust: the growth line skips `core::fmt` and alloc's `RawVec` and starts
/// at the program's function.
#[test]
fn a_rust_log_is_growing_at_its_function() {
    let Some(rustc) = which("rustc") else {
        skip("rustc is not on the PATH");
        return;
    };
    let dir = TestDir::new("rust_log");
    let exe = dir.join("rust_log");
    let o = run_cmd(
        Command::new(rustc)
            .args(["-g", "-O", "-o"])
            .arg(&exe)
            .arg(source("growth/rust_log.rs")),
        Duration::from_secs(120),
    );
    assert!(o.status.success(), "rustc: {}", o.stderr);
    let run = leakhunt_run(dir.path(), &exe, &[]);
    assert!(run.out.status.success(), "{}", run.out.stderr);
    let j = judge(&run.trace);
    j.assert_verdict("rust_log", &["growing"]);
    j.assert_site(
        "rust_log",
        "rust_log::remember",
        "growth/rust_log.rs",
        "rust_log",
    );
}
