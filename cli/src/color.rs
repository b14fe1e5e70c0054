//! Colour for the text report on a terminal: headings in bold, each leak
//! kind in its own colour (the flamegraphs' colours, near enough in ANSI).
//! Off when standard output is not a terminal, when `NO_COLOR` is set to
//! anything (no-color.org), or for `TERM=dumb`.

use std::io::IsTerminal;

const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// The phrases painted, and their colours.
const KINDS: [(&str, &str); 4] = [
    ("definitely lost", "\x1b[1;31m"),
    ("indirectly lost", "\x1b[33m"),
    ("possibly lost", "\x1b[35m"),
    ("still reachable", "\x1b[34m"),
];

/// Whether standard output should get colour.
pub fn wanted() -> bool {
    std::env::var_os("NO_COLOR").is_none()
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
        && std::io::stdout().is_terminal()
}

/// `text` with ANSI colour: a line that is a heading (`HEAP SUMMARY:`,
/// `LEAK SUMMARY:`, `HEAP GROWTH: …`) in bold, each leak kind's name in its
/// colour wherever it is the subject (summary lines, loss-record headlines).
pub fn paint(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let heading = body.split_once(':').is_some_and(|(h, _)| {
            !h.is_empty() && h.chars().all(|c| c.is_ascii_uppercase() || c == ' ')
        });
        if heading {
            out.push_str(BOLD);
            out.push_str(body);
            out.push_str(RESET);
        } else {
            out.push_str(&paint_kinds(body));
        }
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

fn paint_kinds(line: &str) -> String {
    let mut s = line.to_string();
    for (phrase, code) in KINDS {
        if let Some(i) = s.find(phrase) {
            s.replace_range(i..i + phrase.len(), &format!("{code}{phrase}{RESET}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::paint;

    #[test]
    fn headings_bold_kinds_coloured_rest_untouched() {
        let t = "HEAP SUMMARY:\n    in use at exit: 5 bytes\n   definitely lost: 5 bytes in 1 block\n   at main (a.c:3)\n";
        let p = paint(t);
        assert!(p.starts_with("\x1b[1mHEAP SUMMARY:\x1b[0m\n"));
        assert!(p.contains("\x1b[1;31mdefinitely lost\x1b[0m: 5 bytes"));
        assert!(p.contains("\n   at main (a.c:3)\n"));
        // Without the escapes, the same text.
        let plain: String = p
            .replace("\x1b[1m", "")
            .replace("\x1b[0m", "")
            .replace("\x1b[1;31m", "");
        assert_eq!(plain, t);
    }
}
