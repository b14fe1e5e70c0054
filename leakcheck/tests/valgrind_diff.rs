//! Differential test against the real memcheck (needs `valgrind`, `cc` and
//! `c++`; says so and passes when one is missing, like the project's other
//! oracle tests).
//!
//! A C program (`valgrind/random_heap.c`) builds a random heap under
//! valgrind, whose only root is a global array, and dumps the blocks, their
//! contents and that array; memcheck's LEAK SUMMARY (with the per-heuristic
//! breakdown and the indirect bytes of the definitely lost record) must equal
//! what `classify` computes from the dump. A C++ program does the same for
//! the multipleinheritance heuristic, with real vtables.
//!
//! Dump format (little-endian u64s): `n`, then `n` times `addr size
//! bytes[size]`; `nroots roots_addr nroots*word`; `maps_len maps_text`; then
//! `start end bytes[end-start]` records up to `0 0`.

use leakhunt_leakcheck::{
    classify, memcheck_vtable_check, Block, Heuristic, Kind, Mapping, Memory, Roots,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Dump {
    blocks: Vec<Block>,
    words: HashMap<u64, u64>,
    roots: (u64, u64),
    maps: Vec<Mapping>,
    ro: HashMap<u64, u64>,
}

impl Memory for Dump {
    fn word(&self, addr: u64) -> Option<u64> {
        self.words.get(&addr).copied()
    }
    fn is_vtable_location(&self, addr: u64) -> bool {
        memcheck_vtable_check(
            addr,
            |a| {
                self.maps
                    .iter()
                    .copied()
                    .find(|m| m.start <= a && a < m.end)
            },
            |a| self.ro.get(&a).copied(),
        )
    }
}

fn put_words(map: &mut HashMap<u64, u64>, addr: u64, bytes: &[u8]) {
    for (k, c) in bytes.chunks_exact(8).enumerate() {
        map.insert(
            addr + 8 * k as u64,
            u64::from_le_bytes(c.try_into().unwrap()),
        );
    }
}

fn read_dump(path: &Path) -> Dump {
    let d = std::fs::read(path).unwrap();
    let mut off = 0usize;
    let mut rd = |n: usize| {
        let s = d[off..off + n].to_vec();
        off += n;
        s
    };
    let w = |v: Vec<u8>| u64::from_le_bytes(v.try_into().unwrap());
    let n = w(rd(8));
    let mut words = HashMap::new();
    let mut blocks = Vec::new();
    for _ in 0..n {
        let a = w(rd(8));
        let s = w(rd(8));
        put_words(&mut words, a, &rd(s as usize));
        blocks.push(Block { start: a, size: s });
    }
    let nr = w(rd(8));
    let ra = w(rd(8));
    put_words(&mut words, ra, &rd(8 * nr as usize));
    let ml = w(rd(8));
    let maps_text = String::from_utf8(rd(ml as usize)).unwrap();
    let mut ro = HashMap::new();
    loop {
        let s = w(rd(8));
        let e = w(rd(8));
        if s == 0 {
            break;
        }
        put_words(&mut ro, s, &rd((e - s) as usize));
    }
    let maps = maps_text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (s, e) = f[0].split_once('-').unwrap();
            let perms = f[1].as_bytes();
            Mapping {
                start: u64::from_str_radix(s, 16).unwrap(),
                end: u64::from_str_radix(e, 16).unwrap(),
                readable: perms[0] == b'r',
                executable: perms[2] == b'x',
                file_backed: f.get(5).is_some_and(|p| p.starts_with('/')),
            }
        })
        .collect();
    blocks.sort_by_key(|b| b.start);
    Dump {
        blocks,
        words,
        roots: (ra, ra + 8 * nr),
        maps,
        ro,
    }
}

/// The LEAK SUMMARY numbers: per kind (bytes, blocks), per heuristic (bytes,
/// blocks), and the indirect bytes of the definitely lost blocks.
#[derive(Debug, PartialEq, Eq, Default)]
struct Summary {
    kinds: Vec<(String, u64, u64)>,
    heuristics: Vec<(String, u64, u64)>,
    definite_indirect: u64,
}

fn num(s: &str) -> u64 {
    s.replace(',', "").parse().unwrap()
}

/// Parses memcheck's output.
fn parse_valgrind(out: &str) -> Summary {
    let mut sum = Summary::default();
    for line in out.lines() {
        let line = line.split_once("== ").map_or(line, |(_, r)| r).trim();
        for kind in [
            "definitely lost",
            "indirectly lost",
            "possibly lost",
            "still reachable",
        ] {
            if let Some(rest) = line.strip_prefix(&format!("{kind}: ")) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                sum.kinds.push((kind.into(), num(f[0]), num(f[3])));
            }
        }
        for h in ["stdstring", "length64", "newarray", "multipleinheritance"] {
            if let Some(rest) = line.strip_prefix(h) {
                if let Some(rest) = rest.trim_start().strip_prefix(": ") {
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    sum.heuristics.push((h.into(), num(f[0]), num(f[3])));
                }
            }
        }
        if line.contains("are definitely lost in loss record") {
            if let Some((_, r)) = line.split_once(" direct, ") {
                sum.definite_indirect += num(r.split_whitespace().next().unwrap());
            }
        }
    }
    sum
}

/// The same numbers from `classify`.
fn summarize(d: &Dump) -> Summary {
    let out = classify(
        &d.blocks,
        &Roots {
            ranges: &[d.roots],
            words: &[],
        },
        d,
    );
    let mut sum = Summary::default();
    for (name, kind) in [
        ("definitely lost", Kind::DefinitelyLost),
        ("indirectly lost", Kind::IndirectlyLost),
        ("possibly lost", Kind::PossiblyLost),
        ("still reachable", Kind::StillReachable),
    ] {
        let (mut bytes, mut n) = (0, 0);
        for (b, o) in d.blocks.iter().zip(&out) {
            if o.kind == kind {
                bytes += b.size;
                n += 1;
            }
        }
        sum.kinds.push((name.into(), bytes, n));
    }
    for (name, h) in [
        ("stdstring", Heuristic::StdString),
        ("length64", Heuristic::Length64),
        ("newarray", Heuristic::NewArray),
        ("multipleinheritance", Heuristic::MultipleInheritance),
    ] {
        let (mut bytes, mut n) = (0, 0);
        for (b, o) in d.blocks.iter().zip(&out) {
            if o.heuristic == Some(h) {
                bytes += b.size;
                n += 1;
            }
        }
        // memcheck prints a heuristic's line only when it has blocks.
        if n > 0 {
            sum.heuristics.push((name.into(), bytes, n));
        }
    }
    sum.definite_indirect = out.iter().map(|o| o.indirect_bytes).sum();
    sum
}

/// Whether `tool` can be run; if not, says that the test is skipped.
fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: {tool} is not installed");
    }
    ok
}

fn work_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("leakcheck-vgdiff-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn compile(compiler: &str, src: &str, out: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/valgrind")
        .join(src);
    let st = Command::new(compiler)
        .args(["-O1", "-g", "-o"])
        .arg(out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(st.success(), "{compiler} failed on {}", src.display());
}

fn run_valgrind(prog: &Path, args: &[&str]) -> String {
    // Client memory above 4 GiB: ld.so's `relocate_time`, a TSC count of
    // tens of millions, otherwise lands in memcheck's low heap now and then
    // as an interior pointer the dump does not hold (see MEMCHECK_HIGH_HEAP
    // in tests/src/lib.rs).
    let out = Command::new("valgrind")
        .args([
            "--aspace-minaddr=0x100000000",
            "--leak-check=full",
            "--show-leak-kinds=all",
        ])
        .arg(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run valgrind: {e}"));
    assert!(
        out.status.success(),
        "{} exited with {}: {}",
        prog.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn valgrind_random_heaps() {
    if !have("valgrind") || !have("cc") {
        return;
    }
    let dir = work_dir("random");
    let prog = dir.join("random_heap");
    compile("cc", "random_heap.c", &prog);
    for seed in [7932u64, 15851, 23770, 31689, 39608, 47527, 55446, 63365] {
        let dump = dir.join(format!("heap-{seed}.bin"));
        let vg = parse_valgrind(&run_valgrind(
            &prog,
            &[dump.to_str().unwrap(), &seed.to_string()],
        ));
        let d = read_dump(&dump);
        assert_eq!(d.blocks.len(), 3000);
        let ours = summarize(&d);
        println!("seed {seed}: {ours:?}");
        assert_eq!(ours, vg, "seed {seed}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn valgrind_multiple_inheritance() {
    if !have("valgrind") || !have("c++") {
        return;
    }
    let dir = work_dir("mi");
    let prog = dir.join("multiple_inheritance");
    compile("c++", "multiple_inheritance.cpp", &prog);
    let dump = dir.join("mi.bin");
    let vg = parse_valgrind(&run_valgrind(&prog, &[dump.to_str().unwrap()]));
    let d = read_dump(&dump);
    let ours = summarize(&d);
    println!("{ours:?}");
    assert_eq!(ours, vg);
    assert_eq!(
        ours.heuristics,
        vec![("multipleinheritance".into(), 112, 2)]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
