//! The processes of one run (issue 11): a shell's children, a shim that
//! execs the real program, `--trace-children=no`, and where a run's traces
//! are (its main trace `MAIN` and `MAIN.<pid>[.n]` beside it, README "Child
//! processes").

use leakhunt_tests::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `leakhunt run [extra] -- args` in `dir`, without -o.
fn run_in(dir: &Path, extra: &[&str], args: &[&str]) -> Output {
    run_cmd(
        leakhunt_cmd()
            .current_dir(dir)
            .arg("run")
            .args(extra)
            .arg("--")
            .args(args),
        TIMEOUT,
    )
}

/// The pid and line "leakhunt:   PID PROGRAM: ..." of `program` (the run's
/// list of processes).
fn line_of<'a>(stderr: &'a str, program: &str) -> (u32, &'a str) {
    let prefix = format!("{program}: ");
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("leakhunt:   ")?.trim_start();
            let (pid, rest) = rest.split_once(' ')?;
            rest.starts_with(&prefix)
                .then(|| pid.parse().ok())
                .flatten()
                .map(|pid| (pid, l))
        })
        .next()
        .unwrap_or_else(|| panic!("no line for {program}:\n{stderr}"))
}

/// The `run.processes` entry of a JSON report with this pid.
fn process(v: &Value, pid: u32) -> &Value {
    v["run"]["processes"]
        .as_array()
        .unwrap_or_else(|| panic!("no run.processes: {}", v["run"]))
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("no process {pid} in {}", v["run"]))
}

fn lost(p: &Value) -> (u64, u64) {
    let d = &p["leaks"]["definitely_lost"];
    (d["bytes"].as_u64().unwrap(), d["blocks"].as_u64().unwrap())
}

fn have_sh() -> bool {
    if have("sh") {
        return true;
    }
    skip("no sh");
    false
}

/// `leakhunt run -- sh -c './leak_n 5; ./leak_n 6'`: both children are listed
/// with their exact losses, their traces are `MAIN.<pid>` beside the main
/// trace, and `report` of the main trace lists them too.
#[test]
fn shell_with_two_children() {
    let dir = TestDir::new("children_sh");
    let Some(_) = compile(dir.path(), "leak_n.c", &[]) else {
        return;
    };
    if !have_sh() {
        return;
    }
    let o = run_in(dir.path(), &[], &["sh", "-c", "./leak_n 5; ./leak_n 6 4"]);
    assert_eq!(o.code(), Some(4), "the last command's status: {}", o.stderr);
    let e = &o.stderr;
    assert!(
        e.contains("leakhunt: 3 processes traced in this run, in 3 traces beside "),
        "{e}"
    );
    let (p5, l5) = line_of(e, "./leak_n 5");
    let (p6, l6) = line_of(e, "./leak_n 6 4");
    assert!(
        l5.contains("exited with status 0; definitely lost: 500 bytes in 5 blocks ["),
        "{l5}"
    );
    assert!(
        l6.contains("exited with status 4; definitely lost: 600 bytes in 6 blocks ["),
        "{l6}"
    );
    // The shell is the main process, in full; it is the one started.
    let (sh, lsh) = line_of(e, "sh -c ./leak_n 5; ./leak_n 6 4");
    assert!(lsh.ends_with(", in full below]"), "{lsh}");
    assert!(
        e.contains(&format!(
            "leakhunt: the main process, sh -c ./leak_n 5; ./leak_n 6 4 (pid {sh}):"
        )),
        "{e}"
    );

    // Where the README says: the main trace by the started pid, each
    // child's beside it.
    let main = dir.join(format!("leakhunt.sh.{sh}.trace"));
    let names: Vec<PathBuf> = dir.files_starting_with("leakhunt.");
    assert_eq!(
        names,
        vec![
            main.clone(),
            PathBuf::from(format!("{}.{p5}", main.display())),
            PathBuf::from(format!("{}.{p6}", main.display())),
        ],
        "{e}"
    );
    assert!(
        l5.ends_with(&format!("[leakhunt.sh.{sh}.trace.{p5}]")),
        "{l5}"
    );
    assert!(
        e.contains(&format!("leakhunt: trace: {}", main.display())),
        "{e}"
    );

    // `report` of the main trace lists the run: text and JSON.
    let text = report_text(&main);
    assert!(text.contains("PROCESSES: 3 processes traced"), "{text}");
    assert!(
        text.contains(&format!("[leakhunt.sh.{sh}.trace.{p6}]")),
        "{text}"
    );
    let v = report_json(&main);
    assert_eq!(v["run"]["traces"], 3, "{}", v["run"]);
    assert_eq!(lost(process(&v, p5)), (500, 5));
    assert_eq!(lost(process(&v, p6)), (600, 6));
    assert_eq!(process(&v, p6)["ppid"], sh);
    // A child's own report finds the run it belongs to.
    let child = report_json(&PathBuf::from(format!("{}.{p5}", main.display())));
    assert_eq!(
        child["run"]["main"],
        main.to_str().unwrap(),
        "{}",
        child["run"]
    );
    assert_eq!(num(&child, "leaks/definitely_lost/bytes"), 500);
}

/// A shim (a script that execs the real program): the exec'd program is
/// the main process, summarized in full, and its trace gets the status.
#[test]
fn shim_execs_the_program_that_is_summarized() {
    let dir = TestDir::new("children_shim");
    let Some(_) = compile(dir.path(), "leak_n.c", &[]) else {
        return;
    };
    if !have_sh() {
        return;
    }
    let shim = dir.join("shim");
    std::fs::write(&shim, "#!/bin/sh\nexec ./leak_n 7 3\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let trace = dir.join("shim.trace");
    let o = run_cmd(
        leakhunt_cmd()
            .current_dir(dir.path())
            .args(["run", "-o"])
            .arg(&trace)
            .args(["--", "./shim"]),
        TIMEOUT,
    );
    assert_eq!(o.code(), Some(3), "{}", o.stderr);
    let e = &o.stderr;
    let (pid, line) = line_of(e, "./leak_n 7 3 (after 1 exec from /bin/sh ./shim)");
    assert!(
        line.contains("exited with status 3; definitely lost: 700 bytes in 7 blocks"),
        "{line}"
    );
    assert!(
        e.contains(&format!(
            "leakhunt: the main process, ./leak_n 7 3 (pid {pid}):"
        )),
        "{e}"
    );
    assert!(
        e.contains("leakhunt:    definitely lost: 700 bytes in 7 blocks\n"),
        "{e}"
    );
    let last = PathBuf::from(format!("{}.{pid}", trace.display()));
    assert!(
        e.contains(&format!("leakhunt: trace: {}", last.display())),
        "{e}"
    );
    assert_eq!(
        dir.files_starting_with("shim.trace"),
        vec![trace.clone(), last.clone()]
    );
    let v = report_json(&last);
    assert_eq!(v["program"]["exit_code"], 3);
    assert_eq!(num(&v, "leaks/definitely_lost/blocks"), 7);
    // The shim's own trace points at what it became.
    let text = report_text(&trace);
    assert!(
        text.contains(&format!(
            "This report is of image 1 of 2 of pid {pid} (/bin/sh ./shim); the program it became is in {}",
            last.display()
        )),
        "{text}"
    );
}

/// `--trace-children=no`: only the first image is recorded (valgrind's
/// meaning); the summary says the program it exec'd was not traced.
#[test]
fn trace_children_no_records_only_the_first_image() {
    let dir = TestDir::new("children_no");
    let Some(_) = compile(dir.path(), "leak_n.c", &[]) else {
        return;
    };
    if !have_sh() {
        return;
    }
    let o = run_in(
        dir.path(),
        &["--trace-children=no", "-o", "no.trace"],
        &["sh", "-c", "./leak_n 5; ./leak_n 6"],
    );
    assert_eq!(o.code(), Some(0), "{}", o.stderr);
    assert_eq!(
        dir.files_starting_with("no.trace"),
        vec![dir.join("no.trace")],
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("processes traced"), "{}", o.stderr);
    let v = report_json(&dir.join("no.trace"));
    assert!(v["run"].is_null(), "{}", v["run"]);
    assert_eq!(
        string(&v, "program/exe"),
        which("sh").map_or(String::new(), |p| {
            p.canonicalize().unwrap_or(p).display().to_string()
        })
    );

    // A shim under `no`: the first image only, and the summary says what
    // happened instead of presenting the shell as the program.
    std::fs::write(dir.join("shim"), "#!/bin/sh\nexec ./leak_n 7\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("shim"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = run_in(
        dir.path(),
        &["--trace-children", "no", "-o", "shim.trace"],
        &["./shim"],
    );
    assert_eq!(o.code(), Some(0), "{}", o.stderr);
    assert_eq!(dir.files_starting_with("shim.trace").len(), 1);
    assert!(
        o.stderr.contains("exec'd a program that was not traced"),
        "{}",
        o.stderr
    );
}

/// `--trace-children=no` still records a forked child that does not exec:
/// it is the same program.
#[test]
fn trace_children_no_keeps_forked_children() {
    let dir = TestDir::new("children_no_fork");
    let Some(prog) = compile(dir.path(), "fork.c", &[]) else {
        return;
    };
    let o = run_in(
        dir.path(),
        &["--trace-children=no", "-o", "fork.trace"],
        &[prog.to_str().unwrap()],
    );
    assert_eq!(o.code(), Some(0), "{}", o.stderr);
    let ids = key_values(
        o.stderr
            .lines()
            .find(|l| l.starts_with("child="))
            .expect("child= line"),
    );
    let child = dir.join(format!("fork.trace.{}", ids["child"]));
    assert_eq!(
        dir.files_starting_with("fork.trace"),
        vec![dir.join("fork.trace"), child.clone()]
    );
    let v = report_json(&child);
    assert_eq!(v["program"]["exit_code"], 3);
    let (_, line) = line_of(&o.stderr, &prog.display().to_string());
    assert!(line.contains("[fork.trace, in full below]"), "{line}");
}

/// `-o PATH` twice: the second run's list holds only its own processes,
/// though the first run's children's traces are still beside it.
#[test]
fn an_earlier_run_under_the_same_name_is_left_out() {
    let dir = TestDir::new("children_again");
    let Some(_) = compile(dir.path(), "leak_n.c", &[]) else {
        return;
    };
    if !have_sh() {
        return;
    }
    let args = ["sh", "-c", "./leak_n 2; ./leak_n 3"];
    let first = run_in(dir.path(), &["-o", "again.trace"], &args);
    assert_eq!(first.code(), Some(0), "{}", first.stderr);
    let second = run_in(dir.path(), &["-o", "again.trace"], &args);
    assert!(
        second
            .stderr
            .contains("leakhunt: 3 processes traced in this run, in 3 traces"),
        "{}",
        second.stderr
    );
    assert_eq!(dir.files_starting_with("again.trace").len(), 5);
    let v = report_json(&dir.join("again.trace"));
    assert_eq!(v["run"]["processes"].as_array().map(Vec::len), Some(3));
}

/// The `python3` on the PATH, when it is a shim (a script, as pyenv's is):
/// the interpreter it finally execs is the main process, and every helper
/// process of the shim is listed in one line.
#[test]
fn pyenv_style_shim_summarizes_the_interpreter() {
    let Some(py) = which("python3") else {
        skip("no python3");
        return;
    };
    let head = std::fs::read(&py).unwrap_or_default();
    if !head.starts_with(b"#!") {
        skip("python3 on the PATH is not a shim");
        return;
    }
    let dir = TestDir::new("children_pyenv");
    let o = run_in(
        dir.path(),
        &["-o", "py.trace"],
        &["python3", "-c", "x = [str(i) for i in range(1000)]"],
    );
    assert_eq!(o.code(), Some(0), "{}", o.stderr);
    let main = o
        .stderr
        .lines()
        .find(|l| l.starts_with("leakhunt: the main process, "))
        .unwrap_or_else(|| panic!("no main process line:\n{}", o.stderr));
    let argv0 = main["leakhunt: the main process, ".len()..]
        .split(' ')
        .next()
        .unwrap_or("");
    let exe = std::fs::read(argv0).unwrap_or_default();
    assert!(
        exe.starts_with(b"\x7fELF"),
        "the main process is not the interpreter: {main}\n{}",
        o.stderr
    );
    let listed = o
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("leakhunt:   "))
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .count();
    let heading = o
        .stderr
        .lines()
        .find(|l| l.contains("traced in this run"))
        .expect("the heading of the list");
    assert!(
        heading.starts_with(&format!("leakhunt: {listed} processes traced")),
        "{heading}: {listed} lines"
    );
}
