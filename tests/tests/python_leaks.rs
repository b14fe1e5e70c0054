//! Leak kinds of Python programs (`PYTHONMALLOC=malloc`, every object a
//! malloc block).
//!
//! Two things are checked. The exit scan's roots: an interpreter that
//! imports extension modules (dlopen()ed, never closed) loses nothing, as
//! memcheck says (`leak_kinds::dlopen_kept_libraries_are_reachable` is the
//! same thing in C). And the `python` heuristic: CPython objects sit 16 or
//! 32 bytes into their blocks, so under memcheck's rules a live Python heap
//! is "possibly lost"; with the heuristic it is still reachable, and says so
//! under "reachable via heuristic: python".
//!
//! Each test runs Debian's `/usr/bin/python3.11` and the `python3` on the
//! PATH (its `sys.executable`: it may be a launcher script such as pyenv's),
//! skipping (with the reason printed) those that are not installed.

use leakhunt_tests::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// The interpreters to test, each once (by canonical path).
fn interpreters() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let debian = PathBuf::from("/usr/bin/python3.11");
    if debian.is_file() {
        out.push(debian);
    } else {
        skip("/usr/bin/python3.11 is not installed");
    }
    match which("python3") {
        None => skip("no python3 on the PATH"),
        Some(py) => {
            let o = run_cmd(
                Command::new(&py).args(["-c", "import sys; print(sys.executable)"]),
                TIMEOUT,
            );
            let exe = PathBuf::from(o.stdout.trim());
            if o.status.success() && exe.is_file() {
                out.push(exe);
            } else {
                skip(&format!("cannot find {}'s executable", py.display()));
            }
        }
    }
    let mut seen = Vec::new();
    out.retain(|p| {
        let c = p.canonicalize().unwrap_or_else(|_| p.clone());
        let new = !seen.contains(&c);
        seen.push(c);
        new
    });
    out
}

/// `leakhunt run [extra] -- py args` with `PYTHONMALLOC=malloc`: the
/// command's output and the JSON report.
fn run_python(
    dir: &TestDir,
    tag: &str,
    py: &PathBuf,
    extra: &[&str],
    args: &[&str],
) -> (Output, Value) {
    let trace = dir.join(format!("{tag}.trace"));
    let out = run_cmd(
        leakhunt_cmd()
            .env("PYTHONMALLOC", "malloc")
            .current_dir(dir.path())
            .arg("run")
            .args(extra)
            .arg("-o")
            .arg(&trace)
            .arg("--")
            .arg(py)
            .args(args),
        TIMEOUT,
    );
    let v = report_json(&trace);
    assert_eq!(
        v["leaks"]["scanned"], true,
        "{tag}: no exit scan: {}\n{}",
        v["leaks"], out.stderr
    );
    (out, v)
}

fn kind(v: &Value, k: &str) -> (u64, u64) {
    (
        num(v, &format!("leaks/{k}/bytes")),
        num(v, &format!("leaks/{k}/blocks")),
    )
}

fn python_heuristic(v: &Value) -> (u64, u64) {
    let h = &v["leaks"]["reachable_via_heuristic"]["python"];
    (
        h["bytes"].as_u64().unwrap_or(0),
        h["blocks"].as_u64().unwrap_or(0),
    )
}

fn summary(v: &Value) -> String {
    format!(
        "definite {:?}, indirect {:?}, possible {:?}, reachable {:?} (python heuristic {:?})",
        kind(v, "definitely_lost"),
        kind(v, "indirectly_lost"),
        kind(v, "possibly_lost"),
        kind(v, "still_reachable"),
        python_heuristic(v)
    )
}

/// Importing extension modules (dlopen()ed, never closed): nothing lost.
/// Before the scan took ld.so's start-up pages as roots, the pyenv build
/// (libpython3.11.so, whose dependency libm's link map ends the startup
/// chain) lost the first extension module's link map and everything after
/// it: 1,317 bytes definitely and ~27 KB indirectly lost at
/// `_dl_new_object`.
#[test]
fn imports_of_extension_modules_lose_nothing() {
    for py in interpreters() {
        let dir = TestDir::new("py_imports");
        let (out, v) = run_python(
            &dir,
            "imports",
            &py,
            &[],
            &["-c", "import json, sqlite3, decimal"],
        );
        assert_eq!(out.code(), Some(0), "{}: {}", py.display(), out.stderr);
        eprintln!("{}: imports: {}", py.display(), summary(&v));
        assert_eq!(
            kind(&v, "definitely_lost"),
            (0, 0),
            "{}: {}",
            py.display(),
            summary(&v)
        );
        assert_eq!(
            kind(&v, "indirectly_lost"),
            (0, 0),
            "{}: {}",
            py.display(),
            summary(&v)
        );
    }
}

/// A leak-free script (tests/programs/python/leak_free.py) passes
/// `--fail-on definite,indirect`, with nothing possibly lost: after the
/// interpreter's finalization, and also when it leaves through libc's
/// `exit()` with its whole heap alive (held only through object pointers,
/// which the python heuristic accepts).
#[test]
fn leak_free_script_passes_fail_on() {
    let script = programs_dir().join("python/leak_free.py");
    let script = script.to_str().expect("a UTF-8 path");
    for py in interpreters() {
        for (tag, args) in [
            ("finalized", vec![script]),
            ("exit_now", vec![script, "--exit-now"]),
        ] {
            let dir = TestDir::new("py_leak_free");
            let (out, v) = run_python(
                &dir,
                tag,
                &py,
                &["--fail-on", "definite,indirect", "--error-exitcode", "42"],
                &args,
            );
            eprintln!("{} {tag}: {}", py.display(), summary(&v));
            assert!(
                out.stdout.contains("leak_free: nodes=200"),
                "{} {tag}: the script did not finish: {}\n{}",
                py.display(),
                out.stdout,
                out.stderr
            );
            assert_eq!(
                out.code(),
                Some(0),
                "{} {tag}: {}\n{}",
                py.display(),
                summary(&v),
                out.stderr
            );
            let live = num(&v, "totals/live_bytes_at_end");
            let possible = kind(&v, "possibly_lost");
            // What is left possibly lost is CPython's free lists: dead
            // objects (refcount 0, which the heuristic refuses) kept for
            // reuse, such as the preallocated MemoryErrors.
            assert!(
                possible.0 * 100 <= live,
                "{} {tag}: possibly lost is more than 1% of the live heap ({live} bytes): {}",
                py.display(),
                summary(&v)
            );
            if tag == "exit_now" {
                // The heap was there, and the heuristic carried it.
                let h = python_heuristic(&v);
                assert!(
                    h.1 > 1000,
                    "{} {tag}: too few blocks reachable via the python heuristic: {}",
                    py.display(),
                    summary(&v)
                );
            }
        }
    }
}

/// A C program has no `PyType_Type`: the heuristic stays off, and interior
/// pointers are memcheck's "possibly lost"
/// (`leak_kinds::interior_pointer_is_possibly_lost` compares with memcheck).
#[test]
fn no_python_heuristic_outside_python() {
    let dir = TestDir::new("py_off");
    let prog = match try_compile(dir.path(), "leaks/interior.c", "interior", &["-O0"]) {
        Ok(Some(p)) => p,
        Ok(None) => return,
        Err(e) => panic!("{e}"),
    };
    let run = leakhunt_run(dir.path(), &prog, &[]);
    let v = report_json(&run.trace);
    assert_eq!(python_heuristic(&v), (0, 0), "{}", summary(&v));
    assert_eq!(kind(&v, "possibly_lost"), (300, 2), "{}", summary(&v));
}
