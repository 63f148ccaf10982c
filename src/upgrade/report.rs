//! The final report of a run (JSON and Markdown, stored in `runs/<run-id>/` and printed): every
//! step, what it checked and changed, and the data counts before (the snapshot) and after (live).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::journal::{Entry, Event, Journal};
use super::{Env, STEPS, steps};
use crate::error::Result;
use crate::repo::Repository;
use crate::text::{md, md_code};

mod counts;
mod html;
mod timeline;

pub use counts::{EXPERIMENTS, NAMESPACES, TABLES};
pub use html::html;

/// What produced a report: the same model (and so the same Markdown and HTML) serves each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportKind {
    #[default]
    Upgrade,
    Rehearsal,
    Recovery,
}

impl ReportKind {
    pub fn title(self) -> &'static str {
        match self {
            ReportKind::Upgrade => "amlmigrate upgrade 1.3 → 1.4",
            ReportKind::Rehearsal => "amlmigrate upgrade rehearsal",
            ReportKind::Recovery => "amlmigrate recovery",
        }
    }
}

/// `Default` lets a report built elsewhere (a rehearsal, a recovery) name only what it has.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    #[serde(default)]
    pub kind: ReportKind,
    pub run: String,
    pub snapshot: Option<String>,
    /// sha256 of the snapshot's `manifest.json` as stored (what `sha256sum` prints): the manifest
    /// holds every part's and table's sha256, so this one value ties the report to the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_sha256: Option<String>,
    pub started: Option<DateTime<Utc>>,
    pub finished: DateTime<Utc>,
    pub steps: Vec<ReportStep>,
    pub counts: Vec<Count>,
    /// The snapshot's tables with their rows and sha256 (over their chunks, as in the manifest).
    #[serde(default)]
    pub tables: Vec<TableSum>,
    /// What only a person can check (the article's functional checks), to tick off.
    #[serde(default)]
    pub checklist: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReportStep {
    pub step: String,
    pub title: String,
    /// `applied` (this run changed something), `already done`, or the last event.
    pub outcome: String,
    pub detail: Option<String>,
    pub changes: Vec<String>,
    pub checked: Vec<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// When this run first started applying it (absent when it was found done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<DateTime<Utc>>,
    /// Its last event in this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<DateTime<Utc>>,
    /// Seconds spent applying it (every attempt that reached an end), waits included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Of those, seconds the run waited for a person, and what it asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited_for: Option<String>,
}

/// One number before (the snapshot) and after (live). `group`, `item` and `measure` place it in
/// a table (`item` a row, `measure` a column); counts without a group are the totals.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Count {
    pub what: String,
    pub before: Option<u64>,
    pub after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure: Option<String>,
}

impl Count {
    pub fn total(what: impl Into<String>, before: Option<u64>, after: Option<u64>) -> Count {
        Count {
            what: what.into(),
            before,
            after,
            group: None,
            item: None,
            measure: None,
        }
    }

    /// A count in a table of `group`: row `item`, column `measure`.
    pub fn cell(
        group: &str,
        item: impl Into<String>,
        measure: &str,
        before: Option<u64>,
        after: Option<u64>,
    ) -> Count {
        let item = item.into();
        Count {
            what: format!("{group}: {item}: {measure}"),
            before,
            after,
            group: Some(group.into()),
            item: Some(item),
            measure: Some(measure.into()),
        }
    }

    pub fn equal(&self) -> bool {
        self.before == self.after
    }

    /// `after - before`, when both are known.
    pub fn difference(&self) -> Option<i128> {
        Some(self.after? as i128 - self.before? as i128)
    }
}

/// A table of the snapshot, as its manifest records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableSum {
    pub source: String,
    pub database: String,
    pub table: String,
    pub rows: u64,
    pub sha256: String,
}

pub(super) async fn build(env: &Env, journal: &Journal) -> Result<Report> {
    let snapshot = steps::snapshot_of(env, Some(journal)).await?;
    let mut out = Report {
        kind: ReportKind::Upgrade,
        run: journal.run.clone(),
        snapshot: snapshot.clone(),
        manifest_sha256: None,
        started: journal.entries.first().map(|e| e.time),
        finished: Utc::now(),
        steps: Vec::new(),
        counts: Vec::new(),
        tables: Vec::new(),
        checklist: steps::CHECKLIST.iter().map(|s| s.to_string()).collect(),
    };
    for s in STEPS {
        let entries: Vec<&Entry> = journal
            .entries
            .iter()
            .filter(|e| e.step == s.name())
            .collect();
        out.steps.push(step_of(s.name(), s.title(), &entries));
    }
    if let Some(id) = &snapshot {
        out.manifest_sha256 = env.repo.manifest_sha256(id).await.ok();
        let m = env.repo.manifest(id).await?;
        out.tables = table_sums(&m);
        let mut missing = Vec::new();
        out.counts = counts::counts(env, &m, &mut missing).await?;
        // What could not be counted is said where the checks are.
        if let Some(verify) = out.steps.last_mut() {
            verify.warnings.extend(missing);
        }
    }
    Ok(out)
}

/// A step's line of the report, from its journal entries in this run.
pub fn step_of(name: &str, title: &str, entries: &[&Entry]) -> ReportStep {
    let started = entries.iter().any(|e| e.event == Event::Started);
    let changes: Vec<String> = entries
        .iter()
        .filter(|e| e.event == Event::Done)
        .flat_map(|e| e.changes.clone())
        .collect();
    let last = entries.last();
    let checked = entries
        .iter()
        .rev()
        .find(|e| !e.facts.checked.is_empty())
        .map(|e| e.facts.checked.clone())
        .unwrap_or_default();
    let mut warnings: Vec<String> = Vec::new();
    for w in entries.iter().flat_map(|e| &e.facts.warnings) {
        if !warnings.contains(w) {
            warnings.push(w.clone());
        }
    }
    let t = timeline::of(entries);
    ReportStep {
        step: name.into(),
        title: title.into(),
        outcome: match (started, last.map(|e| e.event.as_str())) {
            (_, Some("skipped")) => "skipped".into(),
            (true, Some("done")) => "applied".into(),
            (false, Some("done")) => "already done".into(),
            (_, Some(ev)) => ev.into(),
            (_, None) => "not reached".into(),
        },
        detail: entries.iter().rev().find_map(|e| e.detail.clone()),
        changes,
        checked,
        warnings,
        started: t.started,
        ended: last.map(|e| e.time),
        seconds: t.seconds,
        waited_seconds: t.waited_seconds,
        waited_for: t.waited_for,
    }
}

/// Every MySQL table of a snapshot with its rows and checksum.
pub fn table_sums(m: &crate::repo::manifest::Manifest) -> Vec<TableSum> {
    m.mysql
        .iter()
        .flat_map(|d| {
            d.tables.iter().map(|t| TableSum {
                source: d.source.clone().unwrap_or_else(|| "mysql".into()),
                database: d.name.clone(),
                table: t.name.clone(),
                rows: t.rows,
                sha256: t.sha256.clone(),
            })
        })
        .collect()
}

/// The report as Markdown. Every value is escaped ([`md`], [`md_code`]): step texts quote the
/// cluster, counts name its objects, tables come from the snapshot.
pub fn markdown(r: &Report) -> String {
    let mut s = format!("# {}: run {}\n\n", r.kind.title(), md(&r.run));
    if let Some(id) = &r.snapshot {
        s.push_str(&format!("Snapshot: {}  \n", md_code(id)));
    }
    if let Some(sum) = &r.manifest_sha256 {
        s.push_str(&format!("Manifest sha256: {}  \n", md_code(sum)));
    }
    if let Some(t) = r.started {
        s.push_str(&format!("Started: {}  \n", t.to_rfc3339()));
    }
    s.push_str(&format!(
        "Finished: {}\n\n## Steps\n\n",
        r.finished.to_rfc3339()
    ));
    for (i, st) in r.steps.iter().enumerate() {
        let took = match (st.seconds, st.waited_seconds) {
            (Some(t), Some(w)) => format!(
                ", {}, of which {} waiting for a person",
                html::duration(t),
                html::duration(w)
            ),
            (Some(t), None) => format!(", {}", html::duration(t)),
            _ => String::new(),
        };
        s.push_str(&format!(
            "{}. **{}** ({}{took}): {}\n",
            i + 1,
            md(&st.step),
            md(&st.outcome),
            md(&st.title)
        ));
        let items = st.detail.iter().map(|d| ("", d));
        let items = items
            .chain(st.changes.iter().map(|c| ("changed: ", c)))
            .chain(st.checked.iter().map(|c| ("checked: ", c)))
            .chain(st.warnings.iter().map(|w| ("WARNING: ", w)));
        for (label, text) in items {
            s.push_str(&format!("   - {label}{}\n", md(text)));
        }
    }
    s.push_str("\n## Data before and after\n\n| what | before | after | |\n|---|---:|---:|---|\n");
    let show = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_else(|| "–".into());
    for c in &r.counts {
        let mark = if c.before == c.after { "=" } else { "≠" };
        s.push_str(&format!(
            "| {} | {} | {} | {mark} |\n",
            md(&c.what),
            show(c.before),
            show(c.after)
        ));
    }
    if !r.checklist.is_empty() {
        s.push_str("\n## For a person to check (the article's functional checks)\n\n");
        for c in &r.checklist {
            s.push_str(&format!("- [ ] {}\n", md(c)));
        }
    }
    if !r.tables.is_empty() {
        s.push_str("\n## Snapshot tables (rows, sha256 as in the manifest)\n\n| table | rows | sha256 |\n|---|---:|---|\n");
        for t in &r.tables {
            let source = if t.source == t.database {
                String::new()
            } else {
                format!(" (source {})", md(&t.source))
            };
            s.push_str(&format!(
                "| {}.{}{source} | {} | {} |\n",
                md(&t.database),
                md(&t.table),
                t.rows,
                md_code(&t.sha256)
            ));
        }
    }
    s
}

pub async fn store(repo: &Repository, run: &str, r: &Report) -> Result<()> {
    repo.put_run_file(
        run,
        "report.json",
        serde_json::to_vec_pretty(r).expect("report serializes"),
    )
    .await?;
    repo.put_run_file(run, "report.md", markdown(r).into_bytes())
        .await?;
    repo.put_run_file(run, "report.html", html(r).into_bytes())
        .await
}

/// The stored report of a run.
pub async fn load(repo: &Repository, run: &str) -> Result<Option<Report>> {
    Ok(repo
        .run_file(run, "report.json")
        .await?
        .and_then(|b| serde_json::from_slice(&b).ok()))
}
