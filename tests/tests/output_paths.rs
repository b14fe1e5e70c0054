//! Where the recorder writes: $LEAKHUNT_OUTPUT with %p and %n, the default
//! name, mode 0600, never over an existing file, never through a symlink,
//! and a bad path that leaves the program running normally.

use leakhunt_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// Runs small.c with LD_PRELOAD (and LEAKHUNT_OUTPUT if given) in `cwd`,
/// exiting with `status`; returns the output and the program's pid.
fn run_small(prog: &Path, cwd: &Path, output: Option<&str>, status: i32) -> (Output, u32) {
    let mut c = preload_cmd(prog, &[&status.to_string()], None);
    c.current_dir(cwd);
    if let Some(o) = output {
        c.env("LEAKHUNT_OUTPUT", o);
    }
    let o = run_cmd(&mut c, TIMEOUT);
    assert_eq!(
        o.code(),
        Some(status),
        "the program's own status: {}",
        o.stderr
    );
    assert_eq!(o.stdout, "hello from small\n", "the program's output");
    let pid = key_values(
        o.stderr
            .lines()
            .find(|l| l.starts_with("pid="))
            .expect("pid line"),
    )["pid"] as u32;
    (o, pid)
}

fn assert_trace_of(path: &Path, pid: u32) {
    assert!(path.is_file(), "no trace at {}", path.display());
    let v = report_json(path);
    assert_eq!(num(&v, "program/pid"), pid as u64, "{}", path.display());
    assert_eq!(program_totals(&v).allocations, 4);
}

#[test]
fn template_with_pid_and_name() {
    let dir = TestDir::new("out_template");
    let Some(prog) = compile(dir.path(), "small.c", &[]) else {
        return;
    };
    let template = dir.join("out.%n.%p.trace");
    let (o, pid) = run_small(&prog, dir.path(), Some(template.to_str().unwrap()), 0);
    assert!(
        o.leakhunt_lines().is_empty(),
        "the recorder said something: {}",
        o.stderr
    );
    assert_trace_of(&dir.join(format!("out.small.{pid}.trace")), pid);
    assert_eq!(dir.files_starting_with("out.").len(), 1);
}

#[test]
fn default_name_in_working_directory() {
    let dir = TestDir::new("out_default");
    let Some(prog) = compile(dir.path(), "small.c", &[]) else {
        return;
    };
    let (_, pid) = run_small(&prog, dir.path(), None, 9);
    let trace = dir.join(format!("leakhunt.small.{pid}.trace"));
    assert_trace_of(&trace, pid);
    // the recorder's own account of the status (no `leakhunt run` here)
    let v = report_json(&trace);
    assert_eq!(
        v["program"]["exit_code"], 9,
        "ending: {}",
        v["program"]["ending"]
    );
    assert_eq!(v["trace"]["complete"], true);
    let mode = std::fs::metadata(&trace).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode of {}: {mode:o}", trace.display());
}

#[test]
fn trace_mode_is_0600_under_leakhunt_run() {
    let dir = TestDir::new("out_mode");
    let Some(prog) = compile(dir.path(), "small.c", &[]) else {
        return;
    };
    let run = leakhunt_run(dir.path(), &prog, &[]);
    assert_eq!(run.out.code(), Some(0));
    let mode = std::fs::metadata(&run.trace).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
}

#[test]
fn existing_file_is_never_overwritten() {
    let dir = TestDir::new("out_existing");
    let Some(prog) = compile(dir.path(), "small.c", &[]) else {
        return;
    };
    let target = dir.join("fixed.trace");
    std::fs::write(&target, "precious\n").unwrap();
    let (_, pid) = run_small(&prog, dir.path(), Some(target.to_str().unwrap()), 0);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    assert_trace_of(&dir.join(format!("fixed.trace.{pid}")), pid);
}

#[test]
fn symlink_is_not_followed() {
    let dir = TestDir::new("out_symlink");
    let Some(prog) = compile(dir.path(), "small.c", &[]) else {
        return;
    };
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, "victim\n").unwrap();
    let link = dir.join("link.trace");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let (_, pid) = run_small(&prog, dir.path(), Some(link.to_str().unwrap()), 0);
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "victim\n",
        "the symlink's target was written"
    );
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_trace_of(&dir.join(format!("link.trace.{pid}")), pid);

    // A dangling symlink: its target must not be created.
    let ghost = dir.join("ghost.trace");
    let dangling = dir.join("dangling.trace");
    std::os::unix::fs::symlink(&ghost, &dangling).unwrap();
    let (_, pid) = run_small(&prog, dir.path(), Some(dangling.to_str().unwrap()), 0);
    assert!(!ghost.exists(), "the dangling symlink was followed");
    assert_trace_of(&dir.join(format!("dangling.trace.{pid}")), pid);
}

#[test]
fn leakhunt_run_replaces_a_symlink_without_following_it() {
    let dir = TestDir::new("out_run_symlink");
    let Some(prog) = compile(dir.path(), "small.c", &[]) else {
        return;
    };
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, "victim\n").unwrap();
    let link = dir.join("link.trace");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let run = leakhunt_run_to(dir.path(), &link, &prog, &[]);
    assert_eq!(run.out.code(), Some(0), "{}", run.out.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim\n");
    assert!(!std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(program_totals(&report_json(&link)).allocations, 4);
}

/// One line from the recorder, then the program runs and exits as usual.
fn assert_unwritable(prog: &Path, dir: &Path, output: &Path) {
    let (o, _) = run_small(prog, dir, Some(output.to_str().unwrap()), 7);
    let lines = o.leakhunt_lines();
    assert_eq!(
        lines.len(),
        1,
        "expected one line from the recorder:\n{}",
        o.stderr
    );
    assert!(
        lines[0].contains(&*output.to_string_lossy()) || lines[0].contains("trace"),
        "{}",
        lines[0]
    );
    // and the program's own output is intact
    assert!(o.stderr.contains("allocs=4 "), "{}", o.stderr);
    assert!(!output.exists());
}

#[test]
fn unwritable_output_lets_the_program_run() {
    let dir = TestDir::new("out_unwritable");
    let Some(prog) = compile(dir.path(), "small.c", &[]) else {
        return;
    };
    // a directory that does not exist
    assert_unwritable(&prog, dir.path(), &dir.join("missing/x.trace"));
    // a "directory" that is a file
    std::fs::write(dir.join("file"), "").unwrap();
    assert_unwritable(&prog, dir.path(), &dir.join("file/x.trace"));
    // a read-only directory (root writes anyway)
    let ro = dir.join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(ro.join("probe"), "").is_ok() {
        skip("running as root: a mode-555 directory is writable (read-only case skipped)");
    } else {
        assert_unwritable(&prog, dir.path(), &ro.join("x.trace"));
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn leakhunt_run_into_missing_directory() {
    let dir = TestDir::new("out_run_missing");
    let Some(prog) = compile(dir.path(), "small.c", &[]) else {
        return;
    };
    let run = leakhunt_run_to(dir.path(), &dir.join("missing/x.trace"), &prog, &[]);
    assert_ne!(run.out.code(), Some(0));
    let lines: Vec<&str> = run.out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.out.stderr);
    assert!(
        lines[0].starts_with("leakhunt:") && lines[0].contains("missing"),
        "{}",
        lines[0]
    );
}

/// A program that closes every descriptor above 2 (the trace's among them)
/// and opens a file of its own: the recorder must not write into it.
#[test]
fn program_closing_all_fds_keeps_its_own_file() {
    let dir = TestDir::new("out_close_fds");
    let Some(prog) = compile(dir.path(), "close_fds.c", &[]) else {
        return;
    };
    let data = dir.join("data.txt");
    let run = leakhunt_run(dir.path(), &prog, &[data.to_str().unwrap()]);
    assert_eq!(run.out.code(), Some(0), "{}", run.out.stderr);
    assert_eq!(
        std::fs::read(&data).unwrap(),
        b"hello\n",
        "the program's file was written into"
    );
    // The trace was opened again by its path: it holds everything, before
    // the close and after, and the exit scan.
    let v = report_json(&run.trace);
    assert_totals_match(&v, &counts(&run.out.stderr, "allocs="), 0, 0);
    assert_eq!(v["program"]["exit_code"], 0);
    assert_eq!(v["trace"]["complete"], true, "{}", v["trace"]);
    assert_eq!(v["leaks"]["scanned"], true, "{}", v["leaks"]);
    assert!(
        !run.out.stderr.contains("recording is off"),
        "{}",
        run.out.stderr
    );
}

/// `leakhunt run -o` takes the path literally: a `%` in it is not a template.
#[test]
fn leakhunt_run_output_is_literal() {
    let dir = TestDir::new("out_literal");
    let Some(prog) = compile(dir.path(), "small.c", &[]) else {
        return;
    };
    let trace = dir.join("x%p.%n.trace");
    let run = leakhunt_run_to(dir.path(), &trace, &prog, &[]);
    assert_eq!(run.out.code(), Some(0), "{}", run.out.stderr);
    assert_eq!(program_totals(&report_json(&trace)).allocations, 4);
    assert_eq!(
        dir.files_starting_with("x").len(),
        1,
        "{:?}",
        dir.files_starting_with("")
    );
}

/// One `leakhunt:` line, a non-zero exit, no panic.
fn assert_refused(o: &Output, what: &str) -> String {
    assert!(!o.stderr.contains("panicked"), "{what}: {}", o.stderr);
    assert!(o.signal().is_none(), "{what}: {:?}", o.status);
    assert_ne!(o.code(), Some(0), "{what}: exit 0: {}", o.stderr);
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: {}", o.stderr);
    assert!(lines[0].starts_with("leakhunt:"), "{what}: {}", lines[0]);
    lines[0].to_string()
}

/// SPEC.md: `-o PATH` never deletes or overwrites anything but an earlier
/// leakhunt trace. A text file, a FIFO, a device are refused with one line
/// before the program runs, and are left as they were; an earlier trace
/// (and an empty file) is replaced.
#[test]
fn leakhunt_run_replaces_only_an_earlier_trace() {
    use std::os::unix::fs::FileTypeExt;
    let dir = TestDir::new("out_run_refuse");
    let Some(prog) = compile(dir.path(), "small.c", &[]) else {
        return;
    };
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "precious\n").unwrap();
    let run = leakhunt_run_to(dir.path(), &notes, &prog, &[]);
    let line = assert_refused(&run.out, "a text file");
    assert!(line.contains("not a leakhunt trace"), "{line}");
    assert!(
        !run.out.stdout.contains("hello from small"),
        "the program ran"
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "precious\n");

    let fifo = dir.join("fifo.trace");
    mkfifo(&fifo);
    let run = leakhunt_run_to(dir.path(), &fifo, &prog, &[]);
    let line = assert_refused(&run.out, "a FIFO");
    assert!(line.contains("FIFO"), "{line}");
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());

    // (/dev/full as root was deleted and replaced by a trace)
    let dev = &device_node(dir.path());
    let run = leakhunt_run_to(dir.path(), dev, &prog, &[]);
    let line = assert_refused(&run.out, "/dev/full");
    assert!(line.contains("device"), "{line}");
    assert!(std::fs::symlink_metadata(dev)
        .unwrap()
        .file_type()
        .is_char_device());

    let run = leakhunt_run_to(dir.path(), dir.path(), &prog, &[]);
    let line = assert_refused(&run.out, "a directory");
    assert!(line.contains("directory"), "{line}");

    // An earlier trace is replaced, and so is an empty file (mktemp's).
    let trace = dir.join("again.trace");
    for _ in 0..2 {
        let run = leakhunt_run_to(dir.path(), &trace, &prog, &[]);
        assert_eq!(run.out.code(), Some(0), "{}", run.out.stderr);
        assert_eq!(program_totals(&report_json(&trace)).allocations, 4);
    }
    let empty = dir.join("empty.trace");
    std::fs::write(&empty, "").unwrap();
    let run = leakhunt_run_to(dir.path(), &empty, &prog, &[]);
    assert_eq!(run.out.code(), Some(0), "{}", run.out.stderr);
    assert_eq!(program_totals(&report_json(&empty)).allocations, 4);
}

/// The views' `-o` (flamegraph, timeline, diff, both exports): a file that
/// is not their own earlier output, a FIFO, a device, a directory are
/// refused with one line and left alone; their own earlier output is
/// overwritten; a symlink is replaced, its target untouched.
#[test]
fn view_outputs_overwrite_only_their_own_files() {
    use std::os::unix::fs::FileTypeExt;
    let dir = TestDir::new("out_views");
    let Some(prog) = compile(dir.path(), "small.c", &[]) else {
        return;
    };
    let run = leakhunt_run(dir.path(), &prog, &[]);
    assert_eq!(run.out.code(), Some(0), "{}", run.out.stderr);
    let t = run.trace.to_str().unwrap().to_string();
    let views: [(&str, Vec<&str>); 6] = [
        ("flamegraph", vec!["flamegraph", &t, "-o"]),
        ("timeline", vec!["timeline", &t, "-o"]),
        ("diff", vec!["diff", &t, &t, "-o"]),
        ("pprof", vec!["export", &t, "-o"]),
        (
            "collapsed",
            vec![
                "export",
                &t,
                "--format",
                "collapsed",
                "--what",
                "allocated",
                "-o",
            ],
        ),
        (
            "collapsed-empty",
            vec!["export", &t, "--format", "collapsed", "-o"],
        ),
    ];
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let dev = device_node(dir.path());
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, "victim\n").unwrap();
    for (name, args) in &views {
        let with = |out: &Path| {
            let mut a: Vec<&str> = args.clone();
            a.push(out.to_str().unwrap());
            run_cmd(leakhunt_cmd().args(&a), Duration::from_secs(30))
        };
        let notes = dir.join(format!("{name}.notes"));
        std::fs::write(&notes, "precious\n").unwrap();
        let line = assert_refused(&with(&notes), &format!("{name} over a text file"));
        assert!(line.contains("refusing to overwrite"), "{name}: {line}");
        assert_eq!(std::fs::read_to_string(&notes).unwrap(), "precious\n");
        let line = assert_refused(&with(&fifo), &format!("{name} into a FIFO"));
        assert!(line.contains("FIFO"), "{name}: {line}");
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
        let line = assert_refused(&with(&dev), &format!("{name} into a device"));
        assert!(line.contains("device"), "{name}: {line}");
        let line = assert_refused(&with(dir.path()), &format!("{name} into a directory"));
        assert!(line.contains("directory"), "{name}: {line}");
        // its own earlier output: overwritten
        let out = dir.join(format!("{name}.out"));
        for _ in 0..2 {
            let o = with(&out);
            assert_eq!(o.code(), Some(0), "{name}: {}", o.stderr);
        }
        // a symlink: replaced by the output, its target left alone
        let link = dir.join(format!("{name}.link"));
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let o = with(&link);
        assert_eq!(o.code(), Some(0), "{name}: {}", o.stderr);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim\n");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
    }
}
