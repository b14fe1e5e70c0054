//! The files a user names: a trace to read, and what `-o PATH` may write.
//!
//! A trace is read only from a regular file: a FIFO without a writer would
//! block the reader forever, a device would never end. The type is checked
//! before opening, and again on the open file (opened non-blocking, so a
//! FIFO swapped in between cannot block either).
//!
//! `-o PATH` never deletes or overwrites anything but leakhunt's own earlier
//! output of the same kind (SPEC.md): a device, a FIFO, a socket or a
//! directory is refused, and so is a regular file that does not look like
//! what leakhunt writes there. Each kind says how its files are recognized
//! ([`Kind::is_ours`]). An empty file holds nothing to lose (`mktemp`
//! makes them) and may be replaced. A symbolic link is replaced by a file
//! of our own, its target never touched. Nothing is ever written through a
//! link: outputs are created with `O_EXCL`.
//!
//! `-o -` is standard output, as for most Unix tools: nothing is checked or
//! replaced, the bytes are written there (a closed pipe is not an error).

use anyhow::{bail, Context, Result};
use std::fs::{File, FileType, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The comment every SVG leakhunt writes carries after its XML declaration:
/// how `-o` recognizes an SVG of ours that it may overwrite.
pub const SVG_MARK: &str = "<!-- written by leakhunt -->";

/// The comment in the gzip header of every pprof profile leakhunt writes.
pub const PPROF_MARK: &str = "written by leakhunt";

/// What a file is, for a message: "a FIFO", "a directory", ...
pub fn file_kind(t: FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// Why a path cannot be read as a trace.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a regular file: "a FIFO", "a directory", ...
    #[error("it is {0}, not a trace")]
    NotAFile(&'static str),
}

/// Opens a regular file for reading, never blocking on a FIFO or a device.
pub fn open_regular(path: &Path) -> Result<File, OpenError> {
    let t = std::fs::metadata(path)?.file_type();
    if !t.is_file() {
        return Err(OpenError::NotAFile(file_kind(t)));
    }
    // O_NONBLOCK: if a FIFO took the file's place since the check, the open
    // returns at once and the check below refuses it (no effect on a regular
    // file's reads).
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let t = f.metadata()?.file_type();
    if !t.is_file() {
        return Err(OpenError::NotAFile(file_kind(t)));
    }
    Ok(f)
}

/// What an `-o` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A trace (`leakhunt run -o`): the recorder creates it.
    Trace,
    /// A flamegraph, a timeline, a differential flamegraph.
    Svg,
    /// A gzipped pprof profile.
    Pprof,
    /// Collapsed stacks, `frames weight` lines.
    Collapsed,
    /// The HTML report.
    Html,
}

/// Whether `-o path` means standard output.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Trace => "a leakhunt trace",
            Kind::Svg => "an SVG written by leakhunt",
            Kind::Pprof => "a pprof profile written by leakhunt",
            Kind::Collapsed => "a file of collapsed stacks",
            Kind::Html => "an HTML report written by leakhunt",
        }
    }

    /// Whether `head` (the first bytes of a non-empty file) is what this
    /// kind of output of leakhunt starts with: a trace's magic, the SVG
    /// mark, the gzip comment of a profile; collapsed stacks have no room
    /// for a mark, so a file whose every line is `frames weight` is one.
    fn is_ours(self, head: &[u8]) -> bool {
        match self {
            Kind::Trace => head.starts_with(leakhunt_format::MAGIC),
            Kind::Svg => {
                let text = String::from_utf8_lossy(head);
                text.starts_with("<?xml") && text.contains(SVG_MARK)
            }
            // The mark is the page's second line (`html::page` writes it).
            Kind::Html => String::from_utf8_lossy(&head[..head.len().min(256)])
                .strip_prefix("<!DOCTYPE html>\n")
                .is_some_and(|rest| rest.starts_with(SVG_MARK)),
            Kind::Pprof => flate2::read::GzDecoder::new(head)
                .header()
                .and_then(|h| h.comment())
                .is_some_and(|c| c == PPROF_MARK.as_bytes()),
            Kind::Collapsed => {
                let Ok(text) = std::str::from_utf8(head) else {
                    return false;
                };
                // The last line may be cut by the size of `head`.
                let complete = text.rfind('\n').map_or("", |i| &text[..i]);
                !complete.is_empty()
                    && complete.lines().all(|l| {
                        l.rsplit_once(' ').is_some_and(|(stack, w)| {
                            !stack.is_empty()
                                && !w.is_empty()
                                && w.bytes().all(|b| b.is_ascii_digit())
                        })
                    })
            }
        }
    }
}

/// How much of a file `is_ours` reads.
const HEAD: u64 = 64 << 10;

/// Checks that `-o path` may be written as `kind` without losing anything
/// that is not leakhunt's, and says whether something is there to replace.
/// Never follows a symbolic link to decide. Standard output (`-`) holds
/// nothing to replace.
pub fn check_output(path: &Path, kind: Kind) -> Result<bool> {
    if is_stdout(path) {
        return Ok(false);
    }
    let meta = match path.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => bail!("cannot write {}: {e}", path.display()),
    };
    let t = meta.file_type();
    if t.is_symlink() {
        return Ok(true);
    }
    if !t.is_file() {
        bail!(
            "cannot write {}: it is {}, not a regular file; choose another -o",
            path.display(),
            file_kind(t)
        );
    }
    if meta.len() == 0 {
        return Ok(true);
    }
    let mut head = Vec::new();
    // O_NOFOLLOW and O_NONBLOCK: what is opened is what was checked.
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .and_then(|f| f.take(HEAD).read_to_end(&mut head))
        .with_context(|| format!("cannot read {} to check what it is", path.display()))?;
    if !kind.is_ours(&head) {
        bail!(
            "refusing to overwrite {}: it is not {}; remove it or choose another -o",
            path.display(),
            kind.noun()
        );
    }
    Ok(true)
}

/// Makes room for `-o path`: checks it (see [`check_output`]) and removes
/// what may be replaced, so that it can be created afresh with `O_EXCL`.
pub fn make_room(path: &Path, kind: Kind) -> Result<()> {
    if check_output(path, kind)? {
        std::fs::remove_file(path).with_context(|| format!("cannot replace {}", path.display()))?;
    }
    Ok(())
}

/// Writes `bytes` as the `-o` output `path` of `kind`: created anew (never
/// through a link), over nothing but an earlier output of ours. An SVG gets
/// [`SVG_MARK`]. `-` writes to standard output.
pub fn write_output(path: &Path, kind: Kind, bytes: &[u8]) -> Result<()> {
    let marked;
    let bytes = match kind {
        Kind::Svg => {
            marked = mark_svg(bytes);
            &marked[..]
        }
        _ => bytes,
    };
    if is_stdout(path) {
        let mut out = std::io::stdout().lock();
        return match out.write_all(bytes).and_then(|_| out.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r.context("cannot write to standard output"),
        };
    }
    make_room(path, kind)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.flush())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The SVG with [`SVG_MARK`] after its XML declaration.
fn mark_svg(svg: &[u8]) -> Vec<u8> {
    let at = svg
        .windows(2)
        .take(256)
        .position(|w| w == b"?>")
        .filter(|_| svg.starts_with(b"<?xml"))
        .map_or(0, |i| i + 2);
    let mut out = Vec::with_capacity(svg.len() + SVG_MARK.len() + 1);
    out.extend_from_slice(&svg[..at]);
    if at > 0 {
        out.push(b'\n');
    }
    out.extend_from_slice(SVG_MARK.as_bytes());
    if at == 0 {
        out.push(b'\n');
    }
    out.extend_from_slice(&svg[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_marks_are_recognized() {
        let svg = b"<?xml version=\"1.0\" standalone=\"no\"?>\n<svg/>\n";
        let marked = mark_svg(svg);
        assert!(
            Kind::Svg.is_ours(&marked),
            "{}",
            String::from_utf8_lossy(&marked)
        );
        assert!(!Kind::Svg.is_ours(svg));
        assert!(String::from_utf8_lossy(&marked)
            .starts_with("<?xml version=\"1.0\" standalone=\"no\"?>\n<!--"));
    }

    #[test]
    fn html_reports_are_recognized() {
        let page = format!("<!DOCTYPE html>\n{SVG_MARK}\n<html></html>\n");
        assert!(Kind::Html.is_ours(page.as_bytes()));
        assert!(!Kind::Html.is_ours(b"<!DOCTYPE html>\n<html>mine</html>\n"));
        assert!(!Kind::Html.is_ours(SVG_MARK.as_bytes()));
        assert!(check_output(Path::new("-"), Kind::Html).is_ok_and(|replace| !replace));
    }

    #[test]
    fn collapsed_stacks_are_recognized() {
        assert!(Kind::Collapsed.is_ours(b"main;f 12\nmain;g (a b) 3\n"));
        assert!(!Kind::Collapsed.is_ours(b"precious\n"));
        assert!(!Kind::Collapsed.is_ours(b"dear diary 2024\nnot a stack\n"));
        assert!(!Kind::Collapsed.is_ours(b"no newline 5"));
    }

    #[test]
    fn gzip_comments_are_read() {
        use std::io::Write;
        let mut gz = flate2::GzBuilder::new()
            .comment(PPROF_MARK)
            .write(Vec::new(), flate2::Compression::default());
        gz.write_all(b"profile").unwrap();
        let bytes = gz.finish().unwrap();
        assert!(Kind::Pprof.is_ours(&bytes));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"profile").unwrap();
        assert!(!Kind::Pprof.is_ours(&gz.finish().unwrap()));
        assert!(!Kind::Pprof.is_ours(b"\x1f\x8b"));
    }
}
