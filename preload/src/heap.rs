//! The recorder's own heap. Every Rust allocation of libleakhunt.so (the
//! writer's tables and buffers, the unwinder's caches, the scan's lists, and
//! whatever std allocates for us) is served by a private dlmalloc from pages
//! mapped here with raw system calls. None of it touches the program's
//! allocator, so the program's heap is laid out as it would be without us,
//! and no chunk we used and freed is later handed to the program still
//! holding addresses of its blocks (which the exit scan would then follow).
//!
//! The mappings go through `syscall` rather than `mmap`: our own `mmap` hook
//! would record them as the program's, and the exit scan treats the
//! program's mappings as roots.
//!
//! One spin lock serialises it. Off the hot path (a cache miss of the
//! unwinder, the writer's work), so contention is rare. A thread holding it
//! is always inside leakhunt: the stop signal defers on such threads, so the
//! exit scan never waits for a parked owner. `fork` takes it in its prepare
//! handler so that a child never inherits it held.

use crate::spin::SpinLock;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;
use dlmalloc::{Allocator, Dlmalloc};

/// Pages straight from the kernel.
struct Pages;

/// `size` bytes of fresh zero pages of our own (`flags` added to an
/// anonymous private mapping), or null: a raw system call, which our own
/// `mmap` hook does not see.
pub fn pages(size: usize, flags: i32) -> *mut u8 {
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing aliases nothing.
    let p = unsafe {
        libc::syscall(
            libc::SYS_mmap,
            0usize,
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags,
            -1i64,
            0usize,
        )
    };
    if p < 0 {
        ptr::null_mut()
    } else {
        p as *mut u8
    }
}

fn mremap(p: *mut u8, old: usize, new: usize, flags: i32) -> *mut u8 {
    // SAFETY: `p..p+old` is one of our own mappings (dlmalloc asks only
    // about the segments it got from `alloc`).
    let q = unsafe { libc::syscall(libc::SYS_mremap, p, old, new, flags as i64, 0usize) };
    if q < 0 {
        ptr::null_mut()
    } else {
        q as *mut u8
    }
}

fn munmap(p: *mut u8, size: usize) -> bool {
    // SAFETY: as for `mremap`: our own mapping, no longer in use.
    unsafe { libc::syscall(libc::SYS_munmap, p, size) == 0 }
}

// SAFETY: the functions below do what the trait asks of them, on mappings of
// our own.
unsafe impl Allocator for Pages {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        let p = pages(size, 0);
        (p, if p.is_null() { 0 } else { size }, 0)
    }

    fn remap(&self, p: *mut u8, old: usize, new: usize, can_move: bool) -> *mut u8 {
        mremap(p, old, new, if can_move { libc::MREMAP_MAYMOVE } else { 0 })
    }

    fn free_part(&self, p: *mut u8, old: usize, new: usize) -> bool {
        // SAFETY: `new < old`, both within the mapping at `p`.
        !mremap(p, old, new, 0).is_null() || munmap(unsafe { p.add(new) }, old - new)
    }

    fn free(&self, p: *mut u8, size: usize) -> bool {
        munmap(p, size)
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        true
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        4096
    }
}

/// A dlmalloc and the lock that serialises it.
pub struct Locked<A> {
    busy: SpinLock,
    dl: UnsafeCell<Dlmalloc<A>>,
}

// SAFETY: `dl` is only touched between lock() and unlock().
unsafe impl<A: Send> Sync for Locked<A> {}

impl<A: Allocator> Locked<A> {
    const fn new(a: A) -> Self {
        Locked {
            busy: SpinLock::new(),
            dl: UnsafeCell::new(Dlmalloc::new_with_allocator(a)),
        }
    }

    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut Dlmalloc<A>) -> R) -> R {
        self.busy.lock();
        // SAFETY: the lock is held, so this is the only reference.
        let r = f(unsafe { &mut *self.dl.get() });
        self.busy.unlock();
        r
    }
}

#[global_allocator]
static HEAP: Locked<Pages> = Locked::new(Pages);

// SAFETY: dlmalloc's functions are given what GlobalAlloc is given, under the
// lock; their contracts are GlobalAlloc's.
unsafe impl GlobalAlloc for Locked<Pages> {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        self.with(|d| unsafe { d.malloc(l.size(), l.align()) })
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        self.with(|d| unsafe { d.calloc(l.size(), l.align()) })
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        self.with(|d| unsafe { d.free(p, l.size(), l.align()) })
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        self.with(|d| unsafe { d.realloc(p, l.size(), l.align(), new) })
    }
}

/// `fork`'s prepare handler, registered before the writer's so that it runs
/// after it (the writer's flush allocates). Both heaps: neither is ever
/// taken while the other is held.
pub extern "C" fn before_fork() {
    HEAP.busy.lock();
    SPARE.busy.lock();
}

/// `fork`'s parent and child handlers: in the child, the only thread is the
/// one that forked, which holds the lock.
pub extern "C" fn after_fork() {
    SPARE.busy.unlock();
    HEAP.busy.unlock();
}

// ---- what the C library allocates on our behalf ----
//
// A few of our calls into libc allocate through `malloc`: dlsym's look-ups
// of the real allocator (before it is known), the new thread's TLS vector
// when we start the writer, dlerror's buffer and message when a `dlsym` of
// ours finds nothing. Made inside leakhunt, they reach our hooks, which
// hand them to this second dlmalloc, living in a static area of our own
// `.bss`: usable before anything is resolved, left out by the exit scan
// with our module, and known to `free` by its address. Should the area
// fill, they go to the real allocator (but for the look-ups, which have
// none yet).

const SPARE_SIZE: usize = 256 << 10;

#[repr(C, align(4096))]
struct SpareArea(UnsafeCell<[u8; SPARE_SIZE]>);
// SAFETY: handed out once, to the dlmalloc below, which is used under its lock.
unsafe impl Sync for SpareArea {}
static SPARE_AREA: SpareArea = SpareArea(UnsafeCell::new([0; SPARE_SIZE]));

/// The area, once; dlmalloc must never unmap or merge it (flag bit 0).
struct Area {
    given: core::cell::Cell<bool>,
}

// SAFETY: `alloc` hands out the static area once and nothing else; nothing
// is ever released.
unsafe impl Allocator for Area {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        if size > SPARE_SIZE || self.given.replace(true) {
            return (ptr::null_mut(), 0, 0);
        }
        (SPARE_AREA.0.get() as *mut u8, SPARE_SIZE, 1)
    }
    fn remap(&self, _: *mut u8, _: usize, _: usize, _: bool) -> *mut u8 {
        ptr::null_mut()
    }
    fn free_part(&self, _: *mut u8, _: usize, _: usize) -> bool {
        false
    }
    fn free(&self, _: *mut u8, _: usize) -> bool {
        false
    }
    fn can_release_part(&self, _: u32) -> bool {
        false
    }
    fn allocates_zeros(&self) -> bool {
        true
    }
    fn page_size(&self) -> usize {
        4096
    }
}

static SPARE: Locked<Area> = Locked::new(Area {
    given: core::cell::Cell::new(false),
});

type CVoid = core::ffi::c_void;

/// Whether `p` was served from the spare area.
#[inline(always)]
pub fn is_spare(p: *const CVoid) -> bool {
    (p as usize).wrapping_sub(SPARE_AREA.0.get() as usize) < SPARE_SIZE
}

/// `memalign` for libc on our behalf; null when the area is full.
pub fn spare_memalign(align: usize, size: usize) -> *mut CVoid {
    // SAFETY: memalign of the spare dlmalloc, under its lock.
    SPARE.with(|d| unsafe { d.c_memalign(align, size) }).cast()
}

pub fn spare_malloc(size: usize) -> *mut CVoid {
    spare_memalign(16, size)
}

pub fn spare_calloc(n: usize, size: usize) -> *mut CVoid {
    let Some(total) = n.checked_mul(size) else {
        return ptr::null_mut();
    };
    // SAFETY: calloc of the spare dlmalloc, under its lock: zeroed memory.
    SPARE.with(|d| unsafe { d.calloc(total, 16) }).cast()
}

/// # Safety
/// `p` is a live pointer of the spare area (`is_spare`).
pub unsafe fn spare_realloc(p: *mut CVoid, size: usize) -> *mut CVoid {
    SPARE
        .with(|d| unsafe { d.c_realloc(p.cast(), size) })
        .cast()
}

/// # Safety
/// `p` is a live pointer of the spare area (`is_spare`).
pub unsafe fn spare_free(p: *mut CVoid) {
    SPARE.with(|d| unsafe { d.c_free(p.cast()) })
}

/// An allocation made while the real allocator is being looked up (by the
/// loader, for us): from the spare area, or nowhere.
pub fn bootstrap(p: *mut CVoid) -> *mut CVoid {
    if p.is_null() {
        crate::real::fatal("no room left for the allocator look-up\n");
    }
    p
}
