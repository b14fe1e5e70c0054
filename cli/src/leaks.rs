//! Loss records: the blocks still live at the end, grouped as memcheck groups
//! them — by (leak kind, allocation stack) — with their direct and indirect
//! bytes, the LEAK SUMMARY, and what suppressions hid.
//!
//! Without an exit scan (the process did not exit normally) there are no leak
//! kinds: every live block is "never freed", grouped by stack alone.

use crate::model::Model;
use crate::stacks::Stacks;
use crate::symbolize::Frame;
use leakhunt_format::{AllocFn, LeakKind};
use std::collections::HashMap;

/// What a loss record is: one of memcheck's kinds, or "never freed" when the
/// trace has no scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    Leak(LeakKind),
    NeverFreed,
}

impl RecordKind {
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Leak(k) => k.name(),
            RecordKind::NeverFreed => "never_freed",
        }
    }
    pub fn describe(self) -> &'static str {
        match self {
            RecordKind::Leak(k) => k.describe(),
            RecordKind::NeverFreed => "never freed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LossRecord {
    pub kind: RecordKind,
    pub stack: u64,
    pub func: AllocFn,
    pub bytes: u64,
    pub blocks: u64,
    pub indirect_bytes: u64,
    pub indirect_blocks: u64,
    /// Name of the suppression that hides it, if one does.
    pub suppressed_by: Option<String>,
}

impl LossRecord {
    pub fn total_bytes(&self) -> u64 {
        self.bytes + self.indirect_bytes
    }
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Amount {
    pub bytes: u64,
    pub blocks: u64,
}

impl Amount {
    fn add(&mut self, bytes: u64, blocks: u64) {
        self.bytes += bytes;
        self.blocks += blocks;
    }
}

/// memcheck's interior-pointer heuristics, by the code the recorder writes,
/// then ours, which memcheck does not have: `python` (CPython objects after
/// their GC header) and `dtv` (glibc's thread vectors; see leakhunt-leakcheck).
pub const HEURISTICS: [&str; 6] = [
    "stdstring",
    "length64",
    "newarray",
    "multipleinheritance",
    "python",
    "dtv",
];

#[derive(Debug, Default)]
pub struct Analysis {
    pub scanned: bool,
    /// Every loss record, suppressed or not, largest (direct + indirect) first.
    pub records: Vec<LossRecord>,
    pub definitely_lost: Amount,
    pub indirectly_lost: Amount,
    pub possibly_lost: Amount,
    pub still_reachable: Amount,
    /// Still reachable only thanks to a heuristic, per heuristic.
    pub via_heuristic: [Amount; HEURISTICS.len()],
    pub suppressed: Amount,
    /// Of the suppressed, what the built-in list of runtime noise hid.
    pub builtin_hidden: Amount,
    pub never_freed: Amount,
}

impl Analysis {
    pub fn amount(&self, kind: LeakKind) -> Amount {
        match kind {
            LeakKind::DefinitelyLost => self.definitely_lost,
            LeakKind::IndirectlyLost => self.indirectly_lost,
            LeakKind::PossiblyLost => self.possibly_lost,
            LeakKind::StillReachable => self.still_reachable,
        }
    }
}

/// Decides whether a loss record is suppressed: the name of the suppression,
/// and whether it came from the built-in list.
pub trait Suppressor {
    fn check(&self, kind: LeakKind, alloc_fn: &str, frames: &[Frame]) -> Option<(String, bool)>;
}

pub fn analyze(model: &Model, stacks: &mut Stacks, supp: &dyn Suppressor) -> Analysis {
    let mut a = Analysis {
        scanned: model.scan.is_some(),
        ..Default::default()
    };
    let mut groups: HashMap<(RecordKind, u64, AllocFn), LossRecord> = HashMap::new();
    for (ptr, b) in &model.live {
        let (kind, heuristic, ib, iblocks) = match (&model.scan, model.verdicts.get(ptr)) {
            (None, _) => (RecordKind::NeverFreed, 0, 0, 0),
            (Some(_), None) => (RecordKind::Leak(LeakKind::StillReachable), 0, 0, 0),
            (Some(_), Some(v)) => (
                RecordKind::Leak(v.kind),
                v.heuristic,
                v.indirect_bytes,
                v.indirect_blocks,
            ),
        };
        let r = groups
            .entry((kind, b.stack, b.func))
            .or_insert_with(|| LossRecord {
                kind,
                stack: b.stack,
                func: b.func,
                bytes: 0,
                blocks: 0,
                indirect_bytes: 0,
                indirect_blocks: 0,
                suppressed_by: None,
            });
        r.bytes += b.size;
        r.blocks += 1;
        r.indirect_bytes += ib;
        r.indirect_blocks += iblocks;
        if heuristic > 0 && (heuristic as usize) <= HEURISTICS.len() {
            a.via_heuristic[heuristic as usize - 1].add(b.size, 1);
        }
    }
    let mut records: Vec<LossRecord> = groups.into_values().collect();
    for r in &mut records {
        let RecordKind::Leak(kind) = r.kind else {
            a.never_freed.add(r.bytes, r.blocks);
            continue;
        };
        let frames = stacks.frames(r.stack);
        match supp.check(kind, r.func.name(), &frames) {
            Some((name, builtin)) => {
                a.suppressed.add(r.bytes, r.blocks);
                if builtin {
                    a.builtin_hidden.add(r.bytes, r.blocks);
                }
                r.suppressed_by = Some(name);
            }
            None => match kind {
                LeakKind::DefinitelyLost => a.definitely_lost.add(r.bytes, r.blocks),
                LeakKind::IndirectlyLost => a.indirectly_lost.add(r.bytes, r.blocks),
                LeakKind::PossiblyLost => a.possibly_lost.add(r.bytes, r.blocks),
                LeakKind::StillReachable => a.still_reachable.add(r.bytes, r.blocks),
            },
        }
    }
    records.sort_by(|x, y| {
        y.total_bytes()
            .cmp(&x.total_bytes())
            .then(y.blocks.cmp(&x.blocks))
            .then(x.kind.cmp(&y.kind))
            .then(x.stack.cmp(&y.stack))
    });
    a.records = records;
    a
}

/// Parses a list of kinds as memcheck's `--show-leak-kinds` does
/// (`definite,indirect,possible,reachable`, `all`, `none`), accepting our
/// JSON names too.
pub fn parse_kinds(s: &str) -> Result<Vec<LeakKind>, String> {
    let mut out = Vec::new();
    for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let k = match w {
            "all" => {
                out.extend([
                    LeakKind::DefinitelyLost,
                    LeakKind::IndirectlyLost,
                    LeakKind::PossiblyLost,
                    LeakKind::StillReachable,
                ]);
                continue;
            }
            "none" => continue,
            "definite" | "definitely_lost" | "definitely" => LeakKind::DefinitelyLost,
            "indirect" | "indirectly_lost" | "indirectly" => LeakKind::IndirectlyLost,
            "possible" | "possibly_lost" | "possibly" => LeakKind::PossiblyLost,
            "reachable" | "still_reachable" => LeakKind::StillReachable,
            other => {
                return Err(format!(
                    "unknown leak kind {other:?}: use definite, indirect, possible, reachable, all or none"
                ))
            }
        };
        if !out.contains(&k) {
            out.push(k);
        }
    }
    Ok(out)
}

/// The suppressions in force: the user's files, then (unless turned off) the
/// built-in list of runtime noise and valgrind's own default suppressions,
/// which memcheck applies too.
pub struct SuppressionSet {
    user: crate::suppress::Suppressions,
    builtin: crate::suppress::Suppressions,
}

impl SuppressionSet {
    pub fn load(files: &[std::path::PathBuf], builtin: bool) -> anyhow::Result<SuppressionSet> {
        let mut user = crate::suppress::Suppressions::empty();
        for f in files {
            user.extend(crate::suppress::Suppressions::load(f)?);
        }
        let mut b = crate::suppress::Suppressions::empty();
        if builtin {
            b.extend(crate::suppress::Suppressions::builtin());
            b.extend(crate::suppress::Suppressions::memcheck_default());
        }
        Ok(SuppressionSet { user, builtin: b })
    }
}

impl Suppressor for SuppressionSet {
    fn check(&self, kind: LeakKind, alloc_fn: &str, frames: &[Frame]) -> Option<(String, bool)> {
        if let Some(n) = self.user.matches(kind, alloc_fn, frames) {
            return Some((n.to_string(), false));
        }
        self.builtin
            .matches(kind, alloc_fn, frames)
            .map(|n| (n.to_string(), true))
    }
}
