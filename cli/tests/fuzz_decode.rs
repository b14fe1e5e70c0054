//! A bounded, deterministic fuzz of the trace decoder and the model: the
//! corpus of `fuzz/corpus/trace/` (small real traces, and damaged ones:
//! cut, concatenated, a chunk duplicated, a huge length, version 0, unknown
//! flags, a version-2 trace, a version-4 one of zstd chunks and
//! history-coded frees and allocations), then a few thousand mutations of it (bits
//! flipped, cuts, chunks repeated, moved or dropped, random bytes, huge
//! lengths, and records scrambled under valid chunk framing, so that the
//! record decoder and the replay see garbage a checksum would otherwise
//! catch). No input may panic, take long, or make the decoder or the model
//! allocate much: a counting allocator measures each input's peak.
//! `fuzz/` has the same target for `cargo fuzz`.

use leakhunt_cli::model::Model;
use leakhunt_format::{ChunkFraming, Encoder, TraceReader, FILE_HEADER_LEN};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Counts live heap bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are only arithmetic on the sizes asked for.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's layout, as GlobalAlloc requires.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What one input may cost above what was live before it. A sound chunk
/// is at most 16 MiB raw; these inputs are a few KiB.
const MAX_BYTES: usize = 64 << 20;
const MAX_TIME: Duration = Duration::from_secs(2);

/// Everything a command does with a trace short of symbolizing it (which
/// reads the modules' files, not the trace): the replay, as a full pass
/// and as a summary, every live block's stack, the curve's verdict, the
/// growing sites and the timeline SVG.
fn exercise(bytes: &[u8]) {
    for summary in [false, true] {
        let Ok(mut r) = TraceReader::new(bytes) else {
            return;
        };
        if summary {
            r.skip_event_chunks();
        }
        let m = match Model::replay(r) {
            Ok(m) => m,
            // Not one good chunk: the commands refuse it.
            Err(leakhunt_format::FormatError::NothingReadable(_)) => return,
            Err(e) => panic!("a slice never fails to read: {e}"),
        };
        for b in m.live.values() {
            std::hint::black_box(m.stack_ips(b.stack));
        }
        let _ = leakhunt_cli::timeline::verdict(&m.timeline, m.duration_us);
        let _ = leakhunt_cli::timeline::growth(&m.timeline, m.duration_us);
        let _ = leakhunt_cli::timeline::svg(&m.timeline, m.duration_us, (0, 0), "fuzz");
        let _ = m.framing;
    }
}

/// The counters are global: one test measures at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn check(what: &str, bytes: &[u8]) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let start = Instant::now();
    exercise(bytes);
    let took = start.elapsed();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    assert!(took < MAX_TIME, "{what}: took {took:?}");
    assert!(peak < MAX_BYTES, "{what}: allocated {peak} bytes at once");
}

/// xorshift64*: deterministic, so a failure names a mutation that repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/trace");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("the fuzz corpus")
        .map(|e| e.expect("a corpus entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("a corpus file"))
        })
        .collect()
}

/// The byte ranges of a trace's chunks, as far as they parse.
fn spans(b: &[u8]) -> Vec<(usize, usize)> {
    let header = if b.len() >= 12 && b[8] >= 3 { 20 } else { 12 };
    let mut out = Vec::new();
    let mut at = FILE_HEADER_LEN;
    while at + header <= b.len() {
        let clen = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        let Some(end) = (at + header).checked_add(clen).filter(|&e| e <= b.len()) else {
            break;
        };
        out.push((at, end));
        at = end;
    }
    out
}

/// The trace's records as one raw stream (what the chunks decompress to).
fn raw_records(b: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    let Ok(mut r) = TraceReader::new(b) else {
        return raw;
    };
    let mut e = Encoder::default();
    while let Ok(Some(rec)) = r.next_record() {
        e.encode(&rec, &mut raw);
    }
    raw
}

fn mutate(rng: &mut Rng, b: &[u8]) -> Vec<u8> {
    let mut m = b.to_vec();
    let n = m.len().max(1);
    match rng.below(9) {
        0 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(n);
                if let Some(x) = m.get_mut(i) {
                    *x ^= 1 << rng.below(8);
                }
            }
        }
        1 => m.truncate(rng.below(n)),
        2 | 3 => {
            let s = spans(&m);
            if s.is_empty() {
                return m;
            }
            let (a, e) = s[rng.below(s.len())];
            let chunk = m[a..e].to_vec();
            let (c, d) = s[rng.below(s.len())];
            match rng.below(3) {
                0 => {
                    m.splice(d..d, chunk);
                }
                1 => {
                    m.drain(a..e);
                }
                _ if (c, d) != (a, e) => {
                    // swap two chunks
                    let other = m[c..d].to_vec();
                    let (first, second) = if a < c {
                        ((a, e, other), (c, d, chunk))
                    } else {
                        ((c, d, chunk), (a, e, other))
                    };
                    m.splice(second.0..second.1, second.2);
                    m.splice(first.0..first.1, first.2);
                }
                _ => {}
            }
        }
        4 => {
            let at = rng.below(n);
            for i in at..(at + 1 + rng.below(64)).min(m.len()) {
                m[i] = rng.next() as u8;
            }
        }
        5 => {
            // a huge or odd length where a chunk header is
            let s = spans(&m);
            if let Some(&(a, _)) = s.get(rng.below(s.len())) {
                let v = [u32::MAX, 0xffff_fff0, 1 << 31, 16 << 20, rng.next() as u32];
                let field = a + 4 * rng.below(2);
                m[field..field + 4].copy_from_slice(&v[rng.below(v.len())].to_le_bytes());
            }
        }
        6 => {
            // another trace's bytes appended, or random bytes
            let extra: Vec<u8> = (0..rng.below(256)).map(|_| rng.next() as u8).collect();
            m.extend_from_slice(&extra);
        }
        _ => {
            // records scrambled, then framed as sound chunks of a new trace
            let mut raw = raw_records(b);
            if raw.is_empty() {
                return m;
            }
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(raw.len());
                match rng.below(4) {
                    0 => raw[i] ^= 1 << rng.below(8),
                    1 => raw[i] = 0xff,
                    2 => {
                        raw.insert(i, rng.next() as u8);
                    }
                    _ => {
                        raw.remove(i);
                    }
                }
                if raw.is_empty() {
                    return m;
                }
            }
            let mut out = m[..FILE_HEADER_LEN.min(m.len())].to_vec();
            if out.len() < FILE_HEADER_LEN {
                return m;
            }
            out[8..16].copy_from_slice(&leakhunt_format::file_header()[8..16]);
            let mut framing = ChunkFraming::new_trace();
            let mut at = 0;
            while at < raw.len() {
                let end = (at + 1 + rng.below(raw.len())).min(raw.len());
                framing.frame(&raw[at..end], rng.below(2) == 0, &mut out);
                at = end;
            }
            return out;
        }
    }
    m
}

#[test]
fn the_corpus_reads_in_bounded_time_and_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let corpus = corpus();
    assert!(corpus.len() >= 8, "{} corpus files", corpus.len());
    for (name, bytes) in &corpus {
        check(name, bytes);
    }
    // The real traces among them read completely.
    for name in [
        "entry_points.trace",
        "small.trace",
        "small-v2.trace",
        "small-v4.trace",
    ] {
        let (_, b) = corpus.iter().find(|(n, _)| n == name).unwrap();
        let mut r = TraceReader::new(&b[..]).unwrap();
        while r.next_record().unwrap().is_some() {}
        assert_eq!(r.cut(), None, "{name}");
    }
}

#[test]
fn mutations_never_panic_hang_or_allocate_much() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let corpus = corpus();
    let mut rng = Rng(0x1ea4_7b17_5eed_0001);
    let mut cut = 0;
    for i in 0..5000 {
        let (name, base) = &corpus[i % corpus.len()];
        let mut m = mutate(&mut rng, base);
        if rng.below(4) == 0 {
            m = mutate(&mut rng, &m);
        }
        check(&format!("mutation {i} of {name}"), &m);
        if TraceReader::new(&m[..]).is_ok_and(|mut r| {
            while let Ok(Some(_)) = r.next_record() {}
            r.cut().is_some()
        }) {
            cut += 1;
        }
    }
    // Most mutations must be seen as damage (not read as sound traces).
    assert!(
        cut > 1000,
        "only {cut} of 3000 mutations were found damaged"
    );
}

#[test]
fn random_bytes_after_a_header() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng(7);
    for i in 0..500 {
        let mut b = leakhunt_format::file_header().to_vec();
        b.extend((0..rng.below(4096)).map(|_| rng.next() as u8));
        check(&format!("random {i}"), &b);
    }
}
