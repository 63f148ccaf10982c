//! Writing results to stdout when the reader may go away (`amlmigrate … | head -1`).
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe fails with `BrokenPipe`, and std's
//! `println!` panics on it. A closed stdout means nobody wants the rest of the output, not that
//! the command failed: the output is dropped from then on and the command finishes its work and
//! exits with its own status, quietly (as ripgrep does). Loops that only produce output (`upgrade
//! status --watch`) ask [`gone`] and stop.
//!
//! Everything written here has its control characters escaped (newlines and tabs kept,
//! [`amlmigrate::text::escape_controls`]): whatever a listing forgot to wrap in
//! [`amlmigrate::text::Safe`], no escape sequence from a snapshot, cluster or server reaches the
//! terminal. Listings still wrap each value, so that a newline in one cannot fake a line.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use amlmigrate::text::escape_controls;

static GONE: AtomicBool = AtomicBool::new(false);

/// Whether stdout's reader went away (or stdout failed otherwise).
pub fn gone() -> bool {
    GONE.load(Ordering::Relaxed)
}

/// Writes formatted text to stdout; after the first failure, nothing more is written.
pub fn write_fmt(args: std::fmt::Arguments<'_>, newline: bool) {
    if gone() {
        return;
    }
    let text = std::fmt::format(args);
    let mut out = std::io::stdout().lock();
    let r = out
        .write_all(escape_controls(&text).as_bytes())
        .and_then(|()| {
            if newline {
                out.write_all(b"\n")?;
            }
            // Line-buffered already on a terminal; into a pipe, a failure must surface here, not in
            // an exit-time flush that would print nothing but lose the error.
            out.flush()
        });
    if r.is_err() {
        GONE.store(true, Ordering::Relaxed);
    }
}

/// Writes formatted text to stderr, ignoring a failure (nobody is left to tell).
pub fn write_err(args: std::fmt::Arguments<'_>, newline: bool) {
    let text = std::fmt::format(args);
    let mut err = std::io::stderr().lock();
    let _ = err
        .write_all(escape_controls(&text).as_bytes())
        .and_then(|()| {
            if newline {
                err.write_all(b"\n")?;
            }
            Ok(())
        });
}

/// Writes bytes to stdout (generated completions, the man page).
pub fn write_bytes(bytes: &[u8]) {
    if gone() {
        return;
    }
    let mut out = std::io::stdout().lock();
    if out.write_all(bytes).and_then(|()| out.flush()).is_err() {
        GONE.store(true, Ordering::Relaxed);
    }
}

/// A writer for log lines that escapes control characters as [`write_fmt`] does: a log line
/// quotes names and error texts from servers and snapshots.
pub struct SafeStderr;

impl Write for SafeStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The logger writes whole lines (formatted into one buffer first), so a character is
        // never split across calls.
        let text = String::from_utf8_lossy(buf);
        std::io::stderr()
            .lock()
            .write_all(escape_controls(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
