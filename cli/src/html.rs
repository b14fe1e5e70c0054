//! `leakhunt report --format html`: one self-contained page to attach to a
//! bug report — the summary, the loss records with their stacks, the curve
//! and its verdict, the growing call sites, and the four flamegraphs.
//!
//! Self-contained means nothing is fetched to view it: the style and the
//! script are in the page, the curve is inline SVG, and each flamegraph is
//! inferno's own SVG (with its script, so search and zoom keep working) in
//! an `<iframe srcdoc>`, which shares the page's origin (inferno's search
//! asks with `prompt()`, refused to cross-origin frames).
//!
//! Everything that came from the trace (function, file and module names,
//! the program's arguments) is untrusted: it is escaped as text, and the
//! flamegraphs a second time as the attribute that holds them. The page is
//! built from the same analyses as the text and JSON reports, never from
//! their output.

use crate::flamegraph::{self, What};
use crate::leaks::{analyze, Analysis, RecordKind, Suppressor};
use crate::model::Model;
use crate::report::{self, commas, plural, Options};
use crate::shown;
use crate::stacks::{frame_name, Stacks};
use crate::timeline::{self, Verdict};
use anyhow::Result;
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use leakhunt_format::LeakKind;
use std::collections::HashSet;
use std::fmt::Write as _;

/// The comment every page carries on its second line: how `-o` recognizes
/// a page of ours that it may overwrite (see `files::Kind::Html`).
pub const MARK: &str = crate::files::SVG_MARK;

/// The style of the page: system fonts, no web fonts (nothing to fetch).
const STYLE: &str = r#"
:root { --fg: #1d2129; --muted: #5f6673; --line: #dde1e7; --bg: #ffffff; --panel: #f6f7f9;
  --def: #c62828; --ind: #e65100; --pos: #b7791f; --rea: #2e7d32; --sup: #607d8b; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: var(--fg); background: var(--bg); }
header { padding: 20px 28px 12px; border-bottom: 1px solid var(--line); background: var(--panel); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header h1 small { font-weight: normal; color: var(--muted); font-size: 14px; margin-left: 8px; }
header p { margin: 2px 0; color: var(--muted); }
header .program { color: var(--fg); font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 14px;
  word-break: break-all; }
nav { display: flex; gap: 18px; padding: 8px 28px; border-bottom: 1px solid var(--line); position: sticky; top: 0;
  background: var(--bg); z-index: 1; }
nav a { color: var(--muted); text-decoration: none; font-weight: 600; }
nav a:hover { color: var(--fg); }
main { padding: 8px 28px 28px; max-width: 1320px; }
section { margin-top: 22px; }
h2 { font-size: 18px; margin: 0 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
.warn { background: #fff4e5; border-left: 4px solid var(--ind); padding: 6px 10px; margin: 8px 0; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; min-width: 190px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 20px; font-weight: 600; }
.card .sub { color: var(--muted); font-size: 13px; }
.card.definitely_lost .value { color: var(--def); } .card.indirectly_lost .value { color: var(--ind); }
.card.possibly_lost .value { color: var(--pos); } .card.still_reachable .value { color: var(--rea); }
.card.suppressed .value { color: var(--sup); }
.note { color: var(--muted); font-size: 14px; margin: 8px 0; }
.kind { display: inline-block; border-radius: 3px; padding: 0 6px; color: #fff; font-size: 12px; font-weight: 600;
  vertical-align: 1px; margin-right: 6px; white-space: nowrap; }
.kind.definitely_lost { background: var(--def); } .kind.indirectly_lost { background: var(--ind); }
.kind.possibly_lost { background: var(--pos); } .kind.still_reachable { background: var(--rea); }
.kind.never_freed { background: var(--sup); }
details.record { border: 1px solid var(--line); border-radius: 6px; margin: 8px 0; background: var(--bg); }
details.record > summary { cursor: pointer; padding: 6px 10px; background: var(--panel); border-radius: 6px; }
details.record[open] > summary { border-bottom: 1px solid var(--line); border-radius: 6px 6px 0 0; }
ol.stack { margin: 6px 0 8px; padding-left: 44px; font: 13px/1.5 ui-monospace, "DejaVu Sans Mono", monospace; }
ol.stack .fn { color: var(--fg); font-weight: 600; word-break: break-all; }
ol.stack .loc { color: var(--muted); }
ol.stack .inl { color: var(--pos); font-size: 12px; }
.more { color: var(--muted); font-size: 13px; padding: 0 10px 8px 44px; }
pre.supp { margin: 0 10px 10px; padding: 8px; background: var(--panel); font-size: 12px; overflow-x: auto; }
.fold { color: var(--muted); margin: 8px 2px; }
.verdict { font-size: 17px; margin: 4px 0 8px; }
.verdict b { padding: 1px 8px; border-radius: 4px; color: #fff; }
.verdict .growing, .verdict .burst { background: var(--def); } .verdict .early-growth { background: var(--pos); }
.verdict .steady { background: var(--rea); } .verdict .inconclusive { background: var(--sup); }
.curve svg { width: 100%; height: auto; max-width: 1200px; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.site { font: 13px ui-monospace, "DejaVu Sans Mono", monospace; word-break: break-all; }
.tabs { display: flex; gap: 4px; border-bottom: 1px solid var(--line); }
.tabs button { font: inherit; border: 1px solid var(--line); border-bottom: none; background: var(--panel);
  padding: 6px 14px; border-radius: 6px 6px 0 0; cursor: pointer; color: var(--muted); }
.tabs button[aria-selected="true"] { background: var(--bg); color: var(--fg); font-weight: 600;
  position: relative; top: 1px; }
.panel { padding-top: 6px; }
/* Hidden panels keep their layout (height 0, not display: none): inferno
   measures its labels when it loads, and a frame never laid out would show
   none. */
.panel.hidden { height: 0; overflow: hidden; padding: 0; }
.panel p { margin: 4px 0 6px; color: var(--muted); font-size: 14px; }
.panel iframe { width: 100%; border: 1px solid var(--line); border-radius: 6px; display: block; }
footer { color: var(--muted); font-size: 13px; padding: 12px 28px 24px; border-top: 1px solid var(--line); }
"#;

/// The page's own script: the flamegraph tabs. With `#selftest` in the
/// address it also exercises each flamegraph (search, zoom) and writes
/// what happened into `#selftest`, for the end-to-end test's headless
/// browser to read from the DOM.
const SCRIPT: &str = r##"
"use strict";
function showFlame(name) {
  document.querySelectorAll(".tabs button").forEach(function (b) {
    var on = b.dataset.panel === name;
    b.setAttribute("aria-selected", on ? "true" : "false");
    document.getElementById("fg-" + b.dataset.panel).classList.toggle("hidden", !on);
  });
}
document.querySelectorAll(".tabs button").forEach(function (b) {
  b.addEventListener("click", function () { showFlame(b.dataset.panel); });
});
function selftest() {
  var out = [];
  document.querySelectorAll(".panel iframe").forEach(function (f) {
    var w = f.contentWindow, d = f.contentDocument, name = f.dataset.what;
    var frames = d && d.getElementById("frames");
    if (!frames) { out.push(name + ": empty"); return; }
    var first = frames.querySelector("g");
    var label = first.querySelector("title").textContent.replace(/ \(.*$/, "");
    w.search(label.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    var matched = d.getElementById("matched").textContent;
    w.reset_search();
    var target = frames.querySelectorAll("g")[frames.querySelectorAll("g").length - 1];
    target.querySelector("rect").dispatchEvent(new MouseEvent("click", { bubbles: true }));
    var zoomed = !d.getElementById("unzoom").classList.contains("hide");
    out.push(name + ": search " + (matched.indexOf("Matched") >= 0 ? "ok" : "failed (" + matched + ")")
      + ", zoom " + (zoomed ? "ok" : "failed"));
  });
  document.getElementById("selftest").textContent = out.join("\n");
}
if (location.hash === "#selftest") window.addEventListener("load", function () { setTimeout(selftest, 100); });
"##;

/// Runs inside each flamegraph's frame before inferno's script: inferno
/// keeps its zoom and search in the address (`history.replaceState`), which
/// a `srcdoc` frame cannot change; the state is simply not kept there.
const FRAME_PRELUDE: &str = r#"<script>(function () { var r = history.replaceState.bind(history);
history.replaceState = function () { try { r.apply(null, arguments); } catch (e) {} }; })();</script>"#;

/// What each flamegraph tab shows.
const FLAMES: [(What, &str, &str); 4] = [
    (
        What::Leaked,
        "Leaked",
        "Bytes still live at exit, of the leak kinds shown, by allocation stack.",
    ),
    (
        What::Peak,
        "Peak",
        "The live heap at the moment of its peak, by allocation stack.",
    ),
    (
        What::Allocated,
        "Allocated",
        "Every byte allocated over the run, by allocation stack.",
    ),
    (
        What::Temporary,
        "Temporary",
        "Allocations freed before their thread allocated anything else: churn worth removing.",
    ),
];

/// The page. `model` is the whole trace, `peak` the same trace replayed up
/// to its peak (`Model::load_until(path, model.peak_record)`); `source`
/// names the trace in the footer.
pub fn page(
    model: &mut Model,
    peak: &Model,
    opts: &Options,
    supp: &dyn Suppressor,
    source: &str,
) -> Result<String> {
    let mut stacks = Stacks::new(&*model);
    let a = analyze(&*model, &mut stacks, supp);
    let mut o = String::with_capacity(1 << 16);
    let program = model
        .process
        .as_ref()
        .map(|p| p.argv.join(" "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "(unknown program)".into());
    let _ = write!(
        o,
        "<!DOCTYPE html>\n{MARK}\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>leakhunt: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        text(&program)
    );
    header(model, &mut o);
    o.push_str(
        "<nav><a href=\"#summary\">Summary</a><a href=\"#records\">Loss records</a>\
         <a href=\"#growth\">Growth</a><a href=\"#flamegraph\">Flamegraph</a></nav>\n<main>\n",
    );
    summary(model, &a, &mut o);
    records(&a, &mut stacks, opts, &mut o);
    growth(model, &mut stacks, opts, &mut o);
    let warnings = stacks.warnings();
    drop(stacks);
    flames(model, peak, &a, opts, &mut o)?;
    o.push_str("</main>\n<footer>");
    for w in warnings {
        let _ = write!(o, "<p>warning: {}</p>", text(&w));
    }
    let _ = write!(
        o,
        "<p>Written by leakhunt {} from {}. Sizes are the bytes the program asked for.</p>\
         <pre id=\"selftest\" hidden></pre></footer>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        text(source)
    );
    Ok(o)
}

fn header(model: &Model, o: &mut String) {
    let _ = write!(
        o,
        "<header>\n<h1>leakhunt report<small>memory leaks and heap growth</small></h1>\n\
         <p class=\"program\">{}</p>\n<p>duration {:.3} s, {}</p>\n",
        text(&report::program_line(model)),
        model.duration_us as f64 / 1e6,
        plural(model.threads.max(1), "thread", "threads")
    );
    if let Some(py) = &model.python {
        let _ = writeln!(
            o,
            "<p>Python {}: {}</p>",
            text(&py.version),
            text(&report::python_note(py))
        );
    }
    if let Some(cut) = &model.cut {
        let _ = writeln!(
            o,
            "<p class=\"warn\">warning: {}</p>",
            text(&report::cut_text(cut))
        );
    } else if model.end.is_none() {
        o.push_str(
            "<p class=\"warn\">warning: the trace has no end record: the process was killed or \
             crashed; the last ~100 ms may be missing</p>\n",
        );
    }
    o.push_str("</header>\n");
}

fn card(o: &mut String, class: &str, label: &str, value: &str, sub: &str) {
    let _ = write!(
        o,
        "<div class=\"card {class}\"><div class=\"label\">{label}</div>\
         <div class=\"value\">{}</div><div class=\"sub\">{}</div></div>",
        text(value),
        text(sub)
    );
}

fn summary(model: &Model, a: &Analysis, o: &mut String) {
    let t = &model.totals;
    o.push_str("<section id=\"summary\">\n<h2>Summary</h2>\n<div class=\"cards\">");
    card(
        o,
        "",
        "in use at exit",
        &plural(t.live_bytes_at_end, "byte", "bytes"),
        &plural(t.live_blocks_at_end, "block", "blocks"),
    );
    card(
        o,
        "",
        "total heap usage",
        &format!("{} allocated", plural(t.allocated_bytes, "byte", "bytes")),
        &format!(
            "{}, {}",
            plural(t.allocations, "alloc", "allocs"),
            plural(t.frees, "free", "frees")
        ),
    );
    card(
        o,
        "",
        "peak",
        &plural(t.peak_bytes, "byte", "bytes"),
        &format!("live at {:.3} s", t.peak_time_us as f64 / 1e6),
    );
    o.push_str("</div>\n<div class=\"cards\" style=\"margin-top:12px\">");
    if a.scanned {
        for kind in [
            LeakKind::DefinitelyLost,
            LeakKind::IndirectlyLost,
            LeakKind::PossiblyLost,
            LeakKind::StillReachable,
        ] {
            let amt = a.amount(kind);
            card(
                o,
                kind.name(),
                kind.describe(),
                &plural(amt.bytes, "byte", "bytes"),
                &plural(amt.blocks, "block", "blocks"),
            );
        }
        card(
            o,
            "suppressed",
            "suppressed",
            &plural(a.suppressed.bytes, "byte", "bytes"),
            &plural(a.suppressed.blocks, "block", "blocks"),
        );
        o.push_str("</div>\n");
        if a.builtin_hidden.blocks > 0 {
            let _ = writeln!(
                o,
                "<p class=\"note\">Of the suppressed, {} in {} were hidden by the built-in list of \
                 runtime noise (<code>--no-builtin-suppressions</code> shows them).</p>",
                plural(a.builtin_hidden.bytes, "byte", "bytes"),
                plural(a.builtin_hidden.blocks, "block", "blocks")
            );
        }
    } else {
        card(
            o,
            "definitely_lost",
            "never freed",
            &plural(a.never_freed.bytes, "byte", "bytes"),
            &plural(a.never_freed.blocks, "block", "blocks"),
        );
        let _ = writeln!(
            o,
            "</div>\n<p class=\"note\">No leak scan: {}. Every block still live is listed as never freed.</p>",
            text(&report::no_scan_reason(model))
        );
    }
    o.push_str("</section>\n");
}

fn records(a: &Analysis, stacks: &mut Stacks, opts: &Options, o: &mut String) {
    o.push_str("<section id=\"records\">\n<h2>Loss records</h2>\n");
    let report::ShownRecords {
        of: n,
        shown,
        limit,
    } = report::shown_records(a, opts);
    for &(i, r) in &shown[..limit] {
        let all = stacks.frames(r.stack);
        let frames = report::shown_frames(&all, opts.depth);
        let _ = write!(
            o,
            "<details class=\"record\" open><summary><span class=\"kind {}\">{}</span>{}</summary>\n<ol class=\"stack\">",
            r.kind.name(),
            r.kind.describe(),
            text(&report::record_headline(r, i + 1, n))
        );
        for f in frames {
            let _ = write!(o, "<li><span class=\"fn\">{}</span>", text(&frame_name(f)));
            if let Some(place) = shown::frame_place(f) {
                let _ = write!(o, " <span class=\"loc\">({})</span>", text(&place));
            }
            if f.inlined {
                o.push_str(" <span class=\"inl\">[inlined]</span>");
            }
            o.push_str("</li>");
        }
        o.push_str("</ol>\n");
        let more = report::frames_beyond(&all, frames.len());
        if more > 0 {
            let _ = writeln!(
                o,
                "<div class=\"more\">… {more} more frames (<code>--depth 0</code> shows all)</div>"
            );
        }
        if all.is_empty() {
            o.push_str("<div class=\"more\">(no stack recorded)</div>\n");
        }
        if opts.gen_suppressions {
            if let Some(s) = report::suppression(r, i, &all) {
                let _ = writeln!(o, "<pre class=\"supp\">{}</pre>", text(&s));
            }
        }
        o.push_str("</details>\n");
    }
    if let Some(line) = report::records_fold_line(&shown[limit..]) {
        let _ = writeln!(o, "<p class=\"fold\">{}</p>", text(&line));
    }
    if a.scanned && n == 0 {
        o.push_str("<p>All heap blocks were freed — no leaks are possible.</p>\n");
    } else if shown.is_empty() {
        o.push_str("<p>No loss records of the kinds shown.</p>\n");
    }
    if a.scanned {
        let hidden: Vec<&str> = [
            LeakKind::DefinitelyLost,
            LeakKind::IndirectlyLost,
            LeakKind::PossiblyLost,
            LeakKind::StillReachable,
        ]
        .into_iter()
        .filter(|k| !opts.show.contains(k) && a.amount(*k).blocks > 0)
        .map(|k| k.describe())
        .collect();
        if !hidden.is_empty() {
            let _ = writeln!(
                o,
                "<p class=\"note\">Records of {} blocks are not shown: <code>--show all</code> shows them.</p>",
                hidden.join(" and ")
            );
        }
    }
    o.push_str("</section>\n");
}

fn growth(model: &Model, stacks: &mut Stacks, opts: &Options, o: &mut String) {
    let (v, e) = timeline::verdict(&model.timeline, model.duration_us);
    let _ = write!(
        o,
        "<section id=\"growth\">\n<h2>Heap growth</h2>\n<p class=\"verdict\"><b class=\"{0}\">{0}</b> {1}</p>\n",
        v.name(),
        text(&e.reason)
    );
    let program = model
        .process
        .as_ref()
        .map(|p| p.argv.join(" "))
        .unwrap_or_default();
    let svg = timeline::svg(
        &model.timeline,
        model.duration_us,
        (model.totals.peak_time_us, model.totals.peak_bytes),
        &program,
    );
    // Inline: the curve has no script, and inline it scales with the page.
    let at = svg.find("<svg").unwrap_or(0);
    let _ = writeln!(o, "<div class=\"curve\">{}</div>", &svg[at..]);
    let growth = timeline::growth(&model.timeline, model.duration_us);
    let sites = shown::growth_sites(&growth, stacks);
    if sites.is_empty() {
        let _ = writeln!(
            o,
            "<p class=\"note\">No call site's live bytes grew across the judged part of the run{}.</p>",
            if v == Verdict::Inconclusive {
                " (or the run was too short to tell)"
            } else {
                ""
            }
        );
    } else {
        o.push_str(
            "<table><thead><tr><th>growth</th><th>blocks</th><th>share</th><th>freed</th>\
             <th>call site (the program's own frames first)</th></tr></thead><tbody>\n",
        );
        let n = shown::sites_shown(&sites, opts.limit);
        for s in &sites[..n] {
            let _ = writeln!(
                o,
                "<tr><td class=\"num\">+{}</td><td class=\"num\">{}</td><td class=\"num\">{:.0}%</td>\
                 <td>{}</td><td class=\"site\">{}</td></tr>",
                text(&plural(s.bytes, "byte", "bytes")),
                commas(s.blocks),
                s.share * 100.0,
                if s.freed_at_exit {
                    "only at exit"
                } else {
                    "during the run"
                },
                text(&s.line)
            );
        }
        o.push_str("</tbody></table>\n");
        if let Some(line) = report::sites_fold_line(&sites[n..]) {
            let _ = writeln!(o, "<p class=\"fold\">{}</p>", text(&line));
        }
    }
    o.push_str("</section>\n");
}

/// The four flamegraphs, one tab each. The leaked one counts the kinds the
/// loss records show (with the indirect bytes of definitely lost blocks)
/// and leaves out what the suppressions hid, as the records do.
fn flames(
    model: &mut Model,
    peak: &Model,
    a: &Analysis,
    opts: &Options,
    o: &mut String,
) -> Result<()> {
    let mut kinds = opts.show.clone();
    if kinds.contains(&LeakKind::DefinitelyLost) && !kinds.contains(&LeakKind::IndirectlyLost) {
        kinds.push(LeakKind::IndirectlyLost);
    }
    o.push_str(
        "<section id=\"flamegraph\">\n<h2>Flamegraph</h2>\n<div class=\"tabs\" role=\"tablist\">",
    );
    let suppressed: HashSet<(RecordKind, u64, leakhunt_format::AllocFn)> = a
        .records
        .iter()
        .filter(|r| r.suppressed_by.is_some())
        .map(|r| (r.kind, r.stack, r.func))
        .collect();
    let mut drawn: Vec<String> = Vec::with_capacity(FLAMES.len());
    for (what, _, _) in &FLAMES {
        let mut svg = Vec::new();
        let style = flamegraph::Style::default();
        match what {
            What::Peak => flamegraph::render(peak, *what, &kinds, &style, &mut svg)?,
            What::Leaked if !suppressed.is_empty() => {
                // The suppressed blocks are set aside while this one is drawn.
                let all = std::mem::take(&mut model.live);
                let (hidden, kept): (Vec<_>, Vec<_>) = all.into_iter().partition(|(ptr, b)| {
                    let kind = match (&model.scan, model.verdicts.get(ptr)) {
                        (None, _) => RecordKind::NeverFreed,
                        (Some(_), v) => {
                            RecordKind::Leak(v.map_or(LeakKind::StillReachable, |v| v.kind))
                        }
                    };
                    suppressed.contains(&(kind, b.stack, b.func))
                });
                model.live = kept.into_iter().collect();
                let r = flamegraph::render(model, *what, &kinds, &style, &mut svg);
                model.live.extend(hidden);
                r?
            }
            _ => flamegraph::render(model, *what, &kinds, &style, &mut svg)?,
        }
        drawn.push(String::from_utf8(svg)?);
    }
    // The first tab with something drawn is the one open (a program that
    // leaks nothing still has its peak and its churn to show).
    let open = drawn
        .iter()
        .position(|svg| svg.contains("id=\"frames\""))
        .unwrap_or(0);
    for (i, (what, label, _)) in FLAMES.iter().enumerate() {
        let _ = write!(
            o,
            "<button type=\"button\" role=\"tab\" data-panel=\"{}\" aria-selected=\"{}\">{label}</button>",
            name(*what),
            i == open
        );
    }
    o.push_str("</div>\n");
    for (i, ((what, _, about), svg)) in FLAMES.iter().zip(&drawn).enumerate() {
        let height = svg_height(svg).unwrap_or(600);
        let at = svg.find("<svg").unwrap_or(0);
        let doc = format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>html,body{{margin:0}}svg{{display:block;width:100%}}</style>\
             {FRAME_PRELUDE}</head><body>{}</body></html>",
            &svg[at..]
        );
        let _ = writeln!(
            o,
            "<div class=\"panel{}\" id=\"fg-{}\" role=\"tabpanel\"><p>{about} Click a frame to zoom, \
             Search (or Ctrl-F inside it) to highlight matching frames.</p>\
             <iframe title=\"{} flamegraph\" data-what=\"{}\" style=\"height:{}px\" srcdoc=\"{}\"></iframe></div>",
            if i == open { "" } else { " hidden" },
            name(*what),
            name(*what),
            name(*what),
            height + 4,
            attr(&doc)
        );
    }
    o.push_str("</section>\n");
    Ok(())
}

fn name(w: What) -> &'static str {
    match w {
        What::Leaked => "leaked",
        What::Peak => "peak",
        What::Allocated => "allocated",
        What::Temporary => "temporary",
    }
}

/// The `height` of an SVG's root element, to size the frame that holds it.
fn svg_height(svg: &str) -> Option<u32> {
    let root = &svg[svg.find("<svg")?..];
    let root = &root[..root.find('>')?];
    let i = root.find(" height=\"")? + 9;
    root[i..]
        .split('"')
        .next()?
        .parse::<f64>()
        .ok()
        .map(|h| h as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_heights_are_read_from_the_root() {
        assert_eq!(
            svg_height("<?xml?><svg version=\"1.1\" width=\"1200\" height=\"374\" onload=\"x\"><rect height=\"9\"/></svg>"),
            Some(374)
        );
        assert_eq!(
            svg_height("<svg width=\"1\"><rect height=\"9\"/></svg>"),
            None
        );
    }
}
