//! Stack capture for the hot path. A placeholder over libgcc's unwinder until
//! the cached unwinder lands.

/// Return addresses of the current stack, innermost first.
///
/// # Safety
/// Must run under the Guard: the unwinder may allocate.
#[inline(never)]
pub unsafe fn capture(buf: &mut [usize]) -> usize {
    let mut n = 0;
    backtrace::trace_unsynchronized(|f| {
        if n >= buf.len() {
            return false;
        }
        buf[n] = f.ip() as usize;
        n += 1;
        true
    });
    n
}
