//! `leakhunt report`: the model, explained — as text for people and as the JSON
//! object SPEC.md fixes for machines.

use crate::leaks::{analyze, Amount, Analysis, LossRecord, RecordKind, Suppressor, HEURISTICS};
use crate::model::Model;
use crate::shown;
use crate::stacks::{frame_name, language_name, site_line, Stacks};
use crate::symbolize::Language;
use leakhunt_format::{Cut, EndReason, LeakKind, Origin};
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt::Write as _;

pub struct Options {
    /// Loss records (and growing sites) to show, as `--limit` says: `Some(0)`
    /// all, `Some(n)` up to `n`; `None` is each view's default (JSON: all;
    /// text and HTML: the long tail folded, see `shown::records_shown`).
    pub limit: Option<usize>,
    /// Frames per stack to show (0: all).
    pub depth: usize,
    /// Leak kinds whose records are shown (memcheck's default: definite, possible).
    pub show: Vec<LeakKind>,
    /// Print a ready valgrind suppression after each shown record.
    pub gen_suppressions: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limit: None,
            depth: 24,
            show: vec![LeakKind::DefinitelyLost, LeakKind::PossiblyLost],
            gen_suppressions: false,
        }
    }
}

#[derive(Serialize)]
struct JsonFrame {
    function: Option<String>,
    file: Option<String>,
    line: Option<u32>,
    /// Native frames only: a Python frame has no module or address.
    #[serde(skip_serializing_if = "Option::is_none")]
    module: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    language: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    inlined: bool,
}

/// The JSON report: every key but the loss records as a `Value`, the
/// records serialized straight from the analysis.
pub struct JsonReport {
    pub head: Value,
    records: Vec<RecordJson>,
}

impl Serialize for JsonReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Value::Object(head) = &self.head else {
            return self.head.serialize(s);
        };
        let mut m = s.serialize_map(Some(head.len()))?;
        for (k, v) in head {
            if k == "records" {
                m.serialize_entry(k, &self.records)?;
            } else {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

#[derive(Serialize)]
struct RecordJson {
    kind: &'static str,
    bytes: u64,
    blocks: u64,
    indirect_bytes: u64,
    indirect_blocks: u64,
    total_bytes: u64,
    allocated_by: &'static str,
    stack: StackJson,
}

/// A record's frames, converted one at a time as they are written.
struct StackJson {
    frames: std::rc::Rc<Vec<crate::symbolize::Frame>>,
    depth: usize,
}

impl Serialize for StackJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            shown_frames(&self.frames, self.depth)
                .iter()
                .map(frame_json),
        )
    }
}

/// What the numbers of a Python program mean, given its object allocator.
pub fn python_note(py: &crate::model::PythonInfo) -> String {
    let frames = if py.frames {
        ""
    } else {
        " Python frames were not read (this version has no layout table): stacks are native only."
    };
    let allocator = match py.allocator.as_str() {
        "pymalloc-recorded" => "Python's own allocator (pymalloc), wrapped by leakhunt: every object \
             allocation is recorded at the size asked for, as the program runs without leakhunt. \
             pymalloc's arenas are not blocks of their own (nor roots of the leak scan); RSS includes \
             their slack."
            .to_string(),
        "malloc" | "malloc_debug" => "PYTHONMALLOC=malloc: every object allocation is a malloc and is recorded. \
             Under Python's default allocator (pymalloc), which leakhunt records as well, the program \
             is faster and its RSS differs by the arenas' slack; which objects are live, and where \
             they were allocated, is the same."
            .to_string(),
        other => format!(
            "{}: objects of 512 bytes or less come from pymalloc's arenas and are not seen one by one \
             (an arena's allocation is attributed to whichever object needed a new one); \
             run without PYTHONMALLOC (leakhunt then records each object) or with PYTHONMALLOC=malloc.",
            if other == "pymalloc" {
                "Python's default allocator (pymalloc), not wrapped (the interpreter was not found at start)".to_string()
            } else {
                format!("PYTHONMALLOC={other}{}", if other == "debug" { " (or -X dev)" } else { "" })
            }
        ),
    };
    format!("{allocator}{frames}")
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

pub fn cut_text(cut: &Cut) -> String {
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
        function: f.function.as_deref().map(str::to_string),
        file: f.file.as_deref().map(str::to_string),
        line: f.line,
        module: (f.language != Language::Python).then(|| f.module.to_string()),
        address: (f.language != Language::Python).then(|| format!("{:#x}", f.address)),
        language: language_name(f.language),
        inlined: f.inlined,
    }
}

fn amount_json(a: Amount) -> Value {
    json!({"bytes": a.bytes, "blocks": a.blocks})
}

/// The loss records a list for people shows: the unsuppressed ones of the
/// kinds asked for, each with its index among all `of` unsuppressed ones,
/// the first `limit` in full and the rest folded into one line.
pub struct ShownRecords<'a> {
    pub of: usize,
    pub shown: Vec<(usize, &'a LossRecord)>,
    pub limit: usize,
}

pub fn shown_records<'a>(a: &'a Analysis, opts: &Options) -> ShownRecords<'a> {
    let live: Vec<&LossRecord> = a
        .records
        .iter()
        .filter(|r| r.suppressed_by.is_none())
        .collect();
    let shown: Vec<(usize, &LossRecord)> = live
        .iter()
        .enumerate()
        .filter(|(_, r)| match r.kind {
            RecordKind::NeverFreed => true,
            RecordKind::Leak(k) => opts.show.contains(&k),
        })
        .map(|(i, r)| (i, *r))
        .collect();
    let bytes: Vec<u64> = shown.iter().map(|(_, r)| r.total_bytes()).collect();
    let limit = shown::records_shown(&bytes, opts.limit);
    ShownRecords {
        of: live.len(),
        shown,
        limit,
    }
}

/// How many frames a view would show beyond the `n` printed (`--depth`).
pub fn frames_beyond(all: &[crate::symbolize::Frame], n: usize) -> usize {
    crate::stacks::shown(all).len().saturating_sub(n)
}

/// `--gen-suppressions`' entry for loss record `i` (0-based), a leak's only.
pub fn suppression(r: &LossRecord, i: usize, all: &[crate::symbolize::Frame]) -> Option<String> {
    match r.kind {
        RecordKind::Leak(k) => Some(crate::suppress::generate(
            &format!("<leakhunt_record_{}>", i + 1),
            k,
            r.func.name(),
            all,
        )),
        RecordKind::NeverFreed => None,
    }
}

/// The frames of a stack a report shows: from the allocation site to
/// `main` (`stacks::shown`), at most `depth` (0: all).
pub fn shown_frames(all: &[crate::symbolize::Frame], depth: usize) -> &[crate::symbolize::Frame] {
    let frames = crate::stacks::shown(all);
    let n = if depth == 0 {
        frames.len()
    } else {
        frames.len().min(depth)
    };
    &frames[..n]
}

pub fn to_json(model: &Model, opts: &Options, supp: &dyn Suppressor) -> JsonReport {
    let mut stacks = Stacks::new(model);
    let a = analyze(model, &mut stacks, supp);
    let live: Vec<&LossRecord> = a
        .records
        .iter()
        .filter(|r| r.suppressed_by.is_none())
        .collect();
    let shown = match opts.limit {
        None | Some(0) => live.len(),
        Some(n) => live.len().min(n),
    };
    let records: Vec<RecordJson> = live[..shown]
        .iter()
        .map(|r| RecordJson {
            kind: r.kind.name(),
            bytes: r.bytes,
            blocks: r.blocks,
            indirect_bytes: r.indirect_bytes,
            indirect_blocks: r.indirect_blocks,
            total_bytes: r.total_bytes(),
            allocated_by: r.func.name(),
            stack: StackJson {
                frames: stacks.frames(r.stack),
                depth: opts.depth,
            },
        })
        .collect();
    let p = model.process.as_ref();
    let t = &model.totals;
    let heuristics: serde_json::Map<String, Value> = HEURISTICS
        .iter()
        .zip(a.via_heuristic.iter())
        .map(|(n, amt)| (n.to_string(), amount_json(*amt)))
        .collect();
    let head = json!({
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
            "python": model.python.as_ref().map(|py| json!({
                "version": py.version,
                "frames": py.frames,
                "allocator": py.allocator,
                "note": python_note(py),
            })),
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
            "scanned": a.scanned,
            "definitely_lost": amount_json(a.definitely_lost),
            "indirectly_lost": amount_json(a.indirectly_lost),
            "possibly_lost": amount_json(a.possibly_lost),
            "still_reachable": amount_json(a.still_reachable),
            "suppressed": amount_json(a.suppressed),
            "never_freed": amount_json(a.never_freed),
            "reachable_via_heuristic": heuristics,
            "hidden_by_builtin_suppressions": amount_json(a.builtin_hidden),
            "scan": model.scan.map(|s| json!({
                "blocks": s.blocks,
                "root_bytes": s.root_bytes,
                "threads": s.threads,
                "threads_missed": s.threads_missed,
                "duration_ms": s.duration_us as f64 / 1000.0,
                "freeres": s.freeres,
            })),
            "why_not_scanned": (!a.scanned).then(|| no_scan_reason(model)),
        },
        // Streamed by `JsonReport`: tens of thousands of deep stacks as a
        // `Value` tree took gigabytes.
        "records": [],
        "records_total": live.len(),
        "timeline": timeline_json(model),
        "growth": growth_json(model, &mut stacks, opts),
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
            // What the recorder counted itself (and `leakhunt run` prints
            // without a replay); equal to `totals` for a complete trace.
            "recorded_totals": model.recorded_totals.as_ref().map(|t| json!({
                "allocations": t.allocations,
                "frees": t.frees,
                "allocated_bytes": t.allocated_bytes,
                "peak_bytes": t.peak_bytes,
                "live_blocks_at_end": t.live_blocks,
                "live_bytes_at_end": t.live_bytes,
            })),
        },
        "warnings": stacks.warnings(),
    });
    JsonReport { head, records }
}

fn timeline_json(model: &Model) -> Value {
    let (v, e) = crate::timeline::verdict(&model.timeline, model.duration_us);
    json!({
        "verdict": v.name(),
        "duration_ms": model.duration_us as f64 / 1000.0,
        "evidence": e,
    })
}

fn growth_json(model: &Model, stacks: &mut Stacks, opts: &Options) -> Value {
    let g = crate::timeline::growth(&model.timeline, model.duration_us);
    let n = match opts.limit {
        None | Some(0) => g.len(),
        Some(n) => g.len().min(n),
    };
    Value::Array(
        g[..n]
            .iter()
            .map(|g| {
                let all = stacks.frames(g.stack);
                json!({
                    "bytes": g.bytes,
                    "blocks": g.blocks,
                    "share": g.share,
                    "freed_at_exit": g.freed_at_exit,
                    // The line the text report shows: the program's own frame first.
                    "site": site_line(&all, 3),
                    "checkpoints": g.checkpoints.iter().map(|(ms, b)| json!({"ms": ms, "bytes": b})).collect::<Vec<_>>(),
                    "stack": shown_frames(&all, opts.depth).iter().map(frame_json).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// The verdict and the growing call sites, for the text report.
fn growth_text(model: &Model, stacks: &mut Stacks, opts: &Options, o: &mut String) {
    let (v, e) = crate::timeline::verdict(&model.timeline, model.duration_us);
    let _ = writeln!(o, "HEAP GROWTH: {} ({})", v.name(), e.reason);
    let growth = crate::timeline::growth(&model.timeline, model.duration_us);
    let sites = shown::growth_sites(&growth, stacks);
    // A handful of sites that matter; the long tail in one line.
    let n = shown::sites_shown(&sites, opts.limit);
    for s in &sites[..n] {
        let _ = writeln!(
            o,
            "   +{} in {} ({:.0}% of the growth){}: {}",
            plural(s.bytes, "byte", "bytes"),
            plural(s.blocks, "block", "blocks"),
            s.share * 100.0,
            if s.freed_at_exit {
                ", freed only at exit"
            } else {
                ""
            },
            s.line
        );
    }
    if let Some(line) = sites_fold_line(&sites[n..]) {
        let _ = writeln!(o, "   {line}");
    }
    let _ = writeln!(o);
}

/// "… and 3 smaller sites, +1,234 bytes in 56 blocks (--limit 0 shows all)"
/// for the growing sites a view folds.
pub fn sites_fold_line(rest: &[shown::GrowthSite]) -> Option<String> {
    if rest.is_empty() {
        return None;
    }
    Some(format!(
        "\u{2026} and {} smaller {}, +{} in {} (--limit 0 shows all)",
        commas(rest.len() as u64),
        if rest.len() == 1 { "site" } else { "sites" },
        plural(rest.iter().map(|s| s.bytes).sum(), "byte", "bytes"),
        plural(rest.iter().map(|s| s.blocks).sum(), "block", "blocks"),
    ))
}

/// "… and 12 smaller loss records, 96 bytes in 12 blocks (--limit 0 shows
/// all)" for the loss records a view folds.
pub fn records_fold_line(rest: &[(usize, &LossRecord)]) -> Option<String> {
    if rest.is_empty() {
        return None;
    }
    Some(format!(
        "\u{2026} and {} smaller loss {}, {} in {} (--limit 0 shows all)",
        commas(rest.len() as u64),
        if rest.len() == 1 { "record" } else { "records" },
        plural(
            rest.iter().map(|(_, r)| r.total_bytes()).sum(),
            "byte",
            "bytes"
        ),
        plural(rest.iter().map(|(_, r)| r.blocks).sum(), "block", "blocks"),
    ))
}

/// Why a trace has no leak kinds.
pub fn no_scan_reason(model: &Model) -> String {
    match model.end.map(|e| e.reason) {
        Some(EndReason::Exit { .. }) => {
            "the leak scan was turned off (LEAKHUNT_SCAN=0) or could not run".into()
        }
        Some(EndReason::Exec) => "the process image was replaced by exec".into(),
        // dash and other shells end this way: there is no exit() to scan at.
        Some(EndReason::QuickExit { code }) => {
            format!("the process ended with _exit({code}), which runs no exit handlers")
        }
        Some(EndReason::Abort) => "the process did not exit normally: it aborted".into(),
        _ => "the process did not exit normally".into(),
    }
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

fn amount_text(a: Amount) -> String {
    format!(
        "{} in {}",
        plural(a.bytes, "byte", "bytes"),
        plural(a.blocks, "block", "blocks")
    )
}

/// memcheck's LEAK SUMMARY (or the never-freed total without a scan).
pub fn leak_summary(model: &Model, a: &Analysis) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "LEAK SUMMARY:");
    if !a.scanned {
        let _ = writeln!(o, "    no leak scan: {}", no_scan_reason(model));
        let _ = writeln!(o, "    never freed: {}", amount_text(a.never_freed));
        return o;
    }
    let _ = writeln!(o, "   definitely lost: {}", amount_text(a.definitely_lost));
    let _ = writeln!(o, "   indirectly lost: {}", amount_text(a.indirectly_lost));
    let _ = writeln!(o, "     possibly lost: {}", amount_text(a.possibly_lost));
    let _ = writeln!(o, "   still reachable: {}", amount_text(a.still_reachable));
    if a.via_heuristic.iter().any(|h| h.blocks > 0) {
        let _ = writeln!(o, "                      of which reachable via heuristic:");
        for (name, h) in HEURISTICS.iter().zip(a.via_heuristic.iter()) {
            if h.blocks > 0 {
                let _ = writeln!(o, "                        {name:<19}: {}", amount_text(*h));
            }
        }
    }
    let _ = writeln!(o, "        suppressed: {}", amount_text(a.suppressed));
    if a.builtin_hidden.blocks > 0 {
        let _ = writeln!(
            o,
            "   (of which {} hidden by the built-in list of runtime noise; --no-builtin-suppressions shows them)",
            amount_text(a.builtin_hidden)
        );
    }
    o
}

/// memcheck's line for a loss record: "N bytes in M blocks are definitely
/// lost in loss record i of n".
pub fn record_headline(r: &LossRecord, i: usize, n: usize) -> String {
    let kind = r.kind.describe();
    let size = if r.indirect_bytes > 0 {
        format!(
            "{} ({} direct, {} indirect) bytes",
            commas(r.total_bytes()),
            commas(r.bytes),
            commas(r.indirect_bytes)
        )
    } else {
        plural(r.bytes, "byte", "bytes")
    };
    let blocks = plural(r.blocks, "block", "blocks");
    match r.kind {
        RecordKind::NeverFreed => {
            format!("{size} in {blocks} never freed in loss record {i} of {n}")
        }
        RecordKind::Leak(_) => {
            let verb = if r.blocks == 1 { "is" } else { "are" };
            format!("{size} in {blocks} {verb} {kind} in loss record {i} of {n}")
        }
    }
}

pub fn to_text(model: &Model, opts: &Options, supp: &dyn Suppressor) -> String {
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
    if let Some(py) = &model.python {
        let _ = writeln!(o, "python {}: {}", py.version, python_note(py));
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "HEAP SUMMARY:");
    let _ = writeln!(
        o,
        "    in use at exit: {} in {}",
        plural(t.live_bytes_at_end, "byte", "bytes"),
        plural(t.live_blocks_at_end, "block", "blocks")
    );
    let _ = writeln!(
        o,
        "  total heap usage: {}, {}, {} allocated",
        plural(t.allocations, "alloc", "allocs"),
        plural(t.frees, "free", "frees"),
        plural(t.allocated_bytes, "byte", "bytes")
    );
    let _ = writeln!(
        o,
        "              peak: {} live, at {:.3} s",
        plural(t.peak_bytes, "byte", "bytes"),
        t.peak_time_us as f64 / 1e6
    );
    if t.inherited_blocks > 0 {
        let _ = writeln!(
            o,
            "  inherited at fork: {} in {}",
            plural(t.inherited_bytes, "byte", "bytes"),
            plural(t.inherited_blocks, "block", "blocks")
        );
    }
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
    if let Some(scan) = model.scan {
        if scan.threads_missed > 0 {
            let _ = writeln!(
                o,
                "warning: {} did not stop for the leak scan; their stacks were not scanned",
                plural(scan.threads_missed as u64, "thread", "threads")
            );
        }
    }
    let _ = writeln!(o);

    let mut stacks = Stacks::new(model);
    let a = analyze(model, &mut stacks, supp);
    let ShownRecords {
        of: n,
        shown,
        limit,
    } = shown_records(&a, opts);
    for &(i, r) in &shown[..limit] {
        let _ = writeln!(o, "{}", record_headline(r, i + 1, n));
        let all = stacks.frames(r.stack);
        let frames = shown_frames(&all, opts.depth);
        for (k, f) in frames.iter().enumerate() {
            let lead = if k == 0 { "at" } else { "by" };
            let mut line = format!("   {lead} {}", frame_name(f));
            if let Some(place) = shown::frame_place(f) {
                let _ = write!(line, " ({place})");
            }
            if f.inlined {
                line.push_str(" [inlined]");
            }
            let _ = writeln!(o, "{line}");
        }
        let more = frames_beyond(&all, frames.len());
        if more > 0 {
            let _ = writeln!(o, "   ... {more} more frames (--depth 0 shows all)");
        }
        if all.is_empty() {
            let _ = writeln!(o, "   (no stack recorded)");
        }
        if opts.gen_suppressions {
            if let Some(supp) = suppression(r, i, &all) {
                let _ = write!(o, "{supp}");
            }
        }
        let _ = writeln!(o);
    }
    if let Some(line) = records_fold_line(&shown[limit..]) {
        let _ = writeln!(o, "{line}\n");
    }
    if a.scanned && n == 0 {
        let _ = writeln!(o, "All heap blocks were freed -- no leaks are possible\n");
    }
    growth_text(model, &mut stacks, opts, &mut o);
    o.push_str(&leak_summary(model, &a));
    if a.scanned {
        let hidden: Vec<&str> = [LeakKind::IndirectlyLost, LeakKind::StillReachable]
            .into_iter()
            .filter(|k| !opts.show.contains(k) && a.amount(*k).blocks > 0)
            .map(|k| match k {
                LeakKind::IndirectlyLost => "indirectly lost",
                _ => "still reachable",
            })
            .collect();
        if !hidden.is_empty() {
            let _ = writeln!(
                o,
                "Records of {} blocks are not shown: use --show all to see them.",
                hidden.join(" and ")
            );
        }
    }
    for w in stacks.warnings() {
        let _ = writeln!(o, "warning: {w}");
    }
    o
}
