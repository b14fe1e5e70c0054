//! libleakhunt.so: the recorder that runs inside the traced process.
//!
//! Loaded with `LD_PRELOAD`, it interposes the allocator (`hooks`), captures
//! each allocating stack (`stack`, `unwind`), and hands events over a
//! lock-free queue (`queue`) to one writer thread (`writer`) that keeps the
//! live-block table and writes the trace (`output`, format crate).
//!
//! Everything here runs in somebody else's process: it must never deadlock,
//! crash, or change what the program does. The hot path takes no lock, makes
//! no system call and does no allocation of its own (a cache miss of the
//! unwinder may allocate, unrecorded, under the reentrancy guard).

mod guard;
mod hooks;
mod modules;
mod output;
mod queue;
mod real;
mod stack;
mod unwind;
mod writer;

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

/// The pid this copy of the library records for (changes in a fork child).
static OUR_PID: AtomicU32 = AtomicU32::new(0);
/// The status passed to exit(), captured by an on_exit handler.
static EXIT_CODE: AtomicI32 = AtomicI32::new(0);

pub(crate) fn is_our_process() -> bool {
    // SAFETY: getpid cannot fail.
    OUR_PID.load(Ordering::Relaxed) == unsafe { libc::getpid() } as u32
}

extern "C" {
    fn on_exit(f: extern "C" fn(c_int, *mut c_void), arg: *mut c_void) -> c_int;
}

extern "C" fn remember_exit_code(code: c_int, _: *mut c_void) {
    EXIT_CODE.store(code, Ordering::Relaxed);
}

extern "C" fn child_pid() {
    // SAFETY: getpid cannot fail.
    OUR_PID.store(unsafe { libc::getpid() } as u32, Ordering::Relaxed);
    guard::forget_tid();
    // Starting the child's writer allocates: that is ours, not the program's.
    let _g = guard::Guard::enter();
    writer::after_fork_child();
}

fn init() {
    if real::get().is_none() {
        return;
    }
    let Some(_g) = guard::Guard::enter() else {
        return;
    };
    // SAFETY: getpid cannot fail.
    OUR_PID.store(unsafe { libc::getpid() } as u32, Ordering::Relaxed);
    writer::start_time();
    let (lo, hi) = modules::text_range_of(init as *const () as usize);
    stack::set_self_text(lo, hi);
    // SAFETY: registering handlers with valid function pointers; they run
    // at fork (atfork) and at exit(), never in a signal context.
    unsafe {
        libc::pthread_atfork(
            Some(writer::before_fork),
            Some(writer::after_fork_parent),
            Some(child_pid),
        );
        on_exit(remember_exit_code, core::ptr::null_mut());
    }
    let list = Box::new(modules::scan());
    writer::push(&queue::Event {
        kind: queue::kind::MODULES,
        tid: guard::tid(),
        a: Box::into_raw(list) as u64,
        ..Default::default()
    });
    writer::spawn();
}

/// Runs from the loader's `_dl_fini`, after the program's atexit handlers and
/// static destructors: the process image is ending normally.
fn fini() {
    hooks::end_image(
        0,
        EXIT_CODE.load(Ordering::Relaxed),
        Duration::from_secs(10),
    );
    guard::RECORDING.store(false, Ordering::Relaxed);
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = {
    extern "C" fn f() {
        init()
    }
    f
};

#[used]
#[link_section = ".fini_array"]
static FINI: extern "C" fn() = {
    extern "C" fn f() {
        fini()
    }
    f
};
