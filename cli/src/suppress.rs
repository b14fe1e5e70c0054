//! Suppressions for leak reports, in the two formats people already have.
//!
//! * **valgrind suppression files** (`--suppressions=FILE`). Only `Memcheck:Leak`
//!   entries matter; entries for other tools and other memcheck error kinds are
//!   skipped. Matching follows memcheck: the entry's location lines must match a
//!   prefix of the stack, innermost frame first (`VG_(generic_match)` with
//!   `matchAll = False`); `...` matches zero or more frames; `fun:`, `obj:` and
//!   `src:` patterns are whole-string globs with `*` and `?` (`VG_(string_match)`);
//!   inlined frames are frames of their own.
//! * **LeakSanitizer files** (`LSAN_OPTIONS=suppressions=FILE`): `leak:PATTERN`
//!   lines. A leak is suppressed if any frame's function, source file or module
//!   contains PATTERN, with `*` wildcards and `^`/`$` anchors, matched exactly as
//!   sanitizer_common's `TemplateMatch` does (quirks included).
//! * memcheck's own `default.supp`, read from the valgrind installation at run
//!   time as memcheck does, and a short hand-written list of C/C++ runtime noise.
//!
//! ## How a leakhunt stack is made to look like valgrind's
//!
//! memcheck replaces the allocator, so its stacks start *in* the allocation
//! function (`fun:malloc`, `fun:_Znwm`, ...); leakhunt records from the caller of
//! the allocator. [`Suppressions::matches`] therefore takes the allocation
//! function the program called and puts a synthetic frame for it in front of the
//! recorded frames, with `obj:` the path of memcheck's preload library, so
//! `obj:*vgpreload_memcheck*` matches it. Where valgrind versions differ in what
//! that frame is called, every variant is accepted: valgrind 3.19 shows
//! `realloc(NULL, n)` and `reallocarray` as `malloc`, `valloc` and
//! `aligned_alloc` as `memalign`, and `posix_memalign` as
//! `memalign` + `posix_memalign`; later versions show each under its own name.
//!
//! When the innermost recorded frames are C++ `operator new` (any overload) in
//! libstdc++ or libc++, no synthetic frame is added: memcheck intercepts the
//! operator itself, so its top frame is the operator the program called, which
//! is the outermost of those recorded operator frames (libstdc++'s `new[]` and
//! `nothrow` overloads call plain `new`). libstdc++ builds `operator new[]` as a
//! tail call to `operator new`, so a recorded `_Znwm` may have been a `_Znam`
//! call: the top frame matches both names.
//!
//! ## Names
//!
//! valgrind matches `fun:` against raw symbol names (`_ZN3foo3barEv`,
//! `pthread_create@@GLIBC_2.34`), and an inlined frame against its unqualified
//! DWARF name (`push_back`, `tmk<int>`). A `fun:` pattern here matches a frame if
//! it matches any of: the linkage name, the linkage name without its `@VERSION`,
//! the demangled name, and for inlined frames the unqualified name derived from
//! the demangled one. A frame without a name is `???`, as in valgrind; a pattern
//! naming a GCC clone (`foo.constprop.0`, `foo.cold`, ...) also matches the
//! function it was cloned from, since debug info names the latter. `obj:`
//! matches the module path as recorded (the loader's name) and its canonical
//! path (what valgrind shows, e.g. `/usr/lib/x86_64-linux-gnu/libc.so.6`).
//!
//! ## Where this differs from valgrind and LSan
//!
//! The stack is not cut at `--num-callers` (default 12) and neither are the
//! entries' frame lists: a leakhunt stack is matched as a valgrind run with a
//! large `--num-callers` would match it. Everything listed above that accepts
//! more than one name is more permissive than any single valgrind version.
//!
//! LSan knows only direct and indirect leaks; its rules apply here to every
//! kind. Function names are cpp_demangle's; LLVM's `>>` spelling of nested
//! templates is tried too.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use anyhow::anyhow;
use leakhunt_format::LeakKind;

use crate::symbolize::Frame;

/// memcheck's `VG_DEEPEST_BACKTRACE`: more location lines than this is an error.
const MAX_LOCATIONS: usize = 500;

/// At most this many location lines in a generated suppression.
const GENERATED_FRAMES: usize = 24;

/// Where memcheck's preload library lives; the synthetic allocator frame is "in" it.
const VGPRELOAD_DIRS: [&str; 3] = [
    "/usr/libexec/valgrind",
    "/usr/lib/x86_64-linux-gnu/valgrind",
    "/usr/lib/valgrind",
];

/// Candidate locations of memcheck's default suppressions (after `$VALGRIND_LIB`).
const DEFAULT_SUPP_PATHS: [&str; 5] = [
    "/usr/libexec/valgrind/default.supp",
    "/usr/lib/x86_64-linux-gnu/valgrind/default.supp",
    "/usr/lib/valgrind/default.supp",
    "/usr/local/libexec/valgrind/default.supp",
    "/usr/local/lib/valgrind/default.supp",
];

/// memcheck's suppression kinds (`MC_(is_recognised_suppression)`); any other
/// `Memcheck:` kind is an error, as in memcheck.
const MEMCHECK_KINDS: &[&str] = &[
    "Param",
    "User",
    "CoreMem",
    "Addr1",
    "Addr2",
    "Addr4",
    "Addr8",
    "Addr16",
    "Addr32",
    "Jump",
    "Free",
    "Leak",
    "Overlap",
    "Mempool",
    "Cond",
    "Value0",
    "Value1",
    "Value2",
    "Value4",
    "Value8",
    "Value16",
    "Value32",
    "FishyValue",
    "ReallocZero",
    "BadAlign",
    "BadSize",
    "SizeMismatch",
    "AlignMismatch",
];

/// Our own list of runtime noise. Every entry is an allocation that glibc or
/// libstdc++ keeps until exit and releases only in `__libc_freeres` /
/// `__gnu_cxx::__freeres`, which memcheck runs before its leak search (so it
/// never reports them) and leakhunt's recorder runs too when it can; these
/// entries hide them in a trace where that was not possible.
const BUILTIN: &str = r#"
# stdin/stdout/stderr buffers, allocated on first use and owned by the FILE
# (glibc libio/filedoalloc.c; freed by _IO_cleanup).
{
   leakhunt-builtin:glibc-stdio-buffer
   Memcheck:Leak
   match-leak-kinds: reachable
   fun:malloc
   fun:_IO_file_doallocate
}

# The DTV of a thread's static TLS (nptl/allocatestack.c, elf/dl-tls.c): the
# thread descriptor holds only an interior pointer to it. The recorder's `dtv`
# heuristic counts those of threads alive at exit still reachable (memcheck:
# possibly lost); a trace without it (another allocator's layout, an older
# recorder) still says "possible", and those we hide (and say how many).
{
   leakhunt-builtin:glibc-thread-dtv
   Memcheck:Leak
   match-leak-kinds: possible
   fun:calloc
   ...
   fun:_dl_allocate_tls
}

# Dynamic TLS blocks of dlopen'ed modules and the grown DTV, created lazily by
# __tls_get_addr (elf/dl-tls.c); reachable only through the DTV, and through an
# interior pointer when the block is over-aligned.
{
   leakhunt-builtin:glibc-dynamic-tls
   Memcheck:Leak
   match-leak-kinds: possible,reachable
   fun:*alloc
   ...
   fun:__tls_get_addr
}

# libstdc++'s emergency pool for exception objects (libsupc++/eh_alloc.cc),
# malloc'ed by a static constructor of libstdc++ itself, which has no symbols
# unless its debug file is installed: hence obj:.
{
   leakhunt-builtin:libstdc++-emergency-eh-pool
   Memcheck:Leak
   match-leak-kinds: reachable
   fun:malloc
   obj:*/libstdc++.so*
   ...
   fun:_dl_init
}

# Locale data loaded by setlocale() (locale/findlocale.c, loadlocale.c), kept
# for the life of the process.
{
   leakhunt-builtin:glibc-setlocale
   Memcheck:Leak
   match-leak-kinds: reachable
   fun:*alloc
   ...
   fun:setlocale
}

# The time zone rules and names read by tzset(), localtime() and friends
# (time/tzset.c, tzfile.c), kept for the life of the process.
{
   leakhunt-builtin:glibc-tzset
   Memcheck:Leak
   match-leak-kinds: reachable
   fun:*alloc
   ...
   fun:tzset_internal
}
"#;

/// A set of leak suppressions, in the order they were loaded.
#[derive(Clone, Debug, Default)]
pub struct Suppressions {
    entries: Vec<Entry>,
}

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    /// `file:line` of the entry's name (valgrind) or rule (LSan).
    origin: String,
    rule: Rule,
}

#[derive(Clone, Debug)]
enum Rule {
    Valgrind {
        /// Bit `1 << (LeakKind as u8)` for each kind the entry applies to.
        kinds: u8,
        locations: Vec<Location>,
    },
    Lsan {
        template: String,
    },
}

#[derive(Clone, Debug)]
enum Location {
    /// `fun:PATTERN`, and the pattern without GCC clone suffixes if it had any.
    Fun(String, Option<String>),
    Obj(String),
    /// `src:PATTERN[:LINE]`; line 0 = any line.
    Src(String, u32),
    /// `...`
    Frames,
}

const ALL_KINDS: u8 = 0b1111;

fn kind_bit(kind: LeakKind) -> u8 {
    1 << (kind as u8)
}

impl Suppressions {
    pub fn empty() -> Self {
        Suppressions::default()
    }

    /// Reads a suppression file; auto-detects the format (valgrind braces vs
    /// LSan `leak:` lines). Errors carry the file, the line and what is wrong.
    pub fn load(path: &Path) -> anyhow::Result<Suppressions> {
        let origin = path.display().to_string();
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow!("suppression file {origin}: cannot read it: {e}"))?;
        Suppressions::parse(&String::from_utf8_lossy(&bytes), &origin)
    }

    /// Parses suppressions; `origin` names the source in errors and entries.
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Suppressions> {
        let mut lines = Lines::new(text);
        let Some((_, first)) = lines.peek() else {
            return Ok(Suppressions::empty());
        };
        let entries = if first == "{" {
            parse_valgrind(&mut lines, origin)
        } else {
            parse_lsan(&mut lines, origin)
        }
        .map_err(|(line, what)| anyhow!("suppression file {origin} line {line}: {what}"))?;
        Ok(Suppressions { entries })
    }

    /// The `Memcheck:Leak` entries of the valgrind installation's `default.supp`
    /// (`$VALGRIND_LIB/default.supp`, else the usual install locations), which
    /// memcheck reads at every run; empty if there is none or it does not parse.
    pub fn memcheck_default() -> Suppressions {
        let from_env = std::env::var_os("VALGRIND_LIB")
            .map(|dir| Path::new(&dir).join("default.supp"))
            .into_iter();
        let fixed = DEFAULT_SUPP_PATHS.iter().map(std::path::PathBuf::from);
        from_env
            .chain(fixed)
            .find(|p| p.is_file())
            .and_then(|p| Suppressions::load(&p).ok())
            .unwrap_or_default()
    }

    /// leakhunt's own short list of C/C++ runtime noise (see `BUILTIN`).
    pub fn builtin() -> Suppressions {
        Suppressions::parse(BUILTIN, "<builtin>").unwrap_or_default()
    }

    pub fn extend(&mut self, other: Suppressions) {
        self.entries.extend(other.entries);
    }

    /// The name of the first suppression that matches a loss record, if any.
    ///
    /// `alloc_fn` is the allocation function the program called (`"malloc"`,
    /// `"calloc"`, ...); `frames` the whole recorded stack, innermost first,
    /// inlined frames expanded, *including* any `operator new` frames.
    pub fn matches(&self, kind: LeakKind, alloc_fn: &str, frames: &[Frame]) -> Option<&str> {
        let mut vg: Option<VgStacks> = None;
        let mut lsan: Option<Vec<Cow<str>>> = None;
        for entry in &self.entries {
            let hit = match &entry.rule {
                Rule::Valgrind { kinds, locations } => {
                    kinds & kind_bit(kind) != 0 && {
                        let stacks = vg.get_or_insert_with(|| VgStacks::new(alloc_fn, frames));
                        stacks.matches(locations)
                    }
                }
                Rule::Lsan { template } => lsan
                    .get_or_insert_with(|| lsan_strings(alloc_fn, frames))
                    .iter()
                    .any(|s| lsan_template_match(template.as_bytes(), s.as_bytes())),
            };
            if hit {
                return Some(&entry.name);
            }
        }
        None
    }

    /// Where the first suppression called `name` was defined (`file:line`).
    pub fn origin(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.origin.as_str())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

// ---------------------------------------------------------------------------
// Reading files.

/// Non-blank, non-comment lines with their 1-based numbers, trimmed the way
/// valgrind's `get_nbnc_line` does (leading and trailing white space; a line
/// whose first non-blank character is `#` is a comment).
struct Lines<'a> {
    inner: std::iter::Peekable<std::iter::Enumerate<std::str::Lines<'a>>>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Lines<'a> {
        Lines {
            inner: text.lines().enumerate().peekable(),
        }
    }

    fn skip_blank(&mut self) {
        while let Some((_, line)) = self.inner.peek() {
            let t = line.trim();
            if !t.is_empty() && !t.starts_with('#') {
                return;
            }
            self.inner.next();
        }
    }

    fn peek(&mut self) -> Option<(usize, &'a str)> {
        self.skip_blank();
        self.inner.peek().map(|&(i, l)| (i + 1, l.trim()))
    }

    fn next(&mut self) -> Option<(usize, &'a str)> {
        self.skip_blank();
        self.inner.next().map(|(i, l)| (i + 1, l.trim()))
    }
}

type ParseError = (usize, String);

fn parse_valgrind(lines: &mut Lines, origin: &str) -> Result<Vec<Entry>, ParseError> {
    let mut entries = Vec::new();
    while let Some((open_line, line)) = lines.next() {
        if line != "{" {
            return Err((
                open_line,
                format!("expected `{{` or end of file, found `{line}`"),
            ));
        }
        let unterminated = || {
            (
                open_line,
                "`{` is never closed (end of file before `}`)".to_string(),
            )
        };
        let (name_line, name) = lines.next().ok_or_else(unterminated)?;
        if name == "}" {
            return Err((name_line, "missing suppression name before `}`".into()));
        }
        let (kind_line, tool_kind) = lines.next().ok_or_else(unterminated)?;
        if tool_kind == "}" {
            return Err((
                kind_line,
                "missing `tool:kind` line (e.g. `Memcheck:Leak`)".into(),
            ));
        }
        let Some((tools, kind)) = tool_kind.split_once(':') else {
            return Err((
                kind_line,
                format!("expected a `tool:kind` line (e.g. `Memcheck:Leak`), found `{tool_kind}`"),
            ));
        };
        let memcheck = tools.split(',').any(|t| t == "Memcheck");
        if memcheck && !MEMCHECK_KINDS.contains(&kind) {
            return Err((
                kind_line,
                format!("unknown Memcheck suppression kind `{kind}`"),
            ));
        }
        if !memcheck || kind != "Leak" {
            // Another tool's or another error's entry: its body is not ours to judge.
            loop {
                match lines.next() {
                    None => return Err(unterminated()),
                    Some((_, "}")) => break,
                    Some(_) => {}
                }
            }
            continue;
        }

        let mut kinds = ALL_KINDS;
        let mut locations = Vec::new();
        let mut first = true;
        loop {
            let (n, line) = lines.next().ok_or_else(unterminated)?;
            if line == "}" {
                break;
            }
            if let Some(list) = line.strip_prefix("match-leak-kinds:") {
                if !first {
                    return Err((
                        n,
                        "`match-leak-kinds:` must come right after `Memcheck:Leak`".into(),
                    ));
                }
                first = false;
                kinds = parse_leak_kinds(list.trim_start()).map_err(|what| (n, what))?;
                continue;
            }
            first = false;
            if locations.len() == MAX_LOCATIONS {
                return Err((n, format!("more than {MAX_LOCATIONS} frames")));
            }
            locations.push(parse_location(line).ok_or_else(|| {
                (
                    n,
                    format!("expected `fun:`, `obj:`, `src:` or `...`, found `{line}`"),
                )
            })?);
        }
        if locations.is_empty() {
            return Err((name_line, format!("suppression `{name}` has no frames")));
        }
        if locations.iter().all(|l| matches!(l, Location::Frames)) {
            return Err((
                name_line,
                format!("suppression `{name}` needs at least one frame that is not `...`"),
            ));
        }
        entries.push(Entry {
            name: name.to_string(),
            origin: format!("{origin}:{name_line}"),
            rule: Rule::Valgrind { kinds, locations },
        });
    }
    Ok(entries)
}

/// memcheck's `VG_(parse_enum_set)` over `reachable,possible,indirect,definite`.
fn parse_leak_kinds(list: &str) -> Result<u8, String> {
    let (mut set, mut all, mut none) = (0u8, false, false);
    for word in list.split(',').filter(|w| !w.is_empty()) {
        match word {
            "definite" => set |= kind_bit(LeakKind::DefinitelyLost),
            "indirect" => set |= kind_bit(LeakKind::IndirectlyLost),
            "possible" => set |= kind_bit(LeakKind::PossiblyLost),
            "reachable" => set |= kind_bit(LeakKind::StillReachable),
            "all" => all = true,
            "none" => none = true,
            _ => {
                return Err(format!(
                    "unknown leak kind `{word}` in match-leak-kinds \
                     (expected definite, indirect, possible, reachable, all or none)"
                ))
            }
        }
    }
    match (all, none, set) {
        (true, false, 0) => Ok(ALL_KINDS),
        (false, true, 0) => Ok(0),
        (false, false, s) if s != 0 => Ok(s),
        (false, false, _) => Err("empty match-leak-kinds".into()),
        _ => Err("match-leak-kinds mixes `all` or `none` with other kinds".into()),
    }
}

fn parse_location(line: &str) -> Option<Location> {
    if line == "..." {
        return Some(Location::Frames);
    }
    if let Some(p) = line.strip_prefix("fun:") {
        let alt = strip_clone_suffixes(p);
        let alt = (alt.len() != p.len()).then(|| alt.to_string());
        return Some(Location::Fun(p.to_string(), alt));
    }
    if let Some(p) = line.strip_prefix("obj:") {
        return Some(Location::Obj(p.to_string()));
    }
    if let Some(p) = line.strip_prefix("src:") {
        // As valgrind: the first colon separates the line number; junk reads as 0.
        return Some(match p.split_once(':') {
            Some((file, n)) => Location::Src(file.to_string(), n.trim().parse().unwrap_or(0)),
            None => Location::Src(p.to_string(), 0),
        });
    }
    None
}

/// `foo.constprop.0.isra.0` -> `foo`: GCC names clones after the function, and
/// debug info names the function, not the clone that valgrind's symbol table shows.
fn strip_clone_suffixes(name: &str) -> &str {
    const CLONES: [&str; 7] = [
        ".constprop",
        ".isra",
        ".part",
        ".cold",
        ".lto_priv",
        ".localalias",
        ".specialized",
    ];
    let mut s = name;
    loop {
        let digits = s.trim_end_matches(|c: char| c.is_ascii_digit());
        let base = digits.strip_suffix('.').unwrap_or(s);
        match CLONES.iter().find_map(|c| base.strip_suffix(c)) {
            Some(rest) if !rest.is_empty() => s = rest,
            _ => return s,
        }
    }
}

fn parse_lsan(lines: &mut Lines, origin: &str) -> Result<Vec<Entry>, ParseError> {
    let mut entries = Vec::new();
    while let Some((n, line)) = lines.next() {
        // LSan keeps everything after `type:` verbatim (leading blanks included).
        let Some((kind, template)) = line.split_once(':') else {
            return Err((
                n,
                format!("expected `leak:PATTERN` (or a valgrind `{{` entry), found `{line}`"),
            ));
        };
        let is_type = !kind.is_empty()
            && kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !is_type || matches!(kind, "fun" | "obj" | "src" | "match-leak-kinds") {
            return Err((
                n,
                format!("expected `leak:PATTERN` (or a valgrind `{{` entry), found `{line}`"),
            ));
        }
        if kind != "leak" {
            continue; // interceptor_via_fun:, race:, ... are other sanitizers' business
        }
        entries.push(Entry {
            name: format!("leak:{template}"),
            origin: format!("{origin}:{n}"),
            rule: Rule::Lsan {
                template: template.to_string(),
            },
        });
    }
    Ok(entries)
}

// ---------------------------------------------------------------------------
// Matching valgrind entries.

/// One frame as valgrind would see it: the names `fun:` and `obj:` may match.
struct VgFrame<'a> {
    funs: Vec<Cow<'a, str>>,
    objs: Vec<Cow<'a, str>>,
    file: Option<&'a str>,
    line: Option<u32>,
}

/// The recorded stack in valgrind's shape, once per top-frame variant.
struct VgStacks<'a> {
    heads: Vec<Vec<VgFrame<'a>>>,
    rest: Vec<VgFrame<'a>>,
}

impl<'a> VgStacks<'a> {
    fn new(alloc_fn: &'a str, frames: &'a [Frame]) -> VgStacks<'a> {
        let news = operator_new_run(frames);
        if news > 0 {
            let top = top_operator_frame(&frames[news - 1]);
            return VgStacks {
                heads: vec![vec![top]],
                rest: frames[news..].iter().map(frame_view).collect(),
            };
        }
        let heads = valgrind_alloc_names(alloc_fn)
            .into_iter()
            .map(|names| names.iter().map(|&n| synthetic_frame(n)).collect())
            .collect();
        VgStacks {
            heads,
            rest: frames.iter().map(frame_view).collect(),
        }
    }

    fn matches(&self, locations: &[Location]) -> bool {
        self.heads.iter().any(|head| {
            let frame = |i: usize| head.get(i).or_else(|| self.rest.get(i - head.len()));
            prefix_match(locations, frame)
        })
    }
}

/// The top frames valgrind versions show for a leak allocated by `alloc_fn`
/// (the replacement functions call or tail-call each other differently).
fn valgrind_alloc_names(alloc_fn: &str) -> Vec<Vec<&str>> {
    match alloc_fn {
        "realloc" => vec![vec!["realloc"], vec!["malloc"]],
        "reallocarray" => vec![vec!["reallocarray"], vec!["realloc"], vec!["malloc"]],
        "posix_memalign" => vec![vec!["posix_memalign"], vec!["memalign", "posix_memalign"]],
        "aligned_alloc" => vec![vec!["aligned_alloc"], vec!["memalign"]],
        "valloc" => vec![vec!["valloc"], vec!["memalign"]],
        "pvalloc" => vec![vec!["pvalloc"], vec!["memalign"]],
        other => vec![vec![other]],
    }
}

fn vgpreload_paths<'a>() -> impl Iterator<Item = Cow<'a, str>> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "powerpc64" => "ppc64be",
        other => other,
    };
    VGPRELOAD_DIRS
        .iter()
        .map(move |dir| Cow::Owned(format!("{dir}/vgpreload_memcheck-{arch}-linux.so")))
}

fn synthetic_frame(name: &str) -> VgFrame<'_> {
    VgFrame {
        funs: vec![Cow::Borrowed(name)],
        objs: vgpreload_paths().collect(),
        file: None,
        line: None,
    }
}

fn frame_view(f: &Frame) -> VgFrame<'_> {
    let mut funs: Vec<Cow<str>> = Vec::new();
    if let Some(linkage) = f.linkage_name.as_deref() {
        funs.push(Cow::Borrowed(linkage));
        let bare = strip_version(linkage);
        if bare.len() != linkage.len() {
            funs.push(Cow::Borrowed(bare));
        }
    }
    if let Some(function) = f.function.as_deref() {
        push_new(&mut funs, function);
        if f.inlined {
            push_new(&mut funs, unqualified_name(function));
        }
    }
    if funs.is_empty() {
        funs.push(Cow::Borrowed("???"));
    }
    VgFrame {
        funs,
        objs: module_names(&f.module),
        file: f.file.as_deref(),
        line: f.line,
    }
}

fn push_new<'a>(names: &mut Vec<Cow<'a, str>>, name: &'a str) {
    if !names.iter().any(|n| n == name) {
        names.push(Cow::Borrowed(name));
    }
}

/// memcheck's top frame for an allocation made with `operator new`: the
/// replacement in its preload library, named like the operator.
fn top_operator_frame(f: &Frame) -> VgFrame<'_> {
    let mut view = frame_view(f);
    let mut extra = Vec::new();
    for name in &view.funs {
        // new[] is a tail call to new in libstdc++: the recorded frame may be either.
        if let Some(rest) = name.strip_prefix("_Znw") {
            extra.push(Cow::Owned(format!("_Zna{rest}")));
        } else if let Some(rest) = name.strip_prefix("operator new(") {
            extra.push(Cow::Owned(format!("operator new[]({rest}")));
        }
    }
    view.funs.extend(extra);
    let module = std::mem::take(&mut view.objs);
    view.objs = vgpreload_paths().chain(module).collect();
    view
}

/// How many innermost frames are `operator new` of the C++ runtime library.
fn operator_new_run(frames: &[Frame]) -> usize {
    frames
        .iter()
        .take_while(|f| is_runtime_operator_new(f))
        .count()
}

fn is_runtime_operator_new(f: &Frame) -> bool {
    let file_name = f.module.rsplit('/').next().unwrap_or(&f.module);
    // The C++ runtime's, or an allocator's that brings its own (recorded
    // with it as the innermost frame).
    if ![
        "libstdc++.so",
        "libc++",
        "libjemalloc",
        "libtcmalloc",
        "libmimalloc",
    ]
    .iter()
    .any(|p| file_name.starts_with(p))
    {
        return false;
    }
    let by_linkage = f.linkage_name.as_deref().is_some_and(|l| {
        let l = strip_version(l);
        l.starts_with("_Znw") || l.starts_with("_Zna")
    });
    let by_name = f.function.as_deref().is_some_and(|n| {
        n == "operator new"
            || n == "operator new[]"
            || n.starts_with("operator new(")
            || n.starts_with("operator new[](")
    });
    by_linkage || by_name
}

/// `obj:` candidates for a module: the recorded path and its canonical path.
fn module_names(module: &str) -> Vec<Cow<'_, str>> {
    if module.is_empty() || module == "?" {
        return vec![Cow::Borrowed("???")];
    }
    let mut names = vec![Cow::Borrowed(module)];
    if let Some(canonical) = canonical_path(module) {
        if canonical != module {
            names.push(Cow::Owned(canonical));
        }
    }
    names
}

/// The real path of a module file (valgrind names objects by the mapped file,
/// the loader by the name it opened); cached, since every record asks again.
fn canonical_path(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    static CACHE: OnceLock<Mutex<HashMap<String, Option<String>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(hit) = cache.lock().ok()?.get(path) {
        return hit.clone();
    }
    let resolved = std::fs::canonicalize(path)
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    cache
        .lock()
        .ok()?
        .insert(path.to_string(), resolved.clone());
    resolved
}

fn strip_version(name: &str) -> &str {
    match name.find('@') {
        Some(at) if at > 0 => &name[..at],
        _ => name,
    }
}

fn location_matches(loc: &Location, frame: &VgFrame) -> bool {
    match loc {
        Location::Fun(pattern, alt) => frame.funs.iter().any(|name| {
            glob(pattern.as_bytes(), name.as_bytes())
                || alt
                    .as_ref()
                    .is_some_and(|alt| glob(alt.as_bytes(), name.as_bytes()))
        }),
        Location::Obj(pattern) => frame
            .objs
            .iter()
            .any(|name| glob(pattern.as_bytes(), name.as_bytes())),
        Location::Src(pattern, line) => {
            let Some(file) = frame.file else {
                return false;
            };
            let base = file.rsplit('/').next().unwrap_or(file);
            (glob(pattern.as_bytes(), base.as_bytes()) || glob(pattern.as_bytes(), file.as_bytes()))
                && (*line == 0 || frame.line == Some(*line))
        }
        // `...` is the sequence matcher's business; it never asks about one frame.
        Location::Frames => false,
    }
}

/// `VG_(generic_match)` with `matchAll = False`: the locations match a prefix of
/// the stack (`frame(i)` is its i-th frame, `None` past the end), `...` standing
/// for any number of frames. Matching the pattern followed by an implicit `...`
/// against the whole stack is the same thing, and the usual single-backtrack
/// wildcard algorithm decides that in O(n * m).
fn prefix_match<'f, 'a: 'f>(
    locations: &[Location],
    frame: impl Fn(usize) -> Option<&'f VgFrame<'a>>,
) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p == locations.len() {
            return true;
        }
        if matches!(locations[p], Location::Frames) {
            star = Some((p, i));
            p += 1;
            continue;
        }
        if frame(i).is_some_and(|f| location_matches(&locations[p], f)) {
            p += 1;
            i += 1;
            continue;
        }
        match star {
            Some((sp, si)) if frame(si).is_some() => {
                star = Some((sp, si + 1));
                p = sp + 1;
                i = si + 1;
            }
            _ => return false,
        }
    }
}

/// `VG_(string_match)`: the whole of `s` must match; `*` any run of bytes, `?` one byte.
fn glob(pattern: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, i));
                p += 1;
            }
            Some(&c) if c == b'?' || c == s[i] => {
                p += 1;
                i += 1;
            }
            _ => match star {
                Some((sp, si)) => {
                    star = Some((sp, si + 1));
                    p = sp + 1;
                    i = si + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// The unqualified name valgrind shows for an inlined frame (its DWARF
/// `DW_AT_name`), derived from a demangled name: `void* ns::tmk<int>(int)` ->
/// `tmk<int>`, `std::vector<int>::push_back(int const&)` -> `push_back`,
/// `ns::Foo::operator()(int) const` -> `operator()`.
fn unqualified_name(demangled: &str) -> &str {
    let mut s = demangled.trim_end();
    // ` [clone .constprop.0]` suffixes of cpp_demangle.
    while let Some(open) = s.rfind(" [clone ") {
        if !s.ends_with(']') {
            break;
        }
        s = s[..open].trim_end();
    }
    // Trailing qualifiers of a member function.
    loop {
        let before = s;
        for q in [" const", " volatile", " &&", " &", " noexcept"] {
            s = s.strip_suffix(q).unwrap_or(s);
        }
        if s.len() == before.len() {
            break;
        }
    }
    // The parameter list.
    if s.ends_with(')') {
        let mut depth = 0usize;
        for (i, c) in s.char_indices().rev() {
            match c {
                ')' => depth += 1,
                '(' => {
                    depth -= 1;
                    if depth == 0 {
                        s = &s[..i];
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    // `operator...` names contain the characters used to find the scope.
    if let Some(pos) = find_operator(s) {
        return &s[pos..];
    }
    // The last component at template depth 0, after any return type.
    let bytes = s.as_bytes();
    let mut depth = 0i32;
    let mut i = bytes.len();
    while i > 0 {
        let c = bytes[i - 1];
        match c {
            b'>' | b')' | b']' | b'}' => depth += 1,
            b'<' | b'(' | b'[' | b'{' => depth -= 1,
            b':' if depth == 0 && i >= 2 && bytes[i - 2] == b':' => return &s[i..],
            b' ' if depth == 0 => return &s[i..],
            _ => {}
        }
        i -= 1;
    }
    s
}

/// Start of the last `operator` keyword that begins a name component.
fn find_operator(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut found = None;
    let mut from = 0;
    while let Some(rel) = s[from..].find("operator") {
        let pos = from + rel;
        let before_ok = pos == 0 || matches!(bytes[pos - 1], b':' | b' ');
        let after = bytes.get(pos + 8).copied();
        let after_ok = after.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == b'_'))
            || s[pos + 8..].starts_with("new")
            || s[pos + 8..].starts_with("delete");
        if before_ok && after_ok {
            found = Some(pos);
        }
        from = pos + 8;
    }
    found
}

// ---------------------------------------------------------------------------
// Matching LSan rules.

/// Every string LSan would try a `leak:` template against: for each frame its
/// module, function and source file. LSan's stacks start in its interceptor of
/// the allocation function, represented here by just its name (for
/// `operator new`, the recorded operator frame plays that part).
fn lsan_strings<'a>(alloc_fn: &'a str, frames: &'a [Frame]) -> Vec<Cow<'a, str>> {
    let mut out: Vec<Cow<str>> = Vec::new();
    if operator_new_run(frames) == 0 {
        out.push(Cow::Borrowed(alloc_fn));
    }
    for f in frames {
        if &*f.module == "?" || f.module.is_empty() {
            out.push(Cow::Borrowed("<unknown module>"));
        } else {
            out.extend(module_names(&f.module));
        }
        if let Some(function) = f.function.as_deref() {
            out.push(Cow::Borrowed(function));
            // LLVM's demangler, which LSan's reports come from, writes `>>`.
            if function.contains("> >") {
                out.push(Cow::Owned(function.replace("> >", ">>")));
            }
        }
        if let Some(file) = f.file.as_deref() {
            out.push(Cow::Borrowed(file));
        }
    }
    out
}

/// sanitizer_common's `TemplateMatch`, byte for byte: `^` anchors at the start,
/// `$` at the end, `*` is a wildcard, the rest is a substring search that
/// takes the leftmost occurrence of each piece (no backtracking).
fn lsan_template_match(template: &[u8], s: &[u8]) -> bool {
    if s.is_empty() {
        return false;
    }
    let mut t = template;
    let mut s = s;
    let mut start = false;
    if t.first() == Some(&b'^') {
        start = true;
        t = &t[1..];
    }
    let mut asterisk = false;
    while let Some(&c) = t.first() {
        if c == b'*' {
            t = &t[1..];
            start = false;
            asterisk = true;
            continue;
        }
        if c == b'$' {
            return s.is_empty() || asterisk;
        }
        if s.is_empty() {
            return false;
        }
        let end = t
            .iter()
            .position(|&b| b == b'*' || b == b'$')
            .unwrap_or(t.len());
        let piece = &t[..end];
        let Some(pos) = s.windows(piece.len()).position(|w| w == piece) else {
            return false;
        };
        if start && pos != 0 {
            return false;
        }
        s = &s[pos + piece.len()..];
        t = &t[end..];
        start = false;
        asterisk = false;
    }
    true
}

// ---------------------------------------------------------------------------
// Generating.

/// valgrind's names for the frames that end a stack below `main`
/// (`VG_(get_fnname_kind)`).
fn is_below_main(name: &str) -> bool {
    let name = strip_version(name);
    matches!(
        name,
        "__libc_start_main" | "__libc_start_call_main" | "generic_start_main" | "_dl_start_user"
    ) || name.starts_with("__libc_start_main.")
        || name.starts_with("generic_start_main.")
}

/// A ready-to-paste valgrind suppression for a loss record, like memcheck's
/// `--gen-suppressions=all`: linkage names where known (else the demangled
/// name, else `obj:` of the module, else `...`), the unqualified name for
/// inlined frames (as valgrind shows them), cut after `main` as valgrind does,
/// at most 24 frames.
pub fn generate(name: &str, kind: LeakKind, alloc_fn: &str, frames: &[Frame]) -> String {
    let news = operator_new_run(frames);
    let (first, rest) = if news > 0 {
        let top = &frames[news - 1];
        let line = match top.linkage_name.as_deref().map(strip_version) {
            // new and new[] are the same frame for us (see the module docs).
            Some(l) if l.starts_with("_Znw") => format!("fun:_Zn?{}", &l[4..]),
            Some(l) => format!("fun:{l}"),
            None => frame_line(top).unwrap_or_else(|| "fun:_Zn?m".to_string()),
        };
        (line, &frames[news..])
    } else {
        (format!("fun:{alloc_fn}"), frames)
    };

    // valgrind prints up to the outermost `main`, or else up to the innermost
    // frame below main.
    fn fun_name(f: &Frame) -> Option<&str> {
        f.linkage_name
            .as_deref()
            .or(f.function.as_deref())
            .map(strip_version)
    }
    let end = rest
        .iter()
        .rposition(|f| !f.inlined && fun_name(f) == Some("main"))
        .or_else(|| {
            rest.iter()
                .position(|f| !f.inlined && fun_name(f).is_some_and(is_below_main))
        })
        .map_or(rest.len(), |i| i + 1);

    let mut lines = vec![first];
    for f in &rest[..end] {
        if lines.len() == GENERATED_FRAMES {
            break;
        }
        let line = frame_line(f).unwrap_or_else(|| "...".to_string());
        if line == "..." && lines.last().is_some_and(|l| l == "...") {
            continue;
        }
        lines.push(line);
    }
    while lines.len() > 1 && lines.last().is_some_and(|l| l == "...") {
        lines.pop();
    }

    let name: String = name
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    let name = name.trim();
    let name = if name.is_empty() || name == "{" || name == "}" || name.starts_with('#') {
        format!("<{name}>")
    } else {
        name.to_string()
    };
    let kinds = match kind {
        LeakKind::DefinitelyLost => "definite",
        LeakKind::IndirectlyLost => "indirect",
        LeakKind::PossiblyLost => "possible",
        LeakKind::StillReachable => "reachable",
    };
    let mut out = format!("{{\n   {name}\n   Memcheck:Leak\n   match-leak-kinds: {kinds}\n");
    for line in lines {
        out.push_str("   ");
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("}\n");
    out
}

/// `fun:`/`obj:` line for one frame, `None` if nothing names it.
fn frame_line(f: &Frame) -> Option<String> {
    if f.inlined {
        if let Some(function) = f.function.as_deref() {
            return Some(format!("fun:{}", unqualified_name(function)));
        }
    }
    if let Some(name) = f.linkage_name.as_deref().or(f.function.as_deref()) {
        return Some(format!("fun:{name}"));
    }
    if f.module.is_empty() || &*f.module == "?" {
        return None;
    }
    let path = canonical_path(&f.module).unwrap_or_else(|| f.module.to_string());
    Some(format!("obj:{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbolize::Language;
    use std::path::PathBuf;
    use std::process::Command;

    const PROG: &str = "/tmp/leakhunt-suppress-test/prog";
    const LIBSTDCXX: &str = "/lib/x86_64-linux-gnu/libstdc++.so.6";

    fn fr(function: &str, linkage: &str, module: &str) -> Frame {
        Frame {
            function: Some(function.into()),
            linkage_name: Some(linkage.into()),
            file: None,
            line: None,
            module: module.into(),
            address: 0x1000,
            offset: 0x1000,
            inlined: false,
            language: Language::C,
        }
    }

    /// A C function of the program: demangled and linkage names are the same.
    fn c(name: &str) -> Frame {
        fr(name, name, PROG)
    }

    fn unnamed(module: &str) -> Frame {
        Frame {
            function: None,
            linkage_name: None,
            ..fr("", "", module)
        }
    }

    fn inlined(mut f: Frame) -> Frame {
        f.inlined = true;
        f
    }

    fn with_src(mut f: Frame, file: &str, line: u32) -> Frame {
        f.file = Some(file.into());
        f.line = Some(line);
        f
    }

    /// A leakhunt-style C stack: the caller of malloc first, down to `_start`.
    fn c_stack(names: &[&str]) -> Vec<Frame> {
        let mut v: Vec<Frame> = names.iter().map(|n| c(n)).collect();
        let libc = "/lib/x86_64-linux-gnu/libc.so.6";
        v.push(fr("__libc_start_call_main", "__libc_start_call_main", libc));
        v.push(fr(
            "__libc_start_main",
            "__libc_start_main@@GLIBC_2.34",
            libc,
        ));
        v.push(c("_start"));
        v
    }

    fn supp(text: &str) -> Suppressions {
        Suppressions::parse(text, "test.supp").unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn err(text: &str) -> String {
        match Suppressions::parse(text, "test.supp") {
            Ok(s) => panic!("parsed {} entries, expected an error", s.len()),
            Err(e) => format!("{e:#}"),
        }
    }

    fn data(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/suppress")
            .join(name)
    }

    use LeakKind::{DefinitelyLost as Definite, IndirectlyLost as Indirect};
    use LeakKind::{PossiblyLost as Possible, StillReachable as Reachable};

    #[test]
    fn memcheck_generated_entry_matches_with_the_synthetic_malloc_frame() {
        let s = supp("{\n   x\n   Memcheck:Leak\n   match-leak-kinds: definite\n   fun:malloc\n   fun:leaky\n   fun:main\n}\n");
        assert_eq!(s.len(), 1);
        let stack = c_stack(&["leaky", "main"]);
        assert_eq!(s.matches(Definite, "malloc", &stack), Some("x"));
        // The allocation function is part of the stack, and so is the kind.
        assert_eq!(s.matches(Definite, "calloc", &stack), None);
        assert_eq!(s.matches(Reachable, "malloc", &stack), None);
        // A prefix of the stack, starting at the innermost frame.
        assert_eq!(s.matches(Definite, "malloc", &c_stack(&["leaky"])), None);
        assert_eq!(
            s.matches(Definite, "malloc", &c_stack(&["helper", "leaky", "main"])),
            None
        );
        assert_eq!(s.matches(Definite, "malloc", &stack[..1]), None);
    }

    #[test]
    fn fun_obj_globs_and_frame_wildcards() {
        let s = supp(
            "{\n q\n Memcheck:Leak\n fun:?alloc\n fun:le?ky\n}\n\
             {\n dots\n Memcheck:Leak\n fun:malloc\n ...\n fun:deep_*\n ...\n fun:main\n}\n\
             {\n obj\n Memcheck:Leak\n obj:*vgpreload_memcheck*\n obj:/tmp/leakhunt-suppress-test/*\n fun:ma?n\n}\n\
             {\n lead-dots\n Memcheck:Leak\n ...\n fun:lonely\n}\n",
        );
        assert_eq!(s.len(), 4);
        assert_eq!(
            s.matches(Definite, "calloc", &c_stack(&["leaky"])),
            Some("q")
        );
        assert_eq!(s.matches(Definite, "malloc", &c_stack(&["leak"])), None);
        // `...` spans zero or more frames.
        let deep = c_stack(&["a", "b", "deep_one", "c", "main"]);
        assert_eq!(s.matches(Possible, "malloc", &deep), Some("dots"));
        let adjacent = c_stack(&["deep_x", "main"]);
        assert_eq!(s.matches(Possible, "malloc", &adjacent), Some("dots"));
        assert_eq!(
            s.matches(Possible, "malloc", &c_stack(&["a", "main"])),
            Some("obj"),
            "obj: of the synthetic frame and of the program's frame"
        );
        assert_eq!(s.matches(Possible, "malloc", &c_stack(&["a", "b"])), None);
        assert_eq!(
            s.matches(Indirect, "realloc", &c_stack(&["x", "y", "lonely"])),
            Some("lead-dots")
        );
        // `*` matches across `::`, `(` and spaces; globs are anchored at both ends.
        let s = supp("{\n cpp\n Memcheck:Leak\n fun:malloc\n fun:*Cache*insert*\n}\n");
        let frame = fr(
            "app::Cache<int>::insert(int const&)",
            "_ZN3app5CacheIiE6insertERKi",
            PROG,
        );
        assert_eq!(s.matches(Definite, "malloc", &[frame]), Some("cpp"));
        let s = supp("{\n anchored\n Memcheck:Leak\n fun:mall\n}\n");
        assert_eq!(s.matches(Definite, "malloc", &c_stack(&["x"])), None);
    }

    #[test]
    fn match_leak_kinds() {
        let s = supp(
            "{\n absent\n Memcheck:Leak\n fun:malloc\n fun:a\n}\n\
             {\n all\n Memcheck:Leak\n match-leak-kinds: all\n fun:malloc\n fun:b\n}\n\
             {\n two\n Memcheck:Leak\n match-leak-kinds:possible,reachable\n fun:malloc\n fun:c\n}\n\
             {\n none\n Memcheck:Leak\n match-leak-kinds: none\n fun:malloc\n fun:d\n}\n\
             {\n indirect\n Memcheck:Leak\n match-leak-kinds: indirect,,\n fun:malloc\n fun:e\n}\n",
        );
        for kind in [Definite, Indirect, Possible, Reachable] {
            assert_eq!(s.matches(kind, "malloc", &[c("a")]), Some("absent"));
            assert_eq!(s.matches(kind, "malloc", &[c("b")]), Some("all"));
            assert_eq!(s.matches(kind, "malloc", &[c("d")]), None);
        }
        assert_eq!(s.matches(Definite, "malloc", &[c("c")]), None);
        assert_eq!(s.matches(Indirect, "malloc", &[c("c")]), None);
        assert_eq!(s.matches(Possible, "malloc", &[c("c")]), Some("two"));
        assert_eq!(s.matches(Reachable, "malloc", &[c("c")]), Some("two"));
        assert_eq!(s.matches(Indirect, "malloc", &[c("e")]), Some("indirect"));
        assert_eq!(s.matches(Definite, "malloc", &[c("e")]), None);
    }

    #[test]
    fn first_matching_entry_wins() {
        let s = supp(
            "{\n specific\n Memcheck:Leak\n match-leak-kinds: reachable\n fun:malloc\n fun:a\n}\n\
             {\n general\n Memcheck:Leak\n fun:malloc\n}\n",
        );
        assert_eq!(s.matches(Reachable, "malloc", &[c("a")]), Some("specific"));
        assert_eq!(s.matches(Definite, "malloc", &[c("a")]), Some("general"));
        assert_eq!(s.origin("general"), Some("test.supp:9"));
    }

    #[test]
    fn allocation_function_variants_of_valgrind_versions() {
        // What valgrind 3.19 prints (measured on Debian 12) and what later versions print.
        let cases: &[(&str, &[&str])] = &[
            ("realloc", &["realloc"]),
            ("realloc", &["malloc"]),
            ("reallocarray", &["reallocarray"]),
            ("reallocarray", &["malloc"]),
            ("posix_memalign", &["memalign", "posix_memalign"]),
            ("posix_memalign", &["posix_memalign"]),
            ("aligned_alloc", &["memalign"]),
            ("valloc", &["memalign"]),
            ("memalign", &["memalign"]),
            ("calloc", &["calloc"]),
        ];
        for (alloc_fn, top) in cases {
            let mut text = String::from("{\n v\n Memcheck:Leak\n");
            for t in *top {
                text += &format!(" fun:{t}\n");
            }
            text += " fun:f\n fun:main\n}\n";
            let s = supp(&text);
            assert_eq!(
                s.matches(Definite, alloc_fn, &c_stack(&["f", "main"])),
                Some("v"),
                "{alloc_fn} as {top:?}"
            );
        }
        let s = supp("{\n v\n Memcheck:Leak\n fun:memalign\n fun:f\n}\n");
        assert_eq!(s.matches(Definite, "malloc", &[c("f")]), None);
        assert_eq!(s.matches(Definite, "posix_memalign", &[c("f")]), None);
    }

    #[test]
    fn operator_new_is_the_top_frame() {
        let new = fr("operator new(unsigned long)", "_Znwm", LIBSTDCXX);
        let s = supp("{\n new\n Memcheck:Leak\n fun:_Znwm\n fun:main\n}\n");
        let stack = vec![new.clone(), c("main")];
        assert_eq!(s.matches(Definite, "malloc", &stack), Some("new"));
        // memcheck never shows malloc under operator new.
        let s2 = supp("{\n m\n Memcheck:Leak\n fun:malloc\n fun:_Znwm\n}\n");
        assert_eq!(s2.matches(Definite, "malloc", &stack), None);
        // The demangled spelling and the preload's obj: work too.
        let s3 = supp(
            "{\n d\n Memcheck:Leak\n obj:*vgpreload_memcheck*\n fun:main\n}\n\
             {\n e\n Memcheck:Leak\n fun:operator new(unsigned long)\n fun:main\n}\n",
        );
        assert_eq!(s3.matches(Definite, "malloc", &stack), Some("d"));

        // new[] and nothrow new call plain new inside libstdc++: the outermost
        // operator frame is the one memcheck shows.
        let array = fr("operator new[](unsigned long)", "_Znam", LIBSTDCXX);
        let nothrow = fr(
            "operator new(unsigned long, std::nothrow_t const&)",
            "_ZnwmRKSt9nothrow_t",
            LIBSTDCXX,
        );
        let s = supp(
            "{\n arr\n Memcheck:Leak\n fun:_Znam\n fun:f\n}\n\
             {\n nt\n Memcheck:Leak\n fun:_ZnwmRKSt9nothrow_t\n fun:g\n}\n",
        );
        let stack = vec![new.clone(), array, c("f")];
        assert_eq!(s.matches(Definite, "malloc", &stack), Some("arr"));
        let stack = vec![new.clone(), nothrow, c("g")];
        assert_eq!(s.matches(Definite, "malloc", &stack), Some("nt"));
        // libstdc++'s new[] is a tail call to new: only new is recorded.
        let stack = vec![new.clone(), c("f")];
        assert_eq!(s.matches(Definite, "malloc", &stack), Some("arr"));

        // A replacement operator new in the program itself is an ordinary frame.
        let own = fr("operator new(unsigned long)", "_Znwm", PROG);
        let s = supp(
            "{\n own\n Memcheck:Leak\n fun:malloc\n fun:_Znwm\n fun:main\n}\n\
             {\n new\n Memcheck:Leak\n fun:_Znwm\n fun:main\n}\n",
        );
        assert_eq!(
            s.matches(Definite, "malloc", &[own, c("main")]),
            Some("own")
        );
    }

    #[test]
    fn mangled_demangled_versioned_and_cloned_names() {
        let bar = fr("foo::bar()", "_ZN3foo3barEv", PROG);
        let s = supp(
            "{\n mangled\n Memcheck:Leak\n fun:malloc\n fun:_ZN3foo3barEv\n}\n\
             {\n demangled\n Memcheck:Leak\n fun:malloc\n fun:foo::bar()\n}\n",
        );
        assert_eq!(
            s.matches(Definite, "malloc", std::slice::from_ref(&bar)),
            Some("mangled")
        );
        let s = supp("{\n demangled\n Memcheck:Leak\n fun:malloc\n fun:foo::bar()\n}\n");
        assert_eq!(
            s.matches(Definite, "malloc", std::slice::from_ref(&bar)),
            Some("demangled")
        );

        // valgrind shows versioned symbol-table names; users write bare ones.
        let create = fr(
            "pthread_create",
            "pthread_create@@GLIBC_2.34",
            "/lib/x86_64-linux-gnu/libc.so.6",
        );
        for name in [
            "pthread_create@@GLIBC_2.34",
            "pthread_create",
            "pthread_create@*",
        ] {
            let s = supp(&format!(
                "{{\n v\n Memcheck:Leak\n fun:calloc\n ...\n fun:{name}\n}}\n"
            ));
            let stack = vec![c("allocate_dtv"), create.clone(), c("main")];
            assert_eq!(s.matches(Possible, "calloc", &stack), Some("v"), "{name}");
        }

        // A GCC clone in valgrind's symbol table is its function in debug info.
        let s =
            supp("{\n clone\n Memcheck:Leak\n fun:malloc\n fun:fill.constprop.0\n fun:main\n}\n");
        assert_eq!(
            s.matches(Definite, "malloc", &[c("fill"), c("main")]),
            Some("clone")
        );
        assert_eq!(s.matches(Definite, "malloc", &[c("fil"), c("main")]), None);
    }

    #[test]
    fn inlined_frames_are_frames_with_their_dwarf_names() {
        // What memcheck printed for a malloc in ns::Foo::mk (inlined into
        // ns::tmk<int>, inlined into outer(int)) with g++ -O2 -g.
        let s = supp(
            "{\n inl\n Memcheck:Leak\n match-leak-kinds: definite\n fun:malloc\n fun:mk\n fun:tmk<int>\n fun:_Z5outeri\n fun:main\n}\n",
        );
        let stack = vec![
            inlined(fr("ns::Foo::mk(int)", "_ZN2ns3Foo2mkEi", PROG)),
            inlined(fr("void* ns::tmk<int>(int)", "_ZN2ns3tmkIiEEPvT_", PROG)),
            fr("outer(int)", "_Z5outeri", PROG),
            c("main"),
        ];
        assert_eq!(s.matches(Definite, "malloc", &stack), Some("inl"));
        // Without the inlined frames the entry does not match: they count.
        let flat = vec![stack[2].clone(), stack[3].clone()];
        assert_eq!(s.matches(Definite, "malloc", &flat), None);
    }

    #[test]
    fn unknown_frames_and_src_lines() {
        let s = supp(
            "{\n qqq\n Memcheck:Leak\n fun:malloc\n fun:???\n obj:/tmp/leakhunt-suppress-test/prog\n fun:main\n}\n",
        );
        let stack = vec![unnamed("/opt/lib/libx.so"), unnamed(PROG), c("main")];
        assert_eq!(s.matches(Definite, "malloc", &stack), Some("qqq"));
        let s = supp("{\n unknown-module\n Memcheck:Leak\n fun:malloc\n obj:???\n}\n");
        assert_eq!(
            s.matches(Definite, "malloc", &[unnamed("?")]),
            Some("unknown-module")
        );
        let s = supp("{\n src\n Memcheck:Leak\n fun:malloc\n src:leaky.c:12\n src:*.c\n}\n");
        let stack = vec![
            with_src(c("leaky"), "/home/u/src/leaky.c", 12),
            with_src(c("main"), "/home/u/src/main.c", 3),
        ];
        assert_eq!(s.matches(Definite, "malloc", &stack), Some("src"));
        let other_line = vec![
            with_src(c("leaky"), "/home/u/src/leaky.c", 13),
            stack[1].clone(),
        ];
        assert_eq!(s.matches(Definite, "malloc", &other_line), None);
    }

    #[test]
    fn other_tools_and_error_kinds_are_skipped() {
        let s = Suppressions::load(&data("memcheck.supp")).expect("load");
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(
            s.matches(Definite, "malloc", &c_stack(&["leaky", "main"])),
            Some("generated-by-memcheck")
        );
        assert_eq!(
            s.matches(
                Reachable,
                "calloc",
                &c_stack(&["node_new", "cache_put", "main"])
            ),
            Some("any-cache-fill")
        );
        let old = vec![fr("old_init()", "_Z8old_initv", PROG), c("main")];
        assert_eq!(
            s.matches(Indirect, "malloc", &old),
            Some("old-style-without-kinds")
        );
        assert!(s
            .origin("any-cache-fill")
            .is_some_and(|o| o.ends_with("memcheck.supp:14")));
        // Several tools on one line, and a kind memcheck knows that is not ours.
        let s = supp(
            "{\n both\n Helgrind,Memcheck:Leak\n fun:malloc\n}\n\
             {\n cond\n Memcheck:Cond\n fun:strlen\n}\n\
             {\n core\n core:PThread\n fun:x\n}\n",
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s.matches(Definite, "malloc", &[]), Some("both"));
    }

    #[test]
    fn lsan_rules() {
        let s = Suppressions::load(&data("lsan.supp")).expect("load");
        assert_eq!(s.len(), 3);
        let lib = fr("foo_make", "foo_make", "/usr/lib/libfoo.so.1");
        assert_eq!(
            s.matches(Definite, "malloc", &[lib, c("main")]),
            Some("leak:libfoo.so")
        );
        let init = c("third_party_init");
        assert_eq!(
            s.matches(Reachable, "malloc", &[c("x"), init]),
            Some("leak:^third_party_init$")
        );
        assert_eq!(
            s.matches(Definite, "malloc", &[c("third_party_init2")]),
            None
        );
        assert_eq!(
            s.matches(Definite, "malloc", &[c("my_third_party_init")]),
            None
        );
        let vendored = with_src(c("v"), "/src/vendor/zlib/inflate.c", 10);
        assert_eq!(
            s.matches(Definite, "malloc", &[vendored]),
            Some("leak:*/vendor/*")
        );
        assert_eq!(s.matches(Definite, "malloc", &[c("ignored_here")]), None);
    }

    #[test]
    fn lsan_template_match_is_sanitizer_commons() {
        let m = |t: &str, s: &str| lsan_template_match(t.as_bytes(), s.as_bytes());
        assert!(m("foo", "xfooy"));
        assert!(m("^foo", "foobar"));
        assert!(!m("^foo", "xfoo"));
        assert!(m("foo$", "xfoo"));
        assert!(!m("foo$", "foox"));
        assert!(m("^foo$", "foo"));
        assert!(m("a*b", "xaxxbx"));
        assert!(!m("a*b", "bxa"));
        assert!(m("^a*b$", "axxb"));
        assert!(m("*", "anything"));
        // An empty template matches every non-empty string; nothing matches "".
        assert!(m("", "x"));
        assert!(!m("", ""));
        // `$` after `*` accepts any tail; a piece is searched leftmost only.
        assert!(m("ab*$", "abzzz"));
        assert!(!m("ab$", "abab"));
        // C++ names as LLVM writes them match cpp_demangle's `> >`.
        let s = supp("leak:std::vector<int, std::allocator<int>>::push_back\n");
        let f = fr(
            "std::vector<int, std::allocator<int> >::push_back(int const&)",
            "_ZNSt6vectorIiSaIiEE9push_backERKi",
            PROG,
        );
        assert!(s.matches(Definite, "malloc", &[f]).is_some());
        // LSan's stacks start in its malloc interceptor.
        let s = supp("leak:calloc\n");
        assert!(s.matches(Definite, "calloc", &[c("x")]).is_some());
        assert!(s.matches(Definite, "malloc", &[c("x")]).is_none());
        let s = supp("leak:malloc\n");
        let new = fr("operator new(unsigned long)", "_Znwm", LIBSTDCXX);
        assert!(s.matches(Definite, "malloc", &[new, c("x")]).is_none());
    }

    #[test]
    fn generated_suppressions() {
        let stack = c_stack(&["leaky", "main"]);
        let text = generate("<leak 1>", Definite, "malloc", &stack);
        assert_eq!(
            text,
            "{\n   <leak 1>\n   Memcheck:Leak\n   match-leak-kinds: definite\n   fun:malloc\n   fun:leaky\n   fun:main\n}\n"
        );

        let cxx = vec![
            fr("operator new(unsigned long)", "_Znwm", LIBSTDCXX),
            inlined(fr(
                "std::__new_allocator<int>::allocate(unsigned long, void const*)",
                "_ZNSt15__new_allocatorIiE8allocateEmPKv",
                PROG,
            )),
            fr(
                "std::vector<int, std::allocator<int> >::push_back(int const&)",
                "_ZNSt6vectorIiSaIiEE9push_backERKi",
                PROG,
            ),
            unnamed("/opt/lib/libplugin.so"),
            unnamed("?"),
            unnamed("?"),
            fr("run(int)", "_Z3runi", PROG),
            c("main"),
            c("after_main_is_cut"),
        ];
        let text = generate("cxx", Reachable, "malloc", &cxx);
        assert_eq!(
            text,
            "{\n   cxx\n   Memcheck:Leak\n   match-leak-kinds: reachable\n   fun:_Zn?m\n   fun:allocate\n   \
             fun:_ZNSt6vectorIiSaIiEE9push_backERKi\n   obj:/opt/lib/libplugin.so\n   ...\n   fun:_Z3runi\n   fun:main\n}\n"
        );

        let deep: Vec<Frame> = (0..40).map(|i| c(&format!("f{i}"))).collect();
        let text = generate("deep", Possible, "calloc", &deep);
        assert_eq!(
            text.lines().filter(|l| l.starts_with("   fun:")).count(),
            24
        );

        // A thread's stack has no main: valgrind prints it all.
        let thread = vec![
            c("worker"),
            fr(
                "start_thread",
                "start_thread",
                "/lib/x86_64-linux-gnu/libc.so.6",
            ),
            fr("clone3", "clone3", "/lib/x86_64-linux-gnu/libc.so.6"),
        ];
        let text = generate("t", Definite, "malloc", &thread);
        assert!(text.contains("fun:clone3"), "{text}");
        // Below main ends the stack when main itself is missing.
        let no_main = c_stack(&["f"])
            .into_iter()
            .filter(|f| f.function.as_deref() != Some("__libc_start_call_main"))
            .collect::<Vec<_>>();
        let text = generate("b", Definite, "malloc", &no_main);
        assert!(
            text.contains("fun:__libc_start_main@@GLIBC_2.34\n}"),
            "{text}"
        );
        // A name that would break the entry is wrapped.
        assert!(generate("", Definite, "malloc", &stack).contains("\n   <>\n"));
        assert!(generate("a\nb", Definite, "malloc", &stack).contains("\n   a b\n"));

        // Every generated suppression matches its own record, and only for its kind.
        let inline_stack = vec![
            inlined(fr("ns::Foo::mk(int)", "_ZN2ns3Foo2mkEi", PROG)),
            inlined(fr(
                "ns::Foo::operator()(int) const",
                "_ZNK2ns3FooclEi",
                PROG,
            )),
            fr("outer(int)", "_Z5outeri", PROG),
            c("main"),
        ];
        let cases: Vec<(LeakKind, &str, Vec<Frame>)> = vec![
            (Definite, "malloc", stack.clone()),
            (Reachable, "malloc", cxx),
            (Possible, "calloc", deep),
            (Indirect, "posix_memalign", thread),
            (Definite, "valloc", no_main),
            (Reachable, "realloc", inline_stack),
            (Definite, "malloc", vec![]),
            (Definite, "malloc", vec![unnamed("?")]),
        ];
        for (kind, alloc_fn, frames) in cases {
            let text = generate("round trip", kind, alloc_fn, &frames);
            let s =
                Suppressions::parse(&text, "generated").unwrap_or_else(|e| panic!("{e:#}\n{text}"));
            assert_eq!(
                s.matches(kind, alloc_fn, &frames),
                Some("round trip"),
                "{text}"
            );
            let other = if kind == Definite {
                Reachable
            } else {
                Definite
            };
            assert_eq!(s.matches(other, alloc_fn, &frames), None, "{text}");
        }
    }

    #[test]
    fn malformed_files_name_file_and_line() {
        let e = Suppressions::load(&data("unterminated.supp")).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.starts_with("suppression file ")
                && msg.contains("unterminated.supp line 7: `{` is never closed"),
            "{msg}"
        );
        let e = Suppressions::load(&data("bad-kind.supp")).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("bad-kind.supp line 10: unknown leak kind `reachble`"),
            "{msg}"
        );
        let e = Suppressions::load(&data("no-such-file.supp")).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("no-such-file.supp: cannot read it"), "{msg}");

        let cases: &[(&str, &str)] = &[
            (
                "{\n n\n Memcheck:Leak\n fun:malloc\n",
                "line 1: `{` is never closed",
            ),
            (
                "{\n n\n Memcheck:Laek\n fun:malloc\n}\n",
                "line 3: unknown Memcheck suppression kind `Laek`",
            ),
            (
                "{\n n\n Memcheck:Leak\n match-leak-kinds: all,definite\n fun:x\n}\n",
                "line 4: match-leak-kinds mixes",
            ),
            (
                "{\n n\n Memcheck:Leak\n match-leak-kinds: definite, indirect\n fun:x\n}\n",
                "line 4: unknown leak kind ` indirect`",
            ),
            (
                "{\n n\n Memcheck:Leak\n match-leak-kinds:\n fun:x\n}\n",
                "line 4: empty match-leak-kinds",
            ),
            (
                "{\n n\n Memcheck:Leak\n fun:x\n match-leak-kinds: all\n}\n",
                "line 5: `match-leak-kinds:` must come right after",
            ),
            (
                "{\n n\n Memcheck:Leak\n fun:x\n  bogus\n}\n",
                "line 5: expected `fun:`, `obj:`, `src:` or `...`, found `bogus`",
            ),
            (
                "{\n n\n Memcheck:Leak\n}\n",
                "line 2: suppression `n` has no frames",
            ),
            (
                "{\n n\n Memcheck:Leak\n ...\n ...\n}\n",
                "line 2: suppression `n` needs at least one frame",
            ),
            (
                "{\n n\n Leak\n fun:x\n}\n",
                "line 3: expected a `tool:kind` line",
            ),
            ("{\n}\n", "line 2: missing suppression name"),
            ("{\n n\n}\n", "line 3: missing `tool:kind` line"),
            (
                "\n# c\n{\n n\n Memcheck:Leak\n fun:x\n}\nfun:y\n",
                "line 8: expected `{` or end of file, found `fun:y`",
            ),
            ("leak:a\nfoo\n", "line 2: expected `leak:PATTERN`"),
            ("leak:a\nfun:malloc\n", "line 2: expected `leak:PATTERN`"),
            ("just some text\n", "line 1: expected `leak:PATTERN`"),
        ];
        for (text, want) in cases {
            let msg = err(text);
            assert!(
                msg.starts_with("suppression file test.supp ") && msg.contains(want),
                "{text:?}: got `{msg}`, want `{want}`"
            );
            assert!(!msg.contains('\n'), "one line: {msg}");
        }
        let too_many = format!(
            "{{\n n\n Memcheck:Leak\n{}}}\n",
            " fun:x\n".repeat(MAX_LOCATIONS + 1)
        );
        assert!(err(&too_many).contains("more than 500 frames"));
        // Empty files and comment-only files are empty sets.
        assert!(supp("").is_empty());
        assert!(supp("# nothing\n\n   # here\n").is_empty());
        // CRLF and stray white space are fine.
        let s = supp("{\r\n\tn\r\n  Memcheck:Leak  \r\n\tfun:malloc\r\n}\r\n");
        assert_eq!(s.matches(Definite, "malloc", &[]), Some("n"));
    }

    fn default_supp_path() -> Option<PathBuf> {
        DEFAULT_SUPP_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    }

    #[test]
    fn parses_this_machines_default_supp() {
        let Some(path) = default_supp_path() else {
            eprintln!("skipping: no valgrind default.supp on this machine");
            return;
        };
        let text = std::fs::read_to_string(&path).expect("read default.supp");
        let s = Suppressions::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
        let leak_entries = text.lines().filter(|l| l.trim() == "Memcheck:Leak").count();
        assert_eq!(s.len(), leak_entries);
        if std::env::var_os("VALGRIND_LIB").is_none() {
            assert_eq!(Suppressions::memcheck_default().len(), leak_entries);
        }
        // Debian 12's file hides glibc's lazily allocated TLS of dlopen'ed modules.
        if text.contains("fun:tls_get_addr_tail*") {
            let stack = vec![
                fr(
                    "tls_get_addr_tail",
                    "tls_get_addr_tail",
                    "/lib64/ld-linux-x86-64.so.2",
                ),
                fr(
                    "__tls_get_addr",
                    "__tls_get_addr",
                    "/lib64/ld-linux-x86-64.so.2",
                ),
                c("uses_tls"),
            ];
            assert!(s.matches(Reachable, "malloc", &stack).is_some());
            assert!(s.matches(Definite, "malloc", &stack).is_none());
        }
    }

    #[test]
    fn builtin_list() {
        let b = Suppressions::builtin();
        assert_eq!(b.len(), 6, "every built-in entry parses");
        let libc = "/lib/x86_64-linux-gnu/libc.so.6";
        let ld = "/lib64/ld-linux-x86-64.so.2";
        let stdio = vec![
            fr("_IO_file_doallocate", "_IO_file_doallocate", libc),
            fr("_IO_doallocbuf", "_IO_doallocbuf", libc),
            fr("puts", "puts", libc),
            c("main"),
        ];
        assert_eq!(
            b.matches(Reachable, "malloc", &stdio),
            Some("leakhunt-builtin:glibc-stdio-buffer")
        );
        assert_eq!(b.matches(Definite, "malloc", &stdio), None);
        let dtv = vec![
            inlined(fr("calloc", "calloc", ld)),
            fr("allocate_dtv", "allocate_dtv", ld),
            fr("_dl_allocate_tls", "_dl_allocate_tls", ld),
            inlined(fr("allocate_stack", "allocate_stack", libc)),
            fr("pthread_create", "pthread_create@@GLIBC_2.34", libc),
            c("main"),
        ];
        assert_eq!(
            b.matches(Possible, "calloc", &dtv),
            Some("leakhunt-builtin:glibc-thread-dtv")
        );
        let pool = vec![
            unnamed(LIBSTDCXX),
            inlined(fr("call_init", "call_init", ld)),
            fr("call_init", "call_init", ld),
            fr("_dl_init", "_dl_init", ld),
            unnamed(ld),
        ];
        assert_eq!(
            b.matches(Reachable, "malloc", &pool),
            Some("leakhunt-builtin:libstdc++-emergency-eh-pool")
        );
        let locale = vec![
            fr("_nl_find_locale", "_nl_find_locale", libc),
            fr("setlocale", "setlocale", libc),
            c("main"),
        ];
        assert!(b.matches(Reachable, "malloc", &locale).is_some());
        assert!(b.matches(Definite, "malloc", &locale).is_none());
        // A plain leak is nobody's noise.
        assert_eq!(
            b.matches(Reachable, "malloc", &c_stack(&["leaky", "main"])),
            None
        );
    }

    #[test]
    fn helpers() {
        assert!(glob(b"*", b""));
        assert!(glob(b"a*b*c", b"aXbYc"));
        assert!(glob(b"a*b*c", b"abcbc"));
        assert!(!glob(b"a*b*c", b"abcb"));
        assert!(glob(b"???", b"abc"));
        assert!(!glob(b"??", b"abc"));
        assert!(glob(
            b"*a*a*a*a*b",
            &[b"a".repeat(40), b"b".to_vec()].concat()
        ));
        assert!(!glob(b"*a*a*a*a*b", &b"a".repeat(40)));

        assert_eq!(unqualified_name("void* ns::tmk<int>(int)"), "tmk<int>");
        assert_eq!(unqualified_name("ns::Foo::mk(int)"), "mk");
        assert_eq!(
            unqualified_name("std::vector<int, std::allocator<int> >::push_back(int const&)"),
            "push_back"
        );
        assert_eq!(
            unqualified_name("ns::Foo::operator()(int) const"),
            "operator()"
        );
        assert_eq!(
            unqualified_name("operator new(unsigned long)"),
            "operator new"
        );
        assert_eq!(
            unqualified_name("bool ns::operator< <int>(ns::X<int> const&, ns::X<int> const&)"),
            "operator< <int>"
        );
        assert_eq!(
            unqualified_name("(anonymous namespace)::pool::pool()"),
            "pool"
        );
        assert_eq!(unqualified_name("helper"), "helper");
        assert_eq!(
            unqualified_name("<alloc::vec::Vec<T> as core::ops::drop::Drop>::drop"),
            "drop"
        );
        assert_eq!(unqualified_name("foo(int) [clone .constprop.0]"), "foo");

        assert_eq!(strip_clone_suffixes("foo.constprop.0.isra.0"), "foo");
        assert_eq!(strip_clone_suffixes("foo.cold"), "foo");
        assert_eq!(strip_clone_suffixes("_ZN1a1bEv.part.0"), "_ZN1a1bEv");
        assert_eq!(strip_clone_suffixes("foo.bar"), "foo.bar");
        assert_eq!(strip_clone_suffixes(".cold"), ".cold");
    }

    // -----------------------------------------------------------------------
    // Against real memcheck.

    fn have(tool: &str) -> bool {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("leakhunt-supp-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("mkdir");
            TempDir(dir)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Runs memcheck; returns the log and the suppressions it generated.
    fn memcheck(dir: &Path, exe: &Path, extra: &[String]) -> (String, Vec<String>) {
        let log = dir.join(format!("memcheck-{}.log", extra.len()));
        let out = Command::new("valgrind")
            .args([
                // Client memory above 4 GiB, as the project's other memcheck
                // runs (tests/src/lib.rs, MEMCHECK_HIGH_HEAP).
                "--aspace-minaddr=0x100000000",
                "--leak-check=full",
                "--show-leak-kinds=all",
                "--gen-suppressions=all",
            ])
            .arg(format!("--log-file={}", log.display()))
            .args(extra)
            .arg(exe)
            .output()
            .expect("run valgrind");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&log).expect("read log");
        let mut blocks = Vec::new();
        let mut current: Option<String> = None;
        for line in text.lines().filter(|l| !l.starts_with("==")) {
            if line == "{" {
                current = Some(String::new());
            }
            if let Some(block) = current.as_mut() {
                block.push_str(line);
                block.push('\n');
            }
            if line == "}" {
                blocks.extend(current.take());
            }
        }
        (text, blocks)
    }

    fn compile(
        compiler: &str,
        dir: &Path,
        file: &str,
        src: &str,
        flags: &[&str],
    ) -> Option<PathBuf> {
        if !have(compiler) {
            eprintln!("skipping: `{compiler}` not found");
            return None;
        }
        let src_path = dir.join(file);
        std::fs::write(&src_path, src).expect("write source");
        let exe = dir.join(file.replace('.', "_"));
        let out = Command::new(compiler)
            .args(flags)
            .arg("-o")
            .arg(&exe)
            .arg(&src_path)
            .output()
            .expect("run compiler");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(exe)
    }

    fn block_with<'a>(blocks: &'a [String], needle: &str) -> &'a str {
        blocks
            .iter()
            .find(|b| b.contains(needle))
            .unwrap_or_else(|| panic!("no suppression with {needle} in {blocks:#?}"))
    }

    const LEAKY_C: &str = r#"#include <stdlib.h>
void * volatile sink;
void *kept;
__attribute__((noinline)) void leaky(void) { sink = malloc(32); sink = 0; }
__attribute__((noinline)) void keep(void) { kept = calloc(4, 8); }
int main(void) { leaky(); keep(); return 0; }
"#;

    const LEAKY_CPP: &str = r#"#include <cstdlib>
void * volatile sink;
namespace ns {
struct Foo { static inline __attribute__((always_inline)) void *mk(int n) { return malloc(n); } };
template <typename T> inline __attribute__((always_inline)) void *tmk(T n) { return Foo::mk(n); }
}
__attribute__((noinline)) void via_new() { sink = new int(1); sink = 0; }
__attribute__((noinline)) void via_new_array() { sink = new int[3]; sink = 0; }
__attribute__((noinline)) void via_inline(int n) { sink = ns::tmk<int>(n); sink = 0; }
int main() { via_new(); via_new_array(); via_inline(10); }
"#;

    #[test]
    fn memcheck_generated_suppressions_match_leakhunt_stacks() {
        if !have("valgrind") {
            eprintln!("skipping: valgrind not installed");
            return;
        }
        let dir = TempDir::new("memcheck");
        let Some(exe) = compile("cc", &dir.0, "leaky.c", LEAKY_C, &["-g", "-O0"]) else {
            return;
        };
        let (_, blocks) = memcheck(&dir.0, &exe, &[]);
        let leaky = block_with(&blocks, "fun:leaky");
        let keep = block_with(&blocks, "fun:keep");
        let s = supp(&leaky.replace("<insert_a_suppression_name_here>", "leaky"));
        let leaky_stack = c_stack(&["leaky", "main"]);
        assert_eq!(
            s.matches(Definite, "malloc", &leaky_stack),
            Some("leaky"),
            "{leaky}"
        );
        assert_eq!(s.matches(Reachable, "malloc", &leaky_stack), None);
        let s = supp(&keep.replace("<insert_a_suppression_name_here>", "keep"));
        let keep_stack = c_stack(&["keep", "main"]);
        assert_eq!(
            s.matches(Reachable, "calloc", &keep_stack),
            Some("keep"),
            "{keep}"
        );
        assert_eq!(s.matches(Reachable, "malloc", &keep_stack), None);

        // And the other way round: memcheck accepts what we generate.
        let ours = generate("ours-leaky", Definite, "malloc", &leaky_stack)
            + &generate("ours-keep", Reachable, "calloc", &keep_stack);
        let file = dir.0.join("ours.supp");
        std::fs::write(&file, &ours).expect("write");
        let (log, _) = memcheck(
            &dir.0,
            &exe,
            &[format!("--suppressions={}", file.display())],
        );
        assert!(
            log.contains("suppressed: 64 bytes in 2 blocks"),
            "{ours}\n{log}"
        );

        let Some(exe) = compile("c++", &dir.0, "leaky.cpp", LEAKY_CPP, &["-g", "-O2"]) else {
            return;
        };
        let (_, blocks) = memcheck(&dir.0, &exe, &[]);
        let libstdcxx = Command::new("c++")
            .arg("-print-file-name=libstdc++.so.6")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let new = fr("operator new(unsigned long)", "_Znwm", &libstdcxx);
        let cases = vec![
            (
                "fun:_Z7via_newv",
                vec![new.clone(), fr("via_new()", "_Z7via_newv", PROG), c("main")],
            ),
            (
                "fun:_Z13via_new_arrayv",
                // libstdc++'s new[] tail-calls new: leakhunt records only new.
                vec![
                    new.clone(),
                    fr("via_new_array()", "_Z13via_new_arrayv", PROG),
                    c("main"),
                ],
            ),
            (
                "fun:_Z10via_inlinei",
                vec![
                    inlined(fr("ns::Foo::mk(int)", "_ZN2ns3Foo2mkEi", PROG)),
                    inlined(fr("void* ns::tmk<int>(int)", "_ZN2ns3tmkIiEEPvT_", PROG)),
                    fr("via_inline(int)", "_Z10via_inlinei", PROG),
                    c("main"),
                ],
            ),
        ];
        let mut ours = String::new();
        for (needle, stack) in &cases {
            let block = block_with(&blocks, needle);
            let s = supp(&block.replace("<insert_a_suppression_name_here>", needle));
            assert_eq!(
                s.matches(Definite, "malloc", stack),
                Some(*needle),
                "{block}"
            );
            ours += &generate(needle, Definite, "malloc", stack);
        }
        let file = dir.0.join("ours-cpp.supp");
        std::fs::write(&file, &ours).expect("write");
        let (log, _) = memcheck(
            &dir.0,
            &exe,
            &[format!("--suppressions={}", file.display())],
        );
        assert!(
            log.contains("definitely lost: 0 bytes in 0 blocks"),
            "{ours}\n{log}"
        );
        assert!(
            log.contains("suppressed: 26 bytes in 3 blocks"),
            "{ours}\n{log}"
        );
    }
}
