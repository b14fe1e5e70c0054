//! Growth over time: the memory curve, its verdict, and the call sites whose
//! live bytes keep rising — the leak that is not a leak at exit (the global
//! list or cache freed only at shutdown).
//!
//! Fed by the model's single pass in bounded memory: the curve keeps at most
//! `MAX_BUCKETS` time slices and `MAX_WORK` slices of equal work (their
//! width doubles when full), and per-stack live bytes are snapshotted at
//! most `MAX_CHECKPOINTS` times.
//!
//! The verdict reads the heap's *floor*: at each moment, the least the heap
//! will hold from then on until the end of the judged part. Memory the
//! program keeps raises the floor; memory it gives back (a sawtooth, a
//! temporary peak) does not. The floor is read against the work done
//! (allocation and free events), not the clock, so a service idle between
//! requests is judged on its requests. Startup (imports, a cache filled at
//! start) and teardown (the frees before exit) are found and left out, and
//! the evidence says which part of the run was judged.

// Keys are addresses and stack ids: std's SipHash costs most of a replay.
use ahash::AHashMap as HashMap;

const MAX_BUCKETS: usize = 2048;
const MAX_WORK: usize = 1024;
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

/// Consecutive allocation and free events (`Timeline::work_per` of them):
/// the lowest live heap among them and when they happened.
#[derive(Debug, Clone, Copy)]
pub struct Work {
    pub first_us: u64,
    pub last_us: u64,
    pub min_bytes: u64,
    pub events: u64,
}

/// Live bytes of every call site at one moment.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub us: u64,
    pub by_stack: HashMap<u64, (u64, u64)>,
}

/// Per call site: its live bytes and blocks, and what its frees say about
/// "freed only at exit". One map for both, so that an event looks its site
/// up once.
#[derive(Debug, Clone, Copy, Default)]
struct Site {
    live_bytes: u64,
    live_blocks: u64,
    first_alloc_us: u64,
    earliest_free_us: Option<u64>,
}

#[derive(Debug)]
pub struct Timeline {
    bucket_us: u64,
    pub buckets: Vec<Bucket>,
    work_per: u64,
    pub work: Vec<Work>,
    /// The live heap after the last event.
    last_live: u64,
    checkpoint_us: u64,
    pub checkpoints: Vec<Checkpoint>,
    sites: HashMap<u64, Site>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            bucket_us: 1000,
            buckets: Vec::new(),
            work_per: 1,
            work: Vec::new(),
            last_live: 0,
            checkpoint_us: 10_000,
            checkpoints: Vec::new(),
            sites: HashMap::default(),
        }
    }
}

impl Timeline {
    /// After an allocation or free event, the live heap is `live` bytes at `us`.
    pub fn sample(&mut self, us: u64, live: u64) {
        // Every bucket starts at a multiple of `bucket_us`: a range check
        // finds the current one without a division per event.
        let bucket_us = self.bucket_us;
        match self.buckets.last_mut() {
            Some(b) if us >= b.start_us && us - b.start_us < bucket_us => {
                b.min_bytes = b.min_bytes.min(live);
                b.max_bytes = b.max_bytes.max(live);
                b.events += 1;
            }
            _ => {
                self.buckets.push(Bucket {
                    start_us: us - us % bucket_us,
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
        match self.work.last_mut() {
            Some(w) if w.events < self.work_per => {
                w.last_us = us;
                w.min_bytes = w.min_bytes.min(live);
                w.events += 1;
            }
            _ => {
                self.work.push(Work {
                    first_us: us,
                    last_us: us,
                    min_bytes: live,
                    events: 1,
                });
                if self.work.len() > MAX_WORK {
                    self.work = self
                        .work
                        .chunks(2)
                        .map(|c| Work {
                            first_us: c[0].first_us,
                            last_us: c[c.len() - 1].last_us,
                            min_bytes: c.iter().map(|w| w.min_bytes).min().unwrap_or(0),
                            events: c.iter().map(|w| w.events).sum(),
                        })
                        .collect();
                    self.work_per *= 2;
                }
            }
        }
        self.last_live = live;
        if self
            .checkpoints
            .last()
            .is_none_or(|c| us >= c.us + self.checkpoint_us)
        {
            // About as large as the last one at once: grown entry by entry,
            // the maps were a twentieth of a Python report.
            let hint = self.checkpoints.last().map_or(0, |c| c.by_stack.len());
            let mut by_stack = HashMap::with_capacity(hint + hint / 8);
            by_stack.extend(
                self.sites
                    .iter()
                    .filter(|(_, s)| s.live_blocks > 0)
                    .map(|(&k, s)| (k, (s.live_bytes, s.live_blocks))),
            );
            self.checkpoints.push(Checkpoint { us, by_stack });
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
    /// How long each of `buckets` lasts.
    pub fn bucket_us(&self) -> u64 {
        self.bucket_us
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
        let s = self.sites.entry(stack).or_insert(Site {
            first_alloc_us: us,
            ..Site::default()
        });
        s.live_bytes += size;
        s.live_blocks += 1;
    }

    pub fn free(&mut self, stack: u64, size: u64, us: u64) {
        if let Some(s) = self.sites.get_mut(&stack) {
            s.live_blocks = s.live_blocks.saturating_sub(1);
            // A site with no live block holds no bytes, whatever the sizes
            // said (a free of a block recorded with another size).
            s.live_bytes = match s.live_blocks {
                0 => 0,
                _ => s.live_bytes.saturating_sub(size),
            };
            s.earliest_free_us = Some(s.earliest_free_us.map_or(us, |t| t.min(us)));
        }
    }

    /// bytehound's recipe: every block of the call site was freed after
    /// `end_us` (the teardown, or the last 2% of the run), and it had been
    /// allocating since well before.
    pub fn freed_only_at_exit(&self, stack: u64, end_us: u64, duration_us: u64) -> bool {
        let Some(f) = self.sites.get(&stack) else {
            return false;
        };
        f.earliest_free_us.is_some_and(|t| t >= end_us)
            && f.first_alloc_us + duration_us / 50 < end_us
    }
}

/// What the curve says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// A sawtooth with flat minima.
    Steady,
    /// The floor rising with the work done: the leak.
    Growing,
    /// A step at startup, then flat: a big working set.
    EarlyGrowth,
    /// A step under load that stays flat afterwards.
    Burst,
    /// Too short, or too few events, to tell.
    Inconclusive,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Steady => "steady",
            Verdict::Growing => "growing",
            Verdict::EarlyGrowth => "early-growth",
            Verdict::Burst => "burst",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// A judged part with fewer allocation and free events than this, or
/// shorter than `MIN_MS`, cannot tell a trend from a startup.
pub const MIN_EVENTS: u64 = 200;
pub const MIN_MS: f64 = 100.0;
/// Windows of equal work the judged part is cut into.
const WINDOWS: usize = 16;
/// Finer windows, to find where a startup ends and a teardown begins.
const FINE: usize = 64;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Evidence {
    /// Why this verdict, with the thresholds that decided it.
    pub reason: String,
    /// The floor's rise over the judged part, per second and per event.
    pub minima_slope_bytes_per_s: f64,
    pub minima_slope_bytes_per_event: f64,
    /// Of the steps between windows of equal work, the share in which the
    /// floor rose (by at least a quarter of its mean step).
    pub consistency: f64,
    /// R² of the straight line through the floor.
    pub fit: f64,
    /// The largest rise between two windows, as a share of the whole rise.
    pub largest_step_share: f64,
    pub windows: usize,
    /// The judged part of the run.
    pub from_ms: f64,
    pub to_ms: f64,
    /// Where a startup ended (then `from_ms`), when one was found.
    pub startup_ms: Option<f64>,
    /// Where a teardown began (then `to_ms`), when one was found.
    pub teardown_ms: Option<f64>,
    /// Allocation and free events in the judged part.
    pub events: u64,
    /// Rise of the floor over the judged part.
    pub rise_bytes: i64,
    /// The floor at the end of the judged part.
    pub floor_bytes: u64,
    /// A consistent rise smaller than this is not growth: 4 KiB or 1% of
    /// the floor.
    pub growth_threshold_bytes: u64,
    /// A step smaller than this is noise: 64 KiB or 10% of the floor.
    pub step_threshold_bytes: u64,
    pub peak_bytes: u64,
    /// The work slices judged (`Timeline::work`), for drawing the floor.
    #[serde(skip)]
    pub judged_slices: std::ops::Range<usize>,
}

/// Consecutive work slices taken together.
#[derive(Debug, Clone, Copy)]
struct Win {
    min: u64,
    first_us: u64,
    last_us: u64,
    events: u64,
    /// Its first slice, and one past its last.
    start: usize,
    end: usize,
}

/// `n` windows of about equal work over the slices `from..to`.
fn windows(work: &[Work], from: usize, to: usize, n: usize) -> Vec<Win> {
    let len = to - from;
    let n = n.min(len);
    (0..n)
        .map(|i| {
            let (a, b) = (from + i * len / n, from + (i + 1) * len / n);
            let s = &work[a..b];
            Win {
                min: s.iter().map(|w| w.min_bytes).min().unwrap_or(0),
                first_us: s[0].first_us,
                last_us: s[s.len() - 1].last_us,
                events: s.iter().map(|w| w.events).sum(),
                start: a,
                end: b,
            }
        })
        .collect()
}

/// At each window, the least the heap holds from then on.
fn floor(w: &[Win]) -> Vec<u64> {
    let mut f: Vec<u64> = w.iter().map(|w| w.min).collect();
    for i in (0..f.len().saturating_sub(1)).rev() {
        f[i] = f[i].min(f[i + 1]);
    }
    f
}

/// Least squares through (i, y[i]): (slope, intercept, residual sum of squares).
fn line(y: &[u64], x0: usize) -> (f64, f64, f64) {
    let n = y.len() as f64;
    let xs = (0..y.len()).map(|i| (x0 + i) as f64);
    let mx = xs.clone().sum::<f64>() / n;
    let my = y.iter().map(|&v| v as f64).sum::<f64>() / n;
    let sxx: f64 = xs.clone().map(|x| (x - mx).powi(2)).sum();
    let sxy: f64 = xs.zip(y).map(|(x, &v)| (x - mx) * (v as f64 - my)).sum();
    let slope = if sxx == 0.0 { 0.0 } else { sxy / sxx };
    let icept = my - slope * mx;
    let sse = y
        .iter()
        .enumerate()
        .map(|(i, &v)| (v as f64 - icept - slope * (x0 + i) as f64).powi(2))
        .sum();
    (slope, icept, sse)
}

fn step_threshold(floor: u64) -> u64 {
    (64 * 1024).max(floor / 10)
}

fn growth_threshold(floor: u64) -> u64 {
    4096u64.max(floor / 200)
}

/// Where the teardown begins (a work slice), when the run ends by giving
/// back part of what it held: the top of the final decline. A decline that
/// takes more than a quarter of the work and a tenth of the time is the
/// program's own behaviour, not a teardown, and is judged with the rest.
fn teardown(tl: &Timeline) -> Option<usize> {
    let w = windows(&tl.work, 0, tl.work.len(), FINE);
    if w.len() < WINDOWS {
        return None;
    }
    let high = w.iter().map(|x| x.min).max()?;
    let end_level = tl.last_live.min(w[w.len() - 1].min);
    // A drop a growth could have made: a list of a few KiB freed at exit
    // on top of a big heap still hides a trend.
    if high <= end_level || high - end_level < growth_threshold(high) {
        return None;
    }
    let half = end_level + (high - end_level) / 2;
    let mut k = w.iter().rposition(|x| x.min >= half)?;
    loop {
        if k >= 1 && w[k - 1].min > w[k].min {
            k -= 1;
        } else if k >= 2 && w[k - 2].min > w[k].min + (high - end_level) / 20 {
            // One window of pause in the decline.
            k -= 2;
        } else {
            break;
        }
    }
    let end = w[k].end;
    if end >= tl.work.len() {
        return None;
    }
    let all: u64 = w.iter().map(|x| x.events).sum();
    let tail: u64 = tl.work[end..].iter().map(|x| x.events).sum();
    // Freeing a big startup's every block is much work, but quick.
    let (t0, t1) = (tl.work[0].first_us, tl.work[tl.work.len() - 1].last_us);
    let quick = t1.saturating_sub(tl.work[end].first_us) * 10 <= t1.saturating_sub(t0);
    (tail * 4 <= all || quick).then_some(end)
}

/// Where the startup ends (a work slice), when the floor rose from the
/// start much faster than it did afterwards (imports, a cache filled at
/// start). Looked for against the clock and against the work: importing a
/// framework can be nearly all of a short run's allocations (Flask's are
/// 94% of forty requests'), and a startup can be quick but much work.
fn startup(tl: &Timeline, end: usize) -> Option<usize> {
    let w = windows(&tl.work, 0, end, FINE);
    if w.len() < WINDOWS {
        return None;
    }
    // Against the clock: equal spans of time; a span without events holds
    // the level of the next one.
    let (t0, t1) = (w[0].first_us, w[w.len() - 1].last_us);
    let span = (t1.saturating_sub(t0) / FINE as u64).max(1);
    let mut by_time: Vec<Option<u64>> = vec![None; FINE];
    // From the work slices before the teardown, not the time buckets: a
    // bucket that straddles the teardown's start holds its low.
    for x in &tl.work[..end] {
        let i = ((x.first_us.saturating_sub(t0) / span) as usize).min(FINE - 1);
        by_time[i] = Some(by_time[i].map_or(x.min_bytes, |m| m.min(x.min_bytes)));
    }
    let mut next = by_time.iter().rev().find_map(|m| *m).unwrap_or(0);
    let mut clock: Vec<u64> = vec![0; FINE];
    for i in (0..FINE).rev() {
        next = by_time[i].map_or(next, |m| m.min(next));
        clock[i] = next;
    }
    if let Some(k) = knee(&clock) {
        let t = t0 + k as u64 * span;
        return Some(tl.work[..end].partition_point(|x| x.first_us < t));
    }
    knee(&floor(&w)).map(|k| w[k].start)
}

/// The window where a floor's steep initial rise ends: the knee of the best
/// two-line fit, when the first line rises from the start, at least four
/// times as steeply as the second, and by a step's worth. A quarter of the
/// axis at least is left to judge: a rise that only slows near the end
/// (a cache filling its key space) is not a startup.
fn knee(f: &[u64]) -> Option<usize> {
    let n = f.len();
    let (k, _) = (2..=n * 3 / 4)
        .map(|k| (k, line(&f[..k], 0).2 + line(&f[k..], k).2))
        .min_by(|a, b| a.1.total_cmp(&b.1))?;
    let (s1, _, _) = line(&f[..k], 0);
    let (s2, _, _) = line(&f[k..], k);
    let rise = f[k] - f[0];
    let from_the_start = f[k / 2] - f[0] >= rise / 5;
    if !(s1 > 0.0 && s1 >= 4.0 * s2.max(0.0) && rise >= step_threshold(f[n - 1]) && from_the_start)
    {
        return None;
    }
    // The fit puts the knee where the rise starts to slow; the startup ends
    // after its last window that still rises much faster than the later
    // pace (imports trail off, pause, and go on at the first requests).
    let (later, _, _) = line(&f[(k + n) / 2..], (k + n) / 2);
    let slack = step_threshold(f[n - 1]) as f64 / n as f64;
    let steep = |j: usize| (f[j + 1] - f[j]) as f64 > 2.0 * later.max(0.0) + slack;
    Some(
        (k..n * 3 / 4)
            .rev()
            .find(|&j| steep(j))
            .map_or(k, |j| j + 1),
    )
}

/// Floor statistics of windows: (rise, rising steps, steps, largest step).
fn rises(g: &[u64]) -> (u64, usize, usize, u64) {
    let rise = g[g.len() - 1] - g[0];
    let steps = g.len() - 1;
    let mean = rise as f64 / steps.max(1) as f64;
    let d = g.windows(2).map(|p| p[1] - p[0]);
    let rising = d
        .clone()
        .filter(|&x| rise > 0 && x as f64 >= mean / 4.0)
        .count();
    (rise, rising, steps, d.max().unwrap_or(0))
}

/// Judges the heap's floor over the part of the run between its startup
/// and its teardown (see the module's documentation).
pub fn verdict(tl: &Timeline, duration_us: u64) -> (Verdict, Evidence) {
    let all_events: u64 = tl.work.iter().map(|w| w.events).sum();
    let mut e = Evidence {
        reason: String::new(),
        minima_slope_bytes_per_s: 0.0,
        minima_slope_bytes_per_event: 0.0,
        consistency: 0.0,
        fit: 0.0,
        largest_step_share: 0.0,
        windows: 0,
        from_ms: 0.0,
        to_ms: duration_us as f64 / 1000.0,
        startup_ms: None,
        teardown_ms: None,
        events: all_events,
        rise_bytes: 0,
        floor_bytes: tl.last_live,
        growth_threshold_bytes: 0,
        step_threshold_bytes: 0,
        peak_bytes: tl.buckets.iter().map(|b| b.max_bytes).max().unwrap_or(0),
        judged_slices: 0..0,
    };
    let too_few = |events: u64, ms: f64| {
        if events < MIN_EVENTS {
            Some(format!(
                "only {events} allocation and free events to judge; a trend needs at least {MIN_EVENTS}"
            ))
        } else if ms < MIN_MS {
            Some(format!(
                "the part to judge lasted {ms:.0} ms; a trend needs at least {MIN_MS:.0} ms"
            ))
        } else {
            None
        }
    };
    if let Some(why) = too_few(all_events, duration_us as f64 / 1000.0) {
        e.reason = why;
        return (Verdict::Inconclusive, e);
    }
    let end = teardown(tl).unwrap_or(tl.work.len());
    // A startup leaves at least a window's worth of slices per window.
    let from = startup(tl, end)
        .filter(|&f| f + WINDOWS <= end)
        .unwrap_or(0);
    let ph = windows(&tl.work, from, end, WINDOWS);
    let g = floor(&ph);
    let n = ph.len();
    e.from_ms = ph[0].first_us as f64 / 1000.0;
    e.to_ms = ph[n - 1].last_us as f64 / 1000.0;
    e.startup_ms = (from > 0).then_some(e.from_ms);
    e.teardown_ms = (end < tl.work.len()).then(|| tl.work[end].first_us as f64 / 1000.0);
    e.events = ph.iter().map(|w| w.events).sum();
    e.windows = n;
    e.judged_slices = from..end;
    let (from_us, to_us) = (ph[0].first_us, ph[n - 1].last_us);
    e.peak_bytes = tl
        .buckets
        .iter()
        .filter(|b| b.start_us + tl.bucket_us > from_us && b.start_us <= to_us)
        .map(|b| b.max_bytes)
        .max()
        .unwrap_or(0);
    let judged = match (e.startup_ms, e.teardown_ms) {
        (Some(s), Some(t)) => format!(
            "judged {:.2}-{:.2} s: after the startup (the floor's steep rise until {:.2} s), before the teardown (from {:.2} s)",
            e.from_ms / 1e3, e.to_ms / 1e3, s / 1e3, t / 1e3
        ),
        (Some(s), None) => format!(
            "judged {:.2}-{:.2} s: after the startup (the floor's steep rise until {:.2} s)",
            e.from_ms / 1e3, e.to_ms / 1e3, s / 1e3
        ),
        (None, Some(t)) => format!(
            "judged {:.2}-{:.2} s: before the teardown (from {:.2} s)",
            e.from_ms / 1e3, e.to_ms / 1e3, t / 1e3
        ),
        (None, None) => format!("judged the whole run, {:.2}-{:.2} s", e.from_ms / 1e3, e.to_ms / 1e3),
    };
    if let Some(why) = too_few(e.events, e.to_ms - e.from_ms).filter(|_| n >= 2) {
        e.reason = format!("{why} ({judged})");
        return (Verdict::Inconclusive, e);
    }
    if n < 2 {
        e.reason = format!("too few windows to judge ({judged})");
        return (Verdict::Inconclusive, e);
    }
    let (rise, rising, steps, largest) = rises(&g);
    let level = g[n - 1];
    let (thr_g, thr_s) = (growth_threshold(level), step_threshold(level));
    e.rise_bytes = rise as i64;
    e.floor_bytes = level;
    e.growth_threshold_bytes = thr_g;
    e.step_threshold_bytes = thr_s;
    e.consistency = rising as f64 / steps as f64;
    e.largest_step_share = if rise == 0 {
        0.0
    } else {
        largest as f64 / rise as f64
    };
    let secs = (to_us.saturating_sub(from_us) as f64 / 1e6).max(1e-6);
    e.minima_slope_bytes_per_s = rise as f64 / secs;
    e.minima_slope_bytes_per_event = rise as f64 / e.events.max(1) as f64;
    let (_, _, sse) = line(&g, 0);
    let my = g.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let syy: f64 = g.iter().map(|&v| (v as f64 - my).powi(2)).sum();
    e.fit = if syy == 0.0 { 0.0 } else { 1.0 - sse / syy };
    let at = |i: usize| ph[i].first_us as f64 / 1e6;
    let reached = |share: f64| {
        (0..n)
            .find(|&i| (g[i] - g[0]) as f64 >= share * rise as f64)
            .unwrap_or(n - 1)
    };
    let hb = |b: u64| human_bytes(b as f64);
    let trend = format!(
        "the floor rose in {rising} of {steps} steps of equal work, by {} (+{}/s)",
        hb(rise),
        hb(e.minima_slope_bytes_per_s as u64)
    );
    let (half_rise, half_rising, half_steps, _) = rises(&g[n / 2..]);
    let consistent = e.consistency >= 0.6 && e.largest_step_share < 0.5;
    let not_trend = |rising: usize, steps: usize| {
        if consistent {
            format!(
                "rising in {rising} of {steps} steps, but by less than the {} a trend must reach (4 KiB or 0.5% of the floor)",
                hb(thr_g)
            )
        } else {
            format!("not as a trend: {rising} of {steps} steps rose")
        }
    };
    let v = if rise >= thr_g && consistent {
        e.reason = format!(
            "{trend}: a trend (rising in at least 60% of the steps, none over half the rise, above the {} threshold: 4 KiB or 0.5% of the floor); {judged}",
            hb(thr_g)
        );
        Verdict::Growing
    } else if rise >= thr_s
        && reached(0.9) >= n - 2
        && half_rise >= thr_g
        && half_rising * 2 >= half_steps
    {
        e.reason = format!(
            "{trend}, still rising through its second half ({half_rising} of {half_steps} steps, {}); {judged}",
            hb(half_rise)
        );
        Verdict::Growing
    } else if rise >= thr_s && reached(0.5) < n / 4 {
        e.reason = format!(
            "the floor rose by {} by {:.2} s and then stayed (over the {} threshold for a step: 64 KiB or 10% of the floor); {judged}",
            hb(rise),
            at(reached(0.9)),
            hb(thr_s)
        );
        Verdict::EarlyGrowth
    } else if rise >= thr_s {
        e.reason = format!(
            "the floor stepped up by {} around {:.2} s and stayed there ({:.0}% of it in one step; over the {} threshold for a step: 64 KiB or 10% of the floor); {judged}",
            hb(rise),
            at(reached(0.5)),
            e.largest_step_share * 100.0,
            hb(thr_s)
        );
        Verdict::Burst
    } else if let Some(s) = e.startup_ms {
        e.reason = format!(
            "the floor rose during the startup (until {:.2} s) and then by only {} (under the {} threshold for a step: 64 KiB or 10% of the floor), {}; {judged}",
            s / 1e3,
            hb(rise),
            hb(thr_s),
            not_trend(rising, steps)
        );
        Verdict::EarlyGrowth
    } else {
        e.reason = format!(
            "the floor moved by only {} (under the {} threshold for a step: 64 KiB or 10% of the floor), {}; {judged}",
            hb(rise),
            hb(thr_s),
            not_trend(rising, steps)
        );
        Verdict::Steady
    };
    (v, e)
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

/// Call sites whose live bytes rose over the judged part of the run
/// (between its startup and its teardown, see `verdict`), largest growth
/// first.
pub fn growth(tl: &Timeline, duration_us: u64) -> Vec<Growth> {
    let (v, e) = verdict(tl, duration_us);
    let (from_us, to_us) = ((e.from_ms * 1000.0) as u64, (e.to_ms * 1000.0) as u64);
    let end_us = if e.teardown_ms.is_some() {
        to_us
    } else {
        duration_us - duration_us / 50
    };
    let cps: Vec<&Checkpoint> = tl
        .checkpoints
        .iter()
        .filter(|c| c.us >= from_us && c.us <= to_us.min(end_us))
        .collect();
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
        // Its own floor rose: the least it held in the last quarter of the
        // checkpoints is above the least in the first. A site that only
        // churns (a sawtooth caught high at the last checkpoint) did not
        // grow; a step that stays (a burst) did. When the heap is growing, the sites that make it grow are still
        // rising in the second half (not the imports of a startup too
        // gradual to be told apart).
        let q = (series.len() / 4).max(1);
        let low = |s: &[(f64, u64, u64)]| s.iter().map(|p| p.1).min().unwrap_or(0);
        let lo_last = low(&series[series.len() - q..]);
        if last > first
            && lo_last > low(&series[..q])
            && (v != Verdict::Growing || lo_last > series[series.len() / 2].1)
        {
            out.push(Growth {
                stack: s,
                bytes: last - first,
                blocks: last_n.saturating_sub(series[0].2),
                checkpoints: series.iter().map(|p| (p.0, p.1)).collect(),
                share: 0.0,
                freed_at_exit: tl.freed_only_at_exit(s, end_us, duration_us),
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

/// The memory curve as a standalone SVG, with the verdict marked on it;
/// drawn by `curve::svg` (see there). `peak` is (µs, bytes).
pub fn svg(tl: &Timeline, duration_us: u64, peak: (u64, u64), program: &str) -> String {
    crate::curve::svg(tl, duration_us, peak, program)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 10 s run sampled every millisecond: a 200 KiB sawtooth (period
    /// 100 ms) on top of `base(t)` bytes.
    fn run(base: impl Fn(f64) -> f64) -> Verdict {
        let mut tl = Timeline::default();
        let dur = 10_000_000u64;
        for us in (0..dur).step_by(1000) {
            let saw = (us % 100_000) as f64 / 100_000.0 * 200.0 * 1024.0;
            tl.sample(us, (base(us as f64 / 1e6) + saw) as u64);
        }
        let (v, e) = verdict(&tl, dur);
        eprintln!("{}: {}", v.name(), e.reason);
        v
    }

    const MIB: f64 = 1024.0 * 1024.0;

    #[test]
    fn the_four_shapes() {
        assert_eq!(run(|_| 4.0 * MIB), Verdict::Steady);
        assert_eq!(run(|t| 4.0 * MIB + t * 0.5 * MIB), Verdict::Growing);
        assert_eq!(
            run(|t| if t < 1.0 { t * 8.0 * MIB } else { 8.0 * MIB }),
            Verdict::EarlyGrowth
        );
        assert_eq!(
            run(|t| if t < 5.0 { 2.0 * MIB } else { 10.0 * MIB }),
            Verdict::Burst
        );
    }

    #[test]
    fn a_startup_then_a_trend_is_judged_on_the_trend() {
        // 20 MiB of imports in the first 3 s, then 30 KiB/s.
        assert_eq!(
            run(|t| if t < 3.0 {
                t / 3.0 * 20.0 * MIB
            } else {
                20.0 * MIB + (t - 3.0) * 30.0 * 1024.0
            }),
            Verdict::Growing
        );
        // The same startup, then nothing kept.
        assert_eq!(
            run(|t| if t < 3.0 {
                t / 3.0 * 20.0 * MIB
            } else {
                20.0 * MIB
            }),
            Verdict::EarlyGrowth
        );
    }

    #[test]
    fn a_small_steady_leak_is_growth() {
        // 2 KiB/s under a 200 KiB sawtooth: 20 KiB over the run.
        assert_eq!(run(|t| 64.0 * 1024.0 + t * 2048.0), Verdict::Growing);
    }

    #[test]
    fn growth_freed_at_exit_is_judged_before_the_teardown() {
        // 1 MiB/s for 9 s, then everything freed.
        assert_eq!(
            run(|t| if t < 9.0 {
                4.0 * MIB + t * MIB
            } else {
                1.0 * MIB
            }),
            Verdict::Growing
        );
        // A small list freed at exit on top of a big heap.
        assert_eq!(
            run(|t| if t < 9.5 {
                40.0 * MIB + t * 100.0 * 1024.0
            } else {
                40.0 * MIB
            }),
            Verdict::Growing
        );
        // A teardown that starts inside a time bucket (its low must not
        // flatten the floor before it and pass for the end of a startup).
        assert_eq!(
            run(|t| if t < 8.9973 {
                4.0 * MIB + t * MIB
            } else {
                0.5 * MIB
            }),
            Verdict::Growing
        );
        // Steady, then a teardown.
        assert_eq!(
            run(|t| if t < 9.5 { 4.0 * MIB } else { 0.0 }),
            Verdict::Steady
        );
    }

    #[test]
    fn a_small_cache_filled_at_startup_is_steady() {
        assert_eq!(
            run(|t| if t < 0.05 { 0.0 } else { 6.0 * 1024.0 }),
            Verdict::Steady
        );
    }

    /// Whatever the curve (spikes, idle gaps, clocks that step back, one
    /// slice holding most of the run), a verdict and never a panic.
    #[test]
    fn any_curve_gets_a_verdict() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for case in 0..300 {
            let mut tl = Timeline::default();
            let events = 1 + next() % 5000;
            let (mut us, mut live) = (0u64, 0u64);
            for _ in 0..events {
                us = match next() % 50 {
                    0 => us + next() % 5_000_000,
                    1 => us.saturating_sub(next() % 1000),
                    _ => us + next() % 500,
                };
                live = match next() % 10 {
                    0 => 0,
                    1..=5 => live + next() % (1 << (case % 24 + 1)),
                    _ => live.saturating_sub(next() % (1 << (case % 24 + 1))),
                };
                tl.sample(us, live);
            }
            let (v, e) = verdict(&tl, us + next() % 1000);
            assert!(!e.reason.is_empty(), "{v:?}");
            let _ = growth(&tl, us);
        }
    }

    #[test]
    fn too_short_or_too_few_events_is_inconclusive() {
        let mut tl = Timeline::default();
        for us in (0..36_000).step_by(10) {
            tl.sample(us, us);
        }
        let (v, e) = verdict(&tl, 36_000);
        assert_eq!(v, Verdict::Inconclusive);
        assert!(e.reason.contains("36 ms"), "{}", e.reason);
        let mut tl = Timeline::default();
        for i in 0..10 {
            tl.sample(i * 200_000, i * 1000);
        }
        let (v, e) = verdict(&tl, 2_000_000);
        assert_eq!(v, Verdict::Inconclusive);
        assert!(e.reason.contains("only 10 "), "{}", e.reason);
    }
}
