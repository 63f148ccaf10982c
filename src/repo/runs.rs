//! Guided-upgrade runs: `<repo>/runs/<run-id>/<file>` (journal, reports). Small objects,
//! rewritten whole: object stores have no append, and a journal is a few kilobytes.

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::Repository;

/// Beside a snapshot's manifest: written by a successful `verify`.
pub const VERIFIED: &str = "verified.json";
use crate::error::Result;

impl Repository {
    /// Records that every byte of a committed snapshot was re-read and matched its manifest.
    pub async fn mark_verified(&self, id: &str, bytes: u64) -> Result<()> {
        let body = serde_json::json!({
            "verified": chrono::Utc::now(),
            "bytes_read": bytes,
            "tool": super::tool_version(),
        });
        self.store
            .put(
                &Self::snapshot_path(id, VERIFIED),
                PutPayload::from(serde_json::to_vec_pretty(&body).expect("json")),
            )
            .await
            .map(|_| ())
            .map_err(|e| self.store_err(format!("recording the verification of snapshot {id}"), e))
    }

    pub async fn unmark_verified(&self, id: &str) -> Result<()> {
        match self.store.delete(&Self::snapshot_path(id, VERIFIED)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_err(format!("removing the verification of snapshot {id}"), e)),
        }
    }

    fn run_path(run: &str, file: &str) -> Path {
        Path::from("runs").join(run).join(file)
    }

    /// Writes (or replaces) one file of a run.
    pub async fn put_run_file(&self, run: &str, file: &str, body: Vec<u8>) -> Result<()> {
        self.store
            .put(&Self::run_path(run, file), PutPayload::from(body))
            .await
            .map(|_| ())
            .map_err(|e| self.store_err(format!("writing runs/{run}/{file}"), e))
    }

    /// Writes one file of a run only if it does not exist yet; `false` when it did.
    pub async fn create_run_file(&self, run: &str, file: &str, body: Vec<u8>) -> Result<bool> {
        match self
            .store
            .put_opts(
                &Self::run_path(run, file),
                PutPayload::from(body),
                PutOptions::from(PutMode::Create),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.store_err(format!("creating runs/{run}/{file}"), e)),
        }
    }

    pub async fn delete_run_file(&self, run: &str, file: &str) -> Result<()> {
        match self.store.delete(&Self::run_path(run, file)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_err(format!("deleting runs/{run}/{file}"), e)),
        }
    }

    /// One file of a run, or `None` when it does not exist.
    pub async fn run_file(&self, run: &str, file: &str) -> Result<Option<Vec<u8>>> {
        match self.store.get(&Self::run_path(run, file)).await {
            Ok(r) => Ok(Some(
                r.bytes()
                    .await
                    .map_err(|e| self.store_err(format!("reading runs/{run}/{file}"), e))?
                    .to_vec(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.store_err(format!("reading runs/{run}/{file}"), e)),
        }
    }

    /// Run ids that have a journal, oldest first (ids sort by time).
    pub async fn run_ids(&self) -> Result<Vec<String>> {
        self.folders_holding("runs", "journal.jsonl", "listing upgrade runs")
            .await
    }

    /// Runs holding `file` (rehearsals hold `rehearsal.json`, recoveries `recover.jsonl`):
    /// kept apart from the upgrade runs, which hold `journal.jsonl`.
    pub async fn runs_holding(&self, file: &str) -> Result<Vec<String>> {
        self.folders_holding("runs", file, "listing the runs of the repository")
            .await
    }
}
