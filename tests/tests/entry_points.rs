//! Every allocation entry point of C and C++: exact totals against the
//! program's own tally, and the never-freed records with their stacks.

use leakhunt_tests::*;
use std::path::Path;

const C_LEAKS: &[(&str, u64, u64)] = &[
    // (site, bytes, blocks)
    ("leak_malloc", 505, 5),
    ("leak_calloc", 123, 1),
    ("leak_realloc", 1234, 1),
    ("leak_reallocarray", 77, 1),
    ("leak_posix_memalign", 999, 1),
    ("leak_aligned_alloc", 512, 1),
    ("leak_memalign", 333, 1),
    ("leak_valloc", 777, 1),
    ("leak_pvalloc", 555, 1),
    ("leak_strdup", 10, 1),
];

#[test]
fn c_entry_points_exact_totals_and_records() {
    let dir = TestDir::new("entry_c");
    let Some(prog) = compile(dir.path(), "entry_points.c", &[]) else {
        return;
    };
    let run = leakhunt_run(dir.path(), &prog, &[]);
    assert_eq!(
        run.out.code(),
        Some(0),
        "program status: {}",
        run.out.stderr
    );
    let c = counts(&run.out.stderr, "allocs=");
    let v = report_json(&run.trace);

    // The program writes with write(2) only: the C runtime adds nothing.
    assert_totals_match(&v, &c, 0, 0);
    assert_peak(&v, c["peak"] as u64);
    assert_eq!(v["trace"]["complete"], true);
    assert_eq!(v["trace"]["anomalies"], 0);
    assert_eq!(v["program"]["exit_code"], 0);

    let recs = program_records(&v);
    assert_eq!(
        recs.len(),
        C_LEAKS.len(),
        "never-freed records: {:#?}",
        v["records"]
    );
    for &(site, bytes, blocks) in C_LEAKS {
        let r = record_of_bytes(&v, bytes);
        assert_eq!(r["blocks"].as_u64(), Some(blocks), "blocks of {site}");
        assert_record_kind(&v, r);
        let f = site_frame(r, "entry_points")
            .unwrap_or_else(|| panic!("no program frame for {site}: {r}"));
        assert_frame(
            f,
            site,
            "entry_points.c",
            marker_line("entry_points.c", site),
        );
        // Frames before the allocation site are the allocator's own (strdup, ...).
        for g in frames(r)
            .iter()
            .take_while(|g| !frame_in(g, "entry_points"))
        {
            let m = g["module"].as_str().unwrap_or("");
            assert!(
                m.contains("libc.so"),
                "{site}: frame before the site is not libc's: {g}"
            );
        }
    }
    // Directly called entry points: the top frame is the program's function.
    let top = &frames(record_of_bytes(&v, 505))[0];
    assert_frame(
        top,
        "leak_malloc",
        "entry_points.c",
        marker_line("entry_points.c", "leak_malloc"),
    );
    assert_eq!(top["language"], "c");
    let m = top["module"].as_str().unwrap_or("");
    assert!(m.ends_with("/entry_points"), "module {m}");
    assert!(
        top["address"].as_str().unwrap_or("").starts_with("0x"),
        "address: {top}"
    );
    // strdup: its own frame first, in libc.
    let s = &frames(record_of_bytes(&v, 10))[0];
    assert!(
        s["function"].as_str().unwrap_or("").contains("strdup"),
        "top frame of strdup's block: {s}"
    );
}

#[test]
fn c_entry_points_match_valgrind() {
    // valgrind 3.19 aborts on pvalloc: compare the program without it.
    let dir = TestDir::new("entry_c_vg");
    let Some(prog) = compile(dir.path(), "entry_points.c", &["-DNO_PVALLOC"]) else {
        return;
    };
    let Some(vg) = valgrind_summary(&prog, &[]) else {
        return;
    };
    let run = leakhunt_run(dir.path(), &prog, &[]);
    let v = report_json(&run.trace);
    let t = program_totals(&v);
    eprintln!("valgrind: {vg:?}; leakhunt: {t:?}");
    assert_eq!(t.allocations, vg.allocs, "allocations vs memcheck's allocs");
    assert_eq!(t.allocated_bytes, vg.bytes, "allocated bytes vs memcheck's");
}

#[test]
fn cpp_entry_points_exact_totals_and_records() {
    let dir = TestDir::new("entry_cpp");
    let Some(prog) = compile(dir.path(), "entry_points_cpp.cpp", &[]) else {
        return;
    };
    let run = leakhunt_run_noscan(dir.path(), &prog, &[]);
    assert_eq!(
        run.out.code(),
        Some(0),
        "program status: {}",
        run.out.stderr
    );
    let c = counts(&run.out.stderr, "allocs=");
    let v = report_json(&run.trace);

    // libstdc++ adds its emergency pool: one block, never freed.
    assert_totals_match(&v, &c, 1, EMERGENCY_POOL_BYTES);
    assert_peak(&v, c["peak"] as u64 + EMERGENCY_POOL_BYTES);
    assert_eq!(v["trace"]["anomalies"], 0);
    let pool = record_of_bytes(&v, EMERGENCY_POOL_BYTES);
    assert_eq!(pool["blocks"], 1);

    for (site, bytes, new_fn) in [
        ("leak_new", 40u64, "operator new(unsigned long)"),
        ("leak_new_array", 100, "operator new"),
        (
            "leak_aligned_new",
            192,
            "operator new(unsigned long, std::align_val_t)",
        ),
    ] {
        let r = record_of_bytes(&v, bytes);
        assert_eq!(r["blocks"], 1);
        assert_record_kind(&v, r);
        // The stack starts at operator new, or (allocator frames hidden) at the site.
        let top = &frames(r)[0];
        let name = top["function"].as_str().unwrap_or("");
        if frame_in(top, "libstdc++.so.6") {
            assert!(
                name.starts_with(new_fn),
                "{site}: top frame {name:?}, expected {new_fn}"
            );
        } else {
            assert_eq!(name, format!("{site}()"), "{site}: top frame");
        }
        assert_eq!(top["language"], "c++");
        let f =
            site_frame(r, "entry_points_cpp").unwrap_or_else(|| panic!("no program frame: {r}"));
        assert_frame(
            f,
            site,
            "entry_points_cpp.cpp",
            marker_line("entry_points_cpp.cpp", site),
        );
        assert_eq!(
            f["function"].as_str(),
            Some(format!("{site}()").as_str()),
            "demangled with its parameter list"
        );
    }
    assert_eq!(program_records(&v).len(), 4, "records: {:#?}", v["records"]);
}

#[test]
fn cpp_entry_points_match_valgrind() {
    let dir = TestDir::new("entry_cpp_vg");
    let Some(prog) = compile(dir.path(), "entry_points_cpp.cpp", &[]) else {
        return;
    };
    let Some(vg) = valgrind_summary(&prog, &[]) else {
        return;
    };
    let run = leakhunt_run(dir.path(), &prog, &[]);
    let t = program_totals(&report_json(&run.trace));
    eprintln!("valgrind: {vg:?}; leakhunt: {t:?}");
    // Both see the emergency pool.
    assert_eq!(t.allocations, vg.allocs);
    assert_eq!(t.allocated_bytes, vg.bytes);
}

/// Allocations made before the recorder's constructor ran (libstdc++'s
/// emergency pool is made by libstdc++'s own constructor) are recorded with a
/// stack that can be symbolized (their stacks come before the first module
/// map in the trace).
#[test]
fn allocation_before_recorder_init_is_symbolized() {
    let dir = TestDir::new("pool_sym");
    let Some(prog) = compile(dir.path(), "entry_points_cpp.cpp", &[]) else {
        return;
    };
    let run = leakhunt_run_noscan(dir.path(), &prog, &[]);
    let v = report_json(&run.trace);
    let pool = record_of_bytes(&v, EMERGENCY_POOL_BYTES);
    let named: Vec<&serde_json::Value> = frames(pool)
        .into_iter()
        .filter(|f| f["function"].is_string())
        .collect();
    assert!(
        !named.is_empty(),
        "no frame of the emergency pool's stack is symbolized: {pool}"
    );
    assert!(
        frames(pool).iter().any(|f| frame_in(f, "libstdc++.so.6")),
        "no libstdc++ frame: {pool}"
    );
}

/// The recorder must never record its own allocations (its writer thread's
/// first allocation once was, in most runs).
#[test]
fn recorder_never_records_itself() {
    let dir = TestDir::new("own");
    let Some(prog) = compile(dir.path(), "small.c", &[]) else {
        return;
    };
    for i in 0..10 {
        let run = leakhunt_run(dir.path(), &prog, &[]);
        let v = report_json(&run.trace);
        let own: Vec<&serde_json::Value> = records(&v)
            .into_iter()
            .filter(|r| is_recorder_own(r))
            .collect();
        assert!(
            own.is_empty(),
            "run {i}: the recorder recorded its own blocks: {own:#?}"
        );
        assert_eq!(num(&v, "totals/allocations"), 4, "run {i}");
        assert_eq!(
            num(&v, "trace/threads"),
            1,
            "run {i}: only the program's thread allocates"
        );
    }
}

/// SPEC.md: leak kinds have memcheck's meaning and the same bytes and blocks.
#[test]
fn leak_kinds_match_memcheck() {
    let dir = TestDir::new("kinds");
    let Some(prog) = compile(dir.path(), "leak_kinds.c", &[]) else {
        return;
    };
    let Some(vg) = valgrind(&prog, &[], &["--leak-check=full"]) else {
        return;
    };
    let want = parse_valgrind_leaks(&vg.stderr);
    assert_eq!(
        want["definitely_lost"],
        (200, 1),
        "memcheck itself: {}",
        vg.stderr
    );
    let run = leakhunt_run(dir.path(), &prog, &[]);
    let v = report_json(&run.trace);
    assert_eq!(v["leaks"]["scanned"], true, "the exit scan did not run");
    for kind in [
        "definitely_lost",
        "indirectly_lost",
        "possibly_lost",
        "still_reachable",
    ] {
        let got = (
            num(&v, &format!("leaks/{kind}/bytes")),
            num(&v, &format!("leaks/{kind}/blocks")),
        );
        assert_eq!(got, want[kind], "{kind}: leakhunt vs memcheck");
    }
}

/// An allocator preloaded before libleakhunt.so takes every call: the
/// recorder says so, once, instead of writing an empty trace in silence;
/// after it, everything is recorded as usual.
#[test]
fn allocator_preloaded_first_is_reported() {
    let dir = TestDir::new("first_malloc");
    let Some(lib) = try_compile(
        dir.path(),
        "first_malloc.c",
        "libfirst.so",
        &["-shared", "-fPIC"],
    )
    .unwrap_or_else(|e| panic!("{e}")) else {
        return;
    };
    let Some(prog) = compile(dir.path(), "small.c", &[]) else {
        return;
    };
    let order = |first: &std::path::Path, second: &std::path::Path, out: &str| {
        let mut c = preload_cmd(&prog, &[], Some(&dir.join(out)));
        c.env(
            "LD_PRELOAD",
            format!("{}:{}", first.display(), second.display()),
        );
        run_cmd(&mut c, std::time::Duration::from_secs(30))
    };
    let o = order(&lib, &preload_lib(), "before.trace");
    let warned: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.contains("loaded before libleakhunt.so"))
        .collect();
    assert_eq!(warned.len(), 1, "{}", o.stderr);
    assert!(warned[0].contains("libfirst.so"), "{}", warned[0]);
    let o = order(&preload_lib(), &lib, "after.trace");
    assert!(!o.stderr.contains("loaded before"), "{}", o.stderr);
    assert_eq!(
        program_totals(&report_json(&dir.join("after.trace"))).allocations,
        4
    );
}

/// jemalloc and tcmalloc loaded after us bring their own `operator new` and
/// `operator delete`, which never call `malloc`: ours record them (before,
/// 2 of 203 C++ allocations were recorded with jemalloc). The program's own
/// counts, exactly; the three leaks with their sizes and the operator as
/// the innermost recorded frame (hidden in the report, as libstdc++'s is).
#[test]
fn cpp_operators_of_an_allocator_after_us_are_recorded() {
    let dir = TestDir::new("entry_cpp_alloc");
    let Some(prog) = compile(dir.path(), "entry_points_cpp.cpp", &[]) else {
        return;
    };
    // (library, allocations of its own through its operator new: tcmalloc's
    // start-up makes one of 16 bytes)
    let libs = [
        ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", 0u64, 0u64),
        ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4", 1, 16),
    ];
    for (lib, own_blocks, own_bytes) in libs {
        if !Path::new(lib).exists() {
            skip(&format!(
                "{lib} is not installed (make deps installs it as root)"
            ));
            continue;
        }
        let name = Path::new(lib).file_name().unwrap().to_string_lossy();
        let trace = dir.join(format!("{name}.trace"));
        let mut c = preload_cmd(&prog, &[], Some(&trace));
        c.env("LD_PRELOAD", format!("{}:{lib}", preload_lib().display()));
        // As cpp_entry_points_exact_totals_and_records: the scan's freeres
        // would free the emergency pool.
        c.env("LEAKHUNT_SCAN", "0");
        let o = run_cmd(&mut c, std::time::Duration::from_secs(60));
        assert_eq!(o.code(), Some(0), "{name}: {}", o.stderr);
        let counts = counts(&o.stderr, "allocs=");
        let v = report_json(&trace);
        assert_eq!(v["trace"]["anomalies"], 0, "{name}: {}", v["trace"]);
        assert_totals_match(
            &v,
            &counts,
            1 + own_blocks,
            EMERGENCY_POOL_BYTES + own_bytes,
        );
        for (site, bytes) in [
            ("leak_new", 40u64),
            ("leak_new_array", 100),
            ("leak_aligned_new", 192),
        ] {
            let r = record_of_bytes(&v, bytes);
            assert_eq!(r["blocks"], 1, "{name}: {site}");
            let f = site_frame(r, "entry_points_cpp")
                .unwrap_or_else(|| panic!("{name}: no program frame: {r}"));
            assert_eq!(f["function"].as_str(), Some(format!("{site}()").as_str()));
        }
    }
}
