//! Where the trace goes: `$LEAKHUNT_OUTPUT` (with `%p` = pid, `%n` = program
//! name) or `leakhunt.<program>.<pid>.trace`, created with O_EXCL, never through
//! a symlink, mode 0600. A file that exists already is never reused: a forked
//! child or an exec'd image gets `.<pid>` (and a counter) appended instead.
//!
//! `%r` is the pid too, for the first process that reads it: that process
//! then fixes the template for everything it starts (`environ::pin_output`),
//! so the traces of one run are its main trace `MAIN` and `MAIN.<pid>[.n]`
//! beside it. `leakhunt run` passes `leakhunt.<program>.%r.trace`.

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
            Some('p' | 'r') => out.push_str(&pid.to_string()),
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
    let base = if has(&template, 'p') || has(&template, 'r') {
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
            if has(&template, 'r') {
                crate::environ::pin_output(&template, &path);
            }
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

/// Does the template use `%c` (not an escaped `%%c`)?
fn has(template: &str, code: char) -> bool {
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c == '%' && chars.next() == Some(code) {
            return true;
        }
    }
    false
}

/// The template the first process of a run leaves to the processes it
/// starts, having created `path` from `template`: `path` itself (escaped),
/// so they write `path.<pid>` beside it, or, where the user asked for `%p`,
/// the template with only `%p` left (each of them is named by its pid, with
/// this process's name and pid in place of `%n` and `%r`).
pub fn pinned_template(template: &str, path: &str) -> String {
    if !has(template, 'p') {
        return path.replace('%', "%%");
    }
    let mut out = String::new();
    let mut chars = template.chars();
    // SAFETY: getpid cannot fail.
    let pid = unsafe { libc::getpid() } as u32;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('p') => out.push_str("%p"),
            Some('%') => out.push_str("%%"),
            Some(o) => out.push_str(&expand(&format!("%{o}"), pid).replace('%', "%%")),
            None => out.push_str("%%"),
        }
    }
    out
}
