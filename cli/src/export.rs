//! `leakhunt export`: the model in formats other tools read.
//!
//! - [`collapsed`]: "outer;...;inner WEIGHT" lines, as flamegraph.pl,
//!   inferno, speedscope and most flame graph tools take them.
//! - [`pprof`]: a gzipped `profile.proto` (github.com/google/pprof), as
//!   `go tool pprof`, Pyroscope, Parca and Grafana read it. The encoder is
//!   written by hand: the format is a handful of flat messages.
//!
//! Both start stacks at the allocation site, as the report and the flame
//! graph do: the allocator's own frames (`operator new`, Rust's `alloc::`
//! layers) are left out.

use crate::flamegraph::What;
use crate::model::Model;
use crate::stacks::{frame_name, Stacks};
use crate::symbolize::Frame;
use leakhunt_format::LeakKind;
use std::collections::HashMap;
use std::io::Write;

/// Collapsed stacks ("outer;...;inner WEIGHT" per line, weights in bytes)
/// for flamegraph.pl / speedscope / inferno: the same lines as
/// `leakhunt flamegraph` draws, one per distinct stack, newline-terminated.
pub fn collapsed(model: &Model, what: What, kinds: &[LeakKind]) -> String {
    let (lines, _, _) = crate::flamegraph::collapsed(model, what, kinds);
    let mut out = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// The leak kinds counted as leaked in the pprof export when the trace has an
/// exit scan (without one, every block never freed is).
pub const LEAKED_KINDS: [LeakKind; 3] = [
    LeakKind::DefinitelyLost,
    LeakKind::IndirectlyLost,
    LeakKind::PossiblyLost,
];

/// The sample types of [`pprof`], in the order of each sample's values.
pub const SAMPLE_TYPES: [(&str, &str); 8] = [
    ("alloc_objects", "count"),
    ("alloc_space", "bytes"),
    ("leaked_objects", "count"),
    ("leaked_space", "bytes"),
    ("inuse_objects", "count"),
    ("inuse_space", "bytes"),
    ("peak_objects", "count"),
    ("peak_space", "bytes"),
];

/// The sample type a viewer shows first.
pub const DEFAULT_SAMPLE_TYPE: &str = "leaked_space";

/// A gzipped pprof `profile.proto` (github.com/google/pprof/proto/profile.proto)
/// readable by `go tool pprof`, Pyroscope, Parca, Grafana.
///
/// Sample types ([`SAMPLE_TYPES`]): `alloc_*` counts every allocation of the
/// run, `leaked_*` the blocks live at the end that the exit scan found
/// definitely, indirectly or possibly lost (all of them without a scan),
/// `inuse_*` every block live at the end, `peak_*` every block live when the
/// heap was at its peak (`peak`: the model replayed up to
/// `Model::peak_record`; zeros without it); `leaked_space` is the default. One
/// sample per recorded stack, one location per return address (its inlined
/// frames as lines, innermost first), one mapping per executable segment of
/// each recorded module.
pub fn pprof(model: &Model, peak: Option<&Model>) -> anyhow::Result<Vec<u8>> {
    let raw = profile_proto(model, peak);
    // The gzip comment is how `-o` knows an earlier profile of ours.
    let mut gz = flate2::GzBuilder::new()
        .comment(crate::files::PPROF_MARK)
        .write(
            Vec::with_capacity(raw.len() / 4 + 64),
            flate2::Compression::default(),
        );
    gz.write_all(&raw)?;
    Ok(gz.finish()?)
}

/// Per-stack values, in the order of [`SAMPLE_TYPES`].
type Values = [i64; 8];

fn sample_values(model: &Model, peak: Option<&Model>) -> Vec<(u64, Values)> {
    let mut by_node: HashMap<u64, Values> = HashMap::new();
    for (&node, t) in &model.by_stack {
        let v = by_node.entry(node).or_default();
        v[0] += to_i64(t.allocations);
        v[1] += to_i64(t.allocated_bytes);
    }
    for (ptr, b) in &model.live {
        let leaked = model.scan.is_none()
            || LEAKED_KINDS.contains(
                &model
                    .verdicts
                    .get(ptr)
                    .map_or(LeakKind::StillReachable, |v| v.kind),
            );
        let v = by_node.entry(b.stack).or_default();
        if leaked {
            v[2] += 1;
            v[3] += to_i64(b.size);
        }
        v[4] += 1;
        v[5] += to_i64(b.size);
    }
    // Same trace, replayed to an earlier point: the stack ids are the same.
    for b in peak.iter().flat_map(|p| p.live.values()) {
        let v = by_node.entry(b.stack).or_default();
        v[6] += 1;
        v[7] += to_i64(b.size);
    }
    let mut out: Vec<(u64, Values)> = by_node
        .into_iter()
        .filter(|(_, v)| v.iter().any(|&x| x != 0))
        .collect();
    out.sort_unstable_by_key(|(node, _)| *node);
    out
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The uncompressed `Profile` message.
fn profile_proto(model: &Model, peak: Option<&Model>) -> Vec<u8> {
    let mut b = Builder::new(model);
    let samples: Vec<(Vec<u64>, Values)> = sample_values(model, peak)
        .into_iter()
        .map(|(node, values)| (b.locations_of(node), values))
        .collect();

    let mut p = Enc::default();
    let sample_types: Vec<(i64, i64)> = SAMPLE_TYPES
        .iter()
        .map(|(t, u)| (b.string(t), b.string(u)))
        .collect();
    for (t, u) in sample_types {
        p.message(1, |m| {
            m.int64(1, t);
            m.int64(2, u);
        });
    }
    for (locations, values) in &samples {
        p.message(2, |m| {
            m.packed_u64(1, locations.iter().copied());
            m.packed_u64(2, values.iter().map(|&v| v as u64));
        });
    }
    for (i, map) in b.mappings.iter().enumerate() {
        p.message(3, |m| {
            m.uint64(1, i as u64 + 1);
            m.uint64(2, map.start);
            m.uint64(3, map.limit);
            m.uint64(4, map.file_offset);
            m.int64(5, map.filename);
            m.int64(6, map.build_id);
            m.bool(7, map.any_functions);
            m.bool(8, map.any_files);
            m.bool(9, map.any_lines);
            // Line numbers come from DWARF, which also expands inlined calls.
            m.bool(10, map.any_lines);
        });
    }
    for (i, loc) in b.locations.iter().enumerate() {
        p.message(4, |m| {
            m.uint64(1, i as u64 + 1);
            m.uint64(2, loc.mapping);
            m.uint64(3, loc.address);
            for &(function, line) in &loc.lines {
                m.message(4, |l| {
                    l.uint64(1, function);
                    l.int64(2, line);
                });
            }
        });
    }
    for (i, f) in b.functions.iter().enumerate() {
        p.message(5, |m| {
            m.uint64(1, i as u64 + 1);
            m.int64(2, f.name);
            m.int64(3, f.system_name);
            m.int64(4, f.filename);
        });
    }

    let comments = b.comments();
    let default_type = b.string(DEFAULT_SAMPLE_TYPE);
    let period_type = (b.string("space"), b.string("bytes"));
    for s in &b.strings {
        p.bytes_always(6, s.as_bytes());
    }
    if let Some(process) = &model.process {
        p.int64(9, to_i64(process.start_unix_ns));
    }
    p.int64(10, to_i64(model.duration_us.saturating_mul(1000)));
    p.message(11, |m| {
        m.int64(1, period_type.0);
        m.int64(2, period_type.1);
    });
    p.int64(12, 1);
    p.packed_u64(13, comments.into_iter().map(|c| c as u64));
    p.int64(14, default_type);
    p.buf
}

/// The lines of one location: (function id, line), innermost (inlined) first.
type Lines = Vec<(u64, i64)>;

struct FunctionOut {
    name: i64,
    system_name: i64,
    filename: i64,
}

struct LocationOut {
    /// 0: no recorded module covers the address.
    mapping: u64,
    address: u64,
    lines: Lines,
}

struct MappingOut {
    /// Index in `model.modules`.
    span: usize,
    start: u64,
    limit: u64,
    file_offset: u64,
    filename: i64,
    build_id: i64,
    /// Whether the symbolizer found function names, file names, line
    /// numbers for the module (for any of its locations: what pprof's own
    /// symbolizer sets once it has looked a module up; `_start` without
    /// debug info beside DWARF-described code does not clear them).
    any_functions: bool,
    any_files: bool,
    any_lines: bool,
}

struct Builder<'a> {
    model: &'a Model,
    stacks: Stacks<'a>,
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    functions: Vec<FunctionOut>,
    function_ids: HashMap<(String, Option<String>), u64>,
    locations: Vec<LocationOut>,
    location_ids: HashMap<(u64, u64, Lines), u64>,
    mappings: Vec<MappingOut>,
    /// (start, end, mapping index) sorted by start, and the running maximum
    /// of `end` so that a lookup can stop early.
    ranges: Vec<(u64, u64, usize)>,
    max_end: Vec<u64>,
}

impl<'a> Builder<'a> {
    fn new(model: &'a Model) -> Builder<'a> {
        let mut b = Builder {
            model,
            stacks: Stacks::new(model),
            strings: Vec::new(),
            string_ids: HashMap::new(),
            functions: Vec::new(),
            function_ids: HashMap::new(),
            locations: Vec::new(),
            location_ids: HashMap::new(),
            mappings: Vec::new(),
            ranges: Vec::new(),
            max_end: Vec::new(),
        };
        b.string("");
        // Module order as recorded: the main program first, as pprof expects.
        for (span, s) in model.modules.iter().enumerate() {
            let m = &s.module;
            let filename = if m.path.is_empty() {
                b.string("[vdso]")
            } else {
                b.string(&m.path)
            };
            let build_id = if m.build_id.is_empty() {
                0
            } else {
                let hex: String = m.build_id.iter().map(|x| format!("{x:02x}")).collect();
                b.string(&hex)
            };
            const PF_X: u32 = 1;
            for seg in m.segments.iter().filter(|s| s.flags & PF_X != 0) {
                let Some(start) = m.base.checked_add(seg.vaddr) else {
                    continue;
                };
                let Some(limit) = start.checked_add(seg.memsz) else {
                    continue;
                };
                if limit <= start {
                    continue;
                }
                b.ranges.push((start, limit, b.mappings.len()));
                // As the kernel maps it (and /proc/PID/maps, which pprof's
                // tools expect, shows it): whole pages.
                const PAGE: u64 = 4096;
                let lead = start % PAGE;
                b.mappings.push(MappingOut {
                    span,
                    start: start - lead,
                    limit: limit.checked_next_multiple_of(PAGE).unwrap_or(limit),
                    file_offset: seg.file_offset.saturating_sub(lead),
                    filename,
                    build_id,
                    any_functions: false,
                    any_files: false,
                    any_lines: false,
                });
            }
        }
        b.ranges.sort_unstable();
        let mut running = 0;
        for r in &b.ranges {
            running = running.max(r.1);
            b.max_end.push(running);
        }
        b
    }

    fn string(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), id);
        id
    }

    /// The mapping (1-based id; 0 for none) of an executable segment that
    /// holds `probe` and whose module was mapped when `node` was recorded.
    fn mapping_of(&self, probe: u64, node: u64) -> u64 {
        let upto = self.ranges.partition_point(|r| r.0 <= probe);
        for i in (0..upto).rev() {
            if self.max_end[i] <= probe {
                break;
            }
            let (_, end, m) = self.ranges[i];
            if probe >= end {
                continue;
            }
            let s = &self.model.modules[self.mappings[m].span];
            if s.from_node <= node && s.until_node.is_none_or(|u| node < u) {
                return m as u64 + 1;
            }
        }
        0
    }

    fn function(&mut self, f: &Frame) -> u64 {
        let name = frame_name(f);
        let key = (name, f.file.as_deref().map(str::to_string));
        if let Some(&id) = self.function_ids.get(&key) {
            return id;
        }
        let name = self.string(&key.0);
        let system_name = match &f.linkage_name {
            Some(l) => self.string(l),
            None => name,
        };
        let filename = match &f.file {
            Some(file) => self.string(file),
            None => 0,
        };
        self.functions.push(FunctionOut {
            name,
            system_name,
            filename,
        });
        let id = self.functions.len() as u64;
        self.function_ids.insert(key, id);
        id
    }

    /// Location ids of the stack ending at `node`, innermost first, from the
    /// allocation site on.
    fn locations_of(&mut self, node: u64) -> Vec<u64> {
        let all = self.stacks.frames(node);
        let frames = crate::stacks::shown(&all);
        let mut out = Vec::new();
        let mut rest = frames;
        while !rest.is_empty() {
            // The frames of one return address: its inlined frames, then the
            // function that holds the call (the one not marked inlined).
            let mut n = 1;
            while n < rest.len() && rest[n - 1].inlined && rest[n].address == rest[0].address {
                n += 1;
            }
            let (group, tail) = rest.split_at(n);
            rest = tail;
            out.push(self.location(group, node));
        }
        if out.is_empty() {
            let f = self.function_named("[no stack]");
            out.push(self.intern_location(0, 0, vec![(f, 0)]));
        }
        out
    }

    fn function_named(&mut self, name: &str) -> u64 {
        let key = (name.to_string(), None);
        if let Some(&id) = self.function_ids.get(&key) {
            return id;
        }
        let s = self.string(name);
        self.functions.push(FunctionOut {
            name: s,
            system_name: s,
            filename: 0,
        });
        let id = self.functions.len() as u64;
        self.function_ids.insert(key, id);
        id
    }

    /// The location of one return address and its frames (innermost first).
    fn location(&mut self, group: &[Frame], node: u64) -> u64 {
        let ip = group[0].address;
        // A return address points after the call: look up (and, as Go's own
        // profiles do, record) an address inside the call instruction.
        let address = ip.saturating_sub(1);
        let mapping = if &*group[0].module == "?" {
            0
        } else {
            self.mapping_of(address, node)
        };
        let lines: Lines = group
            .iter()
            .map(|f| (self.function(f), f.line.map_or(0, i64::from)))
            .collect();
        if mapping != 0 {
            let m = &mut self.mappings[mapping as usize - 1];
            m.any_functions |= group.iter().any(|f| f.function.is_some());
            m.any_files |= group.iter().any(|f| f.file.is_some());
            m.any_lines |= group.iter().any(|f| f.line.is_some());
        }
        self.intern_location(mapping, address, lines)
    }

    fn intern_location(&mut self, mapping: u64, address: u64, lines: Lines) -> u64 {
        let key = (mapping, address, lines);
        if let Some(&id) = self.location_ids.get(&key) {
            return id;
        }
        self.locations.push(LocationOut {
            mapping,
            address,
            lines: key.2.clone(),
        });
        let id = self.locations.len() as u64;
        self.location_ids.insert(key, id);
        id
    }

    /// String ids of the profile's comments: what was run and what
    /// `leaked_*` counts.
    fn comments(&mut self) -> Vec<i64> {
        let mut c = Vec::new();
        if let Some(p) = &self.model.process {
            c.push(format!(
                "leakhunt: {} (pid {}), recorder {}",
                p.argv.join(" "),
                p.pid,
                p.recorder
            ));
        }
        c.push(if self.model.scan.is_some() {
            "leaked_*: blocks live at exit that the exit scan found definitely, indirectly or possibly lost".to_string()
        } else {
            "leaked_*: blocks never freed (the trace has no exit scan)".to_string()
        });
        c.iter().map(|s| self.string(s)).collect()
    }
}

/// A protobuf writer: just the wire types profile.proto uses.
#[derive(Default)]
struct Enc {
    buf: Vec<u8>,
}

impl Enc {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire_type));
    }

    /// A uint64 field; zero (the default) is left out, as proto3 does.
    fn uint64(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, 0);
            self.varint(v);
        }
    }

    /// An int64 field: negative values are ten-byte varints.
    fn int64(&mut self, field: u32, v: i64) {
        self.uint64(field, v as u64);
    }

    fn bool(&mut self, field: u32, v: bool) {
        self.uint64(field, u64::from(v));
    }

    /// A length-delimited field written even when empty (an element of a
    /// repeated field: the string table's "" must be there).
    fn bytes_always(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    fn packed_u64(&mut self, field: u32, values: impl Iterator<Item = u64>) {
        let mut inner = Enc::default();
        for v in values {
            inner.varint(v);
        }
        if !inner.buf.is_empty() {
            self.bytes_always(field, &inner.buf);
        }
    }

    fn message(&mut self, field: u32, body: impl FnOnce(&mut Enc)) {
        let mut inner = Enc::default();
        body(&mut inner);
        self.bytes_always(field, &inner.buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields() {
        let mut e = Enc::default();
        e.uint64(1, 150);
        assert_eq!(e.buf, [0x08, 0x96, 0x01]);
        let mut e = Enc::default();
        e.uint64(2, 0);
        e.bool(3, false);
        assert!(e.buf.is_empty(), "defaults are left out");
        let mut e = Enc::default();
        e.int64(1, -1);
        assert_eq!(e.buf.len(), 11, "-1 is a ten-byte varint");
        let mut e = Enc::default();
        e.bytes_always(6, b"");
        e.message(1, |m| m.uint64(1, 1));
        assert_eq!(e.buf, [0x32, 0x00, 0x0a, 0x02, 0x08, 0x01]);
        let mut e = Enc::default();
        e.packed_u64(1, [1u64, 300].into_iter());
        assert_eq!(e.buf, [0x0a, 0x03, 0x01, 0xac, 0x02]);
    }

    #[test]
    fn an_empty_model_is_a_valid_profile() {
        let model = Model {
            nodes: vec![(0, 0)],
            ..Default::default()
        };
        let gz = pprof(&model, None).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
        let raw = profile_proto(&model, None);
        // sample_type first, then the string table starting with "".
        assert_eq!(raw[0], 0x0a);
        assert!(raw.windows(2).any(|w| w == [0x32, 0x00]));
    }
}
