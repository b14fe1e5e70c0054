//! What the views for people (the text report, the HTML page) share: how a
//! long list ends, how a growing call site and a stack frame read.
//!
//! Both views fold the same tail the same way, so the page attached to a
//! bug report and the text pasted beside it agree line for line. JSON is for
//! machines and never folds (it keeps every record and site).

use crate::stacks::{module_short, short_file, site_line, Stacks};
use crate::symbolize::{Frame, Language};
use std::collections::HashMap;

/// Loss records always shown before the tail may be folded.
pub const KEEP_RECORDS: usize = 10;
/// The default longest list of loss records (`--limit` changes it).
pub const MAX_RECORDS: usize = 25;
/// Shown loss records stop once they hold this share of the bytes: the
/// rest are each worth a fraction of a percent.
pub const RECORDS_SHARE: f64 = 0.99;
/// Growing sites: at most this many by default, and after the first only
/// those with at least `SITE_MIN_SHARE` of the growth.
pub const MAX_SITES: usize = 5;
pub const SITE_MIN_SHARE: f64 = 0.02;

/// How many of a list of loss records (their bytes, largest first) a view
/// for people shows. `limit` is the user's `--limit`: `Some(0)` shows all,
/// `Some(n)` up to `n`, with no folding by share (asked for, so given);
/// `None` is the default rule: at least `KEEP_RECORDS`, then until the
/// shown ones hold `RECORDS_SHARE` of the bytes, at most `MAX_RECORDS`.
pub fn records_shown(bytes: &[u64], limit: Option<usize>) -> usize {
    match limit {
        Some(0) => bytes.len(),
        Some(n) => bytes.len().min(n),
        None => {
            let total: u64 = bytes.iter().sum();
            let enough = (total as f64 * RECORDS_SHARE).ceil() as u64;
            let mut sum = 0u64;
            let mut n = 0;
            for &b in bytes.iter().take(MAX_RECORDS) {
                if n >= KEEP_RECORDS && sum >= enough {
                    break;
                }
                sum += b;
                n += 1;
            }
            n
        }
    }
}

/// A call site whose live bytes grew, as the reader sees it: the stacks
/// that differ only below the line shown (the interpreter's or the C
/// library's paths to malloc) are one site.
#[derive(Debug, Clone)]
pub struct GrowthSite {
    /// The program's own frames first, `f (a.c:3) < g (a.c:9)`.
    pub line: String,
    pub bytes: u64,
    pub blocks: u64,
    /// Share of the growth of all growing sites.
    pub share: f64,
    /// Every stack of the site was freed only at exit.
    pub freed_at_exit: bool,
}

/// The growing call sites of `growth`, merged by the line shown, largest
/// growth first.
pub fn growth_sites(growth: &[crate::timeline::Growth], stacks: &mut Stacks) -> Vec<GrowthSite> {
    let mut sites: Vec<GrowthSite> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for g in growth {
        let line = site_line(&stacks.frames(g.stack), 3);
        let i = *index.entry(line.clone()).or_insert_with(|| {
            sites.push(GrowthSite {
                line,
                bytes: 0,
                blocks: 0,
                share: 0.0,
                freed_at_exit: true,
            });
            sites.len() - 1
        });
        let s = &mut sites[i];
        s.bytes += g.bytes;
        s.blocks += g.blocks;
        s.share += g.share;
        s.freed_at_exit &= g.freed_at_exit;
    }
    sites.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.line.cmp(&b.line)));
    sites
}

/// How many growing sites a view for people shows: `limit` as in
/// [`records_shown`]; by default a handful that matter (the first always,
/// then those holding at least `SITE_MIN_SHARE`, at most `MAX_SITES`).
pub fn sites_shown(sites: &[GrowthSite], limit: Option<usize>) -> usize {
    match limit {
        Some(0) => sites.len(),
        Some(n) => sites.len().min(n),
        None => sites
            .iter()
            .enumerate()
            .take_while(|(i, s)| *i < MAX_SITES && (*i == 0 || s.share >= SITE_MIN_SHARE))
            .count(),
    }
}

/// Where a frame is, as a loss record shows it: `a.c:12` (the file's last
/// components), or `in libfoo.so` when only the module is known.
pub fn frame_place(f: &Frame) -> Option<String> {
    if let (Some(file), Some(l)) = (&f.file, f.line) {
        let file = if f.language == Language::Python {
            short_file(file)
        } else {
            module_short(file)
        };
        Some(format!("{file}:{l}"))
    } else if f.function.is_some() && !f.module.is_empty() && &*f.module != "?" {
        Some(format!("in {}", module_short(&f.module)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_tail_of_records_is_folded() {
        // Two big records, then thirty of a byte each: ten are kept, then
        // the 99% are reached.
        let mut bytes = vec![50_000, 40_000];
        bytes.extend(std::iter::repeat_n(1, 30));
        assert_eq!(records_shown(&bytes, None), KEEP_RECORDS);
        assert_eq!(records_shown(&bytes, Some(0)), bytes.len());
        assert_eq!(records_shown(&bytes, Some(20)), 20);
        // Records of equal size: none is negligible, the cap applies.
        let even = vec![100; 40];
        assert_eq!(records_shown(&even, None), MAX_RECORDS);
        // Short lists are never folded.
        assert_eq!(records_shown(&[5, 1], None), 2);
        assert_eq!(records_shown(&[], None), 0);
    }

    #[test]
    fn records_past_the_first_ten_are_shown_while_they_matter() {
        // Eleven records of 9% each, then ten of 0.1%.
        let mut bytes = vec![900; 11];
        bytes.extend(std::iter::repeat_n(10, 10));
        // After 11 records 9,900 of 10,000 bytes (99%) are shown.
        assert_eq!(records_shown(&bytes, None), 11);
    }
}
