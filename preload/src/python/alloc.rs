//! Python objects seen without `PYTHONMALLOC=malloc`: leakhunt wraps
//! CPython's own allocator domains, as tracemalloc does.
//!
//! pymalloc serves objects of up to 512 bytes from its arenas, so a plain
//! malloc hook sees the arenas and not the objects. Switching the
//! interpreter to malloc (`PYTHONMALLOC=malloc`) makes every object visible
//! but costs the program itself about 1.6x on object-heavy code: glibc's
//! malloc is slower than pymalloc. Instead, before the interpreter starts
//! (from our constructor), the `PYMEM_DOMAIN_MEM` and `PYMEM_DOMAIN_OBJ`
//! allocators are replaced by wrappers that call the originals under the
//! Guard and record the block once, at the level the program asked for it.
//! (`PyMem_SetAllocator` before `Py_Initialize` is documented for this: the
//! wrappers keep pymalloc underneath, so nothing else changes.)
//!
//! For the leak scan, pymalloc's 256 KiB / 1 MiB arenas are not roots: their
//! memory is objects (blocks of their own) and free slots whose stale words
//! would otherwise keep dead objects "reachable". The arena allocator is
//! wrapped too, and an arena's mapping is made under the Guard, so it is not
//! recorded as a mapping of the program; the interpreter's frame stacks,
//! which come from the same allocator in other sizes, stay roots.
//!
//! A `PYTHONMALLOC` set by the user (or `-X dev`) makes the interpreter set
//! its own allocators at start, replacing ours: then `malloc` sees objects
//! through the malloc hooks, and `pymalloc`/`debug` hide them (the report
//! says so).

use crate::guard::Guard;
use crate::hooks::{realloc_impl, record_alloc, record_free};
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, Ordering};
use leakhunt_format::AllocFn;

/// `PyMemAllocatorEx` (stable since 3.5).
#[repr(C)]
#[derive(Clone, Copy)]
struct Allocator {
    ctx: *mut c_void,
    malloc: unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void,
    calloc: unsafe extern "C" fn(*mut c_void, usize, usize) -> *mut c_void,
    realloc: unsafe extern "C" fn(*mut c_void, *mut c_void, usize) -> *mut c_void,
    free: unsafe extern "C" fn(*mut c_void, *mut c_void),
}

/// `PyObjectArenaAllocator` (stable since 3.4).
#[repr(C)]
#[derive(Clone, Copy)]
struct ArenaAllocator {
    ctx: *mut c_void,
    alloc: unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void,
    free: unsafe extern "C" fn(*mut c_void, *mut c_void, usize),
}

const DOMAIN_MEM: i32 = 1;
const DOMAIN_OBJ: i32 = 2;

/// The originals, written once before the interpreter runs (single-threaded,
/// in our constructor), read-only afterwards.
struct Originals {
    mem: Option<Allocator>,
    obj: Option<Allocator>,
    arena: Option<ArenaAllocator>,
}
struct Cell(UnsafeCell<Originals>);
// SAFETY: see Originals.
unsafe impl Sync for Cell {}
static ORIGINALS: Cell = Cell(UnsafeCell::new(Originals {
    mem: None,
    obj: None,
    arena: None,
}));

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Whether the domain wrappers were installed at start.
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// The getters fill raw words (checked for null functions before they are
/// taken as an `Allocator`).
type GetFn = unsafe extern "C" fn(i32, *mut [usize; 5]);
type SetFn = unsafe extern "C" fn(i32, *const Allocator);
type GetArenaFn = unsafe extern "C" fn(*mut [usize; 3]);
type SetArenaFn = unsafe extern "C" fn(*const ArenaAllocator);

/// Installs the wrappers, if the program links CPython 3.5+ (which has
/// `PyMemAllocatorEx`: `PyMem_Calloc` came with it), the interpreter has not
/// started (we are in the constructor of the program's first image) and the
/// user did not choose an allocator. `version` is `Py_Version` (3.11+) or 0.
/// Under the Guard (dlsym may allocate).
pub fn install(version: u64) {
    let (major, minor) = ((version >> 24) as u8, (version >> 16) as u8);
    if version != 0 && (major, minor) < (3, 5) {
        return;
    }
    if std::env::var_os("PYTHONMALLOC").is_some() || dev_mode() {
        return;
    }
    // SAFETY: dlsym with NUL-terminated names; the functions have these C
    // signatures in every CPython 3.x.
    unsafe {
        let sym = |name: &core::ffi::CStr| crate::real::dlsym(libc::RTLD_DEFAULT, name.as_ptr());
        if sym(c"PyMem_Calloc").is_null() {
            return;
        }
        let (get, set, get_arena, set_arena) = (
            sym(c"PyMem_GetAllocator"),
            sym(c"PyMem_SetAllocator"),
            sym(c"PyObject_GetArenaAllocator"),
            sym(c"PyObject_SetArenaAllocator"),
        );
        if get.is_null() || set.is_null() || get_arena.is_null() || set_arena.is_null() {
            return;
        }
        let get: GetFn = core::mem::transmute(get);
        let set: SetFn = core::mem::transmute(set);
        let get_arena: GetArenaFn = core::mem::transmute(get_arena);
        let set_arena: SetArenaFn = core::mem::transmute(set_arena);
        let (mut mem, mut obj, mut arena) = ([0usize; 5], [0usize; 5], [0usize; 3]);
        get(DOMAIN_MEM, &mut mem);
        get(DOMAIN_OBJ, &mut obj);
        get_arena(&mut arena);
        if mem[1..].contains(&0) || obj[1..].contains(&0) || arena[1..].contains(&0) {
            return;
        }
        let o = &mut *ORIGINALS.0.get();
        // SAFETY (transmutes): same C layout, every function pointer non-null.
        o.mem = Some(core::mem::transmute::<[usize; 5], Allocator>(mem));
        o.obj = Some(core::mem::transmute::<[usize; 5], Allocator>(obj));
        o.arena = Some(core::mem::transmute::<[usize; 3], ArenaAllocator>(arena));
        let mut ours = Allocator {
            ctx: DOMAIN_MEM as usize as *mut c_void,
            malloc: wrap_malloc,
            calloc: wrap_calloc,
            realloc: wrap_realloc,
            free: wrap_free,
        };
        set(DOMAIN_MEM, &ours);
        ours.ctx = DOMAIN_OBJ as usize as *mut c_void;
        set(DOMAIN_OBJ, &ours);
        let ours = ArenaAllocator {
            ctx: core::ptr::null_mut(),
            alloc: wrap_arena_alloc,
            free: wrap_arena_free,
        };
        set_arena(&ours);
    }
    INSTALLED.store(true, Ordering::Relaxed);
}

/// `-X dev` (or `PYTHONDEVMODE`) installs the debug allocator over ours.
pub fn dev_mode() -> bool {
    if std::env::var_os("PYTHONDEVMODE").is_some_and(|v| !v.is_empty()) {
        return true;
    }
    let Ok(cmdline) = std::fs::read("/proc/self/cmdline") else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    args.windows(2)
        .any(|w| (w[0] == b"-X" && w[1] == b"dev") || w[0] == b"-Xdev")
}

#[inline(always)]
fn original(ctx: *mut c_void) -> &'static Allocator {
    // SAFETY: written before the wrappers were installed, never again.
    let o = unsafe { &*ORIGINALS.0.get() };
    let a = if ctx as usize == DOMAIN_MEM as usize {
        o.mem.as_ref()
    } else {
        o.obj.as_ref()
    };
    a.expect("wrappers are installed only with their originals")
}

unsafe extern "C" fn wrap_malloc(ctx: *mut c_void, size: usize) -> *mut c_void {
    let a = original(ctx);
    let Some(_g) = Guard::wrapper() else {
        return (a.malloc)(a.ctx, size);
    };
    let p = (a.malloc)(a.ctx, size);
    if !p.is_null() {
        // pymalloc's blocks have no header to read: what was asked is
        // cleared (see `clear`); a grown block's new bytes are not.
        crate::clear::requested(p, size);
        record_alloc(p, size, AllocFn::Malloc);
    }
    p
}

unsafe extern "C" fn wrap_calloc(ctx: *mut c_void, n: usize, size: usize) -> *mut c_void {
    let a = original(ctx);
    let Some(_g) = Guard::wrapper() else {
        return (a.calloc)(a.ctx, n, size);
    };
    let p = (a.calloc)(a.ctx, n, size);
    if !p.is_null() {
        record_alloc(p, n.wrapping_mul(size), AllocFn::Calloc);
    }
    p
}

unsafe extern "C" fn wrap_realloc(ctx: *mut c_void, p: *mut c_void, size: usize) -> *mut c_void {
    let a = original(ctx);
    // CPython's realloc never frees: a size of 0 gets a 1-byte block, and a
    // NULL result is a failure.
    realloc_impl(p, size, AllocFn::Realloc, false, None, || {
        (a.realloc)(a.ctx, p, size)
    })
}

unsafe extern "C" fn wrap_free(ctx: *mut c_void, p: *mut c_void) {
    let a = original(ctx);
    if p.is_null() {
        return (a.free)(a.ctx, p);
    }
    if ctx as usize == DOMAIN_OBJ as usize {
        super::freeing_object(p);
    }
    if let Some(_g) = Guard::wrapper() {
        record_free(p);
        return (a.free)(a.ctx, p);
    }
    (a.free)(a.ctx, p)
}

/// pymalloc's arenas (256 KiB before 3.10, 1 MiB since); other sizes are
/// the interpreter's frame stacks.
fn is_arena(size: usize) -> bool {
    size == 1 << 18 || size == 1 << 20
}

fn arena() -> &'static ArenaAllocator {
    // SAFETY: as in `original`.
    let o = unsafe { &*ORIGINALS.0.get() };
    o.arena.as_ref().expect("installed with its original")
}

unsafe extern "C" fn wrap_arena_alloc(_: *mut c_void, size: usize) -> *mut c_void {
    let a = arena();
    if !is_arena(size) {
        return (a.alloc)(a.ctx, size);
    }
    let _g = Guard::wrapper();
    (a.alloc)(a.ctx, size)
}

unsafe extern "C" fn wrap_arena_free(_: *mut c_void, p: *mut c_void, size: usize) {
    let a = arena();
    if !is_arena(size) {
        return (a.free)(a.ctx, p, size);
    }
    let _g = Guard::wrapper();
    (a.free)(a.ctx, p, size)
}
