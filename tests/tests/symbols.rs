//! Symbolized stacks: demangled C++ names (namespace, class, template),
//! inlined frames with their own file:line, and a dlopen()ed library named
//! with its module even after dlclose().

use leakhunt_tests::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const SRC: &str = "symbols.cpp";

fn line(site: &str) -> u32 {
    marker_line(SRC, site)
}

#[test]
fn cpp_names_are_demangled_with_file_and_line() {
    let dir = TestDir::new("symbols");
    let Some(prog) = compile(dir.path(), SRC, &[]) else {
        return;
    };
    let run = leakhunt_run(dir.path(), &prog, &[]);
    assert_eq!(run.out.code(), Some(0));
    let v = report_json(&run.trace);
    assert!(
        v["warnings"].as_array().is_none_or(|w| w.is_empty()),
        "warnings: {}",
        v["warnings"]
    );

    // new Widget (8 bytes): operator new, then the method
    let r = record_of_bytes(&v, 8);
    let f = site_frame(r, "symbols").expect("program frame");
    assert_frame(f, "ns::Widget::make", SRC, line("widget_new"));
    assert_eq!(f["function"], "ns::Widget::make(int)");
    assert_eq!(f["language"], "c++");

    // malloc in the method (111 bytes): the method is the top frame
    let r = record_of_bytes(&v, 111);
    let top = &frames(r)[0];
    assert_eq!(top["function"], "ns::Widget::make(int)", "{top}");
    assert_frame(top, "ns::Widget::make", SRC, line("widget_buf"));
    let caller = &frames(r)[1];
    assert_eq!(caller["function"], "main", "{caller}");

    // the template (13 doubles)
    let r = record_of_bytes(&v, 13 * 8);
    let f = site_frame(r, "symbols").expect("program frame");
    let name = f["function"].as_str().unwrap_or("");
    assert!(
        name.contains("make_array<double>(unsigned long)"),
        "template frame {name:?}"
    );
    assert_eq!(f["line"], line("make_array"));

    // the inlined function: its own frame (inlined) with its line, then the
    // function it was inlined into, at the call's line
    let r = record_of_bytes(&v, 222);
    let fr = frames(r);
    assert_eq!(fr[0]["function"], "inlined_alloc", "{}", fr[0]);
    assert_eq!(fr[0]["inlined"], true, "{}", fr[0]);
    assert_eq!(fr[0]["line"], line("inlined_alloc"));
    assert_eq!(
        fr[1]["function"], "calls_inlined(unsigned long)",
        "{}",
        fr[1]
    );
    assert_eq!(fr[1]["line"], line("calls_inlined"));
    assert_eq!(
        fr[0]["address"], fr[1]["address"],
        "an inlined frame shares its caller's address"
    );
    for f in &fr[..2] {
        assert!(f["file"].as_str().unwrap_or("").ends_with(SRC));
        assert!(f["module"].as_str().unwrap_or("").ends_with("/symbols"));
    }

    // the text report names them too
    let text = report_text(&run.trace);
    assert!(
        text.contains(&format!(
            "ns::Widget::make(int) (symbols.cpp:{})",
            line("widget_buf")
        )),
        "{text}"
    );
}

fn build_lib(dir: &TestDir, src: &str, name: &str) -> Option<PathBuf> {
    match try_compile(dir.path(), src, name, &["-shared", "-fPIC"]) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    }
}

/// dl_main.c with the library, kept loaded or dlclose()d.
fn dl_run(keep: bool) -> Option<(TestDir, Value, PathBuf)> {
    let dir = TestDir::new("dlopen");
    let prog = compile(dir.path(), "dl_main.c", &["-ldl"])?;
    let lib = build_lib(&dir, "dl_lib.c", "libdl_lib.so")?;
    let run = leakhunt_run(
        dir.path(),
        &prog,
        &[lib.to_str().unwrap(), if keep { "keep" } else { "close" }],
    );
    assert_eq!(run.out.code(), Some(0), "{}", run.out.stderr);
    let v = report_json(&run.trace);
    Some((dir, v, lib))
}

fn assert_lib_frame(v: &Value, lib: &Path) {
    let r = record_of_bytes(v, 4321);
    let top = &frames(r)[0];
    assert_eq!(top["function"], "lib_alloc", "{top}");
    assert_eq!(
        top["module"].as_str(),
        lib.to_str(),
        "module of the library's frame"
    );
    assert!(
        top["file"].as_str().unwrap_or("").ends_with("dl_lib.c"),
        "{top}"
    );
    assert_eq!(top["line"], marker_line("dl_lib.c", "lib_alloc"));
    let caller = &frames(r)[1];
    assert_eq!(caller["function"], "main");
    assert!(caller["file"].as_str().unwrap_or("").ends_with("dl_main.c"));
    assert_eq!(v["trace"]["inconsistencies"], 0);
}

#[test]
fn dlopened_library_is_named_after_dlclose() {
    let Some((_dir, v, lib)) = dl_run(false) else {
        return;
    };
    assert_lib_frame(&v, &lib);
}

#[test]
fn dlopened_library_is_named_while_loaded() {
    let Some((_dir, v, lib)) = dl_run(true) else {
        return;
    };
    assert_lib_frame(&v, &lib);
}

/// After dlclose, a second library often lands at the same address: each
/// library's frames keep their own names.
#[test]
fn library_loaded_after_dlclose_at_same_address() {
    let dir = TestDir::new("dlopen2");
    let Some(prog) = compile(dir.path(), "dl_main.c", &["-ldl"]) else {
        return;
    };
    let Some(lib) = build_lib(&dir, "dl_lib.c", "libdl_lib.so") else {
        return;
    };
    let Some(lib2) = build_lib(&dir, "dl_lib2.c", "libdl_lib2.so") else {
        return;
    };
    let run = leakhunt_run(
        dir.path(),
        &prog,
        &[lib.to_str().unwrap(), "close", lib2.to_str().unwrap()],
    );
    assert_eq!(run.out.code(), Some(0), "{}", run.out.stderr);
    let v = report_json(&run.trace);
    assert_lib_frame(&v, &lib);
    let r = record_of_bytes(&v, 5555);
    let top = &frames(r)[0];
    assert_eq!(top["function"], "lib_alloc", "{top}");
    assert_eq!(
        top["module"].as_str(),
        lib2.to_str(),
        "module of the second library's frame"
    );
    assert!(
        top["file"].as_str().unwrap_or("").ends_with("dl_lib2.c"),
        "{top}"
    );
    assert_eq!(top["line"], marker_line("dl_lib2.c", "lib2_alloc"));
}

/// `leakhunt flamegraph` draws the never-freed bytes by stack: an SVG that
/// names every leaking function.
#[test]
fn flamegraph_names_the_leaking_functions() {
    let dir = TestDir::new("flamegraph");
    let Some(prog) = compile(dir.path(), "entry_points.c", &[]) else {
        return;
    };
    let run = leakhunt_run(dir.path(), &prog, &[]);
    assert_eq!(run.out.code(), Some(0));
    for what in ["leaked", "allocated"] {
        let svg = dir.join(format!("{what}.svg"));
        let o = leakhunt(&[
            "flamegraph",
            run.trace.to_str().unwrap(),
            "-o",
            svg.to_str().unwrap(),
            "--what",
            what,
            // the program keeps its blocks in globals: still reachable
            "--kinds",
            "all",
        ]);
        assert_eq!(o.code(), Some(0), "{what}: {}", o.stderr);
        let text = std::fs::read_to_string(&svg).expect("svg written");
        assert!(text.contains("<svg"), "{what}: not an SVG");
        // (frames narrower than a pixel are left out: 10 bytes of 1 MiB are)
        let sites: &[&str] = if what == "leaked" {
            &[
                "leak_malloc",
                "leak_calloc",
                "leak_realloc",
                "leak_posix_memalign",
                "leak_strdup",
            ]
        } else {
            &["freed", "leak_realloc"]
        };
        for site in sites {
            assert!(
                text.contains(site),
                "{what}: {site} missing from the flamegraph"
            );
        }
    }
}
