//! Reads of memory that may not be mapped, that never fault.
//!
//! The interpreter's structures are read from inside the program, so a bad
//! pointer (a thread state freed under a daemon thread, a corrupted frame)
//! must not become a SIGSEGV of the program's. Installing a fault handler
//! would take a signal the program may want; instead, each page is checked
//! once with `process_vm_readv` on ourselves (which fails with EFAULT
//! instead of faulting) and remembered in a small per-thread table. Any
//! change to the map that could make a remembered page unreadable
//! (`munmap`, `mremap`, `mprotect` through our hooks; the heap's break
//! moving down) forgets every remembered page.

use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::{AtomicU64, Ordering};

/// 64 sets of 4 (the set index takes the top 6 bits of a hash).
const SLOTS: usize = 256;
const WAYS: usize = 4;
const PAGE_SHIFT: u32 = 12;

/// Bumped whenever memory may have become unreadable.
static MAP_GENERATION: AtomicU64 = AtomicU64::new(1);

struct Pages {
    /// `page << 20 | generation` (low 20 bits); 0 is empty (page 0 is never readable).
    slots: UnsafeCell<[u64; SLOTS]>,
    /// The program break when the table was last checked against it.
    brk: Cell<usize>,
}

thread_local! {
    static PAGES: Pages = const { Pages { slots: UnsafeCell::new([0; SLOTS]), brk: Cell::new(0) } };
}

/// Something may have been unmapped or protected: forget every page.
pub fn maps_changed() {
    MAP_GENERATION.fetch_add(1, Ordering::Release);
}

/// Whether the byte at `addr` can be read now, asking the kernel.
fn probe(addr: usize) -> bool {
    let mut byte = 0u8;
    let local = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: 1,
    };
    // SAFETY: reads one byte of our own address space into `byte`; the
    // kernel checks the remote range and returns an error instead of faulting.
    unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) == 1 }
}

/// Whether `probe` works here at all (seccomp may forbid the call).
pub fn available() -> bool {
    static MARK: u8 = 1;
    probe(core::ptr::addr_of!(MARK) as usize) && !probe(8)
}

fn page_readable(page: usize) -> bool {
    if !(16..1 << (47 - PAGE_SHIFT)).contains(&page) {
        return false;
    }
    PAGES.with(|p| {
        // SAFETY: only this thread touches its table, and nothing here reenters.
        let slots = unsafe { &mut *p.slots.get() };
        let generation = MAP_GENERATION.load(Ordering::Acquire) & 0xf_ffff;
        let tag = (page as u64) << 20 | generation;
        // Hashed sets of WAYS entries, most recent first: the pages of one
        // walk are often a power of two apart, which a direct-mapped table
        // would make collide.
        let set = ((page as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize;
        let ways = &mut slots[set * WAYS..set * WAYS + WAYS];
        if let Some(i) = ways.iter().position(|&t| t == tag) {
            ways[..=i].rotate_right(1);
            return true;
        }
        if probe(page << PAGE_SHIFT) {
            ways.rotate_right(1);
            ways[0] = tag;
            true
        } else {
            false
        }
    })
}

/// Starts a series of reads: if the heap shrank since the last one, pages
/// above the new break are gone (glibc moves the break itself, not through a
/// call we see), so the table starts over.
pub fn begin() {
    PAGES.with(|p| {
        // SAFETY: sbrk(0) only reads the current break.
        let brk = unsafe { libc::sbrk(0) } as usize;
        let was = p.brk.get();
        if brk < was {
            // Only pages between the new break and the old one went away.
            let (lo, hi) = ((brk >> PAGE_SHIFT) as u64, (was >> PAGE_SHIFT) as u64 + 1);
            // SAFETY: only this thread touches its table.
            for slot in unsafe { (*p.slots.get()).iter_mut() } {
                let page = *slot >> 20;
                if page >= lo && page < hi {
                    *slot = 0;
                }
            }
        }
        p.brk.set(brk);
    })
}

/// Whether `len` bytes at `addr` can be read.
pub fn readable(addr: usize, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    let Some(last) = addr.checked_add(len - 1) else {
        return false;
    };
    (addr >> PAGE_SHIFT..=last >> PAGE_SHIFT).all(page_readable)
}

/// The aligned word at `addr`, if it can be read.
#[inline]
pub fn word(addr: usize) -> Option<usize> {
    if !addr.is_multiple_of(8) || !readable(addr, 8) {
        return None;
    }
    // SAFETY: aligned and on a page the kernel just confirmed (or that we
    // confirmed since the last change to the map) is readable.
    Some(unsafe { core::ptr::read_volatile(addr as *const usize) })
}

#[inline]
pub fn u32_at(addr: usize) -> Option<u32> {
    if !addr.is_multiple_of(4) || !readable(addr, 4) {
        return None;
    }
    // SAFETY: as in `word`.
    Some(unsafe { core::ptr::read_volatile(addr as *const u32) })
}

#[inline]
pub fn byte(addr: usize) -> Option<u8> {
    if !readable(addr, 1) {
        return None;
    }
    // SAFETY: as in `word`.
    Some(unsafe { core::ptr::read_volatile(addr as *const u8) })
}

/// Copies `out.len()` bytes from `addr`, if they can all be read.
pub fn copy(addr: usize, out: &mut [u8]) -> bool {
    if !readable(addr, out.len()) {
        return false;
    }
    // SAFETY: the whole range is readable (checked above); `out` is ours.
    unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, out.as_mut_ptr(), out.len()) };
    true
}
