//! Heap growth over time: two small TCP services (`programs/services/`) run
//! under `leakhunt run` and driven over loopback by a load generator in this
//! process, at a steady rate for about two seconds.
//!
//! * `leaky_server` appends every request's access-log record to a global
//!   list that is never trimmed (freed only at shutdown): no leak at exit,
//!   but the heap grows with every request. The report must say "growing"
//!   and name the `strdup` of the log line in `history_append` first.
//! * `cache_server` does the same work but keeps only the last 32 records
//!   in a ring: its heap is flat once the ring has filled.
//!
//! Everything is bounded: the servers give up by themselves after 5 s
//! without a connection (20 s in all), the load generator stops at
//! `BUDGET`, and the servers are killed (by pid) if a test fails.

use leakhunt_tests::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Requests per run, one per connection.
const REQUESTS: u32 = 800;
/// The pace of the load: `REQUESTS` of them take 2 s.
const INTERVAL: Duration = Duration::from_micros(2500);
/// Everything a test does with its service (start, load, exit) must be
/// over by then.
const BUDGET: Duration = Duration::from_secs(15);
/// The access-log line every record keeps, with its NUL
/// (`LOG_LINE_BYTES` in server_common.c).
const LOG_LINE_BYTES: u64 = 140;
/// `struct record` of server_common.c (x86-64 and aarch64 alike).
const RECORD_BYTES: u64 = 40;
/// The ring of cache_server.c.
const CACHE_SLOTS: u64 = 32;

/// `leakhunt run` of a server; kills it and the server on drop if still
/// running (a failed test must not leave them behind).
struct Running {
    child: Child,
    server_pid: Option<i32>,
    server_exe: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(pid) = self.server_pid {
            // Only if that pid is still our server (not a reused pid).
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            if exe.is_some_and(|e| e == self.server_exe) {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// What the load generator saw.
#[derive(Debug, Default)]
struct Load {
    sent: u32,
    answered: u32,
    connect_retries: u32,
    /// How far behind its schedule it fell at worst.
    max_lag: Duration,
    elapsed: Duration,
}

/// A finished run of a service.
struct ServiceRun {
    dir: TestDir,
    exe: PathBuf,
    out: Output,
    load: Load,
    report: Value,
    wall: Duration,
}

/// Sends request `id` to 127.0.0.1:`port` and checks the answer; retries
/// the connection (a server still starting, a full backlog) until `deadline`.
fn request(port: u16, id: u32, deadline: Instant, load: &mut Load) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                load.connect_retries += 1;
                if load.connect_retries % 50 == 1 {
                    eprintln!("connect to {addr} (request {id}): {e}; retrying");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("cannot connect to {addr} (request {id}): {e}")),
        }
    };
    let timeout = Some(Duration::from_secs(2));
    stream
        .set_read_timeout(timeout)
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(timeout)
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("GET /item/{id:06} leakhunt-load/1\n").as_bytes())
        .map_err(|e| format!("request {id}: write: {e}"))?;
    load.sent += 1;
    let mut answer = String::new();
    stream
        .take(256)
        .read_to_string(&mut answer)
        .map_err(|e| format!("request {id}: read: {e}"))?;
    if !answer.starts_with(&format!("200 {id:06} ")) {
        return Err(format!("request {id}: answer {answer:?}"));
    }
    load.answered += 1;
    Ok(())
}

/// Sends `REQUESTS` requests at a steady pace (each at its time on a fixed
/// schedule, so a late one does not delay the rest); stops at `deadline`
/// or when the server is gone.
fn drive(port: u16, running: &mut Running, deadline: Instant) -> Result<Load, String> {
    let mut load = Load::default();
    let start = Instant::now();
    for id in 0..REQUESTS {
        let due = start + INTERVAL * id;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else {
            load.max_lag = load.max_lag.max(now - due);
        }
        if Instant::now() > deadline {
            return Err(format!("load not done within {BUDGET:?}: {load:?}"));
        }
        if let Ok(Some(status)) = running.child.try_wait() {
            return Err(format!(
                "leakhunt run exited ({status}) during the load: {load:?}"
            ));
        }
        request(port, id, deadline, &mut load)?;
    }
    load.elapsed = start.elapsed();
    Ok(load)
}

/// Compiles `programs/services/<name>.c`, runs it under `leakhunt run`,
/// drives it with the load generator, waits for it to exit and reads the
/// report. `None`: no C compiler (skip).
fn run_service(name: &str) -> Option<ServiceRun> {
    let t0 = Instant::now();
    let deadline = t0 + BUDGET;
    let dir = TestDir::new(name);
    let src = format!("services/{name}.c");
    let exe = match try_compile(dir.path(), &src, name, &[]) {
        Ok(Some(p)) => p,
        Ok(None) => return None,
        Err(e) => panic!("{e}"),
    };
    let exe = exe.canonicalize().unwrap_or(exe);
    let trace = dir.join(format!("{name}.trace"));
    let child = leakhunt_cmd()
        .current_dir(dir.path())
        .arg("run")
        .arg("-o")
        .arg(&trace)
        .arg("--")
        .arg(&exe)
        .arg("0")
        .arg(REQUESTS.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn leakhunt run");
    let mut running = Running {
        child,
        server_pid: None,
        server_exe: exe.clone(),
    };
    let mut lines = LineWatcher::new(running.child.stdout.take().expect("stdout"));
    let hello = lines.wait_for("listening ", Duration::from_secs(8));
    let kv = key_values(&hello);
    let port = u16::try_from(kv["port"]).expect("a port");
    running.server_pid = Some(kv["pid"] as i32);

    let load = drive(port, &mut running, deadline).unwrap_or_else(|e| panic!("{name}: {e}"));
    let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(2);
    let out = finish(&mut running.child, &"leakhunt run", Instant::now(), left);
    let bye = lines.wait_for("served=", Duration::from_secs(5));
    let wall = t0.elapsed();
    eprintln!("{name}: {load:?}; {bye}; run took {wall:?}");
    assert_eq!(
        out.code(),
        Some(0),
        "{name}: leakhunt run's status; stderr:\n{}",
        out.stderr
    );
    let kv = key_values(&bye);
    assert_eq!(kv["served"], i64::from(REQUESTS), "{name}: {bye}");
    assert_eq!(load.answered, REQUESTS, "{name}: {load:?}");

    let report = report_json(&trace);
    assert_eq!(
        report["trace"]["complete"], true,
        "{name}: {}",
        report["trace"]
    );
    assert_eq!(report["trace"]["dropped_events"], 0, "{name}");
    assert_eq!(report["program"]["exit_code"], 0, "{name}");
    describe(name, &report);
    Some(ServiceRun {
        dir,
        exe,
        out,
        load,
        report,
        wall,
    })
}

/// The frames of a growth entry as "function file:line" strings.
fn stack_text(g: &Value) -> String {
    frames(g)
        .iter()
        .take(4)
        .map(|f| {
            let file = f["file"].as_str().unwrap_or("?");
            format!(
                "{} {}:{}",
                f["function"].as_str().unwrap_or("?"),
                file.rsplit('/').next().unwrap_or(file),
                f["line"]
            )
        })
        .collect::<Vec<_>>()
        .join(" < ")
}

/// Prints the verdict, its evidence and the growing call sites.
fn describe(name: &str, v: &Value) {
    let tl = &v["timeline"];
    eprintln!(
        "{name}: verdict {} over {} ms; evidence {}",
        tl["verdict"], tl["duration_ms"], tl["evidence"]
    );
    for (i, g) in growth(v).iter().enumerate().take(6) {
        eprintln!(
            "{name}: growth[{i}]: +{} bytes in {} blocks, share {:.3}, freed_at_exit {}: {}",
            g["bytes"],
            g["blocks"],
            g["share"].as_f64().unwrap_or(0.0),
            g["freed_at_exit"],
            stack_text(g)
        );
    }
}

fn growth(v: &Value) -> Vec<&Value> {
    v["growth"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// The verdict with its evidence, for assertion messages.
fn verdict_and_evidence(v: &Value) -> (Option<&str>, String) {
    let tl = &v["timeline"];
    (tl["verdict"].as_str(), tl["evidence"].to_string())
}

/// `leakhunt timeline TRACE -o curve.svg`: the SVG is written and its title
/// carries the report's verdict.
fn check_svg(run: &ServiceRun, name: &str) {
    let trace = run.dir.join(format!("{name}.trace"));
    let svg_path = run.dir.join(format!("{name}.svg"));
    let o = run_cmd(
        leakhunt_cmd()
            .arg("timeline")
            .arg(&trace)
            .arg("-o")
            .arg(&svg_path),
        TIMEOUT,
    );
    assert!(o.status.success(), "leakhunt timeline failed: {}", o.stderr);
    let svg = std::fs::read_to_string(&svg_path)
        .unwrap_or_else(|e| panic!("{}: {e}", svg_path.display()));
    assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
    let verdict = run.report["timeline"]["verdict"]
        .as_str()
        .expect("a verdict");
    let title = svg
        .lines()
        .find(|l| l.contains("live heap over time"))
        .unwrap_or_else(|| panic!("no title in the SVG:\n{}", &svg[..svg.len().min(2000)]));
    assert!(
        title.contains(&format!("live heap over time: {verdict} ")),
        "the SVG's title should carry the verdict {verdict:?}: {title}"
    );
    // The command line is under the title.
    assert!(svg.contains(&*run.exe.to_string_lossy()), "{title}");
}

/// Does the growth entry have a frame in function `function` of the server?
fn in_function(g: &Value, module: &str, function: &str) -> bool {
    frames(g)
        .iter()
        .any(|f| frame_in(f, module) && f["function"].as_str() == Some(function))
}

#[test]
fn leaky_server_grows() {
    let name = "leaky_server";
    let Some(run) = run_service(name) else {
        return;
    };
    let v = &run.report;
    let module = run.exe.to_string_lossy().into_owned();

    // Nothing leaks at exit: the history is freed at shutdown.
    assert_eq!(
        num(v, "leaks/definitely_lost/bytes"),
        0,
        "definitely lost: {}",
        v["leaks"]
    );
    assert!(
        !program_records(v)
            .iter()
            .any(|r| frames(r).iter().any(|f| frame_in(f, &module))),
        "a block of the server was never freed: {}",
        v["records"]
    );

    let (verdict, evidence) = verdict_and_evidence(v);
    assert_eq!(verdict, Some("growing"), "evidence: {evidence}");

    // The first growing call site is the strdup of the log line in
    // history_append, then the node's malloc beside it: one of each per
    // request, all freed only at shutdown.
    let g = growth(v);
    assert!(g.len() >= 2, "growth: {}", v["growth"]);
    let line = site_frame(g[0], &module)
        .unwrap_or_else(|| panic!("growth[0] has no frame in the server: {}", g[0]));
    assert_frame(
        line,
        "history_append",
        "leaky_server.c",
        marker_line("services/leaky_server.c", "history_line"),
    );
    assert_eq!(g[0]["freed_at_exit"], true, "growth[0]: {}", g[0]);
    let blocks = g[0]["blocks"].as_u64().unwrap_or(0);
    assert_eq!(
        g[0]["bytes"].as_u64(),
        Some(blocks * LOG_LINE_BYTES),
        "growth[0]: {}",
        g[0]
    );
    // Most of the requests happened between the first and the last
    // checkpoint (the last 2% of the run is left out).
    assert!(
        blocks >= u64::from(REQUESTS) * 3 / 4,
        "growth[0] has {blocks} blocks for {REQUESTS} requests: {}",
        g[0]
    );
    let node = site_frame(g[1], &module).expect("growth[1] in the server");
    assert_frame(
        node,
        "history_append",
        "leaky_server.c",
        marker_line("services/leaky_server.c", "history_node"),
    );
    assert_eq!(g[1]["freed_at_exit"], true, "growth[1]: {}", g[1]);
    // A checkpoint may fall between a node's malloc and its line's strdup.
    let nodes = g[1]["blocks"].as_u64().unwrap_or(0);
    assert!(nodes.abs_diff(blocks) <= 1, "growth[1]: {}", g[1]);
    assert_eq!(
        g[1]["bytes"].as_u64(),
        Some(nodes * RECORD_BYTES),
        "growth[1]: {}",
        g[1]
    );
    let share = g[0]["share"].as_f64().unwrap_or(0.0) + g[1]["share"].as_f64().unwrap_or(0.0);
    assert!(share > 0.8, "the history is most of the growth: {share}");

    // The text report says the same.
    let text = report_text(&run.trace_path(name));
    let heading = text
        .lines()
        .find(|l| l.starts_with("HEAP GROWTH:"))
        .unwrap_or_else(|| panic!("no HEAP GROWTH section:\n{text}"));
    assert!(heading.starts_with("HEAP GROWTH: growing "), "{heading}");
    assert!(
        text.contains("history_append") && text.contains("freed only at exit"),
        "{text}"
    );

    check_svg(&run, name);
    eprintln!(
        "{name}: wall {:?}, load {:?}, exit {:?} after the load",
        run.wall, run.load.elapsed, run.out.elapsed
    );
}

/// The bounded cache: its heap ends at exactly the ring's size, no growing
/// call site in the cache's code holds more than the ring, nothing leaks,
/// and the text report and the SVG agree with the JSON's verdict (whatever
/// it is: see `cache_server_is_steady` for why it is not asserted here).
#[test]
fn cache_server_heap_is_bounded() {
    let name = "cache_server";
    let Some(run) = run_service(name) else {
        return;
    };
    let v = &run.report;
    let module = run.exe.to_string_lossy().into_owned();
    assert_eq!(num(v, "leaks/definitely_lost/bytes"), 0, "{}", v["leaks"]);
    assert!(
        !program_records(v)
            .iter()
            .any(|r| frames(r).iter().any(|f| frame_in(f, &module))),
        "a block of the server was never freed: {}",
        v["records"]
    );

    // The minima rise from the empty heap at startup to the full ring, and
    // no further.
    let ring = CACHE_SLOTS * (LOG_LINE_BYTES + RECORD_BYTES);
    let (_, evidence) = verdict_and_evidence(v);
    assert_eq!(
        v["timeline"]["evidence"]["floor_bytes"].as_u64(),
        Some(ring),
        "the floor should end at the full ring ({ring} bytes): {evidence}"
    );
    for g in growth(v) {
        if in_function(g, &module, "cache_put") {
            assert!(
                g["bytes"].as_u64().unwrap_or(0) <= ring,
                "a growth entry in the cache's code beyond its ring ({ring} bytes): {g}"
            );
        }
    }

    let verdict = v["timeline"]["verdict"].as_str().expect("a verdict");
    let text = report_text(&run.trace_path(name));
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("HEAP GROWTH: {verdict} "))),
        "the text report should say {verdict:?}:\n{text}"
    );
    check_svg(&run, name);
    eprintln!(
        "{name}: wall {:?}, load {:?}, exit {:?} after the load",
        run.wall, run.load.elapsed, run.out.elapsed
    );
}

/// A ring of 32 records (5,760 bytes) that fills in the first ~80 ms of the
/// load and stays flat: "steady" (a step far under the 64 KiB a step must
/// reach), wherever the fill falls against the windows.
#[test]
fn cache_server_is_steady() {
    let name = "cache_server";
    let Some(run) = run_service(name) else {
        return;
    };
    let (verdict, evidence) = verdict_and_evidence(&run.report);
    assert_eq!(verdict, Some("steady"), "evidence: {evidence}");
    check_svg(&run, name);
}

impl ServiceRun {
    fn trace_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.trace"))
    }
}
