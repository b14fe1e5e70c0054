//! `capture` equals `capture_slow` on the process's main thread, whose stack ends in `_start`
//! (glibc marks its return address undefined), through the public API only. No libtest harness
//! (`harness = false`), so that the captures really run on the main thread.

#![warn(clippy::undocumented_unsafe_blocks)]

use std::hint::black_box;

use leakhunt_unwind::{capture, capture_slow, invalidate};

type CaptureFn = unsafe fn(&mut [usize]) -> usize;

#[inline(never)]
fn call_with(f: CaptureFn, buf: &mut [usize]) -> usize {
    let f = black_box(f);
    // SAFETY: ordinary stack.
    let n = unsafe { f(buf) };
    black_box(n)
}

/// Both captures from one call site (a loop over a vector of opaque length, so that LLVM cannot
/// unroll it into two call sites).
#[inline(never)]
fn both(len: usize) -> (Vec<usize>, Vec<usize>) {
    let mut jobs: Vec<(CaptureFn, Vec<usize>)> =
        vec![(capture, vec![0; len]), (capture_slow, vec![0; len])];
    for (f, buf) in black_box(&mut jobs).iter_mut() {
        let n = call_with(*f, buf);
        buf.truncate(n);
    }
    let slow = jobs.pop().unwrap().1;
    let fast = jobs.pop().unwrap().1;
    (fast, slow)
}

#[inline(never)]
fn recurse(depth: usize, f: &mut dyn FnMut()) -> usize {
    if depth == 0 {
        f();
        return 0;
    }
    let r = recurse(black_box(depth - 1), f);
    black_box(r) + 1
}

fn main() {
    let mut passed = 0;
    let mut failed = 0;
    let mut report = |name: &str, fast: &[usize], slow: &[usize]| {
        if fast == slow && !fast.is_empty() {
            passed += 1;
            println!("test {name} ... ok ({} frames)", fast.len());
        } else {
            failed += 1;
            println!(
                "test {name} ... FAILED\n  capture:      {fast:x?}\n  capture_slow: {slow:x?}"
            );
        }
    };
    for (name, depth, len) in [
        ("main_thread_shallow", 0, 128),
        ("main_thread_deep", 40, 128),
        ("main_thread_truncated", 40, 10),
    ] {
        for round in 0..3 {
            if round == 2 {
                invalidate();
            }
            let mut r = None;
            recurse(depth, &mut || r = Some(both(len)));
            let (fast, slow) = r.unwrap();
            report(&format!("{name}_{round}"), &fast, &slow);
        }
    }
    println!("\ntest result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out", if failed == 0 { "ok" } else { "FAILED" });
    if failed != 0 {
        std::process::exit(1);
    }
}
