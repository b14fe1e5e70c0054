//! SPEC.md, "Errors a user can make": one clear line on stderr, a non-zero
//! exit, never a panic, a hang or a huge allocation. A trace that is cut
//! short or damaged is still reported (what came before it), and the report
//! exits 1 with one line on stderr saying so, as SPEC.md asks.

use leakhunt_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Address-space limit for leakhunt in these tests: a reader that trusted a
/// length from a damaged file would fail to allocate.
const ADDRESS_SPACE: u64 = 1 << 30;

fn limited(args: &[&str], path: Option<&Path>) -> Output {
    let mut c = leakhunt_cmd();
    c.args(args);
    if let Some(p) = path {
        c.arg(p);
    }
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: ADDRESS_SPACE,
                rlim_max: ADDRESS_SPACE,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    run_cmd(&mut c, Duration::from_secs(30))
}

/// One line on stderr, starting with `leakhunt:`; a non-zero exit (not a
/// signal); no panic; quickly.
fn assert_error(o: &Output, what: &str) -> String {
    assert!(
        !o.stderr.contains("panicked"),
        "{what}: panic:\n{}",
        o.stderr
    );
    assert!(
        o.signal().is_none(),
        "{what}: killed by signal {:?}:\n{}",
        o.signal(),
        o.stderr
    );
    assert_ne!(
        o.code(),
        Some(0),
        "{what}: exit status 0; stdout:\n{}",
        o.stdout
    );
    let lines: Vec<&str> = o.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: expected one line on stderr, got:\n{}",
        o.stderr
    );
    assert!(lines[0].starts_with("leakhunt:"), "{what}: {:?}", lines[0]);
    assert!(
        o.elapsed < Duration::from_secs(5),
        "{what}: took {:?}",
        o.elapsed
    );
    lines[0].to_string()
}

fn report_error(path: &Path, what: &str) -> String {
    let mut line = String::new();
    for format in ["text", "json"] {
        let o = limited(&["report", "--format", format], Some(path));
        line = assert_error(&o, &format!("{what} ({format})"));
        assert!(
            o.stdout.is_empty(),
            "{what}: output on stdout:\n{}",
            o.stdout
        );
    }
    line
}

/// A real trace to damage (entry_points.c's, a few chunks).
fn sample_trace(dir: &TestDir) -> Option<PathBuf> {
    let prog = compile(dir.path(), "entry_points.c", &[])?;
    let run = leakhunt_run(dir.path(), &prog, &[]);
    assert_eq!(run.out.code(), Some(0));
    Some(run.trace)
}

#[test]
fn missing_trace() {
    let dir = TestDir::new("err_missing");
    let line = report_error(&dir.join("no-such.trace"), "missing trace");
    assert!(line.contains("no-such.trace"), "names the file: {line}");
}

#[test]
fn directory_as_trace() {
    let dir = TestDir::new("err_dir");
    let line = report_error(dir.path(), "a directory");
    assert!(line.contains("directory"), "{line}");
}

#[test]
fn unreadable_trace() {
    let dir = TestDir::new("err_unreadable");
    let Some(trace) = sample_trace(&dir) else {
        return;
    };
    std::fs::set_permissions(&trace, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&trace).is_ok() {
        skip("running as root: a mode-000 file is still readable");
        return;
    }
    let line = report_error(&trace, "unreadable trace");
    assert!(line.to_lowercase().contains("permission"), "{line}");
}

#[test]
fn empty_trace() {
    let dir = TestDir::new("err_empty");
    let p = dir.join("empty.trace");
    std::fs::write(&p, b"").unwrap();
    report_error(&p, "empty trace");
}

#[test]
fn text_file_as_trace() {
    let dir = TestDir::new("err_text");
    let p = dir.join("notes.trace");
    std::fs::write(&p, "this is not a trace\nat all\n").unwrap();
    let line = report_error(&p, "text file");
    assert!(line.contains("not a leakhunt trace"), "{line}");
}

/// `trace`'s bytes with the header word at `at` set to `value`, written to
/// `dir/name`.
fn with_header_word(dir: &TestDir, trace: &Path, at: usize, value: u32, name: &str) -> PathBuf {
    let mut bytes = std::fs::read(trace).unwrap();
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `leakhunt run -o DIR/x.trace -- PROG` in `dir`.
fn run_in(dir: &TestDir, prog: &Path) -> Output {
    run_cmd(
        leakhunt_cmd()
            .current_dir(dir.path())
            .args(["run", "-o"])
            .arg(dir.join("x.trace"))
            .arg("--")
            .arg(prog),
        TIMEOUT,
    )
}

#[test]
fn newer_format_version() {
    let dir = TestDir::new("err_version");
    let Some(trace) = sample_trace(&dir) else {
        return;
    };
    let p = with_header_word(&dir, &trace, 8, 99, "v99.trace");
    let line = report_error(&p, "version 99");
    assert!(line.contains("newer"), "{line}");
    assert!(line.contains("99"), "{line}");
}

/// Shorter than the 16-byte file header: not readable at all.
#[test]
fn trace_shorter_than_header() {
    let dir = TestDir::new("err_short");
    let Some(trace) = sample_trace(&dir) else {
        return;
    };
    let bytes = std::fs::read(&trace).unwrap();
    for len in [1, 8, 12, 15] {
        let p = dir.join(format!("t{len}.trace"));
        std::fs::write(&p, &bytes[..len]).unwrap();
        report_error(&p, &format!("trace cut at {len} bytes"));
    }
}

/// Cut anywhere after the first chunk: the report works, says the trace is
/// incomplete in one warning line, and exits 0 (SPEC.md); cut before the
/// first chunk is complete, nothing is readable: an error.
#[test]
fn truncated_trace_is_reported_as_incomplete() {
    let dir = TestDir::new("err_truncated");
    let Some(trace) = sample_trace(&dir) else {
        return;
    };
    let bytes = std::fs::read(&trace).unwrap();
    let n = bytes.len();
    assert!(n > 100, "sample trace of {n} bytes");
    let first = first_chunk_end(&bytes);
    for len in [
        16,
        20,
        28,
        40,
        first - 1,
        first,
        n / 3,
        n / 2,
        n - 13,
        n - 1,
    ] {
        let p = dir.join(format!("t{len}.trace"));
        std::fs::write(&p, &bytes[..len]).unwrap();
        if len < first {
            let line = report_error(&p, &format!("cut at {len}, in the first chunk"));
            assert!(line.contains("nothing readable"), "cut at {len}: {line}");
            continue;
        }
        let o = limited(&["report"], Some(&p));
        assert_cut_exit(&o, &format!("cut at {len}"));
        assert!(!o.stderr.contains("panicked"));
        assert!(
            o.stdout.contains("cut short") || o.stdout.contains("killed or crashed"),
            "cut at {len}: the report does not say the trace is incomplete:\n{}",
            o.stdout
        );
        let v = report_json(&p);
        assert_eq!(v["trace"]["complete"], false, "cut at {len}");
        assert!(program_totals(&v).allocations <= 32, "cut at {len}");
    }
}

/// Exit 0 (SPEC.md: a cut or damaged trace is reported, not an error), no
/// panic, and on stderr only `leakhunt: warning:` lines saying the trace is
/// cut short or damaged, besides a view's `leakhunt: wrote FILE`: the
/// warnings.
fn cut_warnings<'a>(o: &'a Output, what: &str) -> Vec<&'a str> {
    assert_eq!(o.code(), Some(0), "{what}: {}", o.stderr);
    assert!(!o.stderr.contains("panicked"), "{what}: {}", o.stderr);
    let mut warnings = Vec::new();
    for l in o.stderr.lines() {
        if l.starts_with("leakhunt: warning:") {
            assert!(
                l.contains("cut short") || l.contains("damaged"),
                "{what}: {l}"
            );
            warnings.push(l);
        } else {
            assert!(l.starts_with("leakhunt: wrote "), "{what}: {}", o.stderr);
        }
    }
    warnings
}

/// A quiet stderr, or exactly one warning line.
fn assert_cut_exit(o: &Output, what: &str) {
    assert!(cut_warnings(o, what).len() <= 1, "{what}: {}", o.stderr);
}

/// Exactly one warning line.
fn assert_one_warning(o: &Output, what: &str) {
    assert_eq!(cut_warnings(o, what).len(), 1, "{what}: {}", o.stderr);
}

/// A damaged byte: the report shows what came before and says so.
#[test]
fn corrupted_trace_is_reported_as_damaged() {
    let dir = TestDir::new("err_corrupt");
    let Some(trace) = sample_trace(&dir) else {
        return;
    };
    let bytes = std::fs::read(&trace).unwrap();
    let n = bytes.len();
    let first_chunk_end = first_chunk_end(&bytes);
    assert!(first_chunk_end < n, "the sample trace has one chunk");
    for at in [16, 20, 30, n / 2, n * 2 / 3, n - 1] {
        let mut b = bytes.clone();
        b[at] ^= 0x5a;
        let p = dir.join(format!("c{at}.trace"));
        std::fs::write(&p, &b).unwrap();
        if at < first_chunk_end {
            // Nothing readable: an error, not an empty report (SPEC).
            let line = report_error(&p, &format!("byte {at} of the first chunk damaged"));
            assert!(line.contains("nothing readable"), "byte {at}: {line}");
            continue;
        }
        let o = limited(&["report"], Some(&p));
        assert_cut_exit(&o, &format!("byte {at} damaged"));
        assert!(!o.stderr.contains("panicked"));
        assert!(
            o.stdout.contains("damaged") || o.stdout.contains("cut short"),
            "byte {at} damaged: the report does not say so:\n{}",
            o.stdout
        );
        let v = report_json(&p);
        assert_eq!(v["trace"]["complete"], false, "byte {at} damaged");
    }
}

/// Where the first chunk of a version-3 trace ends (header, chunk header,
/// compressed bytes).
fn first_chunk_end(trace: &[u8]) -> usize {
    let clen = u32::from_le_bytes(trace[16..20].try_into().unwrap()) as usize;
    leakhunt_format::FILE_HEADER_LEN + leakhunt_format::CHUNK_HEADER_LEN + clen
}

/// A header and nothing after it (a program killed before its first flush,
/// a copy cut at 16 bytes): nothing to report on, so an error.
#[test]
fn header_only_trace_is_refused() {
    let dir = TestDir::new("err_header_only");
    let Some(trace) = sample_trace(&dir) else {
        return;
    };
    let bytes = std::fs::read(&trace).unwrap();
    let p = dir.join("header.trace");
    std::fs::write(&p, &bytes[..16]).unwrap();
    let line = report_error(&p, "header only");
    assert!(line.contains("only its header"), "{line}");
    let p = dir.join("half.trace");
    std::fs::write(&p, &bytes[..first_chunk_end(&bytes) - 1]).unwrap();
    let line = report_error(&p, "first chunk cut");
    assert!(line.contains("inside its first chunk"), "{line}");
    for cmd in ["flamegraph", "timeline", "export"] {
        let out = dir.join(format!("{cmd}.out"));
        let o = limited(&[cmd, "-o", out.to_str().unwrap()], Some(&p));
        assert_error(&o, cmd);
        assert!(!out.exists(), "{cmd} wrote a file");
    }
}

/// A chunk header claiming a huge length must not be trusted.
#[test]
fn huge_chunk_length_is_not_allocated() {
    let dir = TestDir::new("err_huge_chunk");
    let Some(trace) = sample_trace(&dir) else {
        return;
    };
    let bytes = std::fs::read(&trace).unwrap();
    let mut b = bytes[..16].to_vec();
    b.extend_from_slice(&0xffff_fff0u32.to_le_bytes()); // compressed length
    b.extend_from_slice(&0xffff_fff0u32.to_le_bytes()); // raw length
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&[0x42; 64]);
    let p = dir.join("huge.trace");
    std::fs::write(&p, &b).unwrap();
    let line = report_error(&p, "huge chunk");
    assert!(line.contains("length out of range"), "{line}");
}

/// 1 GB of zeros (sparse): rejected at once, in bounded memory.
#[test]
fn gigabyte_of_zeros() {
    let dir = TestDir::new("err_zeros");
    let p = dir.join("zeros.trace");
    std::fs::File::create(&p).unwrap().set_len(1 << 30).unwrap();
    let line = report_error(&p, "1 GB of zeros");
    assert!(line.contains("not a leakhunt trace"), "{line}");
}

/// A valid header, then 1 GB of zeros: a hole where chunks should be.
#[test]
fn header_then_gigabyte_of_zeros() {
    let dir = TestDir::new("err_hole");
    let Some(trace) = sample_trace(&dir) else {
        return;
    };
    let bytes = std::fs::read(&trace).unwrap();
    let p = dir.join("hole.trace");
    std::fs::write(&p, &bytes[..16]).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let t = std::time::Instant::now();
    let line = report_error(&p, "header then zeros");
    assert!(line.contains("nothing readable"), "{line}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn run_nonexistent_program() {
    let dir = TestDir::new("err_noprog");
    let o = run_in(&dir, Path::new("/nonexistent"));
    let line = assert_error(&o, "run -- /nonexistent");
    assert!(line.contains("/nonexistent"), "{line}");
    let o = run_cmd(
        leakhunt_cmd()
            .current_dir(dir.path())
            .args(["run", "--", "no-such-command-leakhunt"]),
        TIMEOUT,
    );
    assert_error(&o, "run -- no-such-command");
    assert!(
        dir.files_starting_with("").is_empty(),
        "files were left: {:?}",
        dir.files_starting_with("")
    );
}

#[test]
fn run_without_command() {
    for args in [&["run"][..], &["run", "--"][..]] {
        let o = run_cmd(leakhunt_cmd().args(args), TIMEOUT);
        assert_error(&o, &format!("leakhunt {args:?}"));
    }
}

#[test]
fn run_statically_linked_program() {
    let dir = TestDir::new("err_static");
    let prog = match try_compile(dir.path(), "small.c", "small_static", &["-static"]) {
        Ok(Some(p)) => p,
        Ok(None) => return,
        Err(e) => {
            skip(&format!("cannot link statically: {e}"));
            return;
        }
    };
    let o = run_in(&dir, &prog);
    let line = assert_error(&o, "statically linked program");
    assert!(line.contains("statically linked"), "{line}");
    assert!(
        !o.stdout.contains("hello from small"),
        "the program must not have run unrecorded"
    );
}

/// Each error line says its cause once. (The CLI prints `{e:#}`: the
/// `LoadError` variants both embed `{source}` in their message and expose it
/// as the error's source, so the cause is printed twice.)
#[test]
fn error_lines_say_their_cause_once() {
    let dir = TestDir::new("err_twice");
    let empty = dir.join("empty.trace");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.join("text.trace");
    std::fs::write(&text, b"hello\n").unwrap();
    for p in [dir.join("missing.trace"), empty, text] {
        let o = leakhunt(&["report", p.to_str().unwrap()]);
        let line = assert_error(&o, "report");
        let parts: Vec<&str> = line.split(": ").map(str::trim).collect();
        for (i, a) in parts.iter().enumerate() {
            assert!(!parts[i + 1..].contains(a), "{line:?} says {a:?} twice");
        }
    }
}

/// `leakhunt` with an unknown subcommand or no arguments: clap's usage, a
/// non-zero exit, no panic.
#[test]
fn usage_errors_do_not_panic() {
    for args in [&[][..], &["frobnicate"][..], &["report"][..]] {
        let o = run_cmd(Command::new(leakhunt_bin()).args(args), TIMEOUT);
        assert_ne!(o.code(), Some(0), "{args:?}");
        assert!(o.signal().is_none());
        assert!(!o.stderr.contains("panicked"), "{args:?}: {}", o.stderr);
    }
}

/// Every command that reads a trace, reading `t` (outputs go into `dir`).
fn reading_commands(dir: &Path, t: &str, good: &str) -> Vec<Vec<String>> {
    let out = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (f, p, e, c, tl, d) = (
        out("f.svg"),
        out("p.svg"),
        out("e.pb.gz"),
        out("e.txt"),
        out("t.svg"),
        out("d.svg"),
    );
    let cmds: [&[&str]; 11] = [
        &["report", t],
        &["report", "--format", "json", t],
        &["report", "--from", "1", t],
        &["flamegraph", t, "-o", &f],
        &["flamegraph", t, "--what", "peak", "-o", &p],
        &["export", t, "-o", &e],
        &["export", t, "--format", "collapsed", "-o", &c],
        &["timeline", t, "-o", &tl],
        &["diff", good, t],
        &["diff", t, good, "-o", &d],
        &["dump", t],
    ];
    cmds.iter()
        .map(|c| c.iter().map(|s| s.to_string()).collect())
        .collect()
}

/// A FIFO nobody writes to, a device, a socket: every command refuses it
/// with one line at once, without blocking on it (SPEC.md: a path that is
/// not a regular file).
#[test]
fn fifo_or_device_as_trace_is_refused_at_once() {
    let dir = TestDir::new("err_fifo");
    let Some(trace) = sample_trace(&dir) else {
        return;
    };
    let fifo = dir.join("fifo.trace");
    mkfifo(&fifo);
    let sock = dir.join("sock.trace");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let good = trace.to_str().unwrap();
    for (p, kind) in [
        (fifo.to_str().unwrap(), "FIFO"),
        ("/dev/null", "device"),
        ("/dev/zero", "device"),
        (sock.to_str().unwrap(), "socket"),
    ] {
        for cmd in reading_commands(dir.path(), p, good) {
            let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
            let o = limited(&args, None);
            let line = assert_error(&o, &format!("{args:?}"));
            assert!(line.contains(kind), "{args:?}: {line}");
        }
    }
}

/// Version 0 and header flags nobody defined are not a trace to trust.
#[test]
fn version_zero_and_unknown_flags_are_refused() {
    let dir = TestDir::new("err_header");
    let Some(trace) = sample_trace(&dir) else {
        return;
    };
    let p = with_header_word(&dir, &trace, 8, 0, "v0.trace");
    let line = report_error(&p, "version 0");
    assert!(line.contains("version 0"), "{line}");
    for flags in [u32::MAX, 1] {
        let p = with_header_word(&dir, &trace, 12, flags, &format!("flags{flags:x}.trace"));
        let line = report_error(&p, &format!("flags {flags:#x}"));
        assert!(line.contains("flags"), "{line}");
    }
}

/// Every view of a cut or damaged trace works as `report` does: one
/// warning line, its output written, exit 0.
#[test]
fn every_view_of_a_cut_or_damaged_trace_warns_once() {
    let dir = TestDir::new("err_views_cut");
    let Some(trace) = sample_trace(&dir) else {
        return;
    };
    let bytes = std::fs::read(&trace).unwrap();
    let n = bytes.len();
    let cut = dir.join("cut.trace");
    std::fs::write(&cut, &bytes[..n - 7]).unwrap();
    let damaged = dir.join("damaged.trace");
    let mut b = bytes.clone();
    b[n * 2 / 3] ^= 0x5a;
    std::fs::write(&damaged, &b).unwrap();
    let good = trace.to_str().unwrap();
    for t in [&cut, &damaged] {
        let out = TestDir::new("err_views_out");
        for cmd in reading_commands(out.path(), t.to_str().unwrap(), good) {
            let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
            if args[0] == "dump" {
                continue; // a debugging aid: it prints where it stopped
            }
            let o = limited(&args, None);
            assert_one_warning(&o, &format!("{args:?}"));
            if let Some(i) = args.iter().position(|a| *a == "-o") {
                // (collapsed stacks of nothing leaked are an empty file)
                assert!(
                    std::fs::metadata(args[i + 1]).is_ok(),
                    "{args:?}: nothing written"
                );
            }
        }
    }
}

/// A chunk repeated in place, a chunk moved, two traces concatenated, the
/// chunks of another run spliced in: damage, read up to the last good
/// chunk, never counted twice (SPEC.md).
#[test]
fn duplicated_reordered_or_foreign_chunks_are_damage() {
    let dir = TestDir::new("err_dup_chunks");
    let Some(trace) = sample_trace(&dir) else {
        return;
    };
    let bytes = std::fs::read(&trace).unwrap();
    let whole = program_totals(&report_json(&trace));
    let spans = chunk_spans(&bytes);
    assert!(spans.len() >= 4, "{} chunks", spans.len());
    let check = |name: &str, b: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, b).unwrap();
        let o = limited(&["report"], Some(&p));
        assert_one_warning(&o, name);
        assert!(o.stderr.contains("damaged"), "{name}: {}", o.stderr);
        let v = report_json(&p);
        assert_eq!(v["trace"]["complete"], false, "{name}");
        let t = program_totals(&v);
        assert!(
            t.allocations <= whole.allocations && t.frees <= whole.frees,
            "{name}: counted twice: {t:?} of {whole:?}"
        );
        t
    };
    for (i, &(a, b)) in spans.iter().enumerate() {
        let mut dup = bytes[..b].to_vec();
        dup.extend_from_slice(&bytes[a..]);
        check(&format!("dup{i}.trace"), &dup);
        if i + 1 < spans.len() {
            let mut moved = bytes[..a].to_vec();
            moved.extend_from_slice(&bytes[b..]);
            moved.extend_from_slice(&bytes[a..b]);
            if i == 0 {
                // The second chunk first: not one chunk can be trusted.
                let p = dir.join("moved0.trace");
                std::fs::write(&p, &moved).unwrap();
                let line = report_error(&p, "first chunk moved");
                assert!(line.contains("nothing readable"), "{line}");
            } else {
                check(&format!("moved{i}.trace"), &moved);
            }
        }
    }
    // cat a a: all of the first, nothing of the second
    let mut twice = bytes.clone();
    twice.extend_from_slice(&bytes);
    let t = check("twice.trace", &twice);
    assert_eq!(t.allocations, whole.allocations);
    // Another run of the same program: the same records, another trace.
    let other = dir.join("other");
    std::fs::create_dir(&other).unwrap();
    let prog = compile(&other, "entry_points.c", &[]).unwrap();
    let run = leakhunt_run(&other, &prog, &[]);
    assert_eq!(run.out.code(), Some(0));
    let theirs = std::fs::read(&run.trace).unwrap();
    let their_spans = chunk_spans(&theirs);
    let k = spans.len() / 2;
    let mut spliced = bytes[..spans[k].0].to_vec();
    spliced.extend_from_slice(&theirs[their_spans[k].0..]);
    check("foreign.trace", &spliced);
}

/// A set-user-ID program owned by someone else runs in the loader's secure
/// mode, which drops LD_PRELOAD: `leakhunt run` says so in one line instead
/// of a puzzling "no trace was written". (Needs root to make one.)
#[test]
fn run_set_uid_program_is_refused() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        skip("not root: cannot make a set-user-ID program of another user");
        return;
    }
    let dir = TestDir::new("err_setuid");
    let Some(prog) = compile(dir.path(), "small.c", &[]) else {
        return;
    };
    std::os::unix::fs::chown(&prog, Some(65534), None).expect("chown nobody");
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o4755)).expect("chmod u+s");
    let o = run_in(&dir, &prog);
    let line = assert_error(&o, "set-user-ID program");
    assert!(
        line.contains("set-user-ID") && line.contains("LD_PRELOAD"),
        "{line}"
    );
    assert!(
        !o.stdout.contains("hello from small"),
        "it must not have run"
    );
}
