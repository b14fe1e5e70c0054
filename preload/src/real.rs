//! Finding the functions we interpose (`dlsym(RTLD_NEXT)`).
//!
//! `dlsym` itself may call `calloc`/`malloc` (glibc's dlerror buffer) before we
//! know where the real ones are; those requests are ours, and are served
//! from the spare heap (`heap`), like the other allocations libc makes for
//! us. Whatever allocator comes next in the lookup order is "real": glibc's,
//! or a jemalloc/tcmalloc/mimalloc the program brings, whose calls we then
//! record.

use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use libc::{off_t, size_t};

pub type MallocFn = unsafe extern "C" fn(size_t) -> *mut c_void;
pub type CallocFn = unsafe extern "C" fn(size_t, size_t) -> *mut c_void;
pub type ReallocFn = unsafe extern "C" fn(*mut c_void, size_t) -> *mut c_void;
pub type FreeFn = unsafe extern "C" fn(*mut c_void);
pub type PosixMemalignFn = unsafe extern "C" fn(*mut *mut c_void, size_t, size_t) -> c_int;
pub type AlignFn = unsafe extern "C" fn(size_t, size_t) -> *mut c_void;
pub type UsableFn = unsafe extern "C" fn(*mut c_void) -> size_t;
pub type MmapFn =
    unsafe extern "C" fn(*mut c_void, size_t, c_int, c_int, c_int, off_t) -> *mut c_void;
pub type MunmapFn = unsafe extern "C" fn(*mut c_void, size_t) -> c_int;
pub type MprotectFn = unsafe extern "C" fn(*mut c_void, size_t, c_int) -> c_int;
pub type MremapFn =
    unsafe extern "C" fn(*mut c_void, size_t, size_t, c_int, *mut c_void) -> *mut c_void;
pub type DlopenFn = unsafe extern "C" fn(*const c_char, c_int) -> *mut c_void;
pub type DlcloseFn = unsafe extern "C" fn(*mut c_void) -> c_int;
pub type ExecveFn =
    unsafe extern "C" fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int;
pub type ExecvFn = unsafe extern "C" fn(*const c_char, *const *const c_char) -> c_int;
pub type FexecveFn =
    unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char) -> c_int;
pub type ExecveatFn = unsafe extern "C" fn(
    c_int,
    *const c_char,
    *const *const c_char,
    *const *const c_char,
    c_int,
) -> c_int;
pub type ExitFn = unsafe extern "C" fn(c_int) -> !;
pub type AbortFn = unsafe extern "C" fn() -> !;
pub type MainFn = unsafe extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) -> c_int;
pub type StartMainFn = unsafe extern "C" fn(
    MainFn,
    c_int,
    *mut *mut c_char,
    *mut c_void,
    *mut c_void,
    *mut c_void,
    *mut c_void,
) -> c_int;

/// The next definition of every function we interpose. Filled once; read-only after.
pub struct Real {
    pub malloc: MallocFn,
    pub calloc: CallocFn,
    pub realloc: ReallocFn,
    pub free: FreeFn,
    pub posix_memalign: PosixMemalignFn,
    pub aligned_alloc: Option<AlignFn>,
    pub memalign: Option<AlignFn>,
    pub valloc: Option<MallocFn>,
    pub pvalloc: Option<MallocFn>,
    pub malloc_usable_size: Option<UsableFn>,
    pub mmap: MmapFn,
    pub munmap: MunmapFn,
    pub mremap: Option<MremapFn>,
    pub mprotect: Option<MprotectFn>,
    pub dlopen: Option<DlopenFn>,
    pub dlclose: Option<DlcloseFn>,
    pub execve: Option<ExecveFn>,
    pub execv: Option<ExecvFn>,
    pub execvp: Option<ExecvFn>,
    pub execvpe: Option<ExecveFn>,
    pub fexecve: Option<FexecveFn>,
    pub execveat: Option<ExecveatFn>,
    pub exit_: Option<ExitFn>,
    pub exit: Option<ExitFn>,
    pub exit_upper: Option<ExitFn>,
    pub abort: Option<AbortFn>,
    pub libc_start_main: Option<StartMainFn>,
    /// The allocator is glibc's: its chunk headers may be read (`clear`).
    pub glibc: bool,
}

static mut REAL: core::mem::MaybeUninit<Real> = core::mem::MaybeUninit::uninit();
const UNRESOLVED: u8 = 0;
const RESOLVING: u8 = 1;
const READY: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNRESOLVED);
/// Thread that is resolving, so that its own reentrant calls use the arena
/// while other threads wait.
static RESOLVER: AtomicUsize = AtomicUsize::new(0);

unsafe fn next<T>(name: &'static [u8]) -> Option<T> {
    debug_assert_eq!(
        core::mem::size_of::<T>(),
        core::mem::size_of::<*mut c_void>()
    );
    // SAFETY: name is NUL-terminated; RTLD_NEXT finds the definition after ours.
    let p = libc::dlsym(libc::RTLD_NEXT, name.as_ptr() as *const c_char);
    if p.is_null() {
        None
    } else {
        // SAFETY: T is a function pointer type matching the C prototype of `name`.
        Some(core::mem::transmute_copy::<*mut c_void, T>(&p))
    }
}

fn self_thread() -> usize {
    // SAFETY: pthread_self never fails and does not allocate.
    unsafe { libc::pthread_self() as usize }
}

/// The real functions, or `None` while they are being resolved on this thread
/// (the caller must then use `heap::bootstrap`).
#[inline(always)]
pub fn get() -> Option<&'static Real> {
    if STATE.load(Ordering::Acquire) == READY {
        // SAFETY: REAL is written once before STATE becomes READY and never again.
        return Some(unsafe { &*core::ptr::addr_of!(REAL).cast::<Real>() });
    }
    resolve_slow()
}

#[cold]
fn resolve_slow() -> Option<&'static Real> {
    loop {
        match STATE.compare_exchange(UNRESOLVED, RESOLVING, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => {
                RESOLVER.store(self_thread(), Ordering::Relaxed);
                // SAFETY: only this thread writes REAL, before publishing READY.
                unsafe {
                    let real = resolve_all();
                    core::ptr::addr_of_mut!(REAL).cast::<Real>().write(real);
                }
                STATE.store(READY, Ordering::Release);
                return get();
            }
            Err(READY) => return get(),
            Err(_) => {
                if RESOLVER.load(Ordering::Relaxed) == self_thread() {
                    return None;
                }
                core::hint::spin_loop();
            }
        }
    }
}

unsafe fn resolve_all() -> Real {
    macro_rules! must {
        ($name:literal) => {
            match next(concat!($name, "\0").as_bytes()) {
                Some(f) => f,
                None => fatal(concat!("cannot find the real ", $name, "\n")),
            }
        };
    }
    macro_rules! may {
        ($name:literal) => {
            next(concat!($name, "\0").as_bytes())
        };
    }
    let malloc: MallocFn = must!("malloc");
    Real {
        malloc,
        calloc: must!("calloc"),
        realloc: must!("realloc"),
        free: must!("free"),
        posix_memalign: must!("posix_memalign"),
        aligned_alloc: may!("aligned_alloc"),
        memalign: may!("memalign"),
        valloc: may!("valloc"),
        pvalloc: may!("pvalloc"),
        malloc_usable_size: may!("malloc_usable_size"),
        mmap: must!("mmap"),
        munmap: must!("munmap"),
        mremap: may!("mremap"),
        mprotect: may!("mprotect"),
        dlopen: may!("dlopen"),
        dlclose: may!("dlclose"),
        execve: may!("execve"),
        execv: may!("execv"),
        execvp: may!("execvp"),
        execvpe: may!("execvpe"),
        fexecve: may!("fexecve"),
        execveat: may!("execveat"),
        exit_: may!("_exit"),
        exit: may!("exit"),
        exit_upper: may!("_Exit"),
        abort: may!("abort"),
        libc_start_main: may!("__libc_start_main"),
        glibc: is_glibc(malloc as *const c_void),
    }
}

/// The loaded object `addr` lies in: its load address and file name.
///
/// # Safety
/// dladdr may be called (not from a signal handler).
pub unsafe fn object_of(addr: *const c_void) -> Option<(u64, &'static core::ffi::CStr)> {
    let mut info: libc::Dl_info = core::mem::zeroed();
    if libc::dladdr(addr, &mut info) == 0 || info.dli_fname.is_null() {
        return None;
    }
    Some((
        info.dli_fbase as u64,
        core::ffi::CStr::from_ptr(info.dli_fname),
    ))
}

/// Whether `f` lies in glibc's shared object.
unsafe fn is_glibc(f: *const c_void) -> bool {
    object_of(f).is_some_and(|(_, name)| {
        name.to_bytes().rsplit(|&c| c == b'/').next() == Some(b"libc.so.6")
    })
}

/// Nothing can work without the real allocator: say so and stop at once.
pub fn fatal(msg: &str) -> ! {
    // SAFETY: write(2) and _exit(2) are async-signal-safe raw syscalls.
    unsafe {
        let prefix = b"leakhunt: ";
        libc::write(2, prefix.as_ptr().cast(), prefix.len());
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::syscall(libc::SYS_exit_group, 127);
    }
    unreachable!()
}

/// `dlsym` for our own look-ups: a failed one allocates dlerror's buffer and
/// message, which are ours (see `heap`'s spare area), not the program's.
///
/// # Safety
/// As `libc::dlsym`: a valid handle and a NUL-terminated name.
pub unsafe fn dlsym(handle: *mut c_void, name: *const c_char) -> *mut c_void {
    crate::guard::own(|| libc::dlsym(handle, name))
}
