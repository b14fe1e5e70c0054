//! The event channel from every hooked thread to the writer thread.
//!
//! A bounded multi-producer, single-consumer ring (Vyukov's bounded queue) in
//! `.bss`, so it works from the very first allocation, before any constructor.
//! The position a producer claims with its CAS on `tail` is the event's place in
//! the history: a free is pushed before the real `free` and an allocation after
//! the real call returns, so an address handed from one thread to another is
//! always freed before it is allocated again in the queue's order.
//!
//! Unlike a general queue, the consumer can tell "empty" from "a producer has
//! claimed the next slot but not filled it yet"; after `fork` the child uses
//! that to keep what was complete and drop what a vanished thread left half done.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

/// One hooked call, or a control message. The meaning of `a`..`d` depends on `kind`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Event {
    pub kind: u32,
    pub tid: u32,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub d: u64,
}

pub mod kind {
    /// a = ptr, b = size, c = stack hash, d = AllocFn.
    pub const ALLOC: u32 = 1;
    /// a = ptr.
    pub const FREE: u32 = 2;
    /// The free half of a realloc: a = old ptr. The writer holds the block
    /// until the same thread's REALLOC_DONE or REALLOC_FAILED.
    pub const REALLOC_FREE: u32 = 3;
    /// a = new ptr, b = size, c = stack hash, d = AllocFn.
    pub const REALLOC_DONE: u32 = 4;
    /// The realloc failed: the old block is still live.
    pub const REALLOC_FAILED: u32 = 5;
    /// a = stack hash, b = depth, c = how many outer frames it shares with
    /// the last stack this thread defined; the other (inner) frames follow
    /// in STACK_FRAMES events of the same thread, three per event.
    pub const STACK_BEGIN: u32 = 6;
    pub const STACK_FRAMES: u32 = 7;
    /// a = addr, b = len, c = stack hash, d = prot << 32 | flags.
    pub const MMAP: u32 = 8;
    /// a = addr, b = len.
    pub const MUNMAP: u32 = 9;
    /// a = pointer to a leaked `Box<Vec<Module>>`: the module list changed.
    pub const MODULES: u32 = 10;
    /// Write everything so far; a = ticket to acknowledge.
    pub const FLUSH: u32 = 11;
    /// The process image ends: a = one of `end::*`, b = exit status; flush
    /// (and stop, but for an exec, which may fail).
    pub const END: u32 = 12;
    /// A Python code object seen for the first time: a = id, b = its
    /// address, c = first line | line table format << 32, d = name length |
    /// file name length << 16 | line table length << 32; the bytes (name,
    /// file name, line table) follow in PY_BYTES events of the same thread,
    /// 24 per event in a, b, c.
    pub const PY_CODE: u32 = 13;
    pub const PY_BYTES: u32 = 14;
}

/// How a process image ends (the `a` of an END event; see `EndReason`).
pub mod end {
    pub const EXIT: u64 = 0;
    pub const QUICK_EXIT: u64 = 1;
    pub const ABORT: u64 = 2;
    pub const EXEC: u64 = 3;
}

const CAPACITY: usize = 1 << 16;
const MASK: u64 = CAPACITY as u64 - 1;
/// How many pushes ahead a slot is prefetched.
const AHEAD: u64 = 8;

struct Slot {
    /// Stored relative to the slot index so that an all-zero `.bss` is the
    /// initial state: the slot's sequence is `seq + index`.
    seq: AtomicU64,
    ev: UnsafeCell<Event>,
}

#[repr(C, align(128))]
struct Padded(AtomicU64);

pub struct Queue {
    tail: Padded,
    head: Padded,
    slots: [Slot; CAPACITY],
}

// SAFETY: access to each slot's event is handed over by its sequence number
// with acquire/release, as in Vyukov's queue.
unsafe impl Sync for Queue {}

pub enum Pop {
    Event(Event),
    Empty,
    /// A producer claimed the next slot and has not filled it yet.
    Pending,
}

impl Queue {
    #[inline]
    fn seq(&self, pos: u64) -> u64 {
        let i = pos & MASK;
        self.slots[i as usize]
            .seq
            .load(Ordering::Acquire)
            .wrapping_add(i)
    }

    /// Fetches the slot of a later push: the writer touched it last, and
    /// bringing its line over from the other core is the cost of a push;
    /// fetched ahead, it overlaps with the program's work.
    #[inline(always)]
    fn prefetch(&self, pos: u64) {
        crate::prefetch(&self.slots[(pos & MASK) as usize]);
    }

    /// Pushes, or returns `false` when the queue is full.
    #[inline]
    pub fn try_push(&self, ev: &Event) -> bool {
        let mut pos = self.tail.0.load(Ordering::Relaxed);
        loop {
            let dif = self.seq(pos).wrapping_sub(pos) as i64;
            if dif == 0 {
                match self.tail.0.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let i = (pos & MASK) as usize;
                        let slot = &self.slots[i];
                        // SAFETY: the CAS gave this producer exclusive use of the slot
                        // until it publishes it with the store below.
                        unsafe { slot.ev.get().write(*ev) };
                        slot.seq
                            .store((pos + 1).wrapping_sub(i as u64), Ordering::Release);
                        self.prefetch(pos + AHEAD);
                        return true;
                    }
                    Err(p) => pos = p,
                }
            } else if dif < 0 {
                return false;
            } else {
                pos = self.tail.0.load(Ordering::Relaxed);
            }
        }
    }

    /// The kind and first word of the event `k` places after the next one to
    /// pop, if it is already published: the writer looks ahead to fetch
    /// what those events will touch. Only the writer may call this.
    #[inline]
    pub fn peek(&self, k: u64) -> Option<(u32, u64)> {
        let pos = self.head.0.load(Ordering::Relaxed) + k;
        if self.seq(pos) != pos + 1 {
            return None;
        }
        let slot = &self.slots[(pos & MASK) as usize];
        // SAFETY: the slot is published (acquire load of seq above) and stays
        // as it is until the writer, the only consumer, pops it.
        let ev = unsafe { &*slot.ev.get() };
        Some((ev.kind, ev.a))
    }

    /// Whether the writer is held up by the next slot: claimed by a producer
    /// and not yet filled. (A producer's view: it may be out of date.)
    pub fn held_up(&self) -> bool {
        let pos = self.head.0.load(Ordering::Relaxed);
        self.seq(pos) != pos + 1 && self.tail.0.load(Ordering::Relaxed) != pos
    }

    /// How many events the writer has taken so far (a producer's view).
    pub fn taken(&self) -> u64 {
        self.head.0.load(Ordering::Relaxed)
    }

    /// Only the writer (or a single-threaded fork child) may pop.
    #[inline]
    pub fn pop(&self) -> Pop {
        let pos = self.head.0.load(Ordering::Relaxed);
        let i = (pos & MASK) as usize;
        let slot = &self.slots[i];
        if self.seq(pos) == pos + 1 {
            // SAFETY: the producer published the slot (acquire load of seq above).
            let ev = unsafe { slot.ev.get().read() };
            slot.seq.store(
                (pos + CAPACITY as u64).wrapping_sub(i as u64),
                Ordering::Release,
            );
            self.head.0.store(pos + 1, Ordering::Relaxed);
            Pop::Event(ev)
        } else if self.tail.0.load(Ordering::Relaxed) == pos {
            Pop::Empty
        } else {
            Pop::Pending
        }
    }

    /// Back to the empty state. Only in a fork child, where no other thread exists.
    pub fn reset(&self) {
        for s in self.slots.iter() {
            s.seq.store(0, Ordering::Relaxed);
        }
        self.head.0.store(0, Ordering::Relaxed);
        self.tail.0.store(0, Ordering::Release);
    }
}

/// Zero-initialized, hence in `.bss`: usable before any code of ours has run.
pub static QUEUE: Queue = Queue {
    tail: Padded(AtomicU64::new(0)),
    head: Padded(AtomicU64::new(0)),
    slots: [const {
        Slot {
            seq: AtomicU64::new(0),
            ev: UnsafeCell::new(Event {
                kind: 0,
                tid: 0,
                a: 0,
                b: 0,
                c: 0,
                d: 0,
            }),
        }
    }; CAPACITY],
};
