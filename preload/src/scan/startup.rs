//! The anonymous memory ld.so made for itself before the program ran.
//!
//! Until it has relocated libc, ld.so allocates with its own minimal malloc
//! (`__minimal_malloc`, elf/dl-minimal-malloc.c): first the rest of the last
//! page of its own data segment, then anonymous `rw` pages it maps with a
//! direct system call. The link maps of the executable's startup libraries
//! (ours among them), their search lists, name lists and the main thread's
//! static TLS and thread descriptor live there, and the program's heap is
//! pointed to from them later: `l_next` of the last startup library leads to
//! the first `dlopen`ed library's link map (a `calloc`ed block), a name list
//! gets a `malloc`ed entry, and so on.
//!
//! memcheck scans every client `rw` mapping, so those pages are roots for it.
//! They are neither a module's segment nor a stack nor a mapping made through
//! our `mmap`, so they are recorded here: the anonymous private `rw` mappings
//! that exist when our constructor runs (after relocation, so ld.so's minimal
//! malloc is done for good). Later ones are the allocator's arenas and big
//! chunks, thread stacks, and our own memory, none of which is a root.
//!
//! The list is read with plain system calls into fixed static storage: a
//! constructor may run before the allocator is usable through our hooks, and
//! nothing here may allocate.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const MAX: usize = 256;

static COUNT: AtomicUsize = AtomicUsize::new(0);
static LO: [AtomicU64; MAX] = [const { AtomicU64::new(0) }; MAX];
static HI: [AtomicU64; MAX] = [const { AtomicU64::new(0) }; MAX];

/// The anonymous private `rw` mappings present at start-up, `[lo, hi)`, in
/// address order; without those right above an anonymous `PROT_NONE` one (a
/// pthread stack above its guard page, made by a constructor that ran before
/// ours: a stack's live part is scanned from its thread's stack pointer).
pub fn ranges() -> Vec<(u64, u64)> {
    let n = COUNT.load(Ordering::Acquire).min(MAX);
    (0..n)
        .map(|i| (LO[i].load(Ordering::Relaxed), HI[i].load(Ordering::Relaxed)))
        .collect()
}

/// One line of `/proc/self/maps`, the fields needed here.
struct Line {
    lo: u64,
    hi: u64,
    perms: [u8; 4],
    /// No path and inode 0: anonymous (not `[heap]`, `[stack]`, `[vvar]`...).
    anonymous: bool,
}

fn hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v = 0u64;
    for &c in s {
        let d = (c as char).to_digit(16)?;
        v = v << 4 | d as u64;
    }
    Some(v)
}

fn parse(line: &[u8]) -> Option<Line> {
    let mut f = line
        .split(|&c| c == b' ' || c == b'\t')
        .filter(|w| !w.is_empty());
    let range = f.next()?;
    let perms = f.next()?;
    let _offset = f.next()?;
    let _dev = f.next()?;
    let inode = f.next()?;
    let path = f.next();
    let dash = range.iter().position(|&c| c == b'-')?;
    let (lo, hi) = (hex(&range[..dash])?, hex(&range[dash + 1..])?);
    let mut p = [b'-'; 4];
    for (d, s) in p.iter_mut().zip(perms) {
        *d = *s;
    }
    Some(Line {
        lo,
        hi,
        perms: p,
        anonymous: inode == b"0" && path.is_none(),
    })
}

/// Reads `/proc/self/maps` and keeps the anonymous private `rw` mappings
/// that are not a thread's stack.
fn snapshot() {
    let mut buf = [0u8; 4096];
    // Long lines (long paths) are cut: only their first fields matter.
    let mut line = [0u8; 512];
    let mut len = 0usize;
    let mut n = 0usize;
    // The end of the last anonymous PROT_NONE mapping (a guard page).
    let mut guard_end = u64::MAX;
    let keep = |l: &[u8], n: &mut usize, guard_end: &mut u64| {
        let Some(m) = parse(l) else { return };
        if m.anonymous && &m.perms[..3] == b"---" {
            *guard_end = m.hi;
            return;
        }
        let is_stack = m.lo == *guard_end;
        if m.anonymous && &m.perms == b"rw-p" && !is_stack && *n < MAX {
            LO[*n].store(m.lo, Ordering::Relaxed);
            HI[*n].store(m.hi, Ordering::Relaxed);
            *n += 1;
        }
    };
    // SAFETY: a NUL-terminated path; the descriptor is closed below.
    let fd = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return;
    }
    loop {
        // SAFETY: reading into our own stack buffer of that size.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            break;
        }
        for &c in &buf[..r as usize] {
            if c == b'\n' {
                keep(&line[..len], &mut n, &mut guard_end);
                len = 0;
            } else if len < line.len() {
                line[len] = c;
                len += 1;
            }
        }
    }
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
    COUNT.store(n, Ordering::Release);
}

/// With a priority (the linkers put `.init_array.N` entries first, lowest
/// `N` first): before our other constructor, which starts the writer thread
/// and whose allocations (through glibc, unrecorded) could otherwise be
/// taken for ld.so's. 101 is the first priority not reserved for the C
/// runtime.
#[used]
#[link_section = ".init_array.00101"]
static SNAPSHOT: extern "C" fn() = {
    extern "C" fn f() {
        snapshot()
    }
    f
};
