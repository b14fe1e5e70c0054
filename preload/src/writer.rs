//! The writer thread: the one place that owns recording state.
//!
//! It drains the event queue in order, keeps the table of live blocks, interns
//! stacks as a trie, tracks the module map, and writes compressed, checksummed
//! chunks (at least every 100 ms, so a killed process leaves a readable trace).
//! It may allocate freely: its thread is guarded forever, so its own calls to
//! malloc are not recorded. All signals are blocked in it.

use crate::guard::{self, Guard, RECORDING};
use crate::queue::{end, kind, Event, Pop, QUEUE};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use leakhunt_format::{
    AllocFn, ChunkWriter, EndInfo, EndReason, Module, Origin, ProcessInfo, PyCode, Record,
};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

/// Keys that are already good hashes (stack hashes, addresses) need no more mixing.
#[derive(Default)]
pub struct PassThrough(u64);
impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        // Addresses are 16-byte aligned; spread the high bits down.
        self.0 = (self.0 ^ v)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(26);
    }
}
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<PassThrough>>;

#[derive(Clone, Copy)]
pub struct Block {
    /// The requested size (48 bits: no live block is larger than the 47-bit
    /// address space), the allocation function (4 bits) and the slot of its
    /// thread's history the encoder gave the allocation (12 bits, see
    /// `ChunkWriter::push_free`): a live table of 16-byte entries stays
    /// small, and it is the writer's cost.
    bits: u64,
    pub stack: u64,
}

const SIZE_BITS: u32 = 48;
const FUNC_SHIFT: u32 = 48;
const SLOT_SHIFT: u32 = 52;
const _: () = assert!(leakhunt_format::RECENT == 1 << (64 - SLOT_SHIFT));
const _: () = assert!(AllocFn::COUNT <= 16);

impl Block {
    pub fn new(size: u64, stack: u64, func: AllocFn, slot: u16) -> Block {
        Block {
            bits: size.min((1 << SIZE_BITS) - 1)
                | (func as u64) << FUNC_SHIFT
                | (slot as u64) << SLOT_SHIFT,
            stack,
        }
    }

    pub fn size(&self) -> u64 {
        self.bits & ((1 << SIZE_BITS) - 1)
    }

    fn func(&self) -> AllocFn {
        AllocFn::from_u8((self.bits >> FUNC_SHIFT & 0xf) as u8).unwrap_or(AllocFn::Malloc)
    }

    fn slot(&self) -> u16 {
        (self.bits >> SLOT_SHIFT) as u16
    }
}

/// What the CLI would count replaying this file's records (`Record::Totals`),
/// kept as the records are written so that a summary needs no replay.
#[derive(Default)]
struct Counts {
    allocations: u64,
    frees: u64,
    allocated_bytes: u64,
    live_bytes: u64,
    peak_bytes: u64,
    peak_time_us: u64,
    mmaps: u64,
    munmaps: u64,
    by_function: [u64; 9],
}

impl Counts {
    fn alloc(&mut self, size: u64, func: AllocFn, now_us: u64) {
        self.allocations += 1;
        self.allocated_bytes += size;
        self.by_function[func as usize] += 1;
        self.live(size, now_us);
    }

    /// A block becomes live without being allocated here (inherited).
    fn live(&mut self, size: u64, now_us: u64) {
        self.live_bytes += size;
        if self.live_bytes > self.peak_bytes {
            self.peak_bytes = self.live_bytes;
            self.peak_time_us = now_us;
        }
    }

    fn free(&mut self, size: u64) {
        self.frees += 1;
        self.live_bytes = self.live_bytes.saturating_sub(size);
    }
}

struct Stack {
    /// Innermost first, as captured.
    ips: Box<[u64]>,
    /// Trie node in the current file and epoch (valid when `epoch` matches).
    node: u64,
    epoch: u32,
}

struct Output {
    fd: i32,
    /// Identity of the file, checked before each write: a program that closes
    /// every descriptor and opens others must never receive our bytes.
    id: (u64, u64),
    path: String,
    /// `path` made absolute when the file was created, to open it again
    /// should the program close our descriptor (and chdir).
    reopen: Option<CString>,
    chunks: ChunkWriter,
    last_flush: Instant,
}

/// What a new trace file starts as.
#[derive(Clone, Copy)]
enum FileStart {
    Fresh,
    Forked { parent_pid: u32 },
}

pub struct State {
    out: Option<Output>,
    pub live: crate::live::LiveTable,
    stacks: FastMap<u64, Stack>,
    /// Trie nodes of the current file and epoch, by the hash of their path
    /// from the root (see `node_of`).
    trie: FastMap<u64, u64>,
    next_node: u64,
    epoch: u32,
    modules: Vec<Module>,
    next_module_id: u32,
    /// The program's own memory mappings (start -> length): roots of the leak scan.
    mappings: std::collections::BTreeMap<u64, u64>,
    /// Stacks being received, per thread: (hash, depth, frames shared with
    /// the thread's last definition, inner frames so far).
    partial: FastMap<u32, (u64, usize, usize, Vec<u64>)>,
    /// The last stack each thread defined (innermost first).
    last_def: FastMap<u32, Vec<u64>>,
    /// Python code objects being received, per thread.
    partial_code: FastMap<u32, PendingCode>,
    /// Described code objects by address (their free forgets them), and
    /// every description, for the file a fork child starts.
    code_ids: FastMap<u64, u64>,
    codes: Vec<PyCode>,
    /// The block a thread's realloc released, until the realloc returns.
    realloc_stash: FastMap<u32, (u64, Option<Block>)>,
    last_tid: u32,
    last_time_us: u64,
    last_rss: Instant,
    anomalies: u64,
    unknown_frees: u64,
    counts: Counts,
    /// The exit scan's verdicts by address, repeated in `LiveAtEnd` so that
    /// a summary needs none of the event chunks (where `LeakBlock` is).
    verdicts: FastMap<u64, leakhunt_format::Verdict>,
    finished: bool,
}

impl State {
    fn new() -> State {
        State {
            out: None,
            live: Default::default(),
            stacks: FastMap::default(),
            trie: HashMap::default(),
            next_node: 1,
            epoch: 1,
            modules: Vec::new(),
            next_module_id: 0,
            mappings: Default::default(),
            partial: FastMap::default(),
            last_def: FastMap::default(),
            partial_code: FastMap::default(),
            code_ids: FastMap::default(),
            codes: Vec::new(),
            realloc_stash: FastMap::default(),
            last_tid: 0,
            last_time_us: 0,
            last_rss: Instant::now(),
            anomalies: 0,
            unknown_frees: 0,
            counts: Counts::default(),
            verdicts: FastMap::default(),
            finished: false,
        }
    }
}

/// A code object description arriving in PY_BYTES pieces.
struct PendingCode {
    address: u64,
    code: PyCode,
    name_len: usize,
    file_len: usize,
    table_len: usize,
    bytes: Vec<u8>,
}

impl PendingCode {
    fn total(&self) -> usize {
        self.name_len + self.file_len + self.table_len
    }
}

/// A lock held by the writer while it works and by `fork`'s prepare handler,
/// so that a child never inherits half-updated state. Not on the hot path.
pub struct Locked {
    busy: crate::spin::SpinLock,
    state: UnsafeCell<Option<State>>,
}
// SAFETY: `state` is only touched between lock() and unlock().
unsafe impl Sync for Locked {}

pub static STATE: Locked = Locked {
    busy: crate::spin::SpinLock::new(),
    state: UnsafeCell::new(None),
};

impl Locked {
    pub fn lock(&self) {
        self.busy.lock()
    }
    pub fn unlock(&self) {
        self.busy.unlock()
    }
    /// # Safety
    /// The caller holds the lock.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self) -> &mut State {
        (*self.state.get()).get_or_insert_with(State::new)
    }
}

/// Thread id of the writer (the exit scan never stops it).
pub static WRITER_TID: AtomicU32 = AtomicU32::new(0);
/// Pid of the process whose writer thread is running (0: none).
pub static WRITER_PID: AtomicU32 = AtomicU32::new(0);
static TICKET: AtomicU64 = AtomicU64::new(0);
static ACKED: AtomicU64 = AtomicU64::new(0);
pub static DROPPED: AtomicU64 = AtomicU64::new(0);
static START: std::sync::OnceLock<(Instant, u64)> = std::sync::OnceLock::new();

pub fn start_time() -> (Instant, u64) {
    *START.get_or_init(|| {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        (Instant::now(), wall)
    })
}

fn getpid() -> u32 {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() as u32 }
}

/// Hands an event to the writer. Spins (yielding) while the queue is full, but
/// only while a writer of this process is alive to empty it.
#[inline(always)]
pub fn push(ev: &Event) {
    if !QUEUE.try_push(ev) {
        push_slow(ev);
    }
}

/// Hands an event to the writer from the reentrant path
/// (`guard::Inside::Handler`), which may have interrupted this thread's own
/// push between claiming its slot and filling it: the writer then cannot get
/// past that slot until the handler returns, and waiting for room would never
/// end. So the wait goes on while the writer makes progress, or while it is
/// merely not running (a loaded machine preempts it for milliseconds: a fixed
/// number of retries dropped a hundred events of a test then), and ends only
/// when it is held up by a slot still being filled, or after a second without
/// progress. What still does not fit is counted as dropped.
pub fn push_or_drop(ev: &Event) {
    let mut taken = QUEUE.taken();
    let mut still = 0u32;
    let mut since: Option<Instant> = None;
    loop {
        if QUEUE.try_push(ev) {
            return;
        }
        if WRITER_PID.load(Ordering::Relaxed) != getpid() {
            break;
        }
        let now_taken = QUEUE.taken();
        if now_taken != taken {
            taken = now_taken;
            still = 0;
            since = None;
        } else {
            still += 1;
            if still >= 1000 {
                if QUEUE.held_up() {
                    break;
                }
                // clock_gettime (vDSO) is async-signal-safe.
                let t0 = *since.get_or_insert_with(Instant::now);
                if t0.elapsed() > Duration::from_secs(1) {
                    break;
                }
            }
        }
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
    DROPPED.fetch_add(1, Ordering::Relaxed);
}

#[cold]
fn push_slow(ev: &Event) {
    let mut waited = 0u32;
    loop {
        if WRITER_PID.load(Ordering::Relaxed) != getpid() {
            // A writer that has not started yet gets a moment; a process created
            // without fork handlers (raw clone) never gets one: stop recording.
            if waited > 2000 {
                DROPPED.fetch_add(1, Ordering::Relaxed);
                RECORDING.store(false, Ordering::Relaxed);
                return;
            }
        }
        // SAFETY: sched_yield cannot fail in a way that matters.
        unsafe { libc::sched_yield() };
        if QUEUE.try_push(ev) {
            return;
        }
        waited += 1;
        if waited > 1000 {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

/// Pushes a control event and waits (bounded) until the writer has written
/// everything before it. Returns false if nobody acknowledged in time.
pub fn request(kind: u32, a: u64, b: u64, timeout: Duration) -> bool {
    if WRITER_PID.load(Ordering::Relaxed) != getpid() {
        return false;
    }
    let ticket = TICKET.fetch_add(1, Ordering::Relaxed) + 1;
    push(&Event {
        kind,
        tid: guard::tid(),
        a,
        b,
        c: ticket,
        d: 0,
    });
    let deadline = Instant::now() + timeout;
    while ACKED.load(Ordering::Acquire) < ticket {
        if Instant::now() > deadline || WRITER_PID.load(Ordering::Relaxed) != getpid() {
            return false;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    true
}

/// Starts the writer thread (from the constructor, or in a fork child).
pub fn spawn() {
    // SAFETY: plain signal-mask calls on valid sigset_t values; the new thread
    // inherits the full mask so it never runs one of the program's handlers.
    unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        WRITER_PID.store(getpid(), Ordering::Relaxed);
        WRITER_TID.store(0, Ordering::Relaxed);
        // A raw pthread, not std::thread: std's thread start-up allocates
        // before our code could set the guard, and those are not the program's.
        let mut thread: libc::pthread_t = 0;
        // Its TLS vector, which glibc allocates, is ours too.
        let r = crate::guard::own(|| {
            libc::pthread_create(
                &mut thread,
                core::ptr::null(),
                writer_main,
                core::ptr::null_mut(),
            )
        });
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        if r == 0 {
            // The exit scan must know which thread not to stop: wait (briefly)
            // for the writer to say who it is.
            let deadline = Instant::now() + Duration::from_secs(1);
            while WRITER_TID.load(Ordering::Acquire) == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(20));
            }
            libc::pthread_detach(thread);
            libc::pthread_setname_np(thread, c"leakhunt-writer".as_ptr());
        } else {
            WRITER_PID.store(0, Ordering::Relaxed);
            RECORDING.store(false, Ordering::Relaxed);
            say("cannot start the writer thread; recording is off");
        }
    }
}

/// Creates the trace file now (header and process record on disk), so that a
/// program that crashes at once still leaves a readable trace.
pub fn open_now() {
    STATE.lock();
    // SAFETY: lock held.
    unsafe { STATE.get() }.open(FileStart::Fresh);
    STATE.unlock();
}

/// One line on stderr, prefixed; used for the few things a user must know.
pub fn say(msg: &str) {
    let line = format!("leakhunt: {msg}\n");
    // SAFETY: write(2) on fd 2 with a valid buffer.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

extern "C" fn writer_main(_: *mut core::ffi::c_void) -> *mut core::ffi::c_void {
    Guard::forever();
    // SAFETY: gettid cannot fail.
    WRITER_TID.store(
        unsafe { libc::syscall(libc::SYS_gettid) } as u32,
        Ordering::Release,
    );
    run();
    core::ptr::null_mut()
}

fn run() {
    let mut idle = 0u32;
    loop {
        STATE.lock();
        // SAFETY: lock held.
        let st = unsafe { STATE.get() };
        let n = st.drain(4096);
        st.tick();
        let finished = st.finished;
        STATE.unlock();
        if finished {
            return;
        }
        if n == 0 {
            idle = (idle + 1).min(20);
            std::thread::sleep(Duration::from_micros(50 * idle as u64));
        } else {
            idle = 0;
        }
    }
}

/// How many events ahead the writer fetches live-table slots.
const LOOK_AHEAD: u64 = 12;

impl State {
    /// Processes up to `max` events; stops at an empty queue or a slot still
    /// being filled.
    fn drain(&mut self, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            // The live table is larger than the caches and its slots are
            // found by address: fetched ahead, the misses overlap.
            if let Some((k, a)) = QUEUE.peek(LOOK_AHEAD) {
                if matches!(
                    k,
                    kind::ALLOC | kind::FREE | kind::REALLOC_FREE | kind::REALLOC_DONE
                ) {
                    self.live.prefetch(a);
                }
            }
            match QUEUE.pop() {
                Pop::Event(ev) => {
                    self.handle(&ev);
                    n += 1;
                    if n % 512 == 0 {
                        self.stamp_time();
                    }
                }
                Pop::Empty | Pop::Pending => break,
            }
        }
        n
    }

    /// Time and RSS records, and the periodic flush.
    fn tick(&mut self) {
        self.stamp_time();
        if self.last_rss.elapsed() >= Duration::from_millis(100) {
            self.last_rss = Instant::now();
            if let Some(bytes) = rss_bytes() {
                self.emit(&Record::Rss { bytes });
            }
        }
        let due = self.out.as_ref().is_some_and(|o| {
            o.chunks.pending() >= (1 << 20)
                || (o.chunks.pending() > 0 && o.last_flush.elapsed() >= Duration::from_millis(100))
        });
        if due {
            self.flush();
        }
    }

    fn stamp_time(&mut self) {
        let us = start_time().0.elapsed().as_micros() as u64;
        if us >= self.last_time_us + 100 {
            self.last_time_us = us;
            self.emit(&Record::Time { us });
        }
    }

    fn emit(&mut self, r: &Record) {
        if let Some(o) = self.out.as_mut() {
            o.chunks.push(r);
            if o.chunks.pending() >= (4 << 20) {
                self.flush();
            }
        }
    }

    /// A free of a block made in this file: coded against its slot.
    fn emit_free(&mut self, ptr: u64, block: &Block) {
        if let Some(o) = self.out.as_mut() {
            o.chunks.push_free(ptr, block.slot());
            if o.chunks.pending() >= (4 << 20) {
                self.flush();
            }
        }
    }

    /// Where the next allocation's address goes in its thread's history.
    fn next_alloc_slot(&self) -> u16 {
        self.out.as_ref().map_or(0, |o| o.chunks.next_alloc_slot())
    }

    fn flush(&mut self) {
        let Some(o) = self.out.as_mut() else { return };
        o.last_flush = Instant::now();
        let bytes = o.chunks.take_chunk();
        if bytes.is_empty() {
            return;
        }
        if file_id(o.fd) != Some(o.id) {
            // The program closed our descriptor (daemons close every one,
            // `close_range`, `dup2` over it), and the number may be one of
            // its own files now: never touch it again. Our file is opened
            // anew by its path, appending, if it still is the same file.
            match o.reopen.as_deref().and_then(|p| open_again(p, o.id)) {
                Some(fd) => o.fd = fd,
                None => {
                    let path = o.path.clone();
                    say(&format!(
                        "the program closed the trace file {path} and it cannot be opened again; recording is off"
                    ));
                    self.out = None;
                    self.stop_recording();
                    return;
                }
            }
        }
        if let Err(e) = write_all(o.fd, bytes) {
            say(&format!(
                "cannot write the trace {}: {e}; recording is off",
                o.path
            ));
            self.stop_recording();
        }
    }

    fn stop_recording(&mut self) {
        if let Some(o) = self.out.take() {
            // SAFETY: our own fd.
            unsafe { libc::close(o.fd) };
        }
        RECORDING.store(false, Ordering::Relaxed);
        // Nobody will drain the queue any more: producers must not wait for it.
        WRITER_PID.store(0, Ordering::Relaxed);
        self.finished = true;
    }

    fn open(&mut self, start: FileStart) {
        let pid = getpid();
        let (path, fd) = match crate::output::create(pid) {
            Ok(v) => v,
            Err(msg) => {
                say(&format!("{msg}; recording is off"));
                self.stop_recording();
                return;
            }
        };
        let fd = high_fd(fd);
        let Some(id) = file_id(fd) else {
            say(&format!("cannot stat the trace {path}; recording is off"));
            self.stop_recording();
            return;
        };
        let mut chunks = ChunkWriter::default();
        let header = leakhunt_format::file_header();
        if let Err(e) = write_all(fd, &header) {
            say(&format!(
                "cannot write the trace {path}: {e}; recording is off"
            ));
            // SAFETY: our own fd.
            unsafe { libc::close(fd) };
            self.stop_recording();
            return;
        }
        let (_, wall) = start_time();
        let argv = std::fs::read("/proc/self/cmdline")
            .map(|b| {
                b.split(|&c| c == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let exe = std::fs::read_link("/proc/self/exe")
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let origin = match start {
            FileStart::Fresh => Origin::Start,
            FileStart::Forked { parent_pid } => Origin::Fork { parent_pid },
        };
        chunks.push(&Record::Process(ProcessInfo {
            pid,
            // SAFETY: getppid cannot fail.
            ppid: unsafe { libc::getppid() } as u32,
            origin,
            start_unix_ns: wall,
            exe,
            argv,
            recorder: env!("CARGO_PKG_VERSION").to_string(),
        }));
        let reopen = std::env::current_dir()
            .ok()
            .and_then(|d| CString::new(d.join(&path).into_os_string().into_encoded_bytes()).ok());
        self.out = Some(Output {
            fd,
            id,
            path,
            reopen,
            chunks,
            last_flush: Instant::now(),
        });
        self.last_tid = 0;
        self.last_time_us = 0;
        self.stamp_time();
        // A new file knows no stack nodes yet.
        self.new_epoch(true);
        for m in self.modules.clone() {
            self.emit(&Record::Module(m));
        }
        if let Some((version, frames)) = crate::python::found() {
            let allocator = crate::python::allocator();
            self.emit(&Record::Python {
                version,
                frames,
                allocator,
            });
        }
        for c in std::mem::take(&mut self.codes) {
            self.emit(&Record::PyCode(c.clone()));
            self.codes.push(c);
        }
        self.counts = Counts::default();
        self.verdicts.clear();
        if let FileStart::Forked { .. } = start {
            let mut blocks: Vec<(u64, Block)> = self.live.iter().collect();
            blocks.sort_unstable_by_key(|&(p, _)| p);
            for (ptr, b) in blocks {
                let stack = self.node_of(b.stack);
                self.counts.live(b.size(), self.last_time_us);
                self.emit(&Record::Inherited {
                    ptr,
                    size: b.size(),
                    stack,
                });
            }
        }
        self.flush();
    }

    /// Forgets which stacks have nodes: after a module unload (addresses may
    /// mean new code) and, with `new_file`, when node ids start over.
    fn new_epoch(&mut self, new_file: bool) {
        self.epoch += 1;
        self.trie.clear();
        if new_file {
            self.next_node = 1;
        }
    }

    /// The trie node of a stack in the current file, emitting nodes as needed.
    ///
    /// A new stack usually shares all but its innermost frames with one
    /// already known (Python stacks differ in the line of the innermost
    /// frame): nodes are found by the hash of their whole path from the
    /// root, so the deepest known node is found with a probe or two from the
    /// inner end instead of one probe per frame from the root.
    fn node_of(&mut self, hash: u64) -> u64 {
        let epoch = self.epoch;
        let Some(s) = self.stacks.get(&hash) else {
            return 0;
        };
        if s.epoch == epoch {
            return s.node;
        }
        // paths[i]: the path hash of the node for ips[i] (innermost first).
        let n = s.ips.len();
        let mut paths = [0u64; crate::stack::MAX_DEPTH];
        let mut h = 0x6a09_e667_f3bc_c908u64;
        for (i, &ip) in s.ips.iter().enumerate().rev() {
            h = (h.rotate_left(23) ^ ip).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (h >> 29);
            paths[i.min(crate::stack::MAX_DEPTH - 1)] = h | 1;
        }
        let n = n.min(crate::stack::MAX_DEPTH);
        // The deepest node already known, and where the new ones start.
        let (mut parent, mut next) = (0u64, n);
        if let Some((i, &node)) = paths[..n]
            .iter()
            .enumerate()
            .find_map(|(i, p)| self.trie.get(p).map(|node| (i, node)))
        {
            parent = node;
            next = i;
        }
        let s = self.stacks.get(&hash).expect("looked up above");
        let new: Vec<u64> = s.ips[..next].to_vec();
        for i in (0..next).rev() {
            let node = self.next_node;
            self.next_node += 1;
            self.trie.insert(paths[i], node);
            self.emit(&Record::StackNode { parent, ip: new[i] });
            parent = node;
        }
        let s = self.stacks.get_mut(&hash).expect("looked up above");
        s.node = parent;
        s.epoch = epoch;
        parent
    }

    fn thread(&mut self, tid: u32) {
        if tid != self.last_tid {
            self.last_tid = tid;
            self.emit(&Record::Thread { tid });
        }
    }

    fn alloc(&mut self, tid: u32, ptr: u64, size: u64, hash: u64, func: u64) {
        self.thread(tid);
        let stack = self.node_of(hash);
        let func = AllocFn::from_u8(func as u8).unwrap_or(AllocFn::Malloc);
        let slot = self.next_alloc_slot();
        if let Some(old) = self.live.insert(ptr, Block::new(size, hash, func, slot)) {
            // The allocator handed out an address we still hold live: its free
            // went unseen. Record it as freed, and count the anomaly.
            self.anomalies += 1;
            self.counts.free(old.size());
            self.emit(&Record::Free { ptr });
        }
        self.counts.alloc(size, func, self.last_time_us);
        self.emit(&Record::Alloc {
            ptr,
            size,
            stack,
            func,
        });
    }

    fn free(&mut self, tid: u32, ptr: u64) -> Option<Block> {
        let b = self.live.remove(ptr);
        if let Some(block) = b {
            self.thread(tid);
            self.counts.free(block.size());
            self.emit_free(ptr, &block);
            if !self.code_ids.is_empty() && self.code_ids.remove(&ptr).is_some() {
                // The next code object at this address is another one.
                crate::python::forget_code(ptr);
            }
        } else {
            self.unknown_frees += 1;
        }
        b
    }

    fn python_code(&mut self, ev: &Event) {
        let name_len = (ev.d & 0xffff) as usize;
        let file_len = (ev.d >> 16 & 0xffff) as usize;
        let table_len = (ev.d >> 32) as usize;
        let pending = PendingCode {
            address: ev.b,
            code: PyCode {
                id: ev.a,
                name: String::new(),
                file: String::new(),
                first_line: ev.c as u32,
                linetable_format: (ev.c >> 32) as u8,
                linetable: Vec::new(),
            },
            name_len,
            file_len,
            table_len,
            bytes: Vec::with_capacity(name_len + file_len + table_len),
        };
        let done = pending.total() == 0;
        self.partial_code.insert(ev.tid, pending);
        if done {
            self.finish_code(ev.tid);
        }
    }

    fn python_bytes(&mut self, ev: &Event) {
        let Some(p) = self.partial_code.get_mut(&ev.tid) else {
            return;
        };
        let want = p.total() - p.bytes.len();
        let mut piece = [0u8; 24];
        piece[..8].copy_from_slice(&ev.a.to_le_bytes());
        piece[8..16].copy_from_slice(&ev.b.to_le_bytes());
        piece[16..].copy_from_slice(&ev.c.to_le_bytes());
        p.bytes.extend_from_slice(&piece[..want.min(24)]);
        if p.bytes.len() >= p.total() {
            self.finish_code(ev.tid);
        }
    }

    fn finish_code(&mut self, tid: u32) {
        let Some(mut p) = self.partial_code.remove(&tid) else {
            return;
        };
        let (name, rest) = p.bytes.split_at(p.name_len);
        let (file, table) = rest.split_at(p.file_len);
        p.code.name = String::from_utf8_lossy(name).into_owned();
        p.code.file = String::from_utf8_lossy(file).into_owned();
        p.code.linetable = table.to_vec();
        self.code_ids.insert(p.address, p.code.id);
        self.emit(&Record::PyCode(p.code.clone()));
        self.codes.push(p.code);
    }

    fn handle(&mut self, ev: &Event) {
        match ev.kind {
            kind::ALLOC => self.alloc(ev.tid, ev.a, ev.b, ev.c, ev.d),
            kind::FREE => {
                self.free(ev.tid, ev.a);
            }
            kind::REALLOC_FREE => {
                // Held back: written only once the realloc's outcome is known.
                let b = self.live.remove(ev.a);
                self.realloc_stash.insert(ev.tid, (ev.a, b));
            }
            kind::REALLOC_DONE => {
                let Some((old, b)) = self.realloc_stash.remove(&ev.tid) else {
                    return;
                };
                if b.is_none() {
                    self.unknown_frees += 1;
                }
                if ev.a == 0 {
                    // realloc(p, 0) freed p.
                    if let Some(block) = b {
                        self.thread(ev.tid);
                        self.counts.free(block.size());
                        self.emit_free(old, &block);
                    }
                    return;
                }
                match b {
                    Some(block) => {
                        self.thread(ev.tid);
                        let stack = self.node_of(ev.c);
                        let func = AllocFn::Realloc;
                        // The model frees the old block before it looks at
                        // the new address.
                        self.counts.free(block.size());
                        let slot = self.next_alloc_slot();
                        let new = Block::new(ev.b, ev.c, func, slot);
                        if let Some(prev) = self.live.insert(ev.a, new) {
                            self.anomalies += 1;
                            self.counts.free(prev.size());
                            self.emit(&Record::Free { ptr: ev.a });
                        }
                        self.counts.alloc(ev.b, func, self.last_time_us);
                        self.emit(&Record::Realloc {
                            old_ptr: old,
                            ptr: ev.a,
                            size: ev.b,
                            stack,
                        });
                    }
                    // The old block was never seen: this is an allocation to us.
                    None => self.alloc(ev.tid, ev.a, ev.b, ev.c, ev.d),
                }
            }
            kind::REALLOC_FAILED => {
                if let Some((old, Some(b))) = self.realloc_stash.remove(&ev.tid) {
                    self.live.insert(old, b);
                }
            }
            kind::STACK_BEGIN => {
                let depth = (ev.b as usize).min(crate::stack::MAX_DEPTH);
                let shared = (ev.c as usize).min(depth);
                self.partial
                    .insert(ev.tid, (ev.a, depth, shared, Vec::with_capacity(depth)));
                if depth == shared {
                    self.finish_stack(ev.tid);
                }
            }
            kind::STACK_FRAMES => {
                let done = match self.partial.get_mut(&ev.tid) {
                    Some((_, depth, shared, frames)) => {
                        let inner = *depth - *shared;
                        for ip in [ev.a, ev.b, ev.c] {
                            if frames.len() < inner {
                                frames.push(ip);
                            }
                        }
                        frames.len() >= inner
                    }
                    None => false,
                };
                if done {
                    self.finish_stack(ev.tid);
                }
            }
            kind::PY_CODE => self.python_code(ev),
            kind::PY_BYTES => self.python_bytes(ev),
            kind::MMAP => {
                // Read-only or inaccessible mappings hold no pointers worth scanning.
                if (ev.d >> 32) as i32 & libc::PROT_WRITE != 0 {
                    self.unmap(ev.a, ev.b);
                    self.mappings.insert(ev.a, ev.b);
                }
                self.thread(ev.tid);
                let stack = self.node_of(ev.c);
                self.counts.mmaps += 1;
                self.emit(&Record::Mmap {
                    addr: ev.a,
                    len: ev.b,
                    prot: (ev.d >> 32) as u32,
                    flags: ev.d as u32,
                    stack,
                });
            }
            kind::MUNMAP => {
                self.unmap(ev.a, ev.b);
                self.thread(ev.tid);
                self.counts.munmaps += 1;
                self.emit(&Record::Munmap {
                    addr: ev.a,
                    len: ev.b,
                });
            }
            kind::MODULES => {
                // SAFETY: the hook leaked this Box for us and never touches it again.
                let list = unsafe { Box::from_raw(ev.a as *mut Vec<Module>) };
                self.update_modules(*list);
            }
            kind::FLUSH => {
                self.stamp_time();
                self.flush();
                ACKED.fetch_max(ev.c, Ordering::Release);
            }
            kind::END => {
                let reason = match ev.a {
                    end::EXIT => EndReason::Exit { code: ev.b as i32 },
                    end::QUICK_EXIT => EndReason::QuickExit { code: ev.b as i32 },
                    end::ABORT => EndReason::Abort,
                    _ => EndReason::Exec,
                };
                self.stamp_time();
                let info = EndInfo {
                    reason,
                    anomalies: self.anomalies,
                    unknown_frees: self.unknown_frees,
                    dropped: DROPPED.load(Ordering::Relaxed),
                };
                if reason != EndReason::Exec {
                    self.summary();
                }
                self.emit(&Record::End(info));
                self.flush();
                if reason != EndReason::Exec {
                    self.stop_recording();
                }
                ACKED.fetch_max(ev.c, Ordering::Release);
            }
            _ => {}
        }
    }

    /// What a summary needs without a replay: the totals, and every block
    /// live now with its stack (a `leakhunt run` summary reads these and
    /// skips the allocation records).
    fn summary(&mut self) {
        let mut blocks: Vec<(u64, Block)> = self.live.iter().collect();
        blocks.sort_unstable_by_key(|&(p, _)| p);
        for (ptr, b) in blocks {
            let stack = self.node_of(b.stack);
            self.emit(&Record::LiveAtEnd {
                ptr,
                size: b.size(),
                stack,
                func: b.func(),
                verdict: self.verdicts.get(&ptr).copied(),
            });
        }
        let c = &self.counts;
        let by_function = c
            .by_function
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .filter_map(|(f, &n)| Some((AllocFn::from_u8(f as u8)?, n)))
            .collect();
        let totals = Record::Totals(leakhunt_format::ImageTotals {
            allocations: c.allocations,
            frees: c.frees,
            allocated_bytes: c.allocated_bytes,
            peak_bytes: c.peak_bytes,
            peak_time_us: c.peak_time_us,
            live_blocks: self.live.len() as u64,
            live_bytes: c.live_bytes,
            mmaps: c.mmaps,
            munmaps: c.munmaps,
            by_function,
        });
        self.emit(&totals);
    }

    /// Forgets [addr, addr+len) of the program's mappings, splitting any that
    /// it cuts.
    fn unmap(&mut self, addr: u64, len: u64) {
        let end = addr.saturating_add(len);
        let hit: Vec<(u64, u64)> = self
            .mappings
            .range(..end)
            .filter(|(&a, &l)| a + l > addr)
            .map(|(&a, &l)| (a, l))
            .collect();
        for (a, l) in hit {
            self.mappings.remove(&a);
            if a < addr {
                self.mappings.insert(a, addr - a);
            }
            if a + l > end {
                self.mappings.insert(end, a + l - end);
            }
        }
    }

    /// The modules mapped now.
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }

    /// The program's own writable mappings: (start, length).
    pub fn app_mappings(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.mappings.iter().map(|(&a, &l)| (a, l))
    }

    /// A record from the exit scan.
    pub fn emit_record(&mut self, r: &Record) {
        if let Record::LeakScan(_) = r {
            self.verdicts.clear();
        }
        if let Some((ptr, v)) = r.leak_verdict() {
            self.verdicts.insert(ptr, v);
        }
        self.emit(r);
    }

    fn finish_stack(&mut self, tid: u32) {
        let Some((hash, depth, shared, mut frames)) = self.partial.remove(&tid) else {
            return;
        };
        let last = self.last_def.entry(tid).or_default();
        let from = last.len().saturating_sub(shared);
        frames.extend_from_slice(&last[from..]);
        frames.truncate(depth);
        last.clear();
        last.extend_from_slice(&frames);
        self.stacks.entry(hash).or_insert(Stack {
            ips: frames.into_boxed_slice(),
            node: 0,
            epoch: 0,
        });
    }

    fn update_modules(&mut self, now: Vec<Module>) {
        let same = |a: &Module, b: &Module| a.base == b.base && a.path == b.path;
        let gone: Vec<u32> = self
            .modules
            .iter()
            .filter(|m| !now.iter().any(|n| same(m, n)))
            .map(|m| m.id)
            .collect();
        for id in &gone {
            self.emit(&Record::ModuleUnload { id: *id });
        }
        self.modules.retain(|m| !gone.contains(&m.id));
        if !gone.is_empty() {
            // Addresses of unloaded code may be reused by the next library:
            // stacks defined from now on must be symbolized with the new map.
            self.new_epoch(false);
        }
        for mut m in now {
            if !self.modules.iter().any(|o| same(o, &m)) {
                m.id = self.next_module_id;
                self.next_module_id += 1;
                self.emit(&Record::Module(m.clone()));
                self.modules.push(m);
            }
        }
    }
}

fn write_all(fd: i32, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: writes from a valid buffer to our own fd.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// Moves our descriptor out of the low range that programs reuse and close in bulk.
fn high_fd(fd: i32) -> i32 {
    // SAFETY: fcntl/close on our own descriptor.
    unsafe {
        let hi = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 700);
        if hi < 0 {
            return fd;
        }
        libc::close(fd);
        hi
    }
}

/// Our trace file, opened again for appending: only if `path` still names
/// the file we created (no symlink followed), on a high descriptor.
fn open_again(path: &CStr, id: (u64, u64)) -> Option<i32> {
    // SAFETY: a NUL-terminated path; the descriptor is ours.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    if file_id(fd) != Some(id) {
        // SAFETY: the descriptor just opened above.
        unsafe { libc::close(fd) };
        return None;
    }
    Some(high_fd(fd))
}

fn file_id(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: fstat writes into a zeroed, properly sized struct.
    unsafe {
        let mut st: libc::stat = core::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some((st.st_dev, st.st_ino))
    }
}

fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf cannot fail for _SC_PAGESIZE.
    Some(pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64)
}

// ---- fork ----

/// Before fork: everything recorded so far is written, and the writer is
/// parked between two batches so the child inherits consistent state.
pub extern "C" fn before_fork() {
    let Some(_g) = Guard::internal() else { return };
    if WRITER_PID.load(Ordering::Relaxed) == getpid() {
        request(kind::FLUSH, 0, 0, Duration::from_secs(2));
        STATE.lock();
        FORK_LOCKED.store(true, Ordering::Relaxed);
    }
}

static FORK_LOCKED: AtomicBool = AtomicBool::new(false);

pub extern "C" fn after_fork_parent() {
    if FORK_LOCKED.swap(false, Ordering::Relaxed) {
        STATE.unlock();
    }
}

/// In the child: the only thread. Apply what other threads completed before
/// the fork (their memory came along), drop what they left half done, and
/// start a new writer on a new trace that begins with the inherited blocks.
pub extern "C" fn after_fork_child() {
    guard::forget_tid();
    crate::stack::forget_last_stack();
    if !FORK_LOCKED.swap(false, Ordering::Relaxed) {
        // The parent was not recording (or had no writer): neither is the child.
        WRITER_PID.store(0, Ordering::Relaxed);
        return;
    }
    let parent_pid = WRITER_PID.load(Ordering::Relaxed);
    // SAFETY: the lock is held (taken in before_fork, copied into the child).
    let st = unsafe { STATE.get() };
    let had_output = st.out.is_some() && !st.finished;
    // The parent's file stays the parent's: close our copy without writing.
    if let Some(o) = st.out.take() {
        // SAFETY: our copy of the parent's fd.
        unsafe { libc::close(o.fd) };
    }
    while let Pop::Event(ev) = QUEUE.pop() {
        st.handle(&ev);
    }
    QUEUE.reset();
    st.partial.clear();
    st.last_def.clear();
    st.partial_code.clear();
    st.realloc_stash.clear();
    if had_output {
        st.anomalies = 0;
        st.unknown_frees = 0;
        st.finished = false;
        st.open(FileStart::Forked { parent_pid });
    }
    STATE.unlock();
    if had_output {
        spawn();
    } else {
        WRITER_PID.store(0, Ordering::Relaxed);
    }
}
