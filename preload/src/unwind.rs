//! Stack capture for the hot path: the cached CFI unwinder of `unwind/`.

/// Return addresses of the current stack, innermost first (starting inside
/// our own code, which the caller skips).
///
/// # Safety
/// Must run under the Guard: a cache miss of the unwinder may allocate.
#[inline(always)]
pub unsafe fn capture(buf: &mut [usize]) -> usize {
    leakhunt_unwind::capture(buf)
}

/// Code may have been unloaded: cached unwind rules for it must go.
pub fn invalidate() {
    leakhunt_unwind::invalidate()
}
