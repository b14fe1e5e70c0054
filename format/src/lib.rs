//! The leakhunt trace format, shared by the recorder (`preload/`) and the CLI.
//!
//! A trace is a 16-byte file header followed by self-delimiting chunks:
//!
//! ```text
//! file   := "LEAKHUNT" version:u32le flags:u32le chunk*
//! chunk  := compressed_len:u32le raw_len:u32le crc32:u32le payload[compressed_len]
//! ```
//!
//! The payload is an LZ4 block holding `raw_len` bytes of records. The CRC32
//! covers both lengths and the compressed payload, so a damaged length is caught
//! before it is trusted. A trace cut short (the process was killed) reads up to
//! its last complete chunk.
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
//! This crate has no `unsafe` and never trusts a length from the file without
//! bounding it first.

mod record;
mod varint;

pub use record::*;

use std::io::{self, Read, Write};

pub const MAGIC: &[u8; 8] = b"LEAKHUNT";
/// Bumped whenever a reader of an older version could misread a newer trace.
/// Version 2: chunks are marked as events or structure (see the module docs).
pub const FORMAT_VERSION: u32 = 2;
pub const FILE_HEADER_LEN: usize = 16;
pub const CHUNK_HEADER_LEN: usize = 12;
/// A chunk never holds more than this many uncompressed bytes; a larger length
/// in a file means the file is damaged, and the reader refuses to allocate it.
pub const MAX_CHUNK_RAW: usize = 16 << 20;
/// Set in a chunk's `raw_len` field (version 2 on): the chunk holds only events.
pub const EVENT_CHUNK: u32 = 1 << 31;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("not a leakhunt trace (bad magic)")]
    BadMagic,
    #[error("trace format version {found} is newer than this leakhunt understands ({supported}); upgrade leakhunt")]
    NewerVersion { found: u32, supported: u32 },
    #[error("the trace is empty or shorter than its header")]
    TooShort,
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

fn chunk_crc(compressed_len: u32, raw_len: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&compressed_len.to_le_bytes());
    h.update(&raw_len.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Compresses `raw` records into one framed chunk appended to `out`; `events`
/// marks a chunk of events only.
pub fn encode_chunk(raw: &[u8], events: bool, out: &mut Vec<u8>) {
    debug_assert!(raw.len() <= MAX_CHUNK_RAW);
    let start = out.len();
    out.extend_from_slice(&[0u8; CHUNK_HEADER_LEN]);
    let bound = lz4_flex::block::get_maximum_output_size(raw.len());
    out.resize(start + CHUNK_HEADER_LEN + bound, 0);
    let n = lz4_flex::block::compress_into(raw, &mut out[start + CHUNK_HEADER_LEN..])
        .expect("output sized by get_maximum_output_size");
    out.truncate(start + CHUNK_HEADER_LEN + n);
    let (clen, rlen) = (
        n as u32,
        raw.len() as u32 | if events { EVENT_CHUNK } else { 0 },
    );
    let crc = chunk_crc(clen, rlen, &out[start + CHUNK_HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&clen.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&rlen.to_le_bytes());
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
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
    cut: Option<Cut>,
    chunks: u64,
    done: bool,
    version: u32,
    /// Event chunks are checked, counted and not decoded.
    skip_events: bool,
    skipped: u64,
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
        if version > FORMAT_VERSION {
            return Err(FormatError::NewerVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        Ok(TraceReader {
            input,
            offset: FILE_HEADER_LEN as u64,
            raw: Vec::new(),
            compressed: Vec::new(),
            pos: 0,
            chunk_offset: 0,
            decoder: Decoder::default(),
            cut: None,
            chunks: 0,
            done: false,
            version,
            skip_events: false,
            skipped: 0,
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
        let mut hdr = [0u8; CHUNK_HEADER_LEN];
        let got = read_full(&mut self.input, &mut hdr)?;
        if got == 0 {
            self.done = true;
            return Ok(false);
        }
        if got < CHUNK_HEADER_LEN {
            return self.stop(Cut::Truncated {
                offset: self.offset,
            });
        }
        let clen = u32::from_le_bytes(hdr[0..4].try_into().unwrap());
        let rlen_field = u32::from_le_bytes(hdr[4..8].try_into().unwrap());
        let crc = u32::from_le_bytes(hdr[8..12].try_into().unwrap());
        // The mark is not part of the length; in version 1 there is none, and
        // the bit makes the length out of range.
        let events = self.version >= 2 && rlen_field & EVENT_CHUNK != 0;
        let rlen = if events {
            rlen_field & !EVENT_CHUNK
        } else {
            rlen_field
        };
        let bound = lz4_flex::block::get_maximum_output_size(MAX_CHUNK_RAW);
        if rlen as usize > MAX_CHUNK_RAW || clen as usize > bound {
            let offset = self.offset;
            return self.stop(Cut::Damaged {
                offset,
                why: "chunk length out of range".into(),
            });
        }
        self.compressed.resize(clen as usize, 0);
        let got = read_full(&mut self.input, &mut self.compressed)?;
        if got < clen as usize {
            return self.stop(Cut::Truncated {
                offset: self.offset,
            });
        }
        if chunk_crc(clen, rlen_field, &self.compressed) != crc {
            // A chunk whose header is zeros is a hole left by a write that never
            // happened (the file was extended but the data never landed): truncation.
            let cut = if clen == 0 && rlen_field == 0 && crc == 0 {
                Cut::Truncated {
                    offset: self.offset,
                }
            } else {
                Cut::Damaged {
                    offset: self.offset,
                    why: "checksum mismatch".into(),
                }
            };
            return self.stop(cut);
        }
        if events && self.skip_events {
            self.chunk_offset = self.offset;
            self.offset += (CHUNK_HEADER_LEN + clen as usize) as u64;
            self.raw.clear();
            self.pos = 0;
            self.chunks += 1;
            self.skipped += 1;
            return Ok(true);
        }
        self.raw.resize(rlen as usize, 0);
        match lz4_flex::block::decompress_into(&self.compressed, &mut self.raw) {
            Ok(n) if n == rlen as usize => {}
            _ => {
                let offset = self.offset;
                return self.stop(Cut::Damaged {
                    offset,
                    why: "bad compressed data".into(),
                });
            }
        }
        self.chunk_offset = self.offset;
        self.offset += (CHUNK_HEADER_LEN + clen as usize) as u64;
        self.pos = 0;
        self.chunks += 1;
        Ok(true)
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
}

impl Default for ChunkWriter {
    fn default() -> Self {
        ChunkWriter {
            structure: Vec::with_capacity(64 << 10),
            events: Vec::with_capacity(1 << 20),
            framed: Vec::new(),
            taken: Vec::new(),
            encoder: Encoder::default(),
        }
    }
}

impl ChunkWriter {
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

    /// Bytes waiting to be written (uncompressed, or framed at a sequence point).
    pub fn pending(&self) -> usize {
        self.structure.len() + self.events.len() + self.framed.len()
    }

    fn frame(&mut self) {
        if !self.structure.is_empty() {
            encode_chunk(&self.structure, false, &mut self.framed);
            self.structure.clear();
        }
        if !self.events.is_empty() {
            encode_chunk(&self.events, true, &mut self.framed);
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

    /// Starts a new file: the delta state of a new trace begins from zero.
    pub fn reset(&mut self) {
        self.structure.clear();
        self.events.clear();
        self.framed.clear();
        self.encoder = Encoder::default();
    }
}

#[cfg(test)]
mod tests;
