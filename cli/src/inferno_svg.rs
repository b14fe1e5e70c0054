//! What inferno's `Options` cannot say, added to the SVG it wrote: a legend
//! for the colours, per-frame fills and tooltips computed from our own data
//! (leak kinds, block counts, a diff's before and after), short labels with
//! the full name kept in the tooltip, and a search button that can be seen.
//!
//! Every function here edits inferno's frame elements, which it writes as
//! `<g><title>T</title><rect … fill="…" fg:x="X" fg:w="W"/><text …>L</text></g>`;
//! anything else in the document passes through untouched. Shared by the
//! flamegraph and diff views.

use std::fmt::Write as _;
use std::ops::Range;

/// One frame of the picture, as inferno drew it.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The tooltip, unescaped: "NAME (N bytes, P%)".
    pub title: String,
    /// The samples it covers: `[x, x + w)` of the input lines' weights, in
    /// the order the lines were given.
    pub x: u64,
    pub w: u64,
    /// Its width as a share of the frames' area, in percent.
    pub width_pct: f64,
    /// `rgb(…)`.
    pub fill: String,
    /// The text drawn in the box (inferno's truncation of the name).
    pub label: String,
    /// What the box shows when there is room, if not its name (a shortened
    /// C++ name): kept on the frame so that zooming redraws it too (see
    /// `labels_survive_zoom`).
    pub short: Option<String>,
}

impl Frame {
    /// The frame's name: its tooltip without the counts inferno appends.
    pub fn name(&self) -> &str {
        self.title
            .rfind(" (")
            .map_or(self.title.as_str(), |i| &self.title[..i])
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    let rest = &tag[i..];
    Some(&rest[..rest.find('"')?])
}

fn set_attr(tag: &str, name: &str, value: &str) -> String {
    let key = format!(" {name}=\"");
    match tag.find(&key) {
        Some(i) => {
            let start = i + key.len();
            let end = tag[start..].find('"').map_or(tag.len(), |j| start + j);
            format!("{}{}{}", &tag[..start], value, &tag[end..])
        }
        None => tag.to_string(),
    }
}

/// Calls `edit` on every frame and writes back its title, fill and label.
pub fn rewrite_frames(svg: &str, mut edit: impl FnMut(&mut Frame)) -> String {
    let mut out = String::with_capacity(svg.len() + svg.len() / 8);
    let mut rest = svg;
    while let Some(i) = rest.find("<g><title>") {
        let t0 = i + "<g><title>".len();
        let parts = (|| {
            let t1 = t0 + rest[t0..].find("</title>")?;
            let r0 = t1 + rest[t1..].find("<rect")?;
            let r1 = r0 + rest[r0..].find("/>")? + 2;
            let x0 = r1 + rest[r1..].find("<text")?;
            let x1 = x0 + rest[x0..].find('>')? + 1;
            let x2 = x1 + rest[x1..].find("</text>")?;
            Some((t1, r0, r1, x1, x2))
        })();
        let Some((t1, r0, r1, x1, x2)) = parts else {
            break;
        };
        let rect = &rest[r0..r1];
        let mut f = Frame {
            title: unescape(&rest[t0..t1]),
            x: attr(rect, "fg:x").and_then(|v| v.parse().ok()).unwrap_or(0),
            w: attr(rect, "fg:w").and_then(|v| v.parse().ok()).unwrap_or(0),
            width_pct: attr(rect, "width")
                .and_then(|v| v.trim_end_matches('%').parse().ok())
                .unwrap_or(0.0),
            fill: attr(rect, "fill").unwrap_or_default().to_string(),
            label: unescape(&rest[x1..x2]),
            short: None,
        };
        edit(&mut f);
        out.push_str(&rest[..i]);
        match &f.short {
            Some(short) => {
                let _ = write!(out, "<g data-label=\"{}\"><title>", escape(short));
            }
            None => out.push_str("<g><title>"),
        }
        out.push_str(&escape(&f.title));
        out.push_str(&rest[t1..r0]);
        out.push_str(&set_attr(rect, "fill", &f.fill));
        out.push_str(&rest[r1..x1]);
        out.push_str(&escape(&f.label));
        rest = &rest[x2..];
    }
    out.push_str(rest);
    out
}

/// The input lines (by their first sample, `starts`, sorted) a frame
/// spanning `[x, x + w)` covers.
pub fn lines_of(starts: &[u64], x: u64, w: u64) -> Range<usize> {
    starts.partition_point(|&s| s < x)..starts.partition_point(|&s| s < x + w)
}

/// `label` as inferno would fit it in a box `width_pct` wide (the same
/// rule, by characters rather than bytes): whole, or cut with "..", or
/// nothing under three characters' room.
pub fn fit_label(label: &str, width_pct: f64, opts: &inferno::flamegraph::Options) -> String {
    let image_width = opts.image_width.unwrap_or(1200) as f64;
    let fit = (width_pct / (100.0 * opts.font_size as f64 * opts.font_width / image_width)).trunc()
        as usize;
    if fit < 3 {
        String::new()
    } else if label.chars().count() < fit {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(fit - 2).collect();
        s.push_str("..");
        s
    }
}

/// inferno's script redraws every label from its tooltip when the view
/// zooms; where a frame carries a `data-label` (its short name), that is
/// what it draws instead, so a zoomed C++ frame reads as it did before.
pub fn labels_survive_zoom(svg: &str) -> String {
    svg.replace(
        r#"find_child(e, "title").textContent.replace(/\([^(]*\)$/,"")"#,
        r#"(e.getAttribute("data-label") || find_child(e, "title").textContent.replace(/\([^(]*\)$/,""))"#,
    )
}

/// inferno's search button is drawn at 10% opacity until hovered: shown in
/// full, so a reader knows it is there.
pub fn search_visible(svg: &str) -> String {
    svg.replacen(
        "#search { text-anchor:end; opacity:0.1;",
        "#search { text-anchor:end; opacity:1; font-weight:bold;",
        1,
    )
}

/// A row of colour swatches with their meaning, added under the picture
/// (the document grows by one line; inferno's layout above is untouched).
pub fn add_legend(svg: &str, items: &[(String, String)]) -> String {
    if items.is_empty() {
        return svg.to_string();
    }
    let Some(open) = svg.find("<svg version=") else {
        return svg.to_string();
    };
    let tag_end = open + svg[open..].find('>').unwrap_or(0);
    let tag = &svg[open..tag_end];
    let Some(h) = attr(tag, "height").and_then(|v| v.parse::<f64>().ok()) else {
        return svg.to_string();
    };
    let width = attr(tag, "width").unwrap_or("1200");
    let grown = h + 22.0;
    let tag2 = set_attr(
        &set_attr(tag, "height", &format!("{grown}")),
        "viewBox",
        &format!("0 0 {width} {grown}"),
    );
    let mut out = String::with_capacity(svg.len() + 1024);
    out.push_str(&svg[..open]);
    out.push_str(&tag2);
    let body = &svg[tag_end..];
    // The background grows with the picture.
    let bg = format!("<rect x=\"0\" y=\"0\" width=\"100%\" height=\"{h}\"");
    let body = body.replacen(
        &bg,
        &format!("<rect x=\"0\" y=\"0\" width=\"100%\" height=\"{grown}\""),
        1,
    );
    let Some(close) = body.rfind("</svg>") else {
        out.push_str(&body);
        return out;
    };
    out.push_str(&body[..close]);
    let y = h + 8.0;
    let mut g = format!("<g id=\"legend\" transform=\"translate(10,{y})\">");
    let mut x = 0.0;
    for (color, text) in items {
        let _ = write!(
            g,
            "<rect x=\"{x:.1}\" y=\"0\" width=\"14\" height=\"10\" fill=\"{color}\" stroke=\"#888\" stroke-width=\"0.5\"/><text x=\"{:.1}\" y=\"9\">{}</text>",
            x + 18.0,
            escape(text)
        );
        // inferno's style sheet sets all text in 12 px monospace (over the
        // group's font-size): 0.6 em a character, and some slack.
        x += 18.0 + text.chars().count() as f64 * 12.0 * 0.62 + 16.0;
    }
    g.push_str("</g>");
    out.push_str(&g);
    out.push_str(&body[close..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_rewritten_in_place() {
        let svg = r#"<svg version="1.1" width="1200" height="100" viewBox="0 0 1200 100"><rect x="0" y="0" width="100%" height="100" fill="url(#background)"/><g><title>f&lt;int&gt; (10 bytes, 100%)</title><rect x="0%" y="1" width="50%" height="15" fill="rgb(1,2,3)" fg:x="0" fg:w="10"/><text x="0.25%" y="5">f&lt;int&gt;</text></g></svg>"#;
        let out = rewrite_frames(svg, |f| {
            assert_eq!(f.name(), "f<int>");
            assert_eq!((f.x, f.w, f.width_pct), (0, 10, 50.0));
            f.fill = "rgb(9,9,9)".into();
            f.label = "f".into();
            f.title = "f<int> (a tooltip)".into();
            f.short = Some("f<…>".into());
        });
        assert!(
            out.contains("<g data-label=\"f&lt;…&gt;\"><title>"),
            "{out}"
        );
        assert!(out.contains("fill=\"rgb(9,9,9)\""), "{out}");
        assert!(out.contains(">f</text>"), "{out}");
        assert!(
            out.contains("<title>f&lt;int&gt; (a tooltip)</title>"),
            "{out}"
        );
        let out = add_legend(&out, &[("rgb(1,1,1)".into(), "meaning".into())]);
        assert!(
            out.contains("height=\"122\" viewBox=\"0 0 1200 122\""),
            "{out}"
        );
        assert!(
            out.contains("height=\"122\" fill=\"url(#background)\""),
            "{out}"
        );
        assert!(out.contains(">meaning</text>") && out.ends_with("</g></svg>"));
    }

    #[test]
    fn spans_map_to_input_lines() {
        // Lines of 100, 50 and 25 samples.
        let starts = [0, 100, 150];
        assert_eq!(lines_of(&starts, 0, 175), 0..3);
        assert_eq!(lines_of(&starts, 100, 50), 1..2);
        assert_eq!(lines_of(&starts, 100, 75), 1..3);
    }
}
