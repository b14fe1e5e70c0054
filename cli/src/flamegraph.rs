//! `leakhunt flamegraph`: collapsed stacks from the model, drawn by inferno.
//!
//! Each box names its frame with file:line (`stacks::flame_label`); C++
//! names are shortened in the box and kept whole in the tooltip. A leaked
//! graph of a trace with an exit scan is rooted at the leak kinds
//! (definitely, indirectly, possibly lost, still reachable), each tower in
//! its kind's colour; the other graphs colour frames by language. A legend
//! under the picture says what the colours mean. `--inverted` roots the
//! graph at the allocation site, its callers below it.

use crate::inferno_svg::{self, fit_label, lines_of, rewrite_frames};
use crate::model::Model;
use crate::report::commas;
use crate::stacks::{flame_label, flame_label_short, Stacks};
use leakhunt_format::LeakKind;
use std::collections::HashMap;
use std::io::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// Bytes leaked: of the chosen leak kinds when the trace has an exit scan,
    /// else every block never freed.
    Leaked,
    /// All bytes allocated over the run.
    Allocated,
    /// The live heap at the moment of its peak.
    // (The caller loads the model up to `Model::peak_record`.)
    Peak,
    /// Allocations freed before their thread allocated anything else
    /// (heaptrack's definition): churn worth removing.
    Temporary,
}

/// How a flamegraph is drawn.
#[derive(Clone, Debug, Default)]
pub struct Style {
    pub title: Option<String>,
    /// Rooted at the allocation site (callers below it), drawn from the
    /// top down.
    pub inverted: bool,
    /// Stacks below this share of the total (in percent) are dropped.
    pub min_share: f64,
}

/// Bytes and blocks per (stack, leak kind) of the live blocks at the end
/// whose leak kind is one of `kinds` (all of them without a scan, and then
/// no kind).
fn leaked(model: &Model, kinds: &[LeakKind]) -> Vec<(u64, Option<LeakKind>, u64, u64)> {
    let mut g: HashMap<(u64, Option<LeakKind>), (u64, u64)> = HashMap::new();
    for (ptr, b) in &model.live {
        let kind = model.scan.is_some().then(|| {
            model
                .verdicts
                .get(ptr)
                .map_or(LeakKind::StillReachable, |v| v.kind)
        });
        if let Some(k) = kind {
            if !kinds.is_empty() && !kinds.contains(&k) {
                continue;
            }
        }
        let e = g.entry((b.stack, kind)).or_default();
        e.0 += b.size;
        e.1 += 1;
    }
    g.into_iter()
        .map(|((s, k), (bytes, n))| (s, k, bytes, n))
        .collect()
}

/// "outer;...;inner bytes" lines, one per distinct stack, heaviest first.
pub fn collapsed(model: &Model, what: What, kinds: &[LeakKind]) -> (Vec<String>, u64, u64) {
    let c = collect(model, what, kinds, Layout::default());
    (c.lines, c.bytes, c.blocks)
}

struct Collected {
    /// Sorted "stack weight" lines, as inferno lays them out left to right.
    lines: Vec<String>,
    /// Blocks behind each line.
    line_blocks: Vec<u64>,
    bytes: u64,
    blocks: u64,
    /// Frame name -> what it is, for its color.
    classes: HashMap<String, FrameClass>,
    /// The leak kind behind each line, when the graph is rooted at kinds.
    line_kinds: Vec<Option<LeakKind>>,
    /// Frame name -> the shorter label its box shows, where they differ.
    short: HashMap<String, String>,
}

/// How stacks become lines.
#[derive(Clone, Copy, Default)]
struct Layout {
    /// Each stack under a root frame naming its leak kind.
    by_kind: bool,
    /// The allocation site first (the root), its callers after it.
    reversed: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FrameClass {
    C,
    Cpp,
    Rust,
    Python,
    Runtime,
    Unknown,
}

impl FrameClass {
    fn of(f: &crate::symbolize::Frame) -> FrameClass {
        use crate::symbolize::Language;
        if f.language != Language::Python && crate::stacks::is_runtime_module(&f.module) {
            return FrameClass::Runtime;
        }
        match f.language {
            Language::C => FrameClass::C,
            Language::Cpp => FrameClass::Cpp,
            Language::Rust => FrameClass::Rust,
            Language::Python => FrameClass::Python,
            Language::Unknown => FrameClass::Unknown,
        }
    }

    /// What the legend says the colour means.
    fn describe(self) -> &'static str {
        match self {
            FrameClass::C => "C",
            FrameClass::Cpp => "C++",
            FrameClass::Rust => "Rust",
            FrameClass::Python => "Python",
            FrameClass::Runtime => "C runtime, libstdc++, interpreter",
            FrameClass::Unknown => "no symbols",
        }
    }

    /// Warm for the program's own code, cool grey-blue for the runtime.
    fn rgb(self) -> (u8, u8, u8) {
        match self {
            FrameClass::C => (238, 160, 80),
            FrameClass::Cpp => (226, 110, 90),
            FrameClass::Rust => (214, 140, 40),
            FrameClass::Python => (110, 180, 100),
            FrameClass::Runtime => (140, 160, 200),
            FrameClass::Unknown => (185, 185, 185),
        }
    }
}

/// A leak kind's colour: red for definitely lost, orange for indirectly,
/// violet for possibly, blue for still reachable (memcheck's order, from
/// the worst).
fn kind_rgb(k: LeakKind) -> (u8, u8, u8) {
    match k {
        LeakKind::DefinitelyLost => (214, 39, 40),
        LeakKind::IndirectlyLost => (245, 130, 20),
        LeakKind::PossiblyLost => (148, 103, 189),
        LeakKind::StillReachable => (60, 130, 190),
    }
}

/// `(r, g, b)` moved `t` of the way to white, as `rgb(…)`.
fn lighten((r, g, b): (u8, u8, u8), t: f64) -> String {
    let l = |c: u8| (c as f64 + (255.0 - c as f64) * t).round() as u8;
    format!("rgb({}, {}, {})", l(r), l(g), l(b))
}

/// A frame's fill in a kind's tower: the kind's colour, a little lighter or
/// darker by its name (as inferno varies its palettes) so neighbours part.
fn kind_fill(k: LeakKind, name: &str) -> String {
    let h = name
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    lighten(kind_rgb(k), 0.25 + (h % 100) as f64 / 100.0 * 0.3)
}

fn collect(model: &Model, what: What, kinds: &[LeakKind], layout: Layout) -> Collected {
    let mut weights: Vec<(u64, Option<LeakKind>, u64, u64)> = match what {
        What::Leaked => leaked(model, kinds),
        What::Peak => leaked(model, &[]),
        What::Temporary => model
            .by_stack
            .iter()
            .map(|(&s, t)| (s, None, t.temporary_bytes, t.temporary))
            .collect(),
        What::Allocated => model
            .by_stack
            .iter()
            .map(|(&s, t)| (s, None, t.allocated_bytes, t.allocations))
            .collect(),
    };
    weights.sort_unstable_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
    let mut stacks = Stacks::new(model);
    let mut merged: HashMap<String, (u64, u64, Option<LeakKind>)> = HashMap::new();
    let mut classes = HashMap::new();
    let mut short = HashMap::new();
    let (mut bytes, mut blocks) = (0, 0);
    for (node, kind, b, n) in weights {
        if b == 0 {
            continue;
        }
        bytes += b;
        blocks += n;
        let all = stacks.frames(node);
        let frames = crate::stacks::shown(&all);
        let mut names: Vec<String> = Vec::with_capacity(frames.len() + 1);
        let kind = kind.filter(|_| layout.by_kind);
        if let Some(k) = kind {
            names.push(k.describe().to_string());
        }
        let mut push = |f: &crate::symbolize::Frame| {
            let name = flame_label(f).replace(';', ":");
            classes
                .entry(name.clone())
                .or_insert_with(|| FrameClass::of(f));
            let label = flame_label_short(f).replace(';', ":");
            if label != name {
                short.entry(name.clone()).or_insert(label);
            }
            names.push(name);
        };
        if layout.reversed {
            frames.iter().for_each(&mut push);
        } else {
            frames.iter().rev().for_each(&mut push);
        }
        if names.len() == usize::from(kind.is_some()) {
            names.push("[no stack]".into());
        }
        let e = merged.entry(names.join(";")).or_insert((0, 0, kind));
        e.0 += b;
        e.1 += n;
    }
    let mut lines: Vec<(String, u64, Option<LeakKind>)> = merged
        .into_iter()
        .map(|(k, (bytes, blocks, kind))| (format!("{k} {bytes}"), blocks, kind))
        .collect();
    lines.sort();
    let mut c = Collected {
        lines: Vec::with_capacity(lines.len()),
        line_blocks: Vec::with_capacity(lines.len()),
        bytes,
        blocks,
        classes,
        line_kinds: Vec::with_capacity(lines.len()),
        short,
    };
    for (l, b, k) in lines {
        c.lines.push(l);
        c.line_blocks.push(b);
        c.line_kinds.push(k);
    }
    c
}

pub fn render(
    model: &Model,
    what: What,
    kinds: &[LeakKind],
    style: &Style,
    out: impl Write,
) -> anyhow::Result<()> {
    let layout = Layout {
        by_kind: what == What::Leaked && model.scan.is_some(),
        reversed: style.inverted,
    };
    let c = collect(model, what, kinds, layout);
    let program = model
        .process
        .as_ref()
        .map(|p| p.argv.join(" "))
        .unwrap_or_default();
    let kind_names: Vec<&str> = kinds
        .iter()
        .map(|k| k.describe().trim_end_matches(" lost"))
        .collect();
    let leaked_label = if kinds.iter().all(|k| *k != LeakKind::StillReachable) {
        format!("bytes lost ({})", kind_names.join(", "))
    } else {
        format!("bytes leaked ({})", kind_names.join(", "))
    };
    let peak_label = format!(
        "bytes live at the peak ({:.3} s)",
        model.totals.peak_time_us as f64 / 1e6
    );
    let counted = match what {
        What::Leaked if model.scan.is_some() => leaked_label.as_str(),
        What::Leaked => "bytes never freed",
        What::Allocated => "bytes allocated",
        What::Peak => peak_label.as_str(),
        What::Temporary => "bytes in temporary allocations",
    };
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = style.title.clone().unwrap_or_else(|| {
        if style.inverted {
            format!("leakhunt: {counted} by allocation site (callers below)")
        } else {
            format!("leakhunt: {counted} by allocation stack")
        }
    });
    opts.subtitle = Some(format!(
        "{program}: {} {counted} in {} blocks",
        commas(c.bytes),
        commas(c.blocks)
    ));
    opts.count_name = "bytes".into();
    opts.name_type = "Function:".into();
    opts.colors =
        inferno::flamegraph::color::Palette::Basic(inferno::flamegraph::color::BasicPalette::Mem);
    if style.inverted {
        opts.direction = inferno::flamegraph::Direction::Inverted;
    }
    // The script in the SVG redraws labels when it loads and on zoom; cut
    // on the right as the static labels are, so a box starts with its
    // function's name (file:line follows when there is room, and is always
    // in the tooltip).
    opts.text_truncate_direction = inferno::flamegraph::TextTruncateDirection::Right;
    // Our lines are sorted already, and the block counts below rely on
    // inferno laying them out in exactly that order.
    opts.no_sort = true;
    // Colors by what the frame is (C, C++, Rust, the runtime, unknown).
    let palette: String = c
        .classes
        .iter()
        .map(|(name, class)| {
            let (r, g, b) = class.rgb();
            format!("{name}->rgb({r}, {g}, {b})\n")
        })
        .collect();
    let mut map = inferno::flamegraph::color::PaletteMap::from_reader(&mut palette.as_bytes())?;
    opts.palette_map = Some(&mut map);
    let min = (c.bytes as f64 * style.min_share / 100.0) as u64;
    let weight = |l: &str| {
        l.rsplit(' ')
            .next()
            .and_then(|w| w.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let kept: Vec<usize> = (0..c.lines.len())
        .filter(|&i| weight(&c.lines[i]) >= min.max(1))
        .collect();
    if kept.is_empty() {
        // inferno refuses an empty profile; say "nothing" in a picture of its own.
        return empty_svg(&opts.title, opts.subtitle.as_deref().unwrap_or(""), out);
    }
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(
        &mut opts,
        kept.iter().map(|&i| c.lines[i].as_str()),
        &mut svg,
    )?;
    let text = String::from_utf8(svg)?;
    // Where each kept line starts among the samples, and the blocks before it.
    let mut starts = Vec::with_capacity(kept.len());
    let mut blocks_before = Vec::with_capacity(kept.len() + 1);
    let (mut at, mut nb) = (0u64, 0u64);
    blocks_before.push(0);
    for &i in &kept {
        starts.push(at);
        at += weight(&c.lines[i]);
        nb += c.line_blocks[i];
        blocks_before.push(nb);
    }
    let kinds_of: Vec<Option<LeakKind>> = kept.iter().map(|&i| c.line_kinds[i]).collect();
    let text = rewrite_frames(&text, |f| {
        let lines = lines_of(&starts, f.x, f.w);
        add_block_count(f, blocks_before[lines.end] - blocks_before[lines.start]);
        // A kind's tower in the kind's colour; the root over all kinds
        // keeps inferno's.
        let k = kinds_of.get(lines.clone()).and_then(|ks| {
            let first = (*ks.first()?)?;
            ks.iter().all(|x| *x == Some(first)).then_some(first)
        });
        if let Some(k) = k {
            f.fill = kind_fill(k, f.name());
        }
        if let Some(label) = c.short.get(f.name()) {
            f.label = fit_label(label, f.width_pct, &opts);
            f.short = Some(label.clone());
        }
    });
    let legend: Vec<(String, String)> = if layout.by_kind {
        let mut per_kind: Vec<(LeakKind, u64)> = Vec::new();
        for &i in &kept {
            if let Some(k) = c.line_kinds[i] {
                match per_kind.iter_mut().find(|(x, _)| *x == k) {
                    Some(e) => e.1 += weight(&c.lines[i]),
                    None => per_kind.push((k, weight(&c.lines[i]))),
                }
            }
        }
        per_kind.sort();
        per_kind
            .into_iter()
            .map(|(k, b)| {
                (
                    lighten(kind_rgb(k), 0.4),
                    format!("{} ({} bytes)", k.describe(), commas(b)),
                )
            })
            .collect()
    } else {
        let mut present: Vec<FrameClass> = Vec::new();
        for class in [
            FrameClass::C,
            FrameClass::Cpp,
            FrameClass::Rust,
            FrameClass::Python,
            FrameClass::Runtime,
            FrameClass::Unknown,
        ] {
            if c.classes.values().any(|x| *x == class) {
                present.push(class);
            }
        }
        present
            .into_iter()
            .map(|class| {
                let (r, g, b) = class.rgb();
                (format!("rgb({r}, {g}, {b})"), class.describe().to_string())
            })
            .collect()
    };
    let mut legend = legend;
    legend.push((
        "rgb(230, 0, 230)".into(),
        "search match (Search, top right)".into(),
    ));
    let text = inferno_svg::search_visible(&inferno_svg::add_legend(&text, &legend));
    let text = inferno_svg::labels_survive_zoom(&text);
    let mut out = out;
    out.write_all(text.as_bytes())?;
    Ok(())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Rewrites a frame's tooltip "NAME (N bytes, P%)" as "NAME (N bytes, B
/// blocks, P%)".
fn add_block_count(f: &mut inferno_svg::Frame, n: u64) {
    if let Some(k) = f.title.rfind(" bytes, ") {
        f.title = format!(
            "{} bytes, {} {}, {}",
            &f.title[..k],
            commas(n),
            if n == 1 { "block" } else { "blocks" },
            &f.title[k + 8..]
        );
    }
}

pub(crate) fn empty_svg(title: &str, subtitle: &str, mut out: impl Write) -> anyhow::Result<()> {
    write!(
        out,
        r##"<?xml version="1.0" standalone="no"?>
<svg version="1.1" width="1200" height="120" xmlns="http://www.w3.org/2000/svg">
<rect x="0" y="0" width="100%" height="100%" fill="#eeeeee"/>
<text x="600" y="30" font-family="Verdana" font-size="17" text-anchor="middle">{}</text>
<text x="600" y="60" font-family="Verdana" font-size="12" text-anchor="middle">{}</text>
<text x="600" y="95" font-family="Verdana" font-size="14" text-anchor="middle">Nothing to draw.</text>
</svg>
"##,
        xml_escape(title),
        xml_escape(subtitle)
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tooltips_gain_block_counts() {
        // Two input lines of 100 and 50 bytes holding 3 and 1 blocks.
        let svg = r#"<g><title>all (150 bytes, 100%)</title><rect fg:x="0" fg:w="150"/><text></text></g><g><title>a (100 bytes, 66.67%)</title><rect fg:x="0" fg:w="100"/><text></text></g><g><title>b (50 bytes, 33.33%)</title><rect fg:x="100" fg:w="50"/><text></text></g>"#;
        let (starts, before) = ([0, 100], [0, 3, 4]);
        let out = rewrite_frames(svg, |f| {
            let l = lines_of(&starts, f.x, f.w);
            add_block_count(f, before[l.end] - before[l.start]);
        });
        assert!(out.contains("all (150 bytes, 4 blocks, 100%)"), "{out}");
        assert!(out.contains("a (100 bytes, 3 blocks, 66.67%)"), "{out}");
        assert!(out.contains("b (50 bytes, 1 block, 33.33%)"), "{out}");
    }

    #[test]
    fn leak_kinds_have_distinct_fills() {
        let kinds = [
            LeakKind::DefinitelyLost,
            LeakKind::IndirectlyLost,
            LeakKind::PossiblyLost,
            LeakKind::StillReachable,
        ];
        // Whatever the frame's name, no two kinds' fills meet.
        let names = ["main", "build (a.c:3)", "std::map<…>::operator[]", "x"];
        let mut fills: Vec<(LeakKind, String)> = Vec::new();
        for k in kinds {
            for n in names {
                fills.push((k, kind_fill(k, n)));
            }
        }
        for (k, f) in &fills {
            assert!(
                !fills.iter().any(|(k2, f2)| k2 != k && f2 == f),
                "{k:?}: {f}"
            );
        }
    }
}
