//! The harness of leakhunt's end-to-end tests.
//!
//! It compiles the C and C++ programs of `tests/programs/` into a per-test
//! temporary directory, runs them under `leakhunt run` (or directly with
//! `LD_PRELOAD=libleakhunt.so`), reads the trace back with
//! `leakhunt report --format json`, and compares against what each program
//! says it did (the `allocs=... frees=...` line of `programs/counts.h`) and,
//! where installed, against valgrind and heaptrack.
//!
//! The binaries are the release builds: `cargo build --release --workspace`
//! first (or point `$LEAKHUNT_BIN_DIR` at a directory holding `leakhunt` and
//! `libleakhunt.so`). A test whose tool (gcc, valgrind, sqlite3, ...) is
//! missing prints `SKIP: <reason>` and passes.
//!
//! The recorder must never record its own allocations (an early version's
//! writer thread did, one block in most runs). The exact-count checks
//! assume it does not; `LEAKHUNT_TESTS_ALLOW_OWN=1` makes them take such
//! blocks out (identified by their stack, see `recorder_own`) while hunting
//! some other problem. `entry_points::recorder_never_records_itself` checks
//! it directly.

use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any one program or leakhunt command may take before the test
/// fails as a hang.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The size of libstdc++'s emergency exception-handling pool, allocated once
/// at startup by every program linked with libstdc++ (found by experiment:
/// `leakhunt run` and valgrind both see exactly one block of this size).
pub const EMERGENCY_POOL_BYTES: u64 = 72_704;

// ---------------------------------------------------------------- binaries

/// Where `leakhunt` and `libleakhunt.so` are: `$LEAKHUNT_BIN_DIR`, else the
/// workspace's `target/release`.
pub fn bin_dir() -> PathBuf {
    match std::env::var_os("LEAKHUNT_BIN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release"),
    }
}

fn binary(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    if !p.is_file() {
        panic!(
            "{} is missing: run `cargo build --release --workspace` first (from the workspace root), \
             or set LEAKHUNT_BIN_DIR to the directory that holds leakhunt and libleakhunt.so",
            p.display()
        );
    }
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| warn_if_stale(&p));
    p.canonicalize().unwrap_or(p)
}

/// Says so (once) when a binary is older than the sources it is built from:
/// the tests would be testing yesterday's leakhunt.
fn warn_if_stale(bin: &Path) {
    let Ok(built) = bin.metadata().and_then(|m| m.modified()) else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    let mut stack: Vec<PathBuf> = ["cli/src", "preload/src", "format/src", "unwind/src"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                if newest.as_ref().is_none_or(|(n, _)| t > *n) {
                    newest = Some((t, path));
                }
            }
        }
    }
    if let Some((t, path)) = newest {
        if t > built {
            eprintln!(
                "warning: {} is older than {}: run `cargo build --release --workspace` to test the current sources",
                bin.display(),
                path.display()
            );
        }
    }
}

/// The `leakhunt` executable.
pub fn leakhunt_bin() -> PathBuf {
    binary("leakhunt")
}

/// The recorder, `libleakhunt.so`.
pub fn preload_lib() -> PathBuf {
    binary("libleakhunt.so")
}

/// Is `tool` on the PATH?
pub fn have(tool: &str) -> bool {
    which(tool).is_some()
}

/// The full path of `tool` as the PATH finds it.
pub fn which(tool: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(tool))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Prints why a test is skipped (it then returns early and passes).
pub fn skip(reason: &str) {
    eprintln!("SKIP: {reason}");
}

/// Unless `LEAKHUNT_TESTS_ALLOW_OWN=1`, no allowance is made for the
/// recorder's own allocations.
pub fn strict() -> bool {
    std::env::var_os("LEAKHUNT_TESTS_ALLOW_OWN").is_none_or(|v| v != "1")
}

// ---------------------------------------------------------------- temp dirs

/// A fresh directory under the system temp dir, removed when the test passes
/// and kept (its path printed) when it fails.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let base = std::env::temp_dir()
            .canonicalize()
            .unwrap_or_else(|_| std::env::temp_dir());
        loop {
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("leakhunt-tests.{}.{n}.{name}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return TestDir { path },
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create {}: {e}", path.display()),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }

    /// Files in the directory whose name starts with `prefix`, sorted.
    pub fn files_starting_with(&self, prefix: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.path)
            .expect("read temp dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("(test files kept in {})", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------- programs

/// `tests/programs/`.
pub fn programs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("programs")
}

/// The path of a program's source.
pub fn source(name: &str) -> PathBuf {
    programs_dir().join(name)
}

/// The line of `src` (a file in tests/programs) carrying the marker
/// `@site:<name>`: where a test expects a stack frame to point.
pub fn marker_line(src: &str, name: &str) -> u32 {
    let text = std::fs::read_to_string(source(src)).expect("read program source");
    let marker = format!("@site:{name}");
    let found: Vec<u32> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            l.split(|c: char| c.is_whitespace() || c == '*')
                .any(|w| w == marker)
        })
        .map(|(i, _)| i as u32 + 1)
        .collect();
    assert_eq!(found.len(), 1, "marker {marker} must appear once in {src}");
    found[0]
}

/// Compiles `tests/programs/<src>` (gcc for .c, g++ for .cpp; `-g -O1`, the
/// programs directory on the include path, plus `extra`) into `dir/<out>`.
/// `Ok(None)` (with a printed reason) when the compiler is missing; `Err` with
/// the compiler's output when it fails.
pub fn try_compile(
    dir: &Path,
    src: &str,
    out: &str,
    extra: &[&str],
) -> Result<Option<PathBuf>, String> {
    let cxx = src.ends_with(".cpp") || src.ends_with(".cc");
    let compiler = if cxx { "g++" } else { "gcc" };
    if !have(compiler) {
        skip(&format!("{compiler} is not installed"));
        return Ok(None);
    }
    let exe = dir.join(out);
    let mut cmd = Command::new(compiler);
    cmd.args(["-g", "-O1", "-Wall", "-Wextra", "-I"])
        .arg(programs_dir())
        .arg("-o")
        .arg(&exe)
        .arg(source(src))
        .args(extra);
    let o = run_cmd(&mut cmd, TIMEOUT);
    if !o.status.success() {
        return Err(format!(
            "{compiler} {src} {extra:?} failed:\n{}{}",
            o.stdout, o.stderr
        ));
    }
    Ok(Some(exe))
}

/// Like [`try_compile`], naming the executable after the source and
/// panicking if compilation fails. `None`: skip the test.
pub fn compile(dir: &Path, src: &str, extra: &[&str]) -> Option<PathBuf> {
    let out = src.rsplit_once('.').map(|(b, _)| b).unwrap_or(src);
    match try_compile(dir, src, out, extra) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

// ---------------------------------------------------------------- running

/// What a finished command did.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// The status a shell would report: the exit code, or 128 + signal.
    pub fn shell_status(&self) -> i32 {
        self.code()
            .unwrap_or_else(|| 128 + self.signal().unwrap_or(0))
    }

    /// stderr lines that start with `leakhunt:`.
    pub fn leakhunt_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("leakhunt:"))
            .collect()
    }
}

fn reader_thread<R: Read + Send + 'static>(r: Option<R>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut s);
        }
        let _ = tx.send(String::from_utf8_lossy(&s).into_owned());
    });
    rx
}

/// Runs `cmd` (stdin closed, stdout and stderr captured); a command still
/// running after `timeout` is killed and the test fails.
pub fn run_cmd(cmd: &mut Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    finish(&mut child, cmd, start, timeout)
}

/// Waits for a spawned child (its stdout/stderr, if piped and not taken yet,
/// are collected) with a timeout.
pub fn finish(
    child: &mut Child,
    what: &dyn std::fmt::Debug,
    start: Instant,
    timeout: Duration,
) -> Output {
    let out = reader_thread(child.stdout.take());
    let err = reader_thread(child.stderr.take());
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for child") {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err.recv_timeout(Duration::from_secs(2)).unwrap_or_default();
            panic!("{what:?} did not finish within {timeout:?} (killed); stderr so far:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    // A grandchild may hold the pipes open; do not wait for it forever.
    let stdout = out
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_default();
    let stderr = err
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_default();
    Output {
        status,
        stdout,
        stderr,
        elapsed,
    }
}

/// A `leakhunt` command with a clean environment (no inherited LD_PRELOAD,
/// LEAKHUNT_OUTPUT or PYTHONMALLOC).
pub fn leakhunt_cmd() -> Command {
    let mut c = Command::new(leakhunt_bin());
    c.env_remove("LD_PRELOAD")
        .env_remove("LEAKHUNT_OUTPUT")
        .env_remove("PYTHONMALLOC");
    c
}

/// `leakhunt ARGS...`, waited for.
pub fn leakhunt(args: &[&str]) -> Output {
    run_cmd(leakhunt_cmd().args(args), TIMEOUT)
}

/// What `leakhunt run -o TRACE -- prog args` did.
#[derive(Debug)]
pub struct Run {
    pub out: Output,
    pub trace: PathBuf,
}

/// `leakhunt run -o <dir>/<prog name>.trace -- prog args`, run in `dir`.
pub fn leakhunt_run(dir: &Path, prog: &Path, args: &[&str]) -> Run {
    let name = prog
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "prog".into());
    let trace = dir.join(format!("{name}.trace"));
    leakhunt_run_to(dir, &trace, prog, args)
}

/// `leakhunt run` without the exit scan (`LEAKHUNT_SCAN=0`): no leak kinds,
/// and the C runtime's leftovers (stdio buffers, thread vectors, libstdc++'s
/// emergency pool) stay live instead of being released first as memcheck
/// does. Tests of exact never-freed records use it.
pub fn leakhunt_run_noscan(dir: &Path, prog: &Path, args: &[&str]) -> Run {
    let name = prog
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "prog".into());
    let trace = dir.join(format!("{name}.trace"));
    leakhunt_run_env(dir, &trace, prog, args, &[("LEAKHUNT_SCAN", "0")])
}

/// `leakhunt run -o TRACE -- prog args`, run in `dir`.
pub fn leakhunt_run_to(dir: &Path, trace: &Path, prog: &Path, args: &[&str]) -> Run {
    leakhunt_run_env(dir, trace, prog, args, &[])
}

/// `leakhunt run -o TRACE -- prog args`, run in `dir` with `env` added.
pub fn leakhunt_run_env(
    dir: &Path,
    trace: &Path,
    prog: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let out = run_cmd(
        leakhunt_cmd()
            .envs(env.iter().copied())
            .current_dir(dir)
            .arg("run")
            .arg("-o")
            .arg(trace)
            .arg("--")
            .arg(prog)
            .args(args),
        TIMEOUT,
    );
    Run {
        out,
        trace: trace.to_path_buf(),
    }
}

/// `prog args` with `LD_PRELOAD=libleakhunt.so` and, if given,
/// `LEAKHUNT_OUTPUT=output` (not spawned yet).
pub fn preload_cmd(prog: &Path, args: &[&str], output: Option<&Path>) -> Command {
    let mut c = Command::new(prog);
    c.args(args)
        .env("LD_PRELOAD", preload_lib())
        .env_remove("LEAKHUNT_OUTPUT");
    if let Some(o) = output {
        c.env("LEAKHUNT_OUTPUT", o);
    }
    c
}

/// Reads lines of a child's stdout on a thread; `wait_for` blocks until a
/// line matches.
pub struct LineWatcher {
    rx: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl LineWatcher {
    pub fn new<R: Read + Send + 'static>(r: R) -> LineWatcher {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        LineWatcher {
            rx,
            seen: Vec::new(),
        }
    }

    /// The first line (from now on) that starts with `prefix`; panics after `timeout`.
    pub fn wait_for(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line starting with {prefix:?} within {timeout:?}; saw {:?}",
                    self.seen
                ),
            }
        }
    }
}

/// Sends `sig` to `pid` (a negative pid: to that process group).
pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(
        r,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

// ---------------------------------------------------------------- reports

/// `leakhunt report --format json --limit 0 --depth 0 TRACE`, parsed (all
/// records, all frames). Panics if the report fails.
pub fn report_json(trace: &Path) -> Value {
    let o = run_cmd(
        leakhunt_cmd()
            .args(["report", "--format", "json", "--limit", "0", "--depth", "0"])
            .arg(trace),
        TIMEOUT,
    );
    // A cut or damaged trace is reported with success too (SPEC.md), its
    // JSON saying `"trace": {"complete": false}`.
    assert!(
        o.status.success(),
        "leakhunt report --format json {} failed ({:?}):\n{}",
        trace.display(),
        o.status,
        o.stderr
    );
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "report of {} is not JSON ({e}):\n{}",
            trace.display(),
            o.stdout
        )
    })
}

/// `leakhunt report TRACE` (text). Panics if the report fails.
pub fn report_text(trace: &Path) -> String {
    let o = run_cmd(
        leakhunt_cmd().args(["report", "--show", "all"]).arg(trace),
        TIMEOUT,
    );
    assert!(
        o.status.success(),
        "leakhunt report {} failed ({:?}):\n{}",
        trace.display(),
        o.status,
        o.stderr
    );
    o.stdout
}

/// A number of the JSON report, by a `/`-separated path ("totals/frees").
pub fn num(v: &Value, path: &str) -> u64 {
    let p = format!("/{path}");
    v.pointer(&p)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("report has no number at {path}: {}", short(v)))
}

/// A string of the JSON report, by path.
pub fn string<'a>(v: &'a Value, path: &str) -> &'a str {
    let p = format!("/{path}");
    v.pointer(&p)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("report has no string at {path}: {}", short(v)))
}

fn short(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 2000 {
        s.truncate(2000);
        s.push_str("...");
    }
    s
}

/// The report's `totals`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub allocations: u64,
    pub frees: u64,
    pub allocated_bytes: u64,
    pub peak_bytes: u64,
    pub live_blocks_at_end: u64,
    pub live_bytes_at_end: u64,
}

pub fn totals(v: &Value) -> Totals {
    Totals {
        allocations: num(v, "totals/allocations"),
        frees: num(v, "totals/frees"),
        allocated_bytes: num(v, "totals/allocated_bytes"),
        peak_bytes: num(v, "totals/peak_bytes"),
        live_blocks_at_end: num(v, "totals/live_blocks_at_end"),
        live_bytes_at_end: num(v, "totals/live_bytes_at_end"),
    }
}

/// The never-freed records of a report (all of them: `report_json` asks for
/// no limit).
pub fn records(v: &Value) -> Vec<&Value> {
    v["records"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// The frames of a record's stack.
pub fn frames(r: &Value) -> Vec<&Value> {
    r["stack"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn file_name(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// Is this frame in module `module` (compared by file name)?
pub fn frame_in(f: &Value, module: &str) -> bool {
    f["module"]
        .as_str()
        .is_some_and(|m| file_name(m) == file_name(module))
}

/// A record made by the recorder itself: a stack through libleakhunt.so
/// and the C library only (the writer thread's). A program's allocation made
/// through one of the recorder's wrappers (dlopen, exec...) also has frames
/// in libleakhunt.so, but the program's own frames too.
pub fn is_recorder_own(r: &Value) -> bool {
    let fr = frames(r);
    let runtime = |f: &&Value| {
        let m = file_name(f["module"].as_str().unwrap_or(""));
        m == "libleakhunt.so" || m.starts_with("libc.so") || m.starts_with("ld-linux")
    };
    fr.iter().any(|f| frame_in(f, "libleakhunt.so")) && fr.iter().all(runtime)
}

/// Blocks and bytes the recorder recorded of its own (a bug, once: the
/// writer thread's first allocation, `__cxa_thread_atexit_impl` under Rust's
/// thread-spawn hooks, made before the thread marked itself as the writer).
/// Always zero unless `LEAKHUNT_TESTS_ALLOW_OWN=1`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Own {
    pub blocks: u64,
    pub bytes: u64,
}

pub fn recorder_own(v: &Value) -> Own {
    if strict() {
        return Own::default();
    }
    let mut own = Own::default();
    for r in records(v).into_iter().filter(|r| is_recorder_own(r)) {
        own.blocks += r["blocks"].as_u64().unwrap_or(0);
        own.bytes += r["bytes"].as_u64().unwrap_or(0);
    }
    if own.blocks > 0 {
        eprintln!(
            "note: the recorder recorded {} block(s), {} bytes of its own (a bug; allowed for by LEAKHUNT_TESTS_ALLOW_OWN=1)",
            own.blocks, own.bytes
        );
    }
    own
}

/// Never-freed records that are the program's (not the recorder's own).
pub fn program_records(v: &Value) -> Vec<&Value> {
    records(v)
        .into_iter()
        .filter(|r| strict() || !is_recorder_own(r))
        .collect()
}

/// The totals with the recorder's own never-freed blocks taken out (they
/// are allocations that were never freed). The peak is left as is: see
/// [`assert_peak`].
pub fn program_totals(v: &Value) -> Totals {
    let own = recorder_own(v);
    let mut t = totals(v);
    t.allocations -= own.blocks;
    t.allocated_bytes -= own.bytes;
    t.live_blocks_at_end -= own.blocks;
    t.live_bytes_at_end -= own.bytes;
    t
}

/// Asserts the report's peak is `expected`, allowing the recorder's own
/// block(s) to have been live at that moment.
pub fn assert_peak(v: &Value, expected: u64) {
    let peak = num(v, "totals/peak_bytes");
    let own = recorder_own(v);
    assert!(
        peak == expected || (own.bytes > 0 && peak == expected + own.bytes),
        "peak_bytes {peak}, expected {expected} (recorder's own bytes: {})",
        own.bytes
    );
}

/// The first frame of a record's stack in module `module` (by file name):
/// the allocation site as seen from the program, past the allocator's own
/// frames (operator new, strdup, ...).
pub fn site_frame<'a>(r: &'a Value, module: &str) -> Option<&'a Value> {
    r["stack"].as_array()?.iter().find(|f| frame_in(f, module))
}

/// Asserts a frame is `function` at `file`:`line` (file compared by name;
/// `function` must be the whole name or its name before the parameter list).
pub fn assert_frame(f: &Value, function: &str, file: &str, line: u32) {
    let name = f["function"].as_str().unwrap_or("");
    let base = name.split('(').next().unwrap_or(name);
    assert!(
        name == function || base == function,
        "frame function {name:?}, expected {function:?}: {f}"
    );
    let ffile = f["file"].as_str().unwrap_or("");
    assert_eq!(file_name(ffile), file, "frame file: {f}");
    assert_eq!(f["line"].as_u64(), Some(line as u64), "frame line: {f}");
}

/// The record (one only) whose bytes are `bytes`.
pub fn record_of_bytes(v: &Value, bytes: u64) -> &Value {
    let found: Vec<&Value> = records(v)
        .into_iter()
        .filter(|r| r["bytes"].as_u64() == Some(bytes))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one record of {bytes} bytes, found {}: {}",
        found.len(),
        short(&v["records"])
    );
    found[0]
}

/// The kind a never-freed record must have: one of memcheck's four when the
/// exit scan ran, `never_freed` otherwise.
pub fn assert_record_kind(v: &Value, r: &Value) {
    let kind = r["kind"].as_str().unwrap_or("");
    if v["leaks"]["scanned"].as_bool() == Some(true) {
        assert!(
            [
                "definitely_lost",
                "indirectly_lost",
                "possibly_lost",
                "still_reachable"
            ]
            .contains(&kind),
            "record kind {kind:?}"
        );
    } else {
        assert_eq!(kind, "never_freed", "record kind without an exit scan");
    }
}

// ---------------------------------------------------------------- program output

/// The `key=value` numbers of the first line of `text` that starts with
/// `prefix` and holds `allocs=` (the line `programs/counts.h` prints).
pub fn counts(text: &str, prefix: &str) -> HashMap<String, i64> {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix) && l.contains("allocs="))
        .unwrap_or_else(|| panic!("no counts line starting with {prefix:?} in:\n{text}"));
    key_values(line)
}

/// `key=value` pairs of a line whose values are integers.
pub fn key_values(line: &str) -> HashMap<String, i64> {
    line.split_whitespace()
        .filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Asserts the program totals of a report (recorder's own blocks taken out)
/// equal the counts a program printed, plus `extra` (what the C runtime
/// added: blocks and bytes, never freed).
pub fn assert_totals_match(
    v: &Value,
    c: &HashMap<String, i64>,
    extra_blocks: u64,
    extra_bytes: u64,
) {
    assert_eq!(
        c.get("bad").copied().unwrap_or(0),
        0,
        "the program saw wrong results from the allocator: {c:?}"
    );
    let t = program_totals(v);
    let want = Totals {
        allocations: c["allocs"] as u64 + extra_blocks,
        frees: c["frees"] as u64,
        allocated_bytes: c["bytes"] as u64 + extra_bytes,
        peak_bytes: t.peak_bytes,
        live_blocks_at_end: c["live_blocks"] as u64 + extra_blocks,
        live_bytes_at_end: c["live_bytes"] as u64 + extra_bytes,
    };
    assert_eq!(
        t, want,
        "report totals (left) vs the program's own counts + runtime extras (right)"
    );
}

// ---------------------------------------------------------------- oracles

/// memcheck's "total heap usage: A allocs, F frees, B bytes allocated".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapUsage {
    pub allocs: u64,
    pub frees: u64,
    pub bytes: u64,
}

fn number(s: &str) -> Option<u64> {
    s.replace(',', "").parse().ok()
}

/// Parses memcheck's HEAP SUMMARY line.
pub fn parse_valgrind(stderr: &str) -> Option<HeapUsage> {
    let line = stderr.lines().find(|l| l.contains("total heap usage:"))?;
    let rest = line.split("total heap usage:").nth(1)?;
    let w: Vec<&str> = rest.split_whitespace().collect();
    // "A allocs, F frees, B bytes allocated"
    Some(HeapUsage {
        allocs: number(w.first()?)?,
        frees: number(w.get(2)?)?,
        bytes: number(w.get(4)?)?,
    })
}

/// memcheck's LEAK SUMMARY: kind -> (bytes, blocks).
pub fn parse_valgrind_leaks(stderr: &str) -> HashMap<String, (u64, u64)> {
    let mut m = HashMap::new();
    for (label, key) in [
        ("definitely lost:", "definitely_lost"),
        ("indirectly lost:", "indirectly_lost"),
        ("possibly lost:", "possibly_lost"),
        ("still reachable:", "still_reachable"),
        ("suppressed:", "suppressed"),
    ] {
        if let Some(l) = stderr.lines().find(|l| l.contains(label)) {
            let w: Vec<&str> = l
                .split(label)
                .nth(1)
                .unwrap_or("")
                .split_whitespace()
                .collect();
            if let (Some(b), Some(n)) = (
                w.first().and_then(|s| number(s)),
                w.get(3).and_then(|s| number(s)),
            ) {
                m.insert(key.to_string(), (b, n));
            }
        }
    }
    m
}

/// Keeps memcheck's client memory above 4 GiB. By default memcheck puts the
/// heap at 0x4a4xxxx (about 78 million), and ld.so keeps in its data
/// `relocate_time`, a TSC count of its relocations: tens of millions of
/// cycles under valgrind, varying with load. Now and then that count fell
/// inside a lost block, and memcheck, the oracle, called it possibly lost
/// (found with `who_points_at`; one run of big.c in about 25). Above 4 GiB
/// no such count reaches the heap, as none reaches leakhunt's.
pub const MEMCHECK_HIGH_HEAP: &str = "--aspace-minaddr=0x100000000";

/// Runs `prog args` under valgrind memcheck (stdout captured, so stdio
/// buffers as under `leakhunt run` in these tests); `None` (skip) when
/// valgrind is not installed.
pub fn valgrind(prog: &Path, args: &[&str], extra: &[&str]) -> Option<Output> {
    if !have("valgrind") {
        skip("valgrind is not installed");
        return None;
    }
    let mut c = Command::new("valgrind");
    c.arg("--error-exitcode=0")
        .arg(MEMCHECK_HIGH_HEAP)
        .args(extra)
        .arg(prog)
        .args(args)
        .env_remove("LD_PRELOAD");
    Some(run_cmd(&mut c, Duration::from_secs(180)))
}

/// memcheck's "total heap usage" of `prog args`; `None` (skip) when valgrind
/// is missing.
pub fn valgrind_summary(prog: &Path, args: &[&str]) -> Option<HeapUsage> {
    let o = valgrind(prog, args, &[])?;
    Some(
        parse_valgrind(&o.stderr)
            .unwrap_or_else(|| panic!("no HEAP SUMMARY from valgrind:\n{}", o.stderr)),
    )
}

/// heaptrack_print's "calls to allocation functions: N" for `prog args`
/// (recorded into `dir`); `None` (skip) when heaptrack is missing.
pub fn heaptrack_calls(dir: &Path, prog: &Path, args: &[&str]) -> Option<u64> {
    if !have("heaptrack") || !have("heaptrack_print") {
        skip("heaptrack is not installed");
        return None;
    }
    let base = dir.join("heaptrack.out");
    let o = run_cmd(
        Command::new("heaptrack")
            .arg("-o")
            .arg(&base)
            .arg(prog)
            .args(args)
            .env_remove("LD_PRELOAD"),
        Duration::from_secs(120),
    );
    assert!(
        o.status.success(),
        "heaptrack failed: {}\n{}",
        o.stdout,
        o.stderr
    );
    let file = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("heaptrack.out"))
        })
        .unwrap_or_else(|| panic!("heaptrack wrote no file: {}\n{}", o.stdout, o.stderr));
    let p = run_cmd(
        Command::new("heaptrack_print").arg(&file),
        Duration::from_secs(120),
    );
    assert!(p.status.success(), "heaptrack_print failed: {}", p.stderr);
    let line = p
        .stdout
        .lines()
        .find(|l| l.starts_with("calls to allocation functions:"))
        .unwrap_or_else(|| {
            panic!(
                "no 'calls to allocation functions' in heaptrack_print output:\n{}",
                p.stdout
            )
        });
    let n = line.split(':').nth(1)?.split_whitespace().next()?;
    Some(number(n).expect("a number"))
}

// ---------------------------------------------------------------- hostile files

/// Makes a FIFO at `path` (nobody will ever write to it).
pub fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("a path without NUL");
    // SAFETY: a NUL-terminated path; mkfifo has no other preconditions.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(r, 0, "mkfifo {}", path.display());
}

/// The byte ranges of the chunks of a whole trace (of any version).
pub fn chunk_spans(trace: &[u8]) -> Vec<(usize, usize)> {
    use leakhunt_format::{CHUNK_HEADER_LEN, FILE_HEADER_LEN, LEGACY_CHUNK_HEADER_LEN};
    let version = u32::from_le_bytes(trace[8..12].try_into().unwrap());
    let header = if version >= 3 {
        CHUNK_HEADER_LEN
    } else {
        LEGACY_CHUNK_HEADER_LEN
    };
    let mut spans = Vec::new();
    let mut at = FILE_HEADER_LEN;
    while at + header <= trace.len() {
        let clen = u32::from_le_bytes(trace[at..at + 4].try_into().unwrap()) as usize;
        let end = at + header + clen;
        assert!(end <= trace.len(), "not a whole trace");
        spans.push((at, end));
        at = end;
    }
    assert_eq!(at, trace.len(), "not a whole trace");
    spans
}

/// A character device to aim `-o` at: a `/dev/full` node of our own in
/// `dir` when we may make one (root), so that a leakhunt that deleted what
/// it was given would delete our node, not the system's; else `/dev/full`
/// itself (which a user who is not root cannot delete).
pub fn device_node(dir: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let p = dir.join("full.dev");
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).expect("a path without NUL");
    // SAFETY: a NUL-terminated path; mknod has no other preconditions.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 7)) };
    if r == 0 {
        p
    } else {
        PathBuf::from("/dev/full")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valgrind() {
        let s = "==1==   total heap usage: 476 allocs, 470 frees, 113,431 bytes allocated\n\
                 ==1==    definitely lost: 200 bytes in 1 blocks\n\
                 ==1==    indirectly lost: 300 bytes in 1 blocks\n";
        assert_eq!(
            parse_valgrind(s),
            Some(HeapUsage {
                allocs: 476,
                frees: 470,
                bytes: 113_431
            })
        );
        let l = parse_valgrind_leaks(s);
        assert_eq!(l["definitely_lost"], (200, 1));
        assert_eq!(l["indirectly_lost"], (300, 1));
    }

    #[test]
    fn parses_counts() {
        let c = counts("x\nchild: allocs=5 frees=2 bytes=5000 bad=0\n", "child:");
        assert_eq!(c["allocs"], 5);
        assert_eq!(c["bytes"], 5000);
    }

    #[test]
    fn finds_markers() {
        assert!(marker_line("entry_points.c", "leak_malloc") > 1);
    }
}
