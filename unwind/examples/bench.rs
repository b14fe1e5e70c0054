//! ns per stack capture on a 30-frame stack: `capture` (cached CFI) vs `capture_slow`
//! (`_Unwind_Backtrace`) vs libunwind's `unw_backtrace` with per-thread caching (heaptrack's
//! configuration), the latter only if `libunwind.so.8` can be dlopen'ed.
//!
//! Run with `cargo run --release --example bench [iterations]`; `BENCH_MIN=1` reports the fastest
//! of the 15 rounds instead of the median (steadier on a shared machine).

#![warn(clippy::undocumented_unsafe_blocks)]

use std::ffi::{c_int, c_void, CStr};
use std::hint::black_box;
use std::time::Instant;

use leakhunt_unwind::{capture, capture_slow, invalidate};

const FRAMES: usize = 30;

#[inline(never)]
fn recurse(depth: usize, f: &mut dyn FnMut()) -> usize {
    if depth == 0 {
        f();
        return 0;
    }
    let r = recurse(black_box(depth - 1), f);
    black_box(r) + 1
}

type UnwBacktrace = unsafe extern "C" fn(*mut *mut c_void, c_int) -> c_int;

/// dlopen()s libunwind (RTLD_LOCAL: its `_Unwind_*` must not interpose libgcc's) and configures
/// it as heaptrack does: per-thread caching, cache size 1024.
fn libunwind() -> Result<UnwBacktrace, String> {
    // SAFETY: plain dlopen/dlsym with NUL-terminated names; the symbols have the C types used.
    unsafe {
        let h = libc::dlopen(
            c"libunwind.so.8".as_ptr(),
            libc::RTLD_NOW | libc::RTLD_LOCAL,
        );
        if h.is_null() {
            return Err(CStr::from_ptr(libc::dlerror())
                .to_string_lossy()
                .into_owned());
        }
        let sym = |name: &CStr| {
            let p = libc::dlsym(h, name.as_ptr());
            if p.is_null() {
                Err(format!("no {name:?} in libunwind.so.8"))
            } else {
                Ok(p)
            }
        };
        let space = *(sym(c"_ULx86_64_local_addr_space")? as *const *mut c_void);
        let set_policy: unsafe extern "C" fn(*mut c_void, c_int) -> c_int =
            std::mem::transmute(sym(c"_ULx86_64_set_caching_policy")?);
        let set_size: unsafe extern "C" fn(*mut c_void, usize, c_int) -> c_int =
            std::mem::transmute(sym(c"_ULx86_64_set_cache_size")?);
        const UNW_CACHE_PER_THREAD: c_int = 2;
        if set_policy(space, UNW_CACHE_PER_THREAD) != 0 {
            return Err("unw_set_caching_policy failed".into());
        }
        if set_size(space, 1024, 0) != 0 {
            return Err("unw_set_cache_size failed".into());
        }
        Ok(std::mem::transmute::<*mut c_void, UnwBacktrace>(sym(
            c"unw_backtrace",
        )?))
    }
}

/// Median over `ROUNDS` rounds of the mean ns per call of `f` (the machine is shared and noisy).
/// (`dyn` and not inlined: every method then runs at the same stack depth.)
#[inline(never)]
fn time(iters: u32, f: &mut dyn FnMut() -> usize) -> (f64, usize) {
    const ROUNDS: usize = 15;
    let mut frames = 0;
    for _ in 0..iters / 10 {
        frames = f();
    }
    let mut per_round: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                frames = black_box(f());
            }
            start.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .collect();
    per_round.sort_by(f64::total_cmp);
    if std::env::var_os("BENCH_MIN").is_some() {
        return (per_round[0], frames);
    }
    (per_round[ROUNDS / 2], frames)
}

#[inline(never)]
fn leaf_a(f: &mut dyn FnMut() -> usize) -> usize {
    f() + black_box(1)
}

#[inline(never)]
fn leaf_b(f: &mut dyn FnMut() -> usize) -> usize {
    let mut pad = [0u8; 200];
    black_box(&mut pad);
    leaf_a(f) + pad[7] as usize
}

#[inline(never)]
fn leaf_c(depth: usize, f: &mut dyn FnMut() -> usize) -> usize {
    if depth == 0 {
        return leaf_b(f);
    }
    leaf_c(black_box(depth - 1), f) + 1
}

/// Like an allocating program: the innermost 1-5 frames change from call to call (four call
/// paths, round robin), the outer ones stay.
#[inline(never)]
fn varying(i: usize, f: &mut dyn FnMut() -> usize) -> usize {
    match i % 4 {
        0 => leaf_a(f),
        1 => leaf_b(f),
        2 => leaf_c(1, f),
        _ => leaf_c(3, f),
    }
}

fn main() {
    let iters: u32 = std::env::args()
        .nth(1)
        .map_or(100_000, |s| s.parse().unwrap());
    // Choose the recursion depth so that the leaf sees exactly FRAMES frames.
    let mut base = 0;
    recurse(0, &mut || {
        let mut buf = [0usize; 256];
        // SAFETY: ordinary stack.
        base = time(10, &mut || unsafe { capture_slow(&mut buf) }).1;
    });
    let depth = FRAMES
        .checked_sub(base)
        .expect("stack already deeper than FRAMES");
    let unw = libunwind();
    println!(
        "x86_64, {} iterations x 15 rounds per method, {} round:",
        iters,
        if std::env::var_os("BENCH_MIN").is_some() {
            "fastest"
        } else {
            "median"
        }
    );
    recurse(depth, &mut || {
        let mut buf = [0usize; 64];
        let (fast, n_fast) = time(iters, &mut || {
            // SAFETY: ordinary stack.
            unsafe { capture(&mut buf) }
        });
        let (slow, n_slow) = time(iters / 20, &mut || {
            // SAFETY: ordinary stack.
            unsafe { capture_slow(&mut buf) }
        });
        assert_eq!(n_fast, n_slow);
        // Cold: every rule a miss. invalidate() (clearing the 512 KiB table) is timed alone and
        // subtracted; each is the fastest of 20 batches of 20.
        let batch = |with_capture: bool, buf: &mut [usize]| {
            (0..20)
                .map(|_| {
                    let start = Instant::now();
                    for _ in 0..20 {
                        invalidate();
                        if with_capture {
                            // SAFETY: ordinary stack.
                            black_box(unsafe { capture(buf) });
                        }
                    }
                    start.elapsed().as_nanos() as f64 / 20.0
                })
                .fold(f64::INFINITY, f64::min)
        };
        let inv = batch(false, &mut buf);
        let cold = batch(true, &mut buf) - inv;
        println!("same {n_fast}-frame stack each time:");
        println!("  capture (cached CFI + per-thread memo):  {fast:8.1} ns/capture");
        println!("  capture_slow (_Unwind_Backtrace):        {slow:8.1} ns/capture");
        match &unw {
            Ok(unw_backtrace) => {
                let mut pbuf = [std::ptr::null_mut::<c_void>(); 64];
                let (t, n) = time(iters, &mut || {
                    // SAFETY: valid buffer of 64 pointers.
                    unsafe { unw_backtrace(pbuf.as_mut_ptr(), 64) as usize }
                });
                println!("  unw_backtrace (libunwind 1.6, per-thread cache): {t:8.1} ns/capture ({n} frames)");
            }
            Err(e) => println!("  unw_backtrace: SKIPPED ({e})"),
        }
        println!("  capture with all caches empty:           {cold:8.1} ns/capture ({FRAMES} rule misses; invalidate() itself {inv:.0} ns more)");

        let mut i = 0;
        let mut frames = 0;
        let (var_fast, _) = time(iters, &mut || {
            i += 1;
            varying(i, &mut || {
                // SAFETY: ordinary stack.
                frames = unsafe { capture(&mut buf) };
                frames
            })
        });
        let (var_slow, _) = time(iters / 20, &mut || {
            i += 1;
            varying(i, &mut || {
                // SAFETY: ordinary stack.
                unsafe { capture_slow(&mut buf) }
            })
        });
        println!(
            "innermost 1-5 frames varying ({}-{} frames):",
            FRAMES + 2,
            FRAMES + 6
        );
        println!("  capture:       {var_fast:8.1} ns/capture");
        println!("  capture_slow:  {var_slow:8.1} ns/capture");
        if let Ok(unw_backtrace) = &unw {
            let mut pbuf = [std::ptr::null_mut::<c_void>(); 64];
            let (t, _) = time(iters, &mut || {
                i += 1;
                varying(i, &mut || {
                    // SAFETY: valid buffer of 64 pointers.
                    unsafe { unw_backtrace(pbuf.as_mut_ptr(), 64) as usize }
                })
            });
            println!("  unw_backtrace: {t:8.1} ns/capture");
        }
    });
}
