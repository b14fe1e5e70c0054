//! Stopping the world for the exit scan: every thread but the exiting one and
//! the writer is sent a real-time signal; its handler saves the registers and
//! parks. A thread that is inside one of our hooks when the signal lands (it
//! may hold the allocator's lock, or a half-pushed queue slot) parks as soon
//! as it leaves the hook instead (see `guard.rs`).

use crate::guard;
use crate::writer;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const MAX_PARKED: usize = 1024;

/// What a stopped thread left for the scanner.
#[derive(Clone, Copy)]
pub struct Parked {
    pub tid: u32,
    pub sp: u64,
    pub fs: u64,
    pub regs: [u64; 18],
}

static mut PARKED: [Parked; MAX_PARKED] = [Parked {
    tid: 0,
    sp: 0,
    fs: 0,
    regs: [0; 18],
}; MAX_PARKED];
static NPARKED: AtomicUsize = AtomicUsize::new(0);
/// Threads that reached a parking point (counts also those beyond MAX_PARKED).
static ARRIVED: AtomicU32 = AtomicU32::new(0);
/// Futex word: becomes 1 to wake parked threads (never, in practice: see above).
static RELEASE: AtomicU32 = AtomicU32::new(0);

/// The thread pointer (%fs base): glibc's TCB, with static TLS just below it.
#[inline(always)]
pub fn thread_pointer() -> u64 {
    let tp: u64;
    // SAFETY: on x86_64 glibc, %fs:0 holds the TCB's own address (tcbhead_t.tcb).
    unsafe {
        core::arch::asm!("mov {}, fs:0", out(reg) tp, options(nostack, readonly, preserves_flags))
    };
    tp
}

pub fn gettid() -> u32 {
    // SAFETY: gettid cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

fn park(sp: u64, regs: [u64; 18]) {
    let i = NPARKED.fetch_add(1, Ordering::AcqRel);
    if i < MAX_PARKED {
        // SAFETY: slot i was claimed by the fetch_add above; the scanner reads
        // it only after ARRIVED says this thread is done writing.
        unsafe {
            core::ptr::addr_of_mut!(PARKED[i]).write(Parked {
                tid: gettid(),
                sp,
                fs: thread_pointer(),
                regs,
            });
        }
    }
    ARRIVED.fetch_add(1, Ordering::Release);
    while RELEASE.load(Ordering::Acquire) == 0 {
        // SAFETY: futex wait on our own aligned static word, async-signal-safe.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                RELEASE.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                0,
                core::ptr::null::<libc::timespec>(),
            );
        }
    }
}

/// Parks the current thread outside any hook (called from Guard::drop when a
/// stop was deferred). Callee-saved registers may hold the program's pointers:
/// they are saved with the rest.
#[inline(never)]
pub fn park_here() {
    let mut regs = [0u64; 18];
    let sp: u64;
    // SAFETY: only reads registers into locals.
    unsafe {
        core::arch::asm!(
            "mov {0}, rbx", "mov {1}, rbp", "mov {2}, r12", "mov {3}, r13", "mov {4}, r14", "mov {5}, r15", "mov {6}, rsp",
            out(reg) regs[0], out(reg) regs[1], out(reg) regs[2], out(reg) regs[3], out(reg) regs[4], out(reg) regs[5],
            out(reg) sp,
            options(nostack, nomem, preserves_flags)
        );
    }
    park(sp, regs);
}

extern "C" fn on_stop(_sig: c_int, _info: *mut libc::siginfo_t, uc: *mut c_void) {
    if guard::defer_stop_if_busy() {
        return;
    }
    // SAFETY: the kernel passes a valid ucontext_t to an SA_SIGINFO handler.
    let g = unsafe { &(*(uc as *const libc::ucontext_t)).uc_mcontext.gregs };
    let mut regs = [0u64; 18];
    // General registers r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx (REG_R8 = 0 .. REG_RCX = 14).
    for (i, r) in regs.iter_mut().enumerate().take(15) {
        *r = g[i] as u64;
    }
    // The interrupted function's red zone lies just below its stack pointer.
    park((g[libc::REG_RSP as usize] as u64).saturating_sub(128), regs);
}

fn thread_ids() -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

fn stop_signal() -> c_int {
    libc::SIGRTMAX() - 3
}

/// Stops every thread but ourselves and the writer; returns (stopped, missed).
pub fn stop_world(me: u32) -> (u32, u32, Vec<Parked>) {
    let writer = writer::WRITER_TID.load(Ordering::Relaxed);
    // SAFETY: a plain SA_SIGINFO handler for a real-time signal the program is
    // unlikely to use; it is never restored because the process is ending.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_stop as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigfillset(&mut sa.sa_mask);
        libc::sigaction(stop_signal(), &sa, core::ptr::null_mut());
    }
    let pid = std::process::id() as i32;
    let mut signalled: Vec<u32> = Vec::new();
    let mut unstoppable: Vec<u32> = Vec::new();
    // Threads that block our signal for now: a thread being started has
    // every signal blocked until glibc's start_thread unblocks them (a
    // `main` that exits right after pthread_create finds it so), which is
    // not the sigwait pattern. They get a moment to unblock it.
    let mut waiting: Vec<u32> = Vec::new();
    let patience = Instant::now() + Duration::from_millis(50);
    // Threads may be created while we stop others: look again until no new ones.
    for _ in 0..64 {
        let new: Vec<u32> = thread_ids()
            .into_iter()
            .filter(|&t| {
                t != me && t != writer && !signalled.contains(&t) && !unstoppable.contains(&t)
            })
            .collect();
        if new.is_empty() {
            break;
        }
        let mut sent = false;
        for &t in &new {
            if blocks_stop_signal(t) {
                if Instant::now() < patience {
                    if !waiting.contains(&t) {
                        waiting.push(t);
                    }
                } else {
                    // It would never park: do not wait for it (see below).
                    unstoppable.push(t);
                }
                continue;
            }
            waiting.retain(|&w| w != t);
            // SAFETY: tgkill to a thread of our own process.
            if unsafe { libc::syscall(libc::SYS_tgkill, pid, t as i32, stop_signal()) } == 0 {
                signalled.push(t);
                sent = true;
            }
        }
        waiting.retain(|w| !unstoppable.contains(w));
        let deadline = Instant::now() + Duration::from_secs(1);
        while sent
            && (ARRIVED.load(Ordering::Acquire) as usize) < signalled.len()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        if !waiting.is_empty() {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    unstoppable.extend(waiting);
    let arrived = ARRIVED.load(Ordering::Acquire);
    // Threads that block our signal (the sigwait pattern) never park. Those
    // blocked in a system call still show their stack pointer: scan their
    // stacks as they stand (without registers) rather than lose track of them.
    let parked_tids: Vec<u32> = parked().iter().map(|p| p.tid).collect();
    let blocked: Vec<Parked> = signalled
        .iter()
        .chain(unstoppable.iter())
        .filter(|t| !parked_tids.contains(t))
        .filter_map(|&t| {
            blocked_stack_pointer(t).map(|sp| Parked {
                tid: t,
                sp,
                fs: 0,
                regs: [0; 18],
            })
        })
        .collect();
    let missed = ((signalled.len() + unstoppable.len()) as u32)
        .saturating_sub(arrived + blocked.len() as u32);
    (arrived, missed, blocked)
}

/// Whether a thread has our stop signal blocked (`SigBlk` in its status).
fn blocks_stop_signal(tid: u32) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")) else {
        return false;
    };
    let Some(mask) = text
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
    else {
        return false;
    };
    mask & (1u64 << (stop_signal() - 1)) != 0
}

/// The stack pointer of a thread blocked in the kernel, from
/// `/proc/self/task/TID/syscall` ("NR ARG1..ARG6 SP PC", or "-1 SP PC" when
/// blocked outside a system call; "running" when it is not blocked).
fn blocked_stack_pointer(tid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).ok()?;
    let fields: Vec<&str> = text.split_whitespace().collect();
    let sp = match *fields.first()? {
        "running" => return None,
        "-1" => fields.get(1)?,
        _ => fields.get(7)?,
    };
    u64::from_str_radix(sp.trim_start_matches("0x"), 16).ok()
}

/// The threads parked so far.
pub fn parked() -> Vec<Parked> {
    let n = NPARKED.load(Ordering::Acquire).min(MAX_PARKED);
    // SAFETY: slots below NPARKED were written before their thread arrived
    // (ARRIVED, acquire in stop_world), and are never written again.
    (0..n)
        .map(|i| unsafe { core::ptr::addr_of!(PARKED[i]).read() })
        .filter(|p| p.tid != 0)
        .collect()
}
