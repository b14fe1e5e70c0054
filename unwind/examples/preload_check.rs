//! `LD_PRELOAD` checker: on every `malloc` of the host program, captures the stack with
//! `capture` and `capture_slow` and compares them; prints a summary at exit. Built as a cdylib:
//!
//! ```text
//! cargo build --release --example preload_check --features diagnostics
//! LD_PRELOAD=target/release/examples/libpreload_check.so python3 -c 'import json'
//! ```
//!
//! `PRELOAD_CHECK_MODE=fast|slow|unw|none` instead only captures with `capture` /
//! `capture_slow` / libunwind's `unw_backtrace` (dlopen'ed, per-thread cache) / nothing on every
//! `malloc` (to time the host program with each), and prints the count.
//!
//! Used by the ignored test `tests/real_programs.rs`.

#![warn(clippy::undocumented_unsafe_blocks)]

use std::cell::Cell;
use std::ffi::c_void;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use leakhunt_unwind::{capture, capture_slow, diagnostics};

extern "C" {
    fn __libc_malloc(size: usize) -> *mut c_void;
}

/// 0 compare, 1 fast only, 2 slow only, 3 nothing, 4 unw_backtrace.
static MODE: AtomicU64 = AtomicU64::new(0);
static UNW_BACKTRACE: AtomicU64 = AtomicU64::new(0);
/// A private duplicate of stderr (some programs, e.g. coreutils, close fd 2 in an atexit handler).
static REPORT_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(2);
static CHECKED: AtomicU64 = AtomicU64::new(0);
static MISMATCHES: AtomicU64 = AtomicU64::new(0);
static FRAMES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static GUARD: Cell<bool> = const { Cell::new(false) };
}

type CaptureFn = unsafe fn(&mut [usize]) -> usize;

#[inline(never)]
fn call_with(f: CaptureFn, buf: &mut [usize]) -> usize {
    let f = black_box(f);
    // SAFETY: the host's stack, described by its CFI.
    let n = unsafe { f(buf) };
    black_box(n)
}

/// Both captures from one call site; no allocation.
#[inline(never)]
fn check() {
    let fns: [CaptureFn; 2] = [capture, capture_slow];
    let mut bufs = [[0usize; 128]; 2];
    let mut counts = [0usize; 2];
    for ((f, buf), n) in black_box(&fns[..])
        .iter()
        .zip(black_box(&mut bufs[..]).iter_mut())
        .zip(black_box(&mut counts[..]).iter_mut())
    {
        *n = call_with(*f, buf);
    }
    CHECKED.fetch_add(1, Relaxed);
    FRAMES.fetch_add(counts[1] as u64, Relaxed);
    if bufs[0][..counts[0]] != bufs[1][..counts[1]] && MISMATCHES.fetch_add(1, Relaxed) < 3 {
        let mut msg = [0u8; 4096];
        let mut w = Writer(&mut msg, 0);
        let _ = std::fmt::write(
            &mut w,
            format_args!(
                "preload_check: MISMATCH\n  capture      {:x?}\n  capture_slow {:x?}\n",
                &bufs[0][..counts[0]],
                &bufs[1][..counts[1]]
            ),
        );
        let len = w.1;
        // SAFETY: writing our own buffer to stderr.
        unsafe { libc::write(REPORT_FD.load(Relaxed), msg.as_ptr().cast(), len) };
    }
}

/// Formats into a fixed buffer (no allocation inside malloc).
struct Writer<'a>(&'a mut [u8], usize);

impl std::fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.0.len() - self.1);
        self.0[self.1..self.1 + n].copy_from_slice(&s.as_bytes()[..n]);
        self.1 += n;
        Ok(())
    }
}

/// # Safety
///
/// It is `malloc`.
#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    // SAFETY: glibc's allocator proper.
    let p = unsafe { __libc_malloc(size) };
    // try_with: TLS may be gone in a thread's very last moments.
    let entered = GUARD.try_with(|g| !g.replace(true)).unwrap_or(false);
    if entered {
        match MODE.load(Relaxed) {
            0 => check(),
            m => {
                let mut buf = [0usize; 128];
                let n = match m {
                    // SAFETY: the host's stack, described by its CFI.
                    1 => unsafe { capture(&mut buf) },
                    // SAFETY: as above.
                    2 => unsafe { capture_slow(&mut buf) },
                    4 if UNW_BACKTRACE.load(Relaxed) == 0 => 0, // still loading it
                    // SAFETY: UNW_BACKTRACE is unw_backtrace (set at init with mode 4).
                    4 => unsafe {
                        let f: unsafe extern "C" fn(*mut usize, i32) -> i32 =
                            std::mem::transmute(UNW_BACKTRACE.load(Relaxed) as usize);
                        f(buf.as_mut_ptr(), 128) as usize
                    },
                    _ => 0,
                };
                CHECKED.fetch_add(1, Relaxed);
                FRAMES.fetch_add(black_box(n) as u64, Relaxed);
            }
        }
        GUARD.with(|g| g.set(false));
    }
    p
}

extern "C" fn report() {
    let checked = CHECKED.load(Relaxed);
    let mut msg = [0u8; 512];
    let mut w = Writer(&mut msg, 0);
    let _ = std::fmt::write(
        &mut w,
        format_args!(
            "preload_check: {} stacks {}, {} mismatches, {} fallbacks, {:.1} frames/stack\n",
            checked,
            [
                "compared",
                "captured (fast)",
                "captured (slow)",
                "not captured",
                "captured (unw)"
            ][MODE.load(Relaxed) as usize],
            MISMATCHES.load(Relaxed),
            diagnostics::fallback_count(),
            FRAMES.load(Relaxed) as f64 / checked.max(1) as f64
        ),
    );
    let len = w.1;
    // SAFETY: writing our own buffer to stderr.
    unsafe { libc::write(REPORT_FD.load(Relaxed), msg.as_ptr().cast(), len) };
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = {
    extern "C" fn init() {
        // SAFETY: getenv before any thread exists; registering a plain function.
        unsafe {
            let mode = libc::getenv(c"PRELOAD_CHECK_MODE".as_ptr());
            if !mode.is_null() {
                MODE.store(
                    match std::ffi::CStr::from_ptr(mode).to_bytes() {
                        b"fast" => 1,
                        b"slow" => 2,
                        b"none" => 3,
                        b"unw" => 4,
                        _ => 0,
                    },
                    Relaxed,
                );
            }
            if MODE.load(Relaxed) == 4 {
                let h = libc::dlopen(
                    c"libunwind.so.8".as_ptr(),
                    libc::RTLD_NOW | libc::RTLD_LOCAL,
                );
                assert!(!h.is_null(), "no libunwind.so.8");
                let space =
                    *(libc::dlsym(h, c"_ULx86_64_local_addr_space".as_ptr()) as *const usize);
                let set_policy: unsafe extern "C" fn(usize, i32) -> i32 =
                    std::mem::transmute(libc::dlsym(h, c"_ULx86_64_set_caching_policy".as_ptr()));
                let set_size: unsafe extern "C" fn(usize, usize, i32) -> i32 =
                    std::mem::transmute(libc::dlsym(h, c"_ULx86_64_set_cache_size".as_ptr()));
                set_policy(space, 2); // UNW_CACHE_PER_THREAD, as heaptrack
                set_size(space, 1024, 0);
                UNW_BACKTRACE.store(libc::dlsym(h, c"unw_backtrace".as_ptr()) as u64, Relaxed);
            }
            let fd = libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 100);
            if fd >= 0 {
                REPORT_FD.store(fd, Relaxed);
            }
            libc::atexit(report);
        }
    }
    init
};
