//! Where a replay gets its records: a trace reader, or the same reader run on
//! a thread of its own a few thousand records ahead.
//!
//! Decompressing and decoding are a third of a replay's time on a large
//! trace (zstd, varints, the address history), and they depend on nothing
//! the replay computes: on a second core they overlap with the replay, which
//! keeps only what it must do in order (the live heap, the curve).

use leakhunt_format::{ChunkFraming, Cut, FormatError, Record, TraceReader};
use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver};

/// What a replay reads from (see `TraceReader` for the meaning of each).
pub trait Source {
    fn next_record(&mut self) -> Result<Option<Record>, FormatError>;
    fn skipped_chunks(&self) -> u64;
    fn chunks(&self) -> u64;
    fn cut(&self) -> Option<&Cut>;
    fn framing(&self) -> Option<ChunkFraming>;
    /// The record `k` places after the next one, if already decoded: the
    /// replay fetches the memory it will touch ahead of time.
    fn peek(&self, _k: usize) -> Option<&Record> {
        None
    }
}

impl<R: Read> Source for TraceReader<R> {
    fn next_record(&mut self) -> Result<Option<Record>, FormatError> {
        TraceReader::next_record(self)
    }
    fn skipped_chunks(&self) -> u64 {
        TraceReader::skipped_chunks(self)
    }
    fn chunks(&self) -> u64 {
        TraceReader::chunks(self)
    }
    fn cut(&self) -> Option<&Cut> {
        TraceReader::cut(self)
    }
    fn framing(&self) -> Option<ChunkFraming> {
        TraceReader::framing(self)
    }
}

/// Records per message: large enough that the channel costs nothing per
/// record, small enough that the replay starts at once.
const BATCH: usize = 4096;
/// Batches in flight: what the reader may run ahead (bounded memory).
const IN_FLIGHT: usize = 8;

struct Batch {
    records: Vec<Record>,
    /// Set on the last batch: how the stream ended.
    end: Option<End>,
}

/// The reader's state once it has read everything (what the replay asks
/// of a source after its last record).
struct End {
    error: Option<FormatError>,
    skipped_chunks: u64,
    chunks: u64,
    cut: Option<Cut>,
    framing: Option<ChunkFraming>,
}

/// A `TraceReader` on its own thread, for a full replay. Its counters are
/// known at the end only: a summary, which watches `skipped_chunks` as it
/// goes, reads its `TraceReader` directly. Dropping it early (a replay that
/// stops at a record limit) ends the thread at its next send.
pub struct ReadAhead {
    rx: Receiver<Batch>,
    records: std::vec::IntoIter<Record>,
    end: Option<End>,
}

impl ReadAhead {
    pub fn new<R: Read + Send + 'static>(mut reader: TraceReader<R>) -> ReadAhead {
        let (tx, rx) = sync_channel::<Batch>(IN_FLIGHT);
        // If the thread cannot start, `tx` is dropped with it and the first
        // read says so.
        let _ = std::thread::Builder::new()
            .name("leakhunt-read".into())
            .spawn(move || loop {
                let mut records = Vec::with_capacity(BATCH);
                let mut end = None;
                while records.len() < BATCH {
                    match reader.next_record() {
                        Ok(Some(r)) => records.push(r),
                        Ok(None) => {
                            end = Some(None);
                            break;
                        }
                        Err(e) => {
                            end = Some(Some(e));
                            break;
                        }
                    }
                }
                let last = end.is_some();
                let batch = Batch {
                    records,
                    end: end.map(|error| End {
                        error,
                        skipped_chunks: reader.skipped_chunks(),
                        chunks: reader.chunks(),
                        cut: reader.cut().cloned(),
                        framing: reader.framing(),
                    }),
                };
                if tx.send(batch).is_err() || last {
                    return;
                }
            });
        ReadAhead {
            rx,
            records: Vec::new().into_iter(),
            end: None,
        }
    }
}

impl Source for ReadAhead {
    fn next_record(&mut self) -> Result<Option<Record>, FormatError> {
        loop {
            if let Some(r) = self.records.next() {
                return Ok(Some(r));
            }
            if let Some(end) = self.end.as_mut() {
                return match end.error.take() {
                    Some(e) => Err(e),
                    None => Ok(None),
                };
            }
            match self.rx.recv() {
                Ok(batch) => {
                    self.records = batch.records.into_iter();
                    self.end = batch.end;
                }
                // The reader thread could not start, or it panicked.
                Err(_) => {
                    return Err(FormatError::Io(std::io::Error::other(
                        "the trace reader thread stopped",
                    )))
                }
            }
        }
    }
    fn skipped_chunks(&self) -> u64 {
        self.end.as_ref().map_or(0, |e| e.skipped_chunks)
    }
    fn chunks(&self) -> u64 {
        self.end.as_ref().map_or(0, |e| e.chunks)
    }
    fn cut(&self) -> Option<&Cut> {
        self.end.as_ref().and_then(|e| e.cut.as_ref())
    }
    fn framing(&self) -> Option<ChunkFraming> {
        self.end.as_ref().and_then(|e| e.framing)
    }
    fn peek(&self, k: usize) -> Option<&Record> {
        self.records.as_slice().get(k)
    }
}
