//! The records of a trace, and their stateful encoder and decoder.

use crate::varint;

/// Which allocation function made a block (what memcheck calls the allocation kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AllocFn {
    Malloc = 0,
    Calloc = 1,
    Realloc = 2,
    Reallocarray = 3,
    PosixMemalign = 4,
    AlignedAlloc = 5,
    Memalign = 6,
    Valloc = 7,
    Pvalloc = 8,
}

impl AllocFn {
    /// How many there are: the values run from 0 to the last one's.
    pub const COUNT: usize = AllocFn::Pvalloc as usize + 1;

    pub fn from_u8(v: u8) -> Option<AllocFn> {
        use AllocFn::*;
        Some(match v {
            0 => Malloc,
            1 => Calloc,
            2 => Realloc,
            3 => Reallocarray,
            4 => PosixMemalign,
            5 => AlignedAlloc,
            6 => Memalign,
            7 => Valloc,
            8 => Pvalloc,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use AllocFn::*;
        match self {
            Malloc => "malloc",
            Calloc => "calloc",
            Realloc => "realloc",
            Reallocarray => "reallocarray",
            PosixMemalign => "posix_memalign",
            AlignedAlloc => "aligned_alloc",
            Memalign => "memalign",
            Valloc => "valloc",
            Pvalloc => "pvalloc",
        }
    }
}

/// How the traced process image came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Started normally (or exec'd from a program that was not traced).
    Start,
    /// A child of a traced process; its trace starts with `Inherited` blocks.
    Fork { parent_pid: u32 },
    /// The image a traced process exec'd.
    Exec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub origin: Origin,
    /// Wall-clock time of the first record, in ns since the Unix epoch.
    pub start_unix_ns: u64,
    pub exe: String,
    pub argv: Vec<String>,
    /// Version of the libleakhunt.so that wrote the trace.
    pub recorder: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// `p_vaddr` of the PT_LOAD header: add the module's base for the runtime address.
    pub vaddr: u64,
    pub memsz: u64,
    /// `p_flags` (PF_X = 1, PF_W = 2, PF_R = 4).
    pub flags: u32,
    pub file_offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub id: u32,
    /// Load bias: runtime address = base + address in the ELF file.
    pub base: u64,
    pub path: String,
    /// NT_GNU_BUILD_ID as mapped in memory; empty when the module has none.
    pub build_id: Vec<u8>,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// `exit()` or a return from `main`, with the status passed to exit.
    Exit { code: i32 },
    /// `_exit()`/`_Exit()`: atexit handlers and destructors did not run.
    QuickExit { code: i32 },
    /// `abort()`.
    Abort,
    /// The image was replaced by `exec`; the new image writes its own trace.
    Exec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndInfo {
    pub reason: EndReason,
    /// Allocations of an address the writer already held live (implicit frees).
    pub anomalies: u64,
    /// Frees of addresses that were never recorded as allocated.
    pub unknown_frees: u64,
    /// Events lost because the recorder had to stop (it says why on stderr).
    pub dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Process(ProcessInfo),
    Module(Module),
    ModuleUnload {
        id: u32,
    },
    /// Defines the next stack node id as `ip` called from `parent` (0 = root).
    StackNode {
        parent: u64,
        ip: u64,
    },
    /// The events that follow come from this thread.
    Thread {
        tid: u32,
    },
    /// Microseconds since the start of the trace; applies to what follows.
    Time {
        us: u64,
    },
    Alloc {
        ptr: u64,
        size: u64,
        stack: u64,
        func: AllocFn,
    },
    Free {
        ptr: u64,
    },
    /// A successful `realloc`/`reallocarray` of a live block: one free and one allocation.
    Realloc {
        old_ptr: u64,
        ptr: u64,
        size: u64,
        stack: u64,
    },
    /// A block live in the parent when this process was forked.
    Inherited {
        ptr: u64,
        size: u64,
        stack: u64,
    },
    Mmap {
        addr: u64,
        len: u64,
        prot: u32,
        flags: u32,
        stack: u64,
    },
    Munmap {
        addr: u64,
        len: u64,
    },
    /// Resident set size of the process, sampled by the writer.
    Rss {
        bytes: u64,
    },
    End(EndInfo),
    /// Appended by `leakhunt run` after the process ended.
    ExitStatus {
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// The leak scan at exit ran; `LeakBlock` records for every live block that
    /// is not plainly still reachable follow.
    LeakScan(ScanInfo),
    /// The scan's verdict on one live block (blocks without one are still
    /// reachable). `heuristic`: 0 none, else the memcheck heuristic (1 stdstring,
    /// 2 length64, 3 newarray, 4 multipleinheritance, 5 python: a CPython
    /// object head 16 or 32 bytes into its block, 6 dtv: glibc's thread
    /// vector, from a thread's control block) that made it reachable.
    LeakBlock {
        ptr: u64,
        kind: LeakKind,
        heuristic: u8,
        indirect_bytes: u64,
        indirect_blocks: u64,
    },
    /// A Python code object, defined once before the first stack that runs
    /// it; stacks name it by `id` in their Python frames (`python_frame`).
    PyCode(PyCode),
    /// The process runs a CPython interpreter: its version (`3.11.7`),
    /// whether its frames are read, and its object allocator (the value of
    /// `PYTHONMALLOC`, or `pymalloc` when unset), which decides what the
    /// allocation hooks see.
    Python {
        version: String,
        frames: bool,
        allocator: String,
    },
    /// At the end of an image (not an exec): a block still live, with what
    /// a loss record needs, and the exit scan's verdict on it when it has
    /// one (the same as its `LeakBlock`, which sits in an event chunk).
    /// Written just before `Totals`, so that a summary can skip every
    /// allocation record.
    LiveAtEnd {
        ptr: u64,
        size: u64,
        stack: u64,
        func: AllocFn,
        verdict: Option<Verdict>,
    },
    /// At the end of an image: what replaying its allocation records gives.
    Totals(ImageTotals),
}

/// The exit scan's verdict on a block that was not plainly still reachable
/// (what a `LeakBlock` says of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub kind: LeakKind,
    /// memcheck heuristic that made it reachable (0: none; see `LeakBlock`).
    pub heuristic: u8,
    pub indirect_bytes: u64,
    pub indirect_blocks: u64,
}

impl Record {
    /// Whether the record is an event: something that happened at a moment
    /// of the run (an allocation, a free, a mapping, a clock or thread
    /// change, an RSS sample, a scan verdict). Events are what a summary
    /// never needs, and the only records that use the encoder's delta
    /// state; the writer keeps them in chunks of their own, marked so
    /// that a summary skips them without decompressing (see `ChunkWriter`).
    /// Every other record is structure: what the events refer to (process,
    /// modules, stack nodes, code objects) or what the image ended with.
    pub fn is_event(&self) -> bool {
        matches!(
            self,
            Record::Thread { .. }
                | Record::Time { .. }
                | Record::Alloc { .. }
                | Record::Free { .. }
                | Record::Realloc { .. }
                | Record::Inherited { .. }
                | Record::Mmap { .. }
                | Record::Munmap { .. }
                | Record::Rss { .. }
                | Record::LeakBlock { .. }
        )
    }

    /// The block a `LeakBlock` is about, and its verdict.
    pub fn leak_verdict(&self) -> Option<(u64, Verdict)> {
        match *self {
            Record::LeakBlock {
                ptr,
                kind,
                heuristic,
                indirect_bytes,
                indirect_blocks,
            } => Some((
                ptr,
                Verdict {
                    kind,
                    heuristic,
                    indirect_bytes,
                    indirect_blocks,
                },
            )),
            _ => None,
        }
    }

    /// A structural record that must come after every event written
    /// before it, not merely before the events it precedes (the writer
    /// moves structure ahead of the events of the same chunk otherwise):
    /// a module unload (addresses change meaning there), the leak scan,
    /// and the end of the image.
    pub fn is_sequence_point(&self) -> bool {
        matches!(
            self,
            Record::ModuleUnload { .. }
                | Record::LeakScan(_)
                | Record::LiveAtEnd { .. }
                | Record::Totals(_)
                | Record::End(_)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageTotals {
    pub allocations: u64,
    pub frees: u64,
    pub allocated_bytes: u64,
    pub peak_bytes: u64,
    /// Microseconds since the start of the trace (a `Time` value).
    pub peak_time_us: u64,
    pub live_blocks: u64,
    pub live_bytes: u64,
    pub mmaps: u64,
    pub munmaps: u64,
    /// Successful calls per allocation function, as the `Alloc` and
    /// `Realloc` records name them.
    pub by_function: Vec<(AllocFn, u64)>,
}

/// What the CLI needs of a CPython code object to name a frame and turn an
/// instruction offset into a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyCode {
    pub id: u64,
    /// `co_qualname` (`Class.method`, `outer.<locals>.inner`).
    pub name: String,
    /// `co_filename` as the interpreter has it.
    pub file: String,
    /// `co_firstlineno`.
    pub first_line: u32,
    /// `co_linetable`, in the format `linetable_format` names (3: the
    /// location table of CPython 3.11+).
    pub linetable_format: u8,
    pub linetable: Vec<u8>,
}

/// Stack entries with this bit set are Python frames, not return addresses
/// (no user-space address has it): the code object's id and the offset of
/// the current instruction in code units.
pub const PYTHON_FRAME_TAG: u64 = 1 << 63;
const PYTHON_OFFSET_BITS: u32 = 24;

/// The stack entry of a Python frame (`offset` saturates at 2^24 - 1).
pub fn python_frame(code_id: u64, offset: u64) -> u64 {
    let offset = offset.min((1 << PYTHON_OFFSET_BITS) - 1);
    PYTHON_FRAME_TAG
        | (code_id & ((1 << (63 - PYTHON_OFFSET_BITS)) - 1)) << PYTHON_OFFSET_BITS
        | offset
}

/// `(code id, instruction offset)` of a stack entry that is a Python frame.
pub fn parse_python_frame(ip: u64) -> Option<(u64, u64)> {
    (ip & PYTHON_FRAME_TAG != 0).then_some((
        (ip & !PYTHON_FRAME_TAG) >> PYTHON_OFFSET_BITS,
        ip & ((1 << PYTHON_OFFSET_BITS) - 1),
    ))
}

/// memcheck's leak kinds, as the exit scan decides them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum LeakKind {
    DefinitelyLost = 0,
    IndirectlyLost = 1,
    PossiblyLost = 2,
    StillReachable = 3,
}

impl LeakKind {
    pub fn from_u8(v: u8) -> Option<LeakKind> {
        Some(match v {
            0 => LeakKind::DefinitelyLost,
            1 => LeakKind::IndirectlyLost,
            2 => LeakKind::PossiblyLost,
            3 => LeakKind::StillReachable,
            _ => return None,
        })
    }

    /// The name SPEC.md gives the kind (JSON keys, `--show`).
    pub fn name(self) -> &'static str {
        match self {
            LeakKind::DefinitelyLost => "definitely_lost",
            LeakKind::IndirectlyLost => "indirectly_lost",
            LeakKind::PossiblyLost => "possibly_lost",
            LeakKind::StillReachable => "still_reachable",
        }
    }

    /// memcheck's words for it.
    pub fn describe(self) -> &'static str {
        match self {
            LeakKind::DefinitelyLost => "definitely lost",
            LeakKind::IndirectlyLost => "indirectly lost",
            LeakKind::PossiblyLost => "possibly lost",
            LeakKind::StillReachable => "still reachable",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanInfo {
    /// Live blocks examined.
    pub blocks: u64,
    /// Bytes of roots scanned (module data, stacks, TLS, mappings).
    pub root_bytes: u64,
    /// Threads stopped and scanned (besides the exiting one).
    pub threads: u32,
    /// Threads that did not stop in time (their stacks were not scanned).
    pub threads_missed: u32,
    pub duration_us: u64,
    /// Whether the C runtime's leftovers were released first (memcheck's freeres).
    pub freeres: bool,
}

mod tag {
    pub const PROCESS: u8 = 1;
    pub const MODULE: u8 = 2;
    pub const MODULE_UNLOAD: u8 = 3;
    pub const STACK_NODE: u8 = 4;
    pub const THREAD: u8 = 5;
    pub const TIME: u8 = 6;
    pub const ALLOC: u8 = 7;
    pub const FREE: u8 = 8;
    pub const REALLOC: u8 = 9;
    pub const INHERITED: u8 = 10;
    pub const MMAP: u8 = 11;
    pub const MUNMAP: u8 = 12;
    pub const RSS: u8 = 13;
    pub const END: u8 = 14;
    pub const EXIT_STATUS: u8 = 15;
    pub const LEAK_SCAN: u8 = 16;
    pub const LEAK_BLOCK: u8 = 17;
    /// Version 4 on: a free coded by how many allocations of its thread ago
    /// the block was made (see `Recent`); decoded as `Record::Free`.
    pub const FREE_RECENT: u8 = 18;
    /// Version 4 on: an allocation at the address its thread freed so many
    /// frees ago (see `Recent`); decoded as `Record::Alloc`.
    pub const ALLOC_REUSE: u8 = 19;
    /// Skippable: an older reader ignores Python code objects.
    pub const PY_CODE: u8 = 0x80;
    pub const PYTHON: u8 = 0x81;
    pub const LIVE_AT_END: u8 = 0x82;
    pub const TOTALS: u8 = 0x83;
    /// Tags from here up carry a varint byte length, so that an older reader
    /// can skip records added later without a format version bump.
    pub const FIRST_SKIPPABLE: u8 = 0x80;
}

/// Pointers are coded against the nearest of this many recent ones.
const PTR_SLOTS: usize = 8;
/// A pointer further than this from every recent one starts a new stream
/// (it replaces the oldest-started slot instead of the nearest).
const PTR_NEAR: u64 = 1 << 16;

/// Delta state shared by the encoder and the decoder.
///
/// An allocator that keeps one pool per size class (pymalloc, jemalloc, a
/// C++ arena) interleaves addresses that are far apart: coded against the
/// single previous pointer, nearly every delta took 3-4 bytes. Each pointer
/// is coded against the nearest of the last few streams, as a zigzag delta
/// with the slot number in its low bits; glibc's mostly sequential heap
/// costs the same as before, and pymalloc's pools get small deltas again.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Deltas {
    pub(crate) ptrs: [u64; PTR_SLOTS],
    victim: usize,
    pub(crate) time: u64,
}

impl Deltas {
    /// Where `p`, coded as `delta` against slot `j`, is remembered: both
    /// sides apply the same rule to the same values.
    fn remember(&mut self, j: usize, delta: i64, p: u64) {
        let slot = if delta.unsigned_abs() > PTR_NEAR {
            let v = self.victim;
            self.victim = (v + 1) % PTR_SLOTS;
            v
        } else {
            j
        };
        self.ptrs[slot] = p;
    }

    fn put_ptr(&mut self, out: &mut Vec<u8>, p: u64) {
        let (j, delta) = self
            .ptrs
            .iter()
            .map(|&q| p.wrapping_sub(q) as i64)
            .enumerate()
            .min_by_key(|&(_, d)| d.unsigned_abs())
            .expect("PTR_SLOTS > 0");
        let zigzag = ((delta << 1) ^ (delta >> 63)) as u64;
        // The slot in the low 3 bits; a delta too large to shift (> 2^60)
        // cannot occur between user-space addresses (< 2^47).
        varint::put(out, zigzag << 3 | j as u64);
        self.remember(j, delta, p);
    }

    fn get_ptr(&mut self, buf: &[u8], pos: &mut usize) -> Result<u64, &'static str> {
        let v = varint::get(buf, pos)?;
        let j = (v & 7) as usize;
        let zigzag = v >> 3;
        let delta = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
        let p = self.ptrs[j].wrapping_add(delta as u64);
        self.remember(j, delta, p);
        Ok(p)
    }
}

/// Allocations remembered per thread for `FREE_RECENT` (a power of two).
pub const RECENT: usize = 4096;
/// Threads whose recent allocations are remembered; the one made current
/// least recently gives its place to a new one.
const RECENT_THREADS: usize = 64;

/// The last `RECENT` addresses each thread allocated (`Alloc`, and the new
/// block of `Realloc`) and freed (`Free`), for the encoder and the decoder
/// alike: both apply the same steps to the same records.
///
/// Most blocks die young, in the thread that made them: a free is then
/// coded as the distance back to its allocation in that thread's history,
/// which repeats from one free to the next (a ring buffer, a request's
/// objects) where the address does not. And allocators hand a thread back
/// what it freed last (glibc's tcache, pymalloc's pools): an allocation is
/// coded as the distance back to the free of its address. Against the same
/// records coded by address, both under zstd: 4-thread churn 9.7 -> 8.3 MB,
/// the STL benchmark 5.37 -> 4.56 MB, sqlite3 44.9 -> 29.6 KB.
#[derive(Debug, Default, Clone)]
struct Recent {
    tid: u32,
    /// `rings[current]` belongs to `tid` (none before its first allocation
    /// or free).
    current: Option<usize>,
    rings: Vec<Ring>,
    clock: u64,
}

/// One thread's histories.
#[derive(Debug, Clone)]
struct Ring {
    tid: u32,
    /// `clock` when the thread was last made current.
    used: u64,
    allocs: History,
    frees: History,
}

/// The last `RECENT` addresses of one kind (allocated, or freed).
#[derive(Debug, Clone)]
struct History {
    /// Addresses so far; the latest is at `ptrs[count % RECENT]`.
    count: u64,
    ptrs: Box<[u64]>,
}

impl History {
    fn new() -> History {
        History {
            count: 0,
            ptrs: vec![0; RECENT].into_boxed_slice(),
        }
    }

    /// Remembers `ptr`; the slot it took.
    fn push(&mut self, ptr: u64) -> u16 {
        self.count += 1;
        let slot = self.count as usize % RECENT;
        self.ptrs[slot] = ptr;
        slot as u16
    }

    /// The slot the next `push` takes.
    fn next_slot(&self) -> u16 {
        ((self.count + 1) % RECENT as u64) as u16
    }

    /// How far back `slot` is, if it still holds `ptr`: whatever the slot
    /// came from, `resolve` of that distance gives `ptr` back.
    fn distance(&self, ptr: u64, slot: u16) -> Option<u64> {
        let slot = slot as usize % RECENT;
        (ptr != 0 && self.ptrs[slot] == ptr)
            .then(|| (self.count as usize).wrapping_sub(slot) as u64 % RECENT as u64)
    }

    fn resolve(&self, distance: u64) -> Option<u64> {
        if distance >= RECENT as u64 {
            return None;
        }
        let p = self.ptrs[self.count.wrapping_sub(distance) as usize % RECENT];
        (p != 0).then_some(p)
    }
}

impl Recent {
    fn switch(&mut self, tid: u32) {
        self.tid = tid;
        self.clock += 1;
        self.current = self.rings.iter().position(|r| r.tid == tid);
        if let Some(i) = self.current {
            self.rings[i].used = self.clock;
        }
    }

    fn current(&self) -> Option<&Ring> {
        Some(&self.rings[self.current?])
    }

    /// The current thread's histories, made on its first allocation or free.
    fn ring(&mut self) -> &mut Ring {
        let i = match self.current {
            Some(i) => i,
            None => {
                let ring = Ring {
                    tid: self.tid,
                    used: self.clock,
                    allocs: History::new(),
                    frees: History::new(),
                };
                let i = if self.rings.len() < RECENT_THREADS {
                    self.rings.push(ring);
                    self.rings.len() - 1
                } else {
                    let (i, _) = (self.rings.iter().enumerate())
                        .min_by_key(|(_, r)| r.used)
                        .expect("RECENT_THREADS > 0");
                    self.rings[i] = ring;
                    i
                };
                self.current = Some(i);
                i
            }
        };
        &mut self.rings[i]
    }

    /// Where the current thread's next allocation will be remembered.
    fn next_alloc_slot(&self) -> u16 {
        self.current().map_or(1, |r| r.allocs.next_slot())
    }

    /// Follows an encoded or decoded record; for a free, the slot its
    /// address took.
    #[inline]
    fn follow(&mut self, r: &Record) -> Option<u16> {
        match *r {
            Record::Thread { tid } => self.switch(tid),
            Record::Alloc { ptr, .. } | Record::Realloc { ptr, .. } => {
                self.ring().allocs.push(ptr);
            }
            Record::Free { ptr } => return Some(self.ring().frees.push(ptr)),
            _ => {}
        }
        None
    }
}

#[derive(Debug, Default, Clone)]
pub struct Encoder {
    pub(crate) d: Deltas,
    recent: Recent,
    /// Recent frees by address (direct-mapped): the address and the slot of
    /// its thread's free history it took.
    freed_at: Vec<(u64, u16)>,
}

/// Entries of `Encoder::freed_at`.
const FREED_AT: usize = 4096;

fn freed_slot(ptr: u64) -> usize {
    ((ptr >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 52) as usize % FREED_AT
}

/// A scan verdict, in LEAK_BLOCK records and in LIVE_AT_END's tail alike.
fn put_verdict(out: &mut Vec<u8>, v: &Verdict) {
    out.push(v.kind as u8);
    out.push(v.heuristic);
    varint::put(out, v.indirect_bytes);
    varint::put(out, v.indirect_blocks);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    varint::put(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A record of a skippable tag: the tag, then its body with its length, so
/// that a reader that does not know the tag can step over it.
fn put_skippable(out: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
    out.push(tag);
    let mut b = Vec::with_capacity(32);
    body(&mut b);
    put_bytes(out, &b);
}

fn put_opt_i32(out: &mut Vec<u8>, v: Option<i32>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            varint::put_signed(out, v as i64);
        }
    }
}

impl Encoder {
    /// The slot of the current thread's history its next allocation will
    /// take: kept with the block, and given back to `encode_free`.
    pub fn next_alloc_slot(&self) -> u16 {
        self.recent.next_alloc_slot()
    }

    /// A free, coded by distance when `slot` (from `next_alloc_slot` when
    /// the block was made) still holds it in this thread's history, else as
    /// `Record::Free`. It decodes as `Record::Free { ptr }` either way.
    pub fn encode_free(&mut self, ptr: u64, slot: u16, out: &mut Vec<u8>) {
        let r = Record::Free { ptr };
        match self
            .recent
            .current()
            .and_then(|h| h.allocs.distance(ptr, slot))
        {
            Some(d) => {
                self.follow(&r);
                out.push(tag::FREE_RECENT);
                varint::put(out, d);
            }
            None => self.encode(&r, out),
        }
    }

    /// `Recent::follow`, and the slot a free's address took, by address.
    fn follow(&mut self, r: &Record) {
        if let (Some(slot), Record::Free { ptr }) = (self.recent.follow(r), r) {
            if self.freed_at.is_empty() {
                self.freed_at = vec![(0, 0); FREED_AT];
            }
            self.freed_at[freed_slot(*ptr)] = (*ptr, slot);
        }
    }

    /// How many frees ago the current thread freed `ptr`, if that is
    /// remembered on both sides.
    fn reuse_distance(&self, ptr: u64) -> Option<u64> {
        let &(p, slot) = self.freed_at.get(freed_slot(ptr))?;
        if p != ptr {
            return None;
        }
        self.recent.current()?.frees.distance(ptr, slot)
    }

    pub fn encode(&mut self, r: &Record, out: &mut Vec<u8>) {
        use varint::put;
        // Looked up before the record is followed, as the decoder resolves it.
        let reuse = match *r {
            Record::Alloc { ptr, .. } => self.reuse_distance(ptr),
            _ => None,
        };
        self.follow(r);
        match r {
            Record::Process(p) => {
                out.push(tag::PROCESS);
                put(out, p.pid as u64);
                put(out, p.ppid as u64);
                match p.origin {
                    Origin::Start => put(out, 0),
                    Origin::Fork { parent_pid } => {
                        put(out, 1);
                        put(out, parent_pid as u64);
                    }
                    Origin::Exec => put(out, 2),
                }
                put(out, p.start_unix_ns);
                put_str(out, &p.exe);
                put(out, p.argv.len() as u64);
                for a in &p.argv {
                    put_str(out, a);
                }
                put_str(out, &p.recorder);
            }
            Record::Module(m) => {
                out.push(tag::MODULE);
                put(out, m.id as u64);
                put(out, m.base);
                put_str(out, &m.path);
                put_bytes(out, &m.build_id);
                put(out, m.segments.len() as u64);
                for s in &m.segments {
                    put(out, s.vaddr);
                    put(out, s.memsz);
                    put(out, s.flags as u64);
                    put(out, s.file_offset);
                }
            }
            Record::ModuleUnload { id } => {
                out.push(tag::MODULE_UNLOAD);
                put(out, *id as u64);
            }
            Record::StackNode { parent, ip } => {
                out.push(tag::STACK_NODE);
                put(out, *parent);
                put(out, *ip);
            }
            Record::Thread { tid } => {
                out.push(tag::THREAD);
                put(out, *tid as u64);
            }
            Record::Time { us } => {
                out.push(tag::TIME);
                varint::put_signed(out, us.wrapping_sub(self.d.time) as i64);
                self.d.time = *us;
            }
            Record::Alloc {
                ptr,
                size,
                stack,
                func,
            } => match reuse {
                Some(d) => {
                    out.push(tag::ALLOC_REUSE);
                    out.push(*func as u8);
                    put(out, d);
                    put(out, *size);
                    put(out, *stack);
                }
                None => {
                    out.push(tag::ALLOC);
                    out.push(*func as u8);
                    self.d.put_ptr(out, *ptr);
                    put(out, *size);
                    put(out, *stack);
                }
            },
            Record::Free { ptr } => {
                out.push(tag::FREE);
                self.d.put_ptr(out, *ptr);
            }
            Record::Realloc {
                old_ptr,
                ptr,
                size,
                stack,
            } => {
                out.push(tag::REALLOC);
                self.d.put_ptr(out, *old_ptr);
                self.d.put_ptr(out, *ptr);
                put(out, *size);
                put(out, *stack);
            }
            Record::Inherited { ptr, size, stack } => {
                out.push(tag::INHERITED);
                self.d.put_ptr(out, *ptr);
                put(out, *size);
                put(out, *stack);
            }
            Record::Mmap {
                addr,
                len,
                prot,
                flags,
                stack,
            } => {
                out.push(tag::MMAP);
                put(out, *addr);
                put(out, *len);
                put(out, *prot as u64);
                put(out, *flags as u64);
                put(out, *stack);
            }
            Record::Munmap { addr, len } => {
                out.push(tag::MUNMAP);
                put(out, *addr);
                put(out, *len);
            }
            Record::Rss { bytes } => {
                out.push(tag::RSS);
                put(out, *bytes);
            }
            Record::End(e) => {
                out.push(tag::END);
                match e.reason {
                    EndReason::Exit { code } => {
                        put(out, 0);
                        varint::put_signed(out, code as i64);
                    }
                    EndReason::QuickExit { code } => {
                        put(out, 1);
                        varint::put_signed(out, code as i64);
                    }
                    EndReason::Abort => put(out, 2),
                    EndReason::Exec => put(out, 3),
                }
                put(out, e.anomalies);
                put(out, e.unknown_frees);
                put(out, e.dropped);
            }
            Record::ExitStatus { code, signal } => {
                out.push(tag::EXIT_STATUS);
                put_opt_i32(out, *code);
                put_opt_i32(out, *signal);
            }
            Record::LeakScan(i) => {
                out.push(tag::LEAK_SCAN);
                put(out, i.blocks);
                put(out, i.root_bytes);
                put(out, i.threads as u64);
                put(out, i.threads_missed as u64);
                put(out, i.duration_us);
                out.push(i.freeres as u8);
            }
            Record::LeakBlock {
                ptr,
                kind,
                heuristic,
                indirect_bytes,
                indirect_blocks,
            } => {
                out.push(tag::LEAK_BLOCK);
                self.d.put_ptr(out, *ptr);
                put_verdict(
                    out,
                    &Verdict {
                        kind: *kind,
                        heuristic: *heuristic,
                        indirect_bytes: *indirect_bytes,
                        indirect_blocks: *indirect_blocks,
                    },
                );
            }
            Record::PyCode(c) => {
                put_skippable(out, tag::PY_CODE, |body| {
                    put(body, c.id);
                    put_str(body, &c.name);
                    put_str(body, &c.file);
                    put(body, c.first_line as u64);
                    body.push(c.linetable_format);
                    put_bytes(body, &c.linetable);
                });
            }
            Record::Python {
                version,
                frames,
                allocator,
            } => {
                put_skippable(out, tag::PYTHON, |body| {
                    put_str(body, version);
                    body.push(*frames as u8);
                    put_str(body, allocator);
                });
            }
            Record::LiveAtEnd {
                ptr,
                size,
                stack,
                func,
                verdict,
            } => {
                put_skippable(out, tag::LIVE_AT_END, |body| {
                    put(body, *ptr);
                    put(body, *size);
                    put(body, *stack);
                    body.push(*func as u8);
                    // Optional tail: a reader that predates it stops at the
                    // function (the body's length steps over the rest).
                    if let Some(v) = verdict {
                        put_verdict(body, v);
                    }
                });
            }
            Record::Totals(t) => {
                put_skippable(out, tag::TOTALS, |body| {
                    for v in [
                        t.allocations,
                        t.frees,
                        t.allocated_bytes,
                        t.peak_bytes,
                        t.peak_time_us,
                        t.live_blocks,
                        t.live_bytes,
                        t.mmaps,
                        t.munmaps,
                    ] {
                        put(body, v);
                    }
                    put(body, t.by_function.len() as u64);
                    for &(f, n) in &t.by_function {
                        body.push(f as u8);
                        put(body, n);
                    }
                });
            }
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Decoder {
    d: Deltas,
    recent: Recent,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: &'a mut usize,
}

impl<'a> Cursor<'a> {
    /// A scan verdict, as `put_verdict` wrote it.
    fn verdict(&mut self) -> Result<Verdict, &'static str> {
        Ok(Verdict {
            kind: LeakKind::from_u8(self.byte()?).ok_or("unknown leak kind")?,
            heuristic: self.byte()?,
            indirect_bytes: self.u64()?,
            indirect_blocks: self.u64()?,
        })
    }

    /// A cursor over the body of a length-prefixed (skippable) record.
    fn over(buf: &'a [u8], pos: &'a mut usize) -> Cursor<'a> {
        Cursor { buf, pos }
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        varint::get(self.buf, self.pos)
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        u32::try_from(self.u64()?).map_err(|_| "value does not fit 32 bits")
    }
    fn i32(&mut self) -> Result<i32, &'static str> {
        i32::try_from(varint::get_signed(self.buf, self.pos)?)
            .map_err(|_| "value does not fit 32 bits")
    }
    fn byte(&mut self) -> Result<u8, &'static str> {
        let b = *self
            .buf
            .get(*self.pos)
            .ok_or("record runs past the end of its chunk")?;
        *self.pos += 1;
        Ok(b)
    }
    fn bytes(&mut self) -> Result<&[u8], &'static str> {
        let n = self.u64()?;
        let rest = self.buf.len() - *self.pos;
        if n > rest as u64 {
            return Err("length runs past the end of its chunk");
        }
        let s = &self.buf[*self.pos..*self.pos + n as usize];
        *self.pos += n as usize;
        Ok(s)
    }
    fn string(&mut self) -> Result<String, &'static str> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }
    /// A count of items each at least `min_item` bytes long, bounded by what is left.
    fn count(&mut self, min_item: usize) -> Result<usize, &'static str> {
        let n = self.u64()?;
        let rest = (self.buf.len() - *self.pos) / min_item.max(1);
        if n > rest as u64 {
            return Err("count runs past the end of its chunk");
        }
        Ok(n as usize)
    }
    fn opt_i32(&mut self) -> Result<Option<i32>, &'static str> {
        match self.byte()? {
            0 => Ok(None),
            1 => Ok(Some(self.i32()?)),
            _ => Err("bad option flag"),
        }
    }
}

impl Decoder {
    /// Decodes one record at `*pos`, skipping records of later versions that it
    /// does not know (those carry their length).
    pub fn decode(&mut self, buf: &[u8], pos: &mut usize) -> Result<Record, &'static str> {
        loop {
            let t = *buf.get(*pos).ok_or("empty record")?;
            *pos += 1;
            let mut c = Cursor { buf, pos };
            let r = match t {
                tag::PROCESS => {
                    let pid = c.u32()?;
                    let ppid = c.u32()?;
                    let origin = match c.u64()? {
                        0 => Origin::Start,
                        1 => Origin::Fork {
                            parent_pid: c.u32()?,
                        },
                        2 => Origin::Exec,
                        _ => return Err("unknown process origin"),
                    };
                    let start_unix_ns = c.u64()?;
                    let exe = c.string()?;
                    let n = c.count(1)?;
                    let mut argv = Vec::with_capacity(n);
                    for _ in 0..n {
                        argv.push(c.string()?);
                    }
                    let recorder = c.string()?;
                    Record::Process(ProcessInfo {
                        pid,
                        ppid,
                        origin,
                        start_unix_ns,
                        exe,
                        argv,
                        recorder,
                    })
                }
                tag::MODULE => {
                    let id = c.u32()?;
                    let base = c.u64()?;
                    let path = c.string()?;
                    let build_id = c.bytes()?.to_vec();
                    let n = c.count(4)?;
                    let mut segments = Vec::with_capacity(n);
                    for _ in 0..n {
                        segments.push(Segment {
                            vaddr: c.u64()?,
                            memsz: c.u64()?,
                            flags: c.u32()?,
                            file_offset: c.u64()?,
                        });
                    }
                    Record::Module(Module {
                        id,
                        base,
                        path,
                        build_id,
                        segments,
                    })
                }
                tag::MODULE_UNLOAD => Record::ModuleUnload { id: c.u32()? },
                tag::STACK_NODE => Record::StackNode {
                    parent: c.u64()?,
                    ip: c.u64()?,
                },
                tag::THREAD => Record::Thread { tid: c.u32()? },
                tag::TIME => {
                    let d = varint::get_signed(buf, c.pos)?;
                    self.d.time = self.d.time.wrapping_add(d as u64);
                    Record::Time { us: self.d.time }
                }
                tag::ALLOC => {
                    let func = AllocFn::from_u8(c.byte()?).ok_or("unknown allocation function")?;
                    let ptr = self.d.get_ptr(buf, c.pos)?;
                    Record::Alloc {
                        ptr,
                        size: c.u64()?,
                        stack: c.u64()?,
                        func,
                    }
                }
                tag::FREE => Record::Free {
                    ptr: self.d.get_ptr(buf, c.pos)?,
                },
                tag::ALLOC_REUSE => {
                    let func = AllocFn::from_u8(c.byte()?).ok_or("unknown allocation function")?;
                    let d = c.u64()?;
                    let ptr = (self.recent.current())
                        .and_then(|h| h.frees.resolve(d))
                        .ok_or("an allocation at an address not remembered")?;
                    Record::Alloc {
                        ptr,
                        size: c.u64()?,
                        stack: c.u64()?,
                        func,
                    }
                }
                tag::FREE_RECENT => {
                    let d = c.u64()?;
                    let ptr = (self.recent.current())
                        .and_then(|h| h.allocs.resolve(d))
                        .ok_or("a free of an allocation not remembered")?;
                    Record::Free { ptr }
                }
                tag::REALLOC => {
                    let old_ptr = self.d.get_ptr(buf, c.pos)?;
                    let ptr = self.d.get_ptr(buf, c.pos)?;
                    Record::Realloc {
                        old_ptr,
                        ptr,
                        size: c.u64()?,
                        stack: c.u64()?,
                    }
                }
                tag::INHERITED => {
                    let ptr = self.d.get_ptr(buf, c.pos)?;
                    Record::Inherited {
                        ptr,
                        size: c.u64()?,
                        stack: c.u64()?,
                    }
                }
                tag::MMAP => Record::Mmap {
                    addr: c.u64()?,
                    len: c.u64()?,
                    prot: c.u32()?,
                    flags: c.u32()?,
                    stack: c.u64()?,
                },
                tag::MUNMAP => Record::Munmap {
                    addr: c.u64()?,
                    len: c.u64()?,
                },
                tag::RSS => Record::Rss { bytes: c.u64()? },
                tag::END => {
                    let reason = match c.u64()? {
                        0 => EndReason::Exit { code: c.i32()? },
                        1 => EndReason::QuickExit { code: c.i32()? },
                        2 => EndReason::Abort,
                        3 => EndReason::Exec,
                        _ => return Err("unknown end reason"),
                    };
                    Record::End(EndInfo {
                        reason,
                        anomalies: c.u64()?,
                        unknown_frees: c.u64()?,
                        dropped: c.u64()?,
                    })
                }
                tag::EXIT_STATUS => Record::ExitStatus {
                    code: c.opt_i32()?,
                    signal: c.opt_i32()?,
                },
                tag::LEAK_SCAN => Record::LeakScan(ScanInfo {
                    blocks: c.u64()?,
                    root_bytes: c.u64()?,
                    threads: c.u32()?,
                    threads_missed: c.u32()?,
                    duration_us: c.u64()?,
                    freeres: c.byte()? != 0,
                }),
                tag::LEAK_BLOCK => {
                    let ptr = self.d.get_ptr(buf, c.pos)?;
                    let v = c.verdict()?;
                    Record::LeakBlock {
                        ptr,
                        kind: v.kind,
                        heuristic: v.heuristic,
                        indirect_bytes: v.indirect_bytes,
                        indirect_blocks: v.indirect_blocks,
                    }
                }
                tag::PY_CODE => {
                    let body = c.bytes()?;
                    let mut at = 0usize;
                    let mut b = Cursor::over(body, &mut at);
                    let id = b.u64()?;
                    let name = b.string()?;
                    let file = b.string()?;
                    let first_line = b.u32()?;
                    let linetable_format = b.byte()?;
                    let linetable = b.bytes()?.to_vec();
                    Record::PyCode(PyCode {
                        id,
                        name,
                        file,
                        first_line,
                        linetable_format,
                        linetable,
                    })
                }
                tag::PYTHON => {
                    let body = c.bytes()?;
                    let mut at = 0usize;
                    let mut b = Cursor::over(body, &mut at);
                    Record::Python {
                        version: b.string()?,
                        frames: b.byte()? != 0,
                        allocator: b.string()?,
                    }
                }
                tag::LIVE_AT_END => {
                    let body = c.bytes()?;
                    let mut at = 0usize;
                    let (ptr, size, stack, func) = {
                        let mut b = Cursor::over(body, &mut at);
                        let (ptr, size, stack) = (b.u64()?, b.u64()?, b.u64()?);
                        let func =
                            AllocFn::from_u8(b.byte()?).ok_or("unknown allocation function")?;
                        (ptr, size, stack, func)
                    };
                    let verdict = if at < body.len() {
                        Some(Cursor::over(body, &mut at).verdict()?)
                    } else {
                        None
                    };
                    Record::LiveAtEnd {
                        ptr,
                        size,
                        stack,
                        func,
                        verdict,
                    }
                }
                tag::TOTALS => {
                    let body = c.bytes()?;
                    let mut at = 0usize;
                    let mut b = Cursor::over(body, &mut at);
                    let mut t = ImageTotals {
                        allocations: b.u64()?,
                        frees: b.u64()?,
                        allocated_bytes: b.u64()?,
                        peak_bytes: b.u64()?,
                        peak_time_us: b.u64()?,
                        live_blocks: b.u64()?,
                        live_bytes: b.u64()?,
                        mmaps: b.u64()?,
                        munmaps: b.u64()?,
                        by_function: Vec::new(),
                    };
                    let n = b.count(2)?;
                    for _ in 0..n {
                        let f = AllocFn::from_u8(b.byte()?).ok_or("unknown allocation function")?;
                        t.by_function.push((f, b.u64()?));
                    }
                    Record::Totals(t)
                }
                t if t >= tag::FIRST_SKIPPABLE => {
                    c.bytes()?;
                    continue;
                }
                _ => return Err("unknown record tag"),
            };
            self.recent.follow(&r);
            return Ok(r);
        }
    }
}
