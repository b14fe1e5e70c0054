//! Per-thread state of the hot path: the reentrancy guard, the cached thread id,
//! and whether recording is on at all.
//!
//! Every `thread_local!` here has a `const` initializer and a type without
//! `Drop`, so touching it never allocates and never registers a destructor:
//! it is safe from inside `malloc`, and during thread teardown.

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, Ordering};

/// `BUSY` bits: inside leakhunt, and "the exit scan asked this thread to stop
/// while it was inside leakhunt": it parks as soon as it leaves.
const IN_HOOK: u8 = 1;
const STOP_DEFERRED: u8 = 2;
/// Inside a libc call of ours that may allocate (`own`): what it allocates
/// is ours and goes to our spare heap, not the program's.
const OWN: u8 = 4;
/// Inside one of our wrappers of CPython's allocator (`Guard::wrapper`): the
/// libc calls its original makes (pymalloc's big blocks) are part of the
/// object the wrapper records, not calls of the program's own.
const WRAPPER: u8 = 8;

thread_local! {
    static BUSY: Cell<u8> = const { Cell::new(0) };
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
        Guard::enter_as(IN_HOOK)
    }

    /// `enter` for our wrappers of CPython's allocator (see `WRAPPER`).
    #[inline(always)]
    pub fn wrapper() -> Option<Guard> {
        Guard::enter_as(IN_HOOK | WRAPPER)
    }

    /// `enter` for our own work outside the hooks (start-up, fork, the end
    /// of the image, the exit scan): what libc allocates meanwhile (the
    /// scan's `opendir` of the thread list) is ours, like in `own`.
    #[inline]
    pub fn internal() -> Option<Guard> {
        Guard::enter_as(IN_HOOK | OWN)
    }

    #[inline(always)]
    fn enter_as(bits: u8) -> Option<Guard> {
        if !RECORDING.load(Ordering::Relaxed) {
            return None;
        }
        BUSY.with(|b| {
            let v = b.get();
            if v & IN_HOOK != 0 {
                None
            } else {
                b.set(v | bits);
                Some(Guard(()))
            }
        })
    }

    /// Marks this thread as leakhunt's own for the rest of its life (the
    /// writer): whatever libc allocates on it is ours.
    pub fn forever() {
        BUSY.with(|b| b.set(IN_HOOK | OWN));
    }
}

impl Drop for Guard {
    #[inline(always)]
    fn drop(&mut self) {
        let was = BUSY.with(|b| b.replace(b.get() & !(IN_HOOK | STOP_DEFERRED | WRAPPER | OWN)));
        if was & STOP_DEFERRED != 0 {
            crate::stop::park_here();
        }
    }
}

/// Runs `f`, a call into libc on leakhunt's behalf, with what it allocates
/// served from our spare heap (see `heap`). Only for calls made from inside
/// leakhunt (under a Guard): hooks reached from `f` are not recorded.
pub fn own<R>(f: impl FnOnce() -> R) -> R {
    let was = BUSY.with(|b| b.replace(b.get() | IN_HOOK | OWN));
    let r = f();
    BUSY.with(|b| b.set((b.get() & STOP_DEFERRED) | (was & !STOP_DEFERRED)));
    r
}

/// Who made a call that reached a hook while this thread was inside
/// leakhunt (`Guard::enter` said no).
#[derive(PartialEq, Eq)]
pub enum Inside {
    /// libc, on our behalf (`own`, `Guard::internal`, the writer): served
    /// from our spare heap.
    Ours,
    /// The program, from a signal handler that interrupted one of our
    /// hooks: recorded on the reentrant path.
    Handler,
    /// An original allocator we wrap, or recording is off: passed through.
    Other,
}

#[inline]
pub fn inside() -> Inside {
    let v = BUSY.with(|b| b.get());
    if v & OWN != 0 {
        Inside::Ours
    } else if v & (IN_HOOK | WRAPPER) == IN_HOOK && RECORDING.load(Ordering::Relaxed) {
        Inside::Handler
    } else {
        Inside::Other
    }
}

/// Called from the stop signal's handler: if this thread is inside leakhunt
/// (it may hold the allocator's lock, or be half-way through a queue push), it
/// must not stop here; it will park when its Guard drops. Returns whether it
/// deferred.
pub fn defer_stop_if_busy() -> bool {
    BUSY.with(|b| {
        let v = b.get();
        if v & IN_HOOK != 0 {
            b.set(v | STOP_DEFERRED);
            true
        } else {
            false
        }
    })
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
