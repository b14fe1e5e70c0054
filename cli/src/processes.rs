//! The traces of one run, as one unit: every process that was traced, how
//! each ended, and its leak summary in one line.
//!
//! A run's traces are its main trace `MAIN` (the first image of the process
//! `leakhunt run` started: `-o PATH`, or `leakhunt.<program>.<pid>.trace`)
//! and, beside it, `MAIN.<pid>` and `MAIN.<pid>.<n>` for every forked child
//! and exec'd image of it and of its descendants (the recorder names them so,
//! see `preload/src/output.rs`). Files of an earlier run under the same
//! name started before `MAIN` did and are left out.
//!
//! The images of one pid are one process: an exec chain (a pyenv shim is
//! `env`, `bash`, `env`, `bash`, ..., then the interpreter). Its last image
//! did the real work, and is the one summarized.
//!
//! Cheap with many children: each summary reads only what the recorder
//! wrote at the end of an image (`Model::load_summary`: its event chunks
//! are not even decompressed), several traces at once.

use crate::leaks::{self, Analysis, SuppressionSet};
use crate::model::Model;
use crate::report::plural;
use leakhunt_format::{EndReason, Origin, Record};
use std::path::{Path, PathBuf};

/// One trace of a run, from its first record.
#[derive(Debug, Clone)]
pub struct Image {
    pub path: PathBuf,
    pub pid: u32,
    pub ppid: u32,
    pub forked_from: Option<u32>,
    pub start_unix_ns: u64,
    pub argv: Vec<String>,
}

/// A traced process: its images in the order it exec'd them.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    pub images: Vec<Image>,
}

impl Process {
    /// The image that did the real work: the last one.
    pub fn last(&self) -> &Image {
        self.images.last().expect("a process has an image")
    }
}

/// The traces of one run: the process that was started first, then the
/// others in the order they started.
#[derive(Debug, Clone)]
pub struct Run {
    pub main: PathBuf,
    pub processes: Vec<Process>,
}

impl Run {
    pub fn traces(&self) -> usize {
        self.processes.iter().map(|p| p.images.len()).sum()
    }

    /// The process that was started first (the one `leakhunt run` waited for).
    pub fn root(&self) -> &Process {
        &self.processes[0]
    }
}

/// The first record of a trace, if it is a trace.
fn image(path: &Path) -> Option<Image> {
    let (_, mut r) = crate::model::open_reader(path).ok()?;
    let Ok(Some(Record::Process(p))) = r.next_record() else {
        return None;
    };
    Some(Image {
        path: path.to_path_buf(),
        pid: p.pid,
        ppid: p.ppid,
        forked_from: match p.origin {
            Origin::Fork { parent_pid } => Some(parent_pid),
            _ => None,
        },
        start_unix_ns: p.start_unix_ns,
        argv: p.argv,
    })
}

/// Is `rest` (what follows `MAIN`) `.<pid>` or `.<pid>.<n>`?
fn is_child_suffix(rest: &str) -> bool {
    let Some(rest) = rest.strip_prefix('.') else {
        return false;
    };
    let parts: Vec<&str> = rest.split('.').collect();
    parts.len() <= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The run whose main trace is `main`: `main` and the traces beside it
/// named `main.<pid>[.<n>]` that started no earlier than it.
pub fn find(main: &Path) -> Option<Run> {
    let first = image(main)?;
    let dir = match main.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = main.file_name()?.to_string_lossy().into_owned();
    let mut images = vec![first.clone()];
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = file.strip_prefix(&name) else {
                continue;
            };
            if !is_child_suffix(rest) || !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            if let Some(i) = image(&main.with_file_name(&file)) {
                if i.start_unix_ns >= first.start_unix_ns {
                    images.push(i);
                }
            }
        }
    }
    // Start times do not order them: a forked child's trace carries its
    // parent's start. Pids do, counted from the first process's (they wrap
    // at pid_max, after it).
    let root = first.pid;
    images[1..].sort_by_key(|i| (i.pid.wrapping_sub(root), i.start_unix_ns, i.path.clone()));
    // The images of one pid, in order, are one exec chain (a pid is not
    // reused within one run short of pid_max processes).
    let mut processes: Vec<Process> = Vec::new();
    for i in images {
        match processes.iter_mut().find(|p| p.pid == i.pid) {
            Some(p) => p.images.push(i),
            None => processes.push(Process {
                pid: i.pid,
                images: vec![i],
            }),
        }
    }
    Some(Run {
        main: main.to_path_buf(),
        processes,
    })
}

/// The run a trace belongs to, when it is part of one with other traces:
/// itself as the main trace, or the trace its name extends
/// (`MAIN.<pid>[.<n>]`) when that one's processes lead to it.
pub fn run_of(trace: &Path) -> Option<Run> {
    let name = trace.file_name()?.to_string_lossy().into_owned();
    // The shortest name first: `py.trace` before `py.trace.13804`.
    let mut candidates = Vec::new();
    let mut cut = name.as_str();
    while let Some((head, tail)) = cut.rsplit_once('.') {
        if tail.is_empty() || !tail.bytes().all(|b| b.is_ascii_digit()) {
            break;
        }
        candidates.push(head.to_string());
        cut = head;
    }
    for c in candidates.iter().rev() {
        let main = trace.with_file_name(c);
        if !main.is_file() {
            continue;
        }
        let Some(run) = find(&main) else { continue };
        if leads_to(&run, trace) {
            return Some(run);
        }
    }
    let run = find(trace)?;
    (run.traces() > 1).then_some(run)
}

/// Is `trace` one of the run's, by a chain of parents from the first process?
fn leads_to(run: &Run, trace: &Path) -> bool {
    let Some(p) = run
        .processes
        .iter()
        .find(|p| p.images.iter().any(|i| i.path == trace))
    else {
        return false;
    };
    let root = run.root().pid;
    let mut pid = p.pid;
    for _ in 0..run.processes.len() {
        if pid == root {
            return true;
        }
        match run.processes.iter().find(|q| q.pid == pid) {
            Some(q) => pid = q.images[0].ppid,
            None => return false,
        }
    }
    false
}

/// What the one line of a process says.
#[derive(Debug)]
pub struct Summary {
    pub pid: u32,
    pub program: String,
    pub trace: PathBuf,
    pub images: usize,
    /// The first image's program, when it exec'd.
    pub started_as: Option<String>,
    pub ending: String,
    /// The one-line leak summary, or why the trace could not be read.
    pub leaks: String,
    pub analysis: Option<Analysis>,
}

fn program_text(argv: &[String]) -> String {
    let s = argv.join(" ");
    if s.is_empty() {
        return "(unknown program)".into();
    }
    // A line per process: a long command line is cut, not wrapped.
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        return format!("{cut}...");
    }
    s
}

/// How an image ended, in a few words.
pub fn ending(model: &Model) -> String {
    match model.end.map(|e| e.reason) {
        // The last image of its process ended in an exec whose image wrote
        // no trace: one that was not recorded.
        Some(EndReason::Exec) => "exec'd a program that was not traced".into(),
        _ => crate::report::ending(model),
    }
}

/// The leak summary in one line: the lost kinds that are not zero (or "no
/// leaks"), then what is still reachable; without a scan, why, and what was
/// never freed.
pub fn leaks_line(model: &Model, a: &Analysis) -> String {
    let amount = |a: leaks::Amount| {
        format!(
            "{} in {}",
            plural(a.bytes, "byte", "bytes"),
            plural(a.blocks, "block", "blocks")
        )
    };
    if !a.scanned {
        if matches!(model.end.map(|e| e.reason), Some(EndReason::Exec)) {
            return format!("no leak scan; never freed: {}", amount(a.never_freed));
        }
        return format!(
            "no leak scan ({}); never freed: {}",
            crate::report::no_scan_reason(model),
            amount(a.never_freed)
        );
    }
    let lost: Vec<String> = [
        ("definitely lost", a.definitely_lost),
        ("indirectly lost", a.indirectly_lost),
        ("possibly lost", a.possibly_lost),
    ]
    .iter()
    .filter(|(_, x)| x.blocks > 0)
    .map(|(k, x)| format!("{k}: {}", amount(*x)))
    .collect();
    let mut s = if lost.is_empty() {
        "no leaks".to_string()
    } else {
        lost.join(", ")
    };
    if a.still_reachable.blocks > 0 {
        s += &format!(
            "; still reachable: {}",
            plural(a.still_reachable.bytes, "byte", "bytes")
        );
    }
    s
}

/// A process's summary from its last image's model and analysis.
pub fn summary_of(p: &Process, model: &Model, a: Analysis) -> Summary {
    let first = &p.images[0];
    Summary {
        pid: p.pid,
        program: program_text(&p.last().argv),
        trace: p.last().path.clone(),
        images: p.images.len(),
        started_as: (p.images.len() > 1).then(|| program_text(&first.argv)),
        ending: ending(model),
        leaks: leaks_line(model, &a),
        analysis: Some(a),
    }
}

fn summarize_one(p: &Process, supp: &SuppressionSet) -> Summary {
    match Model::load_summary(&p.last().path) {
        Ok(m) => {
            let mut stacks = crate::stacks::Stacks::new(&m);
            let a = leaks::analyze(&m, &mut stacks, supp);
            summary_of(p, &m, a)
        }
        Err(e) => Summary {
            pid: p.pid,
            program: program_text(&p.last().argv),
            trace: p.last().path.clone(),
            images: p.images.len(),
            started_as: None,
            ending: "unreadable trace".into(),
            leaks: e.to_string(),
            analysis: None,
        },
    }
}

/// Summaries of `processes` (in their order), read several at a time; a
/// process whose summary is already known is passed in `known`.
pub fn summarize(
    processes: &[Process],
    supp: &SuppressionSet,
    known: Option<Summary>,
) -> Vec<Summary> {
    let todo: Vec<usize> = (0..processes.len())
        .filter(|&i| known.as_ref().is_none_or(|k| k.pid != processes[i].pid))
        .collect();
    let mut out: Vec<Option<Summary>> = processes.iter().map(|_| None).collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(todo.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done: Vec<Vec<(usize, Summary)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    // A shell's children map the same libc and the same
                    // shell: their debug information is read once.
                    let _share = crate::symbolize::SharedModules::begin();
                    let mut mine = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&i) = todo.get(k) else { break };
                        mine.push((i, summarize_one(&processes[i], supp)));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    for (i, s) in done.into_iter().flatten() {
        out[i] = Some(s);
    }
    if let Some(k) = known {
        if let Some(i) = processes.iter().position(|p| p.pid == k.pid) {
            out[i] = Some(k);
        }
    }
    out.into_iter().flatten().collect()
}

/// The list a run's summary and `report` print: a heading, then one line
/// per process (`mark`: the pid of the one shown in full).
pub fn lines(run: &Run, summaries: &[Summary], mark: Option<u32>) -> Vec<String> {
    let name = run
        .main
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = vec![format!(
        "{} traced in this run, in {} beside {} ({name}.<pid>[.<n>]):",
        plural(summaries.len() as u64, "process", "processes"),
        plural(run.traces() as u64, "trace", "traces"),
        run.main.display(),
    )];
    let width = summaries
        .iter()
        .map(|s| s.pid.to_string().len())
        .max()
        .unwrap_or(1);
    for s in summaries {
        let chain = match &s.started_as {
            Some(first) => format!(
                " (after {} from {first})",
                plural(s.images as u64 - 1, "exec", "execs")
            ),
            None => String::new(),
        };
        let file = s
            .trace
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let marked = if mark == Some(s.pid) {
            ", in full below"
        } else {
            ""
        };
        out.push(format!(
            "  {:>width$} {}{chain}: {}; {} [{file}{marked}]",
            s.pid, s.program, s.ending, s.leaks
        ));
    }
    out
}

/// The leak kinds of `kinds` found in the processes other than `except`:
/// (pid, program) of each.
pub fn with_leaks(
    summaries: &[Summary],
    kinds: &[leakhunt_format::LeakKind],
    except: u32,
) -> Vec<(u32, String)> {
    summaries
        .iter()
        .filter(|s| s.pid != except)
        .filter(|s| {
            s.analysis
                .as_ref()
                .is_some_and(|a| a.scanned && kinds.iter().any(|k| a.amount(*k).blocks > 0))
        })
        .map(|s| (s.pid, s.program.clone()))
        .collect()
}

/// The section `leakhunt report` adds for a trace that is part of a run:
/// every process in a line, and where `trace` stands among them.
pub fn report_section(run: &Run, summaries: &[Summary], trace: &Path) -> String {
    let mut o = String::new();
    let this = run
        .processes
        .iter()
        .find(|p| p.images.iter().any(|i| i.path == trace));
    let mut lines = lines(run, summaries, None).into_iter();
    if let Some(head) = lines.next() {
        o += &format!("PROCESSES: {head}\n");
    }
    for l in lines {
        o += &l;
        o.push('\n');
    }
    if let Some(p) = this {
        let k = p.images.iter().position(|i| i.path == trace).unwrap_or(0);
        if k + 1 < p.images.len() {
            o += &format!(
                "This report is of image {} of {} of pid {} ({}); the program it became is in {} (leakhunt report {}).\n",
                k + 1,
                p.images.len(),
                p.pid,
                program_text(&p.images[k].argv),
                p.last().path.display(),
                p.last().path.display()
            );
        }
    }
    o += "\n";
    o
}

/// The same for JSON: `"run": {"main", "traces", "processes": [...]}`.
pub fn to_json(run: &Run, summaries: &[Summary]) -> serde_json::Value {
    let procs: Vec<serde_json::Value> = run
        .processes
        .iter()
        .zip(summaries)
        .map(|(p, s)| {
            let amounts = s.analysis.as_ref().map(|a| {
                serde_json::json!({
                    "scanned": a.scanned,
                    "definitely_lost": a.definitely_lost,
                    "indirectly_lost": a.indirectly_lost,
                    "possibly_lost": a.possibly_lost,
                    "still_reachable": a.still_reachable,
                    "suppressed": a.suppressed,
                    "never_freed": a.never_freed,
                })
            });
            serde_json::json!({
                "pid": p.pid,
                "ppid": p.images[0].ppid,
                "forked_from": p.images[0].forked_from,
                "argv": p.last().argv,
                "trace": p.last().path,
                "images": p.images.iter().map(|i| &i.path).collect::<Vec<_>>(),
                "ending": s.ending,
                "summary": s.leaks,
                "leaks": amounts,
            })
        })
        .collect();
    serde_json::json!({
        "main": run.main,
        "traces": run.traces(),
        "processes": procs,
    })
}
