//! The two edits the recorder makes to its own process's environment, once,
//! from the constructor (before `main`, before any thread of the program):
//!
//! - `LEAKHUNT_TRACE_CHILDREN=no` (valgrind's `--trace-children=no`): the
//!   images this process execs are not recorded. Our library is taken out of
//!   `LD_PRELOAD` in the environment the program inherits, so whatever it
//!   runs — `execve`, `posix_spawn`, `system`, a shell — starts without us,
//!   whichever entry point it takes (glibc's `posix_spawn` reaches the kernel
//!   without any hook of ours, so the environment is the one place that
//!   covers them all). A forked child without exec is the same program, with
//!   the library still mapped, and stays recorded, as under valgrind.
//! - `%r` in `$LEAKHUNT_OUTPUT` (what `leakhunt run` passes): the first
//!   process of a run fixes its trace's path for every process it starts,
//!   so each of them writes `MAIN.<pid>[.n]` beside the run's main trace
//!   (`output.rs`) instead of a name of its own that nothing ties to the run.
//!
//! Neither edit allocates from the program's heap: an entry of `environ` is
//! pointed at a string in our own static memory (the kernel's copy, in
//! /proc/self/environ, is left as it was), or removed as glibc's `unsetenv`
//! removes one, shifting the pointers after it. The program sees our two
//! variables changed and nothing else.

use core::ffi::{c_char, CStr};
use core::sync::atomic::{AtomicBool, Ordering};

extern "C" {
    static mut environ: *mut *mut c_char;
}

/// Room for one rewritten `NAME=value` (PATH_MAX and the name).
const ENTRY_MAX: usize = 4096 + 64;

/// The strings the edited entries point at: they must live as long as the
/// process, and only the constructor writes them.
struct Entry(core::cell::UnsafeCell<[u8; ENTRY_MAX]>);
// SAFETY: written once, from the constructor or the single thread of a
// fresh process (see `set`), read afterwards only through `environ`.
unsafe impl Sync for Entry {}

static OUTPUT_ENTRY: Entry = Entry(core::cell::UnsafeCell::new([0; ENTRY_MAX]));
static PRELOAD_ENTRY: Entry = Entry(core::cell::UnsafeCell::new([0; ENTRY_MAX]));
/// The output template was fixed once: later calls (a failed exec, a fork
/// child) leave it alone.
static PINNED: AtomicBool = AtomicBool::new(false);

/// The index of `name`'s entry in `environ`.
///
/// # Safety
/// Nothing else edits the environment meanwhile (the constructor).
unsafe fn find(name: &[u8]) -> Option<usize> {
    let env = environ;
    if env.is_null() {
        return None;
    }
    let mut i = 0;
    loop {
        let e = *env.add(i);
        if e.is_null() {
            return None;
        }
        let bytes = CStr::from_ptr(e).to_bytes();
        if bytes.len() > name.len() && bytes.starts_with(name) && bytes[name.len()] == b'=' {
            return Some(i);
        }
        i += 1;
    }
}

/// Points `name`'s entry at `NAME=value` in `slot`. False when there is no
/// such entry or the value does not fit.
///
/// # Safety
/// As `find`; `slot` is not pointed at by the environment yet.
unsafe fn set(slot: &Entry, name: &[u8], value: &[u8]) -> bool {
    let Some(i) = find(name) else {
        return false;
    };
    let len = name.len() + 1 + value.len();
    if len + 1 > ENTRY_MAX || value.contains(&0) {
        return false;
    }
    let buf = &mut *slot.0.get();
    buf[..name.len()].copy_from_slice(name);
    buf[name.len()] = b'=';
    buf[name.len() + 1..len].copy_from_slice(value);
    buf[len] = 0;
    *environ.add(i) = buf.as_mut_ptr().cast();
    true
}

/// After the first process of a run created its trace at `path`: the
/// processes it starts write beside it (`%r` is gone from the template, so
/// `output::create` gives them `path.<pid>`). `%` in the path is escaped,
/// as the template's syntax wants; a `%p` the user put in it is kept, so
/// each of them is still named by its own pid where that was asked for.
pub fn pin_output(template: &str, path: &str) {
    if PINNED.swap(true, Ordering::Relaxed) {
        return;
    }
    let pinned = crate::output::pinned_template(template, path);
    // SAFETY: called once, from the constructor's `open_now` (see
    // `writer::open_now`), before the program's own threads exist.
    unsafe { set(&OUTPUT_ENTRY, b"LEAKHUNT_OUTPUT", pinned.as_bytes()) };
}

/// `LEAKHUNT_TRACE_CHILDREN=no`: takes our library out of `LD_PRELOAD`, so
/// that exec'd images run unrecorded. Returns false when it was asked for
/// and could not be done (the caller says so).
pub fn configure_children() -> bool {
    if !std::env::var("LEAKHUNT_TRACE_CHILDREN").is_ok_and(|v| v == "no" || v == "0") {
        return true;
    }
    let Ok(preload) = std::env::var("LD_PRELOAD") else {
        return true;
    };
    let ours = our_path();
    // ld.so splits LD_PRELOAD at spaces and colons.
    let kept: Vec<&str> = preload
        .split([':', ' '])
        .filter(|e| !e.is_empty() && !is_ours(e, ours.as_deref()))
        .collect();
    if kept.is_empty() {
        // SAFETY: from the constructor; glibc's unsetenv shifts the entries
        // in place and allocates nothing.
        return unsafe { libc::unsetenv(c"LD_PRELOAD".as_ptr()) } == 0;
    }
    // SAFETY: from the constructor, before the program's threads exist.
    unsafe { set(&PRELOAD_ENTRY, b"LD_PRELOAD", kept.join(":").as_bytes()) }
}

/// The file this library was loaded from.
fn our_path() -> Option<String> {
    // SAFETY: an address inside this library; dladdr may be called here
    // (the constructor, not a signal handler).
    let (_, name) = unsafe { crate::real::object_of(our_path as *const core::ffi::c_void) }?;
    Some(name.to_string_lossy().into_owned())
}

/// Is this LD_PRELOAD entry our library? The same file (by device and
/// inode), or, for a bare name the loader looked up, the same file name.
fn is_ours(entry: &str, ours: Option<&str>) -> bool {
    let Some(ours) = ours else {
        return entry.rsplit('/').next() == Some("libleakhunt.so");
    };
    if !entry.contains('/') {
        return Some(entry) == ours.rsplit('/').next();
    }
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(entry), std::fs::metadata(ours)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => entry == ours,
    }
}
