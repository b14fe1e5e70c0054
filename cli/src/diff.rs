//! Comparing two heaps — two runs (`leakhunt diff A B`, like
//! `heaptrack_print --diff`) or two moments of one run (`leakhunt report
//! --from T1 --to T2`, like tracemalloc's `compare_to`): which call sites
//! gained or lost live bytes and blocks, largest change first.
//!
//! Stacks are matched by their symbolized frames, not by ids: ids are per
//! trace, and the same code at another load address is the same call site.

use crate::model::Model;
use crate::report::commas;
use crate::stacks::{flame_label, site_line, Stacks};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;

/// One call site's live heap before and after.
#[derive(Debug, Clone)]
pub struct Change {
    /// Frames, outermost first, as the flamegraph names them.
    pub frames: Vec<String>,
    /// The program's own frame and its callers (`stacks::site_line`).
    pub site: String,
    pub before: (u64, u64),
    pub after: (u64, u64),
}

impl Change {
    pub fn delta_bytes(&self) -> i64 {
        self.after.0 as i64 - self.before.0 as i64
    }
    pub fn delta_blocks(&self) -> i64 {
        self.after.1 as i64 - self.before.1 as i64
    }
}

/// Live bytes and blocks per call site (frames outermost first), and each
/// site's line.
fn live_by_site(model: &Model) -> HashMap<Vec<String>, (u64, u64, String)> {
    let mut by_node: HashMap<u64, (u64, u64)> = HashMap::new();
    for b in model.live.values() {
        let e = by_node.entry(b.stack).or_default();
        e.0 += b.size;
        e.1 += 1;
    }
    let mut stacks = Stacks::new(model);
    let mut out: HashMap<Vec<String>, (u64, u64, String)> = HashMap::new();
    for (node, (bytes, blocks)) in by_node {
        let all = stacks.frames(node);
        let site = site_line(&all, 3);
        let frames: Vec<String> = crate::stacks::shown(&all)
            .iter()
            .rev()
            .map(|f| flame_label(f).replace(';', ":"))
            .collect();
        let e = out.entry(frames).or_insert((0, 0, site));
        e.0 += bytes;
        e.1 += blocks;
    }
    out
}

/// The call sites whose live heap differs, largest change (either way) first.
pub fn compare(before: &Model, after: &Model) -> Vec<Change> {
    let a = live_by_site(before);
    let b = live_by_site(after);
    let mut keys: Vec<&Vec<String>> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out: Vec<Change> = keys
        .into_iter()
        .map(|k| {
            let (x, y) = (a.get(k), b.get(k));
            Change {
                frames: k.clone(),
                site: y.or(x).map(|v| v.2.clone()).unwrap_or_default(),
                before: x.map(|v| (v.0, v.1)).unwrap_or_default(),
                after: y.map(|v| (v.0, v.1)).unwrap_or_default(),
            }
        })
        .filter(|c| c.before != c.after)
        .collect();
    out.sort_by(|x, y| {
        y.delta_bytes()
            .abs()
            .cmp(&x.delta_bytes().abs())
            .then(x.frames.cmp(&y.frames))
    });
    out
}

fn signed(n: i64) -> String {
    if n >= 0 {
        format!("+{}", commas(n as u64))
    } else {
        format!("-{}", commas(n.unsigned_abs()))
    }
}

pub fn to_text(changes: &[Change], what: &str, limit: usize) -> String {
    let mut o = String::new();
    let gained: i64 = changes.iter().map(Change::delta_bytes).sum();
    let _ = writeln!(
        o,
        "leakhunt diff: {what}: live heap {} bytes over {} call sites",
        signed(gained),
        commas(changes.len() as u64)
    );
    let _ = writeln!(o);
    for c in changes
        .iter()
        .take(if limit == 0 { usize::MAX } else { limit })
    {
        let _ = writeln!(
            o,
            "{} bytes, {} blocks ({} -> {} bytes): {}",
            signed(c.delta_bytes()),
            signed(c.delta_blocks()),
            commas(c.before.0),
            commas(c.after.0),
            c.site
        );
        for (i, f) in c.frames.iter().rev().take(8).enumerate() {
            let _ = writeln!(o, "   {} {f}", if i == 0 { "at" } else { "by" });
        }
        let _ = writeln!(o);
    }
    o
}

pub fn to_json(changes: &[Change], what: &str) -> Value {
    json!({
        "compared": what,
        "delta_bytes": changes.iter().map(Change::delta_bytes).sum::<i64>(),
        "changes": changes.iter().map(|c| json!({
            "delta_bytes": c.delta_bytes(),
            "delta_blocks": c.delta_blocks(),
            "site": c.site,
            "before": {"bytes": c.before.0, "blocks": c.before.1},
            "after": {"bytes": c.after.0, "blocks": c.after.1},
            "stack": c.frames.iter().rev().collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// A differential flamegraph (inferno): widths are the live heap after,
/// red where it grew, blue where it shrank.
pub fn svg(changes: &[Change], what: &str, out: impl Write) -> anyhow::Result<()> {
    let lines: Vec<String> = changes
        .iter()
        .map(|c| format!("{} {} {}", c.frames.join(";"), c.before.0, c.after.0))
        .collect();
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = format!("leakhunt diff: live heap, {what}");
    opts.subtitle = Some("width: live bytes after; red grew, blue shrank".into());
    opts.count_name = "bytes".into();
    if lines.is_empty() {
        return crate::flamegraph::empty_svg(&opts.title, "the two heaps are the same", out);
    }
    inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), out)?;
    Ok(())
}
