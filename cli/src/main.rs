//! `leakhunt`: argument parsing and error-to-exit-code mapping only; the work
//! is in the library.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use leakhunt_cli::files::{self, Kind};
use leakhunt_cli::leaks::{self, SuppressionSet};
use leakhunt_cli::{flamegraph, model::Model, processes, report, run};
use leakhunt_format::LeakKind;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "leakhunt",
    version,
    about = "Find memory leaks and heap growth in unmodified Linux programs",
    after_help = "Examples:\n  leakhunt run -- ./myprogram arg1        record, scan for leaks at exit, summarize\n  leakhunt run --fail-on definite,possible --error-exitcode 42 -- ./tests\n  leakhunt report leakhunt.myprogram.1234.trace\n  leakhunt report --show all --format json TRACE > report.json\n  leakhunt report --format html -o report.html TRACE\n  leakhunt flamegraph TRACE -o leaks.svg\n\n`-o -` writes to standard output (except for `run`: the trace is binary and\nthe program's own output is there).\n\nWithout `run`: LD_PRELOAD=/path/to/libleakhunt.so ./myprogram writes\nleakhunt.<program>.<pid>.trace ($LEAKHUNT_OUTPUT overrides; %p = pid, %n = name)."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Show the frames below `main` in stacks (the C runtime's start-up,
    /// Rust's `lang_start` layers): hidden by default, as memcheck does.
    #[arg(long, global = true)]
    show_below_main: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
    /// One self-contained page (summary, loss records, the curve, growing
    /// sites, flamegraphs) to attach to a bug report.
    Html,
}

#[derive(Clone, Copy, ValueEnum)]
enum YesNo {
    Yes,
    No,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// "outer;...;inner WEIGHT" lines.
    Collapsed,
    /// A gzipped profile.proto with allocated, leaked and in-use samples.
    Pprof,
}

/// Suppressions, as memcheck and LeakSanitizer users write them.
#[derive(Args, Clone)]
struct SuppressArgs {
    /// A valgrind suppression file (Memcheck:Leak entries) or a LeakSanitizer
    /// file (`leak:PATTERN` lines); may be repeated.
    #[arg(long = "suppressions", value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Do not hide well-known runtime noise (the built-in list and valgrind's
    /// default suppressions).
    #[arg(long)]
    no_builtin_suppressions: bool,
}

impl SuppressArgs {
    fn load(&self) -> Result<SuppressionSet> {
        SuppressionSet::load(&self.files, !self.no_builtin_suppressions)
    }
}

/// A list of leak kinds on the command line.
#[derive(Clone)]
struct Kinds(Vec<LeakKind>);

fn kinds(s: &str) -> Result<Kinds, String> {
    leaks::parse_kinds(s).map(Kinds)
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a program under the recorder, then print a summary on stderr.
    #[command(
        after_help = "Python programs keep their own allocator (pymalloc): the recorder wraps \
CPython's allocator domains, so every object allocation is recorded at the size asked for, and \
their stacks show the Python function, file and line of each frame (CPython 3.11 to 3.14). A \
PYTHONMALLOC you set is respected: with malloc every object is recorded too; with pymalloc or \
debug the objects inside pymalloc's arenas are not seen."
    )]
    Run {
        /// Where to write the trace (default: leakhunt.<program>.<pid>.trace
        /// here). Not `-`: the trace is binary, and the program's own standard
        /// output is there.
        #[arg(short, long, value_name = "TRACE")]
        output: Option<PathBuf>,
        /// Exit with --error-exitcode when leaks of these kinds are found
        /// (definite, indirect, possible, reachable, all).
        #[arg(long, value_name = "KINDS", value_parser = kinds)]
        fail_on: Option<Kinds>,
        /// The exit status for --fail-on.
        #[arg(long, value_name = "N", default_value_t = 1)]
        error_exitcode: u8,
        /// Trace the programs it execs too, as valgrind's option of this name:
        /// a shell's commands, a shim's real program (pyenv's python3 is a
        /// script that execs the interpreter). Forked children that do not
        /// exec are the same program and are traced either way.
        #[arg(long, value_enum, value_name = "yes|no", default_value = "yes")]
        trace_children: YesNo,
        #[command(flatten)]
        suppress: SuppressArgs,
        /// The program and its arguments (after `--`).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<String>,
    },
    /// Explain a trace: totals, the peak, and the leaks, as loss records by stack.
    Report {
        /// The trace file (`leakhunt.<program>.<pid>.trace`, or what `run -o` named).
        trace: PathBuf,
        /// text: loss records like memcheck's; json: the object SPEC.md
        /// describes; html: one self-contained page with the curve and the
        /// flamegraphs.
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
        /// With --format html: where to write the page (default, and `-`:
        /// standard output). Text and JSON go to standard output.
        #[arg(short, long, value_name = "OUT.html")]
        output: Option<PathBuf>,
        /// Leak kinds whose loss records are shown (definite, indirect,
        /// possible, reachable, all).
        #[arg(long, value_name = "KINDS", value_parser = kinds, default_value = "definite,possible")]
        show: Kinds,
        /// Loss records and growing sites to show (0: all). By default JSON
        /// has all; text and HTML fold the tail: at least 10 records, then
        /// until 99% of the bytes, at most 25; 5 sites, those over 2%.
        #[arg(long)]
        limit: Option<usize>,
        /// Frames to show per stack (0: all).
        #[arg(long, default_value_t = 24)]
        depth: usize,
        /// Print a valgrind suppression for each loss record shown.
        #[arg(long)]
        gen_suppressions: bool,
        /// Compare the live heap between two moments instead (milliseconds
        /// into the run; --to defaults to the end).
        #[arg(long, value_name = "MS")]
        from: Option<f64>,
        /// With --from: the later moment (milliseconds into the run).
        #[arg(long, value_name = "MS", requires = "from")]
        to: Option<f64>,
        #[command(flatten)]
        suppress: SuppressArgs,
    },
    /// Draw an interactive flamegraph SVG of a trace.
    Flamegraph {
        /// The trace file (`leakhunt.<program>.<pid>.trace`, or what `run -o` named).
        trace: PathBuf,

        /// Where to write the SVG (`-`: standard output).
        #[arg(short, long, value_name = "OUT.svg")]
        output: PathBuf,
        /// What the widths count.
        #[arg(long, value_enum, default_value = "leaked")]
        what: flamegraph::What,
        /// With --what leaked and an exit scan: which leak kinds count.
        #[arg(long, value_name = "KINDS", value_parser = kinds, default_value = "definite,indirect,possible")]
        kinds: Kinds,
        /// The title drawn above the graph (default: what it shows, and the program).
        #[arg(long)]
        title: Option<String>,
        /// Rooted at the allocation site: each allocating function at the
        /// top, its callers below it (an icicle graph of reversed stacks).
        #[arg(long)]
        inverted: bool,
        /// Leave out stacks holding less than this share of the total (percent).
        #[arg(long, value_name = "PERCENT", default_value_t = 0.0)]
        min_share: f64,
        /// With --what temporary: an allocation is temporary when its thread
        /// frees it within this many of its own allocations (memray's
        /// threshold; 1 is heaptrack's "before the next one").
        #[arg(long, value_name = "N", default_value_t = 1)]
        temporary_threshold: u64,
    },
    /// Export a trace for other tools: collapsed stacks (flamegraph.pl,
    /// speedscope) or a gzipped pprof profile (go tool pprof, Pyroscope, Parca, Grafana).
    Export {
        /// The trace file (`leakhunt.<program>.<pid>.trace`, or what `run -o` named).
        trace: PathBuf,
        /// What to write: a pprof profile, or collapsed stacks.
        #[arg(long, value_enum, default_value = "pprof")]
        format: ExportFormat,
        /// Where to write it (`-`: standard output).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// For collapsed stacks: what the weights count.
        #[arg(long, value_enum, default_value = "leaked")]
        what: flamegraph::What,
        /// For collapsed stacks with --what leaked: which leak kinds count.
        #[arg(long, value_name = "KINDS", value_parser = kinds, default_value = "definite,indirect,possible")]
        kinds: Kinds,
    },
    /// Compare the live heap at the end of two traces: which call sites gained
    /// or lost bytes and blocks, largest change first.
    Diff {
        /// The trace of the earlier run (the baseline).
        before: PathBuf,
        /// The trace of the later run.
        after: PathBuf,
        /// text: the changed call sites, one per line; json: the same as objects.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Also draw a differential flamegraph (`-`: to standard output,
        /// instead of the text or JSON).
        #[arg(short, long, value_name = "OUT.svg")]
        output: Option<PathBuf>,
        /// Call sites to show (0: all).
        #[arg(long, default_value_t = 25)]
        limit: usize,
    },
    /// Draw the memory curve (live heap, RSS, the peak) with its verdict as an SVG.
    Timeline {
        /// The trace file (`leakhunt.<program>.<pid>.trace`, or what `run -o` named).
        trace: PathBuf,

        /// Where to write the SVG (`-`: standard output).
        #[arg(short, long, value_name = "OUT.svg")]
        output: PathBuf,
    },
    /// Print every record of a trace, one per line (for debugging leakhunt).
    #[command(hide = true)]
    Dump { trace: PathBuf },
}

/// The JSON report with the run's other processes beside it.
#[derive(serde::Serialize)]
struct WithRun<R: serde::Serialize> {
    #[serde(flatten)]
    report: R,
    #[serde(skip_serializing_if = "Option::is_none")]
    run: Option<serde_json::Value>,
}

fn load(trace: &Path) -> Result<Model> {
    let what = format!("reading {}", trace.display());
    let m = leakhunt_cli::progress::while_doing(&what, || Model::load(trace))?;
    Ok(m)
}

/// A cut-short or damaged trace is a normal thing to report on or draw
/// (SPEC.md): what came before is used, this one line says so, and the
/// command succeeds. JSON readers see `trace.complete`.
fn warn_if_cut(trace: &Path, m: &Model) {
    if let Some(cut) = &m.cut {
        let _ = writeln!(
            std::io::stderr(),
            "leakhunt: warning: {}: {}",
            trace.display(),
            report::cut_text(cut)
        );
    }
}

/// Writes a view's `-o` file (see `files::write_output`: never over
/// anything but an earlier one of ours; `-` is standard output) and says so.
fn write_view(output: &Path, kind: Kind, bytes: &[u8]) -> Result<()> {
    files::write_output(output, kind, bytes)?;
    if !files::is_stdout(output) {
        eprintln!("leakhunt: wrote {}", output.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    leakhunt_cli::stacks::set_show_below_main(cli.show_below_main);
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            let _ = writeln!(std::io::stderr(), "leakhunt: {msg}");
            ExitCode::from(2)
        }
    }
}

fn write_stdout(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to standard output"),
    }
}

/// Pretty JSON straight to standard output: a report of tens of thousands
/// of loss records is hundreds of megabytes, not worth holding twice.
fn write_json(v: &impl serde::Serialize) -> Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let r = serde_json::to_writer_pretty(&mut out, v)
        .map_err(std::io::Error::from)
        .and_then(|_| out.write_all(b"\n"))
        .and_then(|_| out.flush());
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to standard output"),
    }
}

fn print_diff(
    a: &Model,
    b: &Model,
    what: &str,
    format: Format,
    svg: Option<&Path>,
    limit: usize,
) -> Result<ExitCode> {
    let changes = leakhunt_cli::diff::compare(a, b);
    // `-o -`: the SVG takes standard output; two documents in one stream
    // would make neither readable.
    match format {
        _ if svg.is_some_and(files::is_stdout) => {}
        Format::Text => write_stdout(&leakhunt_cli::diff::to_text(&changes, what, limit))?,
        Format::Json => write_stdout(
            &(serde_json::to_string_pretty(&leakhunt_cli::diff::to_json(&changes, what))? + "\n"),
        )?,
    }
    if let Some(out) = svg {
        let mut buf = Vec::new();
        // The picture shows the sites live in both heaps too, changed or not.
        leakhunt_cli::diff::svg(&leakhunt_cli::diff::sites(a, b), what, &mut buf)?;
        write_view(out, Kind::Svg, &buf)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn real_main(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Run {
            output,
            fail_on,
            error_exitcode,
            trace_children,
            suppress,
            command,
        } => {
            if output.as_deref().is_some_and(files::is_stdout) {
                anyhow::bail!(
                    "run -o -: the trace is binary and the program's own standard output is there; \
                     give a file name (then `leakhunt report --format ... TRACE` to standard output)"
                );
            }
            // Bad suppression files are reported before the program runs.
            let supp = suppress.load()?;
            let children = match trace_children {
                YesNo::Yes => run::TraceChildren::Yes,
                YesNo::No => run::TraceChildren::No,
            };
            let outcome = run::run(output.as_deref(), &command, children)?;
            let mut err = std::io::stderr().lock();
            let ending = match (outcome.code, outcome.signal) {
                (_, Some(s)) => format!("was killed by signal {s} ({})", report::signal_name(s)),
                (Some(c), _) => format!("exited with status {c}"),
                _ => "ended".into(),
            };
            let _ = writeln!(err, "leakhunt: {} {ending}", command.join(" "));
            let mut code = outcome.exit_code().clamp(0, 255) as u8;
            match &outcome.model {
                Ok(m) => {
                    let mut stacks = leakhunt_cli::stacks::Stacks::new(m);
                    let a = leaks::analyze(m, &mut stacks, &supp);
                    let main_pid = m.process.as_ref().map_or(0, |p| p.pid);
                    // The other processes of the run, one line each, before
                    // the main one in full.
                    let mut summaries = Vec::new();
                    if let Some(r) = outcome.run.as_ref().filter(|r| r.traces() > 1) {
                        let main = r.processes.iter().find(|p| p.pid == main_pid);
                        let known = main.map(|p| {
                            processes::summary_of(p, m, leaks::analyze(m, &mut stacks, &supp))
                        });
                        summaries = processes::summarize(&r.processes, &supp, known);
                        for line in processes::lines(r, &summaries, Some(main_pid)) {
                            let _ = writeln!(err, "leakhunt: {line}");
                        }
                        if let Some(p) = main {
                            let _ = writeln!(
                                err,
                                "leakhunt: the main process, {} (pid {main_pid}):",
                                p.last().argv.join(" ")
                            );
                        }
                    }
                    if matches!(
                        m.end.map(|e| e.reason),
                        Some(leakhunt_format::EndReason::Exec)
                    ) {
                        let _ = writeln!(
                            err,
                            "leakhunt: {} exec'd a program that was not traced (--trace-children=no, or it dropped LD_PRELOAD): this is what ran before it",
                            m.process.as_ref().map(|p| p.argv.join(" ")).unwrap_or_default()
                        );
                    }
                    let t = &m.totals;
                    let _ = writeln!(
                        err,
                        "leakhunt: {} allocations, {} frees, {} bytes allocated, peak {} bytes",
                        report::commas(t.allocations),
                        report::commas(t.frees),
                        report::commas(t.allocated_bytes),
                        report::commas(t.peak_bytes)
                    );
                    for line in report::leak_summary(m, &a).lines() {
                        let _ = writeln!(err, "leakhunt: {line}");
                    }
                    if m.cut.is_some() || m.end.is_none() {
                        let _ = writeln!(
                            err,
                            "leakhunt: the trace is incomplete (the program did not finish normally)"
                        );
                    }
                    if let Some(e) = m.end.filter(|e| e.dropped > 0) {
                        let _ = writeln!(
                            err,
                            "leakhunt: warning: {} events could not be recorded (calls made from signal handlers while the queue was full); the counts above may be off by as many",
                            report::commas(e.dropped)
                        );
                    }
                    let _ = writeln!(
                        err,
                        "leakhunt: trace: {} (leakhunt report {})",
                        outcome.trace.display(),
                        outcome.trace.display()
                    );
                    if let Some(kinds) = &fail_on {
                        let found: Vec<&str> = kinds
                            .0
                            .iter()
                            .filter(|k| a.scanned && a.amount(**k).blocks > 0)
                            .map(|k| k.describe())
                            .collect();
                        if !found.is_empty() {
                            let _ = writeln!(
                                err,
                                "leakhunt: failing with status {error_exitcode}: {} leaks found",
                                found.join(", ")
                            );
                            code = error_exitcode;
                        }
                        // The main process decides (a shim's helpers leak
                        // too: bash's forks lose a block each); the others
                        // are named, so that none goes unseen.
                        let others = processes::with_leaks(&summaries, &kinds.0, main_pid);
                        if !others.is_empty() {
                            let pids: Vec<String> =
                                others.iter().map(|(p, _)| p.to_string()).collect();
                            let _ = writeln!(
                                err,
                                "leakhunt: note: {} of the run had such leaks too (pid {}); --fail-on judges the main process",
                                report::plural(others.len() as u64, "other process", "other processes"),
                                pids.join(", ")
                            );
                        }
                    }
                }
                Err(e) => {
                    let _ = writeln!(err, "leakhunt: no trace was written ({e})");
                }
            }
            Ok(ExitCode::from(code))
        }
        Cmd::Report {
            trace,
            format,
            output,
            show,
            limit,
            depth,
            gen_suppressions,
            suppress,
            from,
            to,
        } => {
            let to_file = output.as_deref().filter(|o| !files::is_stdout(o));
            if let Some(o) = to_file {
                if format != ReportFormat::Html {
                    anyhow::bail!(
                        "report -o {} is for --format html; text and JSON go to standard output \
                         (redirect it: > FILE)",
                        o.display()
                    );
                }
                files::check_output(o, Kind::Html)?;
            }
            if let Some(from) = from {
                let format = match format {
                    ReportFormat::Text => Format::Text,
                    ReportFormat::Json => Format::Json,
                    ReportFormat::Html => anyhow::bail!(
                        "--from/--to compare two moments, which the HTML page does not show; \
                         use --format text or json (leakhunt diff draws it as an SVG)"
                    ),
                };
                let before = Model::load_at_time(&trace, from)?;
                let after = match to {
                    Some(t) => Model::load_at_time(&trace, t)?,
                    None => load(&trace)?,
                };
                let what = format!(
                    "{} ms to {}",
                    from,
                    to.map_or("the end".to_string(), |t| format!("{t} ms"))
                );
                let code = print_diff(&before, &after, &what, format, None, limit.unwrap_or(25))?;
                // The later moment read further: its cut, if either has one.
                warn_if_cut(&trace, if after.cut.is_some() { &after } else { &before });
                return Ok(code);
            }
            let supp = suppress.load()?;
            let mut m = load(&trace)?;
            // The other traces of its run, when it has some: one line each.
            let family = processes::run_of(&trace).map(|r| {
                let s = processes::summarize(&r.processes, &supp, None);
                (r, s)
            });
            let opts = report::Options {
                depth,
                show: show.0,
                gen_suppressions,
                limit,
            };
            match format {
                ReportFormat::Text => {
                    let mut text = report::to_text(&m, &opts, &supp);
                    if let Some((r, s)) = &family {
                        text += &processes::report_section(r, s, &trace);
                    }
                    if leakhunt_cli::color::wanted() {
                        text = leakhunt_cli::color::paint(&text);
                    }
                    write_stdout(&text)?
                }
                ReportFormat::Json => {
                    let report = report::to_json(&m, &opts, &supp);
                    let run = family.as_ref().map(|(r, s)| processes::to_json(r, s));
                    write_json(&WithRun { report, run })?
                }
                ReportFormat::Html => {
                    // The peak flamegraph needs the heap as it stood then: a
                    // second pass that stops at the peak.
                    let peak = Model::load_until(&trace, m.peak_record)?;
                    let page = leakhunt_cli::html::page(
                        &mut m,
                        &peak,
                        &opts,
                        &supp,
                        &trace.display().to_string(),
                    )?;
                    match to_file {
                        Some(o) => write_view(o, Kind::Html, page.as_bytes())?,
                        None => write_stdout(&page)?,
                    }
                }
            }
            warn_if_cut(&trace, &m);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Export {
            trace,
            format,
            output,
            what,
            kinds,
        } => {
            let kind = match format {
                ExportFormat::Collapsed => Kind::Collapsed,
                ExportFormat::Pprof => Kind::Pprof,
            };
            files::check_output(&output, kind)?;
            if kind == Kind::Pprof
                && files::is_stdout(&output)
                && std::io::IsTerminal::is_terminal(&std::io::stdout())
            {
                anyhow::bail!(
                    "export -o -: a pprof profile is gzipped binary; redirect standard output to a file or a pipe"
                );
            }
            let m = load(&trace)?;
            let bytes = match format {
                ExportFormat::Collapsed if what == flamegraph::What::Peak => {
                    let peak = Model::load_until(&trace, m.peak_record)?;
                    leakhunt_cli::export::collapsed(&peak, what, &kinds.0).into_bytes()
                }
                ExportFormat::Collapsed => {
                    leakhunt_cli::export::collapsed(&m, what, &kinds.0).into_bytes()
                }
                ExportFormat::Pprof => {
                    let peak = Model::load_until(&trace, m.peak_record)?;
                    leakhunt_cli::export::pprof(&m, Some(&peak))?
                }
            };
            write_view(&output, kind, &bytes)?;
            warn_if_cut(&trace, &m);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Diff {
            before,
            after,
            format,
            output,
            limit,
        } => {
            if let Some(out) = &output {
                files::check_output(out, Kind::Svg)?;
            }
            let a = load(&before)?;
            let b = load(&after)?;
            let what = format!("{} -> {}", before.display(), after.display());
            let code = print_diff(&a, &b, &what, format, output.as_deref(), limit)?;
            warn_if_cut(&before, &a);
            warn_if_cut(&after, &b);
            Ok(code)
        }
        Cmd::Timeline { trace, output } => {
            files::check_output(&output, Kind::Svg)?;
            let m = load(&trace)?;
            let program = m
                .process
                .as_ref()
                .map(|p| p.argv.join(" "))
                .unwrap_or_default();
            let svg = leakhunt_cli::timeline::svg(
                &m.timeline,
                m.duration_us,
                (m.totals.peak_time_us, m.totals.peak_bytes),
                &program,
            );
            write_view(&output, Kind::Svg, svg.as_bytes())?;
            warn_if_cut(&trace, &m);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Dump { trace } => {
            let (_, mut r) = leakhunt_cli::model::open_reader(&trace)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            while let Some(rec) = r.next_record()? {
                if writeln!(out, "{rec:?}").is_err() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            if let Some(cut) = r.cut() {
                let _ = writeln!(out, "# stopped: {cut:?}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Flamegraph {
            trace,
            output,
            what,
            kinds,
            title,
            inverted,
            min_share,
            temporary_threshold,
        } => {
            files::check_output(&output, Kind::Svg)?;
            let mut m = if what == flamegraph::What::Temporary {
                Model::load_with_threshold(&trace, temporary_threshold.max(1))?
            } else {
                load(&trace)?
            };
            let cut = m.cut.clone();
            if what == flamegraph::What::Peak {
                // The live heap as it stood at the peak: a second pass that
                // stops there (its own peak is the same one).
                m = Model::load_until(&trace, m.peak_record)?;
            }
            let style = flamegraph::Style {
                title,
                inverted,
                min_share,
            };
            let mut buf = Vec::new();
            flamegraph::render(&m, what, &kinds.0, &style, &mut buf)?;
            write_view(&output, Kind::Svg, &buf)?;
            m.cut = cut;
            warn_if_cut(&trace, &m);
            Ok(ExitCode::SUCCESS)
        }
    }
}
