//! The run journal, `runs/<run-id>/journal.jsonl` in the repository: one JSON line per
//! transition. It says where a run stands and carries facts later steps need (the snapshot
//! id); it never decides alone whether a step is done: every step re-checks the live system.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::repo::Repository;

pub const JOURNAL: &str = "journal.jsonl";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub time: DateTime<Utc>,
    /// A step id, or `run` for the run itself.
    pub step: String,
    /// run: `started`, `resumed`, `finished`, `stopped`; step: `checked`, `started`, `done`,
    /// `failed`, `waiting`.
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What the step changed (`object: field: old → new`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// Facts for later steps and the report (snapshot id, counts).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, Value>,
}

pub struct Journal {
    repo: Repository,
    pub run: String,
    pub entries: Vec<Entry>,
}

impl Journal {
    /// The latest unfinished run, or a new one.
    pub async fn open_or_start(repo: &Repository) -> Result<(Journal, bool)> {
        if let Some(j) = Self::latest(repo).await?
            && !j.finished()
        {
            return Ok((j, true));
        }
        let run = crate::repo::id::new_snapshot_id(Utc::now());
        Ok((
            Journal {
                repo: repo.clone(),
                run,
                entries: Vec::new(),
            },
            false,
        ))
    }

    /// The most recent run, finished or not.
    pub async fn latest(repo: &Repository) -> Result<Option<Journal>> {
        let Some(run) = repo.run_ids().await?.pop() else {
            return Ok(None);
        };
        Self::load(repo, &run).await.map(Some)
    }

    pub async fn load(repo: &Repository, run: &str) -> Result<Journal> {
        let body = repo.run_file(run, JOURNAL).await?.unwrap_or_default();
        let mut entries = Vec::new();
        for (i, line) in String::from_utf8_lossy(&body).lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            entries.push(serde_json::from_str(line).map_err(|e| {
                Error::damaged(
                    format!("run {run}"),
                    JOURNAL,
                    format!("line {} is not a journal entry: {e}", i + 1),
                )
            })?);
        }
        Ok(Journal {
            repo: repo.clone(),
            run: run.to_string(),
            entries,
        })
    }

    pub fn finished(&self) -> bool {
        self.entries
            .iter()
            .rev()
            .find(|e| e.step == "run")
            .is_some_and(|e| e.event == "finished")
    }

    /// Appends an entry and writes the journal back before returning.
    pub async fn record(&mut self, step: &str, event: &str, detail: Option<String>) -> Result<()> {
        self.record_full(step, event, detail, Vec::new(), BTreeMap::new())
            .await
    }

    pub async fn record_full(
        &mut self,
        step: &str,
        event: &str,
        detail: Option<String>,
        changes: Vec<String>,
        facts: BTreeMap<String, Value>,
    ) -> Result<()> {
        self.entries.push(Entry {
            time: Utc::now(),
            step: step.to_string(),
            event: event.to_string(),
            detail,
            changes,
            facts,
        });
        let mut body = Vec::new();
        for e in &self.entries {
            serde_json::to_writer(&mut body, e).expect("journal entries serialize");
            body.push(b'\n');
        }
        self.repo.put_run_file(&self.run, JOURNAL, body).await
    }

    /// The newest value of a fact, from any step.
    pub fn fact(&self, key: &str) -> Option<&Value> {
        self.entries.iter().rev().find_map(|e| e.facts.get(key))
    }

    /// The last event of a step.
    pub fn last(&self, step: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.step == step)
    }

    /// How many times a step reached `done` or `started` in this run.
    pub fn count(&self, step: &str, event: &str) -> usize {
        self.entries
            .iter()
            .filter(|e| e.step == step && e.event == event)
            .count()
    }
}
