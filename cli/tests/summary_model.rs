//! `Model::load_summary` (what `leakhunt run` prints from) against the full
//! replay, on handcrafted traces: the recorder's marked chunks (version 2,
//! event chunks skipped), a trace of an older recorder (version 1: no marks,
//! no verdicts in `LiveAtEnd`), a cut trace, and a failed exec.

use leakhunt_cli::model::Model;
use leakhunt_format::*;
use std::path::{Path, PathBuf};

struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, bytes: &[u8]) -> TempFile {
        let p = std::env::temp_dir().join(format!(
            "leakhunt-summary-model-{}-{name}.trace",
            std::process::id()
        ));
        std::fs::write(&p, bytes).unwrap();
        TempFile(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn alloc(ptr: u64, size: u64, stack: u64) -> Record {
    Record::Alloc {
        ptr,
        size,
        stack,
        func: AllocFn::Malloc,
    }
}

fn process() -> Record {
    Record::Process(ProcessInfo {
        pid: 7,
        ppid: 1,
        origin: Origin::Start,
        start_unix_ns: 1,
        exe: "/bin/prog".into(),
        argv: vec!["prog".into()],
        recorder: "test".into(),
    })
}

/// A run: two threads allocate on two stacks, one block is lost, one is
/// reachable through a heuristic, one plainly reachable; `verdicts` says
/// whether `LiveAtEnd` carries them (recorders of format version 2 do).
fn image(verdicts: bool, end: EndReason) -> Vec<Record> {
    let mut r = vec![
        process(),
        Record::Module(Module {
            id: 0,
            base: 0x5555_0000_0000,
            path: "/bin/prog".into(),
            build_id: vec![],
            segments: vec![],
        }),
        Record::Thread { tid: 7 },
        Record::Time { us: 100 },
        Record::StackNode {
            parent: 0,
            ip: 0x5555_0000_1000,
        },
    ];
    let mut live = std::collections::BTreeMap::<u64, (u64, u64)>::new();
    let (mut live_bytes, mut peak_bytes) = (0, 0);
    for i in 0..2000u64 {
        let ptr = 0x6000_0000 + (i % 50) * 0x40;
        if i >= 50 {
            r.push(Record::Free { ptr });
            live_bytes -= live[&ptr].0;
        }
        if i == 1000 {
            r.push(Record::StackNode {
                parent: 1,
                ip: 0x5555_0000_2000,
            });
            r.push(Record::Thread { tid: 8 });
        }
        let stack = if i >= 1000 { 2 } else { 1 };
        r.push(alloc(ptr, 16 + i % 7, stack));
        live.insert(ptr, (16 + i % 7, stack));
        live_bytes += 16 + i % 7;
        peak_bytes = u64::max(peak_bytes, live_bytes);
        if i % 300 == 0 {
            r.push(Record::Time { us: 100 + i });
        }
    }
    let lost = Verdict {
        kind: LeakKind::DefinitelyLost,
        heuristic: 0,
        indirect_bytes: 0,
        indirect_blocks: 0,
    };
    let via_heuristic = Verdict {
        kind: LeakKind::StillReachable,
        heuristic: 1,
        indirect_bytes: 0,
        indirect_blocks: 0,
    };
    let scan = [(0x6000_0000u64, lost), (0x6000_0040, via_heuristic)];
    r.push(Record::LeakScan(ScanInfo::default()));
    for (ptr, v) in scan {
        r.push(Record::LeakBlock {
            ptr,
            kind: v.kind,
            heuristic: v.heuristic,
            indirect_bytes: v.indirect_bytes,
            indirect_blocks: v.indirect_blocks,
        });
    }
    for (&ptr, &(size, stack)) in &live {
        r.push(Record::LiveAtEnd {
            ptr,
            size,
            stack,
            func: AllocFn::Malloc,
            verdict: verdicts
                .then(|| scan.iter().find(|(p, _)| *p == ptr).map(|(_, v)| *v))
                .flatten(),
        });
    }
    r.push(Record::Totals(ImageTotals {
        allocations: 2000,
        frees: 1950,
        allocated_bytes: (0..2000u64).map(|i| 16 + i % 7).sum(),
        peak_bytes,
        peak_time_us: 0,
        live_blocks: live.len() as u64,
        live_bytes,
        mmaps: 0,
        munmaps: 0,
        by_function: vec![(AllocFn::Malloc, 2000)],
    }));
    r.push(Record::End(EndInfo {
        reason: end,
        anomalies: 0,
        unknown_frees: 0,
        dropped: 0,
    }));
    r
}

/// As the recorder writes it now: marked chunks, flushed every `every` records.
fn version2(records: &[Record], every: usize) -> Vec<u8> {
    let mut file = file_header().to_vec();
    let mut w = ChunkWriter::default();
    for (i, r) in records.iter().enumerate() {
        w.push(r);
        if (i + 1) % every == 0 {
            w.flush_to(&mut file).unwrap();
        }
    }
    w.flush_to(&mut file).unwrap();
    file
}

/// As an older recorder wrote it: version 1, one stream, unmarked chunks.
fn version1(records: &[Record], every: usize) -> Vec<u8> {
    let mut file = file_header().to_vec();
    file[8..12].copy_from_slice(&1u32.to_le_bytes());
    let mut e = Encoder::default();
    let mut raw = Vec::new();
    for (i, r) in records.iter().enumerate() {
        e.encode(r, &mut raw);
        if (i + 1) % every == 0 {
            encode_legacy_chunk(&raw, false, &mut file);
            raw.clear();
        }
    }
    encode_legacy_chunk(&raw, false, &mut file);
    file
}

/// What a summary shows: totals, live blocks, verdicts of the live blocks,
/// the scan, the end, the cut, the modules and stacks of the live blocks.
fn summary_of(m: &Model) -> String {
    let mut live: Vec<_> = m
        .live
        .iter()
        .map(|(p, b)| {
            let v = m.verdicts.get(p).map(|v| (v.kind, v.heuristic));
            (*p, b.size, m.stack_ips(b.stack), b.func, v)
        })
        .collect();
    live.sort_by_key(|l| l.0);
    let t = &m.totals;
    format!(
        "{} {} {} {} {} {} {:?} | {live:?} | {:?} {:?} {:?} {}",
        t.allocations,
        t.frees,
        t.allocated_bytes,
        t.peak_bytes,
        t.live_blocks_at_end,
        t.live_bytes_at_end,
        t.by_function,
        m.scan.is_some(),
        m.end.map(|e| e.reason),
        m.cut.is_some(),
        m.modules.len(),
    )
}

#[test]
fn summary_equals_replay_for_this_and_older_recorders() {
    let recs = image(true, EndReason::Exit { code: 0 });
    let old = image(false, EndReason::Exit { code: 0 });
    for every in [1, 7, 500, usize::MAX] {
        for (name, bytes) in [
            ("v2", version2(&recs, every)),
            ("v1", version1(&old, every)),
        ] {
            let f = TempFile::new(name, &bytes);
            let full = Model::load(f.path()).unwrap();
            let summary = Model::load_summary(f.path()).unwrap();
            assert!(full.recorded_totals.is_some());
            assert_eq!(
                summary_of(&summary),
                summary_of(&full),
                "{name}, flushed every {every}"
            );
            assert_eq!(full.verdicts.len(), 2);
        }
    }
}

#[test]
fn summary_skips_the_event_chunks() {
    let f = TempFile::new(
        "skips",
        &version2(&image(true, EndReason::Exit { code: 0 }), 50),
    );
    let file = std::fs::File::open(f.path()).unwrap();
    let mut r = TraceReader::new(std::io::BufReader::new(file)).unwrap();
    r.skip_event_chunks();
    let mut n = 0;
    while let Some(rec) = r.next_record().unwrap() {
        assert!(!rec.is_event(), "{rec:?}");
        n += 1;
    }
    assert!(r.skipped_chunks() > 10);
    assert!(n > 50, "{n} structural records");
}

#[test]
fn a_cut_trace_is_summarised_as_the_replay_does() {
    let bytes = version2(&image(true, EndReason::Exit { code: 0 }), 300);
    for len in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 5] {
        let f = TempFile::new("cut", &bytes[..len]);
        let full = Model::load(f.path()).unwrap();
        let summary = Model::load_summary(f.path()).unwrap();
        assert!(summary.cut.is_some(), "cut at {len}");
        assert!(summary.recorded_totals.is_none());
        assert_eq!(summary_of(&summary), summary_of(&full), "cut at {len}");
    }
}

#[test]
fn events_after_an_exec_that_failed_reopen_the_image() {
    let mut recs = vec![
        process(),
        alloc(0x1000, 8, 0),
        Record::End(EndInfo {
            reason: EndReason::Exec,
            anomalies: 0,
            unknown_frees: 0,
            dropped: 0,
        }),
    ];
    let f = TempFile::new("exec", &version2(&recs, usize::MAX));
    let m = Model::load_summary(f.path()).unwrap();
    assert_eq!(m.end.map(|e| e.reason), Some(EndReason::Exec));
    // The exec failed: the image allocates on (events only) and is killed.
    recs.push(Record::Free { ptr: 0x1000 });
    let f = TempFile::new("exec_failed", &version2(&recs, usize::MAX));
    let m = Model::load_summary(f.path()).unwrap();
    assert_eq!(m.end, None);
    assert_eq!(Model::load(f.path()).unwrap().end, None);
}
