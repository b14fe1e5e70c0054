//! memcheck's `aligned_ptr_above_page0_is_vtable_addr`, for implementors of
//! [`crate::Memory::is_vtable_location`].

/// One mapping of the process as valgrind's address-space manager sees it
/// (in practice one line of `/proc/PID/maps`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    /// Exclusive.
    pub end: u64,
    /// `r` permission (`hasR`).
    pub readable: bool,
    /// `x` permission (`hasT`).
    pub executable: bool,
    /// Backed by a file (valgrind's `SkFileC`): a mapping with a path that is
    /// a file (not anonymous, not `[heap]`, `[stack]`, `[vdso]`, ...).
    pub file_backed: bool,
}

/// How many words memcheck looks at past `addr` (`VTABLE_MAX_CHECK`).
const VTABLE_MAX_CHECK: u64 = 20;

/// memcheck's `aligned_ptr_above_page0_is_vtable_addr(addr)` (amd64):
///
/// * `addr` must be in a readable, file-backed mapping (writability is not
///   looked at);
/// * the words at `addr`, `addr + 8`, ... up to `addr + 160` inclusive, but not
///   beyond the mapping's `end - 9` (memcheck's `seg->end - sizeof(Addr)`, with
///   an inclusive `end`: the mapping's last word is never looked at), are read
///   in order; a zero word is skipped; a non-zero word that does not point
///   into an executable file-backed mapping means "not a vtable"; the second
///   word that does means "vtable".
///
/// `mapping_at(a)` returns the mapping containing `a`; `read_word(a)` reads the
/// aligned word at `a` (a `None` answers "not a vtable", as memcheck's fault
/// catcher makes the heuristic fail).
pub fn memcheck_vtable_check(
    addr: u64,
    mapping_at: impl Fn(u64) -> Option<Mapping>,
    read_word: impl Fn(u64) -> Option<u64>,
) -> bool {
    let Some(seg) = mapping_at(addr) else {
        return false;
    };
    if !seg.file_backed || !seg.readable {
        return false;
    }
    let mut scan_max = addr.saturating_add(VTABLE_MAX_CHECK * 8);
    // seg->end (inclusive) - sizeof(Addr).
    let seg_limit = seg.end.saturating_sub(1 + 8);
    if scan_max > seg_limit {
        scan_max = seg_limit;
    }
    let mut nr_fn_ptrs = 0;
    let mut scan = addr;
    while scan <= scan_max {
        let Some(pot_fn) = read_word(scan) else {
            return false;
        };
        if pot_fn != 0 {
            match mapping_at(pot_fn) {
                Some(m) if m.file_backed && m.executable => {}
                _ => return false,
            }
            nr_fn_ptrs += 1;
            if nr_fn_ptrs == 2 {
                return true;
            }
        }
        match scan.checked_add(8) {
            Some(s) => scan = s,
            None => break,
        }
    }
    false
}
