//! Turning recorded stack nodes into symbolized frames, with the module map
//! that was in force when each stack was recorded.

use crate::model::Model;
use crate::symbolize::{Frame, Language, ModuleMap, Symbolizer};
use std::collections::HashMap;

/// Symbolizes stacks of one trace; caches per stack node and per module set.
pub struct Stacks<'a> {
    model: &'a Model,
    /// One symbolizer per distinct set of mapped modules (a new set appears
    /// only when a library was unloaded).
    symbolizers: HashMap<Vec<usize>, Symbolizer>,
    cache: HashMap<u64, std::rc::Rc<Vec<Frame>>>,
}

impl<'a> Stacks<'a> {
    pub fn new(model: &'a Model) -> Stacks<'a> {
        Stacks {
            model,
            symbolizers: HashMap::new(),
            cache: HashMap::new(),
        }
    }

    fn module_set(&self, node: u64) -> Vec<usize> {
        self.model
            .modules
            .iter()
            .enumerate()
            .filter(|(_, s)| s.from_node <= node && s.until_node.is_none_or(|u| node < u))
            .map(|(i, _)| i)
            .collect()
    }

    /// Frames of the stack ending at `node`, innermost first, inlined frames
    /// expanded. Frames of the allocator itself are already left out by the
    /// recorder.
    pub fn frames(&mut self, node: u64) -> std::rc::Rc<Vec<Frame>> {
        if let Some(f) = self.cache.get(&node) {
            return f.clone();
        }
        let key = self.module_set(node);
        let model = self.model;
        let sym = self.symbolizers.entry(key.clone()).or_insert_with(|| {
            Symbolizer::new(
                key.iter()
                    .map(|&i| {
                        let m = &model.modules[i].module;
                        ModuleMap {
                            path: m.path.clone(),
                            base: m.base,
                            build_id: m.build_id.clone(),
                            segments: m
                                .segments
                                .iter()
                                .map(|s| (s.vaddr, s.memsz, s.flags))
                                .collect(),
                        }
                    })
                    .collect(),
            )
        });
        let mut frames = Vec::new();
        for ip in model.stack_ips(node) {
            if let Some((code, offset)) = leakhunt_format::parse_python_frame(ip) {
                frames.push(crate::python::frame(model.py_codes.get(&code), offset));
                continue;
            }
            // Every recorded address is a return address: the innermost one
            // points just after the call into the allocator. The recorder's
            // own interposers (its dlopen, say) are not the program's frames.
            frames.extend(
                sym.symbolize(ip, true)
                    .into_iter()
                    .filter(|f| !is_recorder_module(&f.module)),
            );
        }
        let rc = std::rc::Rc::new(frames);
        self.cache.insert(node, rc.clone());
        rc
    }

    pub fn warnings(&self) -> Vec<String> {
        let mut w: Vec<String> = self
            .symbolizers
            .values()
            .flat_map(|s| s.warnings().iter().cloned())
            .collect();
        w.sort();
        w.dedup();
        w
    }
}

/// Short module name for display: the file name of its path.
pub fn module_short(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// How a frame is named in one line: the function, or `module+0xoffset`.
pub fn frame_name(f: &Frame) -> String {
    match &f.function {
        Some(name) => name.to_string(),
        None if &*f.module == "?" || f.module.is_empty() => format!("{:#x}", f.address),
        None => format!("{}+{:#x}", module_short(&f.module), f.offset),
    }
}

/// A source file as a frame shows it: the file name, but for Python's own
/// library and installed packages the path below `lib/pythonX.Y/` or
/// `site-packages/` (`flask/app.py` is not the program's `app.py`).
pub fn short_file(file: &str) -> &str {
    for marker in ["/site-packages/", "/dist-packages/"] {
        if let Some(i) = file.rfind(marker) {
            return &file[i + marker.len()..];
        }
    }
    if let Some(i) = file.find("/lib/python") {
        let rest = &file[i + "/lib/python".len()..];
        if let Some(j) = rest.find('/') {
            return &rest[j + 1..];
        }
    }
    module_short(file)
}

/// How a frame is named where there is room for one label only (flamegraph
/// frames, growth lines, collapsed stacks): a Python frame with its file and
/// line, since `get` alone does not say which of a program's many `get`s.
pub fn frame_label(f: &Frame) -> String {
    let name = frame_name(f);
    if f.language != Language::Python {
        return name;
    }
    match (&f.file, f.line) {
        (Some(file), Some(line)) => format!("{name} ({}:{line})", short_file(file)),
        (Some(file), None) => format!("{name} ({})", short_file(file)),
        _ => name,
    }
}

/// A flamegraph's name for a frame: every native frame with debug lines
/// carries its file:line as Python frames do (`remember (service.c:17)`,
/// the name a growth line gives them; an inlined libstdc++ template names
/// its header line), so a frame says where, exactly. The C runtime's and
/// the interpreter's stay bare, so their boxes merge.
pub fn flame_label(f: &Frame) -> String {
    flame_label_with(f, frame_name(f))
}

/// The label a flamegraph box shows where room is short: `flame_label`
/// with a C++ name shortened (`short_cpp_name`); the tooltip keeps the
/// full `flame_label`.
pub fn flame_label_short(f: &Frame) -> String {
    if f.language == Language::Cpp {
        flame_label_with(f, short_cpp_name(&frame_name(f)))
    } else {
        flame_label(f)
    }
}

fn flame_label_with(f: &Frame, name: String) -> String {
    match (&f.file, f.line) {
        (Some(file), Some(line))
            if f.language != Language::Python && !is_runtime_module(&f.module) =>
        {
            format!("{name} ({}:{line})", module_short(file))
        }
        _ if f.language == Language::Python => frame_label(f),
        _ => name,
    }
}

/// Template arguments longer than this (once their own are shortened) are
/// folded to `<…>`: `std::vector<int>` stays, a tree's node type does not.
const TEMPLATE_ARGS_KEPT: usize = 32;

/// A demangled C++ name as a label shows it: libstdc++'s spellings as the
/// source writes them (`std::string`, no `__cxx11`, no defaulted
/// allocator, traits or comparator), long template argument lists folded
/// to `<…>`, the return type, the parameter list and ABI tags left out
/// (the label's file:line tells overloads apart).
/// `void std::vector<std::pair<int, std::__cxx11::basic_string<char,
/// std::char_traits<char>, std::allocator<char> > >, std::allocator<…> >
/// ::_M_realloc_insert<int&, …>(…)` reads
/// `std::vector<std::pair<int, std::string>>::_M_realloc_insert<…>`.
pub fn short_cpp_name(name: &str) -> String {
    let mut s = name
        .replace("std::__cxx11::", "std::")
        .replace("[abi:cxx11]", "")
        .replace(
            "std::basic_string<char, std::char_traits<char>, std::allocator<char> >",
            "std::string",
        );
    for default in [", std::allocator<", ", std::char_traits<", ", std::less<"] {
        s = drop_default_args(&s, default);
    }
    let folded = fold_templates(&s);
    let bare = without_parameters(&folded).to_string();
    without_return_type(&bare).to_string()
}

/// Removes each `, std::allocator<…>` (say) that ends a template argument
/// list: the default the source never wrote.
fn drop_default_args(s: &str, pattern: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(pattern) {
        let after = &rest[i + pattern.len()..];
        let mut depth = 1;
        let end = after.char_indices().find_map(|(j, c)| {
            match c {
                '<' => depth += 1,
                '>' => depth -= 1,
                _ => {}
            }
            (depth == 0).then_some(j)
        });
        match end {
            Some(j) if after[j + 1..].trim_start().starts_with('>') => {
                out.push_str(&rest[..i]);
                rest = &after[j + 1..];
                rest = rest.trim_start();
            }
            _ => {
                out.push_str(&rest[..i + pattern.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Folds template argument lists longer than `TEMPLATE_ARGS_KEPT` to
/// `<…>`, inner ones first; `operator<`, `operator<<`, `operator->` and
/// the like are operators, not lists.
fn fold_templates(s: &str) -> String {
    fn list(chars: &[char], i: &mut usize, out: &mut String) {
        while *i < chars.len() {
            let c = chars[*i];
            if c == '>' {
                return;
            }
            *i += 1;
            if c == '<' {
                let mut inner = String::new();
                list(chars, i, &mut inner);
                *i += 1; // the closing '>'
                let inner = inner.trim();
                if inner.chars().count() <= TEMPLATE_ARGS_KEPT {
                    out.push('<');
                    out.push_str(inner);
                    out.push('>');
                } else {
                    out.push_str("<…>");
                }
                continue;
            }
            out.push(c);
            if out.ends_with("operator") {
                // The operator's own symbols are copied as they are.
                while *i < chars.len() && "<>=-!+*/%^&|~".contains(chars[*i]) {
                    out.push(chars[*i]);
                    *i += 1;
                }
            }
        }
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        list(&chars, &mut i, &mut out);
        if i < chars.len() {
            // An unbalanced '>': keep it and go on.
            out.push('>');
            i += 1;
        }
    }
    out
}

/// `void std::vector<…>::push_back` -> `std::vector<…>::push_back`: the
/// return type a template instantiation's demangled name starts with.
fn without_return_type(name: &str) -> &str {
    let mut depth = 0i32;
    let mut cut = None;
    for (i, c) in name.char_indices() {
        match c {
            '<' | '(' | '[' | '{' => depth += 1,
            '>' | ')' | ']' | '}' => depth -= 1,
            ' ' if depth == 0 => {
                // `operator new`, `operator delete[]`, `operator bool`:
                // the space belongs to the name.
                if name[..i].ends_with("operator") {
                    break;
                }
                cut = Some(i + 1);
            }
            _ => {}
        }
    }
    match cut {
        Some(i) if i < name.len() => &name[i..],
        _ => name,
    }
}

pub fn language_name(l: Language) -> &'static str {
    match l {
        Language::C => "c",
        Language::Cpp => "c++",
        Language::Rust => "rust",
        Language::Python => "python",
        Language::Unknown => "unknown",
    }
}

/// Frames that belong to the allocation machinery rather than to the program:
/// `operator new`, Rust's `alloc::alloc` layers (mostly inlined into the
/// caller). A report starts a stack at the first frame after them, the
/// allocation site; helpers like `strdup` stay, as memcheck shows them.
pub fn is_allocator_frame(f: &Frame) -> bool {
    let Some(name) = f.function.as_deref() else {
        return false;
    };
    let base = name.split('(').next().unwrap_or(name);
    matches!(
        base,
        "operator new"
            | "operator new[]"
            | "__libc_malloc"
            | "__libc_calloc"
            | "__libc_realloc"
            | "__libc_memalign"
            | "__rust_alloc"
            | "__rust_alloc_zeroed"
            | "__rust_realloc"
            | "__rdl_alloc"
            | "__rdl_realloc"
    ) || name.starts_with("alloc::alloc::")
        || name.starts_with("<alloc::alloc::Global")
        || name.starts_with("std::sys::alloc::")
        || name.starts_with("alloc::raw_vec::")
        || name.starts_with("<alloc::raw_vec::")
        || name.starts_with("alloc::boxed::box_new")
}

/// libleakhunt.so itself: its frames sit between a program's call and the
/// real function (dlopen, exec, ...), and say nothing about the program.
pub fn is_recorder_module(path: &str) -> bool {
    module_short(path) == "libleakhunt.so"
}

/// Modules of the C runtime and the interpreter: never "the user's code".
pub fn is_runtime_module(path: &str) -> bool {
    let file = module_short(path);
    [
        "libc.so",
        "ld-linux",
        "libstdc++.so",
        "libgcc_s.so",
        "libm.so",
        "libpthread",
        "libpython",
        "python2",
        "python3",
    ]
    .iter()
    .any(|r| file.starts_with(r))
}

/// Frames of a language's standard library compiled into the program
/// (Rust's std, core and alloc; libstdc++'s templates instantiated in it):
/// they sit between the allocator and the program's own function.
pub fn is_std_frame(f: &Frame) -> bool {
    if f.language == Language::Python {
        return false;
    }
    if f.file.as_deref().is_some_and(|p| {
        p.starts_with("/rustc/") || p.contains("/.cargo/registry/") || p.contains("/include/c++/")
    }) {
        return true;
    }
    let Some(name) = f.function.as_deref() else {
        return false;
    };
    let name = name.trim_start_matches('<');
    ["std::", "core::", "alloc::", "__gnu_cxx::", "hashbrown::"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// Whether a Python file is the interpreter's library or an installed
/// package rather than the program being run.
fn is_library_python(file: &str) -> bool {
    file.starts_with('<')
        || file.contains("/site-packages/")
        || file.contains("/dist-packages/")
        || file
            .split('/')
            .any(|c| c.starts_with("python3.") || c.starts_with("python2."))
}

/// The first frame of the program's own code (what a growth line names):
/// the innermost Python frame of the program's own files, else the
/// innermost Python frame, else the first native frame outside the C
/// runtime and the allocator, else the allocation site.
pub fn user_site(frames: &[Frame]) -> usize {
    let python = |own: bool| {
        frames.iter().position(|f| {
            f.language == Language::Python
                && (!own || !f.file.as_deref().is_some_and(is_library_python))
        })
    };
    python(true)
        .or_else(|| python(false))
        .or_else(|| {
            frames.iter().position(|f| {
                !is_allocator_frame(f)
                    && f.function.is_some()
                    && !is_runtime_module(&f.module)
                    && !is_std_frame(f)
            })
        })
        .unwrap_or_else(|| allocation_site(frames))
}

/// A call site in one line, as growth entries, `diff` and `--from/--to`
/// name it: the program's own frame first (`user_site`), with file:line,
/// then up to `n - 1` of its callers, leaving out the C runtime, the
/// interpreter and standard-library frames between them.
pub fn site_line(frames: &[Frame], n: usize) -> String {
    if frames.is_empty() {
        return "(no stack)".into();
    }
    let from = user_site(frames);
    frames[from..]
        .iter()
        .enumerate()
        .filter(|(i, f)| {
            *i == 0
                || f.language == Language::Python
                || !(is_runtime_module(&f.module) || is_std_frame(f))
        })
        .map(|(_, f)| f)
        .take(n)
        .map(|f| match (&f.file, f.line, f.language) {
            (Some(file), Some(line), l) if l != Language::Python => {
                format!(
                    "{} ({}:{line})",
                    without_parameters(&frame_name(f)),
                    module_short(file)
                )
            }
            _ => frame_label(f),
        })
        .collect::<Vec<_>>()
        .join(" < ")
}

/// `Cache::render(std::__cxx11::basic_string<...> const&) const` ->
/// `Cache::render`: in a one-line site the file:line tells the overloads
/// apart, and the parameter list buries the name.
fn without_parameters(name: &str) -> &str {
    let trimmed = name
        .trim_end_matches(" const")
        .trim_end_matches(" &&")
        .trim_end_matches(" &");
    if !trimmed.ends_with(')') || name.starts_with('<') {
        return name;
    }
    let mut depth = 0i32;
    for (i, c) in trimmed.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth -= 1;
                if depth == 0 {
                    // `operator()` and friends keep their name.
                    let head = &trimmed[..i];
                    return if head.is_empty() || head.ends_with("operator") {
                        name
                    } else {
                        head
                    };
                }
            }
            _ => {}
        }
    }
    name
}

/// Where the program's own frames start in a stack (innermost first).
pub fn allocation_site(frames: &[Frame]) -> usize {
    frames
        .iter()
        .position(|f| !is_allocator_frame(f))
        .unwrap_or_default()
}

/// Views show the frames below `main` (memcheck's `--show-below-main=yes`).
static SHOW_BELOW_MAIN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_show_below_main(on: bool) {
    SHOW_BELOW_MAIN.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The frames a view shows, innermost first: from the allocation site to
/// `main`, as memcheck shows them. The C runtime's start-up below `main`
/// goes, and in a Rust program everything from std's
/// `__rust_begin_short_backtrace` out (`lang_start`'s layers, the C
/// `main`), as Rust's own backtraces do: about 15 frames that are the same
/// in every stack. Threads' stacks (`start_thread`, `clone3`) are kept.
pub fn shown(frames: &[Frame]) -> &[Frame] {
    let rest = &frames[allocation_site(frames)..];
    if SHOW_BELOW_MAIN.load(std::sync::atomic::Ordering::Relaxed) {
        return rest;
    }
    &rest[..main_end(rest)]
}

/// How many frames of `frames` are at or above the program's `main`.
fn main_end(frames: &[Frame]) -> usize {
    fn name(f: &Frame) -> &str {
        f.function.as_deref().unwrap_or("")
    }
    if let Some(i) = frames
        .iter()
        .position(|f| name(f).contains("__rust_begin_short_backtrace"))
    {
        // The closure shims between it and the program's `main`.
        let mut end = i;
        while end > 1
            && name(&frames[end - 1]).starts_with("core::ops::function::FnOnce::call_once")
        {
            end -= 1;
        }
        if end > 0 {
            return end;
        }
    }
    frames
        .iter()
        .rposition(|f| f.language != Language::Python && name(f) == "main")
        .map(|i| i + 1)
        // A stripped program's `main` has no name: cut where libc's start-up
        // begins instead.
        .or_else(|| {
            frames.iter().position(|f| {
                matches!(
                    name(f),
                    "__libc_start_call_main" | "__libc_start_main" | "_start"
                )
            })
        })
        .filter(|&end| end > 0)
        .unwrap_or(frames.len())
}

#[cfg(test)]
mod tests {
    use super::{main_end, short_cpp_name, short_file, without_parameters};
    use crate::symbolize::{Frame, Language};

    fn named(names: &[&str]) -> Vec<Frame> {
        names
            .iter()
            .map(|n| Frame {
                function: Some((*n).into()),
                linkage_name: None,
                file: None,
                line: None,
                module: "/bin/x".into(),
                address: 0,
                offset: 0,
                inlined: false,
                language: Language::C,
            })
            .collect()
    }

    #[test]
    fn stacks_end_at_main() {
        let c = named(&[
            "leak",
            "main",
            "__libc_start_call_main",
            "__libc_start_main",
            "_start",
        ]);
        assert_eq!(main_end(&c), 2);
        let rust = named(&[
            "r::make",
            "r::main",
            "core::ops::function::FnOnce::call_once",
            "std::sys::backtrace::__rust_begin_short_backtrace",
            "std::rt::lang_start::{{closure}}",
            "std::rt::lang_start_internal",
            "main",
            "__libc_start_main",
        ]);
        assert_eq!(main_end(&rust), 2);
        let stripped = named(&["leak", "", "__libc_start_call_main", "__libc_start_main"]);
        assert_eq!(main_end(&stripped), 2);
        // A thread's stack has no main: all of it stays.
        let thread = named(&["leak", "worker", "start_thread", "clone3"]);
        assert_eq!(main_end(&thread), 4);
    }

    #[test]
    fn cpp_template_noise_is_shortened() {
        let realloc_insert = "void std::vector<std::pair<int, std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > >, std::allocator<std::pair<int, std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > > > >::_M_realloc_insert<int&, std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > >(__gnu_cxx::__normal_iterator<std::pair<int, std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > >*, std::vector<std::pair<int, std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > >, std::allocator<std::pair<int, std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > > > > >, int&, std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >&&)";
        assert_eq!(
            short_cpp_name(realloc_insert),
            "std::vector<std::pair<int, std::string>>::_M_realloc_insert<int&, std::string>"
        );
        let node = "std::_Rb_tree<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >, std::pair<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > const, std::vector<int, std::allocator<int> > >, std::_Select1st<std::pair<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > const, std::vector<int, std::allocator<int> > > >, std::less<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > >, std::allocator<std::pair<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > const, std::vector<int, std::allocator<int> > > > >::_M_get_node()";
        assert_eq!(short_cpp_name(node), "std::_Rb_tree<…>::_M_get_node");
        assert_eq!(
            short_cpp_name("std::map<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >, std::vector<int, std::allocator<int> >, std::less<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > >, std::allocator<std::pair<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > const, std::vector<int, std::allocator<int> > > > >::operator[](std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > const&)"),
            "std::map<std::string, std::vector<int>>::operator[]"
        );
        assert_eq!(short_cpp_name("build[abi:cxx11](int)"), "build");
        // Operators are not template lists; plain names pass through.
        assert_eq!(
            short_cpp_name("std::ostream& operator<< <char>(std::ostream&, char const*)"),
            "operator<< <char>"
        );
        assert_eq!(
            short_cpp_name("Foo::operator<(Foo const&) const"),
            "Foo::operator<"
        );
        assert_eq!(
            short_cpp_name("operator new(unsigned long)"),
            "operator new"
        );
        assert_eq!(
            short_cpp_name("(anonymous namespace)::Cache::fill(int)"),
            "(anonymous namespace)::Cache::fill"
        );
        assert_eq!(short_cpp_name("main"), "main");
    }

    #[test]
    fn cpp_sites_drop_their_parameter_lists() {
        assert_eq!(
            without_parameters("Cache::render(std::__cxx11::basic_string<char> const&) const"),
            "Cache::render"
        );
        assert_eq!(without_parameters("main"), "main");
        assert_eq!(
            without_parameters("Foo::operator()(int)"),
            "Foo::operator()"
        );
        assert_eq!(without_parameters("f(g(int))"), "f");
        assert_eq!(without_parameters("<T as Tr>::m"), "<T as Tr>::m");
    }

    #[test]
    fn python_files_keep_their_package() {
        assert_eq!(
            short_file("/venv/lib/python3.11/site-packages/flask/app.py"),
            "flask/app.py"
        );
        assert_eq!(
            short_file("/usr/lib/python3.11/json/encoder.py"),
            "json/encoder.py"
        );
        assert_eq!(short_file("/srv/app.py"), "app.py");
        assert_eq!(
            short_file("<frozen importlib._bootstrap>"),
            "<frozen importlib._bootstrap>"
        );
    }
}
