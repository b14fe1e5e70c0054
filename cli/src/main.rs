//! `leakhunt`: argument parsing and error-to-exit-code mapping only; the work
//! is in the library.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use leakhunt_cli::{flamegraph, model::Model, report, run};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "leakhunt",
    version,
    about = "Find memory leaks and heap growth in unmodified Linux programs",
    after_help = "Examples:\n  leakhunt run -- ./myprogram arg1        record and summarize\n  leakhunt report leakhunt.myprogram.1234.trace\n  leakhunt report --format json TRACE > report.json\n  leakhunt flamegraph TRACE -o leaks.svg\n\nWithout `run`: LD_PRELOAD=/path/to/libleakhunt.so ./myprogram writes\nleakhunt.<program>.<pid>.trace ($LEAKHUNT_OUTPUT overrides; %p = pid, %n = name)."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a program under the recorder, then print a summary on stderr.
    Run {
        /// Where to write the trace (default: leakhunt.<program>.<pid>.trace here).
        #[arg(short, long, value_name = "TRACE")]
        output: Option<PathBuf>,
        /// The program and its arguments (after `--`).
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<String>,
    },
    /// Explain a trace: totals, the peak, and the blocks never freed, by stack.
    Report {
        trace: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Loss records to show (0: all).
        #[arg(long, default_value_t = 25)]
        limit: usize,
        /// Frames to show per stack (0: all).
        #[arg(long, default_value_t = 24)]
        depth: usize,
    },
    /// Draw an interactive flamegraph SVG of a trace.
    Flamegraph {
        trace: PathBuf,
        #[arg(short, long, value_name = "OUT.svg")]
        output: PathBuf,
        #[arg(long, value_enum, default_value = "leaked")]
        what: flamegraph::What,
        #[arg(long)]
        title: Option<String>,
    },
    /// Print every record of a trace, one per line (for debugging leakhunt).
    #[command(hide = true)]
    Dump { trace: PathBuf },
}

fn load(trace: &Path) -> Result<Model> {
    let m = Model::load(trace)?;
    Ok(m)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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

fn real_main(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Run { output, command } => {
            let outcome = run::run(output.as_deref(), &command)?;
            let mut err = std::io::stderr().lock();
            let ending = match (outcome.code, outcome.signal) {
                (_, Some(s)) => format!("was killed by signal {s} ({})", report::signal_name(s)),
                (Some(c), _) => format!("exited with status {c}"),
                _ => "ended".into(),
            };
            let _ = writeln!(err, "leakhunt: {} {ending}", command.join(" "));
            match Model::load(&outcome.trace) {
                Ok(m) => {
                    let t = &m.totals;
                    let _ = writeln!(
                        err,
                        "leakhunt: {} allocations, {} frees, {} bytes allocated, peak {} bytes",
                        report::commas(t.allocations),
                        report::commas(t.frees),
                        report::commas(t.allocated_bytes),
                        report::commas(t.peak_bytes)
                    );
                    let _ = writeln!(
                        err,
                        "leakhunt: never freed: {} in {}",
                        report::plural(t.live_bytes_at_end, "byte", "bytes"),
                        report::plural(t.live_blocks_at_end, "block", "blocks")
                    );
                    if m.cut.is_some() || m.end.is_none() {
                        let _ = writeln!(err, "leakhunt: the trace is incomplete (the program did not finish normally)");
                    }
                    let _ = writeln!(
                        err,
                        "leakhunt: trace: {} (leakhunt report {})",
                        outcome.trace.display(),
                        outcome.trace.display()
                    );
                }
                Err(e) => {
                    let _ = writeln!(err, "leakhunt: no trace was written ({e})");
                }
            }
            Ok(ExitCode::from(outcome.exit_code().clamp(0, 255) as u8))
        }
        Cmd::Report {
            trace,
            format,
            limit,
            depth,
        } => {
            let m = load(&trace)?;
            let opts = report::Options { limit, depth };
            match format {
                Format::Text => write_stdout(&report::to_text(&m, &opts))?,
                Format::Json => {
                    let v = report::to_json(&m, &opts);
                    write_stdout(&(serde_json::to_string_pretty(&v)? + "\n"))?
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Dump { trace } => {
            let file = std::fs::File::open(&trace)
                .with_context(|| format!("cannot open {}", trace.display()))?;
            let mut r = leakhunt_format::TraceReader::new(std::io::BufReader::new(file))
                .with_context(|| trace.display().to_string())?;
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
            title,
        } => {
            let m = load(&trace)?;
            let mut buf = Vec::new();
            flamegraph::render(&m, what, title.as_deref(), &mut buf)?;
            std::fs::write(&output, buf)
                .with_context(|| format!("cannot write {}", output.display()))?;
            eprintln!("leakhunt: wrote {}", output.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
