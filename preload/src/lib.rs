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
//WIP mod scan;
mod stack;
mod stop;
mod unwind;
mod writer;

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

/// The pid this copy of the library records for (changes in a fork child).
static OUR_PID: AtomicU32 = AtomicU32::new(0);
/// The status passed to exit(), captured by an on_exit handler.
static EXIT_CODE: AtomicI32 = AtomicI32::new(0);
/// The image has ended: nothing more is recorded.
static ENDED: AtomicBool = AtomicBool::new(false);
/// `at_exit` is registered: exit() will run it after `fini`.
static AT_EXIT_REGISTERED: AtomicBool = AtomicBool::new(false);

pub(crate) fn is_our_process() -> bool {
    // SAFETY: getpid cannot fail.
    OUR_PID.load(Ordering::Relaxed) == unsafe { libc::getpid() } as u32
}

extern "C" {
    fn on_exit(f: extern "C" fn(c_int, *mut c_void), arg: *mut c_void) -> c_int;
}

/// The normal end of the process image. Registered from our constructor,
/// which ld.so runs before `__libc_start_main` registers `_dl_fini`: exit()
/// calls handlers last-registered-first, so this runs after the program's
/// atexit handlers, its static destructors and every library destructor —
/// only stdio's final flush and `_exit` come after it.
extern "C" fn at_exit(code: c_int, _: *mut c_void) {
    // Where the program's stack ends and ours begins, and the registers the
    // program's frames may have left pointers in: the scan's view of this thread.
    let mut regs = [0u64; 18];
    let sp: u64;
    // SAFETY: only copies registers into locals.
    unsafe {
        core::arch::asm!(
            "mov {0}, rbx", "mov {1}, rbp", "mov {2}, r12", "mov {3}, r13", "mov {4}, r14", "mov {5}, r15", "mov {6}, rsp",
            out(reg) regs[0], out(reg) regs[1], out(reg) regs[2], out(reg) regs[3], out(reg) regs[4], out(reg) regs[5],
            out(reg) sp,
            options(nostack, nomem, preserves_flags)
        );
    }
    EXIT_CODE.store(code, Ordering::Relaxed);
    if is_our_process() && !ENDED.load(Ordering::Relaxed) {
        //WIP scan::exit_scan(sp, regs);
    }
    end_normally();
}

fn end_normally() {
    if ENDED.swap(true, Ordering::Relaxed) {
        return;
    }
    hooks::end_image(
        0,
        EXIT_CODE.load(Ordering::Relaxed),
        Duration::from_secs(10),
    );
    guard::RECORDING.store(false, Ordering::Relaxed);
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
    // SAFETY: registering handlers with valid function pointers; they run
    // at fork (atfork) and at exit(), never in a signal context.
    unsafe {
        libc::pthread_atfork(
            Some(writer::before_fork),
            Some(writer::after_fork_parent),
            Some(child_pid),
        );
        if on_exit(at_exit, core::ptr::null_mut()) == 0 {
            AT_EXIT_REGISTERED.store(true, Ordering::Relaxed);
        }
    }
    let list = Box::new(modules::scan());
    writer::push(&queue::Event {
        kind: queue::kind::MODULES,
        tid: guard::tid(),
        a: Box::into_raw(list) as u64,
        ..Default::default()
    });
    writer::open_now();
    writer::spawn();
}

/// Runs from the loader's `_dl_fini`. Normally `at_exit` comes later and
/// ends the trace; this is the fallback for a library unloaded without exit.
fn fini() {
    if !is_our_process() {
        return;
    }
    if !AT_EXIT_REGISTERED.load(Ordering::Relaxed) {
        end_normally();
    }
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
