//! `export`: collapsed stacks and pprof profiles of a real trace.
//!
//! A small C program (`data/export/leaks.c`) leaks known amounts from two
//! functions; it runs under the release build of the recorder
//! (`cargo build --release` first), and the trace is exported and read back:
//! the collapsed lines by hand, the pprof profile with a decoder of its own
//! (prost over hand-written messages) and, when Go is installed, with
//! `go tool pprof` itself.

use leakhunt_cli::export::{self, DEFAULT_SAMPLE_TYPE, LEAKED_KINDS, SAMPLE_TYPES};
use leakhunt_cli::flamegraph::What;
use leakhunt_cli::model::Model;
use leakhunt_format::LeakKind;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

const SRC: &str = "leaks.c";

// What leaks.c does.
const SMALL_LEAKED: i64 = 3 * 100;
const BIG_LEAKED: i64 = 2 * 4096;
const LEAKED_BYTES: i64 = SMALL_LEAKED + BIG_LEAKED;
const LEAKED_BLOCKS: i64 = 3 + 2;
const INUSE_BYTES: i64 = LEAKED_BYTES + 4096;
const INUSE_BLOCKS: i64 = LEAKED_BLOCKS + 1;
const ALLOC_BYTES: i64 = INUSE_BYTES + 10 * 1000;
const ALLOC_BLOCKS: i64 = INUSE_BLOCKS + 10;

// ------------------------------------------------------------------ setup

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/export")
}

fn bin_dir() -> PathBuf {
    match std::env::var_os("LEAKHUNT_BIN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release"),
    }
}

fn on_path(tool: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The line of `leaks.c` that carries `marker`.
fn line_of(marker: &str) -> i64 {
    let text = std::fs::read_to_string(data_dir().join(SRC)).unwrap();
    let found: Vec<i64> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(&format!("/* {marker} */")))
        .map(|(i, _)| i as i64 + 1)
        .collect();
    assert_eq!(found.len(), 1, "{marker} must mark one line of {SRC}");
    found[0]
}

/// A temporary directory, removed unless the test failed.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "leakhunt-export-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Compiles and runs leaks.c under `leakhunt run`; None (with the reason
/// printed) when there is no C compiler.
fn traced(name: &str) -> Option<(TempDir, Model)> {
    let Some(cc) = on_path("cc") else {
        eprintln!("SKIP: no C compiler (cc) on the PATH");
        return None;
    };
    let leakhunt = bin_dir().join("leakhunt");
    for b in [&leakhunt, &bin_dir().join("libleakhunt.so")] {
        assert!(
            b.is_file(),
            "{} is missing: run cargo build --release first",
            b.display()
        );
    }
    let dir = TempDir::new(name);
    let prog = dir.0.join("leaks");
    let out = Command::new(cc)
        .args(["-g", "-O0", "-fno-omit-frame-pointer", "-o"])
        .arg(&prog)
        .arg(data_dir().join(SRC))
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace = dir.0.join("leaks.trace");
    let out = Command::new(&leakhunt)
        .current_dir(&dir.0)
        .env_remove("LEAKHUNT_SCAN")
        .arg("run")
        .arg("-o")
        .arg(&trace)
        .arg("--")
        .arg(&prog)
        .output()
        .expect("run leakhunt");
    assert_eq!(
        out.status.code(),
        Some(0),
        "leakhunt run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model = Model::load(&trace).expect("load the trace");
    assert!(model.scan.is_some(), "the trace has an exit scan");
    Some((dir, model))
}

/// Leaked bytes and blocks as the model has them (live at the end, of a
/// leaked kind).
fn model_leaked(model: &Model) -> (i64, i64) {
    let mut bytes = 0;
    let mut blocks = 0;
    for (ptr, b) in &model.live {
        let kind = model
            .verdicts
            .get(ptr)
            .map_or(LeakKind::StillReachable, |v| v.kind);
        if LEAKED_KINDS.contains(&kind) {
            bytes += b.size as i64;
            blocks += 1;
        }
    }
    (bytes, blocks)
}

// -------------------------------------------------------------- collapsed

fn parse_collapsed(text: &str) -> Vec<(Vec<&str>, i64)> {
    assert!(text.is_empty() || text.ends_with('\n'));
    text.lines()
        .map(|l| {
            let (stack, w) = l.rsplit_once(' ').expect("STACK WEIGHT");
            // The program's frames carry "(file:line)" as in the flamegraph.
            let names = stack
                .split(';')
                .map(|f| f.split_once(" (").map_or(f, |(name, _)| name))
                .collect();
            (names, w.parse().expect("weight"))
        })
        .collect()
}

#[test]
fn collapsed_stacks_add_up_and_name_the_functions() {
    let Some((_dir, model)) = traced("collapsed") else {
        return;
    };

    let leaked = export::collapsed(&model, What::Leaked, &LEAKED_KINDS);
    let lines = parse_collapsed(&leaked);
    let total: i64 = lines.iter().map(|(_, w)| w).sum();
    assert_eq!(total, model_leaked(&model).0, "{leaked}");
    assert_eq!(total, LEAKED_BYTES, "{leaked}");
    let by_leaf = |lines: &[(Vec<&str>, i64)], f: &str| -> i64 {
        lines
            .iter()
            .filter(|(s, _)| s.last() == Some(&f))
            .map(|(_, w)| w)
            .sum()
    };
    assert_eq!(by_leaf(&lines, "leak_small"), SMALL_LEAKED, "{leaked}");
    assert_eq!(by_leaf(&lines, "leak_big"), BIG_LEAKED, "{leaked}");
    for (stack, _) in &lines {
        // outermost first: main calls the leaking function
        let n = stack.len();
        assert!(n >= 2, "{stack:?}");
        assert_eq!(stack[n - 2], "main", "{stack:?}");
    }
    assert!(!leaked.contains("churn"), "{leaked}");

    let allocated = export::collapsed(&model, What::Allocated, &[]);
    let lines = parse_collapsed(&allocated);
    let total: i64 = lines.iter().map(|(_, w)| w).sum();
    assert_eq!(total as u64, model.totals.allocated_bytes, "{allocated}");
    assert_eq!(total, ALLOC_BYTES, "{allocated}");
    assert_eq!(by_leaf(&lines, "churn"), 10_000, "{allocated}");
    assert_eq!(by_leaf(&lines, "leak_big"), 3 * 4096, "{allocated}");
}

// ------------------------------------------------------------------ pprof

/// profile.proto, as github.com/google/pprof/proto/profile.proto has it.
mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub mapping: Vec<Mapping>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "7")]
        pub drop_frames: i64,
        #[prost(int64, tag = "8")]
        pub keep_frames: i64,
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub period: i64,
        #[prost(int64, repeated, tag = "13")]
        pub comment: Vec<i64>,
        #[prost(int64, tag = "14")]
        pub default_sample_type: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
        #[prost(int64, tag = "3")]
        pub num: i64,
        #[prost(int64, tag = "4")]
        pub num_unit: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Mapping {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub memory_start: u64,
        #[prost(uint64, tag = "3")]
        pub memory_limit: u64,
        #[prost(uint64, tag = "4")]
        pub file_offset: u64,
        #[prost(int64, tag = "5")]
        pub filename: i64,
        #[prost(int64, tag = "6")]
        pub build_id: i64,
        #[prost(bool, tag = "7")]
        pub has_functions: bool,
        #[prost(bool, tag = "8")]
        pub has_filenames: bool,
        #[prost(bool, tag = "9")]
        pub has_line_numbers: bool,
        #[prost(bool, tag = "10")]
        pub has_inline_frames: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub mapping_id: u64,
        #[prost(uint64, tag = "3")]
        pub address: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
        #[prost(bool, tag = "5")]
        pub is_folded: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        #[prost(int64, tag = "2")]
        pub line: i64,
        #[prost(int64, tag = "3")]
        pub column: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
        #[prost(int64, tag = "5")]
        pub start_line: i64,
    }
}

fn decode(gz: &[u8]) -> pb::Profile {
    use prost::Message;
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzipped");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .expect("gunzip");
    pb::Profile::decode(raw.as_slice()).expect("a profile.proto Profile")
}

/// Checks every id reference and string index; returns lookups by id.
struct Index<'p> {
    p: &'p pb::Profile,
    locations: HashMap<u64, &'p pb::Location>,
    functions: HashMap<u64, &'p pb::Function>,
    mappings: HashMap<u64, &'p pb::Mapping>,
}

impl<'p> Index<'p> {
    fn new(p: &'p pb::Profile) -> Index<'p> {
        assert_eq!(p.string_table.first().map(String::as_str), Some(""));
        let s = |i: i64, what: &str| {
            assert!(
                i >= 0 && (i as usize) < p.string_table.len(),
                "{what}: string index {i} out of range"
            );
        };
        let mut mappings = HashMap::new();
        for m in &p.mapping {
            assert_ne!(m.id, 0, "mapping id 0");
            assert!(mappings.insert(m.id, m).is_none(), "mapping id {}", m.id);
            assert!(m.memory_start < m.memory_limit, "{m:?}");
            s(m.filename, "mapping filename");
            s(m.build_id, "mapping build_id");
        }
        let mut functions = HashMap::new();
        for f in &p.function {
            assert_ne!(f.id, 0, "function id 0");
            assert!(functions.insert(f.id, f).is_none(), "function id {}", f.id);
            s(f.name, "function name");
            s(f.system_name, "function system_name");
            s(f.filename, "function filename");
        }
        let mut locations = HashMap::new();
        for l in &p.location {
            assert_ne!(l.id, 0, "location id 0");
            assert!(locations.insert(l.id, l).is_none(), "location id {}", l.id);
            if l.mapping_id != 0 {
                let m = mappings
                    .get(&l.mapping_id)
                    .unwrap_or_else(|| panic!("location {l:?}: no mapping {}", l.mapping_id));
                assert!(
                    (m.memory_start..m.memory_limit).contains(&l.address),
                    "{l:?} outside {m:?}"
                );
            }
            assert!(!l.line.is_empty(), "location without lines: {l:?}");
            for line in &l.line {
                assert!(
                    functions.contains_key(&line.function_id),
                    "location {l:?}: no function {}",
                    line.function_id
                );
            }
        }
        for smp in &p.sample {
            assert_eq!(smp.value.len(), p.sample_type.len(), "{smp:?}");
            assert!(smp.value.iter().any(|&v| v != 0), "all-zero sample");
            assert!(!smp.location_id.is_empty(), "{smp:?}");
            for id in &smp.location_id {
                assert!(
                    locations.contains_key(id),
                    "sample {smp:?}: no location {id}"
                );
            }
        }
        for &c in &p.comment {
            s(c, "comment");
        }
        s(p.default_sample_type, "default_sample_type");
        Index {
            p,
            locations,
            functions,
            mappings,
        }
    }

    fn str(&self, i: i64) -> &'p str {
        &self.p.string_table[i as usize]
    }

    fn value_index(&self, name: &str) -> usize {
        self.p
            .sample_type
            .iter()
            .position(|t| self.str(t.r#type) == name)
            .unwrap_or_else(|| panic!("no sample type {name}"))
    }

    fn total(&self, name: &str) -> i64 {
        let i = self.value_index(name);
        self.p.sample.iter().map(|s| s.value[i]).sum()
    }

    /// The innermost line of a sample (the allocation site): function
    /// name, line, and the location.
    fn leaf(&self, s: &pb::Sample) -> (&'p str, i64, &'p pb::Location) {
        let loc = self.locations[&s.location_id[0]];
        let line = &loc.line[0];
        (
            self.str(self.functions[&line.function_id].name),
            line.line,
            loc,
        )
    }

    /// (function, line) of every line of a sample, innermost first.
    fn stack(&self, s: &pb::Sample) -> Vec<(&'p str, i64)> {
        s.location_id
            .iter()
            .flat_map(|id| self.locations[id].line.iter())
            .map(|l| (self.str(self.functions[&l.function_id].name), l.line))
            .collect()
    }
}

#[test]
fn pprof_profile_decodes_with_the_leaks() {
    let Some((_dir, model)) = traced("pprof") else {
        return;
    };
    let gz = export::pprof(&model, None).expect("export pprof");
    let p = decode(&gz);
    let ix = Index::new(&p);

    let types: Vec<(&str, &str)> = p
        .sample_type
        .iter()
        .map(|t| (ix.str(t.r#type), ix.str(t.unit)))
        .collect();
    assert_eq!(types, SAMPLE_TYPES.to_vec());
    assert_eq!(
        types,
        [
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("leaked_objects", "count"),
            ("leaked_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes"),
            ("peak_objects", "count"),
            ("peak_space", "bytes"),
        ]
    );
    assert_eq!(ix.str(p.default_sample_type), DEFAULT_SAMPLE_TYPE);
    assert_eq!(ix.str(p.default_sample_type), "leaked_space");
    let period = p.period_type.as_ref().expect("period_type");
    assert_eq!(
        (ix.str(period.r#type), ix.str(period.unit)),
        ("space", "bytes")
    );
    assert_eq!(p.period, 1);
    let process = model.process.as_ref().expect("process info");
    assert_eq!(p.time_nanos as u64, process.start_unix_ns);
    assert!(p.time_nanos > 1_500_000_000_000_000_000, "{}", p.time_nanos);
    assert_eq!(p.duration_nanos as u64, model.duration_us * 1000);

    // totals
    let (leaked_bytes, leaked_blocks) = model_leaked(&model);
    assert_eq!(ix.total("leaked_space"), leaked_bytes);
    assert_eq!(ix.total("leaked_space"), LEAKED_BYTES);
    assert_eq!(ix.total("leaked_objects"), leaked_blocks);
    assert_eq!(ix.total("leaked_objects"), LEAKED_BLOCKS);
    assert_eq!(
        ix.total("inuse_space") as u64,
        model.totals.live_bytes_at_end
    );
    assert_eq!(ix.total("inuse_space"), INUSE_BYTES);
    assert_eq!(ix.total("inuse_objects"), INUSE_BLOCKS);
    assert_eq!(ix.total("alloc_space") as u64, model.totals.allocated_bytes);
    assert_eq!(ix.total("alloc_space"), ALLOC_BYTES);
    assert_eq!(ix.total("alloc_objects"), ALLOC_BLOCKS);

    // by allocation site: function and line of the innermost frame
    let leaked_i = ix.value_index("leaked_space");
    let alloc_i = ix.value_index("alloc_space");
    let mut leaked_by_site: HashMap<(&str, i64), i64> = HashMap::new();
    let mut alloc_by_site: HashMap<(&str, i64), i64> = HashMap::new();
    let mut program_locations = Vec::new();
    for s in &p.sample {
        let (f, line, loc) = ix.leaf(s);
        *leaked_by_site.entry((f, line)).or_default() += s.value[leaked_i];
        *alloc_by_site.entry((f, line)).or_default() += s.value[alloc_i];
        program_locations.push(loc);
    }
    let small = ("leak_small", line_of("SITE_SMALL"));
    let big = ("leak_big", line_of("SITE_BIG"));
    let churn = ("churn", line_of("SITE_CHURN"));
    assert_eq!(
        leaked_by_site.get(&small),
        Some(&SMALL_LEAKED),
        "{leaked_by_site:?}"
    );
    assert_eq!(
        leaked_by_site.get(&big),
        Some(&BIG_LEAKED),
        "{leaked_by_site:?}"
    );
    assert_eq!(leaked_by_site.get(&churn), Some(&0), "{leaked_by_site:?}");
    assert_eq!(
        alloc_by_site.get(&churn),
        Some(&10_000),
        "{alloc_by_site:?}"
    );
    assert_eq!(
        alloc_by_site.get(&big),
        Some(&(3 * 4096)),
        "{alloc_by_site:?}"
    );
    assert_eq!(
        leaked_by_site.len(),
        3,
        "only the three sites: {leaked_by_site:?}"
    );

    // the callers, innermost first: main at the line of the call
    let leaking: Vec<&pb::Sample> = p
        .sample
        .iter()
        .filter(|s| ix.leaf(s).0 == "leak_small")
        .collect();
    assert_eq!(leaking.len(), 1);
    let stack = ix.stack(leaking[0]);
    assert_eq!(stack[0], small, "{stack:?}");
    assert_eq!(stack[1], ("main", line_of("CALL_SMALL")), "{stack:?}");
    let big_callers: HashSet<i64> = p
        .sample
        .iter()
        .filter(|s| ix.leaf(s).0 == "leak_big" && s.value[leaked_i] > 0)
        .map(|s| ix.stack(s)[1].1)
        .collect();
    assert_eq!(
        big_callers,
        HashSet::from([line_of("CALL_BIG_1"), line_of("CALL_BIG_2")])
    );

    // the program's mapping: its file, build id and symbol resolution
    let exe = &model.modules[0].module;
    for loc in &program_locations {
        let m = ix.mappings[&loc.mapping_id];
        assert_eq!(ix.str(m.filename), exe.path);
        assert!(ix.str(m.filename).ends_with("/leaks"));
        let hex: String = exe.build_id.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(ix.str(m.build_id), hex);
        assert!(
            m.has_functions && m.has_filenames && m.has_line_numbers,
            "{m:?}"
        );
        let f = ix.functions[&loc.line[0].function_id];
        assert!(ix.str(f.filename).ends_with(SRC), "{f:?}");
    }
    assert_eq!(
        ix.str(ix.mappings[&1].filename),
        exe.path,
        "the main program is the first mapping"
    );

    // deduplication: functions by (name, file), locations by address
    let mut seen = HashSet::new();
    for f in &p.function {
        assert!(
            seen.insert((f.name, f.filename)),
            "duplicate function {f:?}"
        );
    }
    let mut seen = HashSet::new();
    for l in &p.location {
        assert!(
            seen.insert((l.mapping_id, l.address)),
            "two locations of one address: {l:?}"
        );
    }
}

#[test]
fn go_tool_pprof_reads_the_profile() {
    let Some(go) = on_path("go") else {
        eprintln!("SKIP: `go` is not installed (apt-get install golang-go), so go tool pprof was not tried");
        return;
    };
    let Some((dir, model)) = traced("gopprof") else {
        return;
    };
    let file = dir.0.join("leaks.pb.gz");
    std::fs::write(&file, export::pprof(&model, None).expect("export pprof")).unwrap();
    let pprof = |args: &[&str]| -> String {
        let out = Command::new(&go)
            .args(["tool", "pprof"])
            .args(args)
            .arg(&file)
            .env("PPROF_TMPDIR", &dir.0)
            .env("HOME", &dir.0)
            .env("GOCACHE", dir.0.join("gocache"))
            .env("GOFLAGS", "")
            .output()
            .expect("run go tool pprof");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "go tool pprof {args:?} failed:\n{stdout}\n{stderr}"
        );
        println!("$ go tool pprof {} FILE\n{stdout}{stderr}", args.join(" "));
        stdout
    };

    let top = pprof(&["-top", "-sample_index=leaked_space"]);
    assert!(top.contains("Type: leaked_space"), "{top}");
    for f in ["leak_small", "leak_big"] {
        let row = top
            .lines()
            .find(|l| l.split_whitespace().last() == Some(f))
            .unwrap_or_else(|| panic!("{f} is not listed:\n{top}"));
        let flat = row.split_whitespace().next().unwrap_or("");
        // pprof's units: "8192B" (Go 1.19) or "8kB" (newer)
        let want: &[&str] = if f == "leak_small" {
            &["300B"]
        } else {
            &["8192B", "8kB"]
        };
        assert!(want.contains(&flat), "{row}");
    }
    assert!(!top.contains("churn"), "churn leaks nothing:\n{top}");

    // without -sample_index, the default is leaked_space
    let default = pprof(&["-top"]);
    assert!(default.contains("Type: leaked_space"), "{default}");

    let alloc = pprof(&["-top", "-sample_index=alloc_space"]);
    assert!(alloc.contains("churn"), "{alloc}");
}
