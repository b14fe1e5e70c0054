//! `leakhunt flamegraph`: collapsed stacks from the model, drawn by inferno.

use crate::model::Model;
use crate::report::commas;
use crate::stacks::{allocation_site, frame_name, Stacks};
use std::collections::HashMap;
use std::io::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// Bytes never freed (leak kinds need the exit scan; until then, "never freed").
    Leaked,
    /// All bytes allocated over the run.
    Allocated,
}

/// "outer;...;inner bytes" lines, one per distinct stack, heaviest first.
pub fn collapsed(model: &Model, what: What) -> (Vec<String>, u64, u64) {
    let weights: Vec<(u64, u64, u64)> = match what {
        What::Leaked => model.leaked_by_stack(),
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
    title: Option<&str>,
    out: impl Write,
) -> anyhow::Result<()> {
    let (lines, bytes, blocks) = collapsed(model, what);
    let program = model
        .process
        .as_ref()
        .map(|p| p.argv.join(" "))
        .unwrap_or_default();
    let counted = match what {
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
        // inferno refuses an empty profile; a single root says "nothing" honestly.
        let empty = [format!("no {counted} 0")];
        opts.min_width = 0.0;
        inferno::flamegraph::from_lines(&mut opts, empty.iter().map(String::as_str), out)?;
    } else {
        inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), out)?;
    }
    Ok(())
}
