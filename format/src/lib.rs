//! The leakhunt trace format, shared by the recorder (`preload/`) and the CLI.
//!
//! A trace is a 16-byte file header followed by self-delimiting chunks:
//!
//! ```text
//! file   := "LEAKHUNT" version:u32le flags:u32le chunk*
//! chunk  := compressed_len:u32le raw_len:u32le trace_id:u32le seq:u32le
//!           crc32:u32le payload[compressed_len]
//! ```
//!
//! The payload holds `raw_len` bytes of records: a zstd frame when the
//! [`ZSTD_CHUNK`] bit of `raw_len` is set (version 4 on), else an LZ4 block. The CRC32
//! covers the lengths, the trace id, the sequence number and the compressed
//! payload, so a damaged length is caught before it is trusted. A trace cut
//! short (the process was killed) reads up to its last complete chunk.
//! No flag is defined yet: a header with any flag set is refused.
//!
//! Since version 3 every chunk names its trace (`trace_id`, drawn when the
//! writer starts a file) and its place in it (`seq`: 0, 1, 2, ...), so a
//! chunk repeated, moved or spliced in from another trace is damage, read up
//! to and never counted twice. Versions 1 and 2 framed chunks without the two
//! fields (a 12-byte chunk header); they are still read.
//!
//! Since version 4 chunks are zstd frames (one per chunk, see `zstd`): a
//! third to a half the size of LZ4 blocks. A chunk may still be LZ4 (the
//! bit clear), should a zstd context be out of reach.
//!
//! Since version 2 the top bit of `raw_len` ([`EVENT_CHUNK`]) marks a chunk
//! that holds only events ([`Record::is_event`]); every other chunk holds only
//! structure. The writer flushes the structure of a stretch of the run before
//! its events, so file order still defines every stack node before its first
//! use, and a summary ([`TraceReader::skip_event_chunks`]) checks event chunks
//! but never decompresses them: it costs what the structure costs, not what
//! the events do.
//!
//! Records are a tag byte followed by LEB128 varints; pointers and timestamps
//! are delta-encoded against the previous record of the stream, so the decoder
//! is stateful and must see every chunk in order. Stacks are interned as a trie:
//! each `StackNode` record defines the next node id (1, 2, ...) as a child of an
//! earlier node (0 is the empty root), and an allocation names its innermost node.
//!
//! This crate's only `unsafe` is the zstd FFI (`zstd`), and it never trusts a
//! length from the file without bounding it first.

mod record;
mod varint;
mod zstd;

pub use record::*;

use std::io::{self, Read, Write};

pub const MAGIC: &[u8; 8] = b"LEAKHUNT";
/// Bumped whenever a reader of an older version could misread a newer trace.
/// Version 2: chunks are marked as events or structure (see the module docs).
/// Version 3: chunks carry their trace's id and a sequence number.
/// Version 4: chunks may be zstd frames; the `FREE_RECENT` record.
pub const FORMAT_VERSION: u32 = 4;
/// The oldest version this crate reads.
pub const OLDEST_VERSION: u32 = 1;
/// Header flags this crate understands (none yet).
pub const KNOWN_FLAGS: u32 = 0;
pub const FILE_HEADER_LEN: usize = 16;
/// A chunk header of version 3.
pub const CHUNK_HEADER_LEN: usize = 20;
/// A chunk header of versions 1 and 2 (no trace id, no sequence number).
pub const LEGACY_CHUNK_HEADER_LEN: usize = 12;
/// A chunk never holds more than this many uncompressed bytes; a larger length
/// in a file means the file is damaged, and the reader refuses to allocate it.
pub const MAX_CHUNK_RAW: usize = 16 << 20;
/// Set in a chunk's `raw_len` field (version 2 on): the chunk holds only events.
pub const EVENT_CHUNK: u32 = 1 << 31;
/// Set in a chunk's `raw_len` field (version 4 on): the payload is a zstd frame.
pub const ZSTD_CHUNK: u32 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("not a leakhunt trace (bad magic)")]
    BadMagic,
    #[error("trace format version {found} is newer than this leakhunt understands ({supported}); upgrade leakhunt")]
    NewerVersion { found: u32, supported: u32 },
    #[error("trace format version 0 does not exist: the header is damaged")]
    VersionZero,
    #[error("the trace header has flags {0:#x} this leakhunt does not know: the header is damaged, or a newer leakhunt wrote it")]
    UnknownFlags(u32),
    #[error("the trace is empty or shorter than its header")]
    TooShort,
    /// The header is good but not one chunk after it is: there is nothing
    /// to report on (a cut or damaged trace with at least one good chunk is
    /// reported with a warning instead).
    #[error("nothing readable after the header: {0}")]
    NothingReadable(String),
    #[error("damaged chunk at byte {offset}: {why}")]
    Damaged { offset: u64, why: &'static str },
    #[error("malformed record in chunk at byte {offset}: {why}")]
    BadRecord { offset: u64, why: &'static str },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The program name in a trace's file name (`%n`, and the default
/// `leakhunt.<program>.<pid>.trace`): the last path component of `argv0`,
/// with anything but letters, digits and `._-+` replaced. The recorder and
/// `leakhunt run` must agree on it.
pub fn program_file_name(argv0: &str) -> String {
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    let name: String = base
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "._-+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "unknown".into()
    } else {
        name
    }
}

pub fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// Where a chunk sits: its trace and its place in it (version 3 on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    trace_id: u32,
    seq: u32,
}

fn chunk_crc(compressed_len: u32, raw_len: u32, place: Option<Place>, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&compressed_len.to_le_bytes());
    h.update(&raw_len.to_le_bytes());
    if let Some(p) = place {
        h.update(&p.trace_id.to_le_bytes());
        h.update(&p.seq.to_le_bytes());
    }
    h.update(payload);
    h.finalize()
}

/// Compresses `raw` into one chunk appended to `out`, with a header of
/// version 3 when `place` is given, else of versions 1 and 2; with zstd
/// when given a context (version 4 on) and it works, else with LZ4.
fn frame_chunk(
    raw: &[u8],
    events: bool,
    place: Option<Place>,
    zstd: Option<&mut zstd::Compressor>,
    out: &mut Vec<u8>,
) {
    debug_assert!(raw.len() <= MAX_CHUNK_RAW);
    let header_len = if place.is_some() {
        CHUNK_HEADER_LEN
    } else {
        LEGACY_CHUNK_HEADER_LEN
    };
    let start = out.len();
    out.resize(start + header_len, 0);
    let zstd = zstd.is_some_and(|z| z.compress(raw, out));
    if !zstd {
        let bound = lz4_flex::block::get_maximum_output_size(raw.len());
        out.resize(start + header_len + bound, 0);
        let n = lz4_flex::block::compress_into(raw, &mut out[start + header_len..])
            .expect("output sized by get_maximum_output_size");
        out.truncate(start + header_len + n);
    }
    let n = out.len() - start - header_len;
    let (clen, rlen) = (
        n as u32,
        raw.len() as u32 | if events { EVENT_CHUNK } else { 0 } | if zstd { ZSTD_CHUNK } else { 0 },
    );
    let crc = chunk_crc(clen, rlen, place, &out[start + header_len..]);
    let mut h = Vec::with_capacity(header_len);
    h.extend_from_slice(&clen.to_le_bytes());
    h.extend_from_slice(&rlen.to_le_bytes());
    if let Some(p) = place {
        h.extend_from_slice(&p.trace_id.to_le_bytes());
        h.extend_from_slice(&p.seq.to_le_bytes());
    }
    h.extend_from_slice(&crc.to_le_bytes());
    out[start..start + header_len].copy_from_slice(&h);
}

/// Frames a chunk as versions 1 and 2 did (no trace id, no sequence
/// number): for tests and tools that build older traces.
pub fn encode_legacy_chunk(raw: &[u8], events: bool, out: &mut Vec<u8>) {
    frame_chunk(raw, events, None, None, out)
}

/// How the chunks of one trace are framed: its version, its id, and the
/// sequence number of the next chunk. A writer starts a trace with
/// [`ChunkFraming::new_trace`]; `leakhunt run` continues one it read with
/// [`TraceReader::framing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkFraming {
    version: u32,
    trace_id: u32,
    next_seq: u32,
}

impl ChunkFraming {
    /// A new trace of the current version, with an id of its own: drawn
    /// from the clock, the pid and a counter, so two traces (two runs, a
    /// parent and its forked child) differ.
    pub fn new_trace() -> ChunkFraming {
        use std::sync::atomic::{AtomicU32, Ordering};
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut h = crc32fast::Hasher::new();
        h.update(&nanos.to_le_bytes());
        h.update(&std::process::id().to_le_bytes());
        h.update(&STARTED.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        ChunkFraming {
            version: FORMAT_VERSION,
            trace_id: h.finalize(),
            next_seq: 0,
        }
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// Compresses `raw` records into the trace's next chunk, appended to
    /// `out`; `events` marks a chunk of events only (version 2 on).
    pub fn frame(&mut self, raw: &[u8], events: bool, out: &mut Vec<u8>) {
        self.frame_with(&mut None, raw, events, out)
    }

    /// `frame` with a zstd context kept by the caller (made here the first
    /// time a chunk of version 4 on needs one).
    fn frame_with(
        &mut self,
        zstd: &mut Option<zstd::Compressor>,
        raw: &[u8],
        events: bool,
        out: &mut Vec<u8>,
    ) {
        let place = (self.version >= 3).then_some(Place {
            trace_id: self.trace_id,
            seq: self.next_seq,
        });
        if self.version >= 4 && zstd.is_none() {
            *zstd = zstd::Compressor::new();
        }
        let z = if self.version >= 4 {
            zstd.as_mut()
        } else {
            None
        };
        frame_chunk(raw, events && self.version >= 2, place, z, out);
        self.next_seq = self.next_seq.wrapping_add(1);
    }
}

/// Why a reader stopped before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cut {
    /// The file ends inside a chunk: the process was killed or the disk filled.
    Truncated { offset: u64 },
    /// A chunk failed its checksum or held malformed records.
    Damaged { offset: u64, why: String },
}

/// Streams records out of a trace in bounded memory (one chunk at a time).
pub struct TraceReader<R: Read> {
    input: R,
    offset: u64,
    raw: Vec<u8>,
    compressed: Vec<u8>,
    pos: usize,
    chunk_offset: u64,
    decoder: Decoder,
    /// Made for the first zstd chunk.
    unzstd: Option<zstd::Decompressor>,
    cut: Option<Cut>,
    chunks: u64,
    done: bool,
    version: u32,
    /// Event chunks are checked, counted and not decoded.
    skip_events: bool,
    skipped: u64,
    /// Version 3 on: the trace id of the first chunk, and the sequence
    /// number the next chunk must carry.
    trace_id: Option<u32>,
    next_seq: u32,
}

impl<R: Read> TraceReader<R> {
    /// Reads and checks the file header.
    pub fn new(mut input: R) -> Result<Self, FormatError> {
        let mut h = [0u8; FILE_HEADER_LEN];
        let got = read_full(&mut input, &mut h)?;
        if got >= 8 && &h[..8] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        if got < FILE_HEADER_LEN {
            if got > 0 && !MAGIC.starts_with(&h[..got.min(8)]) {
                return Err(FormatError::BadMagic);
            }
            return Err(FormatError::TooShort);
        }
        let version = u32::from_le_bytes(h[8..12].try_into().unwrap());
        let flags = u32::from_le_bytes(h[12..16].try_into().unwrap());
        if version < OLDEST_VERSION {
            return Err(FormatError::VersionZero);
        }
        if version > FORMAT_VERSION {
            return Err(FormatError::NewerVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if flags & !KNOWN_FLAGS != 0 {
            return Err(FormatError::UnknownFlags(flags));
        }
        Ok(TraceReader {
            input,
            offset: FILE_HEADER_LEN as u64,
            raw: Vec::new(),
            compressed: Vec::new(),
            pos: 0,
            chunk_offset: 0,
            decoder: Decoder::default(),
            unzstd: None,
            cut: None,
            chunks: 0,
            done: false,
            version,
            skip_events: false,
            skipped: 0,
            trace_id: None,
            next_seq: 0,
        })
    }

    /// The next record, or `None` at the end (see [`TraceReader::cut`] for why).
    /// Only I/O errors are returned as errors; damage ends the stream and is
    /// reported by `cut()`, so a damaged trace still yields what came before.
    pub fn next_record(&mut self) -> Result<Option<Record>, FormatError> {
        loop {
            if self.pos < self.raw.len() {
                match self.decoder.decode(&self.raw, &mut self.pos) {
                    Ok(r) => return Ok(Some(r)),
                    Err(why) => {
                        self.cut = Some(Cut::Damaged {
                            offset: self.chunk_offset,
                            why: why.to_string(),
                        });
                        self.done = true;
                        self.raw.clear();
                        return Ok(None);
                    }
                }
            }
            if self.done || !self.load_chunk()? {
                return Ok(None);
            }
        }
    }

    /// From now on, chunks marked as events are read and checked (a cut or
    /// damaged one still ends the stream) but not decompressed, and their
    /// records are not returned: what a summary reads. The delta state of
    /// the events is lost, which is why no structural record uses it.
    /// A trace of version 1 has no marks: every chunk is decoded.
    pub fn skip_event_chunks(&mut self) {
        self.skip_events = true;
    }

    /// Event chunks left undecoded so far (see `skip_event_chunks`).
    pub fn skipped_chunks(&self) -> u64 {
        self.skipped
    }

    fn load_chunk(&mut self) -> Result<bool, FormatError> {
        let header_len = if self.version >= 3 {
            CHUNK_HEADER_LEN
        } else {
            LEGACY_CHUNK_HEADER_LEN
        };
        let mut hdr = [0u8; CHUNK_HEADER_LEN];
        let hdr = &mut hdr[..header_len];
        let got = read_full(&mut self.input, hdr)?;
        if got == 0 {
            self.done = true;
            return Ok(false);
        }
        let offset = self.offset;
        if got >= MAGIC.len() && hdr[..MAGIC.len()] == MAGIC[..] {
            return self.stop(Cut::Damaged {
                offset,
                why: "another trace's header: two traces concatenated".into(),
            });
        }
        if got < header_len {
            return self.stop(Cut::Truncated { offset });
        }
        let field = |i: usize| u32::from_le_bytes(hdr[4 * i..4 * i + 4].try_into().unwrap());
        let (clen, rlen_field) = (field(0), field(1));
        let place = (self.version >= 3).then(|| Place {
            trace_id: field(2),
            seq: field(3),
        });
        let crc = field(header_len / 4 - 1);
        let hole = hdr.iter().all(|&b| b == 0);
        // The mark is not part of the length; in version 1 there is none, and
        // the bit makes the length out of range.
        let events = self.version >= 2 && rlen_field & EVENT_CHUNK != 0;
        let zstd = self.version >= 4 && rlen_field & ZSTD_CHUNK != 0;
        let mut rlen = rlen_field;
        if events {
            rlen &= !EVENT_CHUNK;
        }
        if zstd {
            rlen &= !ZSTD_CHUNK;
        }
        let bound =
            lz4_flex::block::get_maximum_output_size(MAX_CHUNK_RAW).max(zstd::bound(MAX_CHUNK_RAW));
        if rlen as usize > MAX_CHUNK_RAW || clen as usize > bound {
            return self.stop(Cut::Damaged {
                offset,
                why: "chunk length out of range".into(),
            });
        }
        self.compressed.resize(clen as usize, 0);
        let got = read_full(&mut self.input, &mut self.compressed)?;
        if got < clen as usize {
            return self.stop(Cut::Truncated { offset });
        }
        if chunk_crc(clen, rlen_field, place, &self.compressed) != crc {
            // A chunk whose header is zeros is a hole left by a write that never
            // happened (the file was extended but the data never landed): truncation.
            let cut = if hole {
                Cut::Truncated { offset }
            } else {
                Cut::Damaged {
                    offset,
                    why: "checksum mismatch".into(),
                }
            };
            return self.stop(cut);
        }
        if let Some(p) = place {
            if let Some(why) = self.out_of_place(p) {
                return self.stop(Cut::Damaged { offset, why });
            }
        }
        if events && self.skip_events {
            self.raw.clear();
            self.skipped += 1;
        } else {
            self.raw.resize(rlen as usize, 0);
            let good = if zstd {
                if self.unzstd.is_none() {
                    self.unzstd = zstd::Decompressor::new();
                }
                match self.unzstd.as_mut() {
                    Some(d) => d.decompress(&self.compressed, &mut self.raw),
                    None => {
                        return self.stop(Cut::Damaged {
                            offset,
                            why: "no memory for a zstd context".into(),
                        })
                    }
                }
            } else {
                matches!(lz4_flex::block::decompress_into(&self.compressed, &mut self.raw),
                    Ok(n) if n == rlen as usize)
            };
            if !good {
                return self.stop(Cut::Damaged {
                    offset,
                    why: "bad compressed data".into(),
                });
            }
        }
        if let Some(p) = place {
            self.trace_id = Some(p.trace_id);
            self.next_seq = p.seq.wrapping_add(1);
        }
        self.chunk_offset = offset;
        self.offset += (header_len + clen as usize) as u64;
        self.pos = 0;
        self.chunks += 1;
        Ok(true)
    }

    /// Why a sound chunk does not belong where it is, if it does not.
    fn out_of_place(&self, p: Place) -> Option<String> {
        if self.trace_id.is_some_and(|id| id != p.trace_id) {
            return Some(format!(
                "a chunk of another trace, id {:08x} in trace {:08x}",
                p.trace_id,
                self.trace_id.unwrap_or(0)
            ));
        }
        if p.seq == self.next_seq {
            return None;
        }
        Some(if p.seq < self.next_seq {
            format!(
                "chunk {} again after chunk {}, duplicated or reordered",
                p.seq,
                self.next_seq.wrapping_sub(1)
            )
        } else {
            format!(
                "chunk {} where chunk {} belongs, chunks missing or reordered",
                p.seq, self.next_seq
            )
        })
    }

    /// The framing that continues this trace after its last chunk (to
    /// append to it), once the whole file was read; `None` before the end.
    pub fn framing(&self) -> Option<ChunkFraming> {
        self.done.then(|| ChunkFraming {
            version: self.version,
            trace_id: match self.trace_id {
                Some(id) => id,
                None => ChunkFraming::new_trace().trace_id,
            },
            next_seq: self.next_seq,
        })
    }

    fn stop(&mut self, cut: Cut) -> Result<bool, FormatError> {
        self.cut = Some(cut);
        self.done = true;
        Ok(false)
    }

    /// Why reading stopped early, if it did.
    pub fn cut(&self) -> Option<&Cut> {
        self.cut.as_ref()
    }

    /// Complete chunks read so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// Bytes of the file consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Buffers records and writes them as chunks. Used by the recorder's writer
/// thread and by `leakhunt run` when it appends the exit status.
///
/// Structure and events are buffered apart and framed as separate chunks,
/// the structure first: an event can only refer to structure pushed before
/// it, so it is still defined first in the file. A sequence point
/// ([`Record::is_sequence_point`]) frames what is pending before it is
/// buffered, so that it follows every event pushed before it. One encoder
/// serves both: only events touch its delta state, so decoding the chunks
/// in file order sees the events in the order they were encoded.
pub struct ChunkWriter {
    structure: Vec<u8>,
    events: Vec<u8>,
    /// Chunks framed at sequence points, not yet taken.
    framed: Vec<u8>,
    taken: Vec<u8>,
    encoder: Encoder,
    framing: ChunkFraming,
    /// Made for the first chunk (kept for every chunk after it).
    zstd: Option<zstd::Compressor>,
}

/// A writer of a new trace (its chunks follow [`file_header`]).
impl Default for ChunkWriter {
    fn default() -> Self {
        ChunkWriter::continuing(ChunkFraming::new_trace())
    }
}

impl ChunkWriter {
    /// A writer whose chunks continue a trace framed by `framing` (see
    /// [`TraceReader::framing`]).
    pub fn continuing(framing: ChunkFraming) -> ChunkWriter {
        ChunkWriter {
            structure: Vec::with_capacity(64 << 10),
            events: Vec::with_capacity(1 << 20),
            framed: Vec::new(),
            taken: Vec::new(),
            encoder: Encoder::default(),
            framing,
            zstd: None,
        }
    }

    pub fn push(&mut self, r: &Record) {
        if r.is_event() {
            self.encoder.encode(r, &mut self.events);
        } else {
            if r.is_sequence_point() && !self.events.is_empty() {
                self.frame();
            }
            self.encoder.encode(r, &mut self.structure);
        }
    }

    /// See [`Encoder::next_alloc_slot`].
    pub fn next_alloc_slot(&self) -> u16 {
        self.encoder.next_alloc_slot()
    }

    /// A free, coded against the block's slot (see [`Encoder::encode_free`]).
    pub fn push_free(&mut self, ptr: u64, slot: u16) {
        self.encoder.encode_free(ptr, slot, &mut self.events);
    }

    /// Bytes waiting to be written (uncompressed, or framed at a sequence point).
    pub fn pending(&self) -> usize {
        self.structure.len() + self.events.len() + self.framed.len()
    }

    fn frame(&mut self) {
        if !self.structure.is_empty() {
            self.framing
                .frame_with(&mut self.zstd, &self.structure, false, &mut self.framed);
            self.structure.clear();
        }
        if !self.events.is_empty() {
            self.framing
                .frame_with(&mut self.zstd, &self.events, true, &mut self.framed);
            self.events.clear();
        }
    }

    /// Frames the pending records (if any) as chunks and returns their bytes.
    /// The encoder's delta state carries over: chunks must be written in order.
    pub fn take_chunk(&mut self) -> &[u8] {
        self.frame();
        self.taken.clear();
        std::mem::swap(&mut self.taken, &mut self.framed);
        &self.taken
    }

    pub fn flush_to<W: Write>(&mut self, w: &mut W) -> io::Result<()> {
        let bytes = self.take_chunk();
        if !bytes.is_empty() {
            w.write_all(bytes)?;
        }
        Ok(())
    }

    /// Starts a new file: the delta state of a new trace begins from zero,
    /// and its chunks have an id and sequence numbers of their own.
    pub fn reset(&mut self) {
        self.structure.clear();
        self.events.clear();
        self.framed.clear();
        self.encoder = Encoder::default();
        self.framing = ChunkFraming::new_trace();
    }
}

#[cfg(test)]
mod tests;
