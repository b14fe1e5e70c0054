//! Comparing two heaps — two runs (`leakhunt diff A B`, like
//! `heaptrack_print --diff`) or two moments of one run (`leakhunt report
//! --from T1 --to T2`, like tracemalloc's `compare_to`): which call sites
//! gained or lost live bytes and blocks, largest change first.
//!
//! Stacks are matched by their symbolized frames, not by ids: ids are per
//! trace, and the same code at another load address is the same call site.

use crate::inferno_svg;
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
    let mut out = sites(before, after);
    out.retain(|c| c.before != c.after);
    out
}

/// Every call site live in either heap, unchanged ones included (the
/// differential flamegraph shows them: a site live in both runs is part of
/// the picture even when its size did not move), largest change first,
/// then largest.
pub fn sites(before: &Model, after: &Model) -> Vec<Change> {
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
        .collect();
    out.sort_by(|x, y| {
        y.delta_bytes()
            .abs()
            .cmp(&x.delta_bytes().abs())
            .then(y.after.0.max(y.before.0).cmp(&x.after.0.max(x.before.0)))
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

/// A differential flamegraph (inferno) of `changes` (give it `sites` to
/// see the unchanged sites too): each site as wide as the larger of its two
/// heaps, so one that was freed in the second run still shows; red where
/// it grew, blue where it shrank, white where it stayed; each tooltip says
/// before, after and the change in bytes.
pub fn svg(changes: &[Change], what: &str, out: impl Write) -> anyhow::Result<()> {
    let mut rows: Vec<(String, &Change)> = changes
        .iter()
        .filter(|c| c.before.0.max(c.after.0) > 0)
        .map(|c| (c.frames.join(";"), c))
        .collect();
    // Sorted as inferno lays them out, so a frame's span names its lines.
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    // inferno draws the second count as the width and colours by the second
    // minus the first: feeding (width - change, width) keeps the true change
    // with the larger heap as the width.
    let lines: Vec<String> = rows
        .iter()
        .map(|(stack, c)| {
            let width = c.before.0.max(c.after.0) as i64;
            format!("{stack} {} {width}", width - c.delta_bytes())
        })
        .collect();
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = format!("leakhunt diff: live heap, {what}");
    opts.subtitle =
        Some("width: the larger of the two heaps; red grew, blue shrank, white the same".into());
    opts.count_name = "bytes".into();
    // The script in the SVG redraws labels when it loads and on zoom; cut
    // on the right as the static labels are, so a box starts with its
    // function's name (file:line follows when there is room, and is always
    // in the tooltip).
    opts.text_truncate_direction = inferno::flamegraph::TextTruncateDirection::Right;
    opts.no_sort = true;
    if lines.is_empty() {
        return crate::flamegraph::empty_svg(&opts.title, "the two heaps are the same", out);
    }
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), &mut svg)?;
    let text = String::from_utf8(svg)?;
    let mut starts = Vec::with_capacity(rows.len());
    let (mut before, mut after) = (vec![0u64], vec![0u64]);
    let mut at = 0;
    for (_, c) in &rows {
        starts.push(at);
        at += c.before.0.max(c.after.0);
        before.push(before[before.len() - 1] + c.before.0);
        after.push(after[after.len() - 1] + c.after.0);
    }
    // inferno colours a frame by its own change only (a caller of a grown
    // site stays white); ours is the change of everything under it, as its
    // tooltip says, on a scale where the largest site's change is full.
    let scale = rows
        .iter()
        .map(|(_, c)| c.delta_bytes().unsigned_abs())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let text = inferno_svg::rewrite_frames(&text, |f| {
        let l = inferno_svg::lines_of(&starts, f.x, f.w);
        let (b, a) = (
            before[l.end] - before[l.start],
            after[l.end] - after[l.start],
        );
        let t = ((a as f64 - b as f64).abs() / scale).min(1.0);
        let v = (250.0 - 190.0 * t).round() as u8;
        f.fill = match a.cmp(&b) {
            std::cmp::Ordering::Greater => format!("rgb(250, {v}, {v})"),
            std::cmp::Ordering::Less => format!("rgb({v}, {v}, 250)"),
            std::cmp::Ordering::Equal => "rgb(250, 250, 250)".into(),
        };
        let name = if f.x == 0 && f.w == at && f.name() == "all" {
            "all".to_string()
        } else {
            f.name().to_string()
        };
        f.title = format!(
            "{name} ({} -> {} bytes, {})",
            commas(b),
            commas(a),
            if a == b {
                "unchanged".to_string()
            } else {
                signed(a as i64 - b as i64)
            }
        );
    });
    let legend = [
        ("rgb(250, 60, 60)", "grew"),
        ("rgb(60, 60, 250)", "shrank"),
        ("rgb(250, 250, 250)", "the same in both"),
        ("rgb(230, 0, 230)", "search match (Search, top right)"),
    ]
    .map(|(c, t)| (c.to_string(), t.to_string()));
    let text = inferno_svg::search_visible(&inferno_svg::add_legend(&text, &legend));
    let mut out = out;
    out.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(frames: &[&str], before: u64, after: u64) -> Change {
        Change {
            frames: frames.iter().map(|s| s.to_string()).collect(),
            site: frames.last().unwrap_or(&"").to_string(),
            before: (before, before / 56),
            after: (after, after / 56),
        }
    }

    #[test]
    fn the_diff_graph_shows_sites_live_in_both_runs() {
        let sites = [
            change(&["main (list.c:9)", "make_list (list.c:5)"], 5_600, 16_800),
            change(&["main (list.c:9)", "other (list.c:6)"], 1_000, 1_000),
            change(&["main (list.c:9)", "gone (list.c:7)"], 4_000, 0),
        ];
        let mut out = Vec::new();
        svg(&sites, "a -> b", &mut out).unwrap();
        let svg = String::from_utf8(out).unwrap();
        // Grown, unchanged and freed sites are all drawn, each with its
        // before and after.
        assert!(
            svg.contains("<title>make_list (list.c:5) (5,600 -&gt; 16,800 bytes, +11,200)</title>"),
            "{svg}"
        );
        assert!(
            svg.contains("<title>other (list.c:6) (1,000 -&gt; 1,000 bytes, unchanged)</title>"),
            "{svg}"
        );
        assert!(
            svg.contains("<title>gone (list.c:7) (4,000 -&gt; 0 bytes, -4,000)</title>"),
            "{svg}"
        );
        assert!(svg.contains("(10,600 -&gt; 17,800 bytes, +7,200)"), "{svg}");
        assert!(svg.contains(">the same in both</text>"));
    }
}
