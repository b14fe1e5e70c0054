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

/// glibc's `__curbrk`, the variable `sbrk(0)` returns (0: not found).
static CURBRK: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Finds `__curbrk` once (from detection, under the Guard: dlsym may
/// allocate), so that each walk reads the break without a call.
pub fn find_break() {
    // SAFETY: dlsym with a NUL-terminated name.
    let p = unsafe { crate::real::dlsym(libc::RTLD_DEFAULT, c"__curbrk".as_ptr()) };
    CURBRK.store(p as usize, Ordering::Relaxed);
}

#[inline(always)]
fn current_break() -> usize {
    let p = CURBRK.load(Ordering::Relaxed);
    if p != 0 {
        // SAFETY: glibc's `void *__curbrk`, a word of its data that lives
        // as long as the process.
        return unsafe { core::ptr::read_volatile(p as *const usize) };
    }
    // SAFETY: sbrk(0) only reads the current break.
    unsafe { libc::sbrk(0) as usize }
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

/// A series of reads by one thread, with its page table at hand (one
/// thread-local access per series, not per read).
pub struct Reader<'a> {
    slots: &'a mut [u64; SLOTS],
    generation: u64,
    /// The pages of the last two successful checks: a walk alternates
    /// between a frame's page and its code object's.
    last: usize,
    before: usize,
}

/// Runs `f` with this thread's reader. If the heap shrank since the last
/// series, pages above the new break are gone (glibc moves the break itself,
/// not through a call we see): those are forgotten first.
pub fn with<R>(f: impl FnOnce(&mut Reader) -> R) -> R {
    PAGES.with(|p| {
        // SAFETY: only this thread touches its table, and nothing in `f`
        // reenters `with` (the Guard is held).
        let slots = unsafe { &mut *p.slots.get() };
        let brk = current_break();
        let was = p.brk.get();
        if brk < was {
            // Only pages between the new break and the old one went away.
            let (lo, hi) = ((brk >> PAGE_SHIFT) as u64, (was >> PAGE_SHIFT) as u64 + 1);
            for slot in slots.iter_mut() {
                let page = *slot >> 20;
                if page >= lo && page < hi {
                    *slot = 0;
                }
            }
        }
        p.brk.set(brk);
        let generation = MAP_GENERATION.load(Ordering::Acquire) & 0xf_ffff;
        f(&mut Reader {
            slots,
            generation,
            // Not a page number (page 0 must never pass as "the last one").
            last: usize::MAX,
            before: usize::MAX,
        })
    })
}

impl Reader<'_> {
    #[inline(always)]
    fn page_readable(&mut self, page: usize) -> bool {
        if page == self.last {
            return true;
        }
        self.page_readable_slow(page)
    }

    #[inline(never)]
    fn page_readable_slow(&mut self, page: usize) -> bool {
        if page == self.before {
            self.before = self.last;
            self.last = page;
            return true;
        }
        if !(16..1 << (47 - PAGE_SHIFT)).contains(&page) {
            return false;
        }
        if self.lookup(page) {
            self.before = self.last;
            self.last = page;
            return true;
        }
        false
    }

    fn lookup(&mut self, page: usize) -> bool {
        let tag = (page as u64) << 20 | self.generation;
        // Hashed sets of WAYS entries, most recent first: the pages of one
        // walk are often a power of two apart, which a direct-mapped table
        // would make collide.
        let set = ((page as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize;
        let ways = &mut self.slots[set * WAYS..set * WAYS + WAYS];
        if let Some(i) = ways.iter().position(|&t| t == tag) {
            if i > 0 {
                ways[..=i].rotate_right(1);
            }
            return true;
        }
        if probe(page << PAGE_SHIFT) {
            ways.rotate_right(1);
            ways[0] = tag;
            true
        } else {
            false
        }
    }

    /// Whether `len` bytes at `addr` can be read.
    #[inline(always)]
    pub fn readable(&mut self, addr: usize, len: usize) -> bool {
        if len == 0 {
            return true;
        }
        let Some(last) = addr.checked_add(len - 1) else {
            return false;
        };
        let (first, last) = (addr >> PAGE_SHIFT, last >> PAGE_SHIFT);
        if first == last {
            return self.page_readable(first);
        }
        (first..=last).all(|p| self.page_readable(p))
    }

    /// The aligned word at `addr`, if it can be read.
    #[inline]
    pub fn word(&mut self, addr: usize) -> Option<usize> {
        if !addr.is_multiple_of(8) || !self.readable(addr, 8) {
            return None;
        }
        // SAFETY: aligned and on a page the kernel confirmed readable since
        // the last change to the map we know of.
        Some(unsafe { core::ptr::read_volatile(addr as *const usize) })
    }

    #[inline]
    pub fn u32_at(&mut self, addr: usize) -> Option<u32> {
        if !addr.is_multiple_of(4) || !self.readable(addr, 4) {
            return None;
        }
        // SAFETY: as in `word`.
        Some(unsafe { core::ptr::read_volatile(addr as *const u32) })
    }

    #[inline]
    pub fn byte(&mut self, addr: usize) -> Option<u8> {
        if !self.readable(addr, 1) {
            return None;
        }
        // SAFETY: as in `word`.
        Some(unsafe { core::ptr::read_volatile(addr as *const u8) })
    }

    /// Copies `out.len()` bytes from `addr`, if they can all be read.
    pub fn copy(&mut self, addr: usize, out: &mut [u8]) -> bool {
        if !self.readable(addr, out.len()) {
            return false;
        }
        // SAFETY: the whole range is readable (checked above); `out` is ours.
        unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, out.as_mut_ptr(), out.len()) };
        true
    }
}
