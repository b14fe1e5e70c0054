//! `leakhunt flamegraph`: collapsed stacks from the model, drawn by inferno.

use crate::model::Model;
use crate::report::commas;
use crate::stacks::{allocation_site, frame_name, Stacks};
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
    /// The live heap at the moment of its peak (give the model loaded up to
    /// `Model::peak_record`).
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
    lines: Vec<String>,
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
    Runtime,
    Unknown,
}

impl FrameClass {
    fn of(f: &crate::symbolize::Frame) -> FrameClass {
        use crate::symbolize::Language;
        let file = f.module.rsplit('/').next().unwrap_or("");
        let runtime = [
            "libc.so",
            "ld-linux",
            "libstdc++.so",
            "libgcc_s.so",
            "libm.so",
            "libpthread",
        ]
        .iter()
        .any(|r| file.starts_with(r));
        if runtime {
            return FrameClass::Runtime;
        }
        match f.language {
            Language::C => FrameClass::C,
            Language::Cpp => FrameClass::Cpp,
            Language::Rust => FrameClass::Rust,
            Language::Unknown => FrameClass::Unknown,
        }
    }

    /// Warm for the program's own code, cool grey-blue for the runtime.
    fn rgb(self) -> (u8, u8, u8) {
        match self {
            FrameClass::C => (238, 160, 80),
            FrameClass::Cpp => (226, 110, 90),
            FrameClass::Rust => (214, 140, 40),
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
    let mut merged: HashMap<String, u64> = HashMap::new();
    let mut classes = HashMap::new();
    let (mut bytes, mut blocks) = (0, 0);
    for (node, b, n) in weights {
        if b == 0 {
            continue;
        }
        bytes += b;
        blocks += n;
        let all = stacks.frames(node);
        let frames = &all[allocation_site(&all)..];
        let mut names: Vec<String> = Vec::with_capacity(frames.len());
        for f in frames.iter().rev() {
            let name = frame_name(f).replace(';', ":");
            classes
                .entry(name.clone())
                .or_insert_with(|| FrameClass::of(f));
            names.push(name);
        }
        if names.is_empty() {
            names.push("[no stack]".into());
        }
        *merged.entry(names.join(";")).or_default() += b;
    }
    let mut lines: Vec<String> = merged
        .into_iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    lines.sort();
    Collected {
        lines,
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
    let lines: Vec<&str> = c
        .lines
        .iter()
        .map(String::as_str)
        .filter(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|w| w.parse::<u64>().ok())
                .is_some_and(|w| w >= min.max(1))
        })
        .collect();
    if lines.is_empty() {
        // inferno refuses an empty profile; say "nothing" in a picture of its own.
        return empty_svg(&opts.title, opts.subtitle.as_deref().unwrap_or(""), out);
    }
    inferno::flamegraph::from_lines(&mut opts, lines, out)?;
    Ok(())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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
