//! Equality of `capture` with `capture_slow` on various stacks.
//!
//! Unit tests (not `tests/`) so that they can also check, through a test-only per-thread
//! counter, whether `capture` took the fast path or fell back to `_Unwind_Backtrace`.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void, CString};
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;

use crate::{capture, capture_slow};

thread_local! {
    static FALLBACKS: Cell<usize> = const { Cell::new(0) };
}

pub(crate) fn note_fallback() {
    FALLBACKS.with(|f| f.set(f.get() + 1));
}

/// Memo events, counted per thread (test builds only).
#[derive(Clone, Copy)]
pub(crate) enum Event {
    Matched,
    CheckFailed,
    Busy,
    /// One frame replayed from the memo instead of walked.
    Replayed,
}

thread_local! {
    static EVENTS: Cell<[usize; 4]> = const { Cell::new([0; 4]) };
}

pub(crate) fn note(e: Event) {
    EVENTS.with(|c| {
        let mut v = c.get();
        v[e as usize] += 1;
        c.set(v);
    });
}

fn events() -> [usize; 4] {
    EVENTS.with(|c| c.get())
}

fn fallbacks() -> usize {
    FALLBACKS.with(|f| f.get())
}

type CaptureFn = unsafe fn(&mut [usize]) -> usize;

/// Calls `f` from one fixed call site, so that both methods see the same return addresses.
#[inline(never)]
fn call_with(f: CaptureFn, buf: &mut [usize]) -> usize {
    let f = black_box(f);
    // SAFETY: ordinary Rust/C stack with compiler-generated CFI.
    let n = unsafe { f(buf) };
    black_box(n)
}

#[derive(Debug)]
struct Check {
    fast: Vec<usize>,
    slow: Vec<usize>,
    fell_back: bool,
}

impl Check {
    fn assert_equal(&self, what: &str) {
        assert!(!self.fast.is_empty(), "{what}: empty capture");
        assert_eq!(
            fmt(&self.fast),
            fmt(&self.slow),
            "{what}: capture (left) differs from capture_slow (right)"
        );
    }
}

fn fmt(v: &[usize]) -> Vec<String> {
    v.iter()
        .map(|&ip| {
            let mut name = String::from("?");
            backtrace::resolve((ip - 1) as *mut c_void, |s| {
                if let Some(n) = s.name() {
                    name = n.to_string();
                }
            });
            format!("{ip:#x} {name}")
        })
        .collect()
}

/// Captures with both methods, from the same call site: one loop over a vector of opaque
/// length (with a fixed-size array LLVM knows the trip count and unrolls the loop into two call
/// sites, which would make the return address into `check` differ).
#[inline(never)]
fn check(len: usize) -> Check {
    struct Job {
        f: CaptureFn,
        buf: Vec<usize>,
        fallbacks_after: usize,
    }
    let mut jobs: Vec<Job> = [capture as CaptureFn, capture_slow]
        .into_iter()
        .map(|f| Job {
            f,
            buf: vec![0; len],
            fallbacks_after: 0,
        })
        .collect();
    let before = fallbacks();
    for job in black_box(&mut jobs).iter_mut() {
        let n = call_with(job.f, &mut job.buf);
        job.buf.truncate(n);
        job.fallbacks_after = fallbacks();
    }
    let slow = jobs.pop().unwrap();
    let fast = jobs.pop().unwrap();
    Check {
        fell_back: fast.fallbacks_after != before,
        fast: fast.buf,
        slow: slow.buf,
    }
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

#[test]
fn recursive_rust_50_deep() {
    let mut result = None;
    recurse(50, &mut || result = Some(check(256)));
    let c = result.unwrap();
    c.assert_equal("recursive");
    assert!(!c.fell_back, "fell back on a plain Rust stack");
    // call_with, the closure, 50+1 recurse frames, the test body, then libtest and std.
    assert!(c.fast.len() > 53, "only {} frames", c.fast.len());
    // Second time: everything is cached; still identical.
    let mut again = None;
    recurse(50, &mut || again = Some(check(256)));
    again.unwrap().assert_equal("recursive, cached");
}

/// Stacks deeper than the memo (128 states) and than the scratch of a new walk (64 states).
#[test]
fn very_deep_stacks() {
    for depth in [150, 150, 140, 210, 75, 150, 20, 150] {
        let mut result = None;
        recurse(depth, &mut || result = Some(check(300)));
        let c = result.unwrap();
        c.assert_equal(&format!("depth {depth}"));
        assert!(c.fast.len() > depth, "{depth}: {}", c.fast.len());
        assert!(!c.fell_back);
    }
}

#[test]
fn rules_are_cached() {
    let mut buf = [0usize; 64];
    // SAFETY: ordinary stack.
    let n = unsafe { capture(&mut buf) };
    assert!(n > 2);
    for &ip in &buf[..n - 1] {
        assert!(
            matches!(
                crate::fast::cached(ip),
                Some(crate::fast::Rule::Step { .. })
            ),
            "{ip:#x} not cached as a step rule"
        );
    }
}

#[test]
fn deeper_than_buf() {
    for len in [1, 2, 7, 20] {
        let mut result = None;
        recurse(100, &mut || result = Some(check(len)));
        let c = result.unwrap();
        c.assert_equal("deeper than buf");
        assert_eq!(c.fast.len(), len);
        assert!(!c.fell_back);
    }
    let mut empty: [usize; 0] = [];
    // SAFETY: ordinary stack.
    assert_eq!(unsafe { capture(&mut empty) }, 0);
    // SAFETY: ordinary stack.
    assert_eq!(unsafe { capture_slow(&mut empty) }, 0);
}

thread_local! {
    static CALLBACK_RESULTS: RefCell<Vec<Check>> = const { RefCell::new(Vec::new()) };
}

extern "C" fn qsort_cmp(a: *const c_void, b: *const c_void) -> c_int {
    let c = check(128);
    CALLBACK_RESULTS.with(|r| r.borrow_mut().push(c));
    // SAFETY: qsort passes pointers to elements of the i32 array below.
    let (a, b) = unsafe { (*(a as *const i32), *(b as *const i32)) };
    a.cmp(&b) as c_int
}

#[test]
fn through_libc_qsort() {
    let mut v: Vec<i32> = (0..16).rev().collect();
    CALLBACK_RESULTS.with(|r| r.borrow_mut().clear());
    // SAFETY: valid array of 16 i32 and a comparator for i32.
    unsafe {
        libc::qsort(v.as_mut_ptr().cast(), v.len(), 4, Some(qsort_cmp));
    }
    assert!(v.windows(2).all(|w| w[0] <= w[1]));
    let results = CALLBACK_RESULTS.with(|r| std::mem::take(&mut *r.borrow_mut()));
    assert!(!results.is_empty());
    for c in &results {
        c.assert_equal("qsort comparator");
        assert!(!c.fell_back, "fell back inside qsort");
    }
}

unsafe extern "C" fn phdr_cb(_: *mut libc::dl_phdr_info, _: usize, _: *mut c_void) -> c_int {
    let c = check(128);
    CALLBACK_RESULTS.with(|r| r.borrow_mut().push(c));
    1 // stop after the first object
}

/// Through ld.so (`dl_iterate_phdr` holds the loader lock and calls back).
#[test]
fn through_ld_so_dl_iterate_phdr() {
    CALLBACK_RESULTS.with(|r| r.borrow_mut().clear());
    // SAFETY: plain call with a valid callback.
    unsafe { libc::dl_iterate_phdr(Some(phdr_cb), std::ptr::null_mut()) };
    let results = CALLBACK_RESULTS.with(|r| std::mem::take(&mut *r.borrow_mut()));
    assert_eq!(results.len(), 1);
    results[0].assert_equal("dl_iterate_phdr");
    assert!(!results[0].fell_back);
}

extern "C" fn bsearch_cmp(a: *const c_void, b: *const c_void) -> c_int {
    qsort_cmp(a, b)
}

/// Through libc's `bsearch` (inlined into the caller in newer glibc; a real call here).
#[test]
fn through_libc_bsearch() {
    let v: Vec<i32> = (0..64).collect();
    let key = 17i32;
    CALLBACK_RESULTS.with(|r| r.borrow_mut().clear());
    // SAFETY: sorted array of 64 i32, an i32 key, and a comparator for i32.
    let found = unsafe {
        libc::bsearch(
            (&key as *const i32).cast(),
            v.as_ptr().cast(),
            v.len(),
            4,
            Some(bsearch_cmp),
        )
    };
    assert!(!found.is_null());
    let results = CALLBACK_RESULTS.with(|r| std::mem::take(&mut *r.borrow_mut()));
    assert!(!results.is_empty());
    for c in &results {
        c.assert_equal("bsearch comparator");
        assert!(!c.fell_back);
    }
}

extern "C" fn thread_main(_: *mut c_void) -> *mut c_void {
    let mut result = None;
    recurse(10, &mut || result = Some(check(128)));
    Box::into_raw(Box::new(result.unwrap())).cast()
}

#[test]
fn in_new_pthread() {
    let mut t: libc::pthread_t = 0;
    // SAFETY: plain pthread_create/join with a valid start routine; the result is the Box
    // leaked by `thread_main`.
    let c = unsafe {
        assert_eq!(
            libc::pthread_create(&mut t, std::ptr::null(), thread_main, std::ptr::null_mut()),
            0
        );
        let mut ret: *mut c_void = std::ptr::null_mut();
        assert_eq!(libc::pthread_join(t, &mut ret), 0);
        *Box::from_raw(ret.cast::<Check>())
    };
    c.assert_equal("new pthread");
    assert!(!c.fell_back);
    // thread_main's caller is glibc's start_thread, then clone3 (undefined return address).
    assert!(c.fast.len() >= 14, "{:?}", fmt(&c.fast));
}

#[test]
fn concurrent_threads() {
    crate::invalidate();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let mut result = None;
                    recurse(5 + i * 7, &mut || result = Some(check(128)));
                    let c = result.unwrap();
                    c.assert_equal("concurrent");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

extern "C" fn on_sigusr1(_: c_int) {
    let c = check(128);
    CALLBACK_RESULTS.with(|r| r.borrow_mut().push(c));
}

/// Through `__restore_rt` (a signal frame with DWARF expressions): must fall back, and agree.
#[test]
fn in_signal_handler_falls_back() {
    CALLBACK_RESULTS.with(|r| r.borrow_mut().clear());
    // SAFETY: installs a handler for SIGUSR1 (used by no other test) and raises it
    // synchronously on this thread.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigusr1 as extern "C" fn(c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
        recurse(3, &mut || {
            libc::raise(libc::SIGUSR1);
        });
    }
    let results = CALLBACK_RESULTS.with(|r| std::mem::take(&mut *r.borrow_mut()));
    assert_eq!(results.len(), 1);
    let c = &results[0];
    c.assert_equal("signal handler");
    assert!(c.fell_back, "expected a fallback through __restore_rt");
}

#[test]
fn miss_path_stack_use() {
    // The gimli context lives on the stack during a miss: keep it modest.
    let size = std::mem::size_of::<gimli::UnwindContext<usize, crate::fast::SmallStore>>();
    println!("UnwindContext: {size} bytes");
    assert!(size < 16 * 1024, "{size}");
}

/// Distinct ips of one set: the set holds two, a third evicts one of them, lookups stay right.
#[test]
fn rule_table_sets() {
    use crate::fast::{cached, compute, miss};
    // ip ^ (k << 15) ^ k lands in the same set as ip (for k < 2^15). These are not real return
    // addresses (mostly not even mapped code): `compute` says End or some rule; the cache must
    // hand back exactly that.
    let base = 0x3000_1234_5678usize; // mapped by nothing
    let ips: Vec<usize> = (0x2a1..0x2a4).map(|k| base ^ (k << 15) ^ k).collect();
    let rules: Vec<_> = ips.iter().map(|&ip| compute(ip)).collect();
    assert_eq!(miss(ips[0]), rules[0]);
    assert_eq!(miss(ips[1]), rules[1]);
    assert_eq!(cached(ips[0]), Some(rules[0]));
    assert_eq!(cached(ips[1]), Some(rules[1]));
    assert_eq!(miss(ips[2]), rules[2]);
    assert_eq!(cached(ips[2]), Some(rules[2]));
    let survivors = ips[..2].iter().filter(|&&ip| cached(ip).is_some()).count();
    assert_eq!(survivors, 1);
    // A real return address: cached after a capture, equal to a fresh computation.
    let mut buf = [0usize; 8];
    // SAFETY: ordinary stack.
    let n = unsafe { capture(&mut buf) };
    assert!(n > 0);
    assert_eq!(cached(buf[0]), Some(compute(buf[0])));
    assert!(matches!(compute(buf[0]), crate::fast::Rule::Step { .. }));
}

#[test]
fn rule_packing() {
    use crate::fast::{roundtrip, Rule};
    let ip = 0x7f12_3456_789a;
    for rule in [
        Rule::End,
        Rule::Unsupported,
        Rule::Step {
            cfa_rbp: false,
            cfa_off: 8,
            rbp_back: 0,
        },
        Rule::Step {
            cfa_rbp: true,
            cfa_off: 16,
            rbp_back: 16,
        },
        Rule::Step {
            cfa_rbp: false,
            cfa_off: 8 * 65535,
            rbp_back: 8 * 4095,
        },
    ] {
        assert_eq!(roundtrip(ip, rule), Some(rule));
    }
    assert_eq!(
        roundtrip(
            ip,
            Rule::Step {
                cfa_rbp: false,
                cfa_off: 8 * 65536,
                rbp_back: 0
            }
        ),
        None
    );
    assert_eq!(
        roundtrip(
            ip,
            Rule::Step {
                cfa_rbp: false,
                cfa_off: 12,
                rbp_back: 0
            }
        ),
        None
    );
    assert_eq!(roundtrip(1 << 47, Rule::End), None);
}

// ---------------------------------------------------------------------------------------------
// C code built with `cc -O2 -fomit-frame-pointer`.

const C_SOURCE: &str = r#"
typedef void (*cb_t)(void);
void opaque(volatile char *p) { __asm__ volatile("" : : "r"(p) : "memory"); }
int level(int n, cb_t cb);

/* rsp-based frames of different sizes */
__attribute__((noinline)) int small(int n, cb_t cb) { return level(n - 1, cb) * 3 + n; }
__attribute__((noinline)) int big(int n, cb_t cb) {
  volatile char buf[3000]; opaque(buf); buf[n] = (char)n;
  return level(n - 1, cb) + buf[n];
}
/* alloca forces an rbp-based CFA even with -fomit-frame-pointer */
__attribute__((noinline)) int dyn(int n, cb_t cb) {
  volatile char *p = __builtin_alloca(n * 8 + 16); opaque(p); p[0] = (char)n;
  return level(n - 1, cb) + p[0];
}
/* stack realignment: rbp-based CFA too */
__attribute__((noinline)) int aligned(int n, cb_t cb) {
  char buf[64] __attribute__((aligned(64))); opaque(buf); buf[1] = (char)n;
  return level(n - 1, cb) + buf[1];
}
__attribute__((noinline)) int level(int n, cb_t cb) {
  if (n <= 0) { cb(); return 1; }
  switch (n % 4) {
  case 0: return small(n, cb) + 1;
  case 1: return big(n, cb) + 2;
  case 2: return dyn(n, cb) + 3;
  default: return aligned(n, cb) + 4;
  }
}
int deep(int n, cb_t cb) { return level(n, cb) + 1; }

/* Hand-written CFI that the fast path cannot express. */
int cfa_rbx(cb_t cb);      /* CFA = rbx + 16 */
int cfa_expr(cb_t cb);     /* CFA = DW_OP_breg3 (rbx) + 16 (a DWARF expression) */
__asm__(
  ".text\n"
  ".globl cfa_rbx\n.type cfa_rbx,@function\ncfa_rbx:\n.cfi_startproc\n"
  "  push %rbx\n.cfi_def_cfa_offset 16\n.cfi_offset rbx, -16\n"
  "  mov %rsp, %rbx\n.cfi_def_cfa_register rbx\n"
  "  and $-32, %rsp\n  call *%rdi\n"
  "  mov %rbx, %rsp\n.cfi_def_cfa_register rsp\n"
  "  pop %rbx\n.cfi_def_cfa_offset 8\n  ret\n.cfi_endproc\n"
  ".size cfa_rbx, .-cfa_rbx\n"
  ".globl cfa_expr\n.type cfa_expr,@function\ncfa_expr:\n.cfi_startproc\n"
  "  push %rbx\n.cfi_def_cfa_offset 16\n.cfi_offset rbx, -16\n"
  "  mov %rsp, %rbx\n.cfi_escape 0x0f, 0x02, 0x73, 0x10\n"
  "  and $-32, %rsp\n  call *%rdi\n"
  "  mov %rbx, %rsp\n.cfi_def_cfa rsp, 16\n"
  "  pop %rbx\n.cfi_def_cfa_offset 8\n  ret\n.cfi_endproc\n"
  ".size cfa_expr, .-cfa_expr\n");

/* rbp as a plain register: calls level(n, cb) with rbp holding the value set by set_garbage,
   as code built without frame pointers leaves whatever it computed there. */
__attribute__((visibility("hidden"))) long garbage_value;
void set_garbage(long v) { garbage_value = v; }
int garbage_rbp(int n, cb_t cb);
__asm__(
  ".text\n"
  ".globl garbage_rbp\n.type garbage_rbp,@function\ngarbage_rbp:\n.cfi_startproc\n"
  "  push %rbp\n.cfi_def_cfa_offset 16\n.cfi_offset rbp, -16\n"
  "  mov garbage_value(%rip), %rbp\n"
  "  call level\n"
  "  pop %rbp\n.cfi_def_cfa_offset 8\n.cfi_restore rbp\n  ret\n.cfi_endproc\n"
  ".size garbage_rbp, .-garbage_rbp\n");

static cb_t saved;
static void via_deep(void) { deep(9, saved); }
int deep_then_rbx(int n, cb_t cb) { saved = cb; return cfa_rbx(via_deep) + n; }
int deep_then_expr(int n, cb_t cb) { saved = cb; return cfa_expr(via_deep) + n; }
"#;

struct CLib {
    handle: *mut c_void,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn build_c_lib() -> Option<CLib> {
    let dir = std::env::temp_dir().join(format!(
        "leakhunt-unwind-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = TempDir(dir);
    let src = dir.0.join("deep.c");
    let lib = dir.0.join("libdeep.so");
    std::fs::write(&src, C_SOURCE).unwrap();
    let status = match Command::new("cc")
        .args(["-O2", "-fomit-frame-pointer", "-fPIC", "-shared", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
    {
        Ok(s) => s,
        Err(e) => {
            println!("SKIPPED: no C compiler (cc: {e})");
            return None;
        }
    };
    assert!(status.success(), "cc failed");
    let path = CString::new(lib.to_str().unwrap()).unwrap();
    // SAFETY: loading a library we just built; it has no constructors.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen failed");
    Some(CLib { handle, _dir: dir })
}

impl CLib {
    fn sym(&self, name: &str) -> extern "C" fn(c_int, extern "C" fn()) -> c_int {
        let name = CString::new(name).unwrap();
        // SAFETY: the symbol exists in our library with exactly this C signature.
        unsafe {
            let p = libc::dlsym(self.handle, name.as_ptr());
            assert!(!p.is_null());
            std::mem::transmute::<*mut c_void, extern "C" fn(c_int, extern "C" fn()) -> c_int>(p)
        }
    }
}

impl Drop for CLib {
    fn drop(&mut self) {
        // SAFETY: no code of the library is running any more.
        unsafe { libc::dlclose(self.handle) };
        crate::invalidate();
    }
}

extern "C" fn from_c() {
    let c = check(256);
    CALLBACK_RESULTS.with(|r| r.borrow_mut().push(c));
}

#[test]
fn through_c_without_frame_pointers() {
    let Some(lib) = build_c_lib() else { return };
    CALLBACK_RESULTS.with(|r| r.borrow_mut().clear());
    let deep = lib.sym("deep");
    deep(40, from_c);
    deep(40, from_c);
    let results = CALLBACK_RESULTS.with(|r| std::mem::take(&mut *r.borrow_mut()));
    assert_eq!(results.len(), 2);
    for c in &results {
        c.assert_equal("C deep chain");
        assert!(!c.fell_back, "fell back on plain -O2 C code");
        assert!(c.fast.len() > 42, "{:?}", fmt(&c.fast));
    }
}

#[test]
fn through_c_unsupported_cfi_falls_back() {
    let Some(lib) = build_c_lib() else { return };
    for name in ["deep_then_rbx", "deep_then_expr"] {
        CALLBACK_RESULTS.with(|r| r.borrow_mut().clear());
        lib.sym(name)(3, from_c);
        let results = CALLBACK_RESULTS.with(|r| std::mem::take(&mut *r.borrow_mut()));
        assert_eq!(results.len(), 1, "{name}");
        let c = &results[0];
        c.assert_equal(name);
        assert!(c.fell_back, "{name}: expected a fallback");
        assert!(c.fast.len() > 12, "{name}: {:?}", fmt(&c.fast));
    }
}

/// Tiny xorshift, so the test needs no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[inline(never)]
fn shape_a(depth: usize, f: &mut dyn FnMut()) -> usize {
    let mut pad = [0u8; 96];
    black_box(&mut pad);
    recurse(depth, f) + pad[3] as usize
}

#[inline(never)]
fn shape_b(depth: usize, f: &mut dyn FnMut()) -> usize {
    let mut pad = [0u64; 700];
    black_box(&mut pad);
    shape_a(depth, f) + pad[1] as usize
}

/// `via_x` and `via_y` have the same frame layout: a walk through one can match a memorised walk
/// through the other at the frames they call, and must then notice the different return address.
#[inline(never)]
fn via_x(depth: usize, f: &mut dyn FnMut()) -> usize {
    recurse(black_box(depth), f) + black_box(1)
}

#[inline(never)]
fn via_y(depth: usize, f: &mut dyn FnMut()) -> usize {
    recurse(black_box(depth), f) + black_box(2)
}

/// Many captures of differing shapes and buffer sizes in a row on one thread: exercises the
/// per-thread memo (matching at various depths, replay, failed checks, truncation).
#[test]
fn memo_random_shapes() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut results = Vec::new();
    for _ in 0..400 {
        let depth = rng.below(30);
        let len = 1 + rng.below(90);
        let mut run = || results.push((len, check(len)));
        match rng.below(6) {
            0 => {
                recurse(depth, &mut run);
            }
            4 => {
                via_x(depth % 4, &mut run);
            }
            5 => {
                via_y(depth % 4, &mut run);
            }
            1 => {
                shape_a(depth, &mut run);
            }
            2 => {
                shape_b(depth, &mut run);
            }
            _ => {
                run();
            }
        }
        if rng.below(50) == 0 {
            crate::invalidate();
        }
    }
    for (len, c) in &results {
        c.assert_equal(&format!("random shape, buf {len}"));
        assert!(!c.fell_back);
    }
    let [matched, failed, ..] = events();
    println!("memo: {matched} matches, {failed} failed checks");
    assert!(
        matched > 100,
        "memo replay not exercised: {matched} matches"
    );
}

extern "C" fn from_c_stress() {
    let len = RNG_LEN.with(|l| l.get());
    let c = check(len);
    CALLBACK_RESULTS.with(|r| r.borrow_mut().push(c));
}

thread_local! {
    static RNG_LEN: Cell<usize> = const { Cell::new(64) };
}

/// Random depths through C frames with rbp-based CFAs (saved-rbp checks in the memo replay).
#[test]
fn memo_random_c_depths() {
    let Some(lib) = build_c_lib() else { return };
    let deep = lib.sym("deep");
    let mut rng = Rng(12345);
    CALLBACK_RESULTS.with(|r| r.borrow_mut().clear());
    for _ in 0..300 {
        RNG_LEN.with(|l| l.set(1 + rng.below(80)));
        deep(rng.below(45) as c_int, from_c_stress);
    }
    let results = CALLBACK_RESULTS.with(|r| std::mem::take(&mut *r.borrow_mut()));
    assert_eq!(results.len(), 300);
    for c in &results {
        c.assert_equal("C random depth");
        assert!(!c.fell_back);
    }
    let [matched, failed, ..] = events();
    println!("memo: {matched} matches, {failed} failed checks");
    assert!(
        matched > 10 && failed > 2,
        "memo paths not exercised: {matched} {failed}"
    );
}

/// Frames whose rbp is whatever the code left there, different on every call: the memo must
/// match them anyway (no later step reads that rbp), replay the same frames as a full walk, and
/// go on from a failed check with this walk's rbp, not the memorised one (frames with rbp-based
/// CFAs sit at random depths below and above).
#[test]
fn memo_ignores_an_rbp_nothing_reads() {
    let Some(lib) = build_c_lib() else { return };
    let garbage_rbp = lib.sym("garbage_rbp");
    let set_garbage = {
        let name = CString::new("set_garbage").unwrap();
        // SAFETY: the symbol exists in our library with exactly this C signature.
        unsafe {
            let p = libc::dlsym(lib.handle, name.as_ptr());
            assert!(!p.is_null());
            std::mem::transmute::<*mut c_void, extern "C" fn(libc::c_long)>(p)
        }
    };
    let mut rng = Rng(777);
    let before = events();
    CALLBACK_RESULTS.with(|r| r.borrow_mut().clear());
    let mut depth = 0;
    for i in 0..400 {
        // Runs of captures from one depth (identical frames, different rbp garbage), now and then
        // a shorter buffer.
        if i % 8 == 0 {
            depth = rng.below(12);
        }
        RNG_LEN.with(|l| l.set(if i % 8 == 7 { 1 + rng.below(30) } else { 80 }));
        set_garbage((rng.below(1 << 30) * 16) as libc::c_long);
        garbage_rbp(depth as c_int, from_c_stress);
    }
    let results = CALLBACK_RESULTS.with(|r| std::mem::take(&mut *r.borrow_mut()));
    assert_eq!(results.len(), 400);
    for c in &results {
        c.assert_equal("garbage rbp");
        assert!(!c.fell_back);
    }
    let after = events();
    let replayed = after[Event::Replayed as usize] - before[Event::Replayed as usize];
    let frames: usize = results.iter().map(|c| c.fast.len()).sum();
    // Seven captures in eight repeat the last one but for rbp: nearly all their frames replay
    // (89% here; comparing the unread rbp too, 53%).
    assert!(
        replayed * 4 > frames * 3,
        "the memo replayed {replayed} of {frames} frames"
    );
}

/// Same frames at the same stack addresses, but a different caller further up: the memo replay
/// must notice the changed return address and re-walk from there.
#[test]
fn memo_detects_changed_caller() {
    let before = events();
    let mut results = Vec::new();
    for i in 0..20 {
        let mut run = || results.push(check(64));
        if i % 2 == 0 {
            via_x(2, &mut run);
        } else {
            via_y(2, &mut run);
        }
    }
    let after = events();
    for c in &results {
        c.assert_equal("via_x / via_y");
        assert!(!c.fell_back);
    }
    assert!(
        after[Event::Matched as usize] > before[Event::Matched as usize]
            && after[Event::CheckFailed as usize] > before[Event::CheckFailed as usize],
        "replay check failure not exercised: {before:?} -> {after:?}"
    );
}

static SIG_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static SIG_MISMATCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Both captures from one call site, without allocating (for use in a signal handler).
#[inline(never)]
fn check_in_place(bufs: &mut [[usize; 64]; 2]) -> bool {
    let fns: [CaptureFn; 2] = [capture, capture_slow];
    let mut counts = [0usize; 2];
    for ((f, buf), n) in black_box(&fns[..])
        .iter()
        .zip(black_box(&mut bufs[..]).iter_mut())
        .zip(black_box(&mut counts[..]).iter_mut())
    {
        *n = call_with(*f, buf);
    }
    counts[0] > 0 && bufs[0][..counts[0]] == bufs[1][..counts[1]]
}

/// Captures into every buffer from one call site: the first with `capture_slow`, the others
/// with `capture` (mostly fast captures, so that signals often land inside one).
#[inline(never)]
fn capture_many(bufs: &mut [[usize; 64]], counts: &mut [usize]) {
    let mut fns = vec![capture as CaptureFn; bufs.len()];
    fns[0] = capture_slow;
    // No branch on the index in the loop: LLVM would peel the first iteration.
    for ((f, buf), n) in black_box(&fns[..])
        .iter()
        .zip(black_box(bufs).iter_mut())
        .zip(counts)
    {
        *n = call_with(*f, buf);
    }
}

extern "C" fn on_sigusr2(_: c_int) {
    let mut bufs = [[0usize; 64]; 2];
    if !check_in_place(&mut bufs) {
        SIG_MISMATCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    SIG_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Signal handlers that capture, interrupting captures at random points (the per-thread memo
/// must stay consistent: the handler must keep out of a memo in use).
#[test]
fn captures_interrupted_by_capturing_signal_handler() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    // SAFETY: installs a handler for SIGUSR2, which no other test uses.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigusr2 as extern "C" fn(c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut()), 0);
    }
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() } as usize;
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: `me` is alive until it sets `stop` and joins us.
                unsafe { libc::pthread_kill(me as libc::pthread_t, libc::SIGUSR2) };
                std::thread::sleep(std::time::Duration::from_micros(20));
            }
        })
    };
    let mut rng = Rng(777);
    let mut bad = 0;
    let start = std::time::Instant::now();
    let mut rounds = 0;
    let busy_before = events()[Event::Busy as usize];
    while rounds < 20_000
        || (events()[Event::Busy as usize] == busy_before && start.elapsed().as_secs() < 30)
    {
        let mut ok = true;
        let mut run = || {
            let mut bufs = [[0usize; 64]; 2];
            ok = check_in_place(&mut bufs);
            let mut many = [[0usize; 64]; 16];
            let mut counts = [0usize; 16];
            capture_many(&mut many, &mut counts);
            // many[0] is from capture_slow, the others from capture.
            ok &= counts[0] > 0 && (1..16).all(|i| many[i][..counts[i]] == many[0][..counts[0]]);
        };
        recurse(rng.below(20), &mut run);
        bad += usize::from(!ok);
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    killer.join().unwrap();
    // A signal landing in one of the two captures of a round changes nothing: the handler's
    // frames are gone by the time the capture continues.
    assert_eq!(bad, 0, "mismatches in the interrupted thread");
    assert_eq!(
        SIG_MISMATCHES.load(Ordering::Relaxed),
        0,
        "mismatches in the handler"
    );
    assert!(SIG_RUNS.load(Ordering::Relaxed) > 0);
    println!(
        "{rounds} rounds, {} handler runs, {} of them inside a capture",
        SIG_RUNS.load(Ordering::Relaxed),
        events()[Event::Busy as usize] - busy_before
    );
}
