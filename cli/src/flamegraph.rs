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
}

/// Bytes and blocks per stack of the live blocks at the end whose leak kind
/// is one of `kinds` (all of them without a scan).
fn leaked(model: &Model, kinds: &[LeakKind]) -> Vec<(u64, u64, u64)> {
    let mut g: HashMap<u64, (u64, u64)> = HashMap::new();
    for (ptr, b) in &model.live {
        if model.scan.is_some() {
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
    let weights: Vec<(u64, u64, u64)> = match what {
        What::Leaked => leaked(model, kinds),
        What::Allocated => {
            let mut v: Vec<(u64, u64, u64)> = model
                .by_stack
                .iter()
                .map(|(&s, t)| (s, t.allocated_bytes, t.allocations))
                .collect();
            v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            v
        }
    };
    let mut stacks = Stacks::new(model);
    let mut merged: HashMap<String, u64> = HashMap::new();
    let (mut bytes, mut blocks) = (0, 0);
    for (node, b, n) in weights {
        if b == 0 {
            continue;
        }
        bytes += b;
        blocks += n;
        let all = stacks.frames(node);
        let frames = &all[allocation_site(&all)..];
        let mut names: Vec<String> = frames
            .iter()
            .rev()
            .map(|f| frame_name(f).replace(';', ":"))
            .collect();
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
    (lines, bytes, blocks)
}

pub fn render(
    model: &Model,
    what: What,
    kinds: &[LeakKind],
    title: Option<&str>,
    out: impl Write,
) -> anyhow::Result<()> {
    let (lines, bytes, blocks) = collapsed(model, what, kinds);
    let program = model
        .process
        .as_ref()
        .map(|p| p.argv.join(" "))
        .unwrap_or_default();
    let kind_names: Vec<&str> = kinds.iter().map(|k| k.describe()).collect();
    let leaked_label = format!("bytes {}", kind_names.join(" or "));
    let counted = match what {
        What::Leaked if model.scan.is_some() => leaked_label.as_str(),
        What::Leaked => "bytes never freed",
        What::Allocated => "bytes allocated",
    };
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = title
        .map(str::to_string)
        .unwrap_or_else(|| format!("leakhunt: {counted} by allocation stack"));
    opts.subtitle = Some(format!(
        "{program}: {} {counted} in {} blocks",
        commas(bytes),
        commas(blocks)
    ));
    opts.count_name = "bytes".into();
    opts.name_type = "Function:".into();
    opts.colors =
        inferno::flamegraph::color::Palette::Basic(inferno::flamegraph::color::BasicPalette::Mem);
    if lines.is_empty() {
        // inferno refuses an empty profile; say "nothing" in a picture of its own.
        return empty_svg(&opts.title, opts.subtitle.as_deref().unwrap_or(""), out);
    }
    inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), out)?;
    Ok(())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn empty_svg(title: &str, subtitle: &str, mut out: impl Write) -> anyhow::Result<()> {
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
