//! Per-thread state of the hot path: the reentrancy guard, the cached thread id,
//! and whether recording is on at all.
//!
//! Every `thread_local!` here has a `const` initializer and a type without
//! `Drop`, so touching it never allocates and never registers a destructor:
//! it is safe from inside `malloc`, and during thread teardown.

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    static BUSY: Cell<bool> = const { Cell::new(false) };
    static TID: Cell<u32> = const { Cell::new(0) };
}

/// Off until the writer is running, and again for good once the output failed
/// or the process image ended; hooks then go straight to the real functions.
pub static RECORDING: AtomicBool = AtomicBool::new(true);

/// While alive, calls from this thread go to the real allocator unrecorded:
/// our own work (unwinding may allocate) and the writer thread.
pub struct Guard(());

impl Guard {
    /// `None` if this thread is already inside leakhunt or recording is off.
    #[inline(always)]
    pub fn enter() -> Option<Guard> {
        if !RECORDING.load(Ordering::Relaxed) {
            return None;
        }
        BUSY.with(|b| {
            if b.get() {
                None
            } else {
                b.set(true);
                Some(Guard(()))
            }
        })
    }

    /// Marks this thread as leakhunt's own for the rest of its life (the writer).
    pub fn forever() {
        BUSY.with(|b| b.set(true));
    }
}

impl Drop for Guard {
    #[inline(always)]
    fn drop(&mut self) {
        BUSY.with(|b| b.set(false));
    }
}

#[inline(always)]
pub fn tid() -> u32 {
    TID.with(|t| {
        let v = t.get();
        if v != 0 {
            return v;
        }
        // SAFETY: gettid cannot fail.
        let v = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
        t.set(v);
        v
    })
}

/// After fork the surviving thread has a new id.
pub fn forget_tid() {
    TID.with(|t| t.set(0));
}
