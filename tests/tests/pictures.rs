//! The pictures answer "where, exactly": a leaked flamegraph's frames carry
//! file:line and the leak kinds have fills of their own; a diff's SVG shows
//! the call sites live in both runs with their change.

use leakhunt_tests::*;

/// Each frame of an inferno SVG: (tooltip, fill, label).
fn frames(svg: &str) -> Vec<(String, String, String)> {
    svg.split("<g><title>")
        .skip(1)
        .filter_map(|g| {
            let title = &g[..g.find("</title>")?];
            let fill = g.split("fill=\"").nth(1)?.split('"').next()?;
            let label = g.split("<text").nth(1)?;
            let label = &label[label.find('>')? + 1..label.find("</text>")?];
            Some((title.into(), fill.into(), label.into()))
        })
        .collect()
}

#[test]
fn leaked_flamegraph_frames_carry_file_line_and_kind_fills() {
    let dir = TestDir::new("pictures-kinds");
    let Some(prog) = compile(dir.path(), "leak_kinds.c", &[]) else {
        return;
    };
    let run = leakhunt_run(dir.path(), &prog, &[]);
    assert_eq!(run.out.code(), Some(0), "{}", run.out.stderr);
    let svg_path = dir.join("leaked.svg");
    let o = leakhunt(&[
        "flamegraph",
        run.trace.to_str().unwrap(),
        "-o",
        svg_path.to_str().unwrap(),
    ]);
    assert_eq!(o.code(), Some(0), "{}", o.stderr);
    let svg = std::fs::read_to_string(&svg_path).expect("svg written");
    let frames = frames(&svg);
    // The allocating function, with its file and line, in box and tooltip.
    let lose: Vec<_> = frames
        .iter()
        .filter(|f| f.0.starts_with("lose (leak_kinds.c:"))
        .collect();
    assert_eq!(lose.len(), 3, "one `lose` per kind: {frames:#?}");
    assert!(
        lose.iter().any(|f| f.2.starts_with("lose (leak_kinds.c:")),
        "no box reads `lose (leak_kinds.c:N)`: {lose:#?}"
    );
    // Each kind is a tower of its own, in a colour of its own, and the
    // legend says which.
    let mut fills = Vec::new();
    for kind in ["definitely lost", "indirectly lost", "possibly lost"] {
        let root = frames
            .iter()
            .find(|f| f.0.starts_with(&format!("{kind} (")))
            .unwrap_or_else(|| panic!("no {kind} frame: {frames:#?}"));
        fills.push(root.1.clone());
        assert!(svg.contains(&format!(">{kind} (")), "legend lacks {kind}");
    }
    let lose_fills: Vec<&String> = lose.iter().map(|f| &f.1).collect();
    for (i, f) in lose_fills.iter().enumerate() {
        assert!(
            !lose_fills[i + 1..].contains(f),
            "two kinds' `lose` share the fill {f}: {lose:#?}"
        );
    }
    fills.sort();
    fills.dedup();
    assert_eq!(fills.len(), 3, "kinds share a fill: {fills:?}");
    // Nothing still reachable is drawn under the default kinds.
    assert!(!frames.iter().any(|f| f.0.starts_with("still reachable (")));
}

#[test]
fn diff_svg_shows_sites_live_in_both_runs() {
    let dir = TestDir::new("pictures-diff");
    let Some(prog) = compile(dir.path(), "make_list.c", &[]) else {
        return;
    };
    let a = leakhunt_run_to(dir.path(), &dir.join("a.trace"), &prog, &["100"]);
    let b = leakhunt_run_to(dir.path(), &dir.join("b.trace"), &prog, &["300"]);
    assert_eq!(a.out.code(), Some(0), "{}", a.out.stderr);
    assert_eq!(b.out.code(), Some(0), "{}", b.out.stderr);
    let svg_path = dir.join("diff.svg");
    let o = leakhunt(&[
        "diff",
        a.trace.to_str().unwrap(),
        b.trace.to_str().unwrap(),
        "-o",
        svg_path.to_str().unwrap(),
    ]);
    assert_eq!(o.code(), Some(0), "{}", o.stderr);
    let svg = std::fs::read_to_string(&svg_path).expect("svg written");
    let frames = frames(&svg);
    let site = |name: &str| {
        let l = marker_line("make_list.c", name);
        let label = format!("{name} (make_list.c:{l}) (");
        frames
            .iter()
            .find(|f| f.0.starts_with(&label))
            .unwrap_or_else(|| panic!("no {label:?} in the diff: {frames:#?}"))
            .clone()
    };
    // 100 then 300 nodes of 56 bytes: live in both, grown.
    let grown = site("make_list");
    assert!(
        grown.0.contains("(5,600 -&gt; 16,800 bytes, +11,200)"),
        "{grown:?}"
    );
    // Live in both, the same: drawn too, white.
    let same = site("other");
    assert!(
        same.0.contains("(1,000 -&gt; 1,000 bytes, unchanged)"),
        "{same:?}"
    );
    assert_eq!(same.1, "rgb(250, 250, 250)");
    // Only in the second run.
    let new = site("only_long");
    assert!(new.0.contains("(0 -&gt; 5,000 bytes, +5,000)"), "{new:?}");
    assert_ne!(grown.1, same.1);
}
