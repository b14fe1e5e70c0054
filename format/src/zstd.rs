//! zstd, through its C library, for the chunks of format version 4.
//!
//! Every allocation the library makes goes through the Rust global
//! allocator (`ZSTD_customMem`): in the recorder that is leakhunt's private
//! heap, never the traced program's `malloc`. One context is kept per
//! writer or reader and reused for every chunk, each chunk an independent
//! frame (a cut trace decodes up to its last whole chunk; a summary skips
//! event chunks without decompressing them). Measured on a 4-thread churn
//! trace, independent 1 MB frames cost 0.2% against one stream.
//!
//! The only `unsafe` of this crate: the FFI calls, each with its contract.

use core::ffi::c_void;
use core::ptr::NonNull;
use std::alloc::{alloc, dealloc, Layout};
use zstd_sys as z;

/// Level 1: the writer compresses every event, and on churn level 3 saves
/// 9% more for twice the time.
const LEVEL: i32 = 1;
/// Largest window a frame may ask the decoder for: chunks hold at most
/// `MAX_CHUNK_RAW` (16 MiB) bytes.
const WINDOW_LOG_MAX: i32 = 25;

/// Each block starts with its total size (customFree is not given it).
const HEADER: usize = 16;

unsafe extern "C" fn z_alloc(_: *mut c_void, size: usize) -> *mut c_void {
    let Some(total) = size.checked_add(HEADER) else {
        return core::ptr::null_mut();
    };
    let Ok(layout) = Layout::from_size_align(total, HEADER) else {
        return core::ptr::null_mut();
    };
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { alloc(layout) };
    if p.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: `p` is a fresh block of at least HEADER bytes, 16-aligned.
    unsafe {
        (p as *mut usize).write(total);
        p.add(HEADER).cast()
    }
}

unsafe extern "C" fn z_free(_: *mut c_void, p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: `p` came from `z_alloc`, which put the block's total size
    // HEADER bytes before it.
    unsafe {
        let base = (p as *mut u8).sub(HEADER);
        let total = (base as *const usize).read();
        dealloc(base, Layout::from_size_align_unchecked(total, HEADER));
    }
}

fn custom_mem() -> z::ZSTD_customMem {
    z::ZSTD_customMem {
        customAlloc: Some(z_alloc),
        customFree: Some(z_free),
        opaque: core::ptr::null_mut(),
    }
}

fn is_error(code: usize) -> bool {
    // SAFETY: a pure function of its argument.
    unsafe { z::ZSTD_isError(code) != 0 }
}

/// A reusable compression context.
pub struct Compressor(NonNull<z::ZSTD_CCtx>);

// SAFETY: the context is plain memory owned by this value; zstd keeps no
// thread affinity, and `&mut self` serialises its use.
unsafe impl Send for Compressor {}

impl Compressor {
    /// `None` when the context cannot be allocated.
    pub fn new() -> Option<Compressor> {
        // SAFETY: FFI; the allocator functions are valid for the context's life.
        let c = NonNull::new(unsafe { z::ZSTD_createCCtx_advanced(custom_mem()) })?;
        // SAFETY: a live context and a valid parameter.
        let r = unsafe {
            z::ZSTD_CCtx_setParameter(
                c.as_ptr(),
                z::ZSTD_cParameter::ZSTD_c_compressionLevel,
                LEVEL,
            )
        };
        let c = Compressor(c);
        (!is_error(r)).then_some(c)
    }

    /// Appends `raw` as one zstd frame to `out`; false (and `out` as it
    /// was) if zstd failed.
    pub fn compress(&mut self, raw: &[u8], out: &mut Vec<u8>) -> bool {
        let start = out.len();
        // SAFETY: a pure function of its argument.
        let bound = unsafe { z::ZSTD_compressBound(raw.len()) };
        out.resize(start + bound, 0);
        // SAFETY: a live context; `out[start..]` is `bound` writable bytes,
        // `raw` is readable; zstd writes at most `bound` bytes.
        let n = unsafe {
            z::ZSTD_compress2(
                self.0.as_ptr(),
                out[start..].as_mut_ptr().cast(),
                bound,
                raw.as_ptr().cast(),
                raw.len(),
            )
        };
        if is_error(n) || n > bound {
            out.truncate(start);
            return false;
        }
        out.truncate(start + n);
        true
    }
}

impl Drop for Compressor {
    fn drop(&mut self) {
        // SAFETY: the context was created by ZSTD_createCCtx_advanced and is
        // not used again.
        unsafe { z::ZSTD_freeCCtx(self.0.as_ptr()) };
    }
}

/// A reusable decompression context.
pub struct Decompressor(NonNull<z::ZSTD_DCtx>);

// SAFETY: as for `Compressor`.
unsafe impl Send for Decompressor {}

impl Decompressor {
    pub fn new() -> Option<Decompressor> {
        // SAFETY: as in `Compressor::new`.
        let d = NonNull::new(unsafe { z::ZSTD_createDCtx_advanced(custom_mem()) })?;
        // SAFETY: a live context and a valid parameter.
        let r = unsafe {
            z::ZSTD_DCtx_setParameter(
                d.as_ptr(),
                z::ZSTD_dParameter::ZSTD_d_windowLogMax,
                WINDOW_LOG_MAX,
            )
        };
        let d = Decompressor(d);
        (!is_error(r)).then_some(d)
    }

    /// Decompresses one chunk's frame into all of `out`; false unless it
    /// held exactly `out.len()` bytes. Damaged input is an error, never a
    /// fault: zstd's decoder checks every bound.
    pub fn decompress(&mut self, src: &[u8], out: &mut [u8]) -> bool {
        // SAFETY: a live context; `out` is writable, `src` readable, and
        // zstd writes at most `out.len()` bytes.
        let n = unsafe {
            z::ZSTD_decompressDCtx(
                self.0.as_ptr(),
                out.as_mut_ptr().cast(),
                out.len(),
                src.as_ptr().cast(),
                src.len(),
            )
        };
        !is_error(n) && n == out.len()
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: created by ZSTD_createDCtx_advanced, not used again.
        unsafe { z::ZSTD_freeDCtx(self.0.as_ptr()) };
    }
}

/// The largest frame `raw_len` bytes can compress to.
pub fn bound(raw_len: usize) -> usize {
    // SAFETY: a pure function of its argument.
    unsafe { z::ZSTD_compressBound(raw_len) }
}
