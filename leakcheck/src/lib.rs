//! The classification step of valgrind memcheck's leak check
//! (`--leak-check=full`, valgrind 3.19, `memcheck/mc_leakcheck.c`),
//! reimplemented as a pure library.
//!
//! Given the live heap blocks, the roots and a view of the stopped process's
//! memory, [`classify`] decides for every block what memcheck decides: still
//! reachable, possibly lost, definitely lost (a clique leader, with the
//! indirectly lost blocks hanging off it rolled up into it) or indirectly lost.
//! The four C++ interior-pointer heuristics are applied as memcheck applies
//! them by default (`--leak-check-heuristics=all` is the default since 3.11).
//!
//! # What is mirrored (function names are memcheck's)
//!
//! * `find_chunk_for`: the same binary search over the blocks sorted by
//!   address; a zero-sized block is treated as if it had size 1, so a pointer
//!   to its start finds it. A pointer one past the end of a block is *not* in
//!   it (it may be the start of the next block if one starts there).
//!   `lc_is_a_chunk_ptr`'s quick filter (`am_is_valid_for_client`) is always
//!   true for an address inside a block; it is replaced by a cheap
//!   `[min start, max end)` pre-check.
//! * `lc_scan_memory`: a range `[start, start+len)` is scanned from
//!   `roundup(start, 8)` to `rounddown(start+len, 8)`, in increasing address
//!   order, one aligned 8-byte word at a time; a word is used only if
//!   [`Memory::word`] gives it (memcheck: `MC_(is_valid_aligned_word)`, i.e.
//!   addressable and defined). A word straddling the end of a range or block is
//!   not examined, nor is anything at an unaligned address.
//! * `lc_push_without_clique_if_a_chunk_ptr` (root scan and first mark phase):
//!   states only go up, `Unreached -> Possible -> Reachable`. A block becomes
//!   `Reachable` when the pointer is to its start — or is an interior pointer
//!   accepted by `heuristic_reachedness` — *and* the prior node is definite (a
//!   root, or a block that is `Reachable`); otherwise an `Unreached` block
//!   becomes `Possible`. Every state change pushes the block onto the mark
//!   stack (`lc_push`, which skips a block already pending). The block's
//!   `heuristic` field is handled exactly as memcheck does, quirks included
//!   (see [`Outcome::heuristic`]).
//! * `lc_process_markstack`: LIFO; a popped block is scanned with
//!   `is_prior_definite = (state != Possible)` evaluated at pop time.
//! * `MC_(detect_memory_leaks)`: scan the memory roots (`scan_memory_root_set`,
//!   here [`Roots::ranges`] in the given order), then the registers
//!   (`VG_(apply_to_GP_regs)`, here [`Roots::words`], prior definite), then
//!   process the mark stack. Then the clique loop: blocks are taken **in
//!   address order**; each one still `Unreached` becomes a clique leader, is
//!   pushed and the mark stack is processed with `clique = leader`.
//! * `lc_push_with_clique_if_a_chunk_ptr`: in the clique phase start and
//!   interior pointers are treated alike; only an `Unreached` block other than
//!   the leader itself is taken: it becomes `IndirectLeak` and the leader's
//!   indirect size grows by the block's size **plus the block's own indirect
//!   size** — that is how an earlier leader reached by a later clique is
//!   absorbed (its rolled-up bytes move to the new leader, and it becomes
//!   indirectly lost). A block that is already indirectly lost (in an earlier
//!   clique) is left where it is, so cliques never overlap. So a lost cycle's
//!   leader is its lowest-addressed block, unless the cycle is itself reached
//!   from a later unreached block, which then absorbs it.
//! * `heuristic_reachedness` with all four heuristics, in memcheck's order
//!   (stdstring, length64, newarray, multipleinheritance; first match wins),
//!   only for an interior pointer (never the start). Words of the block it
//!   reads must lie entirely inside the block (memcheck's redzones make the
//!   bytes after a block unaddressable) and be given by [`Memory::word`]:
//!   - `stdstring`: `ptr == start + 24`, `capacity = word(start + 8)`,
//!     `24 + capacity + 1 == size` (wrapping), `length = word(start)`,
//!     `length <= capacity` (the libstdc++ pre-C++11 COW `_Rep` layout
//!     `length, capacity, refcount, chars[], '\0'`; the refcount is not read).
//!   - `length64`: `ptr == start + 8`, `n = word(start)`, `n > 0 && size - 8 == n`.
//!   - `newarray`: `ptr == start + 8`, `n = word(start)`,
//!     `n > 0 && (size - 8) % n == 0`.
//!   - `multipleinheritance`: `ptr` 8-aligned, `inner = word(ptr)`,
//!     `first = word(start)`, both 8-aligned and `>= 4096`, and both accepted
//!     by `aligned_ptr_above_page0_is_vtable_addr` ([`Memory::is_vtable_location`],
//!     see [`memcheck_vtable_check`]).
//!
//! Blocks are only classified here; the LEAK SUMMARY is a sum over the
//! outcomes as memcheck's `print_results` does it: definitely lost = the
//! `DefinitelyLost` blocks (their own size; the indirect bytes are reported
//! with them in the loss records but counted in the summary under indirectly
//! lost), indirectly lost, possibly lost, still reachable = sums of sizes per
//! kind; "of which reachable via heuristic" = for each heuristic, the blocks
//! whose [`Outcome::heuristic`] is that heuristic (memcheck counts them
//! whatever their kind, see there).
//!
//! One addition: memcheck only rolls up bytes (`indirect_szB`); the same
//! rule is applied to a block count in [`Outcome::indirect_blocks`].
//!
//! # A heuristic of ours: `python`
//!
//! memcheck has no heuristic for CPython, whose objects do not start their
//! malloc block: a GC-tracked object sits after its 16-byte `PyGC_Head`, and
//! one with a managed dict (3.11+) 32 bytes in, after the two-word pre-header
//! before the GC head. Every pointer to such an object is an interior
//! pointer, so under memcheck's rules (with `PYTHONMALLOC=malloc`) a Python
//! heap is mostly "possibly lost". With [`Options::python_type_type`] set
//! (the address of `PyType_Type` in the process), [`classify_with`] tries one
//! more heuristic after memcheck's four, in the same place and with the same
//! consequences as theirs: an interior pointer `ptr` at exactly `start + 16`
//! or `start + 32` is accepted when `ptr` is a live object head, i.e. the
//! block's words at `ptr` (`ob_refcnt`) and `ptr + 8` (`ob_type`, say `T`)
//! are readable, the refcount is in `1 .. 2^40`, `T` is 8-aligned and at
//! least 4096, and the word at `T + 8` (the type's own type) is `PyType_Type`
//! or is itself a type whose type is `PyType_Type` (a metaclass). Words of
//! `T` (and of its type) are read from a live block when they lie in one
//! (entirely inside it), else through [`Memory::word_anywhere`], which
//! answers only for memory it knows to be safely readable. The same
//! heuristic also accepts the other interior pointer such a heap is made of:
//! a managed dict's values array (3.11, 3.12: `new_values` in
//! Objects/dictobject.c), which the object's pre-header points at
//! `prefix` bytes into its block, where `prefix = round_up(n + 2, 8)` for
//! the `n` value slots that follow (so `size == prefix + 8 n`, `n > 0`) and
//! the byte just before the pointer holds `prefix`. Without the option,
//! [`classify`] is exactly memcheck.
//!
//! # The root set memcheck uses (amd64 Linux)
//!
//! From `MC_(detect_memory_leaks)` and the callers of `lc_scan_memory`:
//!
//! 1. **Memory** (`scan_memory_root_set`): every client segment of kind
//!    `SkFileC | SkAnonC | SkShmC` (file mappings, anonymous mappings, SysV
//!    shm), in ascending address order (`VG_(get_segment_starts)`), that is
//!    both **readable and writable** (`hasR && hasW`), is **not** valgrind's
//!    client heap (`isCH`: the arena where the replacement malloc puts the
//!    blocks, so block contents are only scanned once the block is reached),
//!    and is not a character/block device mapping other than `/dev/zero`.
//!    Each such segment is scanned whole with `lc_scan_memory(start, size,
//!    is_prior_definite = True, clique = -1)`; within it only the aligned
//!    words that are addressable **and fully defined** per memcheck's V bits
//!    (`MC_(is_valid_aligned_word)`, which also excludes `--ignore-ranges`)
//!    count; pages aspacemgr says are unreadable are skipped, and a read that
//!    faults skips one word. In practice: the `.data`/`.bss` (and any other
//!    writable part, e.g. a GOT without full RELRO) of the executable and of
//!    every shared object, all writable anonymous mappings (TLS blocks,
//!    `brk` memory the program manages itself, thread stacks, sigaltstacks),
//!    writable shared mappings. Not scanned: read-only mappings (text,
//!    `.rodata`, `.data.rel.ro`/GOT after the RELRO `mprotect`), `[vvar]`,
//!    `[vdso]`, guard pages, and valgrind's own memory.
//!    For a native (LD_PRELOAD) port this means: scan the `rw` lines of
//!    `/proc/PID/maps` in address order, **except** the malloc heap itself
//!    (glibc's `[heap]`/`brk` arena, the non-main arenas' mmapped heaps and
//!    the mmapped chunks of big blocks — the `isCH` equivalent; blocks are
//!    scanned when reached, freed chunks never) and **except the profiler's
//!    own bookkeeping** (valgrind's memory is never client memory; a table
//!    of live blocks would make everything reachable).
//! 2. **Stacks** are not special-cased by the scan: a thread stack is an
//!    ordinary `rw` anonymous segment. What limits it is memcheck's
//!    addressability tracking: whenever SP moves up, the core calls
//!    `die_mem_stack(old_SP - VG_STACK_REDZONE_SZB, ...)`, and at start-up
//!    everything in the main stack segment below `initial_SP - 128` is made
//!    noaccess; `VG_STACK_REDZONE_SZB` is 128 on amd64 (the ABI red zone).
//!    So the live part of each thread's stack, `[SP - 128, stack top)`, is
//!    scanned — the red zone included — and what lies below `SP - 128` (dead
//!    frames) is not. (Checked against valgrind 3.19: a pointer stored 8 to
//!    128 bytes below SP keeps its block reachable, one 136 bytes below does
//!    not.) "Stack top" is the end of the mapping, which for a pthread stack
//!    also holds its TLS and thread descriptor. Uninitialised (undefined)
//!    stack slots are skipped by memcheck; a native tool cannot know which
//!    those are, so it will scan them (slightly more blocks reachable than
//!    under memcheck).
//! 3. **Registers** (`VG_(apply_to_GP_regs)(lc_push_if_a_chunk_ptr_register)`),
//!    after the memory scan and before the mark stack is processed: for each
//!    live thread (or one being killed by `exit_group`), in thread-id order,
//!    the 16 general-purpose registers RAX, RCX, RDX, RBX, RSI, RDI, RSP, RBP,
//!    R8–R15, each as a root word with `is_prior_definite = True` and without
//!    any definedness check. Not RIP, not the vector registers, not the FS/GS
//!    bases (the TLS those point to is scanned as memory).
//!
//! The order of the roots only matters for the `heuristic` field quirks; to
//! be exact, give the ranges in ascending address order and the registers
//! after them (thread by thread, in the order above). The blocks are what
//! memcheck calls chunks: every live `malloc`/`calloc`/`realloc`/`memalign`/
//! `new`/`new[]` block with its **requested** size (not the usable size).
//!
//! # Validation
//!
//! `tests/valgrind_diff.rs` (needs `valgrind`, `cc` and `c++`, skipped
//! without them) runs C and C++ programs under valgrind
//! 3.19 that build random heaps (3,000 blocks: zero-sized and odd sizes,
//! start and interior pointers, cycles, lost cliques, stdstring / length64 /
//! newarray headers) or objects with multiple inheritance, dump the heap and
//! their only root, and checks that every LEAK SUMMARY number memcheck
//! prints (bytes and blocks per kind, per heuristic, and the indirect bytes
//! of the definitely lost records) equals what [`classify`] computes.
//!
//! # Cost
//!
//! Time: O(words scanned × log blocks) — as in memcheck, a reached block is
//! scanned once, or twice if it was possibly reachable before being found
//! definitely reachable, and a lost block once more in the clique phase;
//! each word goes through a two-comparison range check, and only the words
//! inside `[lowest block, highest block end)` are looked up. No recursion:
//! the mark stack is a vector. Memory: 29 bytes per block (lookup key, state
//! byte, rolled-up counts, mark stack) and a lookup index of about one byte
//! per block, plus the returned outcomes (24 bytes per block). The run time
//! is dominated by memory latency: a cache miss or so per block scanned and
//! per pointer looked up (the lookups of one block's words are made together
//! so that their misses overlap).

#![forbid(unsafe_code)]

mod vtable;

pub use vtable::{memcheck_vtable_check, Mapping};

#[cfg(test)]
mod tests;

/// A live heap block: `[start, start + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub start: u64,
    pub size: u64,
}

/// memcheck's loss kinds (`Reachedness`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `Reachable`.
    StillReachable,
    /// `Possible`.
    PossiblyLost,
    /// `Unreached` after the clique loop: a clique leader.
    DefinitelyLost,
    /// `IndirectLeak`.
    IndirectlyLost,
}

/// memcheck's leak-check heuristics (`LeakCheckHeuristic`), in memcheck's
/// order, which is the order they are tried in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Heuristic {
    StdString,
    Length64,
    NewArray,
    MultipleInheritance,
    /// Not memcheck's: a CPython object head at `start + 16` or `start + 32`
    /// (see the crate documentation). Only with [`Options::python_type_type`].
    Python,
    /// Not memcheck's: glibc's dynamic thread vector (`dtv`, elf/dl-tls.c),
    /// which a thread's control block points at one 16-byte entry in: `ptr ==
    /// start + 16`, the block a whole number of entries, and its first entry
    /// the vector's length (all but the two header entries, at least 14).
    /// Reached that way it is the runtime's own bookkeeping of a live
    /// thread, as LeakSanitizer treats it, not a possible leak.
    Dtv,
}

/// What [`classify_with`] adds to memcheck's rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The address of CPython's `PyType_Type` in the process: turns the
    /// [`Heuristic::Python`] heuristic on. `None`: off (not a Python process).
    pub python_type_type: Option<u64>,
}

/// What memcheck concludes for one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub kind: Kind,
    /// memcheck's per-block `heuristic` field, exactly: set (to the heuristic
    /// that accepts it, or to none) each time an interior pointer to the
    /// block is examined while the block is not yet `Reachable`, cleared when
    /// a start pointer reaches the block after it became `Reachable`.
    /// Normally `Some` means "still reachable only thanks to this heuristic"
    /// and `kind` is `StillReachable`. memcheck's
    /// quirks are kept: the field is `Some` with `kind == PossiblyLost` when the
    /// heuristic pointer came from a possibly-reached block (memcheck still
    /// counts such a block under "of which reachable via heuristic"), and it
    /// stays `Some` if a start pointer from a definite node later upgrades a
    /// `Possible` block to `Reachable`. Always `None` for lost blocks.
    pub heuristic: Option<Heuristic>,
    /// For definitely lost blocks (clique leaders): bytes of the indirectly
    /// lost blocks rolled up to it (memcheck's `indirect_szB`). Zero for every
    /// other kind (memcheck never gives a possibly lost block indirect bytes:
    /// what a possibly lost block points to is possibly lost too).
    pub indirect_bytes: u64,
    /// Same as `indirect_bytes`, counting blocks.
    pub indirect_blocks: u64,
}

/// Memory of the (stopped) process. The caller implements it over real memory.
pub trait Memory {
    /// The aligned 8-byte word at `addr` (little-endian u64), or `None` if
    /// unreadable. memcheck also refuses words that are not fully *defined*
    /// (`MC_(is_valid_aligned_word)`); an implementation that knows some
    /// memory is uninitialised may return `None` for it. Only ever called with
    /// an 8-aligned `addr`.
    fn word(&self, addr: u64) -> Option<u64>;

    /// memcheck's `aligned_ptr_above_page0_is_vtable_addr(addr)`: whether
    /// `addr` looks like the address of a vtable. Called only with an
    /// 8-aligned `addr >= 4096`. memcheck's test is **not** "read-only
    /// mapping": `addr` must lie in a readable *file-backed* mapping (its
    /// writability does not matter), and the first two non-zero words among
    /// those from `addr` to `addr + 160` (21 words, stopping before the
    /// mapping's last word) must both point into executable file-backed
    /// mappings. [`memcheck_vtable_check`] implements exactly that
    /// from a mapping lookup and a word reader; implementations should call
    /// it (and may cache the answer per address).
    fn is_vtable_location(&self, addr: u64) -> bool;

    /// The aligned word at `addr` wherever it is (a module's data, an
    /// allocator's page), for the `python` heuristic's reads of type objects
    /// outside the live blocks; `None` unless the implementation knows the
    /// word can be read without faulting (nor side effects: no device
    /// memory). Only ever called with an 8-aligned `addr`. The default knows
    /// nothing.
    fn word_anywhere(&self, addr: u64) -> Option<u64> {
        let _ = addr;
        None
    }

    /// Whether the byte at `addr` is readable: memcheck's
    /// `lc_is_a_chunk_ptr` ignores a pointer whose target is not
    /// (`VG_(am_is_valid_for_client)(ptr, 1, VKI_PROT_READ)`), so a block
    /// whose pointed-to byte was made `PROT_NONE` is not reached through it.
    /// Called only for words that point into a block. The default: all is.
    fn readable(&self, addr: u64) -> bool {
        let _ = addr;
        true
    }

    /// Calls `f(addr, word)` for every 8-aligned `addr` in `[start, end)`
    /// (both 8-aligned), **in increasing order**, for which [`Memory::word`]
    /// would return `Some(word)`. The default calls `word` for each address;
    /// an implementation over contiguous buffers may override it to iterate a
    /// slice (the order must be kept: memcheck's results can depend on it).
    fn for_each_word<F: FnMut(u64, u64)>(&self, start: u64, end: u64, mut f: F)
    where
        Self: Sized,
    {
        let mut a = start;
        while a < end {
            if let Some(w) = self.word(a) {
                f(a, w);
            }
            a += WORD;
        }
    }
}

/// The root set: memory ranges scanned like `scan_memory_root_set`, then
/// register values like `VG_(apply_to_GP_regs)`. See the crate documentation
/// for what memcheck puts there.
pub struct Roots<'a> {
    /// `[start, end)` to scan word by word, in this order (memcheck: ascending
    /// address order).
    pub ranges: &'a [(u64, u64)],
    /// Register values.
    pub words: &'a [u64],
}

const WORD: u64 = 8;
const PAGE_SIZE: u64 = 4096;

// memcheck's `Reachedness`.
const REACHABLE: u8 = 0;
const POSSIBLE: u8 = 1;
const INDIRECT_LEAK: u8 = 2;
const UNREACHED: u8 = 3;

const NO_HEURISTIC: u8 = 0;

fn heuristic_code(h: Heuristic) -> u8 {
    match h {
        Heuristic::StdString => 1,
        Heuristic::Length64 => 2,
        Heuristic::NewArray => 3,
        Heuristic::MultipleInheritance => 4,
        Heuristic::Python => 5,
        Heuristic::Dtv => 6,
    }
}

fn heuristic_from_code(c: u8) -> Option<Heuristic> {
    match c {
        1 => Some(Heuristic::StdString),
        2 => Some(Heuristic::Length64),
        3 => Some(Heuristic::NewArray),
        4 => Some(Heuristic::MultipleInheritance),
        5 => Some(Heuristic::Python),
        6 => Some(Heuristic::Dtv),
        _ => None,
    }
}

// `LeakCheck::extra`: memcheck's `LC_Extra` in one byte per block.
const STATE_MASK: u8 = 0b11;
const PENDING: u8 = 0b100;
const HEURISTIC_SHIFT: u32 = 3;

/// Bits of a block's lookup key holding its length (see `LeakCheck::keys`).
const LEN_BITS: u32 = 16;
/// Length field value meaning "64 KiB or more: read the `Block`".
const LEN_BIG: u64 = (1 << LEN_BITS) - 1;

/// Fan-out of the lookup index: 8 keys make one cache line.
const INDEX_FANOUT: usize = 8;
/// The top level of the index is binary-searched when it has at most this
/// many entries (4 KiB).
const INDEX_TOP_MAX: usize = 512;

/// How many candidate words `lc_scan_memory` looks up together.
const BATCH: usize = 32;
const NOT_FOUND: u32 = u32::MAX;

/// Sentinel for "no clique" (memcheck's `clique == -1`).
const NO_CLIQUE: usize = usize::MAX;

/// The leak checker's working state (memcheck's `lc_chunks`, `lc_extras`,
/// `lc_markstack`).
///
/// The lookup: memcheck's `find_chunk_for` is a plain binary search over the
/// sorted blocks; on a million blocks most of its ~20 probes miss the cache
/// and the TLB. For sorted, non-overlapping blocks with distinct starts the
/// block it finds is simply the last one starting at or before the pointer,
/// provided the pointer is below its end, so that is found with a static
/// B-tree-like index instead: a binary search in a top level of at most 512
/// entries, then one cache line per level (`levels`: every 8th key, every
/// 64th, ...), the upper levels staying in cache, then 8 keys of `keys`.
/// Within a group the keys `<= ptr` are counted rather than binary-searched,
/// so that the loads are independent and a cache miss is paid once per group.
/// A key packs a block's start and length in 8 bytes, and its state is one
/// byte, so that what a lookup touches at random stays small (9 bytes per
/// block). Should two blocks share a start (possible only with a zero-sized
/// block followed by another block), or a block lie above 2^48, memcheck's
/// own search is used (`memcheck_find_chunk_for`), since then its probe
/// order decides (or the keys cannot hold the address).
struct LeakCheck<'a, M: Memory> {
    blocks: &'a [Block],
    mem: &'a M,
    /// Per block, in order: `start << 16 | len`, `len` being how many bytes
    /// from `start` `find_chunk_for` attributes to the block (a zero-sized
    /// block counts as size 1), or `LEN_BIG` if that does not fit. Keys sort
    /// like starts, and `key <= ptr << 16 | LEN_BIG` iff `start <= ptr`.
    /// Scanning `len` bytes is the same as scanning the block: no word fits
    /// in one byte. Unused (zero) in `exact` mode.
    keys: Vec<u64>,
    /// Per block: `state | pending << 2 | heuristic << 3`.
    extra: Vec<u8>,
    /// `levels[k][i]` is `keys[i * 8^(k+1)]`; the last level has at most
    /// `INDEX_TOP_MAX` entries; no levels for a small heap.
    levels: Vec<Vec<u64>>,
    /// Use memcheck's search probe for probe, and the `Block`s for extents.
    exact: bool,
    /// Lowest address inside any block, and one past the highest
    /// (`lc_is_a_chunk_ptr`'s cheap pre-check).
    lo: u64,
    hi: u64,
    /// `IorC.indirect_szB` of a clique leader (reset when it is absorbed:
    /// in memcheck the union then holds the clique number).
    indirect_bytes: Vec<u64>,
    indirect_blocks: Vec<u64>,
    markstack: Vec<u32>,
    /// Scratch buffer of `lc_scan_memory`.
    batch: Vec<u64>,
    /// `PyType_Type`'s address, when the `python` heuristic is on.
    python_type_type: Option<u64>,
}

/// Classifies every block as memcheck 3.19 does. `blocks` must be sorted by
/// start and non-overlapping. Returns one [`Outcome`] per block, same order.
pub fn classify(blocks: &[Block], roots: &Roots, mem: &impl Memory) -> Vec<Outcome> {
    classify_with(blocks, roots, mem, &Options::default())
}

/// [`classify`], with the heuristics of ours that `options` turns on.
pub fn classify_with(
    blocks: &[Block],
    roots: &Roots,
    mem: &impl Memory,
    options: &Options,
) -> Vec<Outcome> {
    assert!(
        blocks.len() < NOT_FOUND as usize,
        "too many blocks for the mark stack"
    );
    // memcheck's own sanity check in MC_(detect_memory_leaks): sorted, and
    // no block's last byte at or past the next one's start.
    assert!(
        blocks.windows(2).all(|w| {
            w[0].start <= w[1].start && w[0].start.saturating_add(w[0].size) <= w[1].start
        }),
        "blocks must be sorted by start and must not overlap"
    );
    let n = blocks.len();
    let mut lo = u64::MAX;
    let mut hi = 0u64;
    let mut exact = false;
    for (i, b) in blocks.iter().enumerate() {
        lo = lo.min(b.start);
        hi = hi.max(block_end_for_lookup(b));
        if (i > 0 && blocks[i - 1].start == b.start) || b.start >> (64 - LEN_BITS) != 0 {
            exact = true;
        }
    }
    let keys: Vec<u64> = if exact {
        vec![0; n]
    } else {
        blocks
            .iter()
            .map(|b| {
                let len = (block_end_for_lookup(b) - b.start).min(LEN_BIG);
                b.start << LEN_BITS | len
            })
            .collect()
    };
    let mut levels: Vec<Vec<u64>> = Vec::new();
    if !exact && n > INDEX_TOP_MAX {
        levels.push(keys.iter().step_by(INDEX_FANOUT).copied().collect());
        while levels[levels.len() - 1].len() > INDEX_TOP_MAX {
            let below = &levels[levels.len() - 1];
            let level = below.iter().step_by(INDEX_FANOUT).copied().collect();
            levels.push(level);
        }
    }
    let mut lc = LeakCheck {
        blocks,
        mem,
        keys,
        extra: vec![UNREACHED; n],
        levels,
        exact,
        lo,
        hi,
        indirect_bytes: vec![0; n],
        indirect_blocks: vec![0; n],
        markstack: Vec::with_capacity(n),
        batch: Vec::with_capacity(BATCH),
        python_type_type: options.python_type_type,
    };
    lc.detect_memory_leaks(roots);
    lc.outcomes()
}

/// One past the last address `find_chunk_for` attributes to `b`: a zero-sized
/// block is treated as if it had size 1.
fn block_end_for_lookup(b: &Block) -> u64 {
    let end = b.start.saturating_add(b.size);
    if b.size == 0 {
        end.saturating_add(1)
    } else {
        end
    }
}

/// Group `i` of an index level (or of the keys): entries `8i .. 8i + 8`.
#[inline]
fn group(level: &[u64], i: usize) -> &[u64] {
    let base = i * INDEX_FANOUT;
    &level[base..(base + INDEX_FANOUT).min(level.len())]
}

/// How many entries of a (sorted) group are `<= key`: counted rather than
/// binary-searched, so that the loads are independent and a cache miss is
/// paid once per group.
#[inline]
fn count_le(group: &[u64], key: u64) -> usize {
    match <&[u64; INDEX_FANOUT]>::try_from(group) {
        Ok(g) => g.iter().map(|&e| usize::from(e <= key)).sum(),
        Err(_) => group.iter().filter(|&&e| e <= key).count(),
    }
}

/// `find_chunk_for`, probe for probe: a binary search over the blocks sorted
/// by start, a zero-sized block covering its start address.
fn memcheck_find_chunk_for(ptr: u64, blocks: &[Block]) -> Option<usize> {
    let mut lo: isize = 0;
    let mut hi: isize = blocks.len() as isize - 1;
    while lo <= hi {
        let mid = (lo + hi) / 2;
        let b = &blocks[mid as usize];
        if ptr < b.start {
            hi = mid - 1;
        } else if ptr >= block_end_for_lookup(b) {
            lo = mid + 1;
        } else {
            return Some(mid as usize);
        }
    }
    None
}

impl<M: Memory> LeakCheck<'_, M> {
    #[inline]
    fn state(&self, j: usize) -> u8 {
        self.extra[j] & STATE_MASK
    }

    #[inline]
    fn set_state(&mut self, j: usize, state: u8) {
        self.extra[j] = (self.extra[j] & !STATE_MASK) | state;
    }

    #[inline]
    fn heuristic(&self, j: usize) -> u8 {
        self.extra[j] >> HEURISTIC_SHIFT
    }

    #[inline]
    fn set_heuristic(&mut self, j: usize, h: u8) {
        self.extra[j] = (self.extra[j] & (STATE_MASK | PENDING)) | (h << HEURISTIC_SHIFT);
    }

    /// Block `j`'s start.
    #[inline]
    fn start(&self, j: usize) -> u64 {
        if self.exact {
            self.blocks[j].start
        } else {
            self.keys[j] >> LEN_BITS
        }
    }

    /// `MC_(detect_memory_leaks)`, from the root scan to the clique loop.
    fn detect_memory_leaks(&mut self, roots: &Roots) {
        // scan_memory_root_set(): each root range, prior definite, no clique.
        for &(start, end) in roots.ranges {
            if end > start {
                self.lc_scan_memory(start, end - start, true, NO_CLIQUE, NO_CLIQUE);
            }
        }
        // VG_(apply_to_GP_regs)(lc_push_if_a_chunk_ptr_register).
        for &w in roots.words {
            self.lc_push_without_clique_if_a_chunk_ptr(w, true);
        }
        // Everything reachable from the roots is traced.
        self.lc_process_markstack(NO_CLIQUE);

        // The clique loop: in address order, each still-Unreached block leads
        // a clique made of the Unreached blocks it reaches.
        for i in 0..self.blocks.len() {
            debug_assert!(self.markstack.is_empty());
            if self.state(i) == UNREACHED {
                self.lc_push(i);
                self.lc_process_markstack(i);
                debug_assert_eq!(self.state(i), UNREACHED);
            }
        }
    }

    fn outcomes(&self) -> Vec<Outcome> {
        (0..self.blocks.len())
            .map(|i| {
                let (kind, ib, ibk) = match self.state(i) {
                    REACHABLE => (Kind::StillReachable, 0, 0),
                    POSSIBLE => (Kind::PossiblyLost, 0, 0),
                    INDIRECT_LEAK => (Kind::IndirectlyLost, 0, 0),
                    _ => (
                        Kind::DefinitelyLost,
                        self.indirect_bytes[i],
                        self.indirect_blocks[i],
                    ),
                };
                Outcome {
                    kind,
                    heuristic: heuristic_from_code(self.heuristic(i)),
                    indirect_bytes: ib,
                    indirect_blocks: ibk,
                }
            })
            .collect()
    }

    /// `lc_is_a_chunk_ptr`: the cheap pre-check, then `find_chunk_for` (see
    /// [`LeakCheck`] for how it is sped up without changing its answer).
    #[inline]
    fn lc_is_a_chunk_ptr(&self, ptr: u64) -> Option<usize> {
        if ptr < self.lo || ptr >= self.hi {
            return None;
        }
        if self.exact || ptr >> (64 - LEN_BITS) != 0 {
            return memcheck_find_chunk_for(ptr, self.blocks);
        }
        // The block is the last one whose key is <= `key`.
        let key = ptr << LEN_BITS | LEN_BIG;
        let mut pos = match self.levels.last() {
            Some(top) => match top.partition_point(|&e| e <= key) {
                0 => return None,
                k => k - 1,
            },
            None => 0,
        };
        for level in self.levels.iter().rev().skip(1) {
            // The group's first entry is the one found above: <= key.
            pos = pos * INDEX_FANOUT + count_le(group(level, pos), key) - 1;
        }
        let j = if self.levels.is_empty() {
            self.keys.partition_point(|&e| e <= key).checked_sub(1)?
        } else {
            (pos * INDEX_FANOUT + count_le(group(&self.keys, pos), key)).checked_sub(1)?
        };
        self.inside(ptr, j).then_some(j)
    }

    /// Whether `ptr`, at or after block `j`'s start, is before its end (a
    /// zero-sized block counting as size 1).
    #[inline]
    fn inside(&self, ptr: u64, j: usize) -> bool {
        let (start, len) = (self.keys[j] >> LEN_BITS, self.keys[j] & LEN_BIG);
        if len != LEN_BIG {
            ptr - start < len
        } else {
            ptr < block_end_for_lookup(&self.blocks[j])
        }
    }

    /// `lc_is_a_chunk_ptr` for each of `ptrs` (all within `[lo, hi)`), into
    /// `found` (`NOT_FOUND` if none). The same as calling it for each in turn,
    /// but done level by level across the pointers, so that the cache misses
    /// of different pointers are waited for together rather than one after
    /// the other.
    fn lookup_batch(&self, ptrs: &[u64], found: &mut [u32; BATCH]) {
        let n = ptrs.len();
        if self.exact || self.levels.is_empty() {
            for (f, &p) in found.iter_mut().zip(ptrs) {
                *f = self.lc_is_a_chunk_ptr(p).map_or(NOT_FOUND, |j| j as u32);
            }
            return;
        }
        let mut keys = [0u64; BATCH];
        let mut pos = [0usize; BATCH];
        let top = &self.levels[self.levels.len() - 1];
        for i in 0..n {
            let p = ptrs[i];
            if p >> (64 - LEN_BITS) != 0 {
                // Not representable as a key: the slow path, and no further
                // work below (pos stays 0, found is set here and kept).
                found[i] = self.lc_is_a_chunk_ptr(p).map_or(NOT_FOUND, |j| j as u32);
                keys[i] = u64::MAX;
                continue;
            }
            keys[i] = p << LEN_BITS | LEN_BIG;
            match top.partition_point(|&e| e <= keys[i]) {
                0 => {
                    found[i] = NOT_FOUND;
                    keys[i] = u64::MAX;
                }
                k => pos[i] = k - 1,
            }
        }
        for level in self.levels.iter().rev().skip(1) {
            for i in 0..n {
                if keys[i] != u64::MAX {
                    pos[i] = pos[i] * INDEX_FANOUT + count_le(group(level, pos[i]), keys[i]) - 1;
                }
            }
        }
        for i in 0..n {
            if keys[i] != u64::MAX {
                let k = count_le(group(&self.keys, pos[i]), keys[i]);
                let j = pos[i] * INDEX_FANOUT + k;
                found[i] = if k > 0 && self.inside(ptrs[i], j - 1) {
                    (j - 1) as u32
                } else {
                    NOT_FOUND
                };
            }
        }
    }

    /// `lc_push`: push unless already pending.
    #[inline]
    fn lc_push(&mut self, ch_no: usize) {
        if self.extra[ch_no] & PENDING == 0 {
            self.extra[ch_no] |= PENDING;
            self.markstack.push(ch_no as u32);
        }
    }

    /// `lc_process_markstack`.
    fn lc_process_markstack(&mut self, clique: usize) {
        while let Some(top) = self.markstack.pop() {
            let top = top as usize;
            self.extra[top] &= !PENDING;
            // See memcheck's note on 'is_prior_definite'.
            let is_prior_definite = self.state(top) != POSSIBLE;
            let (start, len) = if self.exact || self.keys[top] & LEN_BIG == LEN_BIG {
                (self.blocks[top].start, self.blocks[top].size)
            } else {
                (self.keys[top] >> LEN_BITS, self.keys[top] & LEN_BIG)
            };
            let cur_clique = if clique == NO_CLIQUE { NO_CLIQUE } else { top };
            self.lc_scan_memory(start, len, is_prior_definite, clique, cur_clique);
        }
    }

    /// `lc_scan_memory` (leak-check mode): every valid aligned word of
    /// `[start, start+len)`, in increasing order.
    fn lc_scan_memory(
        &mut self,
        start: u64,
        len: u64,
        is_prior_definite: bool,
        clique: usize,
        cur_clique: usize,
    ) {
        let Some(ptr) = start.checked_add(WORD - 1).map(|a| a & !(WORD - 1)) else {
            return;
        };
        let end = start.saturating_add(len) & !(WORD - 1);
        if ptr >= end {
            return;
        }
        let mem = self.mem;
        let (lo, hi) = (self.lo, self.hi);
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        {
            // `move`: the bounds are copied into the closure, not re-read
            // through a reference for every word.
            let (this, batch) = (&mut *self, &mut batch);
            mem.for_each_word(ptr, end, move |_, addr| {
                // lc_is_a_chunk_ptr's pre-check, here so that the
                // (overwhelmingly common) non-pointer words cost two
                // comparisons.
                if addr >= lo && addr < hi {
                    batch.push(addr);
                    if batch.len() == BATCH {
                        this.push_batch(batch, clique, cur_clique, is_prior_definite);
                        batch.clear();
                    }
                }
            });
        }
        self.push_batch(&batch, clique, cur_clique, is_prior_definite);
        self.batch = batch;
    }

    /// `lc_push_if_a_chunk_ptr` for consecutive candidate words of a scan, in
    /// order. The lookups are done first, all together: they depend neither
    /// on each other nor on the marking state, so the CPU overlaps their cache
    /// misses; then memcheck's logic runs word by word, in the scan order.
    fn push_batch(
        &mut self,
        batch: &[u64],
        clique: usize,
        cur_clique: usize,
        is_prior_definite: bool,
    ) {
        let mut found = [NOT_FOUND; BATCH];
        self.lookup_batch(batch, &mut found);
        for (&p, &j) in batch.iter().zip(&found) {
            if j == NOT_FOUND || !self.mem.readable(p) {
                continue;
            }
            if clique == NO_CLIQUE {
                self.push_without_clique(p, j as usize, is_prior_definite);
            } else {
                self.push_with_clique(j as usize, clique, cur_clique);
            }
        }
    }

    /// `lc_push_without_clique_if_a_chunk_ptr`: the root scan and the first
    /// mark phase.
    fn lc_push_without_clique_if_a_chunk_ptr(&mut self, ptr: u64, is_prior_definite: bool) {
        if let Some(ch_no) = self.lc_is_a_chunk_ptr(ptr) {
            if self.mem.readable(ptr) {
                self.push_without_clique(ptr, ch_no, is_prior_definite);
            }
        }
    }

    /// The rest of `lc_push_without_clique_if_a_chunk_ptr`, once `ptr` is
    /// known to point into block `ch_no`.
    fn push_without_clique(&mut self, ptr: u64, ch_no: usize, is_prior_definite: bool) {
        let state = self.state(ch_no);
        let is_start = ptr == self.start(ch_no);

        if state == REACHABLE {
            // Reached via a heuristic before, and now directly: clear it.
            if self.heuristic(ch_no) != NO_HEURISTIC && is_start {
                self.set_heuristic(ch_no, NO_HEURISTIC);
            }
            return;
        }

        // Possibly upgrade: Unreached -> Possible, Unreached -> Reachable,
        // Possible -> Reachable. (All heuristics are on: memcheck's default.)
        let ch_via_ptr_reachable = if is_start {
            true
        } else {
            let h = self.heuristic_reachedness(ptr, &self.blocks[ch_no]);
            self.set_heuristic(ch_no, h.map_or(NO_HEURISTIC, heuristic_code));
            h.is_some()
        };

        if ch_via_ptr_reachable && is_prior_definite {
            // Definitely reachable; (re)scan it so that what it points to is
            // upgraded too.
            self.set_state(ch_no, REACHABLE);
            self.lc_push(ch_no);
        } else if state == UNREACHED {
            // Interior pointer, or the prior node is not definite.
            self.set_state(ch_no, POSSIBLE);
            self.lc_push(ch_no);
        }
    }

    /// `lc_push_with_clique_if_a_chunk_ptr` (the clique phase), once the
    /// pointer is known to point into block `ch_no`.
    fn push_with_clique(&mut self, ch_no: usize, clique: usize, _cur_clique: usize) {
        // Not Unreached: already handled (reachable, possible, or in a clique).
        // The leader itself: a cycle back to it.
        if self.state(ch_no) == UNREACHED && ch_no != clique {
            self.lc_push(ch_no);
            // Add the block, and whatever it led if it was a clique leader
            // itself, to this clique's leader.
            let add_bytes = self.blocks[ch_no].size + self.indirect_bytes[ch_no];
            let add_blocks = 1 + self.indirect_blocks[ch_no];
            self.indirect_bytes[clique] += add_bytes;
            self.indirect_blocks[clique] += add_blocks;
            self.set_state(ch_no, INDIRECT_LEAK);
            // memcheck overwrites the union with the clique number
            // (cur_clique) here: the absorbed leader's count is gone.
            self.indirect_bytes[ch_no] = 0;
            self.indirect_blocks[ch_no] = 0;
        }
    }

    /// An 8-aligned word inside `ch` that `Memory::word` gives
    /// (`MC_(is_valid_aligned_word)`; past the block's end is memcheck's
    /// redzone, unaddressable).
    fn block_word(&self, ch: &Block, addr: u64) -> Option<u64> {
        if !addr.is_multiple_of(WORD) || addr < ch.start {
            return None;
        }
        let end = ch.start.checked_add(ch.size)?;
        if addr.checked_add(WORD)? > end {
            return None;
        }
        self.mem.word(addr)
    }

    /// `heuristic_reachedness` with every heuristic enabled. Only called for
    /// an interior pointer (`ptr != ch.start`).
    fn heuristic_reachedness(&self, ptr: u64, ch: &Block) -> Option<Heuristic> {
        let data = ch.start;

        // LchStdString: length, capacity, refcount, chars[capacity], '\0';
        // ptr points at chars.
        if ptr == data.wrapping_add(3 * WORD) {
            if let Some(capacity) = self.block_word(ch, data.wrapping_add(WORD)) {
                if (3 * WORD).wrapping_add(capacity).wrapping_add(1) == ch.size {
                    if let Some(length) = self.block_word(ch, data) {
                        if length <= capacity {
                            return Some(Heuristic::StdString);
                        }
                    }
                }
            }
        }

        // LchLength64: a 64-bit length (of the rest of the block) then ptr.
        if ptr == data.wrapping_add(WORD) {
            if let Some(size) = self.block_word(ch, data) {
                if size > 0 && ch.size.wrapping_sub(WORD) == size {
                    return Some(Heuristic::Length64);
                }
            }
        }

        // LchNewArray: new[] cookie (element count) then ptr.
        if ptr == data.wrapping_add(WORD) {
            if let Some(nr_elts) = self.block_word(ch, data) {
                if nr_elts > 0 && ch.size.wrapping_sub(WORD).is_multiple_of(nr_elts) {
                    return Some(Heuristic::NewArray);
                }
            }
        }

        // LchMultipleInheritance: ptr at an inner vtable pointer, and the
        // block starts with a vtable pointer too.
        if ptr.is_multiple_of(WORD) {
            if let Some(inner_addr) = self.block_word(ch, ptr) {
                if inner_addr.is_multiple_of(WORD) && inner_addr >= PAGE_SIZE {
                    if let Some(first_addr) = self.block_word(ch, data) {
                        if first_addr.is_multiple_of(WORD)
                            && first_addr >= PAGE_SIZE
                            && self.mem.is_vtable_location(inner_addr)
                            && self.mem.is_vtable_location(first_addr)
                        {
                            return Some(Heuristic::MultipleInheritance);
                        }
                    }
                }
            }
        }

        // Ours: glibc's thread vector, after its length entry. glibc makes
        // room for at least DTV_SURPLUS (14) modules.
        if ptr == data.wrapping_add(2 * WORD)
            && ch.size.is_multiple_of(2 * WORD)
            && ch.size >= (14 + 2) * 2 * WORD
            && self.block_word(ch, data) == Some(ch.size / (2 * WORD) - 2)
        {
            return Some(Heuristic::Dtv);
        }

        // Ours, last: a CPython object after its GC header (+16) or after the
        // managed-dict pre-header and the GC header (+32).
        if let Some(type_type) = self.python_type_type {
            if (ptr == data.wrapping_add(2 * WORD) || ptr == data.wrapping_add(4 * WORD))
                && self.is_python_object(ch, ptr, type_type)
            {
                return Some(Heuristic::Python);
            }
            if self.is_dict_values(ch, ptr) {
                return Some(Heuristic::Python);
            }
        }

        None
    }

    /// Whether `ptr`, inside `ch`, is the head of a live CPython object: a
    /// plausible refcount, and an `ob_type` that is a type (its own type is
    /// `PyType_Type`, or a metaclass whose type is).
    fn is_python_object(&self, ch: &Block, ptr: u64, type_type: u64) -> bool {
        // Refcounts are small; immortal objects (3.12+) use 2^32 - 1.
        const MAX_REFCNT: u64 = 1 << 40;
        let plausible = |p: u64| p.is_multiple_of(WORD) && p >= PAGE_SIZE;
        let Some(refcnt) = self.block_word(ch, ptr) else {
            return false;
        };
        let Some(ob_type) = self.block_word(ch, ptr.wrapping_add(WORD)) else {
            return false;
        };
        if refcnt == 0 || refcnt >= MAX_REFCNT || !plausible(ob_type) {
            return false;
        }
        let Some(meta) = ob_type.checked_add(WORD).and_then(|a| self.any_word(a)) else {
            return false;
        };
        if meta == type_type {
            return true;
        }
        plausible(meta)
            && meta
                .checked_add(WORD)
                .and_then(|a| self.any_word(a))
                .is_some_and(|w| w == type_type)
    }

    /// Whether `ptr` is where CPython 3.11/3.12's `new_values(n)` put a
    /// managed dict's values in `ch`: `prefix` bytes in, with
    /// `prefix = round_up(n + 2, 8) < 256`, `ch.size == prefix + 8 n`,
    /// `n > 0`, and `prefix` in the byte before `ptr`.
    fn is_dict_values(&self, ch: &Block, ptr: u64) -> bool {
        let prefix = ptr.wrapping_sub(ch.start);
        if !prefix.is_multiple_of(WORD) || !(WORD..256).contains(&prefix) || ch.size <= prefix {
            return false;
        }
        let rest = ch.size - prefix;
        if !rest.is_multiple_of(WORD) || (rest / WORD + 2).next_multiple_of(WORD) != prefix {
            return false;
        }
        // Little-endian: the byte before `ptr` is the top byte of this word.
        self.block_word(ch, ptr - WORD)
            .is_some_and(|w| w >> 56 == prefix)
    }

    /// The word at `addr` (8-aligned): from the live block it lies in, if it
    /// lies entirely inside one, else through [`Memory::word_anywhere`]. A
    /// word straddling a block's end is refused (memcheck's redzone).
    fn any_word(&self, addr: u64) -> Option<u64> {
        match self.lc_is_a_chunk_ptr(addr) {
            Some(j) => self.block_word(&self.blocks[j], addr),
            None => self.mem.word_anywhere(addr),
        }
    }
}
