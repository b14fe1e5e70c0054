//! Growth over time: the memory curve, its verdict, and the call sites whose
//! live bytes keep rising — the leak that is not a leak at exit (the global
//! list or cache freed only at shutdown).
//!
//! Fed by the model's single pass in bounded memory: the curve keeps at most
//! `MAX_BUCKETS` buckets (their width doubles when full), and per-stack live
//! bytes are snapshotted at most `MAX_CHECKPOINTS` times.

// Keys are addresses and stack ids: std's SipHash costs most of a replay.
use ahash::AHashMap as HashMap;

const MAX_BUCKETS: usize = 2048;
const MAX_CHECKPOINTS: usize = 64;

/// One slice of the run: the lowest and highest live heap seen in it.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Bucket {
    pub start_us: u64,
    pub min_bytes: u64,
    pub max_bytes: u64,
    /// Highest resident set size sampled in it (0: none).
    pub rss_bytes: u64,
    /// Allocation and free events in it.
    pub events: u64,
}

/// Live bytes of every call site at one moment.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub us: u64,
    pub by_stack: HashMap<u64, (u64, u64)>,
}

/// Per call site, what its frees say about "freed only at exit".
#[derive(Debug, Clone, Copy, Default)]
struct FreeTimes {
    first_alloc_us: u64,
    earliest_free_us: Option<u64>,
}

#[derive(Debug)]
pub struct Timeline {
    bucket_us: u64,
    pub buckets: Vec<Bucket>,
    checkpoint_us: u64,
    pub checkpoints: Vec<Checkpoint>,
    live_by_stack: HashMap<u64, (u64, u64)>,
    frees: HashMap<u64, FreeTimes>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            bucket_us: 1000,
            buckets: Vec::new(),
            checkpoint_us: 10_000,
            checkpoints: Vec::new(),
            live_by_stack: HashMap::default(),
            frees: HashMap::default(),
        }
    }
}

impl Timeline {
    /// The live heap is `live` bytes at `us`.
    pub fn sample(&mut self, us: u64, live: u64) {
        let start = us - us % self.bucket_us;
        match self.buckets.last_mut() {
            Some(b) if b.start_us == start => {
                b.min_bytes = b.min_bytes.min(live);
                b.max_bytes = b.max_bytes.max(live);
                b.events += 1;
            }
            _ => {
                self.buckets.push(Bucket {
                    start_us: start,
                    min_bytes: live,
                    max_bytes: live,
                    rss_bytes: 0,
                    events: 1,
                });
                if self.buckets.len() > MAX_BUCKETS {
                    self.coarsen();
                }
            }
        }
        if self
            .checkpoints
            .last()
            .is_none_or(|c| us >= c.us + self.checkpoint_us)
        {
            self.checkpoints.push(Checkpoint {
                us,
                by_stack: self.live_by_stack.clone(),
            });
            if self.checkpoints.len() > MAX_CHECKPOINTS {
                // Keep every other one: the spacing doubles, the span stays.
                let mut i = 0;
                self.checkpoints.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
                self.checkpoint_us *= 2;
            }
        }
    }

    pub fn rss(&mut self, bytes: u64) {
        if let Some(b) = self.buckets.last_mut() {
            b.rss_bytes = b.rss_bytes.max(bytes);
        }
    }

    fn coarsen(&mut self) {
        self.bucket_us *= 2;
        let mut merged: Vec<Bucket> = Vec::with_capacity(self.buckets.len() / 2 + 1);
        for b in self.buckets.drain(..) {
            let start = b.start_us - b.start_us % self.bucket_us;
            match merged.last_mut() {
                Some(m) if m.start_us == start => {
                    m.min_bytes = m.min_bytes.min(b.min_bytes);
                    m.max_bytes = m.max_bytes.max(b.max_bytes);
                    m.rss_bytes = m.rss_bytes.max(b.rss_bytes);
                    m.events += b.events;
                }
                _ => merged.push(Bucket {
                    start_us: start,
                    ..b
                }),
            }
        }
        self.buckets = merged;
    }

    pub fn alloc(&mut self, stack: u64, size: u64, us: u64) {
        let e = self.live_by_stack.entry(stack).or_default();
        e.0 += size;
        e.1 += 1;
        self.frees.entry(stack).or_insert(FreeTimes {
            first_alloc_us: us,
            earliest_free_us: None,
        });
    }

    pub fn free(&mut self, stack: u64, size: u64, us: u64) {
        if let Some(e) = self.live_by_stack.get_mut(&stack) {
            e.0 = e.0.saturating_sub(size);
            e.1 = e.1.saturating_sub(1);
            if e.1 == 0 {
                self.live_by_stack.remove(&stack);
            }
        }
        if let Some(f) = self.frees.get_mut(&stack) {
            f.earliest_free_us = Some(f.earliest_free_us.map_or(us, |t| t.min(us)));
        }
    }

    /// bytehound's recipe: every block of the call site was freed in the last
    /// 2% of the run, and it had been allocating since well before.
    pub fn freed_only_at_exit(&self, stack: u64, duration_us: u64) -> bool {
        let Some(f) = self.frees.get(&stack) else {
            return false;
        };
        let tail = duration_us - duration_us / 50;
        f.earliest_free_us.is_some_and(|t| t >= tail) && f.first_alloc_us + duration_us / 50 < tail
    }
}

/// What the curve says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// A sawtooth with flat minima.
    Steady,
    /// Minima rising steadily: the leak.
    Growing,
    /// A step at startup, then flat: a big working set.
    EarlyGrowth,
    /// A step under load that stays flat afterwards.
    Burst,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Steady => "steady",
            Verdict::Growing => "growing",
            Verdict::EarlyGrowth => "early-growth",
            Verdict::Burst => "burst",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Evidence {
    pub minima_slope_bytes_per_s: f64,
    /// The rise of the minima over the window, per allocation or free event.
    pub minima_slope_bytes_per_event: f64,
    /// Of the windows, the share whose minimum is at least the previous one's.
    pub consistency: f64,
    /// R² of the straight line through the minima.
    pub fit: f64,
    pub windows: usize,
    pub from_ms: f64,
    pub to_ms: f64,
    /// Rise of the minima from the first window to the last, in bytes.
    pub rise_bytes: i64,
    pub peak_bytes: u64,
}

/// Judges the curve from the minima of `WINDOWS` equal windows, leaving out
/// the last 2% of the run (where a program frees everything before exit).
pub fn verdict(tl: &Timeline, duration_us: u64) -> Option<(Verdict, Evidence)> {
    const WINDOWS: usize = 16;
    let end = duration_us - duration_us / 50;
    if end < 10_000 || tl.buckets.len() < WINDOWS {
        return None;
    }
    let width = end / WINDOWS as u64;
    let mut minima: Vec<Option<u64>> = vec![None; WINDOWS];
    let mut peak = 0;
    for b in tl.buckets.iter().filter(|b| b.start_us < end) {
        let w = ((b.start_us / width) as usize).min(WINDOWS - 1);
        minima[w] = Some(minima[w].map_or(b.min_bytes, |m: u64| m.min(b.min_bytes)));
        peak = peak.max(b.max_bytes);
    }
    let pts: Vec<(f64, f64)> = minima
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.map(|m| ((i as f64 + 0.5) * width as f64 / 1e6, m as f64)))
        .collect();
    if pts.len() < WINDOWS / 2 {
        return None;
    }
    let (slope, fit) = linear_fit(&pts);
    let rises = pts.windows(2).filter(|w| w[1].1 >= w[0].1).count();
    let consistency = rises as f64 / (pts.len() - 1) as f64;
    let first = pts[0].1;
    let last = pts[pts.len() - 1].1;
    let rise = last - first;
    let events: u64 = tl
        .buckets
        .iter()
        .filter(|b| b.start_us < end)
        .map(|b| b.events)
        .sum();
    let evidence = Evidence {
        minima_slope_bytes_per_s: slope,
        minima_slope_bytes_per_event: rise / events.max(1) as f64,
        consistency,
        fit,
        windows: pts.len(),
        from_ms: 0.0,
        to_ms: end as f64 / 1000.0,
        rise_bytes: rise as i64,
        peak_bytes: peak,
    };
    // "Significant" is relative to the heap the program keeps anyway, with a
    // floor: a cache of a few KiB filled at startup is not a working-set
    // step, and a rise of a few KiB is noise.
    let significant = |d: f64| d > 0.10 * last.max(1.0) && d > 64.0 * 1024.0;
    // Where the minima reach the level they end at (and stay within 10% of it).
    let near = |a: f64, b: f64| (a - b).abs() <= 0.1 * b.abs().max(1.0);
    let level_at = (0..pts.len())
        .rev()
        .take_while(|&k| near(pts[k].1, last))
        .last()
        .unwrap_or(pts.len() - 1);
    let flat_tail = pts.len() - level_at >= 3;
    // Flat before the step too (a burst), or rising all along (growth)?
    let flat_before = level_at >= 2 && pts[..level_at - 1].iter().all(|p| near(p.1, pts[0].1));
    let v = if !significant(rise) {
        Verdict::Steady
    } else if flat_tail && level_at <= WINDOWS / 4 {
        Verdict::EarlyGrowth
    } else if flat_tail && flat_before {
        Verdict::Burst
    } else if consistency >= 0.6 && fit >= 0.6 {
        Verdict::Growing
    } else {
        Verdict::Burst
    };
    Some((v, evidence))
}

/// Least squares: (slope, R²).
fn linear_fit(pts: &[(f64, f64)]) -> (f64, f64) {
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = pts.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx == 0.0 {
        return (0.0, 0.0);
    }
    let slope = sxy / sxx;
    let r2 = if syy == 0.0 {
        0.0
    } else {
        (sxy * sxy) / (sxx * syy)
    };
    (slope, r2)
}

/// A call site whose live bytes grew across the run.
#[derive(Debug, Clone)]
pub struct Growth {
    pub stack: u64,
    /// Live bytes at the last checkpoint minus at the first one it had.
    pub bytes: u64,
    pub blocks: u64,
    /// (ms, live bytes) at each checkpoint.
    pub checkpoints: Vec<(f64, u64)>,
    /// Share of the growth of all growing call sites.
    pub share: f64,
    pub freed_at_exit: bool,
}

/// Call sites whose live bytes rose across the run (over the checkpoints
/// before the final 2%), largest growth first.
pub fn growth(tl: &Timeline, duration_us: u64) -> Vec<Growth> {
    let end = duration_us - duration_us / 50;
    let cps: Vec<&Checkpoint> = tl.checkpoints.iter().filter(|c| c.us <= end).collect();
    if cps.len() < 3 {
        return Vec::new();
    }
    let mut stacks: Vec<u64> = cps
        .iter()
        .flat_map(|c| c.by_stack.keys().copied())
        .collect();
    stacks.sort_unstable();
    stacks.dedup();
    let mut out: Vec<Growth> = Vec::new();
    for s in stacks {
        let series: Vec<(f64, u64, u64)> = cps
            .iter()
            .map(|c| {
                let (b, n) = c.by_stack.get(&s).copied().unwrap_or_default();
                (c.us as f64 / 1000.0, b, n)
            })
            .collect();
        let first = series[0].1;
        let (last, last_n) = (series[series.len() - 1].1, series[series.len() - 1].2);
        let half = series[series.len() / 2].1;
        // Rising over the run, and still rising in its second half.
        if last > first && last > half && half >= first {
            out.push(Growth {
                stack: s,
                bytes: last - first,
                blocks: last_n.saturating_sub(series[0].2),
                checkpoints: series.iter().map(|p| (p.0, p.1)).collect(),
                share: 0.0,
                freed_at_exit: tl.freed_only_at_exit(s, duration_us),
            });
        }
    }
    let total: u64 = out.iter().map(|g| g.bytes).sum();
    for g in &mut out {
        g.share = g.bytes as f64 / total.max(1) as f64;
    }
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.stack.cmp(&b.stack)));
    out
}

/// "1.5 MiB"
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The memory curve as a standalone SVG: live heap (the band between the
/// lowest and highest value of each slice, and its minima as a line), RSS
/// beside it when recorded, the peak marked, the verdict in the title.
pub fn svg(tl: &Timeline, duration_us: u64, peak: (u64, u64), program: &str) -> String {
    let (w, h) = (1200.0, 480.0);
    let (left, right, top, bottom) = (90.0, 30.0, 70.0, 50.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let dur = (duration_us.max(1)) as f64;
    let ymax = tl
        .buckets
        .iter()
        .map(|b| b.max_bytes.max(b.rss_bytes))
        .max()
        .unwrap_or(0)
        .max(peak.1)
        .max(1) as f64
        * 1.05;
    let x = |us: f64| left + pw * us / dur;
    let y = |bytes: f64| top + ph - ph * bytes / ymax;
    let mut s = String::new();
    s.push_str(&format!(
        r##"<?xml version="1.0" standalone="no"?>
<svg version="1.1" width="{w}" height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg" font-family="Verdana, sans-serif">
<rect x="0" y="0" width="{w}" height="{h}" fill="#fafafa"/>
"##
    ));
    let verdict = verdict(tl, duration_us);
    let title = match &verdict {
        Some((v, e)) => format!(
            "leakhunt: live heap over time: {} (minima {:+} per second)",
            v.name(),
            human_bytes(e.minima_slope_bytes_per_s.abs()).replace(' ', "\u{a0}")
        ),
        None => "leakhunt: live heap over time (too short for a verdict)".to_string(),
    };
    s.push_str(&format!(
        "<text x=\"{}\" y=\"28\" font-size=\"18\" text-anchor=\"middle\">{}</text>\n<text x=\"{}\" y=\"50\" font-size=\"12\" text-anchor=\"middle\" fill=\"#555\">{}</text>\n",
        w / 2.0,
        xml(&title),
        w / 2.0,
        xml(program)
    ));
    // Axes and grid, with units.
    for i in 0..=5 {
        let v = ymax / 1.05 * i as f64 / 5.0;
        let yy = y(v);
        s.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>\n",
            w - right,
            left - 6.0,
            yy + 4.0,
            human_bytes(v)
        ));
    }
    for i in 0..=10 {
        let t = dur * i as f64 / 10.0;
        let xx = x(t);
        s.push_str(&format!(
            "<line x1=\"{xx:.1}\" y1=\"{:.1}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>\n<text x=\"{xx:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{:.2} s</text>\n",
            top,
            top + ph,
            top + ph + 18.0,
            t / 1e6
        ));
    }
    s.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{:.1}\" stroke=\"#333\"/>\n<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">time</text>\n",
        top + ph,
        top + ph,
        w - right,
        top + ph,
        left + pw / 2.0,
        h - 10.0
    ));
    if !tl.buckets.is_empty() {
        // The band: highest values left to right, then lowest right to left.
        let mut band: Vec<String> = tl
            .buckets
            .iter()
            .map(|b| format!("{:.1},{:.1}", x(b.start_us as f64), y(b.max_bytes as f64)))
            .collect();
        band.extend(
            tl.buckets
                .iter()
                .rev()
                .map(|b| format!("{:.1},{:.1}", x(b.start_us as f64), y(b.min_bytes as f64))),
        );
        s.push_str(&format!(
            "<polygon points=\"{}\" fill=\"#f4b183\" fill-opacity=\"0.6\" stroke=\"none\"><title>live heap (lowest to highest in each slice)</title></polygon>\n",
            band.join(" ")
        ));
        let minima: Vec<String> = tl
            .buckets
            .iter()
            .map(|b| format!("{:.1},{:.1}", x(b.start_us as f64), y(b.min_bytes as f64)))
            .collect();
        s.push_str(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#c55a11\" stroke-width=\"1.5\"><title>live heap, lowest in each slice</title></polyline>\n",
            minima.join(" ")
        ));
        let rss: Vec<String> = tl
            .buckets
            .iter()
            .filter(|b| b.rss_bytes > 0)
            .map(|b| format!("{:.1},{:.1}", x(b.start_us as f64), y(b.rss_bytes as f64)))
            .collect();
        if rss.len() > 1 {
            s.push_str(&format!(
                "<polyline points=\"{}\" fill=\"none\" stroke=\"#2f5597\" stroke-width=\"1.2\" stroke-dasharray=\"5,3\"><title>resident set size</title></polyline>\n",
                rss.join(" ")
            ));
        }
    }
    let (px, py) = (x(peak.0 as f64), y(peak.1 as f64));
    s.push_str(&format!(
        "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"4\" fill=\"#c00000\"><title>peak: {} at {:.3} s</title></circle>\n<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#c00000\">peak {}</text>\n",
        human_bytes(peak.1 as f64),
        peak.0 as f64 / 1e6,
        (px + 6.0).min(w - right - 90.0),
        (py - 6.0).max(top + 10.0),
        human_bytes(peak.1 as f64)
    ));
    // Legend.
    s.push_str(&format!(
        "<g font-size=\"11\"><rect x=\"{l}\" y=\"{t}\" width=\"12\" height=\"8\" fill=\"#f4b183\"/><text x=\"{}\" y=\"{}\">live heap (range per slice)</text><line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#c55a11\" stroke-width=\"1.5\"/><text x=\"{}\" y=\"{}\">its minima</text><line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#2f5597\" stroke-dasharray=\"5,3\"/><text x=\"{}\" y=\"{}\">RSS</text></g>\n",
        left + 18.0, top + 8.0,
        left + 200.0, top + 4.0, left + 216.0, top + 4.0,
        left + 222.0, top + 8.0,
        left + 300.0, top + 4.0, left + 316.0, top + 4.0,
        left + 322.0, top + 8.0,
        l = left + 4.0,
        t = top,
    ));
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 10 s run sampled every millisecond: a 200 KiB sawtooth (period
    /// 100 ms) on top of `base(t)` bytes.
    fn run(base: impl Fn(f64) -> f64) -> Option<Verdict> {
        let mut tl = Timeline::default();
        let dur = 10_000_000u64;
        for us in (0..dur).step_by(1000) {
            let saw = (us % 100_000) as f64 / 100_000.0 * 200.0 * 1024.0;
            tl.sample(us, (base(us as f64 / 1e6) + saw) as u64);
        }
        verdict(&tl, dur).map(|(v, _)| v)
    }

    const MIB: f64 = 1024.0 * 1024.0;

    #[test]
    fn the_four_verdicts() {
        assert_eq!(run(|_| 4.0 * MIB), Some(Verdict::Steady));
        assert_eq!(run(|t| 4.0 * MIB + t * 0.5 * MIB), Some(Verdict::Growing));
        assert_eq!(
            run(|t| if t < 1.0 { t * 8.0 * MIB } else { 8.0 * MIB }),
            Some(Verdict::EarlyGrowth)
        );
        assert_eq!(
            run(|t| if t < 5.0 { 2.0 * MIB } else { 10.0 * MIB }),
            Some(Verdict::Burst)
        );
    }

    #[test]
    fn a_small_cache_filled_at_startup_is_steady() {
        assert_eq!(
            run(|t| if t < 0.05 { 0.0 } else { 6.0 * 1024.0 }),
            Some(Verdict::Steady)
        );
    }

    #[test]
    fn too_short_for_a_verdict() {
        let mut tl = Timeline::default();
        tl.sample(0, 10);
        tl.sample(1000, 20);
        assert!(verdict(&tl, 2000).is_none());
    }
}
