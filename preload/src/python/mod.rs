//! Python frames in allocation stacks, read from the allocating thread's own
//! CPython structures (never through the C API, never taking the GIL).
//!
//! Each C-level activation of `_PyEval_EvalFrameDefault` in the native stack
//! runs one or more Python frames, up to an entry frame; the stack we record
//! puts those frames (innermost first) where the activation stands, so the
//! native frames of a C extension stay above the Python line that called it.
//! A Python frame is a tagged stack entry (`leakhunt_format::python_frame`):
//! a code object id and an instruction offset. Each code object is described
//! to the writer once (name, file, first line, line table); the CLI turns
//! offsets into lines.
//!
//! Runs on the hot path, inside the program: every read goes through `safe`
//! (a bad pointer reads as "no Python frames", never as a fault), nothing
//! here allocates or locks, and a version without a layout table is not read.

pub mod alloc;
mod layout;
pub mod safe;

use crate::queue::{kind, Event};
use core::cell::UnsafeCell;
use core::ffi::{c_void, CStr};
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use layout::{Entry, FrameLink, Layout};
use leakhunt_format::python_frame;
use safe::Reader;

/// What detection found: where the interpreter's state and code live.
struct Runtime {
    layout: Layout,
    /// `&_PyRuntime`.
    runtime: usize,
    /// `_PyEval_EvalFrameDefault`'s code, `[lo, hi)`.
    eval_lo: usize,
    eval_hi: usize,
    /// `&PyCode_Type`.
    code_type: usize,
}

const UNKNOWN: u8 = 0;
const READY: u8 = 1;
/// Looked at and found nothing we can read (no Python, or a version we lack).
const NONE: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
/// `Py_Version` of the interpreter found (0: none), whether or not we read it.
static VERSION: AtomicU64 = AtomicU64::new(0);

/// The interpreter found, for the trace: its version (`3.11.7`) and whether
/// its frames are read.
pub fn found() -> Option<(String, bool)> {
    let v = VERSION.load(Ordering::Acquire);
    if STATE.load(Ordering::Acquire) == UNKNOWN {
        return None;
    }
    let version = if v == 0 {
        "older than 3.11".to_string()
    } else {
        format!("{}.{}.{}", v >> 24 & 0xff, v >> 16 & 0xff, v >> 8 & 0xff)
    };
    Some((version, runtime().is_some()))
}
/// At start, in a Python program: see every object without changing its
/// allocator (`alloc`). Not after a dlopen: an interpreter already running
/// holds blocks its allocators gave out before the wrappers.
/// Needs `_PyRuntime` (3.7+): 3.6 resets its allocators at start anyway.
pub fn install_allocators() {
    if STATE.load(Ordering::Acquire) != UNKNOWN {
        alloc::install(VERSION.load(Ordering::Acquire));
    }
}

/// The object allocator, as the trace records it: `PYTHONMALLOC`'s value,
/// `pymalloc` when its objects are not seen, `pymalloc-recorded` when the
/// allocator wrappers see each one.
pub fn allocator() -> String {
    if alloc::installed() {
        return "pymalloc-recorded".into();
    }
    match std::env::var("PYTHONMALLOC") {
        Ok(v) => v,
        Err(_) if alloc::dev_mode() => "debug".into(),
        Err(_) => "pymalloc".into(),
    }
}

struct RuntimeCell(UnsafeCell<Option<Runtime>>);
// SAFETY: written once by `detect` before STATE becomes READY (release),
// read only after STATE is seen READY (acquire); never written again.
unsafe impl Sync for RuntimeCell {}
static RUNTIME: RuntimeCell = RuntimeCell(UnsafeCell::new(None));

#[inline(always)]
fn runtime() -> Option<&'static Runtime> {
    if STATE.load(Ordering::Acquire) != READY {
        return None;
    }
    // SAFETY: see RuntimeCell.
    unsafe { (*RUNTIME.0.get()).as_ref() }
}

/// glibc's `dladdr1` flag for the symbol's ELF entry (not in the libc crate).
const RTLD_DL_SYMENT: libc::c_int = 1;

/// Resolves a dynamic symbol of the program or of a loaded libpython.
unsafe fn symbol(name: &CStr) -> Option<(usize, usize)> {
    let mut p = crate::real::dlsym(libc::RTLD_DEFAULT, name.as_ptr());
    if p.is_null() {
        // An embedding program may have loaded libpython RTLD_LOCAL.
        for m in crate::modules::scan() {
            if !m
                .path
                .rsplit('/')
                .next()
                .unwrap_or("")
                .starts_with("libpython")
            {
                continue;
            }
            let Ok(path) = std::ffi::CString::new(m.path) else {
                continue;
            };
            let h = libc::dlopen(path.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD);
            if !h.is_null() {
                p = crate::real::dlsym(h, name.as_ptr());
                libc::dlclose(h);
            }
            if !p.is_null() {
                break;
            }
        }
    }
    if p.is_null() {
        return None;
    }
    let mut info: libc::Dl_info = core::mem::zeroed();
    let mut sym: *mut c_void = core::ptr::null_mut();
    let size = if libc::dladdr1(p, &mut info, &mut sym, RTLD_DL_SYMENT) != 0 && !sym.is_null() {
        (*(sym as *const libc::Elf64_Sym)).st_size as usize
    } else {
        0
    };
    Some((p as usize, size))
}

/// `3.8` from the file that defines `addr` (`libpython3.8.so.1.0`,
/// `python3.8`): how an interpreter without `Py_Version` is named.
fn module_version(addr: usize) -> Option<String> {
    // SAFETY: called from detection, not from a signal handler.
    let (_, name) = unsafe { crate::real::object_of(addr as *const c_void) }?;
    let path = name.to_string_lossy();
    let file = path.rsplit('/').next()?;
    let rest = file
        .strip_prefix("lib")
        .unwrap_or(file)
        .strip_prefix("python")?;
    let v: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let v = v.trim_end_matches('.');
    (!v.is_empty()).then(|| v.to_string())
}

/// Looks for a CPython runtime in the process (at start and after each
/// `dlopen`). Calls the loader: never under a lock of ours; allocates: under
/// the Guard.
pub fn detect() {
    if STATE.load(Ordering::Acquire) != UNKNOWN {
        return;
    }
    // SAFETY: dlsym/dladdr1 on NUL-terminated names; results checked.
    let Some((runtime, _)) = (unsafe { symbol(c"_PyRuntime") }) else {
        // Not (yet) a Python process; a later dlopen may bring libpython.
        return;
    };
    STATE.store(NONE, Ordering::Release);
    // SAFETY: as above.
    let version = unsafe { symbol(c"Py_Version") };
    let Some((version, _)) = version else {
        let name = module_version(runtime).unwrap_or_else(|| "older than 3.11".into());
        crate::writer::say(&format!(
            "Python {name} has no frame layout in this leakhunt (3.11 to 3.14 have): stacks show native frames only"
        ));
        return;
    };
    // SAFETY: Py_Version is a `const unsigned long` in libpython's rodata.
    let v = unsafe { *(version as *const u64) };
    VERSION.store(v, Ordering::Release);
    let (major, minor) = ((v >> 24) as u8, (v >> 16) as u8);
    let Some(layout) = layout::for_version(major, minor) else {
        crate::writer::say(&format!(
            "Python {major}.{minor} has no frame layout in this leakhunt: stacks show native frames only"
        ));
        return;
    };
    if (major, minor) >= (3, 13) {
        // 3.13+ describe themselves at the start of `_PyRuntime`
        // (`_Py_DebugOffsets`): a free-threaded build has another layout.
        // SAFETY: _PyRuntime is a static of at least this size in 3.13+.
        let (cookie, debug_version, free_threaded) = unsafe {
            let p = runtime as *const u64;
            (*(p as *const [u8; 8]), *p.add(1), *p.add(2))
        };
        if &cookie != b"xdebugpy" || debug_version >> 16 != v >> 16 || free_threaded != 0 {
            crate::writer::say(&format!(
                "Python {major}.{minor}: {}: stacks show native frames only",
                if free_threaded != 0 {
                    "free-threaded builds are not supported"
                } else {
                    "its debug offsets do not match the layout table"
                }
            ));
            return;
        }
    }
    // SAFETY: as above.
    let (eval, code_type) =
        unsafe { (symbol(c"_PyEval_EvalFrameDefault"), symbol(c"PyCode_Type")) };
    let (Some((eval_lo, eval_size)), Some((code_type, _))) = (eval, code_type) else {
        crate::writer::say(&format!(
            "Python {major}.{minor}: the eval loop or PyCode_Type is not exported: stacks show native frames only"
        ));
        return;
    };
    safe::find_break();
    if !safe::available() {
        crate::writer::say(
            "process_vm_readv is not permitted here: Python frames cannot be read safely, stacks show native frames only",
        );
        return;
    }
    // SAFETY: STATE is NONE: no reader looks at RUNTIME until it is READY.
    unsafe {
        *RUNTIME.0.get() = Some(Runtime {
            layout: *layout,
            runtime,
            eval_lo,
            // A stripped symbol size of 0: its return addresses cannot be told apart.
            eval_hi: eval_lo + eval_size.max(1),
            code_type,
        });
    }
    STATE.store(READY, Ordering::Release);
}

impl Runtime {
    /// This thread's own thread state, if it has one and it is safe to read.
    fn thread_state(&self, r: &mut Reader) -> Option<usize> {
        let l = &self.layout;
        let tss = self.runtime + l.runtime_tss;
        if r.u32_at(tss)? != 1 {
            return None;
        }
        let key = r.u32_at(tss + 4)?;
        // SAFETY: pthread_getspecific neither locks nor allocates; an invalid
        // key yields NULL.
        let tstate = unsafe { libc::pthread_getspecific(key) } as usize;
        if tstate == 0 {
            return None;
        }
        // Once finalization began, other threads' states may be freed memory.
        let finalizing = r.word(self.runtime + l.runtime_finalizing)?;
        if finalizing != 0 && finalizing != tstate {
            return None;
        }
        Some(tstate)
    }

    fn current_frame(&self, r: &mut Reader, tstate: usize) -> Option<usize> {
        match self.layout.frame_link {
            FrameLink::ViaCFrame {
                tstate_cframe,
                current_frame,
            } => {
                let cframe = r.word(tstate + tstate_cframe)?;
                r.word(cframe + current_frame)
            }
            FrameLink::Direct {
                tstate_current_frame,
            } => r.word(tstate + tstate_current_frame),
        }
    }
}

/// How deep a frame chain is followed at most (a cycle in a damaged chain
/// must end).
const MAX_WALK: usize = 512;

/// `native` with the Python frames of each eval-loop activation in its
/// place, written to `out`; `None` when there is nothing to splice (not a
/// Python thread, or no activation in the stack). Under the Guard.
///
/// Runs on every allocation of a Python thread: the native frames between
/// activations go over in slices (the eval loop's bounds held in registers),
/// not one bounds-checked store per frame.
#[inline]
pub fn splice(
    native: &[usize],
    out: &mut [usize],
    tid: u32,
    push: &impl Fn(&Event),
) -> Option<usize> {
    let rt = runtime()?;
    let (lo, hi) = (rt.eval_lo, rt.eval_hi);
    // A return address: the call is the byte before it.
    let is_eval = move |ip: &usize| *ip > lo && *ip <= hi;
    let first = native.iter().position(is_eval)?;
    safe::with(|r| {
        let tstate = rt.thread_state(r)?;
        let frame = rt.current_frame(r, tstate).unwrap_or(0);
        let generation = CODE_GENERATION.load(Ordering::Relaxed);
        let memo = alloc::installed().then(|| FRAMES.with(|m| m.0.get()));
        let mut w = Walk {
            rt,
            r,
            frame,
            walked: 0,
            out,
            n: 0,
            tid,
            push,
            memo,
            generation,
        };
        let (mut rest, mut at) = (native, first);
        loop {
            w.emit_all(&rest[..at]);
            let ip = rest[at];
            if w.frame == 0 || !w.activation() {
                w.emit(ip);
            }
            rest = &rest[at + 1..];
            match rest.iter().position(is_eval) {
                Some(i) => at = i,
                None => break,
            }
        }
        w.emit_all(rest);
        // The native stack ended early (an unwinding gap): the outer Python
        // frames still say where the program was.
        while w.frame != 0 && w.n < w.out.len() && w.activation() {}
        Some(w.n)
    })
}

/// One walk down a thread's frame chain, alongside its native stack.
struct Walk<'a, 'r, P: Fn(&Event)> {
    rt: &'a Runtime,
    r: &'a mut Reader<'r>,
    /// The next interpreter frame to emit (0: the chain ended).
    frame: usize,
    walked: usize,
    out: &'a mut [usize],
    n: usize,
    tid: u32,
    push: &'a P,
    /// This thread's remembered frame entries (when the allocator wrappers
    /// see code objects freed), and the generation they must carry.
    memo: Option<*mut [Remembered; FRAME_MEMO]>,
    generation: u64,
}

impl<P: Fn(&Event)> Walk<'_, '_, P> {
    fn emit(&mut self, v: usize) {
        if self.n < self.out.len() {
            self.out[self.n] = v;
            self.n += 1;
        }
    }

    fn emit_all(&mut self, vs: &[usize]) {
        let k = vs.len().min(self.out.len() - self.n);
        self.out[self.n..self.n + k].copy_from_slice(&vs[..k]);
        self.n += k;
    }

    /// Emits the frames one eval-loop activation runs; whether there were any.
    fn activation(&mut self) -> bool {
        let l = &self.rt.layout;
        let before = self.n;
        while self.frame != 0 && self.walked < MAX_WALK {
            self.walked += 1;
            let f = self.frame;
            let Some(previous) = self.r.word(f + l.frame_previous) else {
                self.frame = 0;
                break;
            };
            self.frame = previous;
            let entry = match l.entry {
                Entry::Flag { offset } => self.r.byte(f + offset).unwrap_or(1) != 0,
                Entry::Owner { offset, cstack } => {
                    if self.r.byte(f + offset).is_some_and(|o| o >= cstack) {
                        // The shim below this activation's frames (3.14 also owns
                        // frames by the C stack above it: CPython tests `>= 3`).
                        if self.n > before {
                            break;
                        }
                        continue;
                    }
                    false
                }
            };
            match self.frame_entry(f) {
                Some(e) => self.emit(e),
                None => {
                    // Not a frame running a code object: the chain is
                    // damaged (or being rebuilt); nothing past it is trusted.
                    self.frame = 0;
                    break;
                }
            }
            if entry {
                break;
            }
        }
        self.n > before
    }
}

impl<P: Fn(&Event)> Walk<'_, '_, P> {
    /// The stack entry of one interpreter frame: its code object and offset.
    fn frame_entry(&mut self, frame: usize) -> Option<usize> {
        let (rt, l) = (self.rt, &self.rt.layout);
        let r = &mut *self.r;
        let instr = r.word(frame + l.frame_instr)?;
        // The instruction pointer lies inside its code object, so while no
        // code object has been freed since it was remembered, it names the
        // same code and offset: the entry needs no more reads.
        let generation = self.generation;
        let memo = self.memo.map(|m| {
            let i = (instr >> 1 ^ instr >> 9) & (FRAME_MEMO - 1);
            // SAFETY: this thread's memo; the Guard rules out reentrancy.
            unsafe { &mut (*m)[i] as *mut Remembered }
        });
        if let Some(m) = memo {
            // SAFETY: as above; the pointer is to this thread's memo.
            let m = unsafe { &*m };
            if m.instr == instr && m.generation == generation {
                return Some(m.entry);
            }
        }
        let code = r.word(frame + l.frame_code)? & !(l.code_tag_mask as usize);
        // Only a real code object (3.13+ frames may run other executables).
        if r.word(code + 8)? != rt.code_type {
            return None;
        }
        let id = self.intern(code).unwrap_or(0);
        // A frame that has not started yet points one unit before its first.
        let offset = instr.saturating_sub(code + l.code_adaptive) / 2;
        let entry = python_frame(id, offset as u64) as usize;
        if let (Some(m), true) = (memo, id != 0 && instr > code) {
            // SAFETY: as above.
            unsafe {
                *m = Remembered {
                    instr,
                    generation,
                    entry,
                }
            };
        }
        Some(entry)
    }
}

/// Frame entries remembered per thread (direct-mapped by instruction
/// pointer).
const FRAME_MEMO: usize = 128;

#[derive(Clone, Copy)]
struct Remembered {
    instr: usize,
    generation: u64,
    entry: usize,
}

struct FrameMemo(UnsafeCell<[Remembered; FRAME_MEMO]>);
thread_local! {
    static FRAMES: FrameMemo = const {
        FrameMemo(UnsafeCell::new(
            [Remembered { instr: 0, generation: 0, entry: 0 }; FRAME_MEMO],
        ))
    };
}

/// Bumped whenever a code object is freed (the allocator wrappers see every
/// free): remembered frame entries of older generations are not trusted.
static CODE_GENERATION: AtomicU64 = AtomicU64::new(1);

/// The program frees the object at `p` through a wrapped domain: if it is a
/// code object, no remembered frame entry may outlive it. Code objects are
/// never GC-tracked (3.8 to 3.14), so the block starts with the object
/// header and its type sits at +8, inside any block pymalloc or malloc hands out.
#[inline(always)]
pub fn freeing_object(p: *mut c_void) {
    let Some(rt) = runtime() else { return };
    // SAFETY: `p` is a live block of at least 16 bytes, about to be freed.
    if unsafe { *(p as *const usize).add(1) } == rt.code_type {
        CODE_GENERATION.fetch_add(1, Ordering::Relaxed);
    }
}

// ---- code objects, interned once ----

/// code object address -> id, shared by all threads; lock-free, in `.bss`.
const CODE_SLOTS: usize = 1 << 16;
const PROBES: usize = 64;
const TOMBSTONE: u64 = 1;

struct CodeSlot {
    /// The code object's address; 0 empty, TOMBSTONE freed.
    key: AtomicU64,
    /// `id << 32 | fingerprint`; 0 while the inserting thread is still at it.
    value: AtomicU64,
}

static CODES: [CodeSlot; CODE_SLOTS] = [const {
    CodeSlot {
        key: AtomicU64::new(0),
        value: AtomicU64::new(0),
    }
}; CODE_SLOTS];
static NEXT_CODE_ID: AtomicU64 = AtomicU64::new(1);

fn slot_of(code: usize) -> usize {
    ((code as u64 >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize % CODE_SLOTS
}

/// What distinguishes one code object from another that later got the same
/// address (pymalloc frees do not reach our hooks).
fn fingerprint(rt: &Runtime, r: &mut Reader, code: usize) -> Option<u32> {
    let l = &rt.layout;
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    for off in [l.code_filename, l.code_qualname, l.code_linetable] {
        h = (h ^ r.word(code + off)? as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    h ^= r.u32_at(code + l.code_firstlineno)? as u64;
    let f = (h ^ h >> 32) as u32;
    Some(f.max(1))
}

impl<P: Fn(&Event)> Walk<'_, '_, P> {
    /// The id of a code object, describing it to the writer the first time.
    fn intern(&mut self, code: usize) -> Option<u64> {
        if code == 0 || !code.is_multiple_of(8) {
            return None;
        }
        let fp = fingerprint(self.rt, self.r, code)? as u64;
        let start = slot_of(code);
        let mut free_slot = None;
        for i in 0..PROBES {
            let s = &CODES[(start + i) % CODE_SLOTS];
            let k = s.key.load(Ordering::Acquire);
            if k == code as u64 {
                let v = s.value.load(Ordering::Acquire);
                if v == 0 {
                    // Another thread is describing it right now.
                    return None;
                }
                if v & 0xffff_ffff == fp {
                    return Some(v >> 32);
                }
                // The address now holds another code object.
                let id = self.describe(code)?;
                s.value.store(id << 32 | fp, Ordering::Release);
                return Some(id);
            }
            if k == TOMBSTONE && free_slot.is_none() {
                free_slot = Some(s);
            }
            if k == 0 {
                let s = free_slot.unwrap_or(s);
                let expect = if core::ptr::eq(s, &CODES[(start + i) % CODE_SLOTS]) {
                    0
                } else {
                    TOMBSTONE
                };
                if s.key
                    .compare_exchange(expect, code as u64, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    // Lost a race for the slot: describe it without caching.
                    return self.describe(code);
                }
                s.value.store(0, Ordering::Release);
                let id = self.describe(code);
                match id {
                    Some(id) => s.value.store(id << 32 | fp, Ordering::Release),
                    None => s.key.store(TOMBSTONE, Ordering::Release),
                }
                return id;
            }
        }
        // The table is full of live code objects: describe without caching.
        self.describe(code)
    }
}

/// A freed block was a code object we described: forget it (the writer
/// calls this when it sees the free of an address it knows as code).
pub fn forget_code(code: u64) {
    let start = slot_of(code as usize);
    for i in 0..PROBES {
        let s = &CODES[(start + i) % CODE_SLOTS];
        let k = s.key.load(Ordering::Acquire);
        if k == 0 {
            return;
        }
        if k == code {
            s.value.store(0, Ordering::Release);
            s.key.store(TOMBSTONE, Ordering::Release);
        }
    }
}

/// Longest name and file name sent; longer ones are cut (at a char boundary).
const MAX_STR: usize = 2048;
/// Longest line table sent; lines past it are unknown.
const MAX_LINETABLE: usize = 1 << 16;

struct Scratch(UnsafeCell<[u8; 2 * MAX_STR]>);
thread_local! {
    static TEXT: Scratch = const { Scratch(UnsafeCell::new([0; 2 * MAX_STR])) };
}

impl<P: Fn(&Event)> Walk<'_, '_, P> {
    /// Sends a code object's name, file, first line and line table to the
    /// writer, under a new id.
    fn describe(&mut self, code: usize) -> Option<u64> {
        let (rt, r, tid, push) = (self.rt, &mut *self.r, self.tid, self.push);
        // `frame_entry` checked that this is a code object.
        let l = &rt.layout;
        let name = r.word(code + l.code_qualname)?;
        let file = r.word(code + l.code_filename)?;
        let table = r.word(code + l.code_linetable)?;
        let first_line = r.u32_at(code + l.code_firstlineno)?;
        let table_len = r.word(table + l.bytes_size)?.min(MAX_LINETABLE);
        let table_data = table + l.bytes_data;
        if !r.readable(table_data, table_len) {
            return None;
        }
        TEXT.with(|t| {
            // SAFETY: this thread's scratch; the Guard rules out reentrancy.
            let buf = unsafe { &mut *t.0.get() };
            let (a, b) = buf.split_at_mut(MAX_STR);
            let name_len = utf8_of(rt, r, name, a)?;
            let file_len = utf8_of(rt, r, file, b)?;
            let id = NEXT_CODE_ID.fetch_add(1, Ordering::Relaxed);
            push(&Event {
                kind: kind::PY_CODE,
                tid,
                a: id,
                b: code as u64,
                c: first_line as u64 | (l.linetable_format as u64) << 32,
                d: name_len as u64 | (file_len as u64) << 16 | (table_len as u64) << 32,
            });
            // Then exactly name_len + file_len + table_len bytes, 24 per event.
            let mut out = Packer {
                word: [0; 24],
                fill: 0,
                tid,
                push,
            };
            out.put(&a[..name_len]);
            out.put(&b[..file_len]);
            let mut piece = [0u8; 96];
            let mut pos = 0;
            while pos < table_len {
                let n = (table_len - pos).min(piece.len());
                if !r.copy(table_data + pos, &mut piece[..n]) {
                    piece[..n].fill(0);
                }
                out.put(&piece[..n]);
                pos += n;
            }
            out.finish();
            Some(id)
        })
    }
}

/// Packs a byte stream into PY_BYTES events.
struct Packer<'a, P: Fn(&Event)> {
    word: [u8; 24],
    fill: usize,
    tid: u32,
    push: &'a P,
}

impl<P: Fn(&Event)> Packer<'_, P> {
    fn put(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.word[self.fill] = b;
            self.fill += 1;
            if self.fill == self.word.len() {
                self.send();
            }
        }
    }

    fn send(&mut self) {
        let w = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.word[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        (self.push)(&Event {
            kind: kind::PY_BYTES,
            tid: self.tid,
            a: w(0),
            b: w(1),
            c: w(2),
            d: 0,
        });
        self.word = [0; 24];
        self.fill = 0;
    }

    fn finish(mut self) {
        if self.fill > 0 {
            self.send();
        }
    }
}

/// A `str` object as UTF-8 in `out` (cut to fit); its length.
fn utf8_of(rt: &Runtime, r: &mut Reader, s: usize, out: &mut [u8]) -> Option<usize> {
    let l = &rt.layout;
    let state = r.u32_at(s + l.unicode_state)?;
    let kind = (state >> 2) & 7;
    let compact = state >> 5 & 1 != 0;
    let ascii = state >> 6 & 1 != 0;
    if !compact {
        // A legacy string (its characters elsewhere): rare for code names.
        out[0] = b'?';
        return Some(1);
    }
    let len = r.word(s + l.unicode_length)?;
    let data = s + if ascii {
        l.unicode_ascii_size
    } else {
        l.unicode_compact_size
    };
    let mut n = 0;
    let width = match kind {
        1 => 1,
        2 => 2,
        4 => 4,
        _ => return None,
    };
    let chars = len.min(out.len());
    if !r.readable(data, chars * width) {
        return None;
    }
    for i in 0..chars {
        // SAFETY: `data .. data + chars * width` was checked readable above.
        let cp = unsafe {
            match width {
                1 => *(data as *const u8).add(i) as u32,
                2 => core::ptr::read_unaligned((data as *const u16).add(i)) as u32,
                _ => core::ptr::read_unaligned((data as *const u32).add(i)),
            }
        };
        let mut b = [0u8; 4];
        let e = char::from_u32(cp).unwrap_or('?').encode_utf8(&mut b);
        if n + e.len() > out.len() {
            break;
        }
        out[n..n + e.len()].copy_from_slice(e.as_bytes());
        n += e.len();
    }
    Some(n)
}
