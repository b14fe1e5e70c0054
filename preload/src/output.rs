//! Where the trace goes: `$LEAKHUNT_OUTPUT` (with `%p` = pid, `%n` = program
//! name) or `leakhunt.<program>.<pid>.trace`, created with O_EXCL, never through
//! a symlink, mode 0600. A file that exists already is never reused: a forked
//! child or an exec'd image gets `.<pid>` (and a counter) appended instead.

use std::ffi::CString;

fn program_name() -> String {
    let cmdline = std::fs::read("/proc/self/cmdline").unwrap_or_default();
    let argv0 = cmdline.split(|&c| c == 0).next().unwrap_or_default();
    leakhunt_format::program_file_name(&String::from_utf8_lossy(argv0))
}

fn expand(template: &str, pid: u32) -> String {
    let mut out = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('p') => out.push_str(&pid.to_string()),
            Some('n') => out.push_str(&program_name()),
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Creates the trace file for this process: (path, fd) or a one-line reason.
pub fn create(pid: u32) -> Result<(String, i32), String> {
    let template = std::env::var("LEAKHUNT_OUTPUT")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "leakhunt.%n.%p.trace".to_string());
    let first = expand(&template, pid);
    let mut candidates = vec![first.clone()];
    let base = if template.contains("%p") {
        first.clone()
    } else {
        format!("{first}.{pid}")
    };
    if base != first {
        candidates.push(base.clone());
    }
    candidates.extend((1..100).map(|n| format!("{base}.{n}")));
    let mut last_err = String::new();
    for path in candidates {
        let Ok(c) = CString::new(path.clone()) else {
            return Err(format!("bad trace path {path:?}"));
        };
        // SAFETY: c is a valid NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600,
            )
        };
        if fd >= 0 {
            return Ok((path, fd));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(format!("cannot create trace file {path}: {e}"));
        }
        last_err = format!("cannot create trace file {path}: it exists");
    }
    Err(last_err)
}
