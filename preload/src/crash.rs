//! A crash loses nothing already recorded: on a fatal signal (SIGSEGV,
//! SIGBUS, SIGILL, SIGFPE) the writer is asked to write out everything
//! queued, then the signal takes its default course, so the program dies as
//! it would have (same signal, same core dump).
//!
//! Installed from the constructor for signals whose disposition is still
//! the default; a program that installs its own handler later replaces
//! ours and is on its own. The main thread gets an alternate signal stack
//! of ours (when it has none) so that a stack overflow is flushed too.

use core::ffi::{c_int, c_void};
use std::time::Duration;

const FATAL: [c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];
const ALT_STACK: usize = 64 << 10;

/// From the constructor.
pub fn install() {
    // SAFETY: sigaction/sigaltstack with valid, zero-initialised structures;
    // the handler is async-signal-aware (see `on_fatal`).
    unsafe {
        let mut old: libc::stack_t = core::mem::zeroed();
        if libc::sigaltstack(core::ptr::null(), &mut old) == 0
            && old.ss_flags & libc::SS_DISABLE != 0
        {
            let sp = crate::heap::pages(ALT_STACK, 0);
            if !sp.is_null() {
                let st = libc::stack_t {
                    ss_sp: sp.cast(),
                    ss_flags: 0,
                    ss_size: ALT_STACK,
                };
                libc::sigaltstack(&st, core::ptr::null_mut());
            }
        }
        for sig in FATAL {
            let mut cur: libc::sigaction = core::mem::zeroed();
            if libc::sigaction(sig, core::ptr::null(), &mut cur) != 0
                || cur.sa_sigaction != libc::SIG_DFL
            {
                continue;
            }
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = on_fatal as *const () as usize;
            sa.sa_flags =
                libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESETHAND | libc::SA_NODEFER;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, core::ptr::null_mut());
        }
    }
}

/// The disposition is back to the default (SA_RESETHAND) when this runs.
/// Pushing to the queue is lock-free and waiting is a sleep: nothing here
/// takes a lock the crashed thread may hold. A crash inside one of our own
/// pushes leaves a slot the writer cannot pass: the wait is bounded.
extern "C" fn on_fatal(sig: c_int, _info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    if crate::is_our_process() {
        crate::writer::request(crate::queue::kind::FLUSH, 0, 0, Duration::from_secs(2));
    }
    // SAFETY: re-raising a signal whose disposition is now the default
    // ends the process the way the signal would have.
    unsafe { libc::raise(sig) };
}
