//! The HTML report (`leakhunt report --format html`): one self-contained
//! page with the summary, the loss records and their stacks, the curve and
//! its verdict, the growing sites and four flamegraphs; every name from the
//! trace escaped (the program leaks in `operator<<` and `hold<Box<int> >`,
//! from a file named `hostile<&>"names.cpp`, run with a `<script>`
//! argument); `-o` under the rules of every view's `-o`, and `-o -` as
//! standard output there and elsewhere.
//!
//! Where Chromium is installed (`chromium` or `chromium-browser` on the
//! PATH) the page is opened headless with every host name unresolvable: it
//! must log nothing to the console (no script error, no message), search and zoom must work inside each
//! flamegraph (the page's `#selftest` runs them and writes what happened
//! into the DOM), and a screenshot is taken (kept in `target/tmp/`).

use leakhunt_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const HOSTILE_ARG: &str = "<script>alert(1)</script>";
const MARK: &str = "<!DOCTYPE html>\n<!-- written by leakhunt -->\n";

/// Compiles hostile_names.cpp under a hostile file name and records it.
fn record(dir: &TestDir) -> Option<PathBuf> {
    if !have("g++") {
        skip("g++ is not installed");
        return None;
    }
    let src = dir.join("hostile<&>\"names.cpp");
    std::fs::copy(source("hostile_names.cpp"), &src).expect("copy the program");
    let exe = dir.join("hostile");
    let o = run_cmd(
        Command::new("g++")
            .args(["-g", "-O1", "-Wall", "-o"])
            .arg(&exe)
            .arg(&src),
        TIMEOUT,
    );
    assert!(o.status.success(), "g++ failed: {}", o.stderr);
    let run = leakhunt_run(dir.path(), &exe, &[HOSTILE_ARG]);
    assert_eq!(run.out.code(), Some(0), "{}", run.out.stderr);
    Some(run.trace)
}

/// `leakhunt report --format html ARGS TRACE`.
fn html(args: &[&str], trace: &Path) -> Output {
    run_cmd(
        leakhunt_cmd()
            .args(["report", "--format", "html"])
            .args(args)
            .arg(trace),
        TIMEOUT,
    )
}

/// Writes the page with `args` to `dir/name` and reads it back.
fn page(dir: &TestDir, trace: &Path, name: &str, args: &[&str]) -> String {
    let out = dir.join(name);
    let mut all = args.to_vec();
    all.extend(["-o", out.to_str().unwrap()]);
    let o = html(&all, trace);
    assert!(o.status.success(), "report --format html: {}", o.stderr);
    assert!(
        o.stderr.contains("leakhunt: wrote "),
        "stderr: {}",
        o.stderr
    );
    std::fs::read_to_string(&out).expect("read the page")
}

/// The `<section id="...">` of a page.
fn section<'a>(page: &'a str, id: &str) -> &'a str {
    let open = format!("<section id=\"{id}\">");
    let start = page
        .find(&open)
        .unwrap_or_else(|| panic!("no {open} in the page"));
    let rest = &page[start..];
    &rest[..rest.find("</section>").expect("section closed")]
}

/// Every `http://` or `https://` in an attribute of the page is an XML
/// namespace name (`xmlns="http://www.w3.org/2000/svg"`, inferno's
/// `xmlns:fg=`), which nothing fetches; elsewhere it is text (inferno's
/// comment pointing at FlameGraph's home). Nothing is a `src`, an `href`,
/// a `url(...)` of another file, a `<link>` or an `@import`.
fn assert_offline(page: &str) {
    for scheme in ["http://", "https://"] {
        for (i, _) in page.match_indices(scheme) {
            let before = &page[i.saturating_sub(40)..i];
            let Some(attr) = before
                .strip_suffix("=\"")
                .or_else(|| before.strip_suffix("=&quot;"))
            else {
                continue;
            };
            let name = attr.rsplit([' ', '<']).next().unwrap_or("");
            assert!(
                name == "xmlns" || name.starts_with("xmlns:"),
                "a resource fetched from the network: …{before}{}…",
                &page[i..(i + 60).min(page.len())]
            );
        }
    }
    for fetch in ["<link", "&lt;link", "@import", " src=\"", " src=&quot;"] {
        assert!(!page.contains(fetch), "the page loads something: {fetch}");
    }
    // `url(#background)`: a gradient of the same SVG.
    for (i, _) in page.match_indices("url(") {
        assert!(
            page[i + 4..].starts_with('#'),
            "the page loads something: {}",
            &page[i..(i + 60).min(page.len())]
        );
    }
}

#[test]
fn page_holds_the_report_escaped_and_offline() {
    let dir = TestDir::new("html_page");
    let Some(trace) = record(&dir) else {
        return;
    };
    let p = page(&dir, &trace, "report.html", &["--show", "all"]);
    assert!(p.starts_with(MARK), "{}", &p[..p.len().min(200)]);
    assert!(p.trim_end().ends_with("</html>"));

    // The same loss records as the JSON report, with their stacks.
    let v = report_json(&trace);
    let records = section(&p, "records");
    let n = records.matches("<details class=\"record\"").count();
    assert_eq!(n as u64, num(&v, "records_total"), "{records}");
    assert_eq!(n, 4, "three operator<< buffers and one hold: {records}");
    assert!(
        records.contains("is definitely lost in loss record 1 of 4"),
        "{records}"
    );
    // Names and file names from the trace, escaped as text.
    assert!(
        records.contains("operator&lt;&lt;(std::ostream&amp;, Leaky const&amp;)"),
        "{records}"
    );
    assert!(records.contains("hold&lt;Box&lt;int&gt; &gt;"), "{records}");
    assert!(
        records.contains("(hostile&lt;&amp;&gt;\"names.cpp:"),
        "{records}"
    );
    assert!(records.contains("<span class=\"fn\">main</span>"));
    let summary = section(&p, "summary");
    let lost = num(&v, "leaks/definitely_lost/bytes");
    assert!(
        summary.contains(&format!("{lost} bytes")),
        "definitely lost {lost}: {summary}"
    );
    // The curve and its verdict, inline; four flamegraphs.
    let growth = section(&p, "growth");
    let verdict = string(&v, "timeline/verdict");
    assert!(
        growth.contains(&format!("<b class=\"{verdict}\">{verdict}</b>")),
        "{growth}"
    );
    assert!(growth.contains("<svg"), "no curve: {growth}");
    let flames = section(&p, "flamegraph");
    assert_eq!(flames.matches("<iframe ").count(), 4);
    for what in ["leaked", "peak", "allocated", "temporary"] {
        assert!(flames.contains(&format!("data-panel=\"{what}\"")), "{what}");
    }

    // Nothing from the trace became markup: the argument, the file name
    // and the function names appear only escaped, and the page has one
    // script of its own (inferno's are inside the escaped frames).
    assert!(!p.contains(HOSTILE_ARG), "the argument was not escaped");
    assert!(p.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!p.contains("hostile<&>"), "the file name was not escaped");
    assert!(!p.contains("operator<<"), "a function name was not escaped");
    assert_eq!(p.matches("<script").count(), 1, "scripts in the page");
    assert_offline(&p);
}

#[test]
fn report_options_apply_to_the_page() {
    let dir = TestDir::new("html_options");
    let Some(trace) = record(&dir) else {
        return;
    };
    // A LeakSanitizer suppression hides hold's record, as in the text.
    let supp = dir.join("hold.supp");
    std::fs::write(&supp, "leak:hold\n").unwrap();
    let p = page(
        &dir,
        &trace,
        "suppressed.html",
        &["--suppressions", supp.to_str().unwrap()],
    );
    let records = section(&p, "records");
    assert_eq!(records.matches("<details class=\"record\"").count(), 3);
    assert!(!records.contains("hold&lt;"), "{records}");
    let summary = section(&p, "summary");
    assert!(
        summary.contains("<div class=\"label\">suppressed</div><div class=\"value\">40 bytes"),
        "{summary}"
    );
    // --limit and --depth, as in the text.
    let p = page(
        &dir,
        &trace,
        "limited.html",
        &["--limit", "1", "--depth", "1"],
    );
    let records = section(&p, "records");
    assert_eq!(records.matches("<details class=\"record\"").count(), 1);
    assert_eq!(records.matches("<li>").count(), 1, "{records}");
    assert!(
        records.contains("and 3 smaller loss records, 121 bytes in 3 blocks"),
        "{records}"
    );
    // --gen-suppressions puts each record's suppression under it.
    let p = page(&dir, &trace, "gen.html", &["--gen-suppressions"]);
    assert_eq!(
        section(&p, "records")
            .matches("<pre class=\"supp\">")
            .count(),
        4
    );
    // --from/--to compare two moments: not what the page shows.
    let o = html(&["--from", "1"], &trace);
    assert_eq!(o.code(), Some(2));
    assert_eq!(o.leakhunt_lines().len(), 1, "{}", o.stderr);
    assert!(o.stdout.is_empty());
}

#[test]
fn output_follows_the_rules_of_every_o() {
    let dir = TestDir::new("html_output");
    let Some(trace) = record(&dir) else {
        return;
    };
    let first = page(&dir, &trace, "report.html", &[]);
    // Our own earlier page is replaced.
    assert_eq!(page(&dir, &trace, "report.html", &[]), first);
    // Without -o, and with -o -: standard output, the same page.
    for args in [&[][..], &["-o", "-"][..]] {
        let o = html(args, &trace);
        assert!(o.status.success(), "{args:?}: {}", o.stderr);
        assert_eq!(o.stdout, first, "{args:?}");
        assert!(o.stderr.is_empty(), "{args:?}: {}", o.stderr);
    }
    // A page of the user's, a FIFO, a device: refused with one line.
    let mine = dir.join("mine.html");
    std::fs::write(&mine, "<!DOCTYPE html>\n<p>my notes</p>\n").unwrap();
    let fifo = dir.join("fifo.html");
    mkfifo(&fifo);
    let device = device_node(dir.path());
    for target in [&mine, &fifo, &device] {
        let o = html(&["-o", target.to_str().unwrap()], &trace);
        assert_eq!(o.code(), Some(2), "{}: {}", target.display(), o.stderr);
        let lines = o.leakhunt_lines();
        assert_eq!(lines.len(), 1, "{}: {}", target.display(), o.stderr);
        assert!(lines[0].contains(target.to_str().unwrap()), "{}", lines[0]);
    }
    assert_eq!(
        std::fs::read_to_string(&mine).unwrap(),
        "<!DOCTYPE html>\n<p>my notes</p>\n"
    );
    // -o FILE is for the page; text and JSON go to standard output.
    let o = run_cmd(
        leakhunt_cmd()
            .args(["report", "-o"])
            .arg(dir.join("report.txt"))
            .arg(&trace),
        TIMEOUT,
    );
    assert_eq!(o.code(), Some(2), "{}", o.stderr);
    assert!(!dir.join("report.txt").exists());
}

#[test]
fn dash_o_is_standard_output() {
    let dir = TestDir::new("dash_o");
    let Some(trace) = record(&dir) else {
        return;
    };
    let t = trace.to_str().unwrap();
    for (args, starts) in [
        (&["flamegraph", t, "-o", "-"][..], "<?xml"),
        (&["timeline", t, "-o", "-"][..], "<?xml"),
        (&["diff", t, t, "-o", "-"][..], "<?xml"),
        (&["export", t, "--format", "collapsed", "-o", "-"][..], ""),
    ] {
        let o = leakhunt(args);
        assert!(o.status.success(), "{args:?}: {}", o.stderr);
        assert!(o.stdout.starts_with(starts), "{args:?}: {}", o.stdout);
        assert!(!o.stdout.is_empty(), "{args:?}");
        assert!(o.stderr.is_empty(), "{args:?}: {}", o.stderr);
    }
    let o = leakhunt(&["export", t, "-o", "-"]);
    assert!(o.status.success(), "{}", o.stderr);
    assert!(!dir.join("-").exists());
    // run -o -: refused before the program runs.
    let o = run_cmd(
        leakhunt_cmd()
            .current_dir(dir.path())
            .args(["run", "-o", "-", "--", "/bin/true"]),
        TIMEOUT,
    );
    assert_eq!(o.code(), Some(2), "{}", o.stderr);
    assert_eq!(o.leakhunt_lines().len(), 1, "{}", o.stderr);
    assert!(!dir.join("-").exists(), "a file named - was created");
}

/// `chromium ARGS URL` with a profile of its own in `dir`, no GPU, no
/// sandbox (tests run as root), every host unresolvable (nothing leaves
/// the machine, whatever the page asks), and console messages on stderr.
fn chromium(browser: &Path, dir: &TestDir, args: &[&str], url: &str) -> Output {
    let o = run_cmd(
        Command::new(browser)
            .args([
                "--headless",
                "--disable-gpu",
                "--no-sandbox",
                "--no-first-run",
                "--hide-scrollbars",
                "--enable-logging=stderr",
                "--v=0",
                "--host-resolver-rules=MAP * ~NOTFOUND",
            ])
            .arg(format!(
                "--user-data-dir={}",
                dir.join("chromium-profile").display()
            ))
            .args(args)
            .arg(url),
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "chromium {args:?}: {}", o.stderr);
    // The page's console messages, errors or not: there must be none.
    let console: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(
        console.is_empty(),
        "console messages:\n{}",
        console.join("\n")
    );
    o
}

#[test]
fn chromium_renders_the_page() {
    let Some(browser) = which("chromium").or_else(|| which("chromium-browser")) else {
        skip("chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = TestDir::new("html_chromium");
    let Some(trace) = record(&dir) else {
        return;
    };
    let out = dir.join("report.html");
    let p = page(&dir, &trace, "report.html", &["--show", "all"]);
    assert!(p.starts_with(MARK));
    let url = format!("file://{}", out.display());

    // Scripts ran (the virtual time lets inferno's timers fire too), and
    // search and zoom worked in each flamegraph.
    let o = chromium(
        &browser,
        &dir,
        &["--virtual-time-budget=5000", "--dump-dom"],
        &format!("{url}#selftest"),
    );
    let dom = &o.stdout;
    let start = dom
        .find("<pre id=\"selftest\"")
        .expect("the selftest in the DOM");
    let selftest = &dom[start..start + dom[start..].find("</pre>").expect("closed")];
    // The program frees nothing before its next allocation: no temporary
    // allocations, a picture that says so (and has no frames to try).
    for what in ["leaked", "peak", "allocated"] {
        assert!(
            selftest.contains(&format!("{what}: search ok, zoom ok")),
            "{what}: {selftest}"
        );
    }
    assert!(
        selftest.contains("temporary: search ok, zoom ok") || selftest.contains("temporary: empty"),
        "{selftest}"
    );
    // The hostile argument stayed text in the rendered DOM.
    assert!(dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));

    // A screenshot: a PNG with something in it, kept for a person to see.
    let png = dir.join("report.png");
    chromium(
        &browser,
        &dir,
        &[
            "--window-size=1400,2400",
            &format!("--screenshot={}", png.display()),
        ],
        &url,
    );
    let bytes = std::fs::read(&png).expect("the screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        bytes.len() > 20_000,
        "a near-empty screenshot: {} bytes",
        bytes.len()
    );
    let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html_report.png");
    if std::fs::copy(&png, &kept).is_ok() {
        eprintln!("screenshot: {}", kept.display());
    }
}
