//! The leak scan at normal exit, with memcheck's semantics.
//!
//! Runs from our `on_exit` handler, after every destructor. In order:
//! 1. gather what needs the loader, stdio-free file reads or malloc
//!    (`/proc/self/maps`, the thread list) while every thread still runs;
//! 2. stop every other thread with a real-time signal: its handler saves the
//!    registers and parks — or, if the thread is inside one of our hooks (it
//!    may hold the allocator's lock or a half-pushed queue slot), it parks as
//!    soon as it leaves the hook;
//! 3. release the C runtime's own leftovers as memcheck does (`__libc_freeres`,
//!    `__gnu_cxx::__freeres`), so that a C++ hello world leaks nothing;
//! 4. let the writer drain the queue, then scan the roots and the live blocks
//!    and classify them (`leakhunt_leakcheck`), writing one verdict per block.
//!
//! The other threads stay parked: the process is about to `_exit`, and waking
//! them after freeres would let them touch what was just freed.

mod startup;

use crate::guard::Guard;
use crate::stop;
use crate::writer::{self, STATE};
use core::ffi::c_void;
use core::sync::atomic::Ordering;
use leakhunt_format::{LeakKind, Record, ScanInfo};
use std::time::{Duration, Instant};

#[derive(Clone)]
struct Map {
    lo: u64,
    hi: u64,
    read: bool,
    write: bool,
    exec: bool,
    path: String,
}

fn read_maps() -> Vec<Map> {
    let text = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let path = f.nth(3).unwrap_or("").to_string();
        let Some((lo, hi)) = range.split_once('-') else {
            continue;
        };
        let (Ok(lo), Ok(hi)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16)) else {
            continue;
        };
        let p = perms.as_bytes();
        out.push(Map {
            lo,
            hi,
            read: p.first() == Some(&b'r'),
            write: p.get(1) == Some(&b'w'),
            exec: p.get(2) == Some(&b'x'),
            path,
        });
    }
    out.sort_by_key(|m| m.lo);
    out
}

fn map_of(maps: &[Map], addr: u64) -> Option<&Map> {
    let i = maps.partition_point(|m| m.lo <= addr);
    maps[..i].last().filter(|m| addr < m.hi)
}

/// The loader's size of the static TLS area, surplus included (4096 when
/// the loader does not say). Looked up under the guard, before the world
/// stops: dlsym takes the loader's lock.
fn static_tls_size() -> u64 {
    type Info = unsafe extern "C" fn(*mut usize, *mut usize);
    // SAFETY: dlsym with a NUL-terminated name; the symbol, when present, is
    // ld.so's `void _dl_get_tls_static_info(size_t *, size_t *)`.
    unsafe {
        let p = crate::real::dlsym(libc::RTLD_DEFAULT, c"_dl_get_tls_static_info".as_ptr());
        if p.is_null() {
            return 4096;
        }
        let f: Info = core::mem::transmute(p);
        let (mut size, mut align) = (0usize, 0usize);
        f(&mut size, &mut align);
        size as u64
    }
}

/// memcheck's freeres: the runtimes' own leftovers (stdio buffers, locale
/// data, libstdc++'s emergency pool), to be released through our hooks.
/// Looked up under the guard: a failed `dlsym` allocates its error message.
fn freeres_functions() -> Vec<extern "C" fn()> {
    let mut out = Vec::new();
    for name in [c"_ZN9__gnu_cxx9__freeresEv", c"__libc_freeres"] {
        // SAFETY: dlsym with a NUL-terminated name; both functions take no
        // arguments and are meant to be called once, at the very end.
        unsafe {
            let p = crate::real::dlsym(libc::RTLD_DEFAULT, name.as_ptr());
            if !p.is_null() {
                out.push(core::mem::transmute::<*mut libc::c_void, extern "C" fn()>(
                    p,
                ));
            }
        }
    }
    out
}

/// CPython's `PyType_Type`, for the `python` heuristic: a dynamic symbol of
/// libpython and of an executable with libpython linked in (Debian's
/// `/usr/bin/python3.11`), absent from other programs (then the heuristic is
/// off). Looked up before the world is stopped (the loader takes its lock)
/// and under the guard (a failed `dlsym` allocates its error message).
fn py_type_type() -> Option<u64> {
    // SAFETY: dlsym with a NUL-terminated name; only the address is used.
    let p = unsafe { crate::real::dlsym(libc::RTLD_DEFAULT, c"PyType_Type".as_ptr()) };
    (!p.is_null()).then_some(p as u64)
}

/// glibc's `struct dl_phdr_info` with the TLS fields the libc crate leaves out.
#[repr(C)]
struct PhdrInfo {
    addr: u64,
    name: *const libc::c_char,
    phdr: *const libc::Elf64_Phdr,
    phnum: u16,
    adds: u64,
    subs: u64,
    tls_modid: usize,
    tls_data: *mut c_void,
}

/// Static TLS as the loader laid it out, the same relative to every
/// thread's thread pointer.
#[derive(Default)]
struct Tls {
    /// Our own thread-local data: (offset, size). It holds copies of the
    /// program's registers (the unwinder's memo of the last walk), which
    /// must not count as roots.
    own: Option<(i64, u64)>,
    /// How far below the thread pointer the static TLS blocks in use reach:
    /// the lowest `dlpi_tls_data` within the static area (a dlopened
    /// module's dynamic TLS is a heap block elsewhere). The area's full size
    /// counts a surplus for later dlopens, which can reach below the TLS
    /// mapping into a neighbour that our own allocations unmap during the
    /// scan (a read there faulted, 1 run in 3 of a program with a big heap).
    reach: u64,
    /// The static area's size, surplus included.
    area: u64,
}

/// Reads `Tls` from the loader's module list, before the world stops (the
/// loader takes its lock).
fn tls_layout() -> Tls {
    unsafe extern "C" fn cb(
        info: *mut libc::dl_phdr_info,
        size: usize,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid info of `size` bytes; we read the
        // TLS fields only when it is large enough to have them.
        unsafe {
            let out = &mut *(data as *mut Tls);
            let info = &*(info as *const PhdrInfo);
            if size < core::mem::size_of::<PhdrInfo>() || info.tls_data.is_null() {
                return 0;
            }
            let tp = stop::thread_pointer();
            let d = info.tls_data as u64;
            if d < tp && tp - d <= out.area {
                out.reach = out.reach.max(tp - d);
            }
            if info.addr == crate::stack::self_base() {
                let phdrs = core::slice::from_raw_parts(info.phdr, info.phnum as usize);
                if let Some(tls) = phdrs.iter().find(|p| p.p_type == libc::PT_TLS) {
                    out.own = Some((d as i64 - tp as i64, tls.p_memsz));
                }
            }
            0
        }
    }
    let mut found = Tls {
        area: static_tls_size(),
        ..Tls::default()
    };
    // SAFETY: the callback only reads what the loader passes it.
    unsafe { libc::dl_iterate_phdr(Some(cb), (&mut found as *mut Tls).cast()) };
    found
}

/// `ranges` minus `holes` (both sorted, non-overlapping).
fn subtract(ranges: Vec<(u64, u64)>, holes: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::with_capacity(ranges.len() + holes.len());
    for (mut lo, hi) in ranges {
        for &(hlo, hhi) in holes {
            if hlo >= hi || hhi <= lo {
                continue;
            }
            if hlo > lo {
                out.push((lo, hlo));
            }
            lo = lo.max(hhi);
        }
        if lo < hi {
            out.push((lo, hi));
        }
    }
    out
}

/// The process's memory, for the classifier. Reads are direct: every range
/// it is asked about lies in a readable mapping or a live heap block.
struct Memory<'a> {
    maps: &'a [Map],
    blocks: &'a [leakhunt_leakcheck::Block],
    /// glibc's writable data, where `main_arena` keeps its bins and top.
    allocator_data: (u64, u64),
    /// The readable mapping the last word came from: most reads fall in it.
    last: core::cell::Cell<(u64, u64)>,
    /// Words of live blocks the scan could not read (`PROT_NONE`, unmapped).
    unreadable: core::cell::Cell<u64>,
}

impl<'a> Memory<'a> {
    fn new(
        maps: &'a [Map],
        blocks: &'a [leakhunt_leakcheck::Block],
        allocator_data: (u64, u64),
    ) -> Self {
        Memory {
            maps,
            blocks,
            allocator_data,
            last: core::cell::Cell::new((0, 0)),
            unreadable: core::cell::Cell::new(0),
        }
    }

    /// Whether the 8 bytes at `addr` lie in a readable mapping. The maps
    /// were read with every other thread stopped, after the runtime's
    /// leftovers were freed: nothing maps, unmaps or protects now but the
    /// writer, which touches only its own memory.
    #[inline(always)]
    fn can_read(&self, addr: u64) -> bool {
        let (lo, hi) = self.last.get();
        if addr >= lo && addr + 8 <= hi {
            return true;
        }
        match map_of(self.maps, addr) {
            Some(m) if m.read && addr + 8 <= m.hi => {
                self.last.set((m.lo, m.hi));
                true
            }
            _ => false,
        }
    }
}

/// glibc's chunk size for a request of `n` bytes (`request2size`).
fn chunk_size(n: u64) -> u64 {
    (n + 8 + 15).max(32) & !15
}

impl Memory<'_> {
    /// Whether `w`, read from the allocator's own data, is the allocator's
    /// pointer to a chunk header that happens to lie inside the previous
    /// block (its last 8 bytes double as the next chunk's `prev_size`).
    /// memcheck's allocator is its own and never leaves such words around.
    fn is_chunk_header(&self, w: u64) -> bool {
        let i = self.blocks.partition_point(|b| b.start <= w);
        let Some(b) = i.checked_sub(1).map(|i| self.blocks[i]) else {
            return false;
        };
        w > b.start && w < b.start + b.size && w == b.start - 16 + chunk_size(b.size)
    }
}

impl leakhunt_leakcheck::Memory for Memory<'_> {
    #[inline(always)]
    fn word(&self, addr: u64) -> Option<u64> {
        if addr & 7 != 0 {
            return None;
        }
        // The insides of a live block may have been made unreadable (a guard
        // page, mprotect): checked against the maps, never faulted on.
        if !self.can_read(addr) {
            self.unreadable.set(self.unreadable.get() + 1);
            return None;
        }
        // SAFETY: an aligned word inside a readable mapping (just checked).
        let w = unsafe { core::ptr::read_volatile(addr as *const u64) };
        if addr >= self.allocator_data.0 && addr < self.allocator_data.1 && self.is_chunk_header(w)
        {
            return None;
        }
        Some(w)
    }

    /// For the `python` heuristic's reads of type objects: only inside a
    /// readable and writable mapping that is not a device's (a type object is
    /// written to: refcounts, caches), whole word inside it. The maps were
    /// read with every other thread stopped: nothing maps or unmaps now.
    fn word_anywhere(&self, addr: u64) -> Option<u64> {
        let m = map_of(self.maps, addr)?;
        let device = m.path.starts_with("/dev/") && m.path != "/dev/zero";
        if !m.read || !m.write || device || addr.checked_add(8)? > m.hi || addr & 7 != 0 {
            return None;
        }
        // SAFETY: an aligned word inside a readable mapping of this process,
        // which stays mapped while the other threads are stopped.
        Some(unsafe { core::ptr::read_volatile(addr as *const u64) })
    }

    fn readable(&self, addr: u64) -> bool {
        self.can_read(addr & !7)
    }

    fn is_vtable_location(&self, addr: u64) -> bool {
        let mapping_at = |a: u64| {
            map_of(self.maps, a).map(|m| leakhunt_leakcheck::Mapping {
                start: m.lo,
                end: m.hi,
                readable: m.read,
                executable: m.exec,
                file_backed: m.path.starts_with('/'),
            })
        };
        let read = |a: u64| {
            map_of(self.maps, a)
                .filter(|m| m.read)
                // SAFETY: a readable mapping of this process.
                .map(|_| unsafe { core::ptr::read_volatile(a as *const u64) })
        };
        leakhunt_leakcheck::memcheck_vtable_check(addr, mapping_at, read)
    }
}

/// Where the exiting thread's live program frames begin. Between our handler
/// and them lie libc's exit machinery (`exit`, `__run_exit_handlers`, and,
/// when `main` returned, `__libc_start_call_main`), whose frames reuse stack
/// that `main` and its callees left full of stale pointers. memcheck never
/// sees those (it tracks that they were never written since); we skip the
/// frames instead: the scan starts just above the return address into the
/// first frame that is not libc's.
fn program_frames_start(
    entry_sp: u64,
    ips: &[usize],
    modules: &[leakhunt_format::Module],
    maps: &[Map],
) -> u64 {
    let ours = crate::stack::self_base();
    let module_of = |ip: u64| {
        modules.iter().find(|m| {
            m.segments.iter().any(|s| {
                s.flags & 1 != 0 && ip >= m.base + s.vaddr && ip < m.base + s.vaddr + s.memsz
            })
        })
    };
    let first_program_ip = ips
        .iter()
        .map(|&ip| ip as u64)
        .find(|&ip| module_of(ip).is_none_or(|m| m.base != ours && !is_libc(&m.path)));
    let (Some(ret), Some(stack)) = (first_program_ip, map_of(maps, entry_sp)) else {
        return entry_sp;
    };
    let mut a = entry_sp & !7;
    while a + 8 <= stack.hi {
        // SAFETY: [entry_sp, end of its mapping) is this thread's live stack.
        if unsafe { core::ptr::read_volatile(a as *const u64) } == ret {
            return a + 8;
        }
        a += 8;
    }
    entry_sp
}

/// The thread pointer of the thread whose stack is `stack`: glibc puts the
/// thread's TCB at the top of its stack mapping, and the TCB's first and third
/// words (`tcb`, `self`) hold its own address.
fn tcb_in(stack: &Map) -> Option<u64> {
    let lowest = stack.hi.saturating_sub(64 * 1024).max(stack.lo);
    let mut a = (stack.hi - 24) & !7;
    while a >= lowest {
        // SAFETY: inside a readable mapping (the stack), 24 bytes from its end.
        let (w0, w2) = unsafe {
            (
                core::ptr::read_volatile(a as *const u64),
                core::ptr::read_volatile((a + 16) as *const u64),
            )
        };
        if w0 == a && w2 == a {
            return Some(a);
        }
        a -= 8;
    }
    None
}

/// glibc's own shared object.
fn is_libc(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|f| f.starts_with("libc.so") || f.starts_with("libc-"))
}

fn add_range(out: &mut Vec<(u64, u64)>, maps: &[Map], lo: u64, hi: u64) {
    // Clip to readable+writable mappings: RELRO and guard pages are not roots.
    let mut a = lo & !7;
    while a < hi {
        match map_of(maps, a) {
            Some(m) => {
                let end = hi.min(m.hi);
                if m.read && m.write {
                    out.push((a, end));
                }
                a = end;
            }
            None => {
                let i = maps.partition_point(|m| m.lo <= a);
                match maps.get(i) {
                    Some(m) if m.lo < hi => a = m.lo,
                    _ => break,
                }
            }
        }
    }
}

fn page_up(a: u64) -> u64 {
    a.saturating_add(4095) & !4095
}

/// The anonymous `rw` pages ld.so's minimal malloc mapped at start-up (see
/// `startup`), which memcheck scans as it scans every client `rw` mapping.
/// Left out: what lies inside a module's pages (the modules' own `.bss`, ours
/// above all, is handled with the modules) and a range holding a live heap
/// block (a big chunk glibc mapped for a `malloc` made before our constructor
/// ran: its insides are scanned only if the block is reached) or a thread's
/// stack pointer (a stack made before then without a guard page: only its
/// live part, added with the stacks, is a root).
fn ldso_memory(
    out: &mut Vec<(u64, u64)>,
    maps: &[Map],
    modules: &[leakhunt_format::Module],
    blocks: &[leakhunt_leakcheck::Block],
    sps: &[u64],
) {
    let module_pages = merge(
        modules
            .iter()
            .flat_map(|m| {
                m.segments.iter().map(move |s| {
                    let lo = (m.base + s.vaddr) & !4095;
                    (lo, page_up(m.base + s.vaddr + s.memsz))
                })
            })
            .collect(),
    );
    let holds_block = |lo: u64, hi: u64| {
        let i = blocks.partition_point(|b| b.start.saturating_add(b.size) <= lo);
        blocks.get(i).is_some_and(|b| b.start < hi)
    };
    for (lo, hi) in subtract(startup::ranges(), &module_pages) {
        if !holds_block(lo, hi) && !sps.iter().any(|&sp| sp >= lo && sp < hi) {
            add_range(out, maps, lo, hi);
        }
    }
}

fn merge(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// The whole scan. `entry_sp` and `entry_regs` are the exiting thread's stack
/// pointer and callee-saved registers where our exit handler began: our own
/// frames below it are not the program's and are not scanned.
pub fn exit_scan(entry_sp: u64, entry_regs: [u64; 18], exit_ips: &[usize]) {
    // Read under the guard: looking at the environment allocates.
    let (enabled, debug) = match Guard::internal() {
        Some(_g) => (
            std::env::var_os("LEAKHUNT_SCAN").is_none_or(|v| v != "0"),
            // A development aid: print which root words point at which blocks.
            std::env::var_os("LEAKHUNT_SCAN_DEBUG").is_some(),
        ),
        None => return,
    };
    if !enabled {
        return;
    }
    let t0 = Instant::now();
    let me = stop::gettid();
    let (stopped, missed, blocked, freeres, tls, py_type_type) = {
        let Some(_g) = Guard::internal() else { return };
        if writer::WRITER_PID.load(Ordering::Relaxed) != std::process::id() {
            return;
        }
        let tls = tls_layout();
        let py = py_type_type();
        let (s, m, b) = stop::stop_world(me);
        (s, m, b, freeres_functions(), tls, py)
    };
    // Unguarded: these frees are the program's runtime's, and are recorded.
    for f in &freeres {
        f();
    }
    let freed = !freeres.is_empty();
    let Some(_g) = Guard::internal() else { return };
    // Every other thread is parked outside our hooks: none holds the allocator
    // lock, so the scan may allocate (through the real allocator, unrecorded).
    let maps = read_maps();
    if !writer::request(crate::queue::kind::FLUSH, 0, 0, Duration::from_secs(10)) {
        writer::say("the writer did not answer; no leak scan");
        return;
    }
    STATE.lock();
    // SAFETY: lock held.
    let st = unsafe { STATE.get() };
    let mut blocks: Vec<leakhunt_leakcheck::Block> = st
        .live
        .iter()
        .map(|(p, b)| leakhunt_leakcheck::Block {
            start: p,
            size: b.size(),
        })
        .collect();
    blocks.sort_unstable_by_key(|b| b.start);

    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let ours = crate::stack::self_base();
    for m in st.modules() {
        if m.base == ours {
            continue;
        }
        // To the end of the last page, as memcheck's page-granular segments
        // are: past ld.so's `_end` its minimal malloc put the first link
        // maps (the vdso's, ours).
        for s in m.segments.iter().filter(|s| s.flags & 2 != 0) {
            add_range(
                &mut ranges,
                &maps,
                m.base + s.vaddr,
                page_up(m.base + s.vaddr + s.memsz),
            );
        }
    }
    for (addr, len) in st.app_mappings() {
        add_range(&mut ranges, &maps, addr, addr + len);
    }
    // glibc's writable data (its main_arena): words there that point at chunk
    // headers are the allocator's, not the program's.
    let allocator_data = st
        .modules()
        .iter()
        .filter(|m| is_libc(&m.path))
        .flat_map(|m| {
            m.segments
                .iter()
                .filter(|s| s.flags & 2 != 0)
                .map(move |s| (m.base + s.vaddr, m.base + s.vaddr + s.memsz))
        })
        .next()
        .unwrap_or((0, 0));
    let mut words: Vec<u64> = entry_regs.to_vec();
    let stacks = |sp: u64, fs: u64, ranges: &mut Vec<(u64, u64)>| {
        if let Some(m) = map_of(&maps, sp) {
            add_range(ranges, &maps, sp, m.hi);
        }
        // The thread's TCB and static TLS (for threads other than the main one,
        // they sit at the top of the stack mapping and are already covered).
        if fs != 0 {
            add_range(ranges, &maps, fs.saturating_sub(tls.reach), fs + 2304);
        }
    };
    let program_sp = program_frames_start(entry_sp, exit_ips, st.modules(), &maps);
    stacks(program_sp, stop::thread_pointer(), &mut ranges);
    // Not stopped, but blocked in the kernel: their stacks above SP stand still.
    // Their thread pointers (for TLS, and to leave our own TLS out) are found
    // at the top of their stack mappings, where glibc puts the TCB.
    let blocked: Vec<stop::Parked> = blocked
        .into_iter()
        .map(|p| stop::Parked {
            fs: map_of(&maps, p.sp)
                .filter(|m| m.read)
                .and_then(tcb_in)
                .unwrap_or(0),
            ..p
        })
        .collect();
    for p in &blocked {
        stacks(p.sp.saturating_sub(128), p.fs, &mut ranges);
    }
    if debug {
        for p in blocked.iter().chain(&stop::parked()) {
            writer::say(&format!(
                "thread {} sp {:#x} fs {:#x} stack {:?}",
                p.tid,
                p.sp,
                p.fs,
                map_of(&maps, p.sp).map(|m| (m.lo, m.hi))
            ));
        }
    }
    for p in stop::parked() {
        words.extend_from_slice(&p.regs);
        stacks(p.sp, p.fs, &mut ranges);
    }
    let sps: Vec<u64> = stop::parked()
        .iter()
        .chain(&blocked)
        .map(|p| p.sp)
        .chain([entry_sp])
        .collect();
    let before = ranges.len();
    ldso_memory(&mut ranges, &maps, st.modules(), &blocks, &sps);
    if debug {
        for &(lo, hi) in &ranges[before..] {
            writer::say(&format!("ld.so start-up memory {lo:#x}-{hi:#x}"));
        }
    }
    let ranges = merge(ranges);
    let mut holes: Vec<(u64, u64)> = Vec::new();
    if let Some((off, size)) = tls.own {
        let mut tps: Vec<u64> = stop::parked()
            .iter()
            .chain(&blocked)
            .map(|p| p.fs)
            .collect();
        tps.push(stop::thread_pointer());
        for tp in tps.into_iter().filter(|&tp| tp != 0) {
            let lo = (tp as i64 + off) as u64;
            holes.push((lo, lo + size));
        }
    }
    let ranges = subtract(ranges, &merge(holes));
    if debug {
        debug_roots(&ranges, &words, &blocks, &maps, entry_sp);
    }
    let root_bytes: u64 = ranges.iter().map(|(a, b)| b - a).sum();
    let memory = Memory::new(&maps, &blocks, allocator_data);
    let outcomes = leakhunt_leakcheck::classify_with(
        &blocks,
        &leakhunt_leakcheck::Roots {
            ranges: &ranges,
            words: &words,
        },
        &memory,
        &leakhunt_leakcheck::Options {
            python_type_type: py_type_type,
        },
    );
    let unreadable = memory.unreadable.get();
    if unreadable > 0 {
        writer::say(&format!(
            "the leak scan could not read {} bytes of live blocks (made unreadable by the program); no pointer was followed from them",
            unreadable * 8
        ));
    }
    let info = ScanInfo {
        blocks: blocks.len() as u64,
        root_bytes,
        threads: stopped + blocked.len() as u32,
        threads_missed: missed,
        duration_us: t0.elapsed().as_micros() as u64,
        freeres: freed,
    };
    st.emit_record(&Record::LeakScan(info));
    for (b, o) in blocks.iter().zip(outcomes.iter()) {
        use leakhunt_leakcheck::{Heuristic, Kind};
        let kind = match o.kind {
            Kind::DefinitelyLost => LeakKind::DefinitelyLost,
            Kind::IndirectlyLost => LeakKind::IndirectlyLost,
            Kind::PossiblyLost => LeakKind::PossiblyLost,
            Kind::StillReachable => LeakKind::StillReachable,
        };
        let heuristic = match o.heuristic {
            None => 0,
            Some(Heuristic::StdString) => 1,
            Some(Heuristic::Length64) => 2,
            Some(Heuristic::NewArray) => 3,
            Some(Heuristic::MultipleInheritance) => 4,
            Some(Heuristic::Python) => 5,
            Some(Heuristic::Dtv) => 6,
        };
        if kind == LeakKind::StillReachable && heuristic == 0 {
            continue;
        }
        st.emit_record(&Record::LeakBlock {
            ptr: b.start,
            kind,
            heuristic,
            indirect_bytes: o.indirect_bytes,
            indirect_blocks: o.indirect_blocks,
        });
    }
    STATE.unlock();
}

/// Development aid: where in the roots each block is pointed to from.
fn debug_roots(
    ranges: &[(u64, u64)],
    words: &[u64],
    blocks: &[leakhunt_leakcheck::Block],
    maps: &[Map],
    sp: u64,
) {
    let hit = |w: u64| {
        blocks
            .iter()
            .find(|b| w >= b.start && w < b.start + b.size.max(1))
            .copied()
    };
    for (i, &w) in words.iter().enumerate() {
        if let Some(b) = hit(w) {
            writer::say(&format!(
                "register {i} -> block {:#x}+{}",
                b.start,
                w - b.start
            ));
        }
    }
    for &(lo, hi) in ranges {
        let mut a = lo;
        while a < hi {
            // SAFETY: root ranges are readable mappings.
            let w = unsafe { core::ptr::read_volatile(a as *const u64) };
            if let Some(b) = hit(w) {
                let m = map_of(maps, a).map(|m| m.path.as_str()).unwrap_or("?");
                writer::say(&format!(
                    "{a:#x} ({m}, sp{:+}) -> block {:#x}+{} ({} bytes)",
                    a as i64 - sp as i64,
                    b.start,
                    w - b.start,
                    b.size
                ));
            }
            a += 8;
        }
    }
}
