//! The one lock shape the recorder uses off the hot path: a flag taken with
//! a compare-and-swap, spun on briefly, then slept on (its holders may work
//! for a while: the writer compresses a chunk under it). No system call
//! unless contended, no allocation, nothing a fork child could inherit half
//! set up but the flag itself.

use core::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct SpinLock(AtomicBool);

impl SpinLock {
    pub const fn new() -> Self {
        SpinLock(AtomicBool::new(false))
    }

    pub fn lock(&self) {
        let mut spins = 0u32;
        while self
            .0
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < 100 {
                core::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    pub fn unlock(&self) {
        self.0.store(false, Ordering::Release);
    }
}
