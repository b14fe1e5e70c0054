//! The cached CFI unwinder (x86_64 Linux, glibc >= 2.35).
//!
//! Hit path: for each return address, one or two relaxed atomic loads from [`TABLE`] (one cache
//! line), then one or two loads from the stack. Miss path: [`compute`] (`_dl_find_object` + `gimli` on `.eh_frame_hdr`),
//! which neither locks nor allocates, then one relaxed store.

use core::ffi::c_void;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};

use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, NativeEndian, Register, RegisterRule,
    UnwindContext, UnwindContextStorage, UnwindSection, UnwindTableRow, X86_64,
};

// ---------------------------------------------------------------------------------------------
// The rule and its packed form.

/// What to do with a frame, given its ip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rule {
    /// Step to the caller: CFA = (rbp if `cfa_rbp` else rsp) + `cfa_off`; return address at
    /// CFA - 8; caller's rbp at CFA - `rbp_back` if `rbp_back != 0`, else unchanged.
    Step {
        cfa_rbp: bool,
        cfa_off: usize,
        rbp_back: usize,
    },
    /// Outermost frame: the return address is undefined (`_start`, `clone3`) or there is no
    /// unwind information for this ip. The frame itself is reported; its caller is not.
    End,
    /// Not expressible as a `Step` (DWARF expression, signal trampoline, CFA based on another
    /// register, ...): the whole capture falls back to `_Unwind_Backtrace`.
    Unsupported,
}

// The rule cache: a global 2-way set-associative table of `AtomicU64` entries. An entry packs the
// tag of its ip together with the rule, so that a reader never sees a torn key/rule pair and no
// lock is needed. Entry layout (0 = empty):
//   bits  0..32  tag = ip >> SET_BITS (so ip must be < 2^47, the x86_64 user address space)
//   bit  32      valid
//   bits 33..35  kind: 0 step, 1 end, 2 unsupported
//   bit  35      CFA is rbp-based
//   bits 36..52  CFA offset / 8            (16 bits: up to 512 KiB)
//   bits 52..64  rbp_back / 8, 0 = rbp unchanged (12 bits: up to 32 KiB)
const SET_BITS: u32 = 15;
const SETS: usize = 1 << SET_BITS;
const WAYS: usize = 2;
const TAG_MASK: u64 = (1 << 33) - 1; // tag + valid bit
const VALID: u64 = 1 << 32;
const KIND_SHIFT: u32 = 33;
const KIND_END: u64 = 1;
const KIND_UNSUPPORTED: u64 = 2;
const CFA_RBP: u64 = 1 << 35;
const CFA_OFF_SHIFT: u32 = 36;
const CFA_OFF_MAX: usize = (1 << 16) - 1;
const RBP_BACK_SHIFT: u32 = 52;
const RBP_BACK_MAX: usize = (1 << 12) - 1;

/// 64 Ki rules (512 KiB of zeroed BSS; only touched pages cost memory). A set's two entries
/// share a cache line.
static TABLE: [AtomicU64; SETS * WAYS] = [const { AtomicU64::new(0) }; SETS * WAYS];

/// Index of the first entry of `ip`'s set. (The tag and the set index together determine ip.)
#[inline(always)]
fn set_of(ip: usize) -> usize {
    ((ip ^ (ip >> SET_BITS)) & (SETS - 1)) * WAYS
}

/// Tag + valid bit for `ip`. For ip >= 2^47 the result is >= 2^33 and so never matches an entry.
#[inline(always)]
fn key(ip: usize) -> u64 {
    ((ip as u64) >> SET_BITS) + VALID
}

#[inline(always)]
fn decode(e: u64) -> Rule {
    match (e >> KIND_SHIFT) & 3 {
        0 => Rule::Step {
            cfa_rbp: e & CFA_RBP != 0,
            cfa_off: (((e >> CFA_OFF_SHIFT) & CFA_OFF_MAX as u64) << 3) as usize,
            rbp_back: ((e >> RBP_BACK_SHIFT) << 3) as usize,
        },
        KIND_END => Rule::End,
        _ => Rule::Unsupported,
    }
}

/// Packs `rule` for `ip`, or `None` if it does not fit (it is then recomputed on every use).
fn encode(ip: usize, rule: Rule) -> Option<u64> {
    if (ip as u64) >> 47 != 0 {
        return None;
    }
    let k = key(ip);
    Some(match rule {
        Rule::Step {
            cfa_rbp,
            cfa_off,
            rbp_back,
        } => {
            if cfa_off % 8 != 0 || cfa_off / 8 > CFA_OFF_MAX {
                return None;
            }
            if rbp_back % 8 != 0 || rbp_back / 8 > RBP_BACK_MAX {
                return None;
            }
            k | if cfa_rbp { CFA_RBP } else { 0 }
                | ((cfa_off / 8) as u64) << CFA_OFF_SHIFT
                | ((rbp_back / 8) as u64) << RBP_BACK_SHIFT
        }
        Rule::End => k | KIND_END << KIND_SHIFT,
        Rule::Unsupported => k | KIND_UNSUPPORTED << KIND_SHIFT,
    })
}

#[inline(always)]
fn lookup(ip: usize) -> Rule {
    let set = set_of(ip);
    let k = key(ip);
    let e = TABLE[set].load(Relaxed);
    if e & TAG_MASK == k {
        return decode(e);
    }
    let e = TABLE[set + 1].load(Relaxed);
    if e & TAG_MASK == k {
        return decode(e);
    }
    miss(ip)
}

#[cold]
#[inline(never)]
pub(crate) fn miss(ip: usize) -> Rule {
    let rule = compute(ip);
    if let Some(e) = encode(ip, rule) {
        let set = set_of(ip);
        // An empty way if there is one, else a pseudo-random victim (the low bit of the time
        // stamp counter: cheap, and unrelated to ip so two ips cannot keep evicting each other).
        let way = if TABLE[set].load(Relaxed) == 0 {
            0
        } else if TABLE[set + 1].load(Relaxed) == 0 {
            1
        } else {
            // SAFETY: rdtsc is available on every x86_64 CPU and has no memory effects.
            (unsafe { core::arch::x86_64::_rdtsc() } & 1) as usize
        };
        TABLE[set + way].store(e, Relaxed);
    }
    rule
}

// ---------------------------------------------------------------------------------------------
// The walk.

/// Largest accepted distance between consecutive CFAs.
const MAX_FRAME: usize = 256 << 20;

/// Register state of a frame during the walk: its ip, rsp (the CFA of its callee), rbp; plus how
/// the callee's rule made it: rbp read at `sp - bp_back` (0: copied unchanged), and whether that
/// rule computed the CFA from the callee's rbp. `bp_live` (kept by the memo, see [`relive`]):
/// whether any later step reads this rbp before a frame restores the caller's from the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    ip: usize,
    sp: usize,
    bp: usize,
    bp_back: u32,
    callee_read_bp: bool,
    bp_live: bool,
}

enum Step {
    Next(State),
    Stop,
    Fallback,
}

/// One unwinding step: the state of the caller of the frame in state `st`.
///
/// # Safety
///
/// `st` must be the true register state of a live frame of the current thread (see [`unwind`]).
#[inline(always)]
unsafe fn step(st: &State) -> Step {
    let (cfa_rbp, cfa_off, rbp_back) = match lookup(st.ip) {
        Rule::Step {
            cfa_rbp,
            cfa_off,
            rbp_back,
        } => (cfa_rbp, cfa_off, rbp_back),
        Rule::End => return Step::Stop,
        Rule::Unsupported => return Step::Fallback,
    };
    let cfa = if cfa_rbp { st.bp } else { st.sp }.wrapping_add(cfa_off);
    // The return address slot [cfa - 8, cfa) must lie above the current frame's sp, and the
    // frame must be of sane size; otherwise (corrupt rbp, bad CFI) stop here.
    if cfa.wrapping_sub(st.sp).wrapping_sub(8) > MAX_FRAME - 8 {
        return Step::Stop;
    }
    let bp = if rbp_back != 0 {
        // SAFETY: CFI says the caller's rbp was saved in this frame, at cfa - rbp_back, i.e. in
        // live stack memory of the current thread.
        unsafe { core::ptr::read_volatile((cfa - rbp_back) as *const usize) }
    } else {
        st.bp
    };
    // SAFETY: the return address of this frame is at cfa - 8, which is >= sp (checked above)
    // and so in live stack memory of the current thread.
    let ip = unsafe { core::ptr::read_volatile((cfa - 8) as *const usize) };
    if ip == 0 {
        return Step::Stop;
    }
    Step::Next(State {
        ip,
        sp: cfa,
        bp,
        bp_back: rbp_back as u32,
        callee_read_bp: cfa_rbp,
        bp_live: true,
    })
}

// Per-thread memo of the previous walk.
//
// Consecutive captures on a thread share most of their outer frames. The memo keeps the states
// of the last walk; a new walk that reaches a state (ip, sp, bp) equal to a memorised one does not
// recompute the frames above it: it only checks that the stack slots the walk would read (return
// address at sp - 8, saved rbp at sp - bp_back) still hold the memorised values. An rbp that no
// later step reads (code without frame pointers uses rbp as a plain register) need not be equal,
// neither in the state matched nor in a slot checked: it cannot change the walk. The walk is a
// deterministic function of those slots and of the rules (which change only with `invalidate`,
// which bumps GENERATION), so the replay yields exactly what a full walk would. The checks are
// independent loads at known addresses instead of a chain of dependent loads and table lookups,
// and they are the very loads the full walk would do: equal state, so equal rule, so equal CFA.

/// States kept per thread (4 KiB of TLS). Frames beyond are walked normally every time.
const MEMO_CAP: usize = 128;
const MEMO_MASK: usize = MEMO_CAP - 1;
/// How deep a new walk may be when it meets the memo (2 KiB of stack for its states until then).
const SCRATCH_CAP: usize = 64;

/// Ring of states: logical index t (0 = innermost, capture's own frame) lives at
/// `recs[(base + t) % MEMO_CAP]`, so that a new walk that matches at a different depth re-uses
/// the memorised outer part in place by moving `base`.
struct Memo {
    generation: u32,
    base: usize,
    len: usize,
    recs: [State; MEMO_CAP],
}

impl Memo {
    #[inline(always)]
    fn at(&self, t: usize) -> State {
        self.recs[(self.base + t) & MEMO_MASK]
    }

    #[inline(always)]
    fn set(&mut self, t: usize, st: State) {
        self.recs[(self.base + t) & MEMO_MASK] = st;
    }
}

const ZERO_STATE: State = State {
    ip: 0,
    sp: 0,
    bp: 0,
    bp_back: 0,
    callee_read_bp: false,
    bp_live: true,
};

/// The memo and its lock-free "in use" flag, kept apart so that a signal handler checking the
/// flag never aliases a `&mut Memo` held by the walk it interrupted.
struct MemoSlot {
    /// Set while a walk uses `memo`: a (signal handler) walk that finds it set leaves it alone.
    busy: core::cell::Cell<bool>,
    memo: core::cell::UnsafeCell<Memo>,
}

thread_local! {
    // No Drop, const initializer: a plain `#[thread_local]` static, no registration, no lazy init.
    static MEMO: MemoSlot = const {
        MemoSlot {
            busy: core::cell::Cell::new(false),
            memo: core::cell::UnsafeCell::new(Memo {
                generation: 0,
                base: 0,
                len: 0,
                recs: [ZERO_STATE; MEMO_CAP],
            }),
        }
    };
}

/// Bumped by [`invalidate`]; memos of another generation are discarded.
static GENERATION: AtomicU32 = AtomicU32::new(0);

pub(crate) fn invalidate() {
    for e in TABLE.iter() {
        e.store(0, Relaxed);
    }
    GENERATION.fetch_add(1, Relaxed);
}

/// Unwinds from the register state (`ip`, `sp`, `bp`) of the calling frame, recording the return
/// addresses of that frame and its callers (not `ip` itself). `None`: a frame needs the fallback.
///
/// # Safety
///
/// (`ip`, `sp`, `bp`) must be the register state of a live frame of the current thread at an
/// instruction boundary just before `ip` (as read by `lea [rip]`), and the stack above it must be
/// described by correct CFI.
#[inline(always)]
pub(crate) unsafe fn unwind(ip: usize, sp: usize, bp: usize, buf: &mut [usize]) -> Option<usize> {
    let st = State {
        ip,
        sp,
        bp,
        bp_back: 0,
        callee_read_bp: false,
        bp_live: true,
    };
    MEMO.with(|slot| {
        if slot.busy.get() {
            // We interrupted a walk of this thread (we run in a signal handler): it owns the memo.
            #[cfg(test)]
            crate::tests::note(crate::tests::Event::Busy);
            // SAFETY: our contract.
            return unsafe { walk(None, 0, st, buf, 0) };
        }
        slot.busy.set(true);
        // The flag must be set before the memo is touched, as seen from a signal handler.
        core::sync::atomic::compiler_fence(SeqCst);
        // SAFETY: `busy` was clear, so no other reference to the memo exists: it is thread-local,
        // only this function touches it, and a signal handler running meanwhile sees `busy` set.
        let memo = unsafe { &mut *slot.memo.get() };
        // SAFETY: our contract.
        let r = unsafe { walk_memo(memo, st, buf) };
        relive(memo);
        core::sync::atomic::compiler_fence(SeqCst);
        slot.busy.set(false);
        r
    })
}

/// Walks from `st`, looking for a memorised state to replay from; memorises the new walk (its
/// exact states, and which of their rbp values matter).
///
/// # Safety
///
/// As for [`unwind`].
#[inline(always)]
unsafe fn walk_memo(memo: &mut Memo, mut st: State, buf: &mut [usize]) -> Option<usize> {
    let generation = GENERATION.load(Relaxed);
    if memo.generation != generation {
        memo.generation = generation;
        memo.len = 0;
    }
    // States of this walk until it meets the memo (typically a few: the frames that differ).
    let mut scratch = [core::mem::MaybeUninit::<State>::uninit(); SCRATCH_CAP];
    let mut j = 0; // index of `st`, and number of return addresses written
    let mut c = 0; // memo cursor: memo states below c have a lower sp than `st`
    loop {
        while c < memo.len && memo.at(c).sp < st.sp {
            c += 1;
        }
        if c < memo.len && same_frame(&memo.at(c), &st) {
            #[cfg(test)]
            crate::tests::note(crate::tests::Event::Matched);
            // SAFETY: scratch[..j] were written below; our contract for the rest.
            return unsafe { replay(memo, c, &scratch[..j], st, buf) };
        }
        if j == SCRATCH_CAP {
            // No match among the innermost SCRATCH_CAP frames: start a new memo, go on plainly.
            commit(memo, &scratch);
            memo.set(j, st);
            memo.len = j + 1;
            // SAFETY: our contract; memo states ..=j are this walk's.
            return unsafe { walk(Some(memo), j, st, buf, j) };
        }
        scratch[j].write(st);
        if j == buf.len() {
            commit(memo, &scratch[..=j]);
            return Some(j);
        }
        // SAFETY: `st` is a true state (our contract, then induction).
        match unsafe { step(&st) } {
            Step::Next(next) => {
                buf[j] = next.ip;
                j += 1;
                st = next;
            }
            Step::Stop => {
                commit(memo, &scratch[..=j]);
                return Some(j);
            }
            Step::Fallback => {
                memo.len = 0;
                return None;
            }
        }
    }
}

/// Memorised state `m` and the walk's state `b` are the same frame in a register state that
/// leads to the same walk: equal ip and sp, and equal rbp unless no later step of `m`'s walk
/// reads it. (Code without frame pointers leaves whatever it computed in rbp, different on every
/// call; comparing it anyway made the memo match only in the outermost few frames.)
#[inline(always)]
fn same_frame(m: &State, b: &State) -> bool {
    m.sp == b.sp && m.ip == b.ip && (m.bp == b.bp || !m.bp_live)
}

/// Recomputes every memo state's `bp_live`, from the outermost in. A state's rbp is read by its
/// own frame's step if that rule computes the CFA from rbp (recorded in the next state as
/// `callee_read_bp`), and it is gone once that step restores the caller's rbp from the stack
/// (`bp_back != 0`); otherwise it passes unchanged to the next state. The last state's step is
/// unknown: live.
#[inline(always)]
fn relive(memo: &mut Memo) {
    let mut live = true;
    for t in (0..memo.len).rev() {
        let st = &mut memo.recs[(memo.base + t) & MEMO_MASK];
        st.bp_live = live;
        live = st.callee_read_bp || (st.bp_back == 0 && live);
    }
}

/// Makes `states` (all initialised) the memo.
#[inline(never)]
fn commit(memo: &mut Memo, states: &[core::mem::MaybeUninit<State>]) {
    memo.base = 0;
    for (t, st) in states.iter().enumerate() {
        // SAFETY: the caller passes initialised states only.
        memo.recs[t] = unsafe { st.assume_init() };
    }
    memo.len = states.len();
}

/// The walk is in state `cur`, its state number `j` after the (initialised) states `fresh`
/// (`fresh.len() == j`, and `j` return addresses written), and `cur` matches `memo.at(i)`.
/// Re-bases the memo so that the memorised states from `i` on become states `j..`, checks them
/// against the stack and replays them into `buf`; continues with a normal walk where a check
/// fails or the memo ends. The memo ends up holding this walk's true states: where rbp does not
/// matter the memorised value may differ from the true one, and it is overwritten, so that no
/// later match can rely on a value this thread's registers never held.
///
/// # Safety
///
/// As for [`unwind`]; the memo's states from `i` on must come from earlier walks of this thread in
/// this generation (so each follows from the previous one by [`step`] given the stack slots).
#[inline(always)]
unsafe fn replay(
    memo: &mut Memo,
    i: usize,
    fresh: &[core::mem::MaybeUninit<State>],
    cur: State,
    buf: &mut [usize],
) -> Option<usize> {
    let j = fresh.len();
    let len = (j + memo.len - i).min(MEMO_CAP);
    memo.base = (memo.base + i).wrapping_sub(j) & MEMO_MASK;
    for (t, st) in fresh.iter().enumerate() {
        // SAFETY: the caller passes initialised states only.
        memo.set(t, unsafe { st.assume_init() });
    }
    let mut bp = cur.bp;
    memo.set(j, cur);
    memo.len = len;
    // State t is verified and its return address written (for t > 0): `t` addresses written.
    let mut t = j;
    for out in buf[j..].iter_mut() {
        if t + 1 == len {
            break;
        }
        let mut next = memo.at(t + 1);
        // SAFETY: state t is the true current state up to an rbp no later step reads, so next.sp
        // is the CFA its rule yields (the memo says so), and both slots lie in [state t's sp,
        // next.sp): live stack memory.
        if unsafe { core::ptr::read_volatile((next.sp - 8) as *const usize) } != next.ip {
            #[cfg(test)]
            crate::tests::note(crate::tests::Event::CheckFailed);
            break;
        }
        if next.bp_back != 0 {
            // SAFETY: as above.
            let saved = unsafe {
                core::ptr::read_volatile((next.sp - next.bp_back as usize) as *const usize)
            };
            if saved != next.bp {
                // A caller's rbp that no later step reads may differ (frames without frame
                // pointers below a frame that saved it).
                if next.bp_live {
                    #[cfg(test)]
                    crate::tests::note(crate::tests::Event::CheckFailed);
                    break;
                }
                next.bp = saved;
                memo.set(t + 1, next);
            }
            bp = saved;
        } else if next.bp != bp {
            next.bp = bp;
            memo.set(t + 1, next);
        }
        #[cfg(test)]
        crate::tests::note(crate::tests::Event::Replayed);
        *out = next.ip;
        t += 1;
    }
    let n = t;
    memo.len = t + 1;
    if n == buf.len() {
        return Some(n);
    }
    let st = memo.at(t);
    // SAFETY: memo state t is the true current state (its rbp made true above).
    unsafe { walk(Some(memo), t, st, buf, n) }
}

/// Plain walk from state number `t` (`st`), `n` return addresses already written; memorises the
/// states it reaches if given a memo whose states `..=t` are valid.
///
/// # Safety
///
/// As for [`unwind`].
#[inline(always)]
unsafe fn walk(
    mut memo: Option<&mut Memo>,
    mut t: usize,
    mut st: State,
    buf: &mut [usize],
    mut n: usize,
) -> Option<usize> {
    while n < buf.len() {
        // SAFETY: `st` is a true state (our contract, then induction).
        match unsafe { step(&st) } {
            Step::Next(next) => {
                buf[n] = next.ip;
                n += 1;
                t += 1;
                if let Some(m) = memo.as_deref_mut() {
                    if t < MEMO_CAP {
                        m.set(t, next);
                        m.len = t + 1;
                    }
                }
                st = next;
            }
            Step::Stop => break,
            Step::Fallback => {
                if let Some(m) = memo {
                    m.len = 0;
                }
                return None;
            }
        }
    }
    Some(n)
}

// ---------------------------------------------------------------------------------------------
// The miss path.

/// `struct dl_find_object` of glibc >= 2.35 on x86_64 (`<dlfcn.h>`, `bits/dl_find_object.h`:
/// no `dlfo_eh_dbase`, no `dlfo_eh_count` on x86_64).
#[repr(C)]
struct DlFindObject {
    dlfo_flags: u64,
    dlfo_map_start: *mut c_void,
    dlfo_map_end: *mut c_void,
    dlfo_link_map: *mut c_void,
    dlfo_eh_frame: *mut c_void,
    reserved: [u64; 7],
}

extern "C" {
    /// glibc >= 2.35: lock-free, async-signal-safe lookup of the object containing `address`.
    fn _dl_find_object(address: *mut c_void, result: *mut DlFindObject) -> i32;
}

/// Register-rule storage for `gimli` without heap allocation. 32 rules is plenty on x86_64
/// (17 integer columns); a program needing more is reported as unsupported (fallback).
pub(crate) struct SmallStore;

impl<T: gimli::ReaderOffset> UnwindContextStorage<T> for SmallStore {
    type Rules = [(Register, RegisterRule<T>); 32];
    type Stack = [UnwindTableRow<T, Self>; 4];
}

/// Computes the rule for return address `ip` (the row for `ip - 1`, like libgcc).
pub(crate) fn compute(ip: usize) -> Rule {
    if ip == 0 {
        return Rule::End;
    }
    let pc = ip - 1;
    let mut dlfo = DlFindObject {
        dlfo_flags: 0,
        dlfo_map_start: core::ptr::null_mut(),
        dlfo_map_end: core::ptr::null_mut(),
        dlfo_link_map: core::ptr::null_mut(),
        dlfo_eh_frame: core::ptr::null_mut(),
        reserved: [0; 7],
    };
    // SAFETY: `dlfo` is a correctly laid out, writable `struct dl_find_object`.
    if unsafe { _dl_find_object(pc as *mut c_void, &mut dlfo) } != 0 {
        // Not in any loaded object (JIT code, or garbage): libgcc stops here too, unless the
        // code registered frames with `__register_frame`, which we do not support.
        return Rule::End;
    }
    let start = dlfo.dlfo_map_start as usize;
    let end = dlfo.dlfo_map_end as usize;
    let hdr = dlfo.dlfo_eh_frame as usize;
    if hdr == 0 {
        return no_fde(pc, start, end);
    }
    if hdr < start || hdr >= end {
        return Rule::Unsupported;
    }
    // SAFETY: .eh_frame_hdr lies inside the object's mapping [start, end), which stays mapped
    // while code of the object is on the stack; gimli reads only what the header describes.
    let hdr_data = unsafe { core::slice::from_raw_parts(hdr as *const u8, end - hdr) };
    match find_rule(hdr, hdr_data, start, end, pc) {
        Ok(rule) => rule,
        Err(gimli::Error::NoUnwindInfoForAddress) => no_fde(pc, start, end),
        Err(_) => Rule::Unsupported,
    }
}

/// No FDE covers `pc`: libgcc's x86_64 Linux fallback recognises a signal-return trampoline by
/// its code (`mov $15, %rax; syscall`); anything else ends the stack.
fn no_fde(pc: usize, start: usize, end: usize) -> Rule {
    const SIGRETURN: [u8; 9] = [0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];
    let ip = pc + 1;
    if ip >= start && ip + SIGRETURN.len() <= end {
        // SAFETY: the 9 bytes lie inside the mapping of the object that contains ip.
        let code = unsafe { core::ptr::read_unaligned(ip as *const [u8; 9]) };
        if code == SIGRETURN {
            return Rule::Unsupported;
        }
    }
    Rule::End
}

fn find_rule(
    hdr: usize,
    hdr_data: &[u8],
    start: usize,
    end: usize,
    pc: usize,
) -> gimli::Result<Rule> {
    let bases = BaseAddresses::default().set_eh_frame_hdr(hdr as u64);
    let parsed = EhFrameHdr::new(hdr_data, NativeEndian).parse(&bases, 8)?;
    let eh_frame_addr = parsed.eh_frame_ptr().direct()? as usize;
    if eh_frame_addr < start || eh_frame_addr >= end {
        return Ok(Rule::Unsupported);
    }
    // SAFETY: .eh_frame lies inside the object's mapping, like .eh_frame_hdr above.
    let eh_data =
        unsafe { core::slice::from_raw_parts(eh_frame_addr as *const u8, end - eh_frame_addr) };
    let eh_frame = EhFrame::new(eh_data, NativeEndian);
    let bases = bases.set_eh_frame(eh_frame_addr as u64);
    let Some(table) = parsed.table() else {
        // No binary search table (very old linkers): leave it to libgcc.
        return Ok(Rule::Unsupported);
    };
    let fde = table.fde_for_address(&eh_frame, &bases, pc as u64, EhFrame::cie_from_offset)?;
    if fde.cie().is_signal_trampoline() || fde.cie().return_address_register() != X86_64::RA {
        return Ok(Rule::Unsupported);
    }
    let mut ctx = UnwindContext::<usize, SmallStore>::new_in();
    let row = fde.unwind_info_for_address(&eh_frame, &bases, &mut ctx, pc as u64)?;
    Ok(rule_of_row(row))
}

fn rule_of_row<S: UnwindContextStorage<usize>>(row: &UnwindTableRow<usize, S>) -> Rule {
    let (cfa_rbp, cfa_off) = match *row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } if offset >= 0 => {
            if register == X86_64::RSP {
                (false, offset as usize)
            } else if register == X86_64::RBP {
                (true, offset as usize)
            } else {
                return Rule::Unsupported;
            }
        }
        _ => return Rule::Unsupported,
    };
    match row.register(X86_64::RA) {
        Some(RegisterRule::Offset(-8)) => {}
        Some(RegisterRule::Undefined) => return Rule::End,
        _ => return Rule::Unsupported,
    }
    let rbp_back = match row.register(X86_64::RBP) {
        // libgcc treats "undefined" like "same value" for every register but the RA column.
        None | Some(RegisterRule::SameValue) | Some(RegisterRule::Undefined) => 0,
        // (Bounded as a frame is, so that a walk state keeps it in 32 bits.)
        Some(RegisterRule::Offset(off)) if off < 0 && off.unsigned_abs() <= MAX_FRAME as u64 => {
            off.unsigned_abs() as usize
        }
        _ => return Rule::Unsupported,
    };
    Rule::Step {
        cfa_rbp,
        cfa_off,
        rbp_back,
    }
}

#[cfg(test)]
pub(crate) fn cached(ip: usize) -> Option<Rule> {
    let set = set_of(ip);
    TABLE[set..set + WAYS]
        .iter()
        .map(|e| e.load(Relaxed))
        .find(|e| e & TAG_MASK == key(ip))
        .map(decode)
}

#[cfg(test)]
pub(crate) fn roundtrip(ip: usize, rule: Rule) -> Option<Rule> {
    encode(ip, rule).map(decode)
}
