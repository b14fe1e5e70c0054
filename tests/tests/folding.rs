//! Long reports stay useful: the text and the HTML page fold the tail of
//! loss records worth a fraction of a percent into one line, `--limit`
//! shows what is asked, and the JSON keeps every record.

use leakhunt_tests::*;

#[test]
fn a_tail_of_small_records_is_one_line() {
    let dir = TestDir::new("folding");
    // -O0: every LEAK on its own line keeps its own return address.
    let Some(prog) = compile(dir.path(), "many_records.c", &["-O0"]) else {
        return;
    };
    let run = leakhunt_run(dir.path(), &prog, &[]);
    assert_eq!(run.out.code(), Some(0), "{}", run.out.stderr);
    let v = report_json(&run.trace);
    assert_eq!(num(&v, "records_total"), 22, "JSON keeps them all");
    assert_eq!(records(&v).len(), 22);

    let report = |args: &[&str]| {
        let o = run_cmd(
            leakhunt_cmd().arg("report").args(args).arg(&run.trace),
            TIMEOUT,
        );
        assert!(o.status.success(), "{args:?}: {}", o.stderr);
        o.stdout
    };
    let headlines = |text: &str| {
        text.lines()
            .filter(|l| l.contains(" in loss record "))
            .count()
    };
    // The two big ones and eight more make 99.7% of the bytes: ten shown.
    let text = report(&[]);
    assert_eq!(headlines(&text), 10, "{text}");
    assert!(
        text.contains(
            "\n\u{2026} and 12 smaller loss records, 288 bytes in 12 blocks (--limit 0 shows all)\n"
        ),
        "{text}"
    );
    assert!(text.contains("in loss record 10 of 22"), "{text}");
    // Asked for: shown, no fold by share.
    assert_eq!(headlines(&report(&["--limit", "0"])), 22);
    let three = report(&["--limit", "3"]);
    assert_eq!(headlines(&three), 3);
    assert!(three.contains("and 19 smaller loss records, 456 bytes in 19 blocks"));
    // The page folds the same way.
    let page = report(&["--format", "html"]);
    assert_eq!(page.matches("<details class=\"record\"").count(), 10);
    assert!(page.contains("and 12 smaller loss records, 288 bytes in 12 blocks"));
}
