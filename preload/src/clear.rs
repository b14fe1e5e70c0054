//! Clearing a new block before the program sees it, so that bytes it never
//! writes hold nothing.
//!
//! memcheck ignores bytes that were never written since a block was allocated
//! (it tracks definedness); the exit scan reads real memory, where such bytes
//! still hold what the chunk's previous owner left: pointers into other
//! blocks, and the allocator's own free-list links. Followed, they turn
//! definitely lost blocks into indirectly lost or reachable ones. So every
//! block we record is zeroed over its usable size when it is allocated, and
//! over what it gained when `realloc` grows it. A `calloc` is zero already,
//! and so is a glibc chunk of its own mapping (fresh pages).
//!
//! The cost is a `memset` of what the program allocates, like glibc's
//! `perturb` tunable; `LEAKHUNT_CLEAR=0` turns it off.

use crate::real::Real;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, Ordering};

static ON: AtomicBool = AtomicBool::new(true);

/// From the constructor.
pub fn configure() {
    if std::env::var_os("LEAKHUNT_CLEAR").is_some_and(|v| v == "0") {
        ON.store(false, Ordering::Relaxed);
    }
}

/// glibc's chunk flag for a chunk that is its own mapping.
const IS_MMAPPED: usize = 2;

/// `p`'s usable size, and whether it is fresh pages (a glibc chunk of its
/// own mapping). Another allocator: its `malloc_usable_size` (0 without).
///
/// # Safety
/// `p` is a live block of `r`'s allocator.
#[inline(always)]
unsafe fn chunk(r: &Real, p: *mut c_void) -> (usize, bool) {
    if r.glibc {
        // glibc's chunk header: the size word just below the block.
        let head = *(p as *const usize).sub(1);
        let mapped = head & IS_MMAPPED != 0;
        let overhead = if mapped { 16 } else { 8 };
        return ((head & !7).saturating_sub(overhead), mapped);
    }
    (r.malloc_usable_size.map_or(0, |f| f(p)), false)
}

/// The bytes of `p` the program may be given, or `None` when they are fresh
/// pages. `size` is what was asked for: the least it can be.
///
/// # Safety
/// `p` is a live block of `r`'s allocator.
#[inline(always)]
unsafe fn usable(r: &Real, p: *mut c_void, size: usize) -> Option<usize> {
    let (n, fresh) = chunk(r, p);
    (!fresh).then_some(n.max(size))
}

/// A block just allocated (not by `calloc`).
///
/// # Safety
/// `p` is a live block of `r`'s allocator, of at least `size` bytes, not yet
/// handed to the program.
#[inline(always)]
pub unsafe fn new_block(r: &Real, p: *mut c_void, size: usize) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    if let Some(n) = usable(r, p, size) {
        core::ptr::write_bytes(p as *mut u8, 0, n);
    }
}

/// A block of an allocator whose chunks we cannot read (CPython's
/// pymalloc): the bytes asked for.
///
/// # Safety
/// `p` is a live block of at least `size` bytes, not yet handed out.
#[inline(always)]
pub unsafe fn requested(p: *mut c_void, size: usize) {
    if ON.load(Ordering::Relaxed) {
        core::ptr::write_bytes(p as *mut u8, 0, size);
    }
}

/// What `realloc` needs of the old block, read before the call.
///
/// # Safety
/// `p` is a live block of `r`'s allocator.
#[inline(always)]
pub unsafe fn old_usable(r: &Real, p: *mut c_void) -> usize {
    if !ON.load(Ordering::Relaxed) {
        return 0;
    }
    chunk(r, p).0
}

/// `q`, the result of growing a block whose old usable size was `old` to
/// `size` bytes: everything past what was carried over is cleared. The bytes
/// past the program's old size and below `old` were cleared when the old
/// block was made.
///
/// # Safety
/// `q` is a live block of `r`'s allocator, of at least `size` bytes, not yet
/// handed back to the program.
#[inline(always)]
pub unsafe fn grown(r: &Real, q: *mut c_void, old: usize, size: usize) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    if let Some(n) = usable(r, q, size) {
        let from = old.min(size);
        if n > from {
            core::ptr::write_bytes((q as *mut u8).add(from), 0, n - from);
        }
    }
}
