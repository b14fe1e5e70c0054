//! `leakhunt report`: the model, explained — as text for people and as the JSON
//! object SPEC.md fixes for machines.

use crate::model::Model;
use crate::stacks::{allocation_site, frame_name, language_name, module_short, Stacks};
use leakhunt_format::{Cut, EndReason, Origin};
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt::Write as _;

pub struct Options {
    /// Loss records to show (0: all).
    pub limit: usize,
    /// Frames per stack to show (0: all).
    pub depth: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limit: 25,
            depth: 24,
        }
    }
}

#[derive(Serialize)]
struct JsonFrame {
    function: Option<String>,
    file: Option<String>,
    line: Option<u32>,
    module: String,
    address: String,
    language: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    inlined: bool,
}

/// A group of never-freed blocks that share an allocation stack.
pub struct LossRecord {
    pub kind: &'static str,
    pub stack: u64,
    pub bytes: u64,
    pub blocks: u64,
}

pub fn loss_records(model: &Model) -> Vec<LossRecord> {
    model
        .leaked_by_stack()
        .into_iter()
        .map(|(stack, bytes, blocks)| LossRecord {
            kind: "never_freed",
            stack,
            bytes,
            blocks,
        })
        .collect()
}

/// A short description of how the process ended.
pub fn ending(model: &Model) -> String {
    if let Some(EndReason::Exec) = model.end.map(|e| e.reason) {
        return "replaced itself with exec (the new image has its own trace)".into();
    }
    if let Some((code, signal)) = model.exit_status {
        if let Some(s) = signal {
            return format!("was killed by signal {s} ({})", signal_name(s));
        }
        if let Some(c) = code {
            return format!("exited with status {c}");
        }
    }
    match model.end.map(|e| e.reason) {
        Some(EndReason::Exit { code }) => format!("exited with status {code}"),
        Some(EndReason::QuickExit { code }) => {
            format!("called _exit({code}) (no atexit handlers ran)")
        }
        Some(EndReason::Abort) => "aborted".into(),
        Some(EndReason::Exec) => {
            "replaced itself with exec (the new image has its own trace)".into()
        }
        None => "did not finish its trace (killed or crashed)".into(),
    }
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "signal",
    }
}

fn cut_text(cut: &Cut) -> String {
    match cut {
        Cut::Truncated { offset } => {
            format!("the trace is cut short at byte {offset} (the process was killed, or the disk filled); what came before is complete")
        }
        Cut::Damaged { offset, why } => {
            format!("the trace is damaged at byte {offset} ({why}); only what came before is shown")
        }
    }
}

fn frame_json(f: &crate::symbolize::Frame) -> JsonFrame {
    JsonFrame {
        function: f.function.clone(),
        file: f.file.clone(),
        line: f.line,
        module: f.module.clone(),
        address: format!("{:#x}", f.address),
        language: language_name(f.language),
        inlined: f.inlined,
    }
}

pub fn to_json(model: &Model, opts: &Options) -> Value {
    let mut stacks = Stacks::new(model);
    let records = loss_records(model);
    let shown = if opts.limit == 0 {
        records.len()
    } else {
        records.len().min(opts.limit)
    };
    let recs: Vec<Value> = records[..shown]
        .iter()
        .map(|r| {
            let all = stacks.frames(r.stack);
            let frames = &all[allocation_site(&all)..];
            let depth = if opts.depth == 0 {
                frames.len()
            } else {
                frames.len().min(opts.depth)
            };
            json!({
                "kind": r.kind,
                "bytes": r.bytes,
                "blocks": r.blocks,
                "indirect_bytes": 0,
                "stack": frames[..depth].iter().map(frame_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    let p = model.process.as_ref();
    let t = &model.totals;
    let zero = json!({"bytes": 0, "blocks": 0});
    json!({
        "format_version": 1,
        "program": {
            "pid": p.map(|p| p.pid),
            "ppid": p.map(|p| p.ppid),
            "argv": p.map(|p| p.argv.clone()).unwrap_or_default(),
            "exe": p.map(|p| p.exe.clone()),
            "exit_code": model.exit_code(),
            "signal": model.exit_signal(),
            "forked_from": p.and_then(|p| match p.origin { Origin::Fork { parent_pid } => Some(parent_pid), _ => None }),
            "ending": ending(model),
        },
        "totals": {
            "allocations": t.allocations,
            "frees": t.frees,
            "allocated_bytes": t.allocated_bytes,
            "peak_bytes": t.peak_bytes,
            "peak_time_ms": t.peak_time_us as f64 / 1000.0,
            "live_blocks_at_end": t.live_blocks_at_end,
            "live_bytes_at_end": t.live_bytes_at_end,
            "inherited_blocks": t.inherited_blocks,
            "inherited_bytes": t.inherited_bytes,
            "mmaps": t.mmaps,
            "munmaps": t.munmaps,
            "peak_rss_bytes": model.peak_rss,
            "by_function": t.by_function,
        },
        "leaks": {
            "scanned": false,
            "never_freed": {"bytes": t.live_bytes_at_end, "blocks": t.live_blocks_at_end},
            "definitely_lost": zero, "indirectly_lost": zero, "possibly_lost": zero,
            "still_reachable": zero, "suppressed": zero,
        },
        "records": recs,
        "records_total": records.len(),
        "trace": {
            "complete": model.end.is_some() && model.cut.is_none(),
            "cut": model.cut.as_ref().map(cut_text),
            "duration_ms": model.duration_us as f64 / 1000.0,
            "threads": model.threads,
            "anomalies": model.end.map(|e| e.anomalies),
            "unknown_frees": model.end.map(|e| e.unknown_frees),
            "dropped_events": model.end.map(|e| e.dropped),
            "inconsistencies": model.inconsistencies,
            "file_bytes": model.file_bytes,
            "bytes_per_event": bytes_per_event(model),
        },
        "warnings": stacks.warnings(),
    })
}

pub fn bytes_per_event(model: &Model) -> f64 {
    let events = model.totals.allocations + model.totals.frees;
    if events == 0 {
        0.0
    } else {
        model.file_bytes as f64 / events as f64
    }
}

/// 1234567 -> "1,234,567"
pub fn commas(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", commas(n), if n == 1 { one } else { many })
}

pub fn program_line(model: &Model) -> String {
    let p = model.process.as_ref();
    let argv = p
        .map(|p| p.argv.join(" "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "(unknown program)".into());
    let pid = p.map(|p| p.pid.to_string()).unwrap_or_else(|| "?".into());
    let forked = match p.map(|p| p.origin) {
        Some(Origin::Fork { parent_pid }) => format!(", forked from {parent_pid}"),
        _ => String::new(),
    };
    format!("{argv} (pid {pid}{forked}) {}", ending(model))
}

pub fn to_text(model: &Model, opts: &Options) -> String {
    let mut o = String::new();
    let t = &model.totals;
    let _ = writeln!(o, "leakhunt report: {}", program_line(model));
    if let Some(cut) = &model.cut {
        let _ = writeln!(o, "warning: {}", cut_text(cut));
    } else if model.end.is_none() {
        let _ = writeln!(o, "warning: the trace has no end record: the process was killed or crashed; the last ~100 ms may be missing");
    }
    let _ = writeln!(
        o,
        "duration {:.3} s, {}",
        model.duration_us as f64 / 1e6,
        plural(model.threads.max(1), "thread", "threads")
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "HEAP SUMMARY:");
    let _ = writeln!(
        o,
        "    total heap usage: {}, {}, {} allocated",
        plural(t.allocations, "alloc", "allocs"),
        plural(t.frees, "free", "frees"),
        plural(t.allocated_bytes, "byte", "bytes")
    );
    let _ = writeln!(
        o,
        "    peak: {} live, at {:.3} s",
        plural(t.peak_bytes, "byte", "bytes"),
        t.peak_time_us as f64 / 1e6
    );
    if t.inherited_blocks > 0 {
        let _ = writeln!(
            o,
            "    inherited from the parent at fork: {} in {}",
            plural(t.inherited_bytes, "byte", "bytes"),
            plural(t.inherited_blocks, "block", "blocks")
        );
    }
    let _ = writeln!(
        o,
        "    in use at exit: {} in {}",
        plural(t.live_bytes_at_end, "byte", "bytes"),
        plural(t.live_blocks_at_end, "block", "blocks")
    );
    if let Some(e) = model.end {
        if e.anomalies > 0 || e.dropped > 0 {
            let _ = writeln!(
                o,
                "    recorder: {} ordering anomalies, {} dropped events",
                commas(e.anomalies),
                commas(e.dropped)
            );
        }
    }
    let _ = writeln!(o);

    let records = loss_records(model);
    let mut stacks = Stacks::new(model);
    let n = records.len();
    let shown = if opts.limit == 0 {
        n
    } else {
        n.min(opts.limit)
    };
    for (i, r) in records[..shown].iter().enumerate() {
        let _ = writeln!(
            o,
            "{} in {} never freed in loss record {} of {}",
            plural(r.bytes, "byte", "bytes"),
            plural(r.blocks, "block", "blocks"),
            i + 1,
            n
        );
        let all = stacks.frames(r.stack);
        let frames = &all[allocation_site(&all)..];
        let depth = if opts.depth == 0 {
            frames.len()
        } else {
            frames.len().min(opts.depth)
        };
        for (k, f) in frames[..depth].iter().enumerate() {
            let lead = if k == 0 { "at" } else { "by" };
            let mut line = format!("   {lead} {}", frame_name(f));
            if let (Some(file), Some(l)) = (&f.file, f.line) {
                let _ = write!(line, " ({}:{l})", file.rsplit('/').next().unwrap_or(file));
            } else if f.function.is_some() && !f.module.is_empty() && f.module != "?" {
                let _ = write!(line, " (in {})", module_short(&f.module));
            }
            if f.inlined {
                line.push_str(" [inlined]");
            }
            let _ = writeln!(o, "{line}");
        }
        if frames.len() > depth {
            let _ = writeln!(o, "   ... {} more frames", frames.len() - depth);
        }
        if frames.is_empty() {
            let _ = writeln!(o, "   (no stack recorded)");
        }
        let _ = writeln!(o);
    }
    if shown < n {
        let _ = writeln!(
            o,
            "... {} more loss records (--limit 0 shows all)\n",
            n - shown
        );
    }
    let _ = writeln!(o, "LEAK SUMMARY:");
    let _ = writeln!(
        o,
        "    never freed: {} in {}",
        plural(t.live_bytes_at_end, "byte", "bytes"),
        plural(t.live_blocks_at_end, "block", "blocks")
    );
    let _ = writeln!(
        o,
        "    (leak kinds need the exit scan, which this trace does not have)"
    );
    for w in stacks.warnings() {
        let _ = writeln!(o, "warning: {w}");
    }
    o
}
