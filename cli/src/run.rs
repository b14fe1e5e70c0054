//! `leakhunt run`: start a program under libleakhunt.so, wait for it, append
//! its exit status to the trace, and summarize.

use crate::model::{LoadError, Model};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where libleakhunt.so is: `$LEAKHUNT_PRELOAD`, beside our executable, or in
/// `../lib` (and `../lib/leakhunt`) relative to it.
pub fn find_preload() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("LEAKHUNT_PRELOAD") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("LEAKHUNT_PRELOAD={} does not exist", p.display());
    }
    let exe = std::env::current_exe().context("cannot find the leakhunt executable")?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let candidates = [
        dir.join("libleakhunt.so"),
        dir.join("../lib/libleakhunt.so"),
        dir.join("../lib/leakhunt/libleakhunt.so"),
    ];
    for c in &candidates {
        if c.is_file() {
            return Ok(c.canonicalize().unwrap_or_else(|_| c.clone()));
        }
    }
    bail!(
        "cannot find libleakhunt.so beside {} or in ../lib: build it with `cargo build --release` or set LEAKHUNT_PRELOAD",
        exe.display()
    )
}

/// The program a command name means, as `execvp` would find it.
pub fn resolve_program(cmd: &str) -> Result<PathBuf> {
    let found = if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        p.exists().then_some(p)
    } else {
        std::env::var_os("PATH")
            .map(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(cmd))
                    .find(|p| is_executable(p))
            })
            .unwrap_or(None)
    };
    let Some(p) = found else {
        bail!("cannot run {cmd}: no such program")
    };
    if p.is_dir() {
        bail!("cannot run {cmd}: it is a directory");
    }
    if !is_executable(&p) {
        bail!("cannot run {cmd}: permission denied");
    }
    Ok(p)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// LD_PRELOAD cannot enter a program without a dynamic loader.
pub fn check_dynamic(program: &Path) -> Result<()> {
    let mut head = [0u8; 4];
    let Ok(bytes) = std::fs::read(program) else {
        return Ok(());
    };
    if bytes.len() >= 4 {
        head.copy_from_slice(&bytes[..4]);
    }
    if &head != b"\x7fELF" {
        // A script: its interpreter is what runs; assume it is dynamic.
        return Ok(());
    }
    let Ok(obj) = object::File::parse(&*bytes) else {
        return Ok(());
    };
    use object::read::elf::{FileHeader, ProgramHeader};
    let interp = match &obj {
        object::File::Elf64(f) => {
            let endian = f.endian();
            f.elf_header()
                .program_headers(endian, f.data())
                .map(|phs| {
                    phs.iter()
                        .any(|ph| ph.p_type(endian) == object::elf::PT_INTERP)
                })
                .unwrap_or(true)
        }
        object::File::Elf32(_) => bail!(
            "{} is a 32-bit program; leakhunt records 64-bit programs only",
            program.display()
        ),
        _ => true,
    };
    if !interp {
        bail!(
            "{} is statically linked: LD_PRELOAD cannot enter it, so leakhunt cannot record it (link it dynamically)",
            program.display()
        );
    }
    check_set_id(program)
}

/// A set-user-ID or set-group-ID program that would change our identity
/// runs in the loader's secure mode, which ignores LD_PRELOAD: nothing
/// would be recorded, and the run would end in a puzzling "no trace".
fn check_set_id(program: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = program.metadata() else {
        return Ok(());
    };
    // SAFETY: geteuid and getegid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let (what, owner) = if m.mode() & 0o4000 != 0 && m.uid() != uid {
        ("set-user-ID", format!("user {}", m.uid()))
    } else if m.mode() & 0o2000 != 0 && m.gid() != gid {
        ("set-group-ID", format!("group {}", m.gid()))
    } else {
        return Ok(());
    };
    bail!(
        "{} is {what} ({owner}): the loader ignores LD_PRELOAD for it, so leakhunt cannot record it (run it as that {}, or record a copy without the {what} bit)",
        program.display(),
        owner.split(' ').next().unwrap_or("owner")
    )
}

/// The name the recorder gives a trace: the program's file name, sanitized.
pub fn program_name(cmd: &str) -> String {
    leakhunt_format::program_file_name(cmd)
}

pub struct Outcome {
    pub trace: PathBuf,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The trace, read once (with the exit status), or why it could not be.
    pub model: Result<Model, LoadError>,
    /// Every trace of the run (see `processes.rs`), when there is one.
    pub run: Option<crate::processes::Run>,
}

impl Outcome {
    /// What `leakhunt run` exits with: the program's status, or 128+signal as a shell does.
    pub fn exit_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            _ => 1,
        }
    }
}

/// valgrind's `--trace-children`: whether the programs the traced process
/// execs are traced too. Forked children that do not exec are the same
/// program and are always traced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceChildren {
    Yes,
    No,
}

pub fn run(output: Option<&Path>, cmd: &[String], children: TraceChildren) -> Result<Outcome> {
    let Some(program) = cmd.first() else {
        bail!("no command given: leakhunt run -- PROGRAM [ARGS...]")
    };
    let preload = find_preload()?;
    let resolved = resolve_program(program)?;
    check_dynamic(&resolved)?;
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let explicit = output.map(|o| {
        if o.is_absolute() {
            o.to_path_buf()
        } else {
            cwd.join(o)
        }
    });
    if let Some(path) = &explicit {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() && !parent.is_dir() {
                bail!(
                    "cannot write the trace to {}: directory {} does not exist",
                    path.display(),
                    parent.display()
                );
            }
        }
        // The recorder never overwrites; the user asked for this path, so
        // make room, but only where an earlier trace (or a link) stood.
        crate::files::make_room(path, crate::files::Kind::Trace)?;
    }
    // `%r`: the started process's pid, and the name every process it starts
    // writes beside (`MAIN.<pid>`), as `-o PATH` (no `%` left) does.
    let template = match &explicit {
        Some(p) => p.to_string_lossy().replace('%', "%%"),
        None => cwd
            .join(format!("leakhunt.{}.%r.trace", program_name(program)))
            .to_string_lossy()
            .into_owned(),
    };
    let mut ld_preload = preload.to_string_lossy().into_owned();
    if let Some(old) = std::env::var_os("LD_PRELOAD") {
        if !old.is_empty() {
            ld_preload = format!("{ld_preload}:{}", old.to_string_lossy());
        }
    }
    let mut command = Command::new(program);
    command
        .args(&cmd[1..])
        .env("LD_PRELOAD", ld_preload)
        .env("LEAKHUNT_OUTPUT", &template)
        .env(
            "LEAKHUNT_TRACE_CHILDREN",
            match children {
                TraceChildren::Yes => "yes",
                TraceChildren::No => "no",
            },
        );
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    // Ctrl-C goes to the whole foreground group: the program gets it and may
    // exit cleanly; we stay to write the summary.
    let _ignore = IgnoreInterrupts::new();
    let status = child.wait().context("cannot wait for the program")?;
    let first = match explicit {
        Some(p) => p,
        None => PathBuf::from(template.replace("%r", &child.id().to_string())),
    };
    use std::os::unix::process::ExitStatusExt;
    let run = crate::processes::find(&first);
    // The started process's last image is the program that did the work (a
    // shim execs it); its trace gets the exit status.
    let trace = run
        .as_ref()
        .and_then(|r| r.processes.iter().find(|p| p.pid == child.id()))
        .map_or(first, |p| p.last().path.clone());
    let mut model =
        crate::progress::while_doing("reading the trace", || Model::load_summary(&trace));
    let (code, signal) = (status.code(), status.signal());
    if let Ok(m) = &mut model {
        append_exit_status(&trace, m.framing, code, signal)
            .with_context(|| format!("cannot append the exit status to {}", trace.display()))?;
        m.exit_status = Some((code, signal));
    }
    Ok(Outcome {
        trace,
        code,
        signal,
        model,
        run,
    })
}

/// Appends the exit status as the trace's next chunk (`framing`: its id
/// and sequence number, from the replay that read it to the end).
fn append_exit_status(
    trace: &Path,
    framing: Option<leakhunt_format::ChunkFraming>,
    code: Option<i32>,
    signal: Option<i32>,
) -> Result<()> {
    // Only a file that starts as a trace gets a chunk appended: never make a
    // stranger's file, or an empty one, worse.
    let mut head = [0u8; 8];
    let mut f = std::fs::File::open(trace)?;
    use std::io::Read;
    let Some(framing) = framing else {
        return Ok(());
    };
    if f.read_exact(&mut head).is_err() || &head != leakhunt_format::MAGIC {
        return Ok(());
    }
    let mut w = leakhunt_format::ChunkWriter::continuing(framing);
    w.push(&leakhunt_format::Record::ExitStatus { code, signal });
    let mut f = std::fs::OpenOptions::new().append(true).open(trace)?;
    w.flush_to(&mut f)?;
    Ok(())
}

/// SIGINT and SIGQUIT ignored while alive (like `time` or a shell waiting).
struct IgnoreInterrupts {
    old: [libc::sighandler_t; 2],
}

impl IgnoreInterrupts {
    fn new() -> Self {
        // SAFETY: installing SIG_IGN has no preconditions.
        unsafe {
            IgnoreInterrupts {
                old: [
                    libc::signal(libc::SIGINT, libc::SIG_IGN),
                    libc::signal(libc::SIGQUIT, libc::SIG_IGN),
                ],
            }
        }
    }
}

impl Drop for IgnoreInterrupts {
    fn drop(&mut self) {
        // SAFETY: restores the dispositions returned above.
        unsafe {
            libc::signal(libc::SIGINT, self.old[0]);
            libc::signal(libc::SIGQUIT, self.old[1]);
        }
    }
}
