//! `leakhunt flamegraph`: collapsed stacks from the model, drawn by inferno.

use crate::model::Model;
use crate::report::commas;
use crate::stacks::{flame_label, Stacks};
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
    /// Icicle: roots at the top.
    pub inverted: bool,
    /// Stacks below this share of the total (in percent) are dropped.
    pub min_share: f64,
}

/// Bytes and blocks per stack of the live blocks at the end whose leak kind
/// is one of `kinds` (all of them without a scan).
fn leaked(model: &Model, kinds: &[LeakKind]) -> Vec<(u64, u64, u64)> {
    let mut g: HashMap<u64, (u64, u64)> = HashMap::new();
    for (ptr, b) in &model.live {
        if model.scan.is_some() && !kinds.is_empty() {
            let kind = model
                .verdicts
                .get(ptr)
                .map_or(LeakKind::StillReachable, |v| v.kind);
            if !kinds.contains(&kind) {
                continue;
            }
        }
        let e = g.entry(b.stack).or_default();
        e.0 += b.size;
        e.1 += 1;
    }
    g.into_iter().map(|(s, (bytes, n))| (s, bytes, n)).collect()
}

/// "outer;...;inner bytes" lines, one per distinct stack, heaviest first.
pub fn collapsed(model: &Model, what: What, kinds: &[LeakKind]) -> (Vec<String>, u64, u64) {
    let c = collect(model, what, kinds);
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

fn collect(model: &Model, what: What, kinds: &[LeakKind]) -> Collected {
    let mut weights: Vec<(u64, u64, u64)> = match what {
        What::Leaked => leaked(model, kinds),
        What::Peak => leaked(model, &[]),
        What::Temporary => model
            .by_stack
            .iter()
            .map(|(&s, t)| (s, t.temporary_bytes, t.temporary))
            .collect(),
        What::Allocated => model
            .by_stack
            .iter()
            .map(|(&s, t)| (s, t.allocated_bytes, t.allocations))
            .collect(),
    };
    weights.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut stacks = Stacks::new(model);
    let mut merged: HashMap<String, (u64, u64)> = HashMap::new();
    let mut classes = HashMap::new();
    let (mut bytes, mut blocks) = (0, 0);
    for (node, b, n) in weights {
        if b == 0 {
            continue;
        }
        bytes += b;
        blocks += n;
        let all = stacks.frames(node);
        let frames = crate::stacks::shown(&all);
        let mut names: Vec<String> = Vec::with_capacity(frames.len());
        for f in frames.iter().rev() {
            let name = flame_label(f).replace(';', ":");
            classes
                .entry(name.clone())
                .or_insert_with(|| FrameClass::of(f));
            names.push(name);
        }
        if names.is_empty() {
            names.push("[no stack]".into());
        }
        let e = merged.entry(names.join(";")).or_default();
        e.0 += b;
        e.1 += n;
    }
    let mut lines: Vec<(String, u64)> = merged
        .into_iter()
        .map(|(k, (bytes, blocks))| (format!("{k} {bytes}"), blocks))
        .collect();
    lines.sort();
    let (lines, line_blocks) = lines.into_iter().unzip();
    Collected {
        lines,
        line_blocks,
        bytes,
        blocks,
        classes,
    }
}

pub fn render(
    model: &Model,
    what: What,
    kinds: &[LeakKind],
    style: &Style,
    out: impl Write,
) -> anyhow::Result<()> {
    let c = collect(model, what, kinds);
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
    opts.title = style
        .title
        .clone()
        .unwrap_or_else(|| format!("leakhunt: {counted} by allocation stack"));
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
    let kept: Vec<(&str, u64)> = c
        .lines
        .iter()
        .zip(c.line_blocks.iter())
        .filter(|(l, _)| weight(l) >= min.max(1))
        .map(|(l, &b)| (l.as_str(), b))
        .collect();
    if kept.is_empty() {
        // inferno refuses an empty profile; say "nothing" in a picture of its own.
        return empty_svg(&opts.title, opts.subtitle.as_deref().unwrap_or(""), out);
    }
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut opts, kept.iter().map(|(l, _)| *l), &mut svg)?;
    // Tooltips say bytes and share; add the blocks behind each frame.
    let mut starts = Vec::with_capacity(kept.len());
    let mut blocks_before = Vec::with_capacity(kept.len() + 1);
    let (mut at, mut nb) = (0u64, 0u64);
    blocks_before.push(0);
    for (l, b) in &kept {
        starts.push(at);
        at += weight(l);
        nb += b;
        blocks_before.push(nb);
    }
    let text = String::from_utf8(svg)?;
    let mut out = out;
    out.write_all(add_block_counts(&text, &starts, &blocks_before).as_bytes())?;
    Ok(())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Rewrites each frame's tooltip "NAME (N bytes, P%)" as "NAME (N bytes, B
/// blocks, P%)". A frame covers the samples [fg:x, fg:x + fg:w), i.e. the
/// sorted input lines starting in that span.
fn add_block_counts(svg: &str, starts: &[u64], blocks_before: &[u64]) -> String {
    let attr = |s: &str, name: &str| -> Option<u64> {
        let i = s.find(name)? + name.len();
        let rest = &s[i..];
        rest[..rest.find('"')?].parse().ok()
    };
    let mut out = String::with_capacity(svg.len() + svg.len() / 8);
    let mut rest = svg;
    while let Some(i) = rest.find("<title>") {
        let Some(j) = rest[i..].find("</title>").map(|j| i + j) else {
            break;
        };
        let title = &rest[i + 7..j];
        let after = &rest[j..];
        let rect_end = after.find("/>").unwrap_or(after.len());
        let rect = &after[..rect_end];
        let span = attr(rect, "fg:x=\"").zip(attr(rect, "fg:w=\""));
        out.push_str(&rest[..i + 7]);
        match (span, title.rfind(" bytes, ")) {
            (Some((x, w)), Some(k)) => {
                let lo = starts.partition_point(|&s| s < x);
                let hi = starts.partition_point(|&s| s < x + w);
                let n = blocks_before[hi] - blocks_before[lo];
                out.push_str(&title[..k]);
                out.push_str(&format!(
                    " bytes, {} {}, ",
                    commas(n),
                    if n == 1 { "block" } else { "blocks" }
                ));
                out.push_str(&title[k + 8..]);
            }
            _ => out.push_str(title),
        }
        rest = &rest[j..];
    }
    out.push_str(rest);
    out
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
    use super::add_block_counts;

    #[test]
    fn tooltips_gain_block_counts() {
        // Two input lines of 100 and 50 bytes holding 3 and 1 blocks.
        let svg = r#"<g><title>all (150 bytes, 100%)</title><rect fg:x="0" fg:w="150"/></g><g><title>a (100 bytes, 66.67%)</title><rect fg:x="0" fg:w="100"/></g><g><title>b (50 bytes, 33.33%)</title><rect fg:x="100" fg:w="50"/></g>"#;
        let out = add_block_counts(svg, &[0, 100], &[0, 3, 4]);
        assert!(out.contains("all (150 bytes, 4 blocks, 100%)"), "{out}");
        assert!(out.contains("a (100 bytes, 3 blocks, 66.67%)"), "{out}");
        assert!(out.contains("b (50 bytes, 1 block, 33.33%)"), "{out}");
    }
}
