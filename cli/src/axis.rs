//! Round axis ticks for the pictures (the memory curve, and any other plot):
//! steps of 1, 2 or 5 times a power of ten, in the unit that suits the
//! range (B, KiB, MiB, GiB for bytes; µs, ms, s for time), with just enough
//! decimals that no two labels read the same. A reader compares "150 KiB"
//! with "200 KiB" at a glance; "714.4 KiB" and "0.00 s" five times over
//! were what the first curve printed.
//!
//! Pure arithmetic on numbers: nothing here knows about traces or SVG.

/// Ticks of one axis, from 0 up.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticks {
    /// Where each tick stands, in the axis' own quantity (bytes, µs).
    pub values: Vec<f64>,
    /// What each tick reads.
    pub labels: Vec<String>,
    /// The distance between two ticks, in the same quantity.
    pub step: f64,
    /// The first round value at or above the largest one to show: a byte
    /// axis ends there, so its top line is labelled.
    pub top: f64,
}

/// The round step (1, 2 or 5 times a power of ten) that cuts `span` into at
/// most `max_ticks` parts.
pub fn round_step(span: f64, max_ticks: usize) -> f64 {
    let raw = span.max(f64::MIN_POSITIVE) / max_ticks.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        // The tolerance keeps 0.3 / 3 from becoming 0.2 by rounding.
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag)
}

/// Decimals that show a multiple of `step` exactly: 0.2 needs 1, 0.05 needs 2.
fn decimals(step: f64) -> usize {
    (-step.log10() - 1e-9).ceil().max(0.0) as usize
}

fn label(v: f64, unit_size: f64, unit: &str, d: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    format!("{:.*} {unit}", d, v / unit_size)
}

/// Ticks for a byte axis from 0 to at least `max` bytes, in the binary unit
/// of the largest value (so "50 KiB … 250 KiB", "0.5 MiB … 4 MiB").
pub fn byte_ticks(max: f64, max_ticks: usize) -> Ticks {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let max = max.max(1.0);
    let mut u = 0;
    while u + 1 < UNITS.len() && max >= 1024f64.powi(u as i32 + 1) {
        u += 1;
    }
    let size = 1024f64.powi(u as i32);
    // Bytes come whole: no "0.5 B".
    let step_u = round_step(max / size, max_ticks).max(if u == 0 { 1.0 } else { 0.0 });
    let n = (max / size / step_u - 1e-9).ceil().max(1.0) as usize;
    let d = decimals(step_u);
    let values: Vec<f64> = (0..=n).map(|i| i as f64 * step_u * size).collect();
    Ticks {
        labels: values
            .iter()
            .map(|&v| label(v, size, UNITS[u], d))
            .collect(),
        step: step_u * size,
        top: n as f64 * step_u * size,
        values,
    }
}

/// Ticks for a time axis over `duration_us` microseconds: seconds for a run
/// of a second or more, milliseconds under that, microseconds under one.
/// Only ticks inside the run are given (the axis ends where the run does).
pub fn time_ticks(duration_us: f64, max_ticks: usize) -> Ticks {
    let dur = duration_us.max(1.0);
    let (size, unit) = if dur >= 1e6 {
        (1e6, "s")
    } else if dur >= 1e3 {
        (1e3, "ms")
    } else {
        (1.0, "µs")
    };
    let step_u = round_step(dur / size, max_ticks);
    let d = decimals(step_u);
    let n = (dur / size / step_u + 1e-9).floor() as usize;
    let values: Vec<f64> = (0..=n).map(|i| i as f64 * step_u * size).collect();
    Ticks {
        labels: values.iter().map(|&v| label(v, size, unit, d)).collect(),
        step: step_u * size,
        top: dur,
        values,
    }
}

/// A moment of the run, to three significant digits in the unit that
/// suits it: "640 µs", "2.91 ms", "1.85 s".
pub fn time_label(us: f64) -> String {
    let sig = |v: f64, unit: &str| {
        let d = if v >= 100.0 {
            0
        } else if v >= 10.0 {
            1
        } else {
            2
        };
        format!("{v:.d$} {unit}")
    };
    if us >= 1e6 {
        sig(us / 1e6, "s")
    } else if us >= 1e3 {
        sig(us / 1e3, "ms")
    } else {
        format!("{us:.0} µs")
    }
}

/// Width of a label in pixels at `font_px`, for Verdana-like fonts (their
/// average advance is about 0.62 em): an estimate that errs wide.
pub fn text_width(s: &str, font_px: f64) -> f64 {
    s.chars().count() as f64 * font_px * 0.62
}

/// Whether labels centred at their ticks, `px_per_step` pixels apart, leave
/// at least `gap` pixels between neighbours.
pub fn labels_fit(t: &Ticks, px_per_step: f64, font_px: f64, gap: f64) -> bool {
    t.labels.windows(2).all(|p| {
        (text_width(&p[0], font_px) + text_width(&p[1], font_px)) / 2.0 + gap <= px_per_step
    })
}

/// Time ticks for an axis `px` pixels wide whose centred labels never touch:
/// as many as fit, at most `max_ticks`.
pub fn time_ticks_fitting(duration_us: f64, px: f64, max_ticks: usize, font_px: f64) -> Ticks {
    let mut n = max_ticks.max(1);
    loop {
        let t = time_ticks(duration_us, n);
        let per_step = px * t.step / duration_us.max(1.0);
        if n == 1 || labels_fit(&t, per_step, font_px, 8.0) {
            return t;
        }
        n -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: f64 = 1024.0;
    const MIB: f64 = 1024.0 * 1024.0;

    fn distinct(t: &Ticks) -> bool {
        let mut l = t.labels.clone();
        l.sort();
        l.dedup();
        l.len() == t.labels.len()
    }

    #[test]
    fn steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(round_step(240.0, 5), 50.0);
        assert_eq!(round_step(10.0, 5), 2.0);
        assert_eq!(round_step(3.0, 10), 0.5);
        assert_eq!(round_step(0.3, 3), 0.1);
        assert_eq!(round_step(1.86, 10), 0.2);
        for span in [0.001, 0.07, 1.0, 3.3, 99.0, 123_456.0] {
            for n in 1..12 {
                let s = round_step(span, n);
                let m = s / 10f64.powf(s.log10().floor());
                assert!(
                    [1.0, 2.0, 5.0].iter().any(|x| (m - x).abs() < 1e-6),
                    "{span}/{n}: {s}"
                );
                assert!(span / s <= n as f64 + 1e-6, "{span}/{n}: {s}");
            }
        }
    }

    #[test]
    fn byte_ticks_are_round_in_binary_units() {
        // The demo's heap: 237.6 KiB at its peak.
        let t = byte_ticks(237.6 * KIB, 6);
        assert_eq!(
            t.labels,
            ["0", "50 KiB", "100 KiB", "150 KiB", "200 KiB", "250 KiB"]
        );
        assert_eq!(t.top, 250.0 * KIB);
        // RSS of a few MiB.
        let t = byte_ticks(4.1 * MIB, 6);
        assert_eq!(t.labels.last().map(String::as_str), Some("5 MiB"));
        let t = byte_ticks(1.3 * MIB, 6);
        assert_eq!(
            t.labels,
            ["0", "0.5 MiB", "1.0 MiB", "1.5 MiB"],
            "decimals kept alike on one axis"
        );
        // A tiny heap is counted in whole bytes.
        let t = byte_ticks(3.0, 6);
        assert_eq!(t.labels, ["0", "1 B", "2 B", "3 B"]);
        for max in [1.0, 700.0, 714.4 * KIB, 6.2 * KIB, 3.9 * MIB, 70e9] {
            let t = byte_ticks(max, 6);
            assert!(t.top >= max && t.values.len() <= 8, "{max}: {t:?}");
            assert!(distinct(&t), "{max}: {:?}", t.labels);
        }
    }

    #[test]
    fn time_ticks_are_distinct_even_for_short_runs() {
        // The demo's service: 1.86 s.
        let t = time_ticks(1.86e6, 10);
        assert_eq!(t.labels[..3], ["0", "0.2 s", "0.4 s"]);
        assert_eq!(t.labels.last().map(String::as_str), Some("1.8 s"));
        // A 3 ms run reads in ms, a 0.4 ms one in µs.
        let t = time_ticks(3_000.0, 10);
        assert_eq!(t.labels[1], "0.5 ms");
        let t = time_ticks(400.0, 10);
        assert_eq!(t.labels[1], "50 µs");
        for dur in [
            1.0, 37.0, 850.0, 1_000.0, 2_345.0, 60_000.0, 99_000.0, 1e6, 7.3e6, 3.6e9,
        ] {
            let t = time_ticks(dur, 10);
            assert!(distinct(&t), "{dur}: {:?}", t.labels);
            assert!(t.values.len() >= 2 || dur < 2.0, "{dur}: {:?}", t.labels);
            assert!(t.values.iter().all(|&v| v <= dur + 1e-6));
        }
    }

    #[test]
    fn time_labels_never_overlap() {
        // The curve's plot is about 1,000 px wide; a narrow one too.
        for px in [1000.0, 300.0] {
            for dur in [
                1.0, 90.0, 999.0, 1_234.0, 40_000.0, 99_999.0, 1e6, 1.86e6, 3.6e9,
            ] {
                let t = time_ticks_fitting(dur, px, 12, 11.0);
                let per_step = px * t.step / dur;
                assert!(
                    labels_fit(&t, per_step, 11.0, 8.0) || t.values.len() <= 2,
                    "{dur} µs over {px} px: {:?}",
                    t.labels
                );
                assert!(distinct(&t), "{dur}: {:?}", t.labels);
            }
        }
    }
}
