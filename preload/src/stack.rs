//! Capturing the allocating call stack on the hot path, and sending each
//! distinct stack to the writer once per thread.
//!
//! The stack's 64-bit hash is its name on the wire: an allocation event carries
//! the hash only. Each thread remembers, in a small direct-mapped table, which
//! hashes it has already defined for the writer; a miss sends the frames first.
//! Two threads may both define the same stack: the writer keeps the first.

use crate::queue::{kind, Event};
use core::cell::UnsafeCell;

/// Native frames kept (innermost first).
const MAX_NATIVE: usize = 64;
/// Entries of a recorded stack: native frames with Python frames spliced in.
pub const MAX_DEPTH: usize = 160;
/// Stacks remembered as defined, per thread (32 KiB of TLS). Deep C code has
/// many distinct stacks: with 1024 slots, compileall re-sent an already
/// defined stack on 21% of its allocations, with 4096 on 16%.
const SENT_SLOTS: usize = 4096;

struct Scratch {
    ips: UnsafeCell<[usize; MAX_NATIVE + 8]>,
    spliced: UnsafeCell<[usize; MAX_DEPTH]>,
    sent: UnsafeCell<[u64; SENT_SLOTS]>,
    /// The last stack this thread defined for the writer: a new definition
    /// sends only the frames inside the outer ones it shares with it.
    last: UnsafeCell<[usize; MAX_DEPTH]>,
    last_len: core::cell::Cell<usize>,
}

thread_local! {
    static SCRATCH: Scratch = const {
        Scratch {
            ips: UnsafeCell::new([0; MAX_NATIVE + 8]),
            spliced: UnsafeCell::new([0; MAX_DEPTH]),
            sent: UnsafeCell::new([0; SENT_SLOTS]),
            last: UnsafeCell::new([0; MAX_DEPTH]),
            last_len: core::cell::Cell::new(0),
        }
    };
}

extern "C" {
    /// Defined by the linker at the start of our mapped ELF header.
    static __ehdr_start: libc::Elf64_Ehdr;
}

/// The load address of our own module (its ELF header; a shared library's
/// first segment starts at address 0).
pub fn self_base() -> u64 {
    core::ptr::addr_of!(__ehdr_start) as u64
}

/// The range of our own code, whose frames are never part of a stack. Found
/// from our own ELF header in memory (no loader call, no lock, no allocation),
/// so that it works for allocations made before our constructor ran.
fn self_text() -> (usize, usize) {
    use core::sync::atomic::{AtomicUsize, Ordering};
    static LO: AtomicUsize = AtomicUsize::new(0);
    static HI: AtomicUsize = AtomicUsize::new(0);
    let hi = HI.load(Ordering::Relaxed);
    if hi != 0 {
        return (LO.load(Ordering::Relaxed), hi);
    }
    // SAFETY: __ehdr_start is our own ELF header, mapped read-only for the
    // life of the library; its program headers follow at e_phoff.
    let (lo, hi) = unsafe {
        let eh = core::ptr::addr_of!(__ehdr_start);
        let phdrs = core::slice::from_raw_parts(
            (eh as *const u8).add((*eh).e_phoff as usize) as *const libc::Elf64_Phdr,
            (*eh).e_phnum as usize,
        );
        let first = phdrs
            .iter()
            .find(|p| p.p_type == libc::PT_LOAD)
            .map_or(0, |p| p.p_vaddr);
        let base = eh as usize - first as usize;
        phdrs
            .iter()
            .find(|p| p.p_type == libc::PT_LOAD && p.p_flags & libc::PF_X != 0)
            .map_or((0, 0), |p| {
                (
                    base + p.p_vaddr as usize,
                    base + (p.p_vaddr + p.p_memsz) as usize,
                )
            })
    };
    LO.store(lo, Ordering::Relaxed);
    HI.store(hi, Ordering::Relaxed);
    (lo, hi)
}

/// Four independent multiply chains over interleaved frames, then mixed:
/// a Python stack is 20-40 entries, and one chain of dependent multiplies
/// over all of them was a tenth of the hook's time.
#[inline(always)]
fn hash_ips(ips: &[usize]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut lanes: [u64; 4] = [
        0x243f_6a88_85a3_08d3 ^ ips.len() as u64,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    ];
    let mut chunks = ips.chunks_exact(4);
    for c in &mut chunks {
        for (h, &ip) in lanes.iter_mut().zip(c) {
            *h = (*h ^ ip as u64).wrapping_mul(K);
            *h ^= *h >> 29;
        }
    }
    for (h, &ip) in lanes.iter_mut().zip(chunks.remainder()) {
        *h = (*h ^ ip as u64).wrapping_mul(K);
        *h ^= *h >> 29;
    }
    let mut h = lanes[0];
    for &l in &lanes[1..] {
        h = (h.rotate_left(23) ^ l).wrapping_mul(K);
        h ^= h >> 31;
    }
    // 0 means "empty slot" in the per-thread table and "no stack" on the wire.
    h | 1
}

/// In a fork child: the writer knows no last stack for this thread's new id.
pub fn forget_last_stack() {
    SCRATCH.with(|s| s.last_len.set(0));
}

/// Captures the current stack (without our own frames) and returns its hash,
/// after making sure the writer will know the frames. Must run under a Guard.
#[inline(always)]
pub fn capture(tid: u32, push: impl Fn(&Event)) -> u64 {
    capture_with_top(tid, push, 0)
}

/// Whether `ip` is in our own code.
pub fn is_ours(ip: usize) -> bool {
    let (lo, hi) = self_text();
    ip >= lo && ip < hi
}

/// As `capture`, with `top` (if not 0) as the innermost frame in place of
/// our own: the allocator function a hook called for the program.
#[inline(always)]
pub fn capture_with_top(tid: u32, push: impl Fn(&Event), top: usize) -> u64 {
    SCRATCH.with(|s| {
        // SAFETY: the Guard held by the caller makes this the only live use of
        // this thread's scratch (no reentrancy), and it never leaves the thread.
        let ips = unsafe { &mut *s.ips.get() };
        // SAFETY: as above.
        let sent = unsafe { &mut *s.sent.get() };
        let mut n = unsafe { crate::unwind::capture(&mut ips[..]) };
        // The outermost frame (`_start`) may report a null return address.
        while n > 0 && ips[n - 1] == 0 {
            n -= 1;
        }
        let (lo, hi) = self_text();
        let mut skip = 0;
        while skip < n && ips[skip] >= lo && ips[skip] < hi {
            skip += 1;
        }
        if top != 0 && skip > 0 {
            skip -= 1;
            ips[skip] = top;
        }
        let native = &ips[skip..n.min(skip + MAX_NATIVE)];
        // SAFETY: as above.
        let spliced = unsafe { &mut *s.spliced.get() };
        let frames = match crate::python::splice(native, spliced, tid, &push) {
            Some(k) => &spliced[..k],
            None => native,
        };
        let h = hash_ips(frames);
        let slot = &mut sent[(h as usize >> 3) & (SENT_SLOTS - 1)];
        if *slot != h {
            // SAFETY: as above.
            let last = unsafe { &mut *s.last.get() };
            let last_len = s.last_len.get();
            let shared = frames
                .iter()
                .rev()
                .zip(last[..last_len].iter().rev())
                .take_while(|(a, b)| a == b)
                .count();
            let inner = &frames[..frames.len() - shared];
            push(&Event {
                kind: kind::STACK_BEGIN,
                tid,
                a: h,
                b: frames.len() as u64,
                c: shared as u64,
                d: 0,
            });
            for c in inner.chunks(3) {
                let g = |i: usize| c.get(i).copied().unwrap_or(0) as u64;
                push(&Event {
                    kind: kind::STACK_FRAMES,
                    tid,
                    a: g(0),
                    b: g(1),
                    c: g(2),
                    d: 0,
                });
            }
            last[..frames.len()].copy_from_slice(frames);
            s.last_len.set(frames.len());
            *slot = h;
        }
        h
    })
}
