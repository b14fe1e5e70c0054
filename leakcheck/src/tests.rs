use super::*;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

/// A sparse fake address space: explicit words only, everything else
/// unreadable.
#[derive(Default)]
struct Fake {
    words: HashMap<u64, u64>,
    vtables: HashSet<u64>,
    blocks: Vec<Block>,
    /// Memory outside the blocks that `word_anywhere` may read (a module's
    /// data, say).
    anywhere: HashMap<u64, u64>,
    options: Options,
}

impl Memory for Fake {
    fn word(&self, addr: u64) -> Option<u64> {
        assert!(addr.is_multiple_of(8), "unaligned word read at {addr:#x}");
        self.words.get(&addr).copied()
    }
    fn is_vtable_location(&self, addr: u64) -> bool {
        assert!(addr.is_multiple_of(8) && addr >= 4096);
        self.vtables.contains(&addr)
    }
    fn word_anywhere(&self, addr: u64) -> Option<u64> {
        assert!(addr.is_multiple_of(8), "unaligned word read at {addr:#x}");
        assert!(
            !self
                .blocks
                .iter()
                .any(|b| addr >= b.start && addr < b.start + b.size.max(1)),
            "word_anywhere({addr:#x}) inside a block: that is `word`'s job"
        );
        self.anywhere.get(&addr).copied()
    }
}

const ROOT: u64 = 0x7f00_0000;

impl Fake {
    fn new() -> Self {
        Self::default()
    }
    /// Adds a block; its words are zero-filled (readable, defined).
    fn block(&mut self, start: u64, size: u64) -> u64 {
        self.blocks.push(Block { start, size });
        let mut a = start;
        while a + 8 <= start + size {
            self.words.insert(a, 0);
            a += 8;
        }
        start
    }
    fn set(&mut self, addr: u64, val: u64) {
        self.words.insert(addr, val);
    }
    /// Writes `ptrs` into consecutive root words and returns the range.
    fn root_range(&mut self, ptrs: &[u64]) -> (u64, u64) {
        for (i, &p) in ptrs.iter().enumerate() {
            self.set(ROOT + 8 * i as u64, p);
        }
        (ROOT, ROOT + 8 * ptrs.len() as u64)
    }
    fn run(&mut self, ranges: &[(u64, u64)], regs: &[u64]) -> Vec<Outcome> {
        self.blocks.sort_by_key(|b| b.start);
        classify_with(
            &self.blocks,
            &Roots {
                ranges,
                words: regs,
            },
            self,
            &self.options,
        )
    }
    fn run_roots(&mut self, ptrs: &[u64]) -> Vec<Outcome> {
        let r = self.root_range(ptrs);
        self.run(&[r], &[])
    }
}

fn reach() -> Outcome {
    Outcome {
        kind: Kind::StillReachable,
        heuristic: None,
        indirect_bytes: 0,
        indirect_blocks: 0,
    }
}
fn reach_via(h: Heuristic) -> Outcome {
    Outcome {
        heuristic: Some(h),
        ..reach()
    }
}
fn possible() -> Outcome {
    Outcome {
        kind: Kind::PossiblyLost,
        ..reach()
    }
}
fn definite(bytes: u64, blocks: u64) -> Outcome {
    Outcome {
        kind: Kind::DefinitelyLost,
        heuristic: None,
        indirect_bytes: bytes,
        indirect_blocks: blocks,
    }
}
fn indirect() -> Outcome {
    Outcome {
        kind: Kind::IndirectlyLost,
        ..reach()
    }
}

#[test]
fn empty_heap() {
    let mut f = Fake::new();
    assert!(f.run_roots(&[0x1000]).is_empty());
}

#[test]
fn start_pointer_from_root_is_reachable() {
    let mut f = Fake::new();
    let a = f.block(0x1000, 32);
    assert_eq!(f.run_roots(&[a]), vec![reach()]);
}

#[test]
fn register_root_is_reachable() {
    let mut f = Fake::new();
    let a = f.block(0x1000, 32);
    let b = f.block(0x2000, 32);
    let out = f.run(&[], &[0, b, 12345]);
    assert_eq!(out, vec![definite(0, 0), reach()]);
    let _ = a;
}

#[test]
fn interior_pointer_only_is_possibly_lost() {
    let mut f = Fake::new();
    let a = f.block(0x1000, 64);
    // Word 0 is 0, so neither length64 nor newarray accepts a+8; no vtables.
    assert_eq!(f.run_roots(&[a + 8]), vec![possible()]);
    // An unaligned interior pointer value is still an interior pointer.
    let mut f = Fake::new();
    let a = f.block(0x1000, 64);
    assert_eq!(f.run_roots(&[a + 3]), vec![possible()]);
}

#[test]
fn unreferenced_block_is_definitely_lost() {
    let mut f = Fake::new();
    f.block(0x1000, 32);
    assert_eq!(f.run_roots(&[0xdead_0000]), vec![definite(0, 0)]);
}

#[test]
fn lost_linked_list_of_10_head_first() {
    let mut f = Fake::new();
    let nodes: Vec<u64> = (0..10).map(|i| f.block(0x1000 + 0x40 * i, 16)).collect();
    for w in nodes.windows(2) {
        f.set(w[0], w[1]);
    }
    let out = f.run_roots(&[]);
    assert_eq!(out[0], definite(9 * 16, 9));
    assert!(out[1..].iter().all(|o| *o == indirect()));
}

#[test]
fn lost_linked_list_of_10_head_last() {
    // The head has the highest address: the clique loop first makes the tail
    // a leader, then each earlier node's clique is absorbed by the next one,
    // ending with everything rolled up into the head.
    let mut f = Fake::new();
    let nodes: Vec<u64> = (0..10).map(|i| f.block(0x10000 - 0x40 * i, 24)).collect();
    for w in nodes.windows(2) {
        f.set(w[0] + 8, w[1]);
    }
    let out = f.run_roots(&[]);
    // Sorted by address: the head is the last block.
    assert_eq!(out[9], definite(9 * 24, 9));
    assert!(out[..9].iter().all(|o| *o == indirect()));
}

#[test]
fn lost_cycle_of_3_has_one_leader_the_lowest_address() {
    let mut f = Fake::new();
    let a = f.block(0x1000, 16);
    let b = f.block(0x2000, 32);
    let c = f.block(0x3000, 48);
    // b -> c -> a -> b
    f.set(b, c);
    f.set(c, a);
    f.set(a, b);
    let out = f.run_roots(&[]);
    assert_eq!(out, vec![definite(32 + 48, 2), indirect(), indirect()]);
}

#[test]
fn later_clique_absorbs_earlier_leader() {
    // A(0x1000) -> C(0x3000); B(0x2000) -> A. The loop takes A first (leader
    // of {C}), then B, whose clique reaches A, still Unreached: A and what it
    // led roll up into B.
    let mut f = Fake::new();
    let a = f.block(0x1000, 16);
    let b = f.block(0x2000, 32);
    let c = f.block(0x3000, 64);
    f.set(a, c);
    f.set(b, a);
    let out = f.run_roots(&[]);
    assert_eq!(out, vec![indirect(), definite(16 + 64, 2), indirect()]);
}

#[test]
fn later_clique_does_not_take_an_indirect_block_of_an_earlier_one() {
    // A -> C and B -> C: C belongs to A's clique (taken first); B is a leader
    // with nothing under it.
    let mut f = Fake::new();
    let a = f.block(0x1000, 16);
    let b = f.block(0x2000, 32);
    let c = f.block(0x3000, 64);
    f.set(a, c);
    f.set(b, c);
    let out = f.run_roots(&[]);
    assert_eq!(out, vec![definite(64, 1), definite(0, 0), indirect()]);
}

#[test]
fn clique_follows_interior_pointers_too() {
    let mut f = Fake::new();
    let a = f.block(0x1000, 16);
    let b = f.block(0x2000, 32);
    f.set(a, b + 24);
    let out = f.run_roots(&[]);
    assert_eq!(out, vec![definite(32, 1), indirect()]);
}

#[test]
fn everything_a_reachable_block_points_to_is_reachable() {
    let mut f = Fake::new();
    let r = f.block(0x1000, 32);
    let x = f.block(0x2000, 32);
    let y = f.block(0x3000, 32);
    let z = f.block(0x4000, 32);
    f.set(r, x);
    f.set(r + 8, y);
    f.set(x, z);
    f.set(z + 8, r); // back edge
    let out = f.run_roots(&[r]);
    assert_eq!(out, vec![reach(); 4]);
}

#[test]
fn interior_pointer_from_reachable_block_is_possible() {
    let mut f = Fake::new();
    let r = f.block(0x1000, 32);
    let z = f.block(0x2000, 64);
    f.set(r + 16, z + 40);
    assert_eq!(f.run_roots(&[r]), vec![reach(), possible()]);
}

#[test]
fn start_pointer_from_possibly_lost_block_is_possibly_lost() {
    let mut f = Fake::new();
    let p = f.block(0x1000, 32);
    let q = f.block(0x2000, 32);
    let s = f.block(0x3000, 32);
    f.set(p + 16, q);
    f.set(q, s);
    assert_eq!(
        f.run_roots(&[p + 16]),
        vec![possible(), possible(), possible()]
    );
}

#[test]
fn possible_block_upgraded_by_a_later_start_pointer_rescans() {
    // Root: interior of P (-> Possible, P -> Q makes Q Possible), then a
    // register holds P's start: P becomes Reachable and is rescanned, so Q
    // becomes Reachable too.
    let mut f = Fake::new();
    let p = f.block(0x1000, 32);
    let q = f.block(0x2000, 32);
    f.set(p + 8, q);
    let r = f.root_range(&[p + 16]);
    assert_eq!(f.run(&[r], &[p]), vec![reach(), reach()]);
}

// --- heuristics -----------------------------------------------------------

#[test]
fn newarray_heuristic() {
    // new T[3] with sizeof(T) == 16: cookie 3 then 48 bytes; the program
    // holds start + 8.
    let mut f = Fake::new();
    let a = f.block(0x1000, 8 + 3 * 16);
    f.set(a, 3);
    assert_eq!(f.run_roots(&[a + 8]), vec![reach_via(Heuristic::NewArray)]);

    // Count that does not divide the rest: 48 % 5 != 0.
    let mut f = Fake::new();
    let a = f.block(0x1000, 8 + 3 * 16);
    f.set(a, 5);
    assert_eq!(f.run_roots(&[a + 8]), vec![possible()]);

    // Count 0 is refused.
    let mut f = Fake::new();
    let a = f.block(0x1000, 8 + 3 * 16);
    f.set(a, 0);
    assert_eq!(f.run_roots(&[a + 8]), vec![possible()]);

    // Right count but the pointer is not at start + 8.
    let mut f = Fake::new();
    let a = f.block(0x1000, 8 + 3 * 16);
    f.set(a, 3);
    assert_eq!(f.run_roots(&[a + 16]), vec![possible()]);

    // Count word unreadable (undefined to memcheck).
    let mut f = Fake::new();
    let a = f.block(0x1000, 8 + 3 * 16);
    f.words.remove(&a);
    assert_eq!(f.run_roots(&[a + 8]), vec![possible()]);
}

#[test]
fn length64_heuristic() {
    // sqlite-style: 64-bit length of the rest of the block, then the data.
    let mut f = Fake::new();
    let a = f.block(0x1000, 40);
    f.set(a, 32);
    // (newarray would accept it too: length64 is tried first.)
    assert_eq!(f.run_roots(&[a + 8]), vec![reach_via(Heuristic::Length64)]);

    // Wrong length (and 32 % 33 != 0 so newarray refuses it too).
    let mut f = Fake::new();
    let a = f.block(0x1000, 40);
    f.set(a, 33);
    assert_eq!(f.run_roots(&[a + 8]), vec![possible()]);

    // A length that only newarray accepts: 32 % 16 == 0.
    let mut f = Fake::new();
    let a = f.block(0x1000, 40);
    f.set(a, 16);
    assert_eq!(f.run_roots(&[a + 8]), vec![reach_via(Heuristic::NewArray)]);
}

#[test]
fn dtv_heuristic() {
    // glibc's DTV of a live thread: 17 entries of 16 bytes, the first one
    // the length (15), the thread's control block pointing at the second.
    let mut f = Fake::new();
    let a = f.block(0x1000, 272);
    f.set(a, 15);
    assert_eq!(f.run_roots(&[a + 16]), vec![reach_via(Heuristic::Dtv)]);

    // A wrong length, or a vector too small to be glibc's: possible.
    let mut f = Fake::new();
    let a = f.block(0x1000, 272);
    f.set(a, 16);
    assert_eq!(f.run_roots(&[a + 16]), vec![possible()]);
    let mut f = Fake::new();
    let a = f.block(0x1000, 64);
    f.set(a, 2);
    assert_eq!(f.run_roots(&[a + 16]), vec![possible()]);
}

#[test]
fn stdstring_heuristic() {
    // libstdc++ COW std::string _Rep: length, capacity, refcount, chars, NUL.
    // capacity 15 -> block of 24 + 15 + 1 = 40 bytes; the string holds the
    // address of chars (start + 24).
    let mut f = Fake::new();
    let a = f.block(0x1000, 40);
    f.set(a, 5); // length
    f.set(a + 8, 15); // capacity
    f.words.remove(&(a + 16)); // refcount: not looked at (may be undefined)
    assert_eq!(
        f.run_roots(&[a + 24]),
        vec![reach_via(Heuristic::StdString)]
    );

    // length > capacity.
    let mut f = Fake::new();
    let a = f.block(0x1000, 40);
    f.set(a, 16);
    f.set(a + 8, 15);
    assert_eq!(f.run_roots(&[a + 24]), vec![possible()]);

    // Size does not match the capacity.
    let mut f = Fake::new();
    let a = f.block(0x1000, 48);
    f.set(a, 5);
    f.set(a + 8, 15);
    assert_eq!(f.run_roots(&[a + 24]), vec![possible()]);

    // Pointer not at start + 24.
    let mut f = Fake::new();
    let a = f.block(0x1000, 40);
    f.set(a, 5);
    f.set(a + 8, 15);
    assert_eq!(f.run_roots(&[a + 32]), vec![possible()]);

    // Length undefined.
    let mut f = Fake::new();
    let a = f.block(0x1000, 40);
    f.words.remove(&a);
    f.set(a + 8, 15);
    assert_eq!(f.run_roots(&[a + 24]), vec![possible()]);
}

#[test]
fn multipleinheritance_heuristic() {
    const VT1: u64 = 0x40_1000;
    const VT2: u64 = 0x40_2000;
    let build = |inner: u64, first: u64| {
        let mut f = Fake::new();
        f.vtables.insert(VT1);
        f.vtables.insert(VT2);
        let a = f.block(0x1000, 48);
        f.set(a, first); // vptr of the first base
        f.set(a + 16, inner); // vptr of the second base
        (f, a)
    };
    let (mut f, a) = build(VT2, VT1);
    assert_eq!(
        f.run_roots(&[a + 16]),
        vec![reach_via(Heuristic::MultipleInheritance)]
    );

    // Inner word is not a vtable.
    let (mut f, a) = build(0x50_0000, VT1);
    assert_eq!(f.run_roots(&[a + 16]), vec![possible()]);
    // First word is not a vtable.
    let (mut f, a) = build(VT2, 0x50_0000);
    assert_eq!(f.run_roots(&[a + 16]), vec![possible()]);
    // Pointer not aligned.
    let (mut f, a) = build(VT2, VT1);
    assert_eq!(f.run_roots(&[a + 17]), vec![possible()]);
    // A vtable in page 0 is never asked about.
    let (mut f, a) = build(VT2, 8);
    f.vtables.insert(8);
    assert_eq!(f.run_roots(&[a + 16]), vec![possible()]);
}

#[test]
fn multipleinheritance_word_must_be_inside_the_block() {
    // Block of 20 bytes: the word at start + 16 straddles the end (memcheck's
    // redzone) even if the process's memory has it.
    let mut f = Fake::new();
    f.vtables.insert(0x40_1000);
    let a = f.block(0x1000, 20);
    f.set(a, 0x40_1000);
    f.set(a + 16, 0x40_1000);
    assert_eq!(f.run_roots(&[a + 16]), vec![possible()]);
}

#[test]
fn heuristic_from_possibly_lost_block_leaves_block_possible_but_flagged() {
    // memcheck quirk: the heuristic field is set even though the prior node
    // is not definite, and print_results counts it under "reachable via
    // heuristic" although the block is possibly lost.
    let mut f = Fake::new();
    let p = f.block(0x1000, 32);
    let x = f.block(0x2000, 8 + 2 * 8);
    f.set(p + 8, x + 8);
    f.set(x, 2);
    let out = f.run_roots(&[p + 8]);
    assert_eq!(
        out,
        vec![
            possible(),
            Outcome {
                heuristic: Some(Heuristic::NewArray),
                ..possible()
            }
        ]
    );
}

#[test]
fn heuristic_stays_when_a_start_pointer_upgrades_a_possible_block() {
    // Root words: [R, P+8]. The mark stack is LIFO, so P is scanned before R:
    // P (possible) reaches X through a newarray pointer -> X Possible with the
    // heuristic set. Then R (reachable) points to X's start: X becomes
    // Reachable but memcheck only clears the heuristic when the block was
    // already Reachable, so it keeps it.
    let mut f = Fake::new();
    let r = f.block(0x1000, 16);
    let p = f.block(0x2000, 32);
    let x = f.block(0x3000, 8 + 2 * 8);
    f.set(r, x);
    f.set(p + 8, x + 8);
    f.set(x, 2);
    let out = f.run_roots(&[r, p + 8]);
    assert_eq!(
        out,
        vec![reach(), possible(), reach_via(Heuristic::NewArray)]
    );

    // Other root order: R is scanned first, X is Reachable via its start
    // before P's heuristic pointer is seen, which then changes nothing.
    let out = f.run_roots(&[p + 8, r]);
    assert_eq!(out, vec![reach(), possible(), reach()]);
}

#[test]
fn heuristic_cleared_by_a_later_start_pointer() {
    let mut f = Fake::new();
    let x = f.block(0x3000, 8 + 2 * 8);
    f.set(x, 2);
    // Heuristic pointer first: Reachable via newarray; then the start
    // pointer clears it.
    assert_eq!(f.run_roots(&[x + 8, x]), vec![reach()]);
    // Only the heuristic pointer.
    assert_eq!(f.run_roots(&[x + 8]), vec![reach_via(Heuristic::NewArray)]);
    // Start pointer first: the heuristic is never evaluated.
    assert_eq!(f.run_roots(&[x, x + 8]), vec![reach()]);
}

#[test]
fn heuristic_overwritten_by_a_later_plain_interior_pointer_while_possible() {
    // P (possible) -> X+8 (newarray: heuristic set, X Possible), then P ->
    // X+16 (no heuristic): memcheck overwrites the field with "none".
    let mut f = Fake::new();
    let p = f.block(0x1000, 32);
    let x = f.block(0x2000, 8 + 2 * 8);
    f.set(p, x + 8);
    f.set(p + 8, x + 16);
    f.set(x, 2);
    assert_eq!(f.run_roots(&[p + 8]), vec![possible(), possible()]);
}

// --- edges ------------------------------------------------------------------

#[test]
fn zero_sized_blocks() {
    let mut f = Fake::new();
    let z1 = f.block(0x1000, 0);
    let _z2 = f.block(0x2000, 0);
    let _z3 = f.block(0x3000, 0);
    let w = f.block(0x4000, 16);
    // The zero-sized block's "contents" are never scanned.
    f.set(z1, w);
    // z1 by its start: reachable. z3 only by start + 1: not a pointer to it.
    let out = f.run_roots(&[z1, 0x3001]);
    assert_eq!(
        out,
        vec![reach(), definite(0, 0), definite(0, 0), definite(0, 0)]
    );
}

#[test]
fn zero_sized_block_in_a_lost_clique() {
    let mut f = Fake::new();
    let a = f.block(0x1000, 16);
    let z = f.block(0x2000, 0);
    f.set(a, z);
    assert_eq!(f.run_roots(&[]), vec![definite(0, 1), indirect()]);
}

#[test]
fn pointer_one_past_the_end() {
    let mut f = Fake::new();
    let a = f.block(0x1000, 32);
    let _b = f.block(0x1030, 32);
    assert_eq!(f.run_roots(&[a + 32]), vec![definite(0, 0), definite(0, 0)]);
    // If a block starts right there, it is a start pointer to that block.
    let mut f = Fake::new();
    let a = f.block(0x1000, 32);
    let _b = f.block(0x1020, 32);
    assert_eq!(f.run_roots(&[a + 32]), vec![definite(0, 0), reach()]);
}

#[test]
fn only_aligned_words_fully_inside_a_range_are_examined() {
    let mut f = Fake::new();
    let a = f.block(0x1000, 16);
    let b = f.block(0x2000, 16);
    let c = f.block(0x3000, 16);
    f.set(ROOT, a);
    f.set(ROOT + 8, b);
    f.set(ROOT + 16, c);
    // [ROOT+4, ROOT+20): rounded to [ROOT+8, ROOT+16): only b's word.
    let out = f.run(&[(ROOT + 4, ROOT + 20)], &[]);
    assert_eq!(out, vec![definite(0, 0), reach(), definite(0, 0)]);
}

#[test]
fn trailing_partial_word_of_a_block_is_not_scanned() {
    // A 12-byte block: only its first word is scanned; the word at +8 would
    // straddle the end.
    let mut f = Fake::new();
    let d = f.block(0x1000, 12);
    let e = f.block(0x2000, 16);
    let g = f.block(0x3000, 16);
    f.set(d, g);
    f.set(d + 8, e);
    let out = f.run_roots(&[d]);
    assert_eq!(out, vec![reach(), definite(0, 0), reach()]);
}

#[test]
fn unreadable_root_words_are_skipped() {
    let mut f = Fake::new();
    let a = f.block(0x1000, 16);
    let b = f.block(0x2000, 16);
    f.set(ROOT, a);
    // ROOT+8 unreadable (not in the fake memory), ROOT+16 readable.
    f.set(ROOT + 16, b);
    let out = f.run(&[(ROOT, ROOT + 24)], &[]);
    assert_eq!(out, vec![reach(), reach()]);
    let out = f.run(&[(ROOT + 8, ROOT + 16)], &[]);
    assert_eq!(out, vec![definite(0, 0), definite(0, 0)]);
}

#[test]
fn big_blocks() {
    // Blocks of 64 KiB and more take another path in the lookup.
    let mut f = Fake::new();
    let a = f.block(0x10_0000, 0x1_0000); // exactly 64 KiB
    let b = f.block(0x20_0000, 0x30_0000); // 3 MiB
    let c = f.block(0x60_0000, 0xffff);
    let d = f.block(0x70_0000, 16);
    f.set(b + 0x2f_fff8, d); // last word of b
    let out = f.run_roots(&[a + 0xffff, b + 0x12_3456, c + 0xfffe, c + 0xffff]);
    assert_eq!(out, vec![possible(), possible(), possible(), possible()]);
    // One past the end of each: nothing (b leads d).
    let out = f.run_roots(&[a + 0x1_0000, b + 0x30_0000, c + 0xffff]);
    assert_eq!(
        out,
        vec![definite(0, 0), definite(16, 1), definite(0, 0), indirect()]
    );
}

#[test]
fn zero_sized_block_sharing_its_start_with_the_next_block() {
    // [X, X) and [X, X+16): memcheck's binary search decides which one a
    // pointer to X finds; with two blocks the first probe is block 0.
    let mut f = Fake::new();
    let z = f.block(0x1000, 0);
    let _b = f.block(0x1000, 16);
    assert_eq!(f.run_roots(&[z]), vec![reach(), definite(0, 0)]);
    // With three blocks the first probe is the middle one: block 1.
    let mut f = Fake::new();
    let _y = f.block(0x800, 16);
    let z = f.block(0x1000, 0);
    let _b = f.block(0x1000, 16);
    assert_eq!(
        f.run_roots(&[z]),
        vec![definite(0, 0), reach(), definite(0, 0)]
    );
    let mut f = Fake::new();
    let _x = f.block(0x400, 16);
    let _y = f.block(0x800, 16);
    let z = f.block(0x1000, 0);
    let _b = f.block(0x1000, 16);
    // lo=0, hi=3: mid=1 (0x800) -> lo=2, mid=2: the zero-sized block.
    assert_eq!(
        f.run_roots(&[z]),
        vec![definite(0, 0), definite(0, 0), reach(), definite(0, 0)]
    );
    let mut f = Fake::new();
    let z = f.block(0x1000, 0);
    let _b = f.block(0x1000, 16);
    let _c = f.block(0x2000, 16);
    // lo=0, hi=2: mid=1: the 16-byte block at 0x1000.
    assert_eq!(
        f.run_roots(&[z]),
        vec![definite(0, 0), reach(), definite(0, 0)]
    );
}

#[test]
fn addresses_above_2_pow_48() {
    // Keys cannot hold such addresses: memcheck's search is used throughout.
    let mut f = Fake::new();
    let a = f.block(0x1000, 32);
    let b = f.block(0xffff_0000_0000_1000, 32);
    let c = f.block(0xffff_0000_0000_2000, 32);
    f.set(b, c + 8);
    assert_eq!(f.run_roots(&[a, b]), vec![reach(), reach(), possible()]);
}

#[test]
#[should_panic(expected = "must not overlap")]
fn overlapping_blocks_are_refused() {
    let blocks = [
        Block {
            start: 0x1000,
            size: 32,
        },
        Block {
            start: 0x1010,
            size: 32,
        },
    ];
    classify(
        &blocks,
        &Roots {
            ranges: &[],
            words: &[],
        },
        &Fake::new(),
    );
}

#[test]
fn lookup_matches_memcheck_search_on_a_large_heap() {
    // More than INDEX_TOP_MAX blocks, so the index has levels; probe every
    // interesting address of every block, one root at a time, through the
    // outcome: a block is reached iff the probe is inside it.
    let mut f = Fake::new();
    let mut rng = Rng(99);
    let mut addr = 0x10_0000u64;
    let mut blocks = Vec::new();
    for _ in 0..5000 {
        let size = match rng.below(10) {
            0 => 0,
            1 => 0x1_0000 + rng.below(0x2_0000),
            _ => 1 + rng.below(200),
        };
        blocks.push(f.block(addr, size));
        addr += size + rng.below(3) * 16 + if size == 0 { 1 } else { 0 };
    }
    let roots: Vec<u64> = (0..20_000)
        .map(|_| {
            let b = f.blocks[rng.below(5000) as usize];
            match rng.below(4) {
                0 => b.start,
                1 => b.start + b.size,
                2 => b.start.wrapping_sub(1),
                _ => b.start + rng.below(b.size.max(1)),
            }
        })
        .collect();
    let out = f.run_roots(&roots);
    let all = f.blocks.clone();
    let expect_reached: HashSet<usize> = roots.iter().filter_map(|&p| owner(&all, p)).collect();
    for (i, o) in out.iter().enumerate() {
        let reached = o.kind == Kind::StillReachable || o.kind == Kind::PossiblyLost;
        assert_eq!(
            reached,
            expect_reached.contains(&i),
            "block {i}: {:?}",
            all[i]
        );
    }
}

#[test]
fn pointers_outside_every_block() {
    let mut f = Fake::new();
    f.block(0x1000, 16);
    f.block(0x2000, 16);
    let out = f.run_roots(&[0, 1, 0xfff, 0x1010, 0x1fff, 0x2010, u64::MAX]);
    assert_eq!(out, vec![definite(0, 0), definite(0, 0)]);
}

// --- the vtable helper --------------------------------------------------------

#[test]
fn vtable_check_follows_memcheck() {
    let maps = [
        Mapping {
            start: 0x40_0000,
            end: 0x40_1000,
            readable: true,
            executable: true,
            file_backed: true,
        }, // text
        Mapping {
            start: 0x40_1000,
            end: 0x40_2000,
            readable: true,
            executable: false,
            file_backed: true,
        }, // .data.rel.ro
        Mapping {
            start: 0x50_0000,
            end: 0x50_1000,
            readable: true,
            executable: false,
            file_backed: false,
        }, // anonymous
        Mapping {
            start: 0x60_0000,
            end: 0x60_1000,
            readable: true,
            executable: true,
            file_backed: false,
        }, // anonymous code (JIT)
    ];
    let mapping_at = |a: u64| maps.iter().copied().find(|m| m.start <= a && a < m.end);
    let mut mem: HashMap<u64, u64> = HashMap::new();
    let vt = 0x40_1100;
    // offset-to-top, typeinfo (here both zero), then two virtual functions.
    mem.insert(vt, 0);
    mem.insert(vt + 8, 0x40_0100);
    mem.insert(vt + 16, 0x40_0200);
    let read = |a: u64| Some(mem.get(&a).copied().unwrap_or(0));
    assert!(memcheck_vtable_check(vt + 8, mapping_at, read));
    assert!(memcheck_vtable_check(vt, mapping_at, read));
    // Only one function pointer in reach before zeros run out: not a vtable.
    assert!(!memcheck_vtable_check(vt + 16, mapping_at, read));
    // Not in a file mapping.
    assert!(!memcheck_vtable_check(0x50_0000, mapping_at, read));
    // A non-zero non-code word before the second function pointer.
    let mut mem2 = mem.clone();
    mem2.insert(vt + 8, 0x50_0010);
    let read2 = |a: u64| Some(mem2.get(&a).copied().unwrap_or(0));
    assert!(!memcheck_vtable_check(vt, mapping_at, read2));
    // Pointers into anonymous code do not count.
    let mut mem3 = mem.clone();
    mem3.insert(vt + 8, 0x60_0010);
    let read3 = |a: u64| Some(mem3.get(&a).copied().unwrap_or(0));
    assert!(!memcheck_vtable_check(vt, mapping_at, read3));
    // The 21-word window: function pointers at +160 and +168 from addr: the
    // second one is out of the window.
    let mut mem4: HashMap<u64, u64> = HashMap::new();
    let base = 0x40_1200;
    mem4.insert(base + 152, 0x40_0100);
    mem4.insert(base + 160, 0x40_0100);
    mem4.insert(base + 168, 0x40_0100);
    let read4 = |a: u64| Some(mem4.get(&a).copied().unwrap_or(0));
    assert!(memcheck_vtable_check(base, mapping_at, read4));
    assert!(!memcheck_vtable_check(base - 8, mapping_at, read4));
    // The mapping's last word is never looked at.
    let mut mem5: HashMap<u64, u64> = HashMap::new();
    mem5.insert(0x40_1ff0, 0x40_0100);
    mem5.insert(0x40_1ff8, 0x40_0100);
    let read5 = |a: u64| Some(mem5.get(&a).copied().unwrap_or(0));
    assert!(!memcheck_vtable_check(0x40_1ff0, mapping_at, read5));
    let mut mem6: HashMap<u64, u64> = HashMap::new();
    mem6.insert(0x40_1fe8, 0x40_0100);
    mem6.insert(0x40_1ff0, 0x40_0100);
    let read6 = |a: u64| Some(mem6.get(&a).copied().unwrap_or(0));
    assert!(memcheck_vtable_check(0x40_1fe8, mapping_at, read6));
    // Unreadable word: no.
    assert!(!memcheck_vtable_check(vt, mapping_at, |_| None));
}

// --- a big random heap --------------------------------------------------------

/// A dense fake address space: the heap as one vector of words, plus a root
/// area. Overrides `for_each_word` with a slice walk, as a real
/// implementation over snapshots would.
struct Dense {
    heap_base: u64,
    heap: Vec<u64>,
    root_base: u64,
    root: Vec<u64>,
}

impl Dense {
    fn region(&self, addr: u64) -> Option<(&[u64], u64)> {
        if addr >= self.heap_base && addr < self.heap_base + 8 * self.heap.len() as u64 {
            Some((&self.heap, self.heap_base))
        } else if addr >= self.root_base && addr < self.root_base + 8 * self.root.len() as u64 {
            Some((&self.root, self.root_base))
        } else {
            None
        }
    }
}

impl Memory for Dense {
    fn word(&self, addr: u64) -> Option<u64> {
        let (r, base) = self.region(addr)?;
        Some(r[((addr - base) / 8) as usize])
    }
    fn is_vtable_location(&self, _addr: u64) -> bool {
        false
    }
    fn for_each_word<F: FnMut(u64, u64)>(&self, start: u64, end: u64, mut f: F) {
        let Some((r, base)) = self.region(start) else {
            let mut a = start;
            while a < end {
                if let Some(w) = self.word(a) {
                    f(a, w);
                }
                a += 8;
            }
            return;
        };
        let lo = ((start - base) / 8) as usize;
        let hi = (((end - base) / 8) as usize).min(r.len());
        for (i, &w) in r[lo..hi].iter().enumerate() {
            f(start + 8 * i as u64, w);
        }
        let mut a = base + 8 * hi as u64;
        while a < end {
            if let Some(w) = self.word(a) {
                f(a, w);
            }
            a += 8;
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The block containing `p`, found independently of the crate's search.
fn owner(blocks: &[Block], p: u64) -> Option<usize> {
    let i = blocks.partition_point(|b| b.start <= p);
    if i == 0 {
        return None;
    }
    let b = blocks[i - 1];
    (p < b.start + b.size.max(1)).then_some(i - 1)
}

fn block_words(mem: &Dense, b: Block) -> impl Iterator<Item = u64> + '_ {
    (0..b.size / 8).filter_map(move |k| mem.word(b.start + 8 * k))
}

struct RandomHeap {
    blocks: Vec<Block>,
    mem: Dense,
    ranges: [(u64, u64); 1],
    regs: [u64; 3],
}

/// The shape of a random heap.
struct Shape {
    /// Most blocks are 16 + 8 * below(words) bytes (5% are 0, 5% odd-sized).
    words: u64,
    /// A word is a heap pointer with probability pointers / 64 (one in five
    /// of them interior, three quarters of them to one of the 100 nearest
    /// blocks, so that chains, cycles and lost cliques form, the others to
    /// any block); the rest is zeros and junk that points nowhere.
    pointers: u64,
}

/// The pointer-dense heap of the regular test: ~75-byte blocks, a quarter of
/// the words pointers.
const DENSE: Shape = Shape {
    words: 14,
    pointers: 16,
};

/// How many blocks the big tests use: a million, as the brief asks; fewer in
/// an unoptimised build, where a million would take most of a minute.
const BIG_N: usize = if cfg!(debug_assertions) {
    100_000
} else {
    1_000_000
};

/// `BIG_N` blocks with random contents.
fn random_heap(seed: u64, shape: &Shape) -> RandomHeap {
    const N: usize = BIG_N;
    let mut rng = Rng(seed);
    let heap_base = 0x5555_0000_0000u64;
    let mut blocks = Vec::with_capacity(N);
    let mut addr = heap_base;
    for _ in 0..N {
        let size = match rng.below(20) {
            0 => 0,
            1 => 8 * rng.below(64) + 3 + rng.below(5), // odd sizes too (never 25: see stdstring)
            _ => 16 + 8 * rng.below(shape.words),
        };
        blocks.push(Block { start: addr, size });
        addr += (size + 16 + 16 * rng.below(3)).next_multiple_of(16);
    }
    let heap_len = ((addr - heap_base) / 8) as usize;
    let mut heap = vec![0u64; heap_len];
    // Contents: mostly zeros and junk outside the heap; some start pointers,
    // some interior pointers. Pointer targets are biased to nearby blocks so
    // that long chains, cycles and lost cliques all occur.
    for (i, b) in blocks.iter().enumerate() {
        for k in 0..b.size / 8 {
            let w = &mut heap[((b.start - heap_base) / 8 + k) as usize];
            let r = rng.below(64);
            *w = if r < shape.pointers {
                {
                    let t = if rng.below(4) == 0 {
                        rng.below(N as u64) as usize
                    } else {
                        (i + N - 50 + rng.below(100) as usize) % N
                    };
                    let tb = blocks[t];
                    if rng.below(5) == 0 && tb.size > 1 {
                        tb.start + 1 + rng.below(tb.size - 1)
                    } else {
                        tb.start
                    }
                }
            } else if r < 32 {
                rng.next() | (1 << 63)
            } else {
                0
            };
        }
    }
    // Roots: a few thousand words, a third of them pointers.
    let root_base = 0x7ffd_0000_0000u64;
    let root: Vec<u64> = (0..3000)
        .map(|_| match rng.below(3) {
            0 => {
                let b = blocks[rng.below(N as u64) as usize];
                if rng.below(4) == 0 && b.size > 1 {
                    b.start + rng.below(b.size)
                } else {
                    b.start
                }
            }
            _ => rng.next() | (1 << 63),
        })
        .collect();
    let mem = Dense {
        heap_base,
        heap,
        root_base,
        root,
    };
    let ranges = [(root_base, root_base + 8 * mem.root.len() as u64)];
    let regs = [blocks[N / 2].start + 1, 0, 42];
    RandomHeap {
        blocks,
        mem,
        ranges,
        regs,
    }
}

#[test]
fn random_heap_of_1m_blocks() {
    const N: usize = BIG_N;
    let RandomHeap {
        blocks,
        mem,
        ranges,
        regs,
    } = random_heap(0x1234_5678_9abc_def1, &DENSE);

    // Timed; in release the best of 3 runs (the machine may be shared).
    let runs = if cfg!(debug_assertions) { 1 } else { 3 };
    let mut dt = std::time::Duration::MAX;
    let mut out = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        out = classify(
            &blocks,
            &Roots {
                ranges: &ranges,
                words: &regs,
            },
            &mem,
        );
        dt = dt.min(t0.elapsed());
    }
    let heap_bytes: u64 = blocks.iter().map(|b| b.size).sum();
    let mut count: HashMap<Kind, usize> = HashMap::new();
    for o in &out {
        *count.entry(o.kind).or_default() += 1;
    }
    println!(
        "classify: {N} blocks, {} MiB of blocks, {} words of roots: {:.3?} ({count:?})",
        heap_bytes >> 20,
        mem.root.len(),
        dt
    );
    if !cfg!(debug_assertions) {
        // A guard against pathologies (the machine may be busy), not a benchmark.
        assert!(dt.as_secs_f64() < 10.0, "too slow: {dt:?}");
    }

    // --- independent checks (no heuristic can fire on this heap: word 0 of a
    // block is 0, a huge junk value, or a heap address, and no vtables) ---
    assert!(out.iter().all(|o| o.heuristic.is_none()));

    // Reachable == closure of the roots under start pointers only;
    // Reachable or Possible == closure under any pointer into a block.
    let root_words: Vec<u64> = mem.root.iter().chain(regs.iter()).copied().collect();
    let closure = |start_only: bool| {
        let mut seen = vec![false; N];
        let mut q = VecDeque::new();
        let visit = |p: u64, seen: &mut Vec<bool>, q: &mut VecDeque<usize>| {
            if let Some(i) = owner(&blocks, p) {
                if (!start_only || p == blocks[i].start) && !seen[i] {
                    seen[i] = true;
                    q.push_back(i);
                }
            }
        };
        for &w in &root_words {
            visit(w, &mut seen, &mut q);
        }
        while let Some(i) = q.pop_front() {
            for w in block_words(&mem, blocks[i]) {
                visit(w, &mut seen, &mut q);
            }
        }
        seen
    };
    let def = closure(true);
    let any = closure(false);
    for i in 0..N {
        let expect = if def[i] {
            Kind::StillReachable
        } else if any[i] {
            Kind::PossiblyLost
        } else {
            out[i].kind // checked below
        };
        assert_eq!(out[i].kind, expect, "block {i}");
        if !any[i] {
            assert!(matches!(
                out[i].kind,
                Kind::DefinitelyLost | Kind::IndirectlyLost
            ));
        }
    }

    // Cliques, recomputed: in address order, each unassigned lost block leads
    // the set of not-yet-taken lost blocks it reaches (earlier leaders
    // included, with what they had).
    let mut leader_of: Vec<Option<usize>> = vec![None; N];
    let mut is_leader = vec![false; N];
    let mut ind_bytes = vec![0u64; N];
    let mut ind_blocks = vec![0u64; N];
    for l in 0..N {
        if any[l] || leader_of[l].is_some() || is_leader[l] {
            continue;
        }
        is_leader[l] = true;
        let mut stack = vec![l];
        while let Some(i) = stack.pop() {
            for w in block_words(&mem, blocks[i]) {
                let Some(t) = owner(&blocks, w) else { continue };
                if any[t] || t == l || leader_of[t].is_some() {
                    continue;
                }
                if is_leader[t] {
                    is_leader[t] = false;
                    ind_bytes[l] += ind_bytes[t];
                    ind_blocks[l] += ind_blocks[t];
                    ind_bytes[t] = 0;
                    ind_blocks[t] = 0;
                }
                leader_of[t] = Some(l);
                ind_bytes[l] += blocks[t].size;
                ind_blocks[l] += 1;
                stack.push(t);
            }
        }
    }
    let (mut n_def, mut n_ind) = (0, 0);
    for i in 0..N {
        if any[i] {
            continue;
        }
        if is_leader[i] {
            n_def += 1;
            assert_eq!(out[i], definite(ind_bytes[i], ind_blocks[i]), "block {i}");
        } else {
            n_ind += 1;
            assert_eq!(out[i], indirect(), "block {i}");
        }
    }
    // Conservation: every indirectly lost block is counted under exactly one
    // leader.
    let total_ind: u64 = out.iter().map(|o| o.indirect_blocks).sum();
    assert_eq!(total_ind, n_ind as u64);
    let total_ind_bytes: u64 = out.iter().map(|o| o.indirect_bytes).sum();
    let ind_size: u64 = (0..N)
        .filter(|&i| out[i].kind == Kind::IndirectlyLost)
        .map(|i| blocks[i].size)
        .sum();
    assert_eq!(total_ind_bytes, ind_size);
    assert!(
        n_def > 1000 && n_ind > 1000,
        "heap too tame: {n_def} {n_ind}"
    );
    assert!(count[&Kind::StillReachable] > 1000 && count[&Kind::PossiblyLost] > 100);
}

#[test]
fn long_chain_does_not_recurse() {
    // A list of BIG_N blocks (a million in release): the mark stack is
    // iterative, no recursion.
    const N: u64 = BIG_N as u64;
    let heap_base = 0x1000_0000u64;
    let blocks: Vec<Block> = (0..N)
        .map(|i| Block {
            start: heap_base + 16 * i,
            size: 16,
        })
        .collect();
    let mut heap = vec![0u64; 2 * N as usize];
    for i in 0..N - 1 {
        heap[2 * i as usize] = heap_base + 16 * (i + 1);
    }
    let mem = Dense {
        heap_base,
        heap,
        root_base: 0x7000_0000,
        root: vec![],
    };
    let out = classify(
        &blocks,
        &Roots {
            ranges: &[],
            words: &[heap_base],
        },
        &mem,
    );
    assert!(out.iter().all(|o| *o == reach()));
    // And lost: one leader with everything under it.
    let out = classify(
        &blocks,
        &Roots {
            ranges: &[],
            words: &[],
        },
        &mem,
    );
    assert_eq!(out[0], definite(16 * (N - 1), N - 1));
}

fn bench(shape: &Shape) {
    let t0 = Instant::now();
    let h = random_heap(0x1234_5678_9abc_def1, shape);
    let words: u64 = h.blocks.iter().map(|b| b.size / 8).sum();
    println!(
        "heap: {} blocks, {} MiB in blocks, built in {:?}",
        h.blocks.len(),
        words >> 17,
        t0.elapsed()
    );
    for _ in 0..5 {
        let t0 = Instant::now();
        let out = classify(
            &h.blocks,
            &Roots {
                ranges: &h.ranges,
                words: &h.regs,
            },
            &h.mem,
        );
        let dt = t0.elapsed();
        let mut count: HashMap<Kind, usize> = HashMap::new();
        for o in &out {
            *count.entry(o.kind).or_default() += 1;
        }
        println!("classify: {dt:?} {count:?}");
    }
}

/// `cargo test --release -- --ignored --nocapture bench_dense`: classify
/// alone on the heap of `random_heap_of_1m_blocks`, for profiling.
#[test]
#[ignore]
fn bench_dense() {
    bench(&DENSE);
}

/// `cargo test --release -- --ignored --nocapture bench_1gb`: 1,000,000
/// blocks of ~1 KiB (1 GiB), one word in 16 a heap pointer.
#[test]
#[ignore]
fn bench_1gb() {
    bench(&Shape {
        words: 254,
        pointers: 4,
    });
}

// ---------------------------------------------------------------- python

/// Where the fake CPython's `PyType_Type` is (in a module's data).
const TYPE_TYPE: u64 = 0x60_0000;
/// A static type object (`PyDict_Type`, say) next to it.
const STATIC_TYPE: u64 = 0x60_1000;

impl Fake {
    /// A fake with the python heuristic on, and a static type object whose
    /// type is `PyType_Type` (as `PyType_Type`'s own is).
    fn python() -> Self {
        let mut f = Fake::new();
        f.options.python_type_type = Some(TYPE_TYPE);
        for t in [TYPE_TYPE, STATIC_TYPE] {
            f.anywhere.insert(t, 1000); // ob_refcnt
            f.anywhere.insert(t + 8, TYPE_TYPE); // ob_type
        }
        f
    }
    /// A block of `size` holding a CPython object at `start + head`
    /// (refcount `refcnt`, type `ob_type`). Returns the object's address.
    fn py_object(&mut self, start: u64, size: u64, head: u64, refcnt: u64, ob_type: u64) -> u64 {
        self.block(start, size);
        self.set(start + head, refcnt);
        self.set(start + head + 8, ob_type);
        start + head
    }
}

#[test]
fn python_object_after_gc_header_is_reachable_via_python() {
    let mut f = Fake::python();
    let o = f.py_object(0x1000, 64, 16, 1, STATIC_TYPE);
    assert_eq!(f.run_roots(&[o]), vec![reach_via(Heuristic::Python)]);
}

#[test]
fn python_object_after_managed_dict_pre_header_is_reachable_via_python() {
    let mut f = Fake::python();
    let o = f.py_object(0x1000, 80, 32, 3, STATIC_TYPE);
    assert_eq!(f.run_roots(&[o]), vec![reach_via(Heuristic::Python)]);
}

#[test]
fn python_heuristic_is_off_without_py_type_type() {
    let mut f = Fake::python();
    f.options = Options::default();
    let o = f.py_object(0x1000, 64, 16, 1, STATIC_TYPE);
    assert_eq!(f.run_roots(&[o]), vec![possible()]);
    // And `classify` is memcheck's: no python heuristic.
    f.options.python_type_type = Some(TYPE_TYPE);
    let out = classify(
        &f.blocks,
        &Roots {
            ranges: &[(ROOT, ROOT + 8)],
            words: &[],
        },
        &f,
    );
    assert_eq!(out, vec![possible()]);
}

#[test]
fn python_heuristic_only_at_16_or_32() {
    for head in [8, 24, 40, 48] {
        let mut f = Fake::python();
        let o = f.py_object(0x1000, 96, head, 1, STATIC_TYPE);
        assert_eq!(f.run_roots(&[o]), vec![possible()], "head at +{head}");
    }
}

#[test]
fn python_heuristic_wants_a_plausible_refcount() {
    for (refcnt, want) in [
        (0, possible()),
        (1 << 40, possible()),
        (u64::MAX, possible()),
        ((1 << 40) - 1, reach_via(Heuristic::Python)),
        // 3.12's immortal objects
        ((1 << 32) - 1, reach_via(Heuristic::Python)),
    ] {
        let mut f = Fake::python();
        let o = f.py_object(0x1000, 64, 16, refcnt, STATIC_TYPE);
        assert_eq!(f.run_roots(&[o]), vec![want], "refcount {refcnt:#x}");
    }
}

#[test]
fn python_heuristic_wants_ob_type_to_be_a_type() {
    // ob_type points at something whose type is not PyType_Type.
    let mut f = Fake::python();
    f.anywhere.insert(0x60_2000 + 8, 0x60_3000);
    f.anywhere.insert(0x60_3000 + 8, 0x60_4000);
    let o = f.py_object(0x1000, 64, 16, 1, 0x60_2000);
    assert_eq!(f.run_roots(&[o]), vec![possible()]);

    // ob_type unreadable (word_anywhere knows nothing there).
    let mut f = Fake::python();
    let o = f.py_object(0x1000, 64, 16, 1, 0x70_0000);
    assert_eq!(f.run_roots(&[o]), vec![possible()]);

    // ob_type not a plausible pointer (small, or unaligned).
    for t in [8, 0x60_1004] {
        let mut f = Fake::python();
        let o = f.py_object(0x1000, 64, 16, 1, t);
        assert_eq!(f.run_roots(&[o]), vec![possible()], "ob_type {t:#x}");
    }

    // The object's own words unreadable.
    let mut f = Fake::python();
    let o = f.py_object(0x1000, 64, 16, 1, STATIC_TYPE);
    f.words.remove(&(o + 8));
    assert_eq!(f.run_roots(&[o]), vec![possible()]);

    // ob_type would lie past the block's end.
    let mut f = Fake::python();
    f.block(0x1000, 24);
    f.set(0x1010, 1);
    assert_eq!(f.run_roots(&[0x1010]), vec![possible()]);
}

#[test]
fn python_heuristic_accepts_a_metaclass() {
    // type(obj) = C (a heap type, in a block), type(C) = M (a metaclass,
    // in a block too, e.g. ABCMeta's subclass), type(M) = PyType_Type.
    let mut f = Fake::python();
    let meta = f.py_object(0x3000, 960, 16, 5, TYPE_TYPE);
    let class = f.py_object(0x2000, 960, 16, 7, meta);
    let o = f.py_object(0x1000, 64, 32, 1, class);
    // The root holds the object only; the types are held by nobody here.
    let out = f.run_roots(&[o]);
    assert_eq!(out[0], reach_via(Heuristic::Python), "{out:?}");

    // Three levels is not a type.
    let mut f = Fake::python();
    f.anywhere.insert(0x60_5000 + 8, STATIC_TYPE + 0x10);
    f.anywhere.insert(STATIC_TYPE + 0x18, 0x60_6000);
    let meta = f.py_object(0x3000, 64, 16, 5, 0x60_5000);
    let o = f.py_object(0x1000, 64, 16, 1, meta);
    assert_eq!(f.run_roots(&[o])[0], possible());
}

#[test]
fn python_type_word_straddling_a_block_end_is_refused() {
    // ob_type points 4 bytes before a block's end: `T + 8` is not inside.
    let mut f = Fake::python();
    let t = f.block(0x2000, 16);
    f.set(t + 8, TYPE_TYPE);
    let o = f.py_object(0x1000, 64, 16, 1, t + 8);
    assert_eq!(f.run_roots(&[o])[1], possible());
}

#[test]
fn gc_list_links_are_not_object_heads() {
    // A managed-dict object's GC head is at +16: another object's
    // `_gc_next` points there, and what follows the pointer (+24) is
    // `_gc_prev`, a link to yet another GC head, not a type.
    let mut f = Fake::python();
    let a = f.block(0x1000, 80);
    let b = f.block(0x2000, 80);
    f.set(a + 16, (b + 16) | 1); // _gc_next (tagged), _gc_prev
    f.set(a + 24, b + 16);
    // a is held at its object head (+32, a real object), b only through
    // a's GC links.
    f.set(a + 32, 1);
    f.set(a + 40, STATIC_TYPE);
    let out = f.run_roots(&[a + 32]);
    assert_eq!(out, vec![reach_via(Heuristic::Python), possible()]);
}

#[test]
fn python_heap_is_traced_through_objects() {
    // A module global holds a dict object (GC, at +16); the dict's entries
    // block is held by a start pointer; an entry holds an instance with a
    // managed dict (+32), whose values block is held by a start pointer.
    let mut f = Fake::python();
    let dict = f.py_object(0x1000, 64, 16, 1, STATIC_TYPE);
    let entries = f.block(0x2000, 128);
    f.set(dict + 16, entries);
    let inst = f.py_object(0x3000, 64, 32, 2, STATIC_TYPE);
    f.set(entries + 8, inst);
    let values = f.block(0x4000, 48);
    f.set(0x3000 + 8, values); // the pre-header's values pointer
    let lost = f.py_object(0x5000, 64, 16, 1, STATIC_TYPE);
    let _ = lost;
    let out = f.run_roots(&[dict]);
    assert_eq!(
        out,
        vec![
            reach_via(Heuristic::Python),
            reach(),
            reach_via(Heuristic::Python),
            reach(),
            definite(0, 0),
        ]
    );
}

#[test]
fn python_heuristic_from_a_possibly_lost_block_is_flagged_but_possible() {
    // As memcheck does for its own heuristics: the prior node is not
    // definite, so the block stays possible (with the field set).
    let mut f = Fake::python();
    let holder = f.block(0x1000, 64);
    let o = f.py_object(0x2000, 64, 16, 1, STATIC_TYPE);
    f.set(holder + 8, o);
    let out = f.run_roots(&[holder + 8]);
    assert_eq!(
        out,
        vec![
            possible(),
            Outcome {
                heuristic: Some(Heuristic::Python),
                ..possible()
            }
        ]
    );
}

#[test]
fn memchecks_heuristics_come_first() {
    // A block that length64 accepts at +8 is never asked about python; and
    // at +16 a block that is a python object wins over nothing.
    let mut f = Fake::python();
    let a = f.block(0x1000, 40);
    f.set(a, 32);
    assert_eq!(f.run_roots(&[a + 8]), vec![reach_via(Heuristic::Length64)]);
}

#[test]
fn python_managed_dict_values_are_reachable_via_python() {
    // new_values(11): prefix round_up(13, 8) = 16, block 16 + 88 = 104,
    // the byte before the values (offset 15) holds 16.
    let mut f = Fake::python();
    let v = f.block(0x1000, 104);
    f.set(v + 8, 16 << 56);
    assert_eq!(f.run_roots(&[v + 16]), vec![reach_via(Heuristic::Python)]);

    // new_values(29): prefix 32, block 264.
    let mut f = Fake::python();
    let v = f.block(0x1000, 264);
    f.set(v + 24, 32 << 56);
    assert_eq!(f.run_roots(&[v + 32]), vec![reach_via(Heuristic::Python)]);

    // new_values(6): prefix 8, block 56.
    let mut f = Fake::python();
    let v = f.block(0x1000, 56);
    f.set(v, 8 << 56 | 0x1234);
    assert_eq!(f.run_roots(&[v + 8]), vec![reach_via(Heuristic::Python)]);

    // Off without PyType_Type.
    let mut f = Fake::python();
    f.options = Options::default();
    let v = f.block(0x1000, 104);
    f.set(v + 8, 16 << 56);
    assert_eq!(f.run_roots(&[v + 16]), vec![possible()]);
}

#[test]
fn python_dict_values_need_the_prefix_byte_and_the_size() {
    // The prefix byte is wrong.
    let mut f = Fake::python();
    let v = f.block(0x1000, 104);
    f.set(v + 8, 8 << 56);
    assert_eq!(f.run_roots(&[v + 16]), vec![possible()]);

    // The size does not fit the prefix: 16 + 8 * 20 = 176 would need a
    // prefix of round_up(22, 8) = 24.
    let mut f = Fake::python();
    let v = f.block(0x1000, 176);
    f.set(v + 8, 16 << 56);
    assert_eq!(f.run_roots(&[v + 16]), vec![possible()]);

    // Not a whole number of slots after the prefix.
    let mut f = Fake::python();
    let v = f.block(0x1000, 100);
    f.set(v + 8, 16 << 56);
    assert_eq!(f.run_roots(&[v + 16]), vec![possible()]);

    // The prefix byte unreadable.
    let mut f = Fake::python();
    let v = f.block(0x1000, 104);
    f.words.remove(&(v + 8));
    assert_eq!(f.run_roots(&[v + 16]), vec![possible()]);
}
