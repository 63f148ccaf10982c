//! The final report of a run (JSON and Markdown, stored in `runs/<run-id>/` and printed): every
//! step, what it checked and changed, and the data counts before (the snapshot) and after (live).

use serde::{Deserialize, Serialize};

use super::config::AML_SOURCE;
use super::journal::{Event, Journal};
use super::{Env, STEPS, steps};
use crate::error::Result;
use crate::repo::Repository;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub run: String,
    pub snapshot: Option<String>,
    pub started: Option<chrono::DateTime<chrono::Utc>>,
    pub finished: chrono::DateTime<chrono::Utc>,
    pub steps: Vec<ReportStep>,
    pub counts: Vec<Count>,
    /// What only a person can check (the article's functional checks), to tick off.
    #[serde(default)]
    pub checklist: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Count {
    pub what: String,
    pub before: Option<u64>,
    pub after: Option<u64>,
}

pub(super) async fn build(env: &Env, journal: &Journal) -> Result<Report> {
    let snapshot = steps::snapshot_of(env, Some(journal)).await?;
    let mut out = Report {
        run: journal.run.clone(),
        snapshot: snapshot.clone(),
        started: journal.entries.first().map(|e| e.time),
        finished: chrono::Utc::now(),
        steps: Vec::new(),
        counts: Vec::new(),
        checklist: steps::CHECKLIST.iter().map(|s| s.to_string()).collect(),
    };
    for s in STEPS {
        let name = s.name();
        let entries: Vec<_> = journal.entries.iter().filter(|e| e.step == name).collect();
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
        out.steps.push(ReportStep {
            step: name.into(),
            title: s.title().into(),
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
        });
    }
    if let Some(id) = &snapshot {
        out.counts = counts(env, id).await?;
    }
    Ok(out)
}

/// Data before (the snapshot) and after (live): the job records, MLflow, PVCs, Profiles.
async fn counts(env: &Env, id: &str) -> Result<Vec<Count>> {
    let mut out = Vec::new();
    let m = env.repo.manifest(id).await?;
    // The job records stay on their server; the other sources' servers go or change.
    for db in crate::backup::databases_of(&m, AML_SOURCE).unwrap_or_default() {
        let live = steps::mysql_table_counts(env, AML_SOURCE, &db.name)
            .await
            .ok();
        for t in &db.tables {
            out.push(Count {
                what: format!("MySQL {}.{} rows", db.name, t.name),
                before: Some(t.rows),
                after: live.as_ref().and_then(|l| l.get(&t.name).copied()),
            });
        }
    }
    if env.cfg.mlflow.migrate
        && let Ok(name) = env.cfg.mlflow_database()
        && let Some(db) = m.mysql.iter().find(|d| d.name == name)
    {
        let client = env.cfg.pg_url()?.connect().await?;
        for (t, label) in [
            ("experiments", "experiments"),
            ("runs", "runs"),
            ("metrics", "metric points"),
        ] {
            let after: Option<i64> = client
                .query_one(&format!("SELECT count(*) FROM {t}"), &[])
                .await
                .ok()
                .map(|r| r.get(0));
            out.push(Count {
                what: format!("MLflow {label} (2.6 MySQL → 3.1.1 PostgreSQL)"),
                before: db.tables.iter().find(|x| x.name == t).map(|x| x.rows),
                after: after.map(|n| n as u64),
            });
        }
    }
    if let Some(k) = &m.kubernetes {
        let index = crate::kube::pvc::snapshot_index(&env.repo, id).await?;
        let rows = crate::kube::pvc::check(&env.workload, &index, &Default::default()).await?;
        out.push(Count {
            what: "PVCs Bound to their volume".into(),
            before: Some(k.pvcs),
            after: Some(rows.iter().filter(|r| r.problem.is_none()).count() as u64),
        });
        let profiles_before = k
            .kinds
            .iter()
            .find(|x| x.kind == "Profile")
            .map(|x| x.objects);
        let profiles_after = match env.workload.resolve("Profile", Some("kubeflow.org")) {
            Some(r) => Some(env.workload.list(&r, None, None, None).await?.len() as u64),
            None => None,
        };
        out.push(Count {
            what: "Profiles".into(),
            before: profiles_before,
            after: profiles_after,
        });
    }
    Ok(out)
}

pub fn markdown(r: &Report) -> String {
    let mut s = format!("# amlmigrate upgrade 1.3 → 1.4: run {}\n\n", r.run);
    if let Some(id) = &r.snapshot {
        s.push_str(&format!("Snapshot: `{id}`  \n"));
    }
    if let Some(t) = r.started {
        s.push_str(&format!("Started: {}  \n", t.to_rfc3339()));
    }
    s.push_str(&format!(
        "Finished: {}\n\n## Steps\n\n",
        r.finished.to_rfc3339()
    ));
    for (i, st) in r.steps.iter().enumerate() {
        s.push_str(&format!(
            "{}. **{}** ({}): {}\n",
            i + 1,
            st.step,
            st.outcome,
            st.title
        ));
        if let Some(d) = &st.detail {
            s.push_str(&format!("   - {d}\n"));
        }
        for c in &st.changes {
            s.push_str(&format!("   - changed: {c}\n"));
        }
        for c in &st.checked {
            s.push_str(&format!("   - checked: {c}\n"));
        }
        for w in &st.warnings {
            s.push_str(&format!("   - WARNING: {w}\n"));
        }
    }
    s.push_str("\n## Data before and after\n\n| what | before | after | |\n|---|---:|---:|---|\n");
    let show = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_else(|| "–".into());
    for c in &r.counts {
        let mark = if c.before == c.after { "=" } else { "≠" };
        s.push_str(&format!(
            "| {} | {} | {} | {mark} |\n",
            c.what,
            show(c.before),
            show(c.after)
        ));
    }
    if !r.checklist.is_empty() {
        s.push_str("\n## For a person to check (the article's functional checks)\n\n");
        for c in &r.checklist {
            s.push_str(&format!("- [ ] {c}\n"));
        }
    }
    s
}

pub(super) async fn store(repo: &Repository, run: &str, r: &Report) -> Result<()> {
    repo.put_run_file(
        run,
        "report.json",
        serde_json::to_vec_pretty(r).expect("report serializes"),
    )
    .await?;
    repo.put_run_file(run, "report.md", markdown(r).into_bytes())
        .await
}

/// The stored report of a run.
pub async fn load(repo: &Repository, run: &str) -> Result<Option<Report>> {
    Ok(repo
        .run_file(run, "report.json")
        .await?
        .and_then(|b| serde_json::from_slice(&b).ok()))
}
