//! The run journal, `runs/<run-id>/journal.jsonl` in the repository: one JSON line per
//! transition. It says where a run stands and carries facts later steps need (the snapshot
//! id); it never decides alone whether a step is done: every step re-checks the live system.
//!
//! Events and facts are typed, and the file stays plain JSON lines. A fact this version does not
//! know (written by another version) is kept as it was; an event it does not know makes the
//! journal unreadable with a message naming the line.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::repo::Repository;

pub const JOURNAL: &str = "journal.jsonl";

/// The subject of the run's own entries (steps use their names).
pub const RUN: &str = "run";

/// What happened. The run itself: `Started`, `Resumed`, `Finished`, `Stopped`. A step:
/// `Started`, `Waiting` (for a person), `Polling` (waiting for the system: a plugin, a rollout),
/// `Done`, `Skipped` (by configuration), `Failed`, `Blocked`, `Declined` (not confirmed). The two
/// waits carry their deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    Started,
    Resumed,
    Finished,
    Stopped,
    Waiting,
    Polling,
    Done,
    Skipped,
    Failed,
    Blocked,
    Declined,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Started => "started",
            Event::Resumed => "resumed",
            Event::Finished => "finished",
            Event::Stopped => "stopped",
            Event::Waiting => "waiting",
            Event::Polling => "polling",
            Event::Done => "done",
            Event::Skipped => "skipped",
            Event::Failed => "failed",
            Event::Blocked => "blocked",
            Event::Declined => "declined",
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An object of the 1.3 installation, as the snapshot step found it: the uninstall deletes it
/// only while it still has this uid, so nothing created later (a 1.4 plugin) is ever touched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    pub kind: String,
    pub api_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    /// A plugin's module and version (ModuleInfo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ", self.kind)?;
        if let Some(ns) = &self.namespace {
            write!(f, "{ns}/")?;
        }
        write!(f, "{}", self.name)?;
        match (&self.module, &self.version) {
            (Some(m), Some(v)) => write!(f, " (plugin {m} {v})"),
            (Some(m), None) => write!(f, " (plugin {m})"),
            _ => Ok(()),
        }
    }
}

/// What the 1.3 installation consisted of when the snapshot was taken.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Installation {
    /// Plugin ModuleInfos of the global cluster, in the uninstall order.
    #[serde(default)]
    pub plugins: Vec<Recorded>,
    /// The kubeflow chart application(s) of the workload cluster.
    #[serde(default)]
    pub charts: Vec<Recorded>,
}

impl Installation {
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty() && self.charts.is_empty()
    }
}

/// Facts a step learned, for later steps and the report. Never a secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// The verified pre-upgrade snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The finished run whose snapshot a new run inherited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_run: Option<String>,
    /// What a step checked, one line each (`ok …` / `FAIL …`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checked: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlflow_outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlflow_metric_points: Option<u64>,
    /// The 1.3 installation the uninstall may delete (recorded with the snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<Installation>,
    /// Warnings a step gave (for the report).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Facts of other versions of the tool, kept as they were.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl Facts {
    pub fn is_empty(&self) -> bool {
        *self == Facts::default()
    }

    pub fn checked(lines: &[String]) -> Facts {
        Facts {
            checked: lines.to_vec(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub time: DateTime<Utc>,
    /// A step name, or `run` for the run itself.
    pub step: String,
    pub event: Event,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A wait's deadline: when it gives up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    /// What the step changed (`object: field: old → new`), secrets shown as `(hidden)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    #[serde(default, skip_serializing_if = "Facts::is_empty")]
    pub facts: Facts,
}

pub struct Journal {
    repo: Repository,
    pub run: String,
    pub entries: Vec<Entry>,
    /// The file in the run's folder: `journal.jsonl` for upgrade runs; other kinds of runs
    /// (recoveries) keep theirs apart, so they are never taken for an upgrade run.
    file: &'static str,
}

impl Journal {
    /// The latest unfinished run, or a new one.
    pub async fn open_or_start(repo: &Repository) -> Result<(Journal, bool)> {
        if let Some(j) = Self::latest(repo).await?
            && !j.finished()
        {
            return Ok((j, true));
        }
        Ok((Self::start_in(repo, JOURNAL), false))
    }

    /// A new run whose journal is `file`.
    pub fn start_in(repo: &Repository, file: &'static str) -> Journal {
        Journal {
            repo: repo.clone(),
            run: crate::repo::id::new_snapshot_id(Utc::now()),
            entries: Vec::new(),
            file,
        }
    }

    /// The most recent run, finished or not.
    pub async fn latest(repo: &Repository) -> Result<Option<Journal>> {
        let Some(run) = repo.run_ids().await?.pop() else {
            return Ok(None);
        };
        Self::load(repo, &run).await.map(Some)
    }

    pub async fn load(repo: &Repository, run: &str) -> Result<Journal> {
        Self::load_from(repo, run, JOURNAL).await
    }

    /// A run whose journal is `file`.
    pub async fn load_from(repo: &Repository, run: &str, file: &'static str) -> Result<Journal> {
        let body = repo.run_file(run, file).await?.unwrap_or_default();
        Ok(Journal {
            repo: repo.clone(),
            run: run.to_string(),
            entries: parse(run, file, &body)?,
            file,
        })
    }

    pub fn finished(&self) -> bool {
        self.entries
            .iter()
            .rev()
            .find(|e| e.step == RUN)
            .is_some_and(|e| e.event == Event::Finished)
    }

    /// Appends an entry and writes the journal back before returning.
    pub async fn record(&mut self, step: &str, event: Event, detail: Option<String>) -> Result<()> {
        self.record_full(step, event, detail, Vec::new(), Facts::default())
            .await
    }

    pub async fn record_full(
        &mut self,
        step: &str,
        event: Event,
        detail: Option<String>,
        changes: Vec<String>,
        facts: Facts,
    ) -> Result<()> {
        // The run's snapshot is pinned in the repository while the run is unfinished, so that
        // prune keeps it without knowing about upgrade runs; pinned before the journal names it.
        let pin = match (&event, facts.snapshot.as_deref().or(self.snapshot())) {
            (Event::Finished, _) | (_, None) => None,
            (_, Some(s)) if facts.snapshot.is_some() || step == RUN => Some(s.to_string()),
            _ => None,
        };
        if let Some(s) = &pin {
            self.repo
                .pin(
                    s,
                    &self.run,
                    &format!("snapshot of upgrade run {}, not finished", self.run),
                )
                .await?;
        }
        self.entries.push(Entry {
            time: Utc::now(),
            step: step.to_string(),
            event,
            detail,
            deadline: None,
            changes,
            facts,
        });
        self.write().await
    }

    /// Records that a step waits (`Waiting` for a person, `Polling` for the system) for `what`,
    /// giving up after `timeout`.
    pub async fn record_wait(
        &mut self,
        step: &str,
        event: Event,
        what: String,
        timeout: std::time::Duration,
    ) -> Result<()> {
        let time = Utc::now();
        self.entries.push(Entry {
            time,
            step: step.to_string(),
            event,
            detail: Some(what),
            deadline: chrono::Duration::from_std(timeout)
                .ok()
                .and_then(|d| time.checked_add_signed(d)),
            changes: Vec::new(),
            facts: Facts::default(),
        });
        self.write().await
    }

    async fn write(&self) -> Result<()> {
        if let Some(e) = self.entries.last() {
            tracing::debug!(
                run = self.run,
                step = e.step,
                event = e.event.as_str(),
                "journal: {} {}{}",
                e.step,
                e.event,
                e.detail
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            );
        }
        let mut body = Vec::new();
        for e in &self.entries {
            serde_json::to_writer(&mut body, e).expect("journal entries serialize");
            body.push(b'\n');
        }
        self.repo.put_run_file(&self.run, self.file, body).await?;
        let finished = self
            .entries
            .last()
            .is_some_and(|e| e.event == Event::Finished);
        if finished && let Some(s) = self.snapshot() {
            self.repo.unpin(s, &self.run).await?;
        }
        Ok(())
    }

    /// The newest value of a fact, from any step.
    pub fn fact<T>(&self, get: impl Fn(&Facts) -> Option<T>) -> Option<T> {
        self.entries.iter().rev().find_map(|e| get(&e.facts))
    }

    /// The snapshot the run depends on (its pre-upgrade snapshot), once taken.
    pub fn snapshot(&self) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find_map(|e| e.facts.snapshot.as_deref())
    }

    /// The last event of a step.
    pub fn last(&self, step: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.step == step)
    }

    /// How many times a step reached `event` in this run.
    pub fn count(&self, step: &str, event: Event) -> usize {
        self.entries
            .iter()
            .filter(|e| e.step == step && e.event == event)
            .count()
    }
}

fn parse(run: &str, file: &str, body: &[u8]) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for (i, line) in String::from_utf8_lossy(body).lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        entries.push(serde_json::from_str(line).map_err(|e| {
            Error::damaged(
                format!("run {run}"),
                file,
                format!(
                    "line {} is not a journal entry this version understands ({e}); \
                     finish or inspect that run with the amlmigrate version that wrote it",
                    i + 1
                ),
            )
        })?);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journals_of_the_previous_format_still_parse_with_their_facts() {
        let old = concat!(
            r#"{"time":"2026-01-02T03:04:05Z","step":"run","event":"started","detail":"amlmigrate 0.1.0"}"#,
            "\n",
            r#"{"time":"2026-01-02T03:05:05Z","step":"snapshot","event":"done","changes":["snapshot: (none) → X"],"facts":{"snapshot":"20260102T030505Z-000aaa"}}"#,
            "\n",
            r#"{"time":"2026-01-02T03:06:05Z","step":"verify","event":"done","facts":{"checked":["ok   a"],"some_future_fact":{"n":1}}}"#,
            "\n"
        );
        let e = parse("r", JOURNAL, old.as_bytes()).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[1].event, Event::Done);
        assert_eq!(
            e[1].facts.snapshot.as_deref(),
            Some("20260102T030505Z-000aaa")
        );
        assert_eq!(e[2].facts.checked, ["ok   a"]);
        assert_eq!(e[2].facts.other["some_future_fact"]["n"], 1);
        // Written back, the line is the same JSON.
        let again = serde_json::to_value(&e[2]).unwrap();
        assert_eq!(
            again,
            serde_json::from_str::<Value>(old.lines().nth(2).unwrap()).unwrap()
        );
    }

    #[test]
    fn an_unknown_event_names_the_line_and_what_to_do() {
        let bad = r#"{"time":"2026-01-02T03:04:05Z","step":"run","event":"teleported"}"#;
        let e = parse("r1", JOURNAL, format!("\n{bad}\n").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("teleported"), "{e}");
        assert!(e.contains("amlmigrate version that wrote it"), "{e}");
    }
}
