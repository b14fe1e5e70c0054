//! The writer's table of live blocks: address -> (size, allocation function,
//! stack).
//!
//! It is the writer's hottest structure (one lookup per allocation and per
//! free) and it can hold millions of entries, so a general hash map pays a
//! cache miss or two on nearly every event. Here the slot of an address keeps
//! its neighbourhood: the page number is hashed (pages spread over the table)
//! but the address within the page is not (blocks of one page sit in adjacent
//! slots). Programs free in roughly the order they allocated, and allocators
//! hand out neighbouring addresses, so a free usually lands on a line that is
//! in cache or next to one the prefetcher fetched. Open addressing with linear
//! probing and backward-shift deletion: no tombstones, so long runs do not
//! slow the table down over time.
//!
//! Its memory is mapped for itself, not taken from the program's heap.

use crate::writer::Block;

#[derive(Clone, Copy)]
#[repr(C)]
struct Slot {
    /// 0: empty (no live block starts at address 0).
    ptr: u64,
    block: Block,
}

pub struct LiveTable {
    slots: *mut Slot,
    mask: usize,
    len: usize,
}

// SAFETY: the table owns its mapping; the writer's lock serializes every use.
unsafe impl Send for LiveTable {}

/// 16 Ki slots (384 KiB), faulted in at once (see `map`): the copy of a
/// zero page also flushes the TLB of every core running the program, an
/// interrupt of its thread each time (sqlite3: 6% of the writer's time).
const MIN_BITS: u32 = 14;

/// Faults every page in at once: the table is filled all over (addresses are
/// hashed), and each page would otherwise fault twice (the probe's read maps
/// the zero page, the insert's write then copies it).
fn map(count: usize) -> *mut Slot {
    let bytes = count * core::mem::size_of::<Slot>();
    let p = crate::heap::pages(bytes, libc::MAP_NORESERVE | libc::MAP_POPULATE);
    if p.is_null() {
        crate::real::fatal("cannot map memory for the live-block table");
    }
    p as *mut Slot
}

fn unmap(p: *mut Slot, count: usize) {
    // SAFETY: a mapping of exactly this size made by `map`, no longer used.
    unsafe { libc::syscall(libc::SYS_munmap, p, count * core::mem::size_of::<Slot>()) };
}

impl Default for LiveTable {
    fn default() -> Self {
        LiveTable {
            slots: map(1 << MIN_BITS),
            mask: (1 << MIN_BITS) - 1,
            len: 0,
        }
    }
}

impl Drop for LiveTable {
    fn drop(&mut self) {
        unmap(self.slots, self.mask + 1);
    }
}

impl LiveTable {
    #[inline]
    fn home(&self, ptr: u64) -> usize {
        let page = (ptr >> 12).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 24;
        ((page << 8) as usize | ((ptr >> 4) & 0xff) as usize) & self.mask
    }

    #[inline]
    fn slot(&self, i: usize) -> &Slot {
        // SAFETY: i <= mask, inside the mapping.
        unsafe { &*self.slots.add(i) }
    }

    #[inline]
    fn slot_mut(&mut self, i: usize) -> &mut Slot {
        // SAFETY: i <= mask, inside the mapping; &mut self is exclusive.
        unsafe { &mut *self.slots.add(i) }
    }

    /// Brings the home slot of `ptr` into the cache ahead of its use.
    #[inline]
    pub fn prefetch(&self, ptr: u64) {
        crate::prefetch(self.slots.wrapping_add(self.home(ptr)));
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Inserts or replaces; returns the block that was there.
    pub fn insert(&mut self, ptr: u64, block: Block) -> Option<Block> {
        debug_assert!(ptr != 0);
        if (self.len + 1) * 2 > self.mask + 1 {
            self.grow();
        }
        let mut i = self.home(ptr);
        loop {
            let s = self.slot_mut(i);
            if s.ptr == ptr {
                return Some(core::mem::replace(&mut s.block, block));
            }
            if s.ptr == 0 {
                *s = Slot { ptr, block };
                self.len += 1;
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }

    #[cfg(test)]
    pub fn get(&self, ptr: u64) -> Option<&Block> {
        let mut i = self.home(ptr);
        loop {
            let s = self.slot(i);
            if s.ptr == ptr {
                return Some(&s.block);
            }
            if s.ptr == 0 {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }

    pub fn remove(&mut self, ptr: u64) -> Option<Block> {
        if ptr == 0 {
            return None;
        }
        let mut i = self.home(ptr);
        loop {
            let s = self.slot(i);
            if s.ptr == ptr {
                break;
            }
            if s.ptr == 0 {
                return None;
            }
            i = (i + 1) & self.mask;
        }
        let found = self.slot(i).block;
        // Backward shift: pull later members of the run into the hole unless
        // that would put them before their home slot.
        let mut hole = i;
        let mut j = (i + 1) & self.mask;
        loop {
            let s = *self.slot(j);
            if s.ptr == 0 {
                break;
            }
            let home = self.home(s.ptr);
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                *self.slot_mut(hole) = s;
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.slot_mut(hole).ptr = 0;
        self.len -= 1;
        Some(found)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, Block)> + '_ {
        (0..=self.mask)
            .map(|i| self.slot(i))
            .filter(|s| s.ptr != 0)
            .map(|s| (s.ptr, s.block))
    }

    fn grow(&mut self) {
        let old = self.slots;
        let old_count = self.mask + 1;
        self.slots = map(old_count * 2);
        self.mask = old_count * 2 - 1;
        self.len = 0;
        for i in 0..old_count {
            // SAFETY: i < old_count, inside the old mapping.
            let s = unsafe { *old.add(i) };
            if s.ptr != 0 {
                self.insert(s.ptr, s.block);
            }
        }
        unmap(old, old_count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leakhunt_format::AllocFn;

    #[test]
    fn behaves_like_a_map() {
        let mut t = LiveTable::default();
        let mut m = std::collections::HashMap::new();
        let mut x = 0x1234_5678u64;
        for round in 0..400_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Dense runs of neighbouring blocks and scattered ones alike.
            let ptr = if round % 3 == 0 {
                0x5555_0000_0000 + (x % 50_000) * 16
            } else {
                0x7f00_0000_0000 + (x % (1 << 30)) * 16
            };
            if x % 5 < 3 {
                let b = Block::new(round, x, AllocFn::Malloc, (x % 4096) as u16);
                assert_eq!(
                    t.insert(ptr, b).map(|b| b.stack),
                    m.insert(ptr, b).map(|b| b.stack)
                );
            } else {
                assert_eq!(
                    t.remove(ptr).map(|b| b.stack),
                    m.remove(&ptr).map(|b| b.stack)
                );
            }
            assert_eq!(t.len(), m.len());
        }
        for (&p, b) in &m {
            assert_eq!(t.get(p).map(|b| b.stack), Some(b.stack));
        }
        assert_eq!(t.iter().count(), m.len());
    }
}
