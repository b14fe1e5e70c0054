use super::*;

fn sample() -> Vec<Record> {
    vec![
        Record::LiveAtEnd {
            ptr: 0x5555_0000_1000,
            size: 48,
            stack: 3,
            func: AllocFn::Calloc,
            verdict: None,
        },
        Record::LiveAtEnd {
            ptr: 0x5555_0000_2000,
            size: 1 << 33,
            stack: 0,
            func: AllocFn::Malloc,
            verdict: Some(Verdict {
                kind: LeakKind::DefinitelyLost,
                heuristic: 0,
                indirect_bytes: 1 << 40,
                indirect_blocks: 3,
            }),
        },
        Record::Totals(ImageTotals {
            allocations: 10,
            frees: 9,
            allocated_bytes: 480,
            peak_bytes: 96,
            peak_time_us: 1500,
            live_blocks: 1,
            live_bytes: 48,
            mmaps: 2,
            munmaps: 1,
            by_function: vec![(AllocFn::Malloc, 9), (AllocFn::Calloc, 1)],
        }),
        Record::Python {
            version: "3.11.7".into(),
            frames: true,
            allocator: "malloc".into(),
        },
        Record::PyCode(PyCode {
            id: 7,
            name: "Handler.get".into(),
            file: "/srv/app.py".into(),
            first_line: 21,
            linetable_format: 3,
            linetable: vec![0x80, 0x81, 0xff],
        }),
        Record::Process(ProcessInfo {
            pid: 42,
            ppid: 1,
            origin: Origin::Fork { parent_pid: 41 },
            start_unix_ns: 1_700_000_000_000_000_000,
            exe: "/bin/prog".into(),
            argv: vec!["prog".into(), "-x".into()],
            recorder: "0.1.0".into(),
        }),
        Record::Module(Module {
            id: 0,
            base: 0x5555_0000_0000,
            path: "/bin/prog".into(),
            build_id: vec![1, 2, 3],
            segments: vec![Segment {
                vaddr: 0,
                memsz: 4096,
                flags: 5,
                file_offset: 0,
            }],
        }),
        Record::StackNode {
            parent: 0,
            ip: 0x5555_0000_1234,
        },
        Record::Thread { tid: 42 },
        Record::Time { us: 10 },
        Record::Alloc {
            ptr: 0x5555_6000_0010,
            size: 16,
            stack: 1,
            func: AllocFn::Calloc,
        },
        Record::Alloc {
            ptr: 0x5555_6000_0000,
            size: 16,
            stack: 1,
            func: AllocFn::Malloc,
        },
        Record::Time { us: 5 },
        Record::Realloc {
            old_ptr: 0x5555_6000_0010,
            ptr: 0x7fff_0000_0000,
            size: 1 << 40,
            stack: 1,
        },
        Record::Free {
            ptr: 0x5555_6000_0000,
        },
        Record::Inherited {
            ptr: 1,
            size: 2,
            stack: 0,
        },
        Record::Mmap {
            addr: 0x7000,
            len: 4096,
            prot: 3,
            flags: 0x22,
            stack: 1,
        },
        Record::Munmap {
            addr: 0x7000,
            len: 4096,
        },
        Record::Rss { bytes: 123456 },
        Record::End(EndInfo {
            reason: EndReason::Exit { code: -3 },
            anomalies: 0,
            unknown_frees: 2,
            dropped: 0,
        }),
        Record::ExitStatus {
            code: None,
            signal: Some(9),
        },
    ]
}

fn write_trace(records: &[Record], per_chunk: usize) -> Vec<u8> {
    let mut file = file_header().to_vec();
    let mut w = ChunkWriter::default();
    for (i, r) in records.iter().enumerate() {
        w.push(r);
        if (i + 1) % per_chunk == 0 {
            w.flush_to(&mut file).unwrap();
        }
    }
    w.flush_to(&mut file).unwrap();
    file
}

/// The order `write_trace` puts records in, as the module docs promise:
/// between two flushes, structure before events, except that a sequence
/// point follows every event pushed before it.
fn file_order(records: &[Record], per_chunk: usize) -> Vec<Record> {
    let (mut out, mut structure, mut events) = (Vec::new(), Vec::new(), Vec::new());
    let frame = |out: &mut Vec<Record>, s: &mut Vec<Record>, e: &mut Vec<Record>| {
        out.append(s);
        out.append(e);
    };
    for (i, r) in records.iter().enumerate() {
        if r.is_event() {
            events.push(r.clone());
        } else {
            if r.is_sequence_point() && !events.is_empty() {
                frame(&mut out, &mut structure, &mut events);
            }
            structure.push(r.clone());
        }
        if (i + 1) % per_chunk == 0 {
            frame(&mut out, &mut structure, &mut events);
        }
    }
    frame(&mut out, &mut structure, &mut events);
    out
}

fn read_all(bytes: &[u8]) -> (Vec<Record>, Option<Cut>) {
    read_with(bytes, false)
}

fn read_with(bytes: &[u8], skip_events: bool) -> (Vec<Record>, Option<Cut>) {
    let mut r = TraceReader::new(bytes).unwrap();
    if skip_events {
        r.skip_event_chunks();
    }
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push(rec);
    }
    (out, r.cut().cloned())
}

#[test]
fn round_trip() {
    let recs = sample();
    for per_chunk in [1, 3, 100] {
        let (got, cut) = read_all(&write_trace(&recs, per_chunk));
        assert_eq!(cut, None);
        assert_eq!(got, file_order(&recs, per_chunk));
    }
}

#[test]
fn structure_never_uses_the_delta_state() {
    // A summary decodes structure without the events between: a structural
    // record that moved the delta state would desynchronize the rest.
    for r in sample().iter().filter(|r| !r.is_event()) {
        let mut e = Encoder::default();
        e.d.ptrs[3] = 0x1234_5678;
        e.d.time = 99;
        let before = e.d.clone();
        e.encode(r, &mut Vec::new());
        assert_eq!(e.d, before, "{r:?}");
    }
}

#[test]
fn summary_reads_structure_only() {
    let recs = sample();
    for per_chunk in [1, 3, 100] {
        let bytes = write_trace(&recs, per_chunk);
        let (got, cut) = read_with(&bytes, true);
        assert_eq!(cut, None);
        let want: Vec<Record> = file_order(&recs, per_chunk)
            .into_iter()
            .filter(|r| !r.is_event())
            .collect();
        assert_eq!(got, want);
        let mut r = TraceReader::new(&bytes[..]).unwrap();
        r.skip_event_chunks();
        while r.next_record().unwrap().is_some() {}
        assert!(r.skipped_chunks() > 0);
        // A cut inside an event chunk is still a cut.
        let (_, cut) = read_with(&bytes[..bytes.len() - 1], true);
        assert!(cut.is_some());
    }
}

#[test]
fn sequence_points_follow_earlier_events() {
    let recs = vec![
        Record::StackNode { parent: 0, ip: 1 },
        Record::Alloc {
            ptr: 16,
            size: 1,
            stack: 1,
            func: AllocFn::Malloc,
        },
        Record::ModuleUnload { id: 0 },
        Record::StackNode { parent: 0, ip: 2 },
        Record::Free { ptr: 16 },
    ];
    let (got, _) = read_all(&write_trace(&recs, 100));
    assert_eq!(got, recs);
}

#[test]
fn version_1_has_no_marks() {
    // An older trace: the bit is not a mark but a length out of range.
    let mut file = file_header().to_vec();
    file[8..12].copy_from_slice(&1u32.to_le_bytes());
    let mut raw = Vec::new();
    Encoder::default().encode(&Record::Thread { tid: 7 }, &mut raw);
    encode_legacy_chunk(&raw, false, &mut file);
    let mut marked = file.clone();
    encode_legacy_chunk(&raw, true, &mut marked);
    assert_eq!(
        read_with(&file, true),
        (vec![Record::Thread { tid: 7 }], None)
    );
    let (got, cut) = read_with(&marked, true);
    assert_eq!(got, vec![Record::Thread { tid: 7 }]);
    assert!(matches!(cut, Some(Cut::Damaged { .. })), "{cut:?}");
}

#[test]
fn truncated_reads_complete_chunks() {
    let recs = sample();
    let bytes = write_trace(&recs, 4);
    for len in FILE_HEADER_LEN..bytes.len() {
        let (got, cut) = read_all(&bytes[..len]);
        let all = file_order(&recs, 4);
        assert!(got.len() <= all.len());
        assert_eq!(&all[..got.len()], &got[..]);
        // A file cut exactly between two chunks cannot know it was cut.
        let mut r = TraceReader::new(&bytes[..len]).unwrap();
        while r.next_record().unwrap().is_some() {}
        if r.offset() != len as u64 {
            assert!(
                matches!(cut, Some(Cut::Truncated { .. })),
                "len {len}: {cut:?}"
            );
        }
    }
}

#[test]
fn damage_is_detected_not_trusted() {
    let recs = sample();
    let bytes = write_trace(&recs, 4);
    for i in FILE_HEADER_LEN..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        let (got, cut) = read_all(&b);
        let all = file_order(&recs, 4);
        assert_eq!(&all[..got.len()], &got[..]);
        assert!(cut.is_some(), "flipping byte {i} went unnoticed");
        // A summary checks the event chunks it does not decode.
        let (_, cut) = read_with(&b, true);
        assert!(cut.is_some(), "summary: flipping byte {i} went unnoticed");
    }
}

#[test]
fn header_errors() {
    assert!(matches!(
        TraceReader::new(&b""[..]),
        Err(FormatError::TooShort)
    ));
    assert!(matches!(
        TraceReader::new(&b"LEAK"[..]),
        Err(FormatError::TooShort)
    ));
    assert!(matches!(
        TraceReader::new(&b"hello world, not a trace"[..]),
        Err(FormatError::BadMagic)
    ));
    assert!(matches!(
        TraceReader::new(&b"#!/bin"[..]),
        Err(FormatError::BadMagic)
    ));
    let mut h = file_header();
    h[8] = 99;
    assert!(matches!(
        TraceReader::new(&h[..]),
        Err(FormatError::NewerVersion { found: 99, .. })
    ));
    let mut h = file_header();
    h[8..12].copy_from_slice(&0u32.to_le_bytes());
    assert!(matches!(
        TraceReader::new(&h[..]),
        Err(FormatError::VersionZero)
    ));
    for flags in [1u32, 0x8000_0000, u32::MAX] {
        let mut h = file_header();
        h[12..16].copy_from_slice(&flags.to_le_bytes());
        assert!(
            matches!(TraceReader::new(&h[..]), Err(FormatError::UnknownFlags(f)) if f == flags),
            "{flags:#x}"
        );
    }
}

/// (start, end) of each chunk of a trace of the current version.
fn chunk_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut at = FILE_HEADER_LEN;
    while at + CHUNK_HEADER_LEN <= bytes.len() {
        let clen = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let end = at + CHUNK_HEADER_LEN + clen;
        spans.push((at, end));
        at = end;
    }
    assert_eq!(at, bytes.len());
    spans
}

#[test]
fn duplicated_or_reordered_chunks_are_damage() {
    let recs = sample();
    let bytes = write_trace(&recs, 2);
    let spans = chunk_spans(&bytes);
    assert!(spans.len() >= 4, "{} chunks", spans.len());
    let (whole, _) = read_all(&bytes);
    for (i, &(a, b)) in spans.iter().enumerate() {
        // chunk i twice in a row
        let mut dup = bytes[..b].to_vec();
        dup.extend_from_slice(&bytes[a..]);
        let (got, cut) = read_all(&dup);
        assert!(
            matches!(&cut, Some(Cut::Damaged { offset, why }) if *offset == b as u64 && why.contains("again")),
            "chunk {i} duplicated: {cut:?}"
        );
        assert_eq!(got.len(), read_all(&bytes[..b]).0.len(), "chunk {i}");
        assert!(got.len() <= whole.len());
        // chunk i moved to the end
        if i + 1 < spans.len() {
            let mut moved = bytes[..a].to_vec();
            moved.extend_from_slice(&bytes[b..]);
            moved.extend_from_slice(&bytes[a..b]);
            let (_, cut) = read_all(&moved);
            assert!(
                matches!(&cut, Some(Cut::Damaged { offset, .. }) if *offset == a as u64),
                "chunk {i} moved: {cut:?}"
            );
        }
        // (both again with a summary, which skips event chunks undecoded)
        let (_, cut) = read_with(&dup, true);
        assert!(
            matches!(cut, Some(Cut::Damaged { .. })),
            "{i}: summary {cut:?}"
        );
    }
}

#[test]
fn concatenated_and_foreign_chunks_are_damage() {
    let recs = sample();
    let a = write_trace(&recs, 3);
    let b = write_trace(&recs, 3);
    let (whole, _) = read_all(&a);
    // cat a a
    let mut twice = a.clone();
    twice.extend_from_slice(&a);
    let (got, cut) = read_all(&twice);
    assert_eq!(got, whole);
    assert!(
        matches!(&cut, Some(Cut::Damaged { offset, why }) if *offset == a.len() as u64 && why.contains("concatenated")),
        "{cut:?}"
    );
    // b's chunks after a's header (the same records, another trace)
    let sa = chunk_spans(&a);
    let sb = chunk_spans(&b);
    assert_eq!(sa.len(), sb.len());
    let mut mixed = a[..sa[1].0].to_vec();
    mixed.extend_from_slice(&b[sb[1].0..]);
    let (got, cut) = read_all(&mixed);
    assert_eq!(got, read_all(&a[..sa[1].0]).0);
    assert!(
        matches!(&cut, Some(Cut::Damaged { why, .. }) if why.contains("another trace")),
        "{cut:?}"
    );
}

#[test]
fn appended_chunks_continue_the_trace() {
    let recs = sample();
    for bytes in [write_trace(&recs, 3), legacy_trace(&recs, 2)] {
        let mut r = TraceReader::new(&bytes[..]).unwrap();
        assert_eq!(r.framing(), None, "not at the end yet");
        while r.next_record().unwrap().is_some() {}
        let framing = r.framing().unwrap();
        let mut more = bytes.clone();
        let mut w = ChunkWriter::continuing(framing);
        w.push(&Record::ExitStatus {
            code: Some(3),
            signal: None,
        });
        w.flush_to(&mut more).unwrap();
        let (got, cut) = read_all(&more);
        assert_eq!(cut, None);
        assert_eq!(
            got.last(),
            Some(&Record::ExitStatus {
                code: Some(3),
                signal: None
            })
        );
        // A writer of a trace of its own does not continue this one.
        let mut foreign = bytes.clone();
        let mut w = ChunkWriter::default();
        w.push(&Record::Thread { tid: 1 });
        w.flush_to(&mut foreign).unwrap();
        if framing.version() >= 3 {
            assert!(read_all(&foreign).1.is_some());
        }
    }
}

/// A trace as version 2 wrote it: marked chunks with 12-byte headers.
fn legacy_trace(records: &[Record], per_chunk: usize) -> Vec<u8> {
    let mut file = file_header().to_vec();
    file[8..12].copy_from_slice(&2u32.to_le_bytes());
    let (mut e, mut s, mut ev) = (Encoder::default(), Vec::new(), Vec::new());
    for (i, r) in records.iter().enumerate() {
        e.encode(r, if r.is_event() { &mut ev } else { &mut s });
        if (i + 1) % per_chunk == 0 || i + 1 == records.len() {
            for (buf, events) in [(&mut s, false), (&mut ev, true)] {
                if !buf.is_empty() {
                    encode_legacy_chunk(buf, events, &mut file);
                    buf.clear();
                }
            }
        }
    }
    file
}

#[test]
fn version_2_is_still_read() {
    let recs: Vec<Record> = sample()
        .into_iter()
        .filter(|r| !r.is_sequence_point())
        .collect();
    let bytes = legacy_trace(&recs, 3);
    let (got, cut) = read_all(&bytes);
    assert_eq!(cut, None);
    assert_eq!(got, file_order(&recs, 3));
    let (got, cut) = read_with(&bytes, true);
    assert_eq!(cut, None);
    assert_eq!(got.len(), recs.iter().filter(|r| !r.is_event()).count());
}

#[test]
fn huge_lengths_are_refused() {
    let mut b = file_header().to_vec();
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    b.extend_from_slice(&[0u8; CHUNK_HEADER_LEN - 8]);
    let (got, cut) = read_all(&b);
    assert!(got.is_empty());
    assert!(matches!(cut, Some(Cut::Damaged { .. })));
}

#[test]
fn unknown_skippable_records_are_skipped() {
    let mut raw = Vec::new();
    raw.push(0x90);
    varint::put(&mut raw, 3);
    raw.extend_from_slice(&[9, 9, 9]);
    Encoder::default().encode(&Record::Thread { tid: 7 }, &mut raw);
    let mut file = file_header().to_vec();
    ChunkFraming::new_trace().frame(&raw, false, &mut file);
    let (got, cut) = read_all(&file);
    assert_eq!(cut, None);
    assert_eq!(got, vec![Record::Thread { tid: 7 }]);
}

#[test]
fn python_frames_are_tagged() {
    let ip = python_frame(12345, 678);
    assert_eq!(parse_python_frame(ip), Some((12345, 678)));
    assert_eq!(parse_python_frame(0x7fff_ffff_f000), None);
    // Offsets saturate rather than spill into the id.
    assert_eq!(
        parse_python_frame(python_frame(3, u64::MAX)),
        Some((3, (1 << 24) - 1))
    );
}

#[test]
fn older_reader_skips_python_code() {
    // The record is length-prefixed: a reader that does not know it moves on.
    let mut e = Encoder::default();
    let mut buf = Vec::new();
    let code = sample()
        .into_iter()
        .find(|r| matches!(r, Record::PyCode(_)))
        .unwrap();
    e.encode(&code, &mut buf);
    assert_eq!(buf[0], 0x80);
    let mut pos = 1;
    let len = crate::varint::get(&buf, &mut pos).unwrap() as usize;
    assert_eq!(pos + len, buf.len());
}

/// Frees and allocations coded against the threads' histories decode to the
/// very records pushed, whatever the writer's slot hints say (right, stale
/// or wrong), across thread switches, more threads than histories, and
/// chunk boundaries; and the coding does pay off where blocks die young.
#[test]
fn history_coding_round_trips() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for (threads, fresh_addresses) in [(1, false), (4, false), (90, true)] {
        let mut w = ChunkWriter::default();
        let mut file = file_header().to_vec();
        // The same records coded by address only, to size the gain.
        let (mut plain, mut plain_file) = (ChunkWriter::default(), file_header().to_vec());
        let mut want = Vec::new();
        // Per thread: live blocks with the slot their allocation was given.
        let mut live: Vec<Vec<(u64, u16)>> = vec![Vec::new(); threads];
        let mut free_list: Vec<u64> = Vec::new();
        let mut next = 0x5555_0000_0000u64;
        let mut tid = 0usize;
        for i in 0..60_000u32 {
            if rnd(8) == 0 {
                tid = rnd(threads as u64) as usize;
                let r = Record::Thread {
                    tid: tid as u32 + 100,
                };
                w.push(&r);
                plain.push(&r);
                want.push(r);
            }
            if live[tid].is_empty() || rnd(2) == 0 {
                // Reuse a freed address now and then, as allocators do.
                let ptr = match free_list.pop() {
                    Some(p) if !fresh_addresses && rnd(3) > 0 => p,
                    _ => {
                        next += 16 * (1 + rnd(4));
                        next
                    }
                };
                let slot = w.next_alloc_slot();
                let r = Record::Alloc {
                    ptr,
                    size: 16 + rnd(300),
                    stack: rnd(5),
                    func: AllocFn::Malloc,
                };
                w.push(&r);
                plain.push(&r);
                want.push(r);
                live[tid].push((ptr, slot));
            } else {
                // Mostly the youngest blocks; now and then a block of another
                // thread, or a hint that is simply wrong.
                let from = if rnd(10) == 0 {
                    rnd(threads as u64) as usize
                } else {
                    tid
                };
                if live[from].is_empty() {
                    continue;
                }
                let k = live[from].len() - 1 - (rnd(live[from].len() as u64 * 3 / 4 + 1) as usize);
                let (ptr, slot) = live[from].swap_remove(k);
                let slot = if rnd(20) == 0 { rnd(4096) as u16 } else { slot };
                w.push_free(ptr, slot);
                plain.push(&Record::Free { ptr });
                want.push(Record::Free { ptr });
                free_list.push(ptr);
            }
            if i % 7_000 == 0 {
                w.flush_to(&mut file).unwrap();
                plain.flush_to(&mut plain_file).unwrap();
            }
        }
        w.flush_to(&mut file).unwrap();
        plain.flush_to(&mut plain_file).unwrap();
        let (got, cut) = read_all(&file);
        assert_eq!(cut, None, "{threads} threads");
        assert_eq!(got.len(), want.len(), "{threads} threads");
        assert!(got == want, "{threads} threads: decoded records differ");
        if !fresh_addresses {
            // Young frees and reused addresses: a tenth smaller at least.
            assert!(
                file.len() * 10 < plain_file.len() * 9,
                "{threads} threads: {} bytes, {} coded by address",
                file.len(),
                plain_file.len()
            );
        }
    }
}
