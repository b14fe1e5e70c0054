//! libleakhunt.so: the recorder that runs inside the traced process.
//!
//! Loaded with `LD_PRELOAD`, it interposes the allocator (`hooks`), captures
//! each allocating stack (`stack`, `unwind`), and hands events over a
//! lock-free queue (`queue`) to one writer thread (`writer`) that keeps the
//! live-block table and writes the trace (`output`, format crate). What it
//! allocates comes from a heap of its own (`heap`), never the program's.
//!
//! Everything here runs in somebody else's process: it must never deadlock,
//! crash, or change what the program does. The hot path takes no lock, makes
//! no system call and does no allocation of its own (a cache miss of the
//! unwinder may allocate, unrecorded, under the reentrancy guard).

mod clear;
mod crash;
mod cxx;
mod environ;
mod guard;
mod heap;
mod hooks;
mod live;
mod modules;
mod output;
mod python;
mod queue;
mod real;
mod scan;
mod spin;
mod stack;
mod stop;
mod unwind;
mod writer;

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

/// Starts fetching the cache line at `p` ahead of its use. A plain read
/// prefetch (PREFETCHW is not on every x86_64 CPU).
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    // SAFETY: a prefetch has no effect beyond the cache, whatever the address.
    unsafe { core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast()) };
}

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
#[unsafe(naked)]
extern "C" fn at_exit(_code: c_int, _arg: *mut c_void) {
    // Before any prologue touches them: the stack pointer (it addresses our
    // return slot, just below the caller's frame) and the callee-saved
    // registers, which may hold the program's pointers. The scan's view of
    // this thread starts here.
    core::arch::naked_asm!(
        "mov [rip + {regs}], rbx",
        "mov [rip + {regs} + 8], rbp",
        "mov [rip + {regs} + 16], r12",
        "mov [rip + {regs} + 24], r13",
        "mov [rip + {regs} + 32], r14",
        "mov [rip + {regs} + 40], r15",
        "mov rsi, rsp",
        "jmp {body}",
        regs = sym EXIT_REGS,
        body = sym at_exit_body,
    )
}

/// Callee-saved registers at the entry of `at_exit` (rbx, rbp, r12-r15).
static mut EXIT_REGS: [u64; 6] = [0; 6];

extern "C" fn at_exit_body(code: c_int, return_slot: u64) {
    EXIT_CODE.store(code, Ordering::Relaxed);
    if is_our_process() && !ENDED.load(Ordering::Relaxed) {
        let mut regs = [0u64; 18];
        // SAFETY: written by at_exit just before, on this thread only.
        regs[..6].copy_from_slice(unsafe { &*core::ptr::addr_of!(EXIT_REGS) });
        let mut ips = [0usize; 64];
        let n = match guard::Guard::internal() {
            // SAFETY: under the guard, as capture requires.
            Some(_g) => unsafe { unwind::capture(&mut ips) },
            None => 0,
        };
        scan::exit_scan(return_slot + 8, regs, &ips[..n]);
    }
    end_normally();
}

fn end_normally() {
    if ENDED.swap(true, Ordering::Relaxed) {
        return;
    }
    hooks::end_image(
        queue::end::EXIT,
        EXIT_CODE.load(Ordering::Relaxed),
        Duration::from_secs(10),
    );
    guard::RECORDING.store(false, Ordering::Relaxed);
}

extern "C" fn child_pid() {
    // SAFETY: getpid cannot fail.
    OUR_PID.store(unsafe { libc::getpid() } as u32, Ordering::Relaxed);
    guard::forget_tid();
    hooks::forget_exiting();
    // Starting the child's writer allocates: that is ours, not the program's.
    let _g = guard::Guard::internal();
    writer::after_fork_child();
}

fn init() {
    if real::get().is_none() {
        return;
    }
    let Some(_g) = guard::Guard::internal() else {
        return;
    };
    // SAFETY: getpid cannot fail.
    OUR_PID.store(unsafe { libc::getpid() } as u32, Ordering::Relaxed);
    writer::start_time();
    clear::configure();
    // Before the program's main reads its environment (bash and Python copy
    // it at start): what it execs inherits the edited one.
    if !environ::configure_children() {
        writer::say("LEAKHUNT_TRACE_CHILDREN=no: cannot take libleakhunt.so out of LD_PRELOAD; exec'd programs are recorded too");
    }
    // SAFETY: registering handlers with valid function pointers; they run
    // at fork (atfork) and at exit(), never in a signal context.
    unsafe {
        // First: prepare handlers run last-registered-first, and the heap
        // must be taken after the writer's flush, which allocates.
        libc::pthread_atfork(
            Some(heap::before_fork),
            Some(heap::after_fork),
            Some(heap::after_fork),
        );
        libc::pthread_atfork(
            Some(writer::before_fork),
            Some(writer::after_fork_parent),
            Some(child_pid),
        );
        if on_exit(at_exit, core::ptr::null_mut()) == 0 {
            AT_EXIT_REGISTERED.store(true, Ordering::Relaxed);
        }
    }
    hooks::check_interposition();
    hooks::send_modules();
    python::detect();
    python::install_allocators();
    writer::open_now();
    writer::spawn();
    crash::install();
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
