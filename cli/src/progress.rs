//! A line on standard error while a step takes longer than a second, when
//! standard error is a terminal: reading a trace of millions of events takes
//! seconds, and silence looks like a hang. Nothing is printed otherwise, so
//! scripts and tests see only what they always saw.

use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `f`, showing `what` and the seconds elapsed once it has run for a
/// second; the line is erased when `f` returns.
pub fn while_doing<T>(what: &str, f: impl FnOnce() -> T) -> T {
    if !std::io::stderr().is_terminal() {
        return f();
    }
    let (done, wait) = mpsc::channel::<()>();
    let what = what.to_string();
    let shower = std::thread::spawn(move || {
        let start = Instant::now();
        if wait.recv_timeout(Duration::from_secs(1)).is_ok() {
            return;
        }
        let mut err = std::io::stderr();
        loop {
            let _ = write!(
                err,
                "\rleakhunt: {what}… {:.0} s",
                start.elapsed().as_secs_f64()
            );
            let _ = err.flush();
            if wait.recv_timeout(Duration::from_millis(500)).is_ok() {
                // Erase the line: what comes next starts at column 0.
                let _ = write!(err, "\r\x1b[K");
                let _ = err.flush();
                return;
            }
        }
    });
    let r = f();
    let _ = done.send(());
    let _ = shower.join();
    r
}
