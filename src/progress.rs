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
