//! `amlmigrate recover`: a lost or rebuilt 1.4 cluster brought back from one snapshot.
//!
//! The steps are the upgrade's own where they exist (migrate-mlflow, restore-profiles,
//! global-settings, enable-features, verify), with two the upgrade never needs: putting a lost
//! dex ConfigMap or ServiceMesh of the global cluster back as the snapshot holds it (before
//! global-settings adds the article's settings again), and restoring the job-record and
//! Kubeflow Pipelines databases, which an upgrade leaves in place. Each step checks the live
//! system first, asks before it writes, and is journaled in `runs/<id>/recover.jsonl` (apart
//! from the upgrade runs), so a recovery killed anywhere resumes with the same command and
//! repeats nothing. A dry run shows every change and writes nothing.

use std::sync::Arc;

use serde::Serialize;

use super::journal::{Event, Facts, Journal, RUN};
use super::lock::{self, RunLock};
use super::report::{self, Report};
use super::steprun;
use super::steps::{self, StepId};
use super::{Change, Confirm, Env, State, StepCheck};
use crate::error::{Error, Result};
use crate::repo::manifest::MysqlDatabase;

/// The journal of a recovery, in its run folder.
pub const JOURNAL_FILE: &str = "recover.jsonl";

const DATABASES: &str = "restore-databases";
const DATABASES_TITLE: &str = "Restore the job-record and Kubeflow Pipelines databases (every MySQL source of the snapshot but MLflow 2.6's)";

const GLOBAL: &str = "restore-global";

/// The steps of a recovery, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The global cluster's dex ConfigMap and ServiceMesh as the snapshot holds them; then
    /// global-settings adds the article's settings again.
    Global,
    Databases,
    Upgrade(StepId),
}

/// global-settings comes after restore-profiles: a snapshot whose Kubernetes part the restore
/// refuses stops the recovery before the global cluster is written.
const STEPS: [Step; 7] = [
    Step::Global,
    Step::Databases,
    Step::Upgrade(StepId::MigrateMlflow),
    Step::Upgrade(StepId::RestoreProfiles),
    Step::Upgrade(StepId::GlobalSettings),
    Step::Upgrade(StepId::EnableFeatures),
    Step::Upgrade(StepId::Verify),
];

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Global => GLOBAL,
            Step::Databases => DATABASES,
            Step::Upgrade(s) => s.name(),
        }
    }
}

/// One step of a recovery with its live state.
#[derive(Debug, Clone, Serialize)]
pub struct RecoverCheck {
    pub step: &'static str,
    pub number: usize,
    pub title: &'static str,
    pub state: State,
    pub why: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checked: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// It writes, so it asks first (unless --yes).
    pub asks: bool,
}

impl RecoverCheck {
    fn journaled(&self) -> steprun::Checked<'_> {
        steprun::Checked {
            name: self.step,
            state: self.state,
            why: &self.why,
            checked: &self.checked,
            warnings: &self.warnings,
            changes: &self.changes,
        }
    }

    fn from_step(number: usize, c: StepCheck) -> Self {
        RecoverCheck {
            step: c.step.name(),
            number,
            title: c.title,
            state: c.state,
            why: c.why,
            checked: c.checked,
            changes: c.changes,
            warnings: c.warnings,
            asks: c.asks,
        }
    }
}

pub type RecoverConfirmer = Arc<dyn Fn(&RecoverCheck) -> Confirm + Send + Sync>;

pub struct RecoverOptions {
    /// Snapshot id, prefix or `latest`; default: the unfinished recovery's, else the upgrade
    /// run's, else the latest.
    pub snapshot: Option<String>,
    /// Check every step and show what it would change; write nothing.
    pub dry_run: bool,
    pub confirm: RecoverConfirmer,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecoverOutcome {
    pub run: String,
    pub snapshot: String,
    pub resumed: bool,
    pub dry_run: bool,
    /// Every step as checked (a dry run: what it would do).
    pub checks: Vec<RecoverCheck>,
    pub applied: Vec<(String, Vec<String>)>,
    pub already_done: Vec<String>,
    pub report: Option<Report>,
}

/// Recovers from the snapshot, resuming an unfinished recovery of it.
pub async fn recover(env: &Env, opts: &RecoverOptions) -> Result<RecoverOutcome> {
    let lock = RunLock::acquire(&env.repo, lock::RECOVER).await?;
    let result = recover_locked(env, opts).await;
    lock.release().await;
    result
}

async fn recover_locked(env: &Env, opts: &RecoverOptions) -> Result<RecoverOutcome> {
    let unfinished = match env.repo.runs_holding(JOURNAL_FILE).await?.pop() {
        Some(run) => {
            let j = Journal::load_from(&env.repo, &run, JOURNAL_FILE).await?;
            (!j.finished()).then_some(j)
        }
        None => None,
    };
    let wanted = match &opts.snapshot {
        Some(s) => Some(env.repo.resolve(s).await?),
        None => None,
    };
    let (mut journal, resumed) = match unfinished {
        Some(j) if wanted.is_none() || wanted.as_deref() == j.snapshot() => (j, true),
        _ => (Journal::start_in(&env.repo, JOURNAL_FILE), false),
    };
    let snapshot = match (wanted, journal.snapshot()) {
        (Some(id), _) => id,
        (None, Some(id)) => id.to_string(),
        (None, None) => default_snapshot(env).await?,
    };
    let mut out = RecoverOutcome {
        run: journal.run.clone(),
        snapshot: snapshot.clone(),
        resumed,
        dry_run: opts.dry_run,
        checks: Vec::new(),
        applied: Vec::new(),
        already_done: Vec::new(),
        report: None,
    };
    if opts.dry_run {
        // The journal is written only by a real recovery; a dry run of a new one checks
        // against a journal that only holds the snapshot, in memory.
        if !resumed {
            journal.entries.push(start_entry(&snapshot, resumed));
        }
        for (i, step) in STEPS.into_iter().enumerate() {
            out.checks.push(check(env, &journal, step, i + 1).await?);
        }
        return Ok(out);
    }
    let start = start_entry(&snapshot, resumed);
    journal
        .record_full(RUN, start.event, start.detail, Vec::new(), start.facts)
        .await?;
    match run_steps(env, opts, &mut journal, &mut out).await {
        Ok(()) => {
            let rep = build_report(env, &journal).await?;
            report::store(&env.repo, &journal.run, &rep).await?;
            journal
                .record(RUN, Event::Finished, Some("recovered".into()))
                .await?;
            out.report = Some(rep);
            Ok(out)
        }
        Err(e) => Err(steprun::stopped(&mut journal, e).await),
    }
}

fn start_entry(snapshot: &str, resumed: bool) -> super::journal::Entry {
    super::journal::Entry {
        time: chrono::Utc::now(),
        step: RUN.into(),
        event: if resumed {
            Event::Resumed
        } else {
            Event::Started
        },
        detail: Some(format!(
            "amlmigrate {} recover from snapshot {snapshot}",
            env!("CARGO_PKG_VERSION")
        )),
        changes: Vec::new(),
        facts: Facts {
            snapshot: Some(snapshot.to_string()),
            ..Default::default()
        },
        deadline: None,
    }
}

/// The upgrade run's snapshot, else the latest.
async fn default_snapshot(env: &Env) -> Result<String> {
    if let Some(j) = Journal::latest(&env.repo).await?
        && let Some(id) = j.snapshot()
        && env.repo.snapshot_ids().await?.iter().any(|x| x == id)
    {
        return Ok(id.to_string());
    }
    env.repo.resolve("latest").await
}

async fn run_steps(
    env: &Env,
    opts: &RecoverOptions,
    journal: &mut Journal,
    out: &mut RecoverOutcome,
) -> Result<()> {
    for (i, step) in STEPS.into_iter().enumerate() {
        if env.cancel.is_cancelled() {
            return Err(steprun::interrupted("recovery", step.name()));
        }
        let c = check(env, journal, step, i + 1).await?;
        out.checks.push(c.clone());
        match c.state {
            State::Done | State::Skipped => {
                steprun::record_settled(journal, &c.journaled()).await?;
                if c.state == State::Done {
                    out.already_done.push(step.name().into());
                }
            }
            State::Blocked | State::Manual => {
                steprun::record_blocked(journal, step.name(), &c.why).await?;
                return Err(Error::Refused(format!(
                    "recovery step {} cannot run: {}",
                    step.name(),
                    c.why
                )));
            }
            State::ToDo => apply(env, opts, journal, out, step, &c).await?,
        }
    }
    Ok(())
}

async fn apply(
    env: &Env,
    opts: &RecoverOptions,
    journal: &mut Journal,
    out: &mut RecoverOutcome,
    step: Step,
    c: &RecoverCheck,
) -> Result<()> {
    if c.asks
        && let Confirm::No(why) = (opts.confirm)(c)
    {
        return Err(steprun::declined(journal, "recovery step", step.name(), why).await?);
    }
    let seen = c.journaled();
    steprun::record_started(journal, &seen).await?;
    env.note(format!("recover step {} {}: {}", c.number, c.step, c.title));
    let applied = match step {
        Step::Global => steps::restore_apply(env, journal).await.map(|changes| {
            (
                changes,
                Facts {
                    checked: c.checked.clone(),
                    ..Default::default()
                },
            )
        }),
        Step::Databases => databases_apply(env, journal).await.map(|changes| {
            (
                changes,
                Facts {
                    checked: c.checked.clone(),
                    ..Default::default()
                },
            )
        }),
        Step::Upgrade(s) => steps::apply(env, journal, s).await.map(|a| {
            let mut facts = a.facts;
            steprun::fill_facts(&mut facts, &seen);
            (a.changes, facts)
        }),
    }
    .map(|(changes, facts)| (changes.iter().map(|x| x.to_string()).collect(), facts));
    let changes = steprun::record_applied(journal, step.name(), applied).await?;
    out.applied.push((step.name().into(), changes));
    Ok(())
}

async fn check(env: &Env, journal: &Journal, step: Step, number: usize) -> Result<RecoverCheck> {
    match step {
        Step::Global => {
            let mut c = steps::new_check(StepId::GlobalSettings);
            steps::restore_check(env, journal, &mut c).await?;
            Ok(RecoverCheck {
                step: GLOBAL,
                title: steps::RESTORE_TITLE,
                ..RecoverCheck::from_step(number, c)
            })
        }
        Step::Databases => databases_check(env, journal, number).await,
        Step::Upgrade(s) => Ok(RecoverCheck::from_step(
            number,
            steps::check(env, Some(journal), s).await?,
        )),
    }
}

/// The databases a recovery restores: every MySQL database of the snapshot but MLflow 2.6's,
/// which is migrated instead.
async fn databases_of_snapshot(env: &Env, id: &str) -> Result<Vec<MysqlDatabase>> {
    let m = env.repo.manifest(id).await?;
    let mlflow = if env.cfg.mlflow.migrate {
        env.cfg.mlflow_database().ok()
    } else {
        None
    };
    Ok(m.mysql
        .into_iter()
        .filter(|d| {
            !(crate::backup::source_of(d) == env.cfg.mlflow.source
                && mlflow.as_deref() == Some(d.name.as_str()))
        })
        .collect())
}

async fn databases_check(env: &Env, journal: &Journal, number: usize) -> Result<RecoverCheck> {
    let id = journal
        .snapshot()
        .ok_or_else(|| Error::other("the recovery's journal names no snapshot"))?
        .to_string();
    let mut c = RecoverCheck {
        step: DATABASES,
        number,
        title: DATABASES_TITLE,
        state: State::Done,
        why: String::new(),
        checked: Vec::new(),
        changes: Vec::new(),
        warnings: Vec::new(),
        asks: true,
    };
    let mut conflicts = Vec::new();
    for db in databases_of_snapshot(env, &id).await? {
        let source = crate::backup::source_of(&db).to_string();
        if !env.cfg.mysql.contains_key(&source) {
            conflicts.push(format!(
                "the snapshot's MySQL source {source} (database {}) is not in the configuration: add [mysql.{source}] with the server to restore it to",
                db.name
            ));
            continue;
        }
        let live = steps::mysql_table_counts(env, &source, &db.name).await?;
        let (mut missing, mut rows) = (0, 0);
        for t in &db.tables {
            match live.get(&t.name).copied() {
                Some(n) if n == t.rows => c.checked.push(format!(
                    "ok   {source}/{}.{}: {n} rows, as in the snapshot",
                    db.name, t.name
                )),
                None | Some(0) => {
                    missing += 1;
                    rows += t.rows;
                }
                Some(n) => conflicts.push(format!(
                    "{source}/{}.{} holds {n} rows, the snapshot {}: rows that are not the snapshot's are never overwritten; empty it, or restore it by hand with `amlmigrate restore {id} --source {source} --databases {} --replace`",
                    db.name, t.name, t.rows, db.name
                )),
            }
        }
        if missing > 0 {
            c.changes.push(Change::new(
                format!("MySQL {source}/{}", db.name),
                "",
                Some(format!(
                    "{missing} of {} table(s) empty or missing",
                    db.tables.len()
                )),
                Some(format!("restored from snapshot {id} ({rows} rows)")),
            ));
        }
    }
    if !conflicts.is_empty() {
        c.state = State::Blocked;
        c.why = conflicts.join("; ");
    } else if !c.changes.is_empty() {
        c.state = State::ToDo;
        c.why = format!(
            "{} database(s) to restore from snapshot {id}",
            c.changes.len()
        );
    } else {
        c.why = format!("every database of snapshot {id} holds its rows");
    }
    Ok(c)
}

async fn databases_apply(env: &Env, journal: &Journal) -> Result<Vec<Change>> {
    use crate::mysql::restore::{RestoreOptions, restore};
    let id = journal
        .snapshot()
        .ok_or_else(|| Error::other("the recovery's journal names no snapshot"))?
        .to_string();
    let mut changes = Vec::new();
    for db in databases_of_snapshot(env, &id).await? {
        let source = crate::backup::source_of(&db).to_string();
        let live = steps::mysql_table_counts(env, &source, &db.name).await?;
        if db
            .tables
            .iter()
            .all(|t| live.get(&t.name).copied() == Some(t.rows))
        {
            continue;
        }
        // The check allowed only tables that are empty or already the snapshot's (a table is
        // filled in one transaction, so a killed restore leaves it empty): replacing is safe
        // and makes the step idempotent.
        let rep = restore(
            &env.repo,
            &id,
            &RestoreOptions {
                mysql: env.cfg.mysql_url(&source)?,
                databases: Some(vec![db.name.clone()]),
                renames: Vec::new(),
                replace: true,
                dry_run: false,
                jobs: crate::mysql::restore::default_jobs(),
                trust_unsigned_code: false,
                definer: None,
            },
            env.progress.clone(),
            env.cancel.clone(),
        )
        .await?;
        for n in rep.notices {
            env.note(n);
        }
        let rows: u64 = rep.databases.iter().map(|d| d.rows).sum();
        changes.push(Change::new(
            format!("MySQL {source}/{}", db.name),
            "",
            None,
            Some(format!("restored from snapshot {id} ({rows} rows)")),
        ));
    }
    Ok(changes)
}

/// The upgrade's report of the steps a recovery ran, with its own first step.
async fn build_report(env: &Env, journal: &Journal) -> Result<Report> {
    let mut rep = report::build(env, journal).await?;
    rep.kind = report::ReportKind::Recovery;
    rep.steps.retain(|s| s.outcome != "not reached");
    // Its own steps first, in their order.
    for (step, title) in [(GLOBAL, steps::RESTORE_TITLE), (DATABASES, DATABASES_TITLE)]
        .into_iter()
        .rev()
    {
        let entries: Vec<_> = journal.entries.iter().filter(|e| e.step == step).collect();
        rep.steps.insert(0, report::step_of(step, title, &entries));
    }
    // In the order the recovery ran them (the upgrade's report has the upgrade's order).
    rep.steps
        .sort_by_key(|s| STEPS.iter().position(|x| x.name() == s.step));
    // A recovery restores every database of the snapshot, not only the job records: their
    // counts before (the snapshot) and after (live) go into the report too.
    if let Some(id) = journal.snapshot() {
        for db in databases_of_snapshot(env, id).await? {
            let source = crate::backup::source_of(&db).to_string();
            if source == super::config::AML_SOURCE {
                continue; // already counted by the upgrade's report
            }
            let live = steps::mysql_table_counts(env, &source, &db.name).await.ok();
            for t in &db.tables {
                rep.counts.push(report::Count::cell(
                    report::TABLES,
                    format!("{}.{}", db.name, t.name),
                    "rows",
                    Some(t.rows),
                    live.as_ref().and_then(|l| l.get(&t.name).copied()),
                ));
            }
        }
    }
    Ok(rep)
}
