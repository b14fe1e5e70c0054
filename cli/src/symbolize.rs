//! Offline symbolization of instruction pointers recorded in a traced process.
//!
//! The tracer only records raw addresses plus the list of loaded modules; turning
//! them into function / file / line happens here, in the CLI, after the fact. That
//! keeps the traced process cheap, but it means the files on disk may no longer be
//! the ones that were loaded, may be stripped, or may be garbage: every such case
//! degrades to a [`Frame`] with less information (and, where it matters, a warning)
//! instead of an error or a panic.
//!
//! Per module, the ELF file is memory-mapped once, on first use. Debug info is
//! taken from the file itself, or from a separate debug file found by build-id or
//! `.gnu_debuglink` (with its dwz supplementary file, if any); names fall back to
//! `.symtab`, then `.dynsym`.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::fmt;
use std::fs::File;
use std::io;
use std::ops::Deref;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use addr2line::{LookupContinuation, LookupResult};
use memmap2::Mmap;
use object::{Object, ObjectSection, ObjectSymbol, SectionFlags, SymbolKind};

/// One module (executable or shared object) as it was mapped in the traced process.
#[derive(Clone, Debug)]
pub struct ModuleMap {
    pub path: String,
    /// Load bias: runtime address = `base` + ELF virtual address.
    pub base: u64,
    /// NT_GNU_BUILD_ID as read from memory; empty if unknown.
    pub build_id: Vec<u8>,
    /// PT_LOAD segments as `(p_vaddr, p_memsz, p_flags)`.
    pub segments: Vec<(u64, u64, u32)>,
}

/// One source-level frame for an instruction pointer.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Frame {
    /// Demangled function name; `None` if nothing is known (print `module+0xoffset`).
    pub function: Option<Rc<str>>,
    /// The raw name `function` was demangled from (DWARF `DW_AT_linkage_name`, or
    /// the ELF symbol with any `@VERSION` suffix), as valgrind suppressions use it.
    pub linkage_name: Option<Rc<str>>,
    pub file: Option<Rc<str>>,
    pub line: Option<u32>,
    /// Path of the module as recorded, `"[vdso]"` for the vdso, `"?"` if no module covers the address.
    /// (The strings are shared: a stack's frames are cloned from the
    /// per-address cache, and a report holds thousands of stacks.)
    pub module: Rc<str>,
    /// The runtime address as passed to [`Symbolizer::symbolize`] (not adjusted for return addresses).
    pub address: u64,
    /// `address - base`, i.e. the ELF virtual address inside `module`.
    pub offset: u64,
    /// True for frames of functions inlined into the next frame of the same address.
    pub inlined: bool,
    pub language: Language,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    C,
    #[serde(rename = "c++")]
    Cpp,
    Rust,
    /// A frame of the interpreted program (no address: a code object and offset).
    Python,
    Unknown,
}

/// Resolves runtime addresses of one traced process to frames; caches everything.
pub struct Symbolizer {
    modules: Vec<Module>,
    /// Address ranges of all modules' PT_LOAD segments, sorted by start.
    spans: Vec<Span>,
    /// `max_end[i]` = the largest `end` among `spans[..=i]`, so lookups can stop early.
    max_end: Vec<u64>,
    cache: HashMap<(u64, bool), Vec<Frame>>,
    names: NameCache,
    warnings: Vec<String>,
    warned: HashSet<String>,
    /// Root of the separate debug file tree; a field only so tests can point it elsewhere.
    debug_root: PathBuf,
}

impl Symbolizer {
    pub fn new(modules: Vec<ModuleMap>) -> Symbolizer {
        let mut spans = Vec::new();
        for (index, module) in modules.iter().enumerate() {
            for &(vaddr, memsz, _flags) in &module.segments {
                let Some(start) = module.base.checked_add(vaddr) else {
                    continue;
                };
                let Some(end) = start.checked_add(memsz) else {
                    continue;
                };
                if end > start {
                    spans.push(Span {
                        start,
                        end,
                        module: index,
                    });
                }
            }
        }
        spans.sort_by_key(|s| (s.start, s.end));
        let mut max_end = Vec::with_capacity(spans.len());
        let mut running = 0;
        for span in &spans {
            running = running.max(span.end);
            max_end.push(running);
        }
        let modules = modules
            .into_iter()
            .map(|map| Module {
                name: display_name(&map.path),
                map,
                state: ModuleState::Pending,
            })
            .collect();
        Symbolizer {
            modules,
            spans,
            max_end,
            cache: HashMap::new(),
            names: NameCache::default(),
            warnings: Vec::new(),
            warned: HashSet::new(),
            debug_root: PathBuf::from("/usr/lib/debug"),
        }
    }

    /// One return address or ip -> one or more frames (innermost inlined frame first, the real function last).
    ///
    /// `is_return_address`: true for every frame but the innermost of a stack; the
    /// lookup then uses `ip - 1`, so a call that is the last instruction of a
    /// function, or that precedes an inlined boundary, is attributed to the call.
    pub fn symbolize(&mut self, ip: u64, is_return_address: bool) -> Vec<Frame> {
        if let Some(frames) = self.cache.get(&(ip, is_return_address)) {
            return frames.clone();
        }
        let frames = self.resolve(ip, is_return_address);
        self.cache.insert((ip, is_return_address), frames.clone());
        frames
    }

    /// Warnings gathered so far, each once: build-id mismatches and unreadable files.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn warn(&mut self, message: String) {
        if self.warned.insert(message.clone()) {
            self.warnings.push(message);
        }
    }

    fn module_at(&self, addr: u64) -> Option<usize> {
        let upto = self.spans.partition_point(|s| s.start <= addr);
        for i in (0..upto).rev() {
            if self.max_end[i] <= addr {
                break;
            }
            if addr < self.spans[i].end {
                return Some(self.spans[i].module);
            }
        }
        None
    }

    fn resolve(&mut self, ip: u64, is_return_address: bool) -> Vec<Frame> {
        let probe_ip = if is_return_address {
            ip.saturating_sub(1)
        } else {
            ip
        };
        let Some(index) = self.module_at(probe_ip) else {
            return vec![Frame {
                function: None,
                linkage_name: None,
                file: None,
                line: None,
                module: "?".into(),
                address: ip,
                offset: ip,
                inlined: false,
                language: Language::Unknown,
            }];
        };
        self.ensure_loaded(index);

        let module = &self.modules[index];
        let base = module.map.base;
        let template = Frame {
            function: None,
            linkage_name: None,
            file: None,
            line: None,
            module: module.name.as_str().into(),
            address: ip,
            offset: ip.wrapping_sub(base),
            inlined: false,
            language: Language::Unknown,
        };
        let ModuleState::Ready(loaded) = &module.state else {
            return vec![template];
        };
        let probe = probe_ip.wrapping_sub(base);
        let names = &mut self.names;
        // The parsers are meant to reject bad input with errors, but a trace from
        // an arbitrary machine is exactly where an unnoticed panic path would show
        // up; losing one frame's details is better than losing the whole report.
        match panic::catch_unwind(AssertUnwindSafe(|| loaded.lookup(probe, &template, names))) {
            Ok(frames) => frames,
            Err(_) => vec![template],
        }
    }

    fn ensure_loaded(&mut self, index: usize) {
        if !matches!(self.modules[index].state, ModuleState::Pending) {
            return;
        }
        let mut warnings = Vec::new();
        let map = &self.modules[index].map;
        let debug_root = &self.debug_root;
        let key = (map.path.clone(), map.build_id.clone(), debug_root.clone());
        let shared = SHARING.with(|s| s.get());
        if let Some((loaded, w)) = shared
            .then(|| LOADED.with(|c| c.borrow().get(&key).cloned()))
            .flatten()
        {
            self.modules[index].state = ModuleState::Ready(loaded);
            for warning in w {
                self.warn(warning);
            }
            return;
        }
        let state = panic::catch_unwind(AssertUnwindSafe(|| {
            load_module(map, debug_root, &mut warnings)
        }))
        .unwrap_or_else(|_| {
            warnings.push(format!(
                "{}: internal error while reading it; its frames are unsymbolized",
                map.path
            ));
            ModuleState::Unusable
        });
        if let (true, ModuleState::Ready(loaded)) = (shared, &state) {
            LOADED.with(|c| {
                c.borrow_mut()
                    .insert(key, (std::rc::Rc::clone(loaded), warnings.clone()))
            });
        }
        self.modules[index].state = state;
        for warning in warnings {
            self.warn(warning);
        }
    }
}

/// A module's file, by its recorded path and build-id, maps the same in
/// every process: while a [`SharedModules`] lives, the symbolizers of its
/// thread (the traces of one run, read one after another) load it once,
/// with the warnings it gave. Only then: a file may change between two
/// symbolizers otherwise (a test rewrites one, a debug file is installed).
type LoadedKey = (String, Vec<u8>, PathBuf);
type LoadedCache = HashMap<LoadedKey, (std::rc::Rc<LoadedModule>, Vec<String>)>;

thread_local! {
    static LOADED: std::cell::RefCell<LoadedCache> = std::cell::RefCell::new(HashMap::new());
    static SHARING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Shares loaded modules between this thread's symbolizers until dropped.
pub struct SharedModules(());

impl SharedModules {
    pub fn begin() -> SharedModules {
        SHARING.with(|s| s.set(true));
        SharedModules(())
    }
}

impl Drop for SharedModules {
    fn drop(&mut self) {
        SHARING.with(|s| s.set(false));
        LOADED.with(|c| c.borrow_mut().clear());
    }
}

struct Span {
    start: u64,
    end: u64,
    module: usize,
}

struct Module {
    map: ModuleMap,
    name: String,
    state: ModuleState,
}

enum ModuleState {
    Pending,
    /// Not an openable ELF (vdso, missing, corrupt): frames carry only module+offset.
    Unusable,
    Ready(std::rc::Rc<LoadedModule>),
}

/// dl_iterate_phdr reports the vdso with an empty name, /proc/maps as `[vdso]`;
/// none of these (nor `[heap]`-style pseudo paths) name a file worth opening.
fn is_pseudo_path(path: &str) -> bool {
    path.is_empty()
        || path.starts_with('[')
        || path.starts_with("linux-vdso.so")
        || path.starts_with("linux-gate.so")
}

fn display_name(path: &str) -> String {
    if path.is_empty() {
        "[vdso]".to_string()
    } else {
        path.to_string()
    }
}

// ---------------------------------------------------------------------------
// Zero-copy DWARF reader over mapped files.

/// Section bytes for gimli: usually a window into a mapped file (so large debug
/// files are paged in only where addr2line actually looks), or an owned buffer for
/// sections that had to be decompressed.
#[derive(Clone)]
enum Bytes {
    Mapped {
        map: Arc<Mmap>,
        start: usize,
        len: usize,
    },
    Owned(Arc<[u8]>),
}

impl Bytes {
    fn empty() -> Bytes {
        Bytes::Owned(Arc::from(&[][..]))
    }

    /// `slice` is expected to point into `map`; anything else is copied.
    fn within(map: &Arc<Mmap>, slice: &[u8]) -> Bytes {
        let base = map.as_ptr() as usize;
        let ptr = slice.as_ptr() as usize;
        match ptr.checked_sub(base) {
            Some(start)
                if start
                    .checked_add(slice.len())
                    .is_some_and(|end| end <= map.len()) =>
            {
                Bytes::Mapped {
                    map: Arc::clone(map),
                    start,
                    len: slice.len(),
                }
            }
            _ => Bytes::Owned(Arc::from(slice)),
        }
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped { map, start, len } => {
                map.get(*start..start.saturating_add(*len)).unwrap_or(&[])
            }
            Bytes::Owned(bytes) => bytes,
        }
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.len())
    }
}

// SAFETY: both variants deref into memory owned behind an `Arc` (a mapping or a
// heap buffer) that never moves while any clone is alive, and clones share it.
unsafe impl gimli::StableDeref for Bytes {}
unsafe impl gimli::CloneStableDeref for Bytes {}

type Reader = gimli::EndianReader<gimli::RunTimeEndian, Bytes>;

// ---------------------------------------------------------------------------
// Loading a module.

struct LoadedModule {
    dwarf: Option<DwarfInfo>,
    symbols: SymbolTable,
}

struct DwarfInfo {
    ctx: addr2line::Context<Reader>,
    sections: Arc<gimli::Dwarf<Reader>>,
    /// Whether any unit is C; only needed to label unmangled symbol-table names.
    has_c: OnceCell<bool>,
}

fn map_file(path: &Path) -> io::Result<Arc<Mmap>> {
    // Opening a FIFO or device named by a bogus trace could block or read forever.
    if !std::fs::metadata(path)?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let file = File::open(path)?;
    // SAFETY: the mapping is read-only; a file truncated underneath us would fault,
    // which is the accepted trade-off of every mmap-based symbolizer.
    let map = unsafe { Mmap::map(&file)? };
    Ok(Arc::new(map))
}

/// /proc/pid/maps marks replaced files; the new file may still be the same build.
fn on_disk_path(path: &str) -> PathBuf {
    if let Some(stripped) = path.strip_suffix(" (deleted)") {
        if !Path::new(path).exists() {
            return PathBuf::from(stripped);
        }
    }
    PathBuf::from(path)
}

fn load_module(map: &ModuleMap, debug_root: &Path, warnings: &mut Vec<String>) -> ModuleState {
    if is_pseudo_path(&map.path) {
        return ModuleState::Unusable;
    }
    let path = on_disk_path(&map.path);
    let data = match map_file(&path) {
        Ok(data) => data,
        Err(e) => {
            warnings.push(format!(
                "{}: cannot read it ({e}); its frames are unsymbolized",
                map.path
            ));
            return ModuleState::Unusable;
        }
    };
    let file = match object::File::parse(&**data) {
        Ok(file) => file,
        Err(e) => {
            warnings.push(format!(
                "{}: not a readable ELF file ({e}); its frames are unsymbolized",
                map.path
            ));
            return ModuleState::Unusable;
        }
    };

    let file_id = file.build_id().ok().flatten();
    if !map.build_id.is_empty() && file_id != Some(&map.build_id[..]) {
        warnings.push(format!(
            "{}: build-id on disk differs from the one recorded; its frames may be wrong",
            map.path
        ));
    }

    let mut symbols = SymbolTable::from_elf(&file, false);
    let dwarf = if has_dwarf(&file) {
        load_dwarf(&file, &data, &path, debug_root, warnings)
    } else {
        let link = file.gnu_debuglink().ok().flatten().map(|(name, _crc)| name);
        match find_debug_file(&path, &map.build_id, file_id, link, debug_root, warnings) {
            Some((debug_data, debug_path)) => match object::File::parse(&**debug_data) {
                Ok(debug_file) => {
                    if symbols.is_empty() {
                        symbols = SymbolTable::from_elf(&debug_file, false);
                    }
                    load_dwarf(&debug_file, &debug_data, &debug_path, debug_root, warnings)
                }
                Err(_) => None,
            },
            None => None,
        }
    };
    if symbols.is_empty() {
        symbols = SymbolTable::from_elf(&file, true);
    }
    ModuleState::Ready(std::rc::Rc::new(LoadedModule { dwarf, symbols }))
}

fn has_dwarf(file: &object::File<'_>) -> bool {
    file.section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0 && s.kind() != object::SectionKind::UninitializedData)
}

fn build_id_path(debug_root: &Path, id: &[u8]) -> Option<PathBuf> {
    let (first, rest) = id.split_first()?;
    if rest.is_empty() {
        return None;
    }
    let hex: String = rest.iter().map(|b| format!("{b:02x}")).collect();
    Some(
        debug_root
            .join(".build-id")
            .join(format!("{first:02x}"))
            .join(format!("{hex}.debug")),
    )
}

fn os_path(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

/// Searches where gdb does: by build-id, then by debuglink next to the file, in
/// `.debug/` below it, and mirrored under the debug root.
fn find_debug_file(
    path: &Path,
    recorded_id: &[u8],
    file_id: Option<&[u8]>,
    debuglink: Option<&[u8]>,
    debug_root: &Path,
    warnings: &mut Vec<String>,
) -> Option<(Arc<Mmap>, PathBuf)> {
    let mut candidates = Vec::new();
    // The recorded id names the build that actually ran, so its debug file beats
    // the one for a possibly updated file on disk.
    for id in [Some(recorded_id), file_id].into_iter().flatten() {
        if let Some(p) = build_id_path(debug_root, id) {
            candidates.push(p);
        }
    }
    let canonical = std::fs::canonicalize(path).ok();
    if let Some(link) = debuglink.filter(|l| !l.is_empty()) {
        let link = os_path(link);
        let mut dirs: Vec<PathBuf> = path.parent().map(Path::to_path_buf).into_iter().collect();
        if let Some(dir) = canonical.as_deref().and_then(Path::parent) {
            if !dirs.iter().any(|d| d == dir) {
                dirs.push(dir.to_path_buf());
            }
        }
        for dir in &dirs {
            candidates.push(dir.join(&link));
            candidates.push(dir.join(".debug").join(&link));
            let relative = dir.strip_prefix("/").unwrap_or(dir);
            candidates.push(debug_root.join(relative).join(&link));
        }
    }

    let expected: Vec<&[u8]> = [Some(recorded_id), file_id]
        .into_iter()
        .flatten()
        .filter(|id| !id.is_empty())
        .collect();
    let mut seen = HashSet::new();
    for candidate in candidates {
        if !seen.insert(candidate.clone()) {
            continue;
        }
        if canonical.is_some() && std::fs::canonicalize(&candidate).ok() == canonical {
            continue;
        }
        let data = match map_file(&candidate) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                warnings.push(format!(
                    "{}: cannot read debug file ({e})",
                    candidate.display()
                ));
                continue;
            }
        };
        let Ok(debug) = object::File::parse(&**data) else {
            warnings.push(format!(
                "{}: debug file is not a readable ELF file",
                candidate.display()
            ));
            continue;
        };
        if !has_dwarf(&debug) {
            continue;
        }
        if let Some(id) = debug.build_id().ok().flatten() {
            if !expected.is_empty() && !expected.contains(&id) {
                warnings.push(format!(
                    "{}: build-id differs from {}'s; debug file ignored",
                    candidate.display(),
                    path.display()
                ));
                continue;
            }
        }
        drop(debug);
        return Some((data, candidate));
    }
    None
}

fn section_reader(
    file: &object::File<'_>,
    data: &Arc<Mmap>,
    name: &str,
    endian: gimli::RunTimeEndian,
) -> Reader {
    // Location lists say where variables live, which no frame needs; in a
    // distribution's debug file they are a fifth of what would be inflated
    // (libc6-dbg: 612 KB of 3.1 MB compressed).
    if matches!(name, ".debug_loc" | ".debug_loclists") {
        return gimli::EndianReader::new(Bytes::empty(), endian);
    }
    // A section that fails to decompress is treated as absent: the rest of the
    // debug info (or the symbol table) can still name the function.
    let bytes = match file.section_by_name(name).map(|s| s.uncompressed_data()) {
        Some(Ok(Cow::Borrowed(slice))) => Bytes::within(data, slice),
        Some(Ok(Cow::Owned(vec))) => Bytes::Owned(Arc::from(vec)),
        Some(Err(_)) | None => Bytes::empty(),
    };
    gimli::EndianReader::new(bytes, endian)
}

fn endian_of(file: &object::File<'_>) -> gimli::RunTimeEndian {
    if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    }
}

fn load_dwarf(
    file: &object::File<'_>,
    data: &Arc<Mmap>,
    path: &Path,
    debug_root: &Path,
    warnings: &mut Vec<String>,
) -> Option<DwarfInfo> {
    let endian = endian_of(file);
    let Ok(mut dwarf) =
        gimli::Dwarf::load(|id| Ok::<_, Infallible>(section_reader(file, data, id.name(), endian)));
    if let Some(sup_data) = find_sup_file(file, path, debug_root) {
        if let Ok(sup) = object::File::parse(&**sup_data) {
            let sup_endian = endian_of(&sup);
            let Ok(()) = dwarf.load_sup(|id| {
                Ok::<_, Infallible>(section_reader(&sup, &sup_data, id.name(), sup_endian))
            });
        }
    }
    dwarf.populate_abbreviations_cache(gimli::AbbreviationsCacheStrategy::Duplicates);
    let sections = Arc::new(dwarf);
    match addr2line::Context::from_arc_dwarf(Arc::clone(&sections)) {
        Ok(ctx) => Some(DwarfInfo {
            ctx,
            sections,
            has_c: OnceCell::new(),
        }),
        Err(e) => {
            warnings.push(format!(
                "{}: unreadable debug info ({e}); using its symbol table only",
                path.display()
            ));
            None
        }
    }
}

/// dwz-processed debug files (Debian's -dbgsym packages) move shared DWARF into a
/// supplementary file named by `.gnu_debugaltlink`; without it many names are lost.
fn find_sup_file(file: &object::File<'_>, path: &Path, debug_root: &Path) -> Option<Arc<Mmap>> {
    let (link, id) = file.gnu_debugaltlink().ok().flatten()?;
    let mut candidates = Vec::new();
    let link = os_path(link);
    if link.is_absolute() {
        candidates.push(link);
    } else if let Some(dir) = path.parent() {
        candidates.push(dir.join(link));
    }
    candidates.extend(build_id_path(debug_root, id));
    candidates.into_iter().find_map(|c| {
        let data = map_file(&c).ok()?;
        let sup = object::File::parse(&**data).ok()?;
        let matches = sup
            .build_id()
            .ok()
            .flatten()
            .is_none_or(|sup_id| sup_id == id);
        drop(sup);
        matches.then_some(data)
    })
}

// ---------------------------------------------------------------------------
// Lookups.

struct RawFrame {
    name: Option<String>,
    language: Option<gimli::DwLang>,
    file: Option<String>,
    line: Option<u32>,
}

impl DwarfInfo {
    fn frames(&self, probe: u64) -> Result<Vec<RawFrame>, gimli::Error> {
        let mut lookup = self.ctx.find_frames(probe);
        let mut iter = loop {
            match lookup {
                LookupResult::Output(result) => break result?,
                // Split DWARF (.dwo) is not searched for; addr2line then answers
                // from the skeleton unit, which still has the function range.
                LookupResult::Load { continuation, .. } => lookup = continuation.resume(None),
            }
        };
        let mut out = Vec::new();
        while let Some(frame) = iter.next()? {
            let (name, language) = match &frame.function {
                Some(function) => (
                    function.raw_name().ok().map(Cow::into_owned),
                    function.language,
                ),
                None => (None, None),
            };
            let (file, line) = match frame.location {
                Some(loc) => (loc.file.map(str::to_owned), loc.line.filter(|&l| l != 0)),
                None => (None, None),
            };
            out.push(RawFrame {
                name,
                language,
                file,
                line,
            });
            // Guards against cyclic inlining chains in corrupt input.
            if out.len() >= 512 {
                break;
            }
        }
        Ok(out)
    }

    /// Function DIEs can be unreadable (corrupt, or pointing into a missing dwz
    /// file) while the line table is fine: keep file and line then.
    fn frames_or_location(&self, probe: u64) -> Vec<RawFrame> {
        self.frames(probe)
            .unwrap_or_else(|_| match self.ctx.find_location(probe) {
                Ok(Some(loc)) => vec![RawFrame {
                    name: None,
                    language: None,
                    file: loc.file.map(str::to_owned),
                    line: loc.line.filter(|&l| l != 0),
                }],
                _ => Vec::new(),
            })
    }

    fn has_c(&self) -> bool {
        *self.has_c.get_or_init(|| {
            let mut units = self.sections.units();
            while let Ok(Some(header)) = units.next() {
                let Ok(abbrevs) = self.sections.abbreviations(&header) else {
                    continue;
                };
                let mut entries = header.entries(&abbrevs);
                if let Ok(Some((_, root))) = entries.next_dfs() {
                    if let Ok(Some(gimli::AttributeValue::Language(lang))) =
                        root.attr_value(gimli::DW_AT_language)
                    {
                        if dwarf_language(lang) == Some(Language::C) {
                            return true;
                        }
                    }
                }
            }
            false
        })
    }
}

fn dwarf_language(lang: gimli::DwLang) -> Option<Language> {
    match lang {
        gimli::DW_LANG_C89
        | gimli::DW_LANG_C
        | gimli::DW_LANG_C99
        | gimli::DW_LANG_C11
        | gimli::DW_LANG_C17 => Some(Language::C),
        gimli::DW_LANG_C_plus_plus
        | gimli::DW_LANG_C_plus_plus_03
        | gimli::DW_LANG_C_plus_plus_11
        | gimli::DW_LANG_C_plus_plus_14
        | gimli::DW_LANG_C_plus_plus_17
        | gimli::DW_LANG_C_plus_plus_20 => Some(Language::Cpp),
        gimli::DW_LANG_Rust => Some(Language::Rust),
        _ => None,
    }
}

impl LoadedModule {
    fn lookup(&self, probe: u64, template: &Frame, names: &mut NameCache) -> Vec<Frame> {
        let raw = self
            .dwarf
            .as_ref()
            .map(|d| d.frames_or_location(probe))
            .unwrap_or_default();
        let has_c = || self.dwarf.as_ref().is_some_and(DwarfInfo::has_c);
        let symbol_name = || self.symbols.lookup(probe).map(Symbol::name);

        if raw.is_empty() {
            let mut frame = template.clone();
            if let Some(raw_name) = symbol_name() {
                let (name, language) = names.demangle(raw_name);
                frame.function = Some(name.into());
                frame.linkage_name = Some(raw_name.into());
                frame.language = language.unwrap_or(if has_c() {
                    Language::C
                } else {
                    Language::Unknown
                });
            }
            return vec![frame];
        }

        let count = raw.len();
        raw.into_iter()
            .enumerate()
            .map(|(i, raw)| {
                let outermost = i + 1 == count;
                let mut frame = template.clone();
                frame.inlined = !outermost;
                frame.file = raw.file.map(Into::into);
                frame.line = raw.line;
                // Only the outermost frame is a real symbol; an unnamed inlined
                // frame must not borrow its caller's name.
                let raw_name = match &raw.name {
                    // An unmangled DW_AT_linkage_name comes from an asm label,
                    // typically a library-internal alias (glibc's
                    // `__GI___libc_malloc`); the symbol table knows the public
                    // name the caller used for the same function.
                    Some(name) if outermost && !is_mangled(name) => Some(
                        self.symbols
                            .lookup(probe)
                            .filter(|s| s.names.iter().any(|n| **n == **name))
                            .map_or(name.as_str(), Symbol::name),
                    ),
                    Some(name) => Some(name.as_str()),
                    None if outermost => symbol_name(),
                    None => None,
                };
                let mangling = raw_name.map(|raw_name| {
                    let (name, language) = names.demangle(raw_name);
                    frame.function = Some(name.into());
                    frame.linkage_name = Some(raw_name.into());
                    language
                });
                frame.language = raw
                    .language
                    .and_then(dwarf_language)
                    .or(mangling.flatten())
                    .unwrap_or_else(|| {
                        if has_c() {
                            Language::C
                        } else {
                            Language::Unknown
                        }
                    });
                frame
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// ELF symbol tables.

struct Symbol {
    start: u64,
    end: u64,
    /// All names at `start`, the preferred one first.
    names: Box<[Box<str>]>,
}

impl Symbol {
    fn name(&self) -> &str {
        self.names.first().map_or("", |n| n)
    }
}

/// Function symbols sorted by address, one per address (the best-named alias).
struct SymbolTable {
    symbols: Vec<Symbol>,
}

impl SymbolTable {
    fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    fn from_elf(file: &object::File<'_>, dynamic: bool) -> SymbolTable {
        struct Candidate<'a> {
            start: u64,
            size: u64,
            section_end: Option<u64>,
            name: &'a str,
            // Lower is better among aliases at one address.
            rank: (bool, bool, u8, bool, usize, usize),
        }
        let mut section_ends: HashMap<object::SectionIndex, Option<(u64, bool)>> = HashMap::new();
        let mut candidates = Vec::new();
        let iter = if dynamic {
            file.dynamic_symbols()
        } else {
            file.symbols()
        };
        for sym in iter {
            if sym.is_undefined() {
                continue;
            }
            let Some(section) = sym.section_index() else {
                continue;
            };
            let Ok(name) = sym.name() else { continue };
            let section_info = *section_ends.entry(section).or_insert_with(|| {
                file.section_by_index(section).ok().map(|s| {
                    let exec = match s.flags() {
                        SectionFlags::Elf { sh_flags } => {
                            sh_flags & u64::from(object::elf::SHF_EXECINSTR) != 0
                        }
                        _ => false,
                    };
                    (s.address().saturating_add(s.size()), exec)
                })
            });
            let (section_end, executable) =
                section_info.map_or((None, false), |(end, exec)| (Some(end), exec));
            let untyped = match sym.kind() {
                SymbolKind::Text => false,
                // Hand-written assembly often lacks `.type @function`; ARM mapping
                // symbols (`$x`, `$d`) and local labels are not functions.
                SymbolKind::Unknown
                    if executable && !name.starts_with('$') && !name.starts_with(".L") =>
                {
                    true
                }
                _ => continue,
            };
            if name.is_empty() {
                continue;
            }
            let binding = if sym.is_global() {
                0
            } else if sym.is_weak() {
                1
            } else {
                2
            };
            let underscores = name.bytes().take_while(|&b| b == b'_').count();
            // Of aliases, a mangled name says most (tcmalloc's `tc_new` is
            // also `_Znwm`: `operator new(unsigned long)`, as memcheck names it).
            let plain = !(name.starts_with("_Z") || name.starts_with("_R"));
            candidates.push(Candidate {
                start: sym.address(),
                size: sym.size(),
                section_end,
                name,
                rank: (
                    sym.size() == 0,
                    untyped,
                    binding,
                    plain,
                    underscores,
                    name.len(),
                ),
            });
        }
        candidates.sort_by_key(|c| (c.start, c.rank));

        let mut symbols: Vec<Symbol> = Vec::new();
        let mut i = 0;
        while i < candidates.len() {
            let best = &candidates[i];
            let mut j = i;
            let mut sized_end = None::<u64>;
            while j < candidates.len() && candidates[j].start == best.start {
                if candidates[j].size > 0 {
                    let end = best.start.saturating_add(candidates[j].size);
                    sized_end = Some(sized_end.map_or(end, |e| e.max(end)));
                }
                j += 1;
            }
            // A symbol without size runs to the next symbol, but not past its section.
            let end = sized_end.unwrap_or_else(|| {
                let next = candidates.get(j).map(|c| c.start);
                match (next, best.section_end.filter(|&e| e > best.start)) {
                    (Some(n), Some(e)) => n.min(e),
                    (Some(n), None) => n,
                    (None, Some(e)) => e,
                    (None, None) => best.start.saturating_add(1),
                }
            });
            let names = candidates[i..j].iter().map(|c| c.name.into()).collect();
            symbols.push(Symbol {
                start: best.start,
                end,
                names,
            });
            i = j;
        }
        SymbolTable { symbols }
    }

    fn lookup(&self, addr: u64) -> Option<&Symbol> {
        let upto = self.symbols.partition_point(|s| s.start <= addr);
        // Looking a few symbols back catches a sized function that encloses
        // smaller symbols (local labels with sizes, nested aliases).
        self.symbols[..upto]
            .iter()
            .rev()
            .take(8)
            .find(|s| addr < s.end)
    }
}

// ---------------------------------------------------------------------------
// Demangling.

/// Demangled names keyed by raw name: the same function is hit by many ips, and
/// C++ demangling is the most expensive step of a symbol-table lookup.
#[derive(Default)]
struct NameCache {
    names: HashMap<Box<str>, (String, Option<Language>)>,
}

impl NameCache {
    fn demangle(&mut self, raw: &str) -> (String, Option<Language>) {
        if let Some(hit) = self.names.get(raw) {
            return hit.clone();
        }
        let result = demangle(raw);
        self.names.insert(raw.into(), result.clone());
        result
    }
}

/// Returns the readable name and the language its mangling implies, if any.
fn demangle(raw: &str) -> (String, Option<Language>) {
    // `.symtab` of a shared library names versioned definitions `name@@VERSION`.
    let base = match raw.find('@') {
        Some(at) if at > 0 => &raw[..at],
        _ => raw,
    };
    if base.starts_with("_R") || has_rust_hash(base) {
        if let Ok(symbol) = rustc_demangle::try_demangle(base) {
            // `{:#}` drops the hash, which only makes names unequal across builds.
            return (format!("{symbol:#}"), Some(Language::Rust));
        }
    }
    if base.starts_with("_Z") {
        let options = cpp_demangle::DemangleOptions::default();
        let name = cpp_demangle::Symbol::new(base.as_bytes())
            .ok()
            .and_then(|symbol| symbol.demangle(&options).ok())
            .unwrap_or_else(|| base.to_string());
        return (name, Some(Language::Cpp));
    }
    (base.to_string(), None)
}

fn is_mangled(name: &str) -> bool {
    name.starts_with("_Z") || name.starts_with("_R")
}

/// Rust's legacy mangling is Itanium-shaped (`_ZN...E`) and only the trailing
/// `17h<16 hex digits>E` hash tells it apart from C++.
fn has_rust_hash(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.starts_with(b"_ZN")
        && bytes.windows(20).any(|w| {
            w.starts_with(b"17h") && w[3..19].iter().all(u8::is_ascii_hexdigit) && w[19] == b'E'
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    const FAKE_BASE: u64 = 0x5555_0000_0000;

    /// A temp directory removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("leakhunt-sym-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn have(tool: &str) -> bool {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn run(cmd: &mut Command) {
        let out = cmd.output().expect("spawn");
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Compiles `src` as `name` in `dir`; `None` (with the reason printed) if the compiler is missing.
    fn compile(
        compiler: &str,
        dir: &Path,
        name: &str,
        src: &str,
        flags: &[&str],
        out: &str,
    ) -> Option<PathBuf> {
        if !have(compiler) {
            eprintln!("skipping: `{compiler}` not found");
            return None;
        }
        let src_path = dir.join(name);
        std::fs::write(&src_path, src).expect("write source");
        let exe = dir.join(out);
        run(Command::new(compiler)
            .args(flags)
            .arg("-o")
            .arg(&exe)
            .arg(&src_path));
        Some(exe)
    }

    fn elf_module(path: &Path, base: u64) -> ModuleMap {
        let data = std::fs::read(path).expect("read elf");
        let file = object::File::parse(&*data).expect("parse elf");
        let segments = object::read::elf::ElfFile64::<object::Endianness>::parse(&*data)
            .expect("elf64")
            .elf_program_headers()
            .iter()
            .filter_map(|ph| {
                use object::read::elf::ProgramHeader;
                let e = object::Endianness::Little;
                (ph.p_type(e) == object::elf::PT_LOAD)
                    .then(|| (ph.p_vaddr(e), ph.p_memsz(e), ph.p_flags(e)))
            })
            .collect();
        ModuleMap {
            path: path.to_string_lossy().into_owned(),
            base,
            build_id: file
                .build_id()
                .ok()
                .flatten()
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
            segments,
        }
    }

    /// (vaddr, size) of a symbol by its raw (mangled) name.
    fn symbol(path: &Path, name: &str) -> (u64, u64) {
        let data = std::fs::read(path).expect("read elf");
        let file = object::File::parse(&*data).expect("parse elf");
        file.symbols()
            .chain(file.dynamic_symbols())
            .find(|s| s.name() == Ok(name) && !s.is_undefined())
            .map(|s| (s.address(), s.size()))
            .unwrap_or_else(|| panic!("no symbol {name} in {}", path.display()))
    }

    fn line_of(src: &str, marker: &str) -> u32 {
        let index = src
            .lines()
            .position(|l| l.contains(marker))
            .expect("marker");
        u32::try_from(index + 1).expect("line")
    }

    const C_SRC: &str = r#"#include <stdio.h>
#include <stdlib.h>
volatile int g = 1;
int leaf(int x) { /* LEAF_DECL */
    return x * 2 + g;
}
static inline __attribute__((always_inline)) int helper(int x) {
    return x * 3 + g; /* HELPER_BODY */
}
__attribute__((noinline)) int outer(int x) {
    int r = helper(x); /* OUTER_CALL */
    return r + g;
}
__attribute__((noinline, noreturn)) void dies(void) {
    abort(); /* DIES_CALL */
}
int main(int argc, char **argv) {
    (void)argv;
    if (argc > 5) dies();
    printf("%d %d\n", leaf(argc), outer(argc));
    return 0;
}
"#;

    const CPP_SRC: &str = r#"#include <cstdio>
namespace ns {
struct Foo {
    int k;
    int bar(int x);
};
int Foo::bar(int x) { // BAR_DECL
    return x + k;
}
}
template <typename T> T twice(T v) { return v + v; } // TWICE_DECL
int main(int argc, char **) {
    ns::Foo f{argc};
    std::printf("%d %ld\n", f.bar(argc), twice<long>(argc));
}
"#;

    fn one(sym: &mut Symbolizer, vaddr: u64) -> Frame {
        let frames = sym.symbolize(FAKE_BASE + vaddr, false);
        assert_eq!(frames.len(), 1, "{frames:?}");
        frames.into_iter().next().expect("frame")
    }

    #[test]
    fn c_program_names_files_lines() {
        let dir = TempDir::new("c");
        let Some(exe) = compile("cc", dir.path(), "prog.c", C_SRC, &["-g", "-O0"], "prog") else {
            return;
        };
        let mut sym = Symbolizer::new(vec![elf_module(&exe, FAKE_BASE)]);
        let (leaf, _) = symbol(&exe, "leaf");
        let frame = one(&mut sym, leaf);
        assert_eq!(frame.function.as_deref(), Some("leaf"));
        assert!(
            frame
                .file
                .as_deref()
                .is_some_and(|f| f.ends_with("/prog.c")),
            "{frame:?}"
        );
        assert_eq!(frame.line, Some(line_of(C_SRC, "LEAF_DECL")));
        assert_eq!(frame.language, Language::C);
        assert_eq!(&*frame.module, &*exe.to_string_lossy());
        assert_eq!(frame.offset, leaf);
        assert_eq!(frame.address, FAKE_BASE + leaf);
        assert!(!frame.inlined);
        // A return address one past the entry looks up the entry itself.
        let ret = sym.symbolize(FAKE_BASE + leaf + 1, true);
        assert_eq!(ret[0].function.as_deref(), Some("leaf"));
        assert_eq!(ret[0].address, FAKE_BASE + leaf + 1);
        assert!(sym.warnings().is_empty(), "{:?}", sym.warnings());
    }

    #[test]
    fn cpp_program_demangles() {
        let dir = TempDir::new("cpp");
        let Some(exe) = compile(
            "c++",
            dir.path(),
            "prog.cpp",
            CPP_SRC,
            &["-g", "-O0"],
            "prog",
        ) else {
            return;
        };
        let mut sym = Symbolizer::new(vec![elf_module(&exe, FAKE_BASE)]);
        let (bar, _) = symbol(&exe, "_ZN2ns3Foo3barEi");
        let frame = one(&mut sym, bar);
        assert_eq!(frame.function.as_deref(), Some("ns::Foo::bar(int)"));
        assert_eq!(frame.linkage_name.as_deref(), Some("_ZN2ns3Foo3barEi"));
        assert!(
            frame
                .file
                .as_deref()
                .is_some_and(|f| f.ends_with("/prog.cpp")),
            "{frame:?}"
        );
        assert_eq!(frame.line, Some(line_of(CPP_SRC, "BAR_DECL")));
        assert_eq!(frame.language, Language::Cpp);
        let (twice, _) = symbol(&exe, "_Z5twiceIlET_S0_");
        let frame = one(&mut sym, twice);
        assert_eq!(frame.function.as_deref(), Some("long twice<long>(long)"));
        assert_eq!(frame.line, Some(line_of(CPP_SRC, "TWICE_DECL")));
        // `main` is unmangled; the unit's DW_AT_language still says C++.
        let (main, _) = symbol(&exe, "main");
        let frame = one(&mut sym, main);
        assert_eq!(frame.function.as_deref(), Some("main"));
        assert_eq!(frame.language, Language::Cpp);
    }

    #[test]
    fn inlined_frames_and_return_addresses_at_o2() {
        let dir = TempDir::new("inline");
        let Some(exe) = compile("cc", dir.path(), "prog.c", C_SRC, &["-g", "-O2"], "prog") else {
            return;
        };
        let mut sym = Symbolizer::new(vec![elf_module(&exe, FAKE_BASE)]);

        let (outer, size) = symbol(&exe, "outer");
        let inlined = (outer..outer + size)
            .map(|vaddr| sym.symbolize(FAKE_BASE + vaddr, false))
            .find(|frames| frames.len() == 2)
            .expect("some address of outer() is inside the inlined helper()");
        assert_eq!(inlined[0].function.as_deref(), Some("helper"));
        assert!(inlined[0].inlined);
        assert_eq!(inlined[0].line, Some(line_of(C_SRC, "HELPER_BODY")));
        assert!(inlined[0]
            .file
            .as_deref()
            .is_some_and(|f| f.ends_with("/prog.c")));
        assert_eq!(inlined[1].function.as_deref(), Some("outer"));
        assert!(!inlined[1].inlined);
        assert_eq!(inlined[1].line, Some(line_of(C_SRC, "OUTER_CALL")));
        assert_eq!(inlined[0].address, inlined[1].address);

        // dies() ends with its call to abort(), so the return address is the first
        // byte after the function: only `ip - 1` still lands in dies().
        let (dies, size) = symbol(&exe, "dies");
        let end = FAKE_BASE + dies + size;
        let as_return = sym.symbolize(end, true);
        let last = as_return.last().expect("frame");
        assert_eq!(last.function.as_deref(), Some("dies"), "{as_return:?}");
        assert_eq!(last.line, Some(line_of(C_SRC, "DIES_CALL")));
        assert_eq!(last.address, end);
        let as_ip = sym.symbolize(end, false);
        assert_ne!(
            as_ip.last().and_then(|f| f.function.as_deref()),
            Some("dies"),
            "{as_ip:?}"
        );
    }

    #[test]
    fn stripped_binaries_fall_back_to_symbols() {
        let dir = TempDir::new("strip");
        let Some(exe) = compile(
            "c++",
            dir.path(),
            "prog.cpp",
            CPP_SRC,
            &["-g", "-O0"],
            "prog",
        ) else {
            return;
        };
        if !have("strip") {
            eprintln!("skipping: `strip` not found");
            return;
        }
        let (bar, _) = symbol(&exe, "_ZN2ns3Foo3barEi");
        let no_debug = dir.path().join("prog-g");
        let no_symbols = dir.path().join("prog-s");
        run(Command::new("strip")
            .arg("-g")
            .arg("-o")
            .arg(&no_debug)
            .arg(&exe));
        run(Command::new("strip")
            .arg("-s")
            .arg("-o")
            .arg(&no_symbols)
            .arg(&exe));

        let mut sym = Symbolizer::new(vec![elf_module(&no_debug, FAKE_BASE)]);
        let frame = one(&mut sym, bar + 2);
        assert_eq!(frame.function.as_deref(), Some("ns::Foo::bar(int)"));
        assert_eq!(frame.linkage_name.as_deref(), Some("_ZN2ns3Foo3barEi"));
        assert_eq!((frame.file.as_deref(), frame.line), (None, None));
        assert_eq!(frame.language, Language::Cpp);

        let mut sym = Symbolizer::new(vec![elf_module(&no_symbols, FAKE_BASE)]);
        let frame = one(&mut sym, bar + 2);
        assert_eq!(frame.function, None);
        assert_eq!(frame.offset, bar + 2);
        assert_eq!(&*frame.module, &*no_symbols.to_string_lossy());
        assert!(sym.warnings().is_empty(), "{:?}", sym.warnings());
    }

    #[test]
    fn separate_debug_files_by_debuglink_and_build_id() {
        let dir = TempDir::new("debuglink");
        let Some(exe) = compile("cc", dir.path(), "prog.c", C_SRC, &["-g", "-O0"], "prog") else {
            return;
        };
        if !have("objcopy") {
            eprintln!("skipping: `objcopy` not found");
            return;
        }
        let (leaf, _) = symbol(&exe, "leaf");
        let debug = dir.path().join("prog.debug");
        run(Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(&exe)
            .arg(&debug));
        let linked = dir.path().join("prog-linked");
        run(Command::new("objcopy")
            .arg("--strip-debug")
            .arg(format!("--add-gnu-debuglink={}", debug.display()))
            .arg(&exe)
            .arg(&linked));
        let mut sym = Symbolizer::new(vec![elf_module(&linked, FAKE_BASE)]);
        let frame = one(&mut sym, leaf);
        assert_eq!(frame.function.as_deref(), Some("leaf"));
        assert_eq!(frame.line, Some(line_of(C_SRC, "LEAF_DECL")));

        // Same, but found only through the build-id tree.
        let bare = dir.path().join("prog-bare");
        run(Command::new("objcopy")
            .arg("--strip-debug")
            .arg(&exe)
            .arg(&bare));
        let module = elf_module(&bare, FAKE_BASE);
        let root = dir.path().join("debug-root");
        let target = build_id_path(&root, &module.build_id).expect("build-id");
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&debug, &target).expect("copy debug file");
        let mut sym = Symbolizer::new(vec![module]);
        sym.debug_root = root;
        let frame = one(&mut sym, leaf);
        assert_eq!(frame.function.as_deref(), Some("leaf"));
        assert_eq!(frame.line, Some(line_of(C_SRC, "LEAF_DECL")));
        assert!(sym.warnings().is_empty(), "{:?}", sym.warnings());
    }

    #[test]
    fn dwz_supplementary_file() {
        if !have("dwz") {
            eprintln!("skipping: `dwz` not found");
            return;
        }
        // dwz only factors out DWARF that two files share; the STL types give it plenty.
        let src = CPP_SRC.replace("#include <cstdio>", "#include <cstdio>\n#include <string>\n#include <vector>")
            .replace("return x + k;", "std::vector<std::string> v{std::to_string(x)};\n    return x + k + int(v[0].size());");
        let dir = TempDir::new("dwz");
        let Some(one_exe) = compile("c++", dir.path(), "prog.cpp", &src, &["-g", "-O2"], "one")
        else {
            return;
        };
        let Some(_two) = compile(
            "c++",
            dir.path(),
            "prog.cpp",
            &src,
            &["-g", "-O0", "-DTWO"],
            "two",
        ) else {
            return;
        };
        let out = Command::new("dwz")
            .current_dir(dir.path())
            .args(["-m", "common.debug", "-M", "common.debug", "one", "two"])
            .output()
            .expect("dwz");
        let altlink = std::fs::read(&one_exe).ok().and_then(|d| {
            object::File::parse(&*d)
                .ok()?
                .gnu_debugaltlink()
                .ok()
                .flatten()
                .map(|(p, _)| p.to_vec())
        });
        if !out.status.success() || altlink.as_deref() != Some(&b"common.debug"[..]) {
            eprintln!(
                "skipping: dwz made no supplementary file: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        // At -O2 the STL calls in bar() are inlined, and the DIEs naming them are
        // shared by both programs, so dwz moves them into common.debug.
        let inlined_names = |exe: &Path| -> Vec<String> {
            let (bar, size) = symbol(exe, "_ZN2ns3Foo3barEi");
            let mut sym = Symbolizer::new(vec![elf_module(exe, FAKE_BASE)]);
            let mut names: Vec<String> = (bar..bar + size)
                .flat_map(|vaddr| sym.symbolize(FAKE_BASE + vaddr, false))
                .filter(|f| f.inlined)
                .filter_map(|f| f.function.as_deref().map(str::to_string))
                .collect();
            assert!(sym.warnings().is_empty(), "{:?}", sym.warnings());
            names.sort();
            names.dedup();
            names
        };
        let with_sup = inlined_names(&one_exe);
        assert!(
            with_sup.iter().any(|n| n.starts_with("std::")),
            "{with_sup:?}"
        );

        // Without it: no panic, fewer names, but bar() keeps its file and line.
        std::fs::remove_file(dir.path().join("common.debug")).expect("rm");
        let without_sup = inlined_names(&one_exe);
        assert!(
            without_sup.len() < with_sup.len(),
            "{without_sup:?} vs {with_sup:?}"
        );
        let (bar, _) = symbol(&one_exe, "_ZN2ns3Foo3barEi");
        let mut sym = Symbolizer::new(vec![elf_module(&one_exe, FAKE_BASE)]);
        let frame = sym.symbolize(FAKE_BASE + bar, false).pop().expect("frame");
        assert_eq!(frame.function.as_deref(), Some("ns::Foo::bar(int)"));
        assert_eq!(frame.line, Some(line_of(&src, "BAR_DECL")));
    }

    #[test]
    fn compressed_debug_sections() {
        let dir = TempDir::new("zdebug");
        let Some(exe) = compile("cc", dir.path(), "prog.c", C_SRC, &["-g", "-O0"], "prog") else {
            return;
        };
        if !have("objcopy") {
            eprintln!("skipping: `objcopy` not found");
            return;
        }
        let (leaf, _) = symbol(&exe, "leaf");
        for kind in ["zlib", "zlib-gnu", "zstd"] {
            let out = dir.path().join(format!("prog-{kind}"));
            let status = Command::new("objcopy")
                .arg(format!("--compress-debug-sections={kind}"))
                .arg(&exe)
                .arg(&out)
                .output()
                .expect("objcopy");
            if !status.status.success() {
                eprintln!("skipping {kind}: objcopy cannot produce it");
                continue;
            }
            let mut sym = Symbolizer::new(vec![elf_module(&out, FAKE_BASE)]);
            let frame = one(&mut sym, leaf);
            assert_eq!(frame.function.as_deref(), Some("leaf"), "{kind}");
            assert_eq!(frame.line, Some(line_of(C_SRC, "LEAF_DECL")), "{kind}");
        }
    }

    #[test]
    fn build_id_mismatch_warns_once() {
        let dir = TempDir::new("buildid");
        let Some(exe) = compile("cc", dir.path(), "prog.c", C_SRC, &["-g", "-O0"], "prog") else {
            return;
        };
        let (leaf, _) = symbol(&exe, "leaf");
        let mut module = elf_module(&exe, FAKE_BASE);
        assert!(
            !module.build_id.is_empty(),
            "the toolchain should emit a build-id"
        );
        module.build_id = vec![0xde, 0xad, 0xbe, 0xef];
        let mut sym = Symbolizer::new(vec![module]);
        for _ in 0..3 {
            let frame = one(&mut sym, leaf);
            assert_eq!(
                frame.function.as_deref(),
                Some("leaf"),
                "the file is still used"
            );
        }
        let _ = sym.symbolize(FAKE_BASE + leaf + 4, false);
        assert_eq!(
            sym.warnings(),
            [format!(
                "{}: build-id on disk differs from the one recorded; its frames may be wrong",
                exe.display()
            )]
        );
    }

    /// Path and load bias of the first mapped file whose name contains `needle`.
    fn mapped_module(needle: &str) -> Option<ModuleMap> {
        let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
        let (start, path) = maps.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let path = *fields.get(5)?;
            let offset = u64::from_str_radix(fields.get(2)?, 16).ok()?;
            if !path.contains(needle) || offset != 0 {
                return None;
            }
            let start = u64::from_str_radix(fields.first()?.split('-').next()?, 16).ok()?;
            Some((start, path.to_string()))
        })?;
        let mut module = elf_module(Path::new(&path), 0);
        // The offset-0 mapping starts at the page of the lowest PT_LOAD.
        let lowest = module.segments.iter().map(|s| s.0).min()? & !0xfff;
        module.base = start - lowest;
        Some(module)
    }

    #[test]
    fn libc_malloc_from_dynsym() {
        let Some(module) = mapped_module("/libc.so") else {
            eprintln!("skipping: no libc.so in /proc/self/maps");
            return;
        };
        // SAFETY: dlsym with a valid NUL-terminated name has no other preconditions.
        let malloc = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr()) } as u64;
        assert_ne!(malloc, 0);
        let path = module.path.clone();
        // Once as configured here (libc6-dbg may be installed), once with an empty
        // debug tree so the `.dynsym` path is taken either way.
        let empty = TempDir::new("nodebug");
        for debug_root in [None, Some(empty.path().to_path_buf())] {
            let mut sym = Symbolizer::new(vec![module.clone()]);
            let forced_symtab = debug_root.is_some();
            if let Some(root) = debug_root {
                sym.debug_root = root;
            }
            let frames = sym.symbolize(malloc, false);
            let frame = frames.last().expect("frame");
            assert!(
                matches!(frame.function.as_deref(), Some("malloc" | "__libc_malloc")),
                "{frames:?}"
            );
            assert_eq!(&*frame.module, path);
            assert_eq!(frame.offset, malloc - module.base);
            if forced_symtab {
                assert_eq!((frame.file.as_deref(), frame.line), (None, None));
            }
            assert!(sym.warnings().is_empty(), "{:?}", sym.warnings());
        }
    }

    #[inline(never)]
    fn rust_marker_function() -> u64 {
        std::hint::black_box(rust_marker_function as fn() -> u64 as usize as u64)
    }

    #[test]
    fn rust_names_from_this_test_binary() {
        let exe = std::env::current_exe().expect("current_exe");
        let Some(module) = mapped_module(&exe.to_string_lossy()) else {
            eprintln!("skipping: test binary not found in /proc/self/maps");
            return;
        };
        let mut sym = Symbolizer::new(vec![module]);
        let frames = sym.symbolize(rust_marker_function(), false);
        let frame = frames.last().expect("frame");
        let name = frame.function.as_deref().unwrap_or_default();
        assert!(
            name.ends_with("symbolize::tests::rust_marker_function"),
            "{frames:?}"
        );
        assert_eq!(frame.language, Language::Rust);
        assert!(
            frame
                .file
                .as_deref()
                .is_some_and(|f| f.ends_with("symbolize.rs")),
            "{frames:?}"
        );
    }

    #[test]
    fn unknown_vdso_missing_and_garbage_modules() {
        let dir = TempDir::new("garbage");
        let garbage = dir.path().join("garbage.so");
        std::fs::write(&garbage, b"\x7fELF this is not really an ELF file").expect("write");
        let seg = vec![(0, 0x1000, 5)];
        let mk = |path: &str, base: u64| ModuleMap {
            path: path.to_string(),
            base,
            build_id: vec![1, 2, 3],
            segments: seg.clone(),
        };
        let mut sym = Symbolizer::new(vec![
            mk("", 0x1000),
            mk("[vdso]", 0x3000),
            mk("linux-vdso.so.1", 0x5000),
            mk("/nonexistent/libnothing.so", 0x7000),
            mk(&garbage.to_string_lossy(), 0x9000),
            mk("/dev", 0xb000),
        ]);
        let f = &sym.symbolize(0x10, false)[0];
        assert_eq!(
            (&*f.module, f.function.as_deref(), f.offset),
            ("?", None, 0x10)
        );
        assert_eq!(sym.symbolize(0x1010, false)[0].module.as_ref(), "[vdso]");
        assert_eq!(sym.symbolize(0x3010, true)[0].module.as_ref(), "[vdso]");
        assert_eq!(sym.symbolize(0x5010, false)[0].offset, 0x10);
        for ip in [0x7010, 0x9010, 0xb010] {
            let frames = sym.symbolize(ip, false);
            assert_eq!(frames.len(), 1);
            assert_eq!(frames[0].function, None);
            assert_eq!(frames[0].offset, 0x10);
        }
        // Return address at the very start of a module belongs to whatever precedes it.
        assert_eq!(sym.symbolize(0x7000, true)[0].module.as_ref(), "?");
        let warnings = sym.warnings();
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings.iter().all(|w| !w.contains("vdso")));
    }

    /// Deterministic xorshift, so failures reproduce.
    fn scramble(bytes: &mut [u8], seed: u64, every: usize) {
        let mut x = seed | 1;
        for (i, b) in bytes.iter_mut().enumerate() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i.is_multiple_of(every) || x.is_multiple_of(7) {
                *b = x as u8;
            }
        }
    }

    #[test]
    fn corrupt_files_never_panic() {
        let dir = TempDir::new("corrupt");
        let Some(exe) = compile(
            "c++",
            dir.path(),
            "prog.cpp",
            CPP_SRC,
            &["-g", "-O2"],
            "prog",
        ) else {
            return;
        };
        let original = std::fs::read(&exe).expect("read");
        let module = elf_module(&exe, FAKE_BASE);
        let file = object::File::parse(&*original).expect("parse");
        let text = file.section_by_name(".text").expect(".text");
        let (text_start, text_size) = (text.address(), text.size());
        let debug_ranges: Vec<(usize, usize)> = file
            .sections()
            .filter(|s| {
                s.name()
                    .is_ok_and(|n| n.starts_with(".debug_") || n == ".symtab" || n == ".strtab")
            })
            .filter_map(|s| s.file_range())
            .map(|(o, l)| (o as usize, l as usize))
            .collect();
        for seed in 1..=12u64 {
            let mut data = original.clone();
            for &(offset, len) in &debug_ranges {
                scramble(
                    &mut data[offset..offset + len],
                    seed * 7919,
                    3 + seed as usize,
                );
            }
            let path = dir.path().join(format!("corrupt-{seed}"));
            std::fs::write(&path, &data).expect("write");
            let mut sym = Symbolizer::new(vec![ModuleMap {
                path: path.to_string_lossy().into_owned(),
                ..module.clone()
            }]);
            for vaddr in (text_start..text_start + text_size).step_by(3) {
                let frames = sym.symbolize(FAKE_BASE + vaddr, vaddr % 2 == 0);
                assert!(!frames.is_empty());
            }
        }
        // Truncated headers: every prefix length class of a real ELF.
        for len in [0, 1, 4, 16, 52, 64, 100, 1000, original.len() / 2] {
            let path = dir.path().join(format!("trunc-{len}"));
            std::fs::write(&path, &original[..len]).expect("write");
            let mut sym = Symbolizer::new(vec![ModuleMap {
                path: path.to_string_lossy().into_owned(),
                ..module.clone()
            }]);
            let frames = sym.symbolize(FAKE_BASE + text_start, false);
            assert_eq!(frames.len(), 1);
        }
    }

    #[test]
    fn demangling() {
        assert_eq!(
            demangle("_ZN4core3fmt5write17h0123456789abcdefE"),
            ("core::fmt::write".to_string(), Some(Language::Rust))
        );
        assert_eq!(
            demangle("_ZN3std2rt10lang_start17h5b4ee4c1d2e3f4a5E.llvm.123"),
            ("std::rt::lang_start".to_string(), Some(Language::Rust))
        );
        assert_eq!(
            demangle("_RNvCs1234_7mycrate3foo"),
            ("mycrate::foo".to_string(), Some(Language::Rust))
        );
        assert_eq!(
            demangle("_ZN2ns3Foo3barEi"),
            ("ns::Foo::bar(int)".to_string(), Some(Language::Cpp))
        );
        // Itanium names that merely look Rust-like stay C++.
        assert_eq!(
            demangle("_ZN3foo3barE"),
            ("foo::bar".to_string(), Some(Language::Cpp))
        );
        assert_eq!(
            demangle("_ZNSt6vectorIiSaIiEE9push_backERKi@@GLIBCXX_3.4").0,
            "std::vector<int, std::allocator<int> >::push_back(int const&)"
        );
        assert_eq!(
            demangle("_Zgarbage"),
            ("_Zgarbage".to_string(), Some(Language::Cpp))
        );
        assert_eq!(demangle("_Read"), ("_Read".to_string(), None));
        assert_eq!(demangle("malloc"), ("malloc".to_string(), None));
        assert_eq!(
            demangle("malloc@@GLIBC_2.2.5"),
            ("malloc".to_string(), None)
        );
        assert_eq!(demangle(""), (String::new(), None));
    }

    #[test]
    fn serializes_language_names() {
        let json = serde_json::to_string(&[
            Language::C,
            Language::Cpp,
            Language::Rust,
            Language::Unknown,
        ])
        .expect("json");
        assert_eq!(json, r#"["c","c++","rust","unknown"]"#);
    }

    /// Finds the real file of a shared library the C++ compiler links against.
    fn libstdcxx() -> Option<PathBuf> {
        let out = Command::new("c++")
            .arg("-print-file-name=libstdc++.so.6")
            .output()
            .ok()?;
        let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
        std::fs::canonicalize(path).ok().filter(|p| p.is_absolute())
    }

    #[test]
    fn many_ips_are_fast() {
        let dir = TempDir::new("perf");
        let Some(exe) = compile(
            "c++",
            dir.path(),
            "prog.cpp",
            CPP_SRC,
            &["-g", "-O2"],
            "prog",
        ) else {
            return;
        };
        let mut modules = vec![elf_module(&exe, 0x1000_0000_0000)];
        if let Some(libc) = mapped_module("/libc.so") {
            modules.push(elf_module(Path::new(&libc.path), 0x2000_0000_0000));
        }
        if let Some(cxx) = libstdcxx() {
            modules.push(elf_module(&cxx, 0x3000_0000_0000));
        }
        // Every byte of the program's code, the rest spread evenly over the libraries.
        const TARGET: usize = 100_000;
        let exec_segments = |m: &ModuleMap| -> Vec<(u64, u64)> {
            m.segments
                .iter()
                .filter(|s| s.2 & object::elf::PF_X != 0)
                .map(|s| (m.base + s.0, s.1))
                .collect()
        };
        let mut ips: Vec<u64> = exec_segments(&modules[0])
            .into_iter()
            .flat_map(|(start, len)| start..start + len)
            .collect();
        let libs: Vec<(u64, u64)> = modules[1..].iter().flat_map(exec_segments).collect();
        let lib_bytes: u64 = libs.iter().map(|s| s.1).sum();
        let stride = (lib_bytes / (TARGET.saturating_sub(ips.len()).max(1) as u64)).max(1);
        for (start, len) in libs {
            ips.extend((start..start + len).step_by(stride as usize));
        }
        let mut sym = Symbolizer::new(modules);
        let start = Instant::now();
        let mut named = 0;
        for (i, &ip) in ips.iter().enumerate() {
            let frames = sym.symbolize(ip, i % 4 != 0);
            named += usize::from(frames.last().is_some_and(|f| f.function.is_some()));
        }
        let cold = start.elapsed();
        let start = Instant::now();
        for (i, &ip) in ips.iter().enumerate() {
            let _ = sym.symbolize(ip, i % 4 != 0);
        }
        eprintln!(
            "symbolized {} ips ({named} named) in {cold:?}; cached pass {:?}",
            ips.len(),
            start.elapsed()
        );
        assert!(named > ips.len() / 2);
        assert!(cold.as_secs() < 20);
    }
}
