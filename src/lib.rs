//! amlmigrate: safe, fast, verifiable snapshots and migration for the Alauda AI 1.3 -> 1.4 upgrade.
//!
//! The library does the work and never prints or exits; it reports progress as [`progress::Event`]s
//! and failures as [`Error`]s whose messages name the object and the fix. The `amlmigrate` binary
//! (`src/main.rs`, `src/cli/`) parses flags, draws progress and maps errors to exit codes.

pub mod archive;
pub mod backup;
pub mod closest;
pub mod error;
pub mod export;
pub mod kube;
pub mod metrics;
pub mod mlflow;
pub mod mysql;
pub mod postgres;
pub mod progress;
pub mod prune;
pub mod repo;
pub mod schedule;
pub mod secret;
pub mod span;
pub mod text;
pub mod upgrade;
pub mod verify;

pub use error::{Error, ErrorKind, Result};
