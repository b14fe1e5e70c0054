//! Fast call-stack capture for the leakhunt recorder.
//!
//! The recorder (`libleakhunt.so`, loaded with `LD_PRELOAD`) captures the call stack on every
//! `malloc`/`free` of the traced program, so the cost of [`capture`] is paid millions of times a
//! second. `_Unwind_Backtrace` (libgcc, [`capture_slow`]) re-interprets the DWARF call-frame
//! program of every frame on every call. [`capture`] returns exactly the same addresses, faster,
//! with two caches:
//!
//! 1. **Rules per return address.** The result of the CFI interpretation for an ip is reduced to a
//!    tiny rule: CFA (canonical frame address) = `rsp` or `rbp` + a constant; the return address
//!    is at `CFA - 8`; the caller's `rbp` is unchanged or saved at `CFA - k`. Rules live in one
//!    global 2-way set-associative table of `AtomicU64`s (an entry packs the ip's tag and the rule
//!    into one word: no torn reads, no lock). On a miss the rule is computed from the module's
//!    `.eh_frame_hdr` (found with glibc's lock-free `_dl_find_object`, as libgcc does) with
//!    `gimli`, without allocating.
//! 2. **The previous walk, per thread.** Consecutive captures on a thread share most of their
//!    outer frames. When a walk reaches a frame state (ip, rsp, rbp) that the thread's previous
//!    walk also went through, the rest of the previous walk is replayed after checking that the
//!    stack slots it read (return addresses, saved rbp) still hold the same values. A walk is a
//!    deterministic function of those slots, so this gives exactly what a full walk would, but
//!    with independent loads from known addresses instead of a chain of dependent loads and
//!    table lookups; it reads no address that the full walk would not read.
//!
//! Anything the simple rule cannot express (DWARF expressions, signal trampolines such as
//! `__restore_rt`, a CFA based on another register such as in `_dl_runtime_resolve`) makes
//! [`capture`] fall back to [`capture_slow`] for the whole stack, so results are always those of
//! `_Unwind_Backtrace`. Frames of code that has no FDE in a loaded object (JIT code registering
//! its unwind info with `__register_frame`) end the stack, where libgcc would go on.
//!
//! Target: x86_64 Linux with glibc >= 2.35 (`_dl_find_object`). On other targets [`capture`]
//! simply is [`capture_slow`].
//!
//! # What this crate must never do
//!
//! * Take a lock, or call code other than glibc's `_dl_find_object` and its own (the slow path
//!   excepted, which is libgcc's unwinder): it runs inside the traced program's allocator and may
//!   be entered concurrently from any thread and from signal handlers.
//! * Allocate on the hit path: a capture whose rules are all cached touches only the stack, the
//!   caller's buffer, the rule table and the thread's memo. (The miss path does not allocate
//!   either; it uses about 8 KiB of stack.)
//! * Keep per-thread state needing a destructor or lazy initialisation: the per-thread memo is a
//!   4 KiB `const`-initialised thread-local without `Drop`.
//! * Read memory other than the current thread's stack (each CFA must be above the previous one
//!   and within 256 MiB of it), the caller's buffer, the caches, and the mapped unwind tables of
//!   loaded modules.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]

#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
mod fast;

#[cfg(test)]
mod tests;

/// Counters for checking the crate on real programs (feature `diagnostics`, off by default).
#[cfg(feature = "diagnostics")]
pub mod diagnostics {
    use std::sync::atomic::{AtomicU64, Ordering};

    pub(crate) static FALLBACKS: AtomicU64 = AtomicU64::new(0);

    /// How many times [`capture`](crate::capture) fell back to `_Unwind_Backtrace` so far.
    pub fn fallback_count() -> u64 {
        FALLBACKS.load(Ordering::Relaxed)
    }
}

/// Writes the return addresses of the caller's stack into `buf`, innermost first, starting with
/// the return address of `capture` itself (an address inside the function that called `capture`;
/// `capture`'s own frame is not included). Returns how many were written (at most `buf.len()`).
///
/// The result is identical to [`capture_slow`] called from the same place. Allocation-free (on
/// cache misses too), lock-free, thread-safe. May be called from a signal handler that interrupted
/// another `capture` on the same thread (the per-thread memo is then bypassed), but is not
/// guaranteed async-signal-safe: stacks that need the fallback go through libgcc.
///
/// # Safety
///
/// Every frame on the current stack must be described correctly by its module's unwind tables
/// (as `_Unwind_Backtrace` also assumes), and no module with code on the current stack may be
/// unloaded concurrently.
#[inline(never)]
pub unsafe fn capture(buf: &mut [usize]) -> usize {
    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    {
        if buf.is_empty() {
            return 0;
        }
        let ip: usize;
        let sp: usize;
        let bp: usize;
        // SAFETY: only reads rip, rsp and rbp into general registers; touches no memory and
        // does not change the stack or flags.
        unsafe {
            core::arch::asm!(
                "lea {ip}, [rip]",
                "mov {sp}, rsp",
                "mov {bp}, rbp",
                ip = out(reg) ip,
                sp = out(reg) sp,
                bp = out(reg) bp,
                options(nomem, nostack, preserves_flags),
            );
        }
        // SAFETY: (ip, sp, bp) is a consistent register state of this very frame (read by the
        // single asm block above); the caller guarantees the stack is described by correct CFI.
        if let Some(n) = unsafe { fast::unwind(ip, sp, bp, buf) } {
            return n;
        }
        #[cfg(test)]
        tests::note_fallback();
        #[cfg(feature = "diagnostics")]
        diagnostics::FALLBACKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: same contract as ours; `capture`'s frame is on the stack (the call below is not
        // a tail call: `black_box` runs after it), so the skip finds it.
        let n = unsafe { slow(buf, capture as *const () as usize) };
        std::hint::black_box(n)
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu")))]
    {
        // SAFETY: same contract as ours; `capture`'s frame is on the stack.
        let n = unsafe { slow(buf, capture as *const () as usize) };
        std::hint::black_box(n)
    }
}

/// Reference implementation of [`capture`] using `backtrace::trace_unsynchronized`
/// (`_Unwind_Backtrace`): same contract, same result, much slower.
///
/// # Safety
///
/// As for [`capture`]; additionally, like `backtrace::trace_unsynchronized`, it must not run
/// concurrently with a `backtrace` call on a platform where that is unsynchronised (not the
/// case for the libgcc unwinder on Linux).
#[inline(never)]
pub unsafe fn capture_slow(buf: &mut [usize]) -> usize {
    // SAFETY: same contract as ours; `capture_slow`'s frame is on the stack (not a tail call).
    let n = unsafe { slow(buf, capture_slow as *const () as usize) };
    std::hint::black_box(n)
}

/// Drops cached unwind rules. Call after `dlclose` (rules for code that was unloaded, and maybe
/// replaced by other code at the same address, must not be reused). Clears the whole cache.
pub fn invalidate() {
    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    fast::invalidate();
}

/// Walks the stack with `_Unwind_Backtrace`, skipping frames up to and including the frame of
/// the function starting at `entry`, and records the return addresses that follow.
///
/// # Safety
///
/// The function starting at `entry` must have a frame on the current stack that is not inlined
/// (otherwise nothing is recorded; that is still memory-safe), and the stack must be described by
/// correct unwind tables.
#[inline(never)]
unsafe fn slow(buf: &mut [usize], entry: usize) -> usize {
    if buf.is_empty() {
        return 0;
    }
    let mut n = 0;
    let mut found = false;
    // SAFETY: the closure neither panics nor re-enters the unwinder; the libgcc unwinder is
    // thread-safe on Linux, so the "unsynchronized" variant is fine.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            if !found {
                // `symbol_address` is `_Unwind_FindEnclosingFunction(ip)`: the start of the
                // function whose frame this is.
                found = frame.symbol_address() as usize == entry;
                return true;
            }
            let ip = frame.ip() as usize;
            if ip == 0 {
                // libgcc reports one last frame with ip 0 after a frame whose return address
                // is undefined (`_start`, `clone3`).
                return false;
            }
            buf[n] = ip;
            n += 1;
            n < buf.len()
        });
    }
    n
}
