//! Leak kinds of Python programs, under both ways every object is a block:
//! Python's own allocator wrapped by the recorder (the default) and
//! `PYTHONMALLOC=malloc`. The answers must be the same.
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

/// How Python objects reach the recorder.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Allocator {
    /// No PYTHONMALLOC: pymalloc, its domains wrapped by the recorder.
    Wrapped,
    /// PYTHONMALLOC=malloc: every object a malloc.
    Malloc,
}

/// Both ways for the interpreter on the PATH; Debian's (the same 3.11, built
/// otherwise) under the default one only, to keep the suite's time down.
fn allocators(py: &std::path::Path) -> &'static [Allocator] {
    if py == std::path::Path::new("/usr/bin/python3.11") {
        &[Allocator::Wrapped]
    } else {
        &[Allocator::Wrapped, Allocator::Malloc]
    }
}

/// `leakhunt run [extra] -- py args` under `alloc`: the command's output
/// and the JSON report.
fn run_python(
    dir: &TestDir,
    tag: &str,
    py: &PathBuf,
    alloc: Allocator,
    extra: &[&str],
    args: &[&str],
) -> (Output, Value) {
    let trace = dir.join(format!("{tag}-{alloc:?}.trace"));
    let mut cmd = leakhunt_cmd();
    match alloc {
        Allocator::Wrapped => cmd.env_remove("PYTHONMALLOC").env_remove("PYTHONDEVMODE"),
        Allocator::Malloc => cmd.env("PYTHONMALLOC", "malloc"),
    };
    let out = run_cmd(
        cmd.current_dir(dir.path())
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
    let expect = match alloc {
        Allocator::Wrapped => "pymalloc-recorded",
        Allocator::Malloc => "malloc",
    };
    assert_eq!(
        v["program"]["python"]["allocator"], expect,
        "{tag}: {}",
        v["program"]
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
    for (py, alloc) in interpreters()
        .into_iter()
        .flat_map(|p| allocators(&p).iter().map(move |&a| (p.clone(), a)))
    {
        let dir = TestDir::new("py_imports");
        let (out, v) = run_python(
            &dir,
            "imports",
            &py,
            alloc,
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
        for (tag, args, alloc) in [
            ("finalized", vec![script], Allocator::Wrapped),
            ("finalized", vec![script], Allocator::Malloc),
            // (Under malloc, the same heap kept alive: the scan is the same;
            // one run keeps the suite's time down.)
            ("exit_now", vec![script, "--exit-now"], Allocator::Wrapped),
        ]
        .into_iter()
        .filter(|(_, _, a)| allocators(&py).iter().any(|b| b == a))
        {
            let dir = TestDir::new("py_leak_free");
            let (out, v) = run_python(
                &dir,
                tag,
                &py,
                alloc,
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

/// Objects a C extension forgot to release (a reference taken with
/// `Py_IncRef` and never dropped: tests/programs/python/leak_incref.py) are
/// lost, at the line that made them, and nothing else is: 50 bytes
/// objects of 133 to 182 bytes, 7,875 bytes in all, as memcheck says under
/// PYTHONMALLOC=malloc. Under pymalloc this holds only because its
/// arenas are not roots: their free slots hold stale object pointers.
#[test]
fn objects_never_released_are_lost() {
    let script = programs_dir().join("python/leak_incref.py");
    let script = script.to_str().expect("a UTF-8 path");
    for py in interpreters() {
        for &alloc in allocators(&py) {
            let dir = TestDir::new("py_incref");
            let (out, v) = run_python(&dir, "incref", &py, alloc, &[], &[script]);
            assert!(out.stdout.contains("leaked 50"), "{}", out.stderr);
            let what = format!("{} {alloc:?}: {}", py.display(), summary(&v));
            eprintln!("{what}");
            // memcheck: all 50 definitely lost, always. A never-written
            // word in some block may still hold a stale pointer into one of
            // them, which makes it possibly or indirectly lost here (the
            // scan has no definedness yet, issue 9): the lost total is
            // exact, the split is not asserted.
            let lost = ["definitely_lost", "indirectly_lost", "possibly_lost"]
                .map(|k| kind(&v, k))
                .iter()
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
            assert_eq!(lost, (7875, 50), "{what}");
            assert!(kind(&v, "definitely_lost").1 >= 45, "{what}");
            let records = v["records"].as_array().expect("records");
            let leaked_line = records.iter().any(|r| {
                r["kind"] == "definitely_lost"
                    && r["stack"].as_array().is_some_and(|st| {
                        st.iter().any(|f| {
                            f["function"] == "leak"
                                && f["line"] == 11
                                && f["file"]
                                    .as_str()
                                    .is_some_and(|p| p.ends_with("leak_incref.py"))
                        })
                    })
            });
            assert!(
                leaked_line,
                "{what}: no definitely lost record at leak_incref.py:11: {records:?}"
            );
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
