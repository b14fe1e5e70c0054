//! C++ `operator new` and `operator delete`, for allocators that bring their
//! own (jemalloc, tcmalloc, mimalloc).
//!
//! libstdc++'s operators call `malloc` and `free` through the PLT, where we
//! record them; jemalloc's and tcmalloc's go straight to their allocator, so
//! with one of those loaded after us a C++ program's objects were never
//! seen (2 of 203 allocations recorded). We define all 20 operators: with
//! libstdc++'s behind us they only pass the call on (the throwing ones by a
//! jump, so no frame of ours is left on the stack); with another library's,
//! they record the call, with that library's operator as the innermost frame
//! (memcheck's stacks and suppressions start at `operator new`).
//!
//! The throwing `new`s are assembly: an exception (`bad_alloc`, or one from
//! the program's new-handler) must never cross a Rust frame. They ask the
//! `nothrow` form first and record what it returns; only when it fails do
//! they jump to the throwing one, which then runs the new-handler and throws
//! from where the program called.
//!
//! The next definition is looked up on first use, not at start-up: a
//! program that is not C++ may `dlopen` C++ code later with `RTLD_LOCAL`
//! (CPython's extensions), whose calls then bind to ours while libstdc++ is
//! out of `dlsym(RTLD_NEXT)`'s reach; it is then found among the loaded
//! objects.

use crate::guard::{self, Guard};
use crate::hooks::{record_alloc_with_top, record_free};
use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use leakhunt_format::AllocFn;

/// The operators, by mangled name. The first four throw, the next four are
/// their `nothrow` forms in the same order; the rest are the deletes.
const NAMES: [&[u8]; 20] = [
    b"_Znwm\0",
    b"_Znam\0",
    b"_ZnwmSt11align_val_t\0",
    b"_ZnamSt11align_val_t\0",
    b"_ZnwmRKSt9nothrow_t\0",
    b"_ZnamRKSt9nothrow_t\0",
    b"_ZnwmSt11align_val_tRKSt9nothrow_t\0",
    b"_ZnamSt11align_val_tRKSt9nothrow_t\0",
    b"_ZdlPv\0",
    b"_ZdaPv\0",
    b"_ZdlPvm\0",
    b"_ZdaPvm\0",
    b"_ZdlPvSt11align_val_t\0",
    b"_ZdaPvSt11align_val_t\0",
    b"_ZdlPvmSt11align_val_t\0",
    b"_ZdaPvmSt11align_val_t\0",
    b"_ZdlPvRKSt9nothrow_t\0",
    b"_ZdaPvRKSt9nothrow_t\0",
    b"_ZdlPvSt11align_val_tRKSt9nothrow_t\0",
    b"_ZdaPvSt11align_val_tRKSt9nothrow_t\0",
];
const NOTHROW: usize = 4;

/// The next definition of each operator (0: not found yet). Read by the
/// assembly below.
static NEXT: [AtomicUsize; 20] = [const { AtomicUsize::new(0) }; 20];

/// Not looked up yet / libstdc++'s: pass on / another allocator's: record.
const UNKNOWN: u8 = 0;
const FORWARD: u8 = 1;
const RECORD: u8 = 2;
static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// The `std::nothrow` argument: an empty struct passed by reference, never read.
static NOTHROW_T: u8 = 0;

// The four throwing `new`s: forward by a jump when the next definition is
// libstdc++'s; else `cxx_new` allocates through the nothrow form and
// records, and a null result (out of memory) jumps to the throwing form.
macro_rules! throwing_new {
    ($name:ident, $idx:literal) => {
        // Naked, so that the CFI below is the whole truth about the frame
        // (the stack capture unwinds through it).
        #[no_mangle]
        #[unsafe(naked)]
        pub unsafe extern "C" fn $name(_size: usize) -> *mut c_void {
            core::arch::naked_asm!(
                ".cfi_startproc",
                concat!("mov rax, qword ptr [rip + {next} + 8*", $idx, "]"),
                "test rax, rax",
                "jz 1f",
                "cmp byte ptr [rip + {mode}], 1",
                "jne 1f",
                "jmp rax",
                "1:",
                "push rdi",
                ".cfi_adjust_cfa_offset 8",
                "push rsi",
                ".cfi_adjust_cfa_offset 8",
                "sub rsp, 8",
                ".cfi_adjust_cfa_offset 8",
                concat!("mov edx, ", $idx),
                "call {slow}",
                "add rsp, 8",
                ".cfi_adjust_cfa_offset -8",
                "pop rsi",
                ".cfi_adjust_cfa_offset -8",
                "pop rdi",
                ".cfi_adjust_cfa_offset -8",
                "test rax, rax",
                "jz 2f",
                "ret",
                "2:",
                concat!("jmp qword ptr [rip + {next} + 8*", $idx, "]"),
                ".cfi_endproc",
                next = sym NEXT,
                mode = sym MODE,
                slow = sym cxx_new,
            )
        }
    };
}

throwing_new!(_Znwm, 0);
throwing_new!(_Znam, 1);
throwing_new!(_ZnwmSt11align_val_t, 2);
throwing_new!(_ZnamSt11align_val_t, 3);

/// The slow path of a throwing `new` (`idx` < 4). Returns null to have the
/// stub jump to the next definition: when forwarding, or out of memory.
unsafe extern "C" fn cxx_new(size: usize, align: usize, idx: u32) -> *mut c_void {
    let idx = idx as usize;
    if mode() != RECORD {
        if next(idx) == 0 {
            // No operator new anywhere: the program's C++ code was built
            // against one, so this cannot happen; fail loudly, not by a
            // jump to address 0.
            crate::real::fatal("cannot find the real C++ operator new\n");
        }
        return core::ptr::null_mut();
    }
    new_nothrow(idx + NOTHROW, size, align, next(idx))
}

/// Calls the next `nothrow` operator `idx` and records what it returns,
/// with `called` (the operator the program called) as the innermost frame.
unsafe fn new_nothrow(idx: usize, size: usize, align: usize, called: usize) -> *mut c_void {
    let f = next(idx);
    if f == 0 {
        return core::ptr::null_mut();
    }
    let aligned = idx % 4 >= 2;
    let nothrow = core::ptr::addr_of!(NOTHROW_T) as usize;
    let call = || {
        if aligned {
            let f: unsafe extern "C" fn(usize, usize, usize) -> *mut c_void =
                core::mem::transmute(f);
            f(size, align, nothrow)
        } else {
            let f: unsafe extern "C" fn(usize, usize) -> *mut c_void = core::mem::transmute(f);
            f(size, nothrow)
        }
    };
    // As a wrapper: what the allocator's operator calls through the PLT
    // (jemalloc's aligned new reaches our aligned_alloc) is part of this
    // allocation, not another one. Already inside one of our hooks, this is
    // the allocator's own use of `new` (tcmalloc's start-up): not the
    // program's, passed through.
    let Some(_g) = Guard::wrapper() else {
        return call();
    };
    let p = call();
    if !p.is_null() {
        if let Some(r) = crate::real::get() {
            crate::clear::new_block(r, p, size);
        }
        let func = if aligned {
            AllocFn::AlignedAlloc
        } else {
            AllocFn::Malloc
        };
        // +1: frames are return addresses, looked up one byte before.
        record_alloc_with_top(p, size, func, called + 1);
    }
    p
}

macro_rules! nothrow_new {
    ($name:ident, $idx:expr, ($($arg:ident),*)) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name(size: usize, $($arg: usize),*) -> *mut c_void {
            let args = [$($arg),*];
            let align = if args.len() == 2 { args[0] } else { 0 };
            let f = next($idx);
            if mode() == RECORD {
                return new_nothrow($idx, size, align, f);
            }
            if f == 0 {
                return core::ptr::null_mut();
            }
            let f: unsafe extern "C" fn(usize, $($arg: usize),*) -> *mut c_void =
                core::mem::transmute(f);
            f(size, $($arg),*)
        }
    };
}

nothrow_new!(_ZnwmRKSt9nothrow_t, 4, (nothrow));
nothrow_new!(_ZnamRKSt9nothrow_t, 5, (nothrow));
nothrow_new!(_ZnwmSt11align_val_tRKSt9nothrow_t, 6, (align, nothrow));
nothrow_new!(_ZnamSt11align_val_tRKSt9nothrow_t, 7, (align, nothrow));

macro_rules! delete {
    ($name:ident, $idx:expr) => {
        /// Every form takes at most three word-sized arguments (pointer,
        /// size, alignment, a `nothrow` reference): passing three to one
        /// that takes fewer is harmless in the SysV calling convention.
        #[no_mangle]
        pub unsafe extern "C" fn $name(p: *mut c_void, a: usize, b: usize) {
            delete(p, a, b, $idx)
        }
    };
}

delete!(_ZdlPv, 8);
delete!(_ZdaPv, 9);
delete!(_ZdlPvm, 10);
delete!(_ZdaPvm, 11);
delete!(_ZdlPvSt11align_val_t, 12);
delete!(_ZdaPvSt11align_val_t, 13);
delete!(_ZdlPvmSt11align_val_t, 14);
delete!(_ZdaPvmSt11align_val_t, 15);
delete!(_ZdlPvRKSt9nothrow_t, 16);
delete!(_ZdaPvRKSt9nothrow_t, 17);
delete!(_ZdlPvSt11align_val_tRKSt9nothrow_t, 18);
delete!(_ZdaPvSt11align_val_tRKSt9nothrow_t, 19);

#[inline(always)]
unsafe fn delete(p: *mut c_void, a: usize, b: usize, idx: usize) {
    if p.is_null() {
        return;
    }
    let f = next(idx);
    if f == 0 {
        // Only reachable if no operator new exists either.
        return crate::hooks::free(p);
    }
    let f: unsafe extern "C" fn(*mut c_void, usize, usize) = core::mem::transmute(f);
    if mode() == RECORD {
        // As in `new_nothrow`; recorded before the block is given back,
        // since another thread may get it next.
        if let Some(_g) = Guard::wrapper() {
            record_free(p);
            return f(p, a, b);
        }
    }
    f(p, a, b)
}

#[inline(always)]
fn next(idx: usize) -> usize {
    let f = NEXT[idx].load(Ordering::Relaxed);
    if f != 0 {
        return f;
    }
    resolve();
    NEXT[idx].load(Ordering::Relaxed)
}

#[inline(always)]
fn mode() -> u8 {
    match MODE.load(Ordering::Relaxed) {
        UNKNOWN => {
            resolve();
            MODE.load(Ordering::Relaxed)
        }
        m => m,
    }
}

/// Finds the next definition of every operator, and whose they are. Racing
/// threads find the same addresses; stores are idempotent.
#[cold]
fn resolve() {
    for (slot, name) in NEXT.iter().zip(NAMES) {
        if slot.load(Ordering::Relaxed) == 0 {
            // SAFETY: NUL-terminated names.
            let f = unsafe { find(name.as_ptr().cast()) };
            slot.store(f as usize, Ordering::Relaxed);
        }
    }
    let new = NEXT[0].load(Ordering::Relaxed);
    if new == 0 {
        return; // no C++ runtime loaded yet: look again at the next call
    }
    // SAFETY: dladdr on an address of a loaded object.
    let libstdcxx =
        unsafe { crate::real::object_of(new as *const c_void) }.is_some_and(|(_, name)| {
            name.to_bytes()
                .rsplit(|&c| c == b'/')
                .next()
                .is_some_and(|f| f.starts_with(b"libstdc++"))
        });
    let mode = if libstdcxx { FORWARD } else { RECORD };
    MODE.store(mode, Ordering::Relaxed);
}

/// The next definition of `name` after ours: `dlsym(RTLD_NEXT)`, else in
/// any loaded object (one `dlopen`ed with `RTLD_LOCAL` is out of reach of
/// the former).
unsafe fn find(name: *const c_char) -> *mut c_void {
    let f = crate::real::dlsym(libc::RTLD_NEXT, name);
    if !f.is_null() {
        return f;
    }
    // Names first, look-ups after: dlopen must not run inside
    // dl_iterate_phdr, which holds the loader's lock.
    const MAX: usize = 512;
    struct Objects {
        names: [*const c_char; MAX],
        n: usize,
    }
    unsafe extern "C" fn each(info: *mut libc::dl_phdr_info, _: usize, data: *mut c_void) -> c_int {
        let o = &mut *(data as *mut Objects);
        let path = (*info).dlpi_name;
        if !path.is_null() && *path != 0 && (*info).dlpi_addr != crate::stack::self_base() {
            o.names[o.n] = path;
            o.n += 1;
        }
        (o.n == MAX) as c_int
    }
    let mut o = Objects {
        names: [core::ptr::null(); MAX],
        n: 0,
    };
    guard::own(|| libc::dl_iterate_phdr(Some(each), (&mut o as *mut Objects).cast()));
    for &path in &o.names[..o.n] {
        // An object stays loaded while we look (the program's own dlclose
        // could race with this, as with any dladdr; NOLOAD takes a reference).
        let h = guard::own(|| libc::dlopen(path, libc::RTLD_NOLOAD | libc::RTLD_LAZY));
        if h.is_null() {
            continue;
        }
        let f = crate::real::dlsym(h, name);
        guard::own(|| libc::dlclose(h));
        if !f.is_null() && !crate::stack::is_ours(f as usize) {
            return f;
        }
    }
    core::ptr::null_mut()
}
