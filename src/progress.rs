//! Progress events. The library emits them; only the CLI draws bars or prints lines.

use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum Event {
    /// The work ahead, from server estimates (rows and bytes are approximate).
    Plan {
        what: &'static str,
        tables: u64,
        est_rows: u64,
        est_bytes: u64,
    },
    TableStarted {
        db: String,
        table: String,
        est_rows: u64,
    },
    /// Cumulative counts for the table in progress, sent a few times a second at most.
    TableProgress {
        db: String,
        table: String,
        rows: u64,
        bytes: u64,
    },
    TableFinished {
        db: String,
        table: String,
        rows: u64,
        bytes: u64,
        elapsed: Duration,
    },
    /// Something the operator should know that is not an error (a mapped collation, a
    /// non-transactional table).
    Notice(String),
}

pub trait Progress: Send + Sync {
    fn event(&self, event: Event);
}

/// Discards every event; for library callers that do not care.
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: Event) {}
}

pub type ProgressRef = Arc<dyn Progress>;

pub fn none() -> ProgressRef {
    Arc::new(NoProgress)
}

/// Logs every event with `tracing` (what is read or written, sizes, timings) and passes it on:
/// `-v` shows each table started and finished, `-vv` its progress too.
pub fn logged(inner: ProgressRef, job: &'static str) -> ProgressRef {
    Arc::new(Logged { inner, job })
}

struct Logged {
    inner: ProgressRef,
    job: &'static str,
}

impl Progress for Logged {
    fn event(&self, event: Event) {
        let job = self.job;
        match &event {
            Event::Plan {
                tables,
                est_rows,
                est_bytes,
                ..
            } => tracing::info!(
                job,
                tables,
                est_rows,
                est_bytes,
                "{job}: {tables} table(s) ahead, about {est_rows} rows"
            ),
            Event::TableStarted {
                db,
                table,
                est_rows,
            } => tracing::info!(
                job,
                db,
                table,
                est_rows,
                "{job}: table {db}.{table} started"
            ),
            Event::TableProgress {
                db,
                table,
                rows,
                bytes,
            } => tracing::debug!(job, db, table, rows, bytes, "{job}: table {db}.{table}"),
            Event::TableFinished {
                db,
                table,
                rows,
                bytes,
                elapsed,
            } => tracing::info!(
                job,
                db,
                table,
                rows,
                bytes,
                elapsed_ms = elapsed.as_millis() as u64,
                "{job}: table {db}.{table} done: {rows} rows, {bytes} bytes in {:.3}s",
                elapsed.as_secs_f64()
            ),
            Event::Notice(n) => tracing::info!(job, "{job}: notice: {n}"),
        }
        self.inner.event(event);
    }
}
