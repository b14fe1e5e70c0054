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
const SENT_SLOTS: usize = 1024;

struct Scratch {
    ips: UnsafeCell<[usize; MAX_NATIVE + 8]>,
    spliced: UnsafeCell<[usize; MAX_DEPTH]>,
    sent: UnsafeCell<[u64; SENT_SLOTS]>,
}

thread_local! {
    static SCRATCH: Scratch = const {
        Scratch {
            ips: UnsafeCell::new([0; MAX_NATIVE + 8]),
            spliced: UnsafeCell::new([0; MAX_DEPTH]),
            sent: UnsafeCell::new([0; SENT_SLOTS]),
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

#[inline(always)]
fn hash_ips(ips: &[usize]) -> u64 {
    let mut h: u64 = 0x243f_6a88_85a3_08d3 ^ ips.len() as u64;
    for &ip in ips {
        h = (h ^ ip as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
    }
    // 0 means "empty slot" in the per-thread table and "no stack" on the wire.
    h | 1
}

/// Captures the current stack (without our own frames) and returns its hash,
/// after making sure the writer will know the frames. Must run under a Guard.
#[inline(always)]
pub fn capture(tid: u32, push: impl Fn(&Event)) -> u64 {
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
            push(&Event {
                kind: kind::STACK_BEGIN,
                tid,
                a: h,
                b: frames.len() as u64,
                c: 0,
                d: 0,
            });
            for c in frames.chunks(3) {
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
            *slot = h;
        }
        h
    })
}
