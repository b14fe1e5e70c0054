//! Distro programs (no frame pointers) under `LD_PRELOAD` of the `preload_check` example, which
//! compares `capture` with `capture_slow` on every `malloc`.
//!
//! The example is a cdylib that needs the `diagnostics` feature, so this test only does something
//! under `cargo test --features diagnostics` (which builds the example); otherwise it prints
//! SKIPPED. Programs that are not installed are skipped too.

use std::path::{Path, PathBuf};
use std::process::Command;

fn preload_lib() -> Option<PathBuf> {
    // target/<profile>/deps/real_programs-<hash> -> target/<profile>/examples/
    let exe = std::env::current_exe().ok()?;
    let lib = exe.parent()?.parent()?.join("examples/libpreload_check.so");
    lib.exists().then_some(lib)
}

struct Outcome {
    compared: u64,
    mismatches: u64,
    fallbacks: u64,
}

/// Parses the "preload_check: N stacks compared, M mismatches, F fallbacks" lines (one per
/// process: the program and the processes it runs).
fn parse(stderr: &str) -> Outcome {
    let mut o = Outcome {
        compared: 0,
        mismatches: 0,
        fallbacks: 0,
    };
    for line in stderr
        .lines()
        .filter_map(|l| l.strip_prefix("preload_check: "))
    {
        let nums: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        if line.contains("stacks compared") {
            o.compared += nums[0];
            o.mismatches += nums[1];
            o.fallbacks += nums[2];
        }
    }
    o
}

/// Path, arguments, extra environment.
type Program = (&'static str, Vec<String>, Vec<(&'static str, &'static str)>);

#[test]
fn distro_programs_under_preload() {
    let Some(lib) = preload_lib() else {
        println!("SKIPPED: no libpreload_check.so (run with --features diagnostics)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("leakhunt-unwind-real-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("t.c"),
        "#include <stdio.h>\n#include <stdlib.h>\nint main(void) { char *p = malloc(10); \
         snprintf(p, 10, \"%d\", 42); puts(p); free(p); return 0; }\n",
    )
    .unwrap();
    let python = "import json, threading, re\n\
                  d = {str(i): [i, str(i) * 3, {'k': i}] for i in range(3000)}\n\
                  json.loads(json.dumps(d))\n\
                  ts = [threading.Thread(target=lambda: re.findall('a+b', 'aab' * 999)) for _ in range(3)]\n\
                  [t.start() for t in ts]; [t.join() for t in ts]\n";
    let programs: Vec<Program> = vec![
        (
            "/usr/bin/python3.11",
            vec!["-c".into(), python.into()],
            vec![("PYTHONMALLOC", "malloc")],
        ),
        (
            "/usr/bin/perl",
            vec![
                "-e".into(),
                "my %h; $h{$_} = [$_ x 3] for 1..20000; print scalar(keys %h), qq(\\n);".into(),
            ],
            vec![],
        ),
        ("/usr/bin/sort", vec!["/usr/include/stdio.h".into()], vec![]),
        (
            "/usr/bin/gcc",
            vec![
                "-O2".into(),
                "-c".into(),
                dir.join("t.c").display().to_string(),
                "-o".into(),
                dir.join("t.o").display().to_string(),
            ],
            vec![],
        ),
    ];
    let mut ran = 0;
    for (prog, args, env) in &programs {
        if !Path::new(prog).exists() {
            println!("{prog}: SKIPPED (not installed)");
            continue;
        }
        let out = Command::new(prog)
            .args(args)
            .envs(env.iter().copied())
            .env("LD_PRELOAD", &lib)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{prog} failed: {stderr}");
        let o = parse(&stderr);
        println!(
            "{prog}: {} stacks compared, {} mismatches, {} fallbacks",
            o.compared, o.mismatches, o.fallbacks
        );
        assert!(o.compared > 0, "{prog}: no report: {stderr}");
        assert_eq!(o.mismatches, 0, "{prog}: {stderr}");
        ran += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ran > 0 || programs.iter().all(|p| !Path::new(p.0).exists()));
}
