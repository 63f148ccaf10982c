//! Writing results to stdout when the reader may go away (`amlmigrate … | head -1`).
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe fails with `BrokenPipe`, and std's
//! `println!` panics on it. A closed stdout means nobody wants the rest of the output, not that
//! the command failed: the output is dropped from then on and the command finishes its work and
//! exits with its own status, quietly (as ripgrep does). Loops that only produce output (`upgrade
//! status --watch`) ask [`gone`] and stop.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

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
    let mut out = std::io::stdout().lock();
    let r = out.write_fmt(args).and_then(|()| {
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
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| {
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
