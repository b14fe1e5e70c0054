//! The interposed entry points. Each one: guard, real call, capture, send,
//! return — in the order that keeps the history exact across threads: a free
//! is sent before the real `free` (after it, another thread may get the same
//! address back), an allocation after the real call returns and before the
//! pointer is handed to the program.

use crate::clear;
use crate::guard::{self, tid, Guard, Inside};
use crate::heap;
use crate::queue::{end, kind, Event};
use crate::real;
use crate::writer::{push, request};
use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicUsize, Ordering};
use heap::bootstrap;
use leakhunt_format::AllocFn;
use libc::{off_t, size_t};
use std::time::Duration;

#[inline(always)]
pub(crate) fn record_alloc(p: *mut c_void, size: usize, func: AllocFn) {
    record_alloc_with_top(p, size, func, 0)
}

/// As `record_alloc`, the stack starting at `top` if not 0 (see
/// `stack::capture_with_top`).
#[inline(always)]
pub(crate) fn record_alloc_with_top(p: *mut c_void, size: usize, func: AllocFn, top: usize) {
    let t = tid();
    let h = crate::stack::capture_with_top(t, push, top);
    push(&Event {
        kind: kind::ALLOC,
        tid: t,
        a: p as u64,
        b: size as u64,
        c: h,
        d: func as u64,
    });
}

#[inline(always)]
pub(crate) fn record_free(p: *mut c_void) {
    push(&Event {
        kind: kind::FREE,
        tid: tid(),
        a: p as u64,
        ..Default::default()
    });
}

/// The reentrant path: the program's call made from a signal handler that
/// interrupted one of our hooks on this thread. That hook may be half-way
/// through defining a stack or a realloc, and the queue may be full with its
/// claimed slot not yet published: so the event goes without a stack (the
/// report shows it as such), through the non-blocking push, and what does
/// not fit is counted as dropped (the report says how many).
#[cold]
#[inline(never)]
fn nested_alloc(p: *mut c_void, size: usize, func: AllocFn) {
    if p.is_null() {
        return;
    }
    crate::writer::push_or_drop(&Event {
        kind: kind::ALLOC,
        tid: tid(),
        a: p as u64,
        b: size as u64,
        c: 0,
        d: func as u64,
    });
}

#[cold]
#[inline(never)]
fn nested_free(p: *mut c_void) {
    crate::writer::push_or_drop(&Event {
        kind: kind::FREE,
        tid: tid(),
        a: p as u64,
        ..Default::default()
    });
}

/// libc's allocation on our behalf: from our spare heap, unless it is full.
#[inline(always)]
fn spare_or(spare: *mut c_void, real: impl FnOnce() -> *mut c_void) -> *mut c_void {
    if spare.is_null() {
        real()
    } else {
        spare
    }
}

#[no_mangle]
pub unsafe extern "C" fn malloc(size: size_t) -> *mut c_void {
    let Some(r) = real::get() else {
        return bootstrap(heap::spare_malloc(size));
    };
    let Some(_g) = Guard::enter() else {
        return match guard::inside() {
            Inside::Ours => spare_or(heap::spare_malloc(size), || (r.malloc)(size)),
            Inside::Handler => {
                let p = (r.malloc)(size);
                if !p.is_null() {
                    clear::new_block(r, p, size);
                }
                nested_alloc(p, size, AllocFn::Malloc);
                p
            }
            Inside::Other => (r.malloc)(size),
        };
    };
    let p = (r.malloc)(size);
    if !p.is_null() {
        clear::new_block(r, p, size);
        record_alloc(p, size, AllocFn::Malloc);
    }
    p
}

#[no_mangle]
pub unsafe extern "C" fn calloc(n: size_t, size: size_t) -> *mut c_void {
    let Some(r) = real::get() else {
        return bootstrap(heap::spare_calloc(n, size));
    };
    let Some(_g) = Guard::enter() else {
        return match guard::inside() {
            Inside::Ours => spare_or(heap::spare_calloc(n, size), || (r.calloc)(n, size)),
            Inside::Handler => {
                let p = (r.calloc)(n, size);
                nested_alloc(p, n.wrapping_mul(size), AllocFn::Calloc);
                p
            }
            Inside::Other => (r.calloc)(n, size),
        };
    };
    let p = (r.calloc)(n, size);
    if !p.is_null() {
        record_alloc(p, n.wrapping_mul(size), AllocFn::Calloc);
    }
    p
}

#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    if heap::is_spare(p) {
        return heap::spare_free(p);
    }
    let Some(r) = real::get() else { return };
    match Guard::enter() {
        Some(_g) => record_free(p),
        None if guard::inside() == Inside::Handler => nested_free(p),
        None => {}
    }
    (r.free)(p)
}

/// `zero_frees`: a NULL result for size 0 means the block was freed (glibc),
/// not that the call failed. `libc`: the allocator is the C library's, whose
/// new bytes are cleared (`clear`); `None`: CPython's, wrapped by us.
#[inline(always)]
pub(crate) unsafe fn realloc_impl(
    p: *mut c_void,
    size: usize,
    func: AllocFn,
    zero_frees: bool,
    libc: Option<&real::Real>,
    call: impl FnOnce() -> *mut c_void,
) -> *mut c_void {
    let guard = match libc {
        Some(_) => Guard::enter(),
        None => Guard::wrapper(),
    };
    let Some(_g) = guard else {
        if libc.is_some() && guard::inside() == Inside::Handler {
            // As a free and an allocation: a realloc's own events would
            // break into the one this may have interrupted. (Should the
            // realloc fail, the old block is then taken as freed.)
            if !p.is_null() {
                nested_free(p);
            }
            let q = call();
            nested_alloc(q, size, func);
            return q;
        }
        return call();
    };
    if p.is_null() {
        let q = call();
        if !q.is_null() {
            if let Some(r) = libc {
                clear::new_block(r, q, size);
            }
            record_alloc(q, size, func);
        }
        return q;
    }
    let old = libc.map_or(0, |r| clear::old_usable(r, p));
    let t = tid();
    push(&Event {
        kind: kind::REALLOC_FREE,
        tid: t,
        a: p as u64,
        ..Default::default()
    });
    let q = call();
    if q.is_null() {
        // glibc's realloc(p, 0) frees p and returns NULL; otherwise NULL is a failure.
        let k = if size == 0 && zero_frees {
            kind::REALLOC_DONE
        } else {
            kind::REALLOC_FAILED
        };
        push(&Event {
            kind: k,
            tid: t,
            ..Default::default()
        });
    } else {
        if let Some(r) = libc {
            clear::grown(r, q, old, size);
        }
        let h = crate::stack::capture(t, push);
        push(&Event {
            kind: kind::REALLOC_DONE,
            tid: t,
            a: q as u64,
            b: size as u64,
            c: h,
            d: func as u64,
        });
    }
    q
}

#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: size_t) -> *mut c_void {
    if heap::is_spare(p) {
        return heap::spare_realloc(p, size);
    }
    let Some(r) = real::get() else {
        return bootstrap(heap::spare_malloc(size));
    };
    if p.is_null() && guard::inside() == Inside::Ours {
        return spare_or(heap::spare_malloc(size), || (r.realloc)(p, size));
    }
    realloc_impl(p, size, AllocFn::Realloc, true, Some(r), || {
        (r.realloc)(p, size)
    })
}

#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: size_t, size: size_t) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        *libc::__errno_location() = libc::ENOMEM;
        return core::ptr::null_mut();
    };
    if heap::is_spare(p) {
        return heap::spare_realloc(p, total);
    }
    let Some(r) = real::get() else {
        return bootstrap(heap::spare_malloc(total));
    };
    // What glibc's reallocarray does, but with the real realloc: glibc's
    // calls `realloc` through its PLT, into our hook, which would take it
    // for a signal handler's call made inside ours (`Inside::Handler`).
    realloc_impl(p, total, AllocFn::Reallocarray, true, Some(r), || {
        (r.realloc)(p, total)
    })
}

#[no_mangle]
pub unsafe extern "C" fn posix_memalign(
    out: *mut *mut c_void,
    align: size_t,
    size: size_t,
) -> c_int {
    let Some(r) = real::get() else {
        *out = bootstrap(heap::spare_memalign(align, size));
        return 0;
    };
    let Some(_g) = Guard::enter() else {
        return (r.posix_memalign)(out, align, size);
    };
    let ret = (r.posix_memalign)(out, align, size);
    if ret == 0 && !(*out).is_null() {
        clear::new_block(r, *out, size);
        record_alloc(*out, size, AllocFn::PosixMemalign);
    }
    ret
}

unsafe fn aligned(
    r: &real::Real,
    f: Option<real::AlignFn>,
    align: usize,
    size: usize,
    func: AllocFn,
) -> *mut c_void {
    let Some(f) = f else {
        *libc::__errno_location() = libc::ENOSYS;
        return core::ptr::null_mut();
    };
    let Some(_g) = Guard::enter() else {
        return f(align, size);
    };
    let p = f(align, size);
    if !p.is_null() {
        clear::new_block(r, p, size);
        record_alloc(p, size, func);
    }
    p
}

#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: size_t, size: size_t) -> *mut c_void {
    let Some(r) = real::get() else {
        return bootstrap(heap::spare_memalign(align, size));
    };
    aligned(r, r.aligned_alloc, align, size, AllocFn::AlignedAlloc)
}

#[no_mangle]
pub unsafe extern "C" fn memalign(align: size_t, size: size_t) -> *mut c_void {
    let Some(r) = real::get() else {
        return bootstrap(heap::spare_memalign(align, size));
    };
    aligned(r, r.memalign, align, size, AllocFn::Memalign)
}

unsafe fn page_alloc(
    r: &real::Real,
    f: Option<real::MallocFn>,
    size: usize,
    func: AllocFn,
) -> *mut c_void {
    let Some(f) = f else {
        *libc::__errno_location() = libc::ENOSYS;
        return core::ptr::null_mut();
    };
    let Some(_g) = Guard::enter() else {
        return f(size);
    };
    let p = f(size);
    if !p.is_null() {
        clear::new_block(r, p, size);
        record_alloc(p, size, func);
    }
    p
}

#[no_mangle]
pub unsafe extern "C" fn valloc(size: size_t) -> *mut c_void {
    let Some(r) = real::get() else {
        return bootstrap(heap::spare_memalign(4096, size));
    };
    page_alloc(r, r.valloc, size, AllocFn::Valloc)
}

#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: size_t) -> *mut c_void {
    let Some(r) = real::get() else {
        return bootstrap(heap::spare_memalign(4096, size));
    };
    page_alloc(r, r.pvalloc, size, AllocFn::Pvalloc)
}

#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> size_t {
    if heap::is_spare(p) {
        // Only libc's own blocks for us are there; it never asks.
        return 0;
    }
    match real::get().and_then(|r| r.malloc_usable_size) {
        Some(f) => f(p),
        None => 0,
    }
}

// ---- the program's own memory mappings ----

#[inline(always)]
unsafe fn record_mmap(p: *mut c_void, len: usize, prot: c_int, flags: c_int) {
    if p != libc::MAP_FAILED {
        let t = tid();
        let h = crate::stack::capture(t, push);
        let d = (prot as u32 as u64) << 32 | flags as u32 as u64;
        push(&Event {
            kind: kind::MMAP,
            tid: t,
            a: p as u64,
            b: len as u64,
            c: h,
            d,
        });
    }
}

#[no_mangle]
pub unsafe extern "C" fn mmap(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
) -> *mut c_void {
    let Some(r) = real::get() else {
        return libc::syscall(libc::SYS_mmap, addr, len, prot, flags, fd, off) as *mut c_void;
    };
    let Some(_g) = Guard::enter() else {
        return (r.mmap)(addr, len, prot, flags, fd, off);
    };
    let p = (r.mmap)(addr, len, prot, flags, fd, off);
    record_mmap(p, len, prot, flags);
    p
}

#[no_mangle]
pub unsafe extern "C" fn mmap64(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
) -> *mut c_void {
    mmap(addr, len, prot, flags, fd, off)
}

#[no_mangle]
pub unsafe extern "C" fn munmap(addr: *mut c_void, len: size_t) -> c_int {
    let Some(r) = real::get() else {
        return libc::syscall(libc::SYS_munmap, addr, len) as c_int;
    };
    if let Some(_g) = Guard::enter() {
        push(&Event {
            kind: kind::MUNMAP,
            tid: tid(),
            a: addr as u64,
            b: len as u64,
            ..Default::default()
        });
    }
    crate::python::safe::maps_changed();
    (r.munmap)(addr, len)
}

#[no_mangle]
pub unsafe extern "C" fn mprotect(addr: *mut c_void, len: size_t, prot: c_int) -> c_int {
    let Some(f) = real::get().and_then(|r| r.mprotect) else {
        return libc::syscall(libc::SYS_mprotect, addr, len, prot) as c_int;
    };
    // Pages the Python frame reader knew as readable may not be any more.
    crate::python::safe::maps_changed();
    f(addr, len, prot)
}

#[no_mangle]
pub unsafe extern "C" fn mremap(
    old: *mut c_void,
    old_len: size_t,
    new_len: size_t,
    flags: c_int,
    new_addr: *mut c_void,
) -> *mut c_void {
    let Some(r) = real::get() else {
        return libc::MAP_FAILED;
    };
    let Some(f) = r.mremap else {
        return libc::MAP_FAILED;
    };
    crate::python::safe::maps_changed();
    let Some(_g) = Guard::enter() else {
        return f(old, old_len, new_len, flags, new_addr);
    };
    let t = tid();
    push(&Event {
        kind: kind::MUNMAP,
        tid: t,
        a: old as u64,
        b: old_len as u64,
        ..Default::default()
    });
    let p = f(old, old_len, new_len, flags, new_addr);
    if p == libc::MAP_FAILED {
        record_mmap(old, old_len, libc::PROT_READ | libc::PROT_WRITE, 0);
    } else {
        record_mmap(p, new_len, libc::PROT_READ | libc::PROT_WRITE, 0);
    }
    p
}

/// From the constructor: says once if the program's `malloc` is not ours
/// (an allocator preloaded before libleakhunt.so, e.g.
/// `LD_PRELOAD=libjemalloc.so.2:libleakhunt.so`): its calls then never reach
/// our hooks and nothing would be recorded, silently.
pub fn check_interposition() {
    // SAFETY: our own dlsym, with a NUL-terminated name; object_of from the
    // constructor. (Comparing addresses would not do: our own reference to
    // `malloc` binds to the first definition too.)
    let Some((base, name)) = (unsafe {
        let found = real::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr());
        if found.is_null() {
            return;
        }
        real::object_of(found)
    }) else {
        return;
    };
    if base != crate::stack::self_base() {
        crate::writer::say(&format!(
            "the program's malloc is {}'s, loaded before libleakhunt.so: its allocations are not recorded; put libleakhunt.so first in LD_PRELOAD",
            name.to_string_lossy()
        ));
    }
}

// ---- the module map ----

/// Sends the current module list to the writer. Under the Guard: it allocates.
pub fn send_modules() {
    let list = Box::new(crate::modules::scan());
    push(&Event {
        kind: kind::MODULES,
        tid: tid(),
        a: Box::into_raw(list) as u64,
        ..Default::default()
    });
}

fn modules_changed() {
    if let Some(_g) = Guard::internal() {
        send_modules();
        // An embedding program may have just loaded libpython.
        crate::python::detect();
    }
}

#[no_mangle]
pub unsafe extern "C" fn dlopen(name: *const c_char, flags: c_int) -> *mut c_void {
    let Some(f) = real::get().and_then(|r| r.dlopen) else {
        return core::ptr::null_mut();
    };
    let h = f(name, flags);
    if !h.is_null() {
        modules_changed();
    }
    h
}

#[no_mangle]
pub unsafe extern "C" fn dlclose(h: *mut c_void) -> c_int {
    let Some(f) = real::get().and_then(|r| r.dlclose) else {
        return -1;
    };
    let ret = f(h);
    crate::unwind::invalidate();
    crate::python::safe::maps_changed();
    modules_changed();
    ret
}

// ---- the end of a process image ----

/// Ends the trace (`reason`: one of `end::*`) and waits, bounded, until it is written.
pub fn end_image(reason: u64, code: i32, timeout: Duration) -> bool {
    if !crate::is_our_process() {
        // A vfork child shares our memory and our writer: it must not end it.
        return false;
    }
    let Some(_g) = Guard::internal() else {
        return false;
    };
    request(kind::END, reason, code as u32 as u64, timeout)
}

/// Writes everything and an END(exec) before an exec. The writer keeps
/// running: if the exec fails, the records that follow tell the CLI the image
/// went on.
unsafe fn around_exec(exec: impl FnOnce() -> c_int) -> c_int {
    end_image(end::EXEC, 0, Duration::from_secs(5));
    exec()
}

#[no_mangle]
pub unsafe extern "C" fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    let Some(f) = real::get().and_then(|r| r.execve) else {
        return -1;
    };
    around_exec(|| f(path, argv, envp))
}

#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    let Some(f) = real::get().and_then(|r| r.execv) else {
        return -1;
    };
    around_exec(|| f(path, argv))
}

#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    let Some(f) = real::get().and_then(|r| r.execvp) else {
        return -1;
    };
    around_exec(|| f(file, argv))
}

#[no_mangle]
pub unsafe extern "C" fn execvpe(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    let Some(f) = real::get().and_then(|r| r.execvpe) else {
        return -1;
    };
    around_exec(|| f(file, argv, envp))
}

#[no_mangle]
pub unsafe extern "C" fn fexecve(
    fd: c_int,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    let Some(f) = real::get().and_then(|r| r.fexecve) else {
        return -1;
    };
    around_exec(|| f(fd, argv, envp))
}

#[no_mangle]
pub unsafe extern "C" fn execveat(
    dirfd: c_int,
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    flags: c_int,
) -> c_int {
    let Some(f) = real::get().and_then(|r| r.execveat) else {
        return -1;
    };
    around_exec(|| f(dirfd, path, argv, envp, flags))
}

// ---- execl, execlp, execle: variadic ----
//
// glibc's own execl* call its internal execve, which no hook sees: each one
// is interposed here and turned into our execv/execvp/execve. Rust cannot
// define a C variadic function, so a naked entry saves the five integer
// argument registers after `path` next to the caller's stack arguments and
// hands both to a Rust body that reads the list up to its NULL.

/// Which function a variadic entry stands for.
const EXECL: c_int = 0;
const EXECLP: c_int = 1;
const EXECLE: c_int = 2;

macro_rules! execl_entry {
    ($name:ident, $which:expr) => {
        #[no_mangle]
        #[unsafe(naked)]
        pub unsafe extern "C" fn $name(_path: *const c_char, _arg: *const c_char) -> c_int {
            // At entry rsp is 8 mod 16; five pushes make it 0 mod 16 for the call.
            core::arch::naked_asm!(
                "push r9",
                "push r8",
                "push rcx",
                "push rdx",
                "push rsi",
                "mov rsi, rsp",
                "lea rdx, [rsp + 48]",
                "mov ecx, {which}",
                "call {body}",
                "add rsp, 40",
                "ret",
                which = const $which,
                body = sym execl_body,
            )
        }
    };
}

execl_entry!(execl, EXECL);
execl_entry!(execlp, EXECLP);
execl_entry!(execle, EXECLE);

/// The longest argument list taken (glibc's limit is ARG_MAX's worth).
const MAX_EXECL_ARGS: usize = 1 << 16;

/// `regs`: the first five arguments after `path`; `stack`: the rest, as the
/// caller laid them out. The list ends at its first NULL; `execle`'s
/// environment follows it.
unsafe extern "C" fn execl_body(
    path: *const c_char,
    regs: *const *const c_char,
    stack: *const *const c_char,
    which: c_int,
) -> c_int {
    let arg = |i: usize| {
        if i < 5 {
            *regs.add(i)
        } else {
            *stack.add(i - 5)
        }
    };
    let mut argv: Vec<*const c_char> = Vec::new();
    loop {
        if argv.len() == MAX_EXECL_ARGS {
            *libc::__errno_location() = libc::E2BIG;
            return -1;
        }
        let a = arg(argv.len());
        argv.push(a);
        if a.is_null() {
            break;
        }
    }
    match which {
        EXECLP => execvp(path, argv.as_ptr()),
        EXECLE => {
            let envp = arg(argv.len()) as *const *const c_char;
            execve(path, argv.as_ptr(), envp)
        }
        _ => execv(path, argv.as_ptr()),
    }
}

/// The program's `main`, while `__libc_start_main` runs it through ours.
static MAIN: AtomicUsize = AtomicUsize::new(0);

/// The executable's start-up code hands `main` to glibc here (through the
/// PLT, so ours comes first): we hand glibc `main_then_exit` instead, so
/// that a `main` that returns ends the process through our `exit`, like a
/// thread that calls it, and so waits behind one that already is exiting
/// (glibc's own call to `exit` after `main` does not go through the PLT).
#[no_mangle]
pub unsafe extern "C" fn __libc_start_main(
    main: real::MainFn,
    argc: c_int,
    argv: *mut *mut c_char,
    init: *mut c_void,
    fini: *mut c_void,
    rtld_fini: *mut c_void,
    stack_end: *mut c_void,
) -> c_int {
    let Some(start) = real::get().and_then(|r| r.libc_start_main) else {
        // No glibc behind us: nothing to start the program with.
        real::fatal("cannot find the real __libc_start_main\n");
    };
    MAIN.store(main as usize, Ordering::Relaxed);
    start(main_then_exit, argc, argv, init, fini, rtld_fini, stack_end)
}

unsafe extern "C" fn main_then_exit(
    argc: c_int,
    argv: *mut *mut c_char,
    envp: *mut *mut c_char,
) -> c_int {
    // SAFETY: stored from a `MainFn` just before glibc calls us.
    let main: real::MainFn = core::mem::transmute(MAIN.load(Ordering::Relaxed));
    exit(main(argc, argv, envp))
}

/// The thread that called `exit` first (0: none yet).
static EXITING: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// In a fork child: its one thread has not called `exit`.
pub fn forget_exiting() {
    EXITING.store(0, core::sync::atomic::Ordering::Relaxed);
}

/// `exit` from two threads at once: glibc before 2.41 lets both run the
/// exit handlers, and the one that finishes first ends the process while the
/// other is in ours (flushing the trace, scanning), so the trace lost
/// everything still queued. As glibc does since, a second caller waits here
/// until the first one's exit ends the process. A `main` that returns comes
/// here too (`__libc_start_main`).
#[no_mangle]
pub unsafe extern "C" fn exit(code: c_int) -> ! {
    let me = crate::stop::gettid();
    if let Err(first) = EXITING.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire) {
        if first != me {
            loop {
                libc::pause();
            }
        }
    }
    match real::get().and_then(|r| r.exit) {
        Some(f) => f(code),
        None => {
            libc::syscall(libc::SYS_exit_group, code);
            unreachable!()
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn _exit(code: c_int) -> ! {
    end_image(end::QUICK_EXIT, code, Duration::from_secs(2));
    match real::get().and_then(|r| r.exit_) {
        Some(f) => f(code),
        None => {
            libc::syscall(libc::SYS_exit_group, code);
            unreachable!()
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn _Exit(code: c_int) -> ! {
    end_image(end::QUICK_EXIT, code, Duration::from_secs(2));
    match real::get().and_then(|r| r.exit_upper) {
        Some(f) => f(code),
        None => {
            libc::syscall(libc::SYS_exit_group, code);
            unreachable!()
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn abort() -> ! {
    // The heap may be corrupt (glibc aborts on it, holding its arena lock):
    // give the writer only a moment.
    end_image(end::ABORT, 0, Duration::from_millis(500));
    match real::get().and_then(|r| r.abort) {
        Some(f) => f(),
        None => {
            libc::raise(libc::SIGABRT);
            libc::syscall(libc::SYS_exit_group, 134);
            unreachable!()
        }
    }
}
