//! The memory curve as a standalone SVG (`leakhunt timeline`; the HTML
//! report embeds the same picture through `timeline::svg`).
//!
//! What it must make obvious at a glance: the live heap's shape on a scale
//! of its own (a 50-240 KiB heap fills the plot even when RSS is 4 MiB),
//! the part of the run the verdict judged and the floor it read there,
//! drawn on the curve in the verdict's colour, and round ticks. Text is
//! laid out so that no two labels overlap: the legend sits above the plot,
//! the labels inside it are placed against each other's boxes.
//!
//! Plain SVG written by hand: a plotting crate would bring fonts and a
//! raster back end for two lines and a band.

use crate::axis::{byte_ticks, text_width, time_ticks_fitting, Ticks};
use crate::timeline::{human_bytes, verdict, Evidence, Timeline, Verdict};
use std::fmt::Write as _;

/// How resident set size is drawn beside the heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RssScale {
    /// Not recorded (or a single sample): not drawn, not in the legend.
    None,
    /// On the heap's axis: the two are of a size.
    Shared,
    /// On an axis of its own, on the right.
    OwnAxis,
}

/// The heap's axis always ends just above the heap's own peak. RSS shares
/// it when RSS stays within twice that peak (the heap still fills half the
/// height and the two read on one scale); above that, RSS gets its own
/// axis, or the heap would lie flat on the floor under it.
pub fn rss_scale(heap_max: u64, rss_max: u64, rss_samples: usize) -> RssScale {
    if rss_samples < 2 || rss_max == 0 {
        RssScale::None
    } else if rss_max <= heap_max.saturating_mul(2) {
        RssScale::Shared
    } else {
        RssScale::OwnAxis
    }
}

/// A label's box on the page, to keep labels apart.
#[derive(Debug, Clone, Copy)]
struct Rect {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Rect {
    /// The box of `text` at font size `px` drawn at (x, baseline y) with
    /// the given `text-anchor`.
    fn of_text(text: &str, px: f64, x: f64, y: f64, anchor: &str) -> Rect {
        let w = text_width(text, px);
        let x0 = match anchor {
            "end" => x - w,
            "middle" => x - w / 2.0,
            _ => x,
        };
        Rect {
            x0,
            y0: y - px,
            x1: x0 + w,
            y1: y + px * 0.25,
        }
    }
    fn overlaps(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }
    fn inside(&self, o: &Rect) -> bool {
        self.x0 >= o.x0 && self.x1 <= o.x1 && self.y0 >= o.y0 && self.y1 <= o.y1
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The verdict's colour: red for the leak, calmer ones for the rest.
fn verdict_color(v: Verdict) -> &'static str {
    match v {
        Verdict::Growing => "#c00000",
        Verdict::Steady => "#2e7d32",
        Verdict::EarlyGrowth => "#6a4c9c",
        Verdict::Burst => "#b06000",
        Verdict::Inconclusive => "#777777",
    }
}

/// "growing, floor +113 KiB/s"
fn verdict_label(v: Verdict, e: &Evidence) -> String {
    match v {
        Verdict::Inconclusive => "inconclusive".into(),
        _ => format!(
            "{}: floor {}{}/s",
            v.name(),
            if e.minima_slope_bytes_per_s < 0.0 {
                "-"
            } else {
                "+"
            },
            human_bytes(e.minima_slope_bytes_per_s.abs())
        ),
    }
}

/// Where the floor stood in the judged part: at each work slice, the least
/// the heap holds from then to the end of the part (what the verdict read).
fn judged_floor(tl: &Timeline, e: &Evidence) -> Vec<(u64, u64)> {
    let part = tl.work.get(e.judged_slices.clone()).unwrap_or_default();
    let mut floor: Vec<u64> = part.iter().map(|w| w.min_bytes).collect();
    for i in (0..floor.len().saturating_sub(1)).rev() {
        floor[i] = floor[i].min(floor[i + 1]);
    }
    let mut pts = Vec::with_capacity(part.len() * 2);
    for (w, f) in part.iter().zip(floor) {
        pts.push((w.first_us, f));
        pts.push((w.last_us, f));
    }
    pts
}

/// The memory curve: the live heap as a band (lowest to highest of each
/// time slice) with its minima as a line, RSS when recorded (sharing the
/// heap's axis or on its own, see `rss_scale`), the parts left out of the
/// verdict greyed, the judged part's floor drawn in the verdict's colour,
/// and the peak marked. `peak` is (µs, bytes).
pub fn svg(tl: &Timeline, duration_us: u64, peak: (u64, u64), program: &str) -> String {
    let (v, e) = verdict(tl, duration_us);
    let heap_max = tl
        .buckets
        .iter()
        .map(|b| b.max_bytes)
        .max()
        .unwrap_or(0)
        .max(peak.1);
    let rss: Vec<_> = tl.buckets.iter().filter(|b| b.rss_bytes > 0).collect();
    let rss_max = rss.iter().map(|b| b.rss_bytes).max().unwrap_or(0);
    let scale = rss_scale(heap_max, rss_max, rss.len());

    let (w, h) = (1200.0, 480.0);
    let right = if scale == RssScale::OwnAxis {
        80.0
    } else {
        30.0
    };
    let (left, top, bottom) = (80.0, 88.0, 50.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let plot = Rect {
        x0: left,
        y0: top,
        x1: left + pw,
        y1: top + ph,
    };
    let dur = duration_us.max(1) as f64;
    let x = |us: f64| left + pw * (us / dur).clamp(0.0, 1.0);

    let heap_ticks = byte_ticks(
        if scale == RssScale::Shared {
            heap_max.max(rss_max)
        } else {
            heap_max
        } as f64,
        6,
    );
    let rss_ticks = byte_ticks(rss_max as f64, 6);
    let y_of = |t: &Ticks, bytes: f64| top + ph - ph * (bytes / t.top).clamp(0.0, 1.0);
    let y = |bytes: f64| y_of(&heap_ticks, bytes);
    let y_rss = |bytes: f64| {
        if scale == RssScale::OwnAxis {
            y_of(&rss_ticks, bytes)
        } else {
            y(bytes)
        }
    };

    let mut s = String::new();
    let _ = write!(
        s,
        r##"<?xml version="1.0" standalone="no"?>
<svg version="1.1" width="{w}" height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg" font-family="Verdana, sans-serif">
<rect x="0" y="0" width="{w}" height="{h}" fill="#fafafa"/>
"##
    );
    // The title keeps its words ("live heap over time: VERDICT"): tests and
    // readers look for them.
    let title = match v {
        Verdict::Inconclusive => format!(
            "leakhunt: live heap over time: {} (too short or too few events to judge)",
            v.name()
        ),
        _ => format!(
            "leakhunt: live heap over time: {} (floor {}{} per second)",
            v.name(),
            if e.minima_slope_bytes_per_s < 0.0 {
                "-"
            } else {
                "+"
            },
            human_bytes(e.minima_slope_bytes_per_s.abs()).replace(' ', "\u{a0}")
        ),
    };
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"28\" font-size=\"18\" text-anchor=\"middle\">{}</text>\n<text x=\"{}\" y=\"48\" font-size=\"12\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
        w / 2.0,
        xml(&title),
        w / 2.0,
        xml(program)
    );

    // The parts left out of the verdict, greyed, with the reason on hover.
    let mut greyed = false;
    if v != Verdict::Inconclusive {
        for (a, b, what) in [
            (0.0, e.startup_ms, "startup: not judged"),
            (
                e.teardown_ms.unwrap_or(0.0),
                e.teardown_ms.map(|_| dur / 1000.0),
                "teardown: not judged",
            ),
        ] {
            if let Some(b) = b {
                greyed = true;
                let _ = writeln!(
                    s,
                    "<rect x=\"{:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{ph:.1}\" fill=\"#e4e4e4\"><title>{what}</title></rect>",
                    x(a * 1000.0),
                    (x(b * 1000.0) - x(a * 1000.0)).max(0.0)
                );
            }
        }
    }

    // Grid and the heap's axis on the left.
    for (val, lab) in heap_ticks.values.iter().zip(&heap_ticks.labels) {
        let yy = y(*val);
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{lab}</text>",
            left + pw,
            left - 6.0,
            yy + 4.0,
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"16\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 16 {:.1})\" fill=\"#c55a11\">{}</text>",
        top + ph / 2.0,
        top + ph / 2.0,
        if scale == RssScale::Shared {
            "live heap and RSS"
        } else {
            "live heap"
        }
    );
    if scale == RssScale::OwnAxis {
        for (val, lab) in rss_ticks.values.iter().zip(&rss_ticks.labels) {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#2f5597\">{lab}</text>",
                left + pw + 6.0,
                y_rss(*val) + 4.0,
            );
        }
        let (rx, ry) = (w - 14.0, top + ph / 2.0);
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{top}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#2f5597\"/>\n<text x=\"{rx}\" y=\"{ry:.1}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(90 {rx} {ry:.1})\" fill=\"#2f5597\">resident set size (RSS)</text>",
            left + pw,
            left + pw,
            top + ph,
        );
    }
    let time_ticks = time_ticks_fitting(dur, pw, 10, 11.0);
    for (val, lab) in time_ticks.values.iter().zip(&time_ticks.labels) {
        let xx = x(*val);
        let _ = writeln!(
            s,
            "<line x1=\"{xx:.1}\" y1=\"{top}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>\n<text x=\"{xx:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{lab}</text>",
            top + ph,
            top + ph + 18.0,
        );
    }
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{:.1}\" stroke=\"#333\"/>\n<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">time</text>",
        top + ph,
        top + ph,
        left + pw,
        top + ph,
        left + pw / 2.0,
        h - 10.0
    );

    // The heap, slice by slice: each time slice spans its whole width, so
    // a run shorter than one slice still shows its range.
    let bucket_us = tl.bucket_us() as f64;
    let slices: Vec<(f64, f64, &crate::timeline::Bucket)> = tl
        .buckets
        .iter()
        .map(|b| {
            let a = b.start_us as f64;
            (a, (a + bucket_us).min(dur).max(a), b)
        })
        .collect();
    if !slices.is_empty() {
        let mut band: Vec<String> = Vec::with_capacity(slices.len() * 4);
        for (a, b, k) in &slices {
            band.push(format!("{:.1},{:.1}", x(*a), y(k.max_bytes as f64)));
            band.push(format!("{:.1},{:.1}", x(*b), y(k.max_bytes as f64)));
        }
        for (a, b, k) in slices.iter().rev() {
            band.push(format!("{:.1},{:.1}", x(*b), y(k.min_bytes as f64)));
            band.push(format!("{:.1},{:.1}", x(*a), y(k.min_bytes as f64)));
        }
        let _ = writeln!(
            s,
            "<polygon points=\"{}\" fill=\"#f4b183\" fill-opacity=\"0.7\" stroke=\"none\"><title>live heap (lowest to highest in each slice)</title></polygon>",
            band.join(" ")
        );
        let minima: Vec<String> = slices
            .iter()
            .flat_map(|(a, b, k)| {
                let yy = y(k.min_bytes as f64);
                [
                    format!("{:.1},{yy:.1}", x(*a)),
                    format!("{:.1},{yy:.1}", x(*b)),
                ]
            })
            .collect();
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#c55a11\" stroke-width=\"1.5\"><title>live heap, lowest in each slice</title></polyline>",
            minima.join(" ")
        );
    }
    if scale != RssScale::None {
        let pts: Vec<String> = rss
            .iter()
            .map(|b| {
                format!(
                    "{:.1},{:.1}",
                    x(b.start_us as f64),
                    y_rss(b.rss_bytes as f64)
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#2f5597\" stroke-width=\"1.2\" stroke-dasharray=\"5,3\"><title>resident set size</title></polyline>",
            pts.join(" ")
        );
    }

    // Labels inside the plot, each kept clear of those placed before it.
    let mut placed: Vec<Rect> = Vec::new();
    let mut place = |s: &mut String, text: &str, color: &str, candidates: &[(f64, f64, &str)]| {
        let fits = |r: &Rect| r.inside(&plot) && !placed.iter().any(|p| p.overlaps(r));
        let pick = candidates
            .iter()
            .map(|&(cx, cy, anchor)| (cx, cy, anchor, Rect::of_text(text, 11.0, cx, cy, anchor)))
            .find(|c| fits(&c.3));
        if let Some((cx, cy, anchor, r)) = pick {
            placed.push(r);
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#fafafa\" fill-opacity=\"0.85\"/><text x=\"{cx:.1}\" y=\"{cy:.1}\" font-size=\"11\" fill=\"{color}\" text-anchor=\"{anchor}\">{}</text>",
                r.x0 - 2.0,
                r.y0,
                r.x1 - r.x0 + 4.0,
                r.y1 - r.y0 + 1.0,
                xml(text)
            );
        }
    };

    // The peak.
    let (px, py) = (x(peak.0 as f64), y(peak.1 as f64));
    let peak_text = format!(
        "peak {} at {}",
        human_bytes(peak.1 as f64),
        crate::axis::time_label(peak.0 as f64)
    );
    let _ = writeln!(
        s,
        "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"4\" fill=\"#c00000\"><title>{peak_text}</title></circle>"
    );
    let side = if px > left + pw * 0.6 { "end" } else { "start" };
    let dx = if side == "end" { -8.0 } else { 8.0 };
    place(
        &mut s,
        &peak_text,
        "#c00000",
        &[
            (px + dx, py - 6.0, side),
            (px + dx, py + 16.0, side),
            (px + dx, py + 4.0, side),
            (left + pw - 4.0, top + 14.0, "end"),
            (left + 6.0, top + 14.0, "start"),
        ],
    );

    // The judged part's floor in the verdict's colour, named on the curve.
    let floor = if v == Verdict::Inconclusive {
        Vec::new()
    } else {
        judged_floor(tl, &e)
    };
    let color = verdict_color(v);
    if floor.len() >= 2 {
        let pts: Vec<String> = floor
            .iter()
            .map(|&(us, b)| format!("{:.1},{:.1}", x(us as f64), y(b as f64)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"3\" stroke-opacity=\"0.85\"><title>the floor of the judged part ({:.2}-{:.2} s): {}</title></polyline>",
            pts.join(" "),
            e.from_ms / 1e3,
            e.to_ms / 1e3,
            xml(&e.reason)
        );
        let label = format!("judged: {}", verdict_label(v, &e));
        let (mid_us, mid_b) = floor[floor.len() / 2];
        let (fx, fy) = (x(mid_us as f64), y(mid_b as f64));
        // Above the heap's highest point under the label, else below its
        // lowest: next to the curve, never over it.
        let half = text_width(&label, 11.0) / 2.0 + 4.0;
        let (lo_us, hi_us) = ((fx - half - left) / pw * dur, (fx + half - left) / pw * dur);
        let under: Vec<_> = slices
            .iter()
            .filter(|(a, b, _)| *b >= lo_us && *a <= hi_us)
            .collect();
        let above = under
            .iter()
            .map(|(_, _, k)| y(k.max_bytes as f64))
            .fold(fy, f64::min);
        let below = under
            .iter()
            .map(|(_, _, k)| y(k.min_bytes as f64))
            .fold(fy, f64::max);
        place(
            &mut s,
            &label,
            color,
            &[
                (fx, above - 6.0, "middle"),
                (fx, below + 16.0, "middle"),
                (fx, fy - 10.0, "middle"),
                (fx, fy + 18.0, "middle"),
                (left + pw / 2.0, top + 30.0, "middle"),
            ],
        );
    } else if v == Verdict::Inconclusive {
        place(
            &mut s,
            "too short or too few events to judge a trend",
            color,
            &[
                (left + pw / 2.0, top + ph / 2.0, "middle"),
                (left + pw / 2.0, top + 30.0, "middle"),
            ],
        );
    }

    // The legend, above the plot: only what is drawn.
    let mut items: Vec<(&str, String)> = vec![
        (
            "band",
            "live heap (lowest to highest per slice)".to_string(),
        ),
        ("minima", "its minima".to_string()),
    ];
    if floor.len() >= 2 {
        items.push(("floor", format!("floor of the judged part: {}", v.name())));
    }
    if greyed {
        items.push(("grey", "not judged (startup, teardown)".into()));
    }
    match scale {
        RssScale::OwnAxis => items.push(("rss", "RSS (right axis)".into())),
        RssScale::Shared => items.push(("rss", "RSS".into())),
        RssScale::None => {}
    }
    let (mut lx, ly) = (left, 72.0);
    s.push_str("<g font-size=\"11\">");
    for (kind, text) in &items {
        let sw = match *kind {
            "band" => "<rect x=\"{x}\" y=\"{y0}\" width=\"14\" height=\"9\" fill=\"#f4b183\"/>".to_string(),
            "grey" => "<rect x=\"{x}\" y=\"{y0}\" width=\"14\" height=\"9\" fill=\"#e4e4e4\" stroke=\"#bbb\"/>".to_string(),
            "minima" => "<line x1=\"{x}\" y1=\"{ym}\" x2=\"{x2}\" y2=\"{ym}\" stroke=\"#c55a11\" stroke-width=\"1.5\"/>".to_string(),
            "floor" => format!("<line x1=\"{{x}}\" y1=\"{{ym}}\" x2=\"{{x2}}\" y2=\"{{ym}}\" stroke=\"{color}\" stroke-width=\"3\"/>"),
            _ => "<line x1=\"{x}\" y1=\"{ym}\" x2=\"{x2}\" y2=\"{ym}\" stroke=\"#2f5597\" stroke-dasharray=\"5,3\"/>".to_string(),
        };
        s.push_str(
            &sw.replace("{x}", &format!("{lx:.1}"))
                .replace("{x2}", &format!("{:.1}", lx + 14.0))
                .replace("{y0}", &format!("{:.1}", ly - 8.0))
                .replace("{ym}", &format!("{:.1}", ly - 4.0)),
        );
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{ly}\">{}</text>",
            lx + 19.0,
            xml(text)
        );
        lx += 19.0 + text_width(text, 11.0) + 18.0;
    }
    s.push_str("</g>\n</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;

    #[test]
    fn the_heap_gets_its_own_scale_under_a_big_rss() {
        // The demo's service: a 50-240 KiB heap, 2.6-4 MiB of RSS.
        assert_eq!(rss_scale(240 * KIB, 4 * MIB, 100), RssScale::OwnAxis);
        // Of a size: one axis reads both.
        assert_eq!(rss_scale(3 * MIB, 5 * MIB, 100), RssScale::Shared);
        assert_eq!(rss_scale(3 * MIB, 6 * MIB + 1, 100), RssScale::OwnAxis);
        // Nothing to draw: not on the axis, not in the legend.
        assert_eq!(rss_scale(3 * MIB, 0, 0), RssScale::None);
        assert_eq!(rss_scale(3 * MIB, 5 * MIB, 1), RssScale::None);
    }

    /// A run of `dur` µs: the heap rising from 50 to 240 KiB, RSS at 4 MiB
    /// sampled every 10 ms when `with_rss`.
    fn timeline(dur: u64, with_rss: bool) -> Timeline {
        let mut tl = Timeline::default();
        let step = (dur / 4000).max(1);
        for us in (0..dur).step_by(step as usize) {
            let base = 50 * KIB + 190 * KIB * us / dur;
            let saw = (us / step % 10) * 512;
            tl.sample(us, base + saw);
            if with_rss && us % 10_000 < step {
                tl.rss(4 * MIB + us);
            }
        }
        tl
    }

    /// Text elements' contents.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| Some(t[t.find('>')? + 1..t.find("</text>")?].to_string()))
            .collect()
    }

    #[test]
    fn a_small_heap_under_a_big_rss_fills_the_plot() {
        let tl = timeline(2_000_000, true);
        let svg = svg(&tl, 2_000_000, (1_999_000, 241 * KIB), "prog");
        let t = texts(&svg);
        // The heap's own axis ends at the round value above its peak, RSS
        // reads on the right, and the legend says so.
        assert!(t.iter().any(|l| l == "250 KiB"), "{t:?}");
        assert!(t.iter().any(|l| l == "5 MiB"), "{t:?}");
        assert!(t.iter().any(|l| l == "RSS (right axis)"), "{t:?}");
        // Ticks are round and distinct: no "714.4 KiB", no "0.00 s".
        assert!(t.iter().any(|l| l == "0.2 s") && t.iter().any(|l| l == "1.8 s"));
        // The judged part and its verdict are on the curve.
        assert!(t.iter().any(|l| l.starts_with("judged: growing")), "{t:?}");
        assert!(svg.contains("the floor of the judged part"));
    }

    #[test]
    fn without_rss_the_legend_has_no_rss() {
        let tl = timeline(2_000_000, false);
        let svg = svg(&tl, 2_000_000, (1_999_000, 241 * KIB), "prog");
        assert!(!texts(&svg).iter().any(|l| l.contains("RSS")), "{svg}");
    }

    #[test]
    fn a_short_run_has_distinct_ticks_and_a_visible_heap() {
        let tl = timeline(3_000, false);
        let svg = svg(&tl, 3_000, (2_900, 241 * KIB), "prog");
        let t = texts(&svg);
        let ticks: Vec<&String> = t.iter().filter(|l| l.ends_with(" ms")).collect();
        let mut d = ticks.clone();
        d.dedup();
        assert!(ticks.len() >= 4 && d.len() == ticks.len(), "{ticks:?}");
        assert!(t.iter().any(|l| l.starts_with("too short")), "{t:?}");
        assert!(svg.contains("<polygon"), "the band is drawn");
    }

    /// Every text box inside the plot and in the legend stays clear of the
    /// others, whatever the run's length.
    #[test]
    fn labels_never_overlap() {
        for (dur, rss) in [(3_000, false), (2_000_000, true), (90_000, true)] {
            let tl = timeline(dur, rss);
            let svg = svg(&tl, dur, (dur - dur / 100, 241 * KIB), "prog");
            let mut boxes = Vec::new();
            for t in svg.split("<text").skip(1) {
                let attr = |n: &str| -> Option<f64> {
                    let i = t.find(&format!(" {n}=\""))? + n.len() + 3;
                    t[i..i + t[i..].find('"')?].parse().ok()
                };
                let (Some(x), Some(y)) = (attr("x"), attr("y")) else {
                    continue;
                };
                if t.contains("rotate(") {
                    continue;
                }
                let anchor = if t.contains("\"end\"") {
                    "end"
                } else if t.contains("\"middle\"") {
                    "middle"
                } else {
                    "start"
                };
                let size = attr("font-size").unwrap_or(11.0);
                let body = &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()];
                boxes.push((body.to_string(), Rect::of_text(body, size, x, y, anchor)));
            }
            // The legend's group sets the size for its texts.
            for (i, a) in boxes.iter().enumerate() {
                for b in &boxes[i + 1..] {
                    assert!(
                        !a.1.overlaps(&b.1),
                        "{dur} µs: {:?} overlaps {:?}",
                        a.0,
                        b.0
                    );
                }
            }
        }
    }
}
