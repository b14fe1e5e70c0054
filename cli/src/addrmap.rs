//! A map from block address to what the replay knows of the block, for the
//! live heap of a replay (millions of entries, one insert per allocation,
//! one remove per free).
//!
//! A general hash map scatters neighbouring addresses over the whole table,
//! so on a heap larger than the caches nearly every event is a cache miss:
//! on a 10M-event Python trace the live map's insert and remove were 40% of
//! `leakhunt report`. Here, as in the recorder's live table
//! (`preload/src/live.rs`), the page number is hashed but the address
//! within the page is not: the blocks of one page sit in neighbouring
//! slots, and a program frees roughly where it allocated. Open addressing,
//! linear probing, backward-shift deletion (no tombstones).

/// One slot: address 0 marks it empty (address 0 has its own field).
#[derive(Clone, Copy)]
struct Slot<V> {
    key: u64,
    val: V,
}

pub struct AddrMap<V: Copy + Default> {
    slots: Vec<Slot<V>>,
    mask: usize,
    len: usize,
    zero: Option<V>,
}

const MIN_SLOTS: usize = 1 << 12;

impl<V: Copy + Default> Default for AddrMap<V> {
    fn default() -> Self {
        AddrMap {
            slots: Vec::new(),
            mask: 0,
            len: 0,
            zero: None,
        }
    }
}

impl<V: Copy + Default> AddrMap<V> {
    #[inline]
    fn home(&self, key: u64) -> usize {
        let page = (key >> 12).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 24;
        ((page << 8) as usize | ((key >> 4) & 0xff) as usize) & self.mask
    }

    /// Brings the slot where `key` would be looked up into the cache: a
    /// program that frees blocks in no particular order (the STL program's
    /// map) makes nearly every remove a cache miss otherwise.
    #[inline]
    pub fn prefetch(&self, key: u64) {
        if self.slots.is_empty() {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let p = &self.slots[self.home(key)] as *const Slot<V> as *const i8;
            // A slot may straddle two lines, and a remove reads the next
            // slot too.
            let last = p.wrapping_add(2 * std::mem::size_of::<Slot<V>>() - 1);
            // SAFETY: a prefetch hint reads nothing architecturally and never
            // faults, whatever the address.
            unsafe {
                use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch::<{ _MM_HINT_T0 }>(p);
                _mm_prefetch::<{ _MM_HINT_T0 }>(last);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len + self.zero.is_some() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slot holding `key`, or the empty slot ending its run.
    #[inline]
    fn find(&self, key: u64) -> usize {
        let mut i = self.home(key);
        loop {
            let k = self.slots[i].key;
            if k == key || k == 0 {
                return i;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Inserts or replaces; returns the value that was there.
    pub fn insert(&mut self, key: u64, val: V) -> Option<V> {
        if key == 0 {
            return self.zero.replace(val);
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let i = self.find(key);
        let s = &mut self.slots[i];
        if s.key == key {
            return Some(std::mem::replace(&mut s.val, val));
        }
        *s = Slot { key, val };
        self.len += 1;
        None
    }

    pub fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        if key == 0 {
            return self.zero.as_mut();
        }
        if self.len == 0 {
            return None;
        }
        let i = self.find(key);
        let s = &mut self.slots[i];
        (s.key == key).then_some(&mut s.val)
    }

    pub fn remove(&mut self, key: u64) -> Option<V> {
        if key == 0 {
            return self.zero.take();
        }
        if self.len == 0 {
            return None;
        }
        let i = self.find(key);
        if self.slots[i].key != key {
            return None;
        }
        let found = self.slots[i].val;
        // Backward shift: pull later members of the run into the hole unless
        // that would put them before their home slot.
        let mut hole = i;
        let mut j = (i + 1) & self.mask;
        loop {
            let s = self.slots[j];
            if s.key == 0 {
                break;
            }
            let home = self.home(s.key);
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                self.slots[hole] = s;
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.slots[hole].key = 0;
        self.len -= 1;
        Some(found)
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, V)> + '_ {
        let zero = self.zero.map(|v| (0, v));
        zero.into_iter().chain(
            self.slots
                .iter()
                .filter(|s| s.key != 0)
                .map(|s| (s.key, s.val)),
        )
    }

    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(
            &mut self.slots,
            vec![
                Slot {
                    key: 0,
                    val: V::default()
                };
                n
            ],
        );
        self.mask = n - 1;
        self.len = 0;
        for s in old {
            if s.key != 0 {
                let i = self.find(s.key);
                self.slots[i] = s;
                self.len += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AddrMap;
    use std::collections::HashMap;

    /// Dense runs and scattered addresses, address 0, replacements and
    /// removals of absent keys: the same answers as a HashMap throughout.
    #[test]
    fn behaves_like_a_map() {
        let mut t = AddrMap::<u64>::default();
        let mut m = HashMap::new();
        let mut x = 0x1234_5678u64;
        for round in 0..300_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = match round % 4 {
                0 => 0x5555_0000_0000 + (x % 40_000) * 16,
                1 => 0x7f00_0000_0000 + (x % (1 << 30)) * 16,
                2 => x % 64,
                _ => 0x5555_0000_0000 + (x % 300) * 8,
            };
            if x % 5 < 3 {
                assert_eq!(t.insert(key, round), m.insert(key, round));
            } else if x % 5 == 3 {
                assert_eq!(t.remove(key), m.remove(&key));
            } else {
                assert_eq!(t.get_mut(key).copied(), m.get(&key).copied());
            }
            assert_eq!(t.len(), m.len());
        }
        let mut all: Vec<(u64, u64)> = t.iter().collect();
        all.sort_unstable();
        let mut want: Vec<(u64, u64)> = m.into_iter().collect();
        want.sort_unstable();
        assert_eq!(all, want);
    }
}
