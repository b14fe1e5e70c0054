//! One pass over a trace into the model every view reads (heaptrack's
//! `accumulatedtracedata`): totals, the peak, live blocks at the end, per-stack
//! aggregates, the stack trie and the module history.
//!
//! Memory grows with live blocks and distinct stacks, never with the number of
//! events: the trace is streamed chunk by chunk.

use leakhunt_format::{
    AllocFn, Cut, EndInfo, EndReason, FormatError, Module, ProcessInfo, Record, ScanInfo,
    TraceReader,
};
// Keys are addresses and stack ids: std's SipHash costs most of a replay.
use crate::addrmap::AddrMap;
use crate::source::Source;
use ahash::AHashMap as HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
// The cause is part of each message, not a chained source: it is printed once.
pub enum LoadError {
    #[error("cannot open {path}: {err}")]
    Open { path: String, err: std::io::Error },
    #[error("{path}: {err}")]
    Format { path: String, err: FormatError },
    /// A directory, a FIFO, a device: reading it could block or never end.
    #[error("{path} is {what}, not a trace")]
    NotAFile { path: String, what: &'static str },
}

#[derive(Debug, Clone, Copy)]
pub struct Live {
    pub size: u64,
    pub stack: u64,
    pub func: AllocFn,
    /// The allocating thread, and how many allocations it had made by then
    /// (for "temporary").
    pub tid: u32,
    pub seq: u64,
}

/// For the empty slots of the replay's table.
impl Default for Live {
    fn default() -> Self {
        Live {
            size: 0,
            stack: 0,
            func: AllocFn::Malloc,
            tid: 0,
            seq: 0,
        }
    }
}

/// The exit scan's verdict on a block that was not plainly still reachable.
pub use leakhunt_format::Verdict;

/// Allocation counts of one stack (a trie node).
#[derive(Debug, Clone, Copy, Default)]
pub struct StackTotals {
    pub allocations: u64,
    pub allocated_bytes: u64,
    /// Allocations freed before their thread allocated anything else
    /// (heaptrack's "temporary").
    pub temporary: u64,
    pub temporary_bytes: u64,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Totals {
    pub allocations: u64,
    pub frees: u64,
    pub allocated_bytes: u64,
    pub peak_bytes: u64,
    /// Microseconds since the start of the trace.
    pub peak_time_us: u64,
    pub live_blocks_at_end: u64,
    pub live_bytes_at_end: u64,
    pub inherited_blocks: u64,
    pub inherited_bytes: u64,
    pub mmaps: u64,
    pub munmaps: u64,
    /// Successful calls per allocation function (`malloc`, `calloc`, ...).
    pub by_function: std::collections::BTreeMap<&'static str, u64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PythonInfo {
    pub version: String,
    /// Whether its frames are in the stacks.
    pub frames: bool,
    /// `PYTHONMALLOC`'s value, `pymalloc-recorded` (the default, wrapped by the
    /// recorder), or `pymalloc` (not wrapped).
    pub allocator: String,
}

/// A module as recorded, with the stack-node ids during which it was mapped.
#[derive(Debug, Clone)]
pub struct ModuleSpan {
    pub module: Module,
    /// First node id that may refer to this module (nodes after the last
    /// unload before it was loaded).
    pub from_node: u64,
    /// First node id defined after it was unmapped.
    pub until_node: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Model {
    pub process: Option<ProcessInfo>,
    pub modules: Vec<ModuleSpan>,
    /// Node id -> (parent id, return address). Index 0 is the empty root.
    pub nodes: Vec<(u64, u64)>,
    pub live: HashMap<u64, Live>,
    pub by_stack: HashMap<u64, StackTotals>,
    pub totals: Totals,
    pub duration_us: u64,
    pub end: Option<EndInfo>,
    pub exit_status: Option<(Option<i32>, Option<i32>)>,
    pub cut: Option<Cut>,
    pub threads: u64,
    pub peak_rss: u64,
    pub records: u64,
    pub file_bytes: u64,
    /// The curve and per-call-site growth (see `timeline.rs`).
    pub timeline: crate::timeline::Timeline,
    /// Records read when the live heap was at its peak (see `load_until`).
    pub peak_record: u64,
    /// The exit scan, when the process exited normally.
    pub scan: Option<ScanInfo>,
    /// Verdicts by block address (blocks without one are still reachable).
    pub verdicts: HashMap<u64, Verdict>,
    /// Records that refer to things the trace never defined (a damaged trace).
    pub inconsistencies: u64,
    /// Python code objects by id (their frames are in the stacks).
    pub py_codes: HashMap<u64, leakhunt_format::PyCode>,
    /// The CPython interpreter the process ran, if any.
    pub python: Option<PythonInfo>,
    /// The totals the recorder counted at the end of the image (what a
    /// replay of its allocation records gives), when it ended normally.
    pub recorded_totals: Option<leakhunt_format::ImageTotals>,
    /// How a chunk appended to the trace continues it (when the replay
    /// read to the end).
    pub framing: Option<leakhunt_format::ChunkFraming>,
}

/// How many records ahead the replay fetches live-map slots.
const LOOK_AHEAD: usize = 40;

/// Opens a trace for reading: its size and a streaming reader. Only a
/// regular file is opened (see `files::open_regular`).
pub fn open_reader(path: &Path) -> Result<(u64, TraceReader<BufReader<File>>), LoadError> {
    let p = path.display().to_string();
    let file = crate::files::open_regular(path).map_err(|e| match e {
        crate::files::OpenError::Io(err) => LoadError::Open {
            path: p.clone(),
            err,
        },
        crate::files::OpenError::NotAFile(what) => LoadError::NotAFile {
            path: p.clone(),
            what,
        },
    })?;
    let file_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let reader = TraceReader::new(BufReader::with_capacity(1 << 20, file))
        .map_err(|err| LoadError::Format { path: p, err })?;
    Ok((file_bytes, reader))
}

/// The state of one pass that is not part of the result.
#[derive(Default)]
struct Replay {
    /// A summary pass: allocation records are decoded but not replayed;
    /// the totals and live blocks come from the image's end records.
    summary: bool,
    live_at_end: Vec<(u64, Live)>,
    /// The live heap while replaying (`Model::live` once done).
    live: AddrMap<Live>,
    now_us: u64,
    live_bytes: u64,
    /// The thread the current records come from.
    tid: u32,
    /// Allocations made so far by the current thread (`tid`).
    seq: u64,
    /// The same for the other threads. A thread's records come in runs, so
    /// this map is touched only when the thread changes.
    thread_seq: HashMap<u32, u64>,
    /// Successful calls per allocation function, folded into
    /// `Totals::by_function` at the end (a map update per event cost more
    /// than the rest of the allocation's bookkeeping).
    by_function: [u64; AllocFn::COUNT],
    temporary_threshold: u64,
    /// The live heap changed in the current record: a point of the curve.
    touched: bool,
}

impl Replay {
    fn switch_thread(&mut self, tid: u32) {
        if tid != self.tid {
            self.thread_seq.insert(self.tid, self.seq);
            self.seq = self.thread_seq.get(&tid).copied().unwrap_or(0);
            self.tid = tid;
        }
    }

    /// A successful allocation call.
    fn alloc(&mut self, m: &mut Model, ptr: u64, size: u64, stack: u64, func: AllocFn) {
        m.totals.allocations += 1;
        self.by_function[func as usize] += 1;
        m.totals.allocated_bytes += size;
        let s = m.by_stack.entry(stack).or_default();
        s.allocations += 1;
        s.allocated_bytes += size;
        self.make_live(m, ptr, size, stack, func);
    }

    fn make_live(&mut self, m: &mut Model, ptr: u64, size: u64, stack: u64, func: AllocFn) {
        self.seq += 1;
        let live = Live {
            size,
            stack,
            func,
            tid: self.tid,
            seq: self.seq,
        };
        if let Some(old) = self.live.insert(ptr, live) {
            m.inconsistencies += 1;
            self.live_bytes -= old.size;
        }
        self.live_bytes += size;
        self.touched = true;
        m.timeline.alloc(stack, size, self.now_us);
    }

    /// A block released (by free, or by the realloc that replaced it).
    fn free(&mut self, m: &mut Model, ptr: u64, may_be_temporary: bool) {
        let Some(old) = self.live.remove(ptr) else {
            m.inconsistencies += 1;
            return;
        };
        m.totals.frees += 1;
        self.live_bytes -= old.size;
        self.touched = true;
        m.timeline.free(old.stack, old.size, self.now_us);
        let since = self.seq.wrapping_sub(old.seq);
        if may_be_temporary && old.tid == self.tid && since < self.temporary_threshold {
            let s = m.by_stack.entry(old.stack).or_default();
            s.temporary += 1;
            s.temporary_bytes += old.size;
        }
    }
}

impl Model {
    pub fn load(path: &Path) -> Result<Model, LoadError> {
        Model::load_limited(path, u64::MAX, u64::MAX, 1)
    }

    /// What a summary needs (totals, live blocks at the end, the leak
    /// scan, stacks, modules), without replaying allocations: the recorder
    /// wrote the totals and the live blocks (with their verdicts) when the
    /// image ended, and its event chunks are not even decompressed. A trace
    /// without them (cut short, killed, or written by an older recorder) is
    /// replayed in full. The curve, per-stack totals, "temporary", threads
    /// and the duration are left empty.
    pub fn load_summary(path: &Path) -> Result<Model, LoadError> {
        let (file, mut reader) = open_reader(path)?;
        reader.skip_event_chunks();
        let p = path.display().to_string();
        let mut m = Model::replay_with(
            reader,
            u64::MAX,
            u64::MAX,
            Replay {
                summary: true,
                temporary_threshold: 1,
                ..Default::default()
            },
        )
        .map_err(|err| LoadError::Format { path: p, err })?;
        if m.recorded_totals.is_none() {
            return Model::load(path);
        }
        m.file_bytes = file;
        Ok(m)
    }

    pub fn replay<R: std::io::Read>(reader: TraceReader<R>) -> Result<Model, FormatError> {
        Model::replay_until(reader, u64::MAX, u64::MAX, 1)
    }

    /// Like `load`, with memray's threshold for "temporary": freed by the
    /// thread that allocated it within `threshold` of its allocations (1 is
    /// heaptrack's definition: before the next one).
    pub fn load_with_threshold(path: &Path, threshold: u64) -> Result<Model, LoadError> {
        Model::load_limited(path, u64::MAX, u64::MAX, threshold)
    }

    /// The model as it stood at `ms` milliseconds into the run.
    pub fn load_at_time(path: &Path, ms: f64) -> Result<Model, LoadError> {
        Model::load_limited(path, u64::MAX, (ms * 1000.0).max(0.0) as u64, 1)
    }

    /// The model as it stood after `limit` records (the live blocks at that
    /// moment: `peak_record` gives the moment of the peak).
    pub fn load_until(path: &Path, limit: u64) -> Result<Model, LoadError> {
        Model::load_limited(path, limit, u64::MAX, 1)
    }

    fn load_limited(
        path: &Path,
        limit: u64,
        until_us: u64,
        temporary_threshold: u64,
    ) -> Result<Model, LoadError> {
        let p = path.display().to_string();
        let (file_bytes, reader) = open_reader(path)?;
        let reader = crate::source::ReadAhead::new(reader);
        let mut m = Model::replay_until(reader, limit, until_us, temporary_threshold)
            .map_err(|err| LoadError::Format { path: p, err })?;
        m.file_bytes = file_bytes;
        Ok(m)
    }

    /// Replays at most `limit` records, stopping before the first time stamp
    /// past `until_us`.
    pub fn replay_until<S: Source>(
        reader: S,
        limit: u64,
        until_us: u64,
        temporary_threshold: u64,
    ) -> Result<Model, FormatError> {
        Model::replay_with(
            reader,
            limit,
            until_us,
            Replay {
                temporary_threshold,
                ..Default::default()
            },
        )
    }

    fn replay_with<S: Source>(
        mut reader: S,
        limit: u64,
        until_us: u64,
        mut st: Replay,
    ) -> Result<Model, FormatError> {
        let mut m = Model {
            nodes: vec![(0, 0)],
            ..Default::default()
        };
        let mut last_unload_node = 0u64;
        let mut tids = std::collections::HashSet::new();
        // Event chunks a summary skipped up to the END record.
        let mut skipped_at_end = 0;
        while m.records < limit {
            if let Some(
                Record::Alloc { ptr, .. }
                | Record::Free { ptr }
                | Record::Realloc { old_ptr: ptr, .. },
            ) = reader.peek(LOOK_AHEAD)
            {
                st.live.prefetch(*ptr);
            }
            let next = reader.next_record()?;
            if m.end.is_some() && reader.skipped_chunks() > skipped_at_end {
                // Events after the END: an exec that failed, the image went on.
                m.end = None;
            }
            let Some(r) = next else {
                if reader.chunks() == 0 {
                    return Err(FormatError::NothingReadable(match reader.cut() {
                        Some(Cut::Damaged { offset, why }) => {
                            format!("the first chunk, at byte {offset}, is damaged ({why})")
                        }
                        Some(Cut::Truncated { .. }) => {
                            "the file ends inside its first chunk".to_string()
                        }
                        None => "the file holds only its header".to_string(),
                    }));
                }
                break;
            };
            m.records += 1;
            if m.end.is_some() && !matches!(r, Record::ExitStatus { .. } | Record::Rss { .. }) {
                // An exec that failed: the image went on after its END.
                m.end = None;
            }
            if st.summary
                && matches!(
                    r,
                    Record::Alloc { .. }
                        | Record::Free { .. }
                        | Record::Realloc { .. }
                        | Record::Inherited { .. }
                        | Record::Mmap { .. }
                        | Record::Munmap { .. }
                )
            {
                continue;
            }
            match r {
                Record::Process(p) => m.process = Some(p),
                Record::Module(module) => {
                    // Stacks recorded before the module list arrived (allocations
                    // of other libraries' constructors) still belong to it; only
                    // an unload makes addresses ambiguous.
                    let from_node = last_unload_node;
                    m.modules.push(ModuleSpan {
                        module,
                        from_node,
                        until_node: None,
                    });
                }
                Record::ModuleUnload { id } => {
                    let next = m.nodes.len() as u64;
                    last_unload_node = next;
                    if let Some(s) = m
                        .modules
                        .iter_mut()
                        .rev()
                        .find(|s| s.module.id == id && s.until_node.is_none())
                    {
                        s.until_node = Some(next);
                    }
                }
                Record::StackNode { parent, ip } => {
                    if parent >= m.nodes.len() as u64 {
                        m.inconsistencies += 1;
                    }
                    m.nodes.push((parent.min(m.nodes.len() as u64 - 1), ip));
                }
                Record::Thread { tid: t } => {
                    st.switch_thread(t);
                    tids.insert(t);
                }
                Record::Time { us } => {
                    if us > until_us {
                        break;
                    }
                    st.now_us = us
                }
                Record::Alloc {
                    ptr,
                    size,
                    stack,
                    func,
                } => {
                    st.alloc(&mut m, ptr, size, stack, func);
                }
                Record::Free { ptr } => st.free(&mut m, ptr, true),
                Record::Realloc {
                    old_ptr,
                    ptr,
                    size,
                    stack,
                } => {
                    // One free and one allocation; the old block is not
                    // "temporary": the program kept its contents.
                    st.free(&mut m, old_ptr, false);
                    st.alloc(&mut m, ptr, size, stack, AllocFn::Realloc);
                }
                Record::Inherited { ptr, size, stack } => {
                    m.totals.inherited_blocks += 1;
                    m.totals.inherited_bytes += size;
                    st.make_live(&mut m, ptr, size, stack, AllocFn::Malloc);
                    // Not this process's allocation: never "temporary" here.
                    if let Some(b) = st.live.get_mut(ptr) {
                        b.tid = u32::MAX;
                    }
                }
                Record::Mmap { .. } => m.totals.mmaps += 1,
                Record::Munmap { .. } => m.totals.munmaps += 1,
                Record::Rss { bytes } => {
                    m.peak_rss = m.peak_rss.max(bytes);
                    m.timeline.rss(bytes);
                }
                Record::End(e) => {
                    m.end = Some(e);
                    skipped_at_end = reader.skipped_chunks();
                }
                Record::LeakScan(info) => {
                    m.scan = Some(info);
                    m.verdicts.clear();
                }
                r @ Record::LeakBlock { .. } => {
                    if let Some((ptr, v)) = r.leak_verdict() {
                        m.verdicts.insert(ptr, v);
                    }
                }
                Record::ExitStatus { code, signal } => m.exit_status = Some((code, signal)),
                Record::PyCode(c) => {
                    m.py_codes.insert(c.id, c);
                }
                Record::LiveAtEnd {
                    ptr,
                    size,
                    stack,
                    func,
                    verdict,
                } => {
                    if st.summary {
                        // The LEAK_BLOCK records are in event chunks, skipped.
                        if let Some(v) = verdict {
                            m.verdicts.insert(ptr, v);
                        }
                        let live = Live {
                            size,
                            stack,
                            func,
                            tid: 0,
                            seq: 0,
                        };
                        st.live_at_end.push((ptr, live));
                    }
                }
                Record::Totals(t) => {
                    if st.summary {
                        m.totals.allocations = t.allocations;
                        m.totals.frees = t.frees;
                        m.totals.allocated_bytes = t.allocated_bytes;
                        m.totals.peak_bytes = t.peak_bytes;
                        m.totals.peak_time_us = t.peak_time_us;
                        m.totals.mmaps = t.mmaps;
                        m.totals.munmaps = t.munmaps;
                        m.totals.by_function =
                            t.by_function.iter().map(|&(f, n)| (f.name(), n)).collect();
                        st.live_bytes = t.live_bytes;
                        m.live = std::mem::take(&mut st.live_at_end).into_iter().collect();
                    }
                    m.recorded_totals = Some(t);
                }
                Record::Python {
                    version,
                    frames,
                    allocator,
                } => {
                    m.python = Some(PythonInfo {
                        version,
                        frames,
                        allocator,
                    })
                }
            }
            if std::mem::take(&mut st.touched) {
                m.timeline.sample(st.now_us, st.live_bytes);
            }
            if st.live_bytes > m.totals.peak_bytes {
                m.totals.peak_bytes = st.live_bytes;
                m.totals.peak_time_us = st.now_us;
                m.peak_record = m.records;
            }
        }
        for (f, &n) in st.by_function.iter().enumerate() {
            if n > 0 {
                let f = AllocFn::from_u8(f as u8).expect("an AllocFn's index");
                *m.totals.by_function.entry(f.name()).or_default() += n;
            }
        }
        if !st.live.is_empty() {
            m.live = st.live.iter().collect();
        }
        m.duration_us = st.now_us;
        m.cut = reader.cut().cloned();
        m.framing = reader.framing();
        m.threads = tids.len() as u64;
        m.totals.live_blocks_at_end = m.live.len() as u64;
        m.totals.live_bytes_at_end = st.live_bytes;
        Ok(m)
    }

    /// Return addresses of a stack, innermost first.
    pub fn stack_ips(&self, mut node: u64) -> Vec<u64> {
        let mut out = Vec::new();
        while node != 0 && (node as usize) < self.nodes.len() && out.len() < 1024 {
            let (parent, ip) = self.nodes[node as usize];
            out.push(ip);
            if parent >= node {
                break;
            }
            node = parent;
        }
        out
    }

    /// The modules mapped when stack node `node` was defined.
    pub fn modules_at(&self, node: u64) -> impl Iterator<Item = &Module> {
        self.modules
            .iter()
            .filter(move |s| s.from_node <= node && s.until_node.is_none_or(|u| node < u))
            .map(|s| &s.module)
    }

    /// The exit status as the program saw it: from `leakhunt run` when it
    /// appended one, else from the recorder's END.
    pub fn exit_code(&self) -> Option<i32> {
        if let Some((code, _)) = self.exit_status {
            return code;
        }
        match self.end?.reason {
            EndReason::Exit { code } | EndReason::QuickExit { code } => Some(code),
            _ => None,
        }
    }

    pub fn exit_signal(&self) -> Option<i32> {
        self.exit_status.and_then(|(_, s)| s)
    }
}
