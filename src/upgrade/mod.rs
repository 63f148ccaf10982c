//! The guided 1.3 → 1.4 upgrade: the knowledge-base article as one ordered, journaled,
//! resumable plan. Each step checks the live system (not only the journal) to say whether it is
//! done, shows what it would change, applies, and records the transition. Destructive steps ask
//! the caller for confirmation and never run before a verified snapshot exists.

pub mod config;
mod images;
pub mod journal;
mod lock;
pub mod profile;
pub mod report;
mod steps;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::kube::{Cluster, Role};
use crate::progress::{Event, ProgressRef};
use crate::repo::Repository;
pub use config::UpgradeConfig;
use journal::Journal;

/// The steps, in the article's order (profiles are restored before the features are switched
/// on, so the image-builder settings reach the restored user namespaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepId {
    Preflight,
    Images,
    Drain,
    Snapshot,
    ProtectPvcs,
    DeleteNotebooks,
    UninstallPlugins,
    WaitOperator,
    InstallPlugins,
    MigrateMlflow,
    RestoreProfiles,
    EnableFeatures,
    Verify,
}

pub const STEPS: [StepId; 13] = [
    StepId::Preflight,
    StepId::Images,
    StepId::Drain,
    StepId::Snapshot,
    StepId::ProtectPvcs,
    StepId::DeleteNotebooks,
    StepId::UninstallPlugins,
    StepId::WaitOperator,
    StepId::InstallPlugins,
    StepId::MigrateMlflow,
    // Before the features: the image-builder settings go into namespaces restored here.
    StepId::RestoreProfiles,
    StepId::EnableFeatures,
    StepId::Verify,
];

/// The step names, in order (for flags and help).
pub const STEP_NAMES: [&str; 13] = [
    "preflight",
    "images",
    "drain",
    "snapshot",
    "protect-pvcs",
    "delete-notebooks",
    "uninstall-plugins",
    "wait-operator",
    "install-plugins",
    "migrate-mlflow",
    "restore-profiles",
    "enable-features",
    "verify",
];

impl StepId {
    pub fn name(self) -> &'static str {
        match self {
            StepId::Preflight => "preflight",
            StepId::Images => "images",
            StepId::Drain => "drain",
            StepId::Snapshot => "snapshot",
            StepId::ProtectPvcs => "protect-pvcs",
            StepId::DeleteNotebooks => "delete-notebooks",
            StepId::UninstallPlugins => "uninstall-plugins",
            StepId::WaitOperator => "wait-operator",
            StepId::InstallPlugins => "install-plugins",
            StepId::MigrateMlflow => "migrate-mlflow",
            StepId::EnableFeatures => "enable-features",
            StepId::RestoreProfiles => "restore-profiles",
            StepId::Verify => "verify",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            StepId::Preflight => {
                "Preflight: architecture, Istio, databases, storage class, repository, dex, ServiceMesh"
            }
            StepId::Images => "Images of the experimental features are in the platform registry",
            StepId::Drain => "No training or Volcano job is running",
            StepId::Snapshot => {
                "Snapshot (MySQL, MLflow database, Kubernetes, PVC index) and verify it"
            }
            StepId::ProtectPvcs => "Protect user volumes (reclaim policy Retain)",
            StepId::DeleteNotebooks => {
                "Delete Notebooks and Tensorboards (their specs are in the snapshot)"
            }
            StepId::UninstallPlugins => "Uninstall the 1.3 plugins and the kubeflow chart",
            StepId::WaitOperator => "The AML operator is at 1.4 (upgrade it in OperatorHub)",
            StepId::InstallPlugins => "Install the 1.4 plugins",
            StepId::MigrateMlflow => "Migrate MLflow 2.6 (MySQL) to 3.1.1 (PostgreSQL)",
            StepId::EnableFeatures => "Re-enable the experimental features",
            StepId::RestoreProfiles => {
                "Restore Profiles, RoleBindings, AuthorizationPolicies (and notebooks)"
            }
            StepId::Verify => "Verify: job records, MLflow, PVCs, features, plugins",
        }
    }

    /// Destructive steps: confirmation first, and never before a verified snapshot.
    pub fn destructive(self) -> bool {
        matches!(
            self,
            StepId::DeleteNotebooks | StepId::UninstallPlugins | StepId::MigrateMlflow
        )
    }

    /// Steps that change something outside the repository and so ask first (unless --yes).
    pub fn asks(self) -> bool {
        self.destructive()
            || matches!(
                self,
                StepId::Preflight | StepId::Images | StepId::EnableFeatures
            )
    }

    pub fn parse(s: &str) -> Result<StepId> {
        STEPS
            .iter()
            .copied()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                Error::input(format!(
                    "unknown step {s:?}; the steps are: {}",
                    STEPS.map(|x| x.name()).join(", ")
                ))
            })
    }
}

/// One thing a step would change or changed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    pub object: String,
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

impl Change {
    pub fn new(
        object: impl Into<String>,
        field: impl Into<String>,
        old: Option<String>,
        new: Option<String>,
    ) -> Self {
        Change {
            object: object.into(),
            field: field.into(),
            old,
            new,
        }
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        if self.field.is_empty() {
            write!(
                f,
                "{}: {} → {}",
                self.object,
                show(&self.old),
                show(&self.new)
            )
        } else {
            write!(
                f,
                "{}: {}: {} → {}",
                self.object,
                self.field,
                show(&self.old),
                show(&self.new)
            )
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Done,
    ToDo,
    /// Cannot run until something outside the tool is fixed; `why` says what.
    Blocked,
    /// A person must act (instructions in `why`); the run waits for it.
    Manual,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepCheck {
    pub step: StepId,
    pub number: usize,
    pub title: &'static str,
    pub state: State,
    pub why: String,
    /// What it checked, one line each (`ok …` / `FAIL …`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checked: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    pub destructive: bool,
}

/// What the caller answers when a step asks before changing things.
pub enum Confirm {
    Yes,
    No(String),
}

pub type Confirmer = Arc<dyn Fn(&StepCheck) -> Confirm + Send + Sync>;

pub struct RunOptions {
    pub until: Option<StepId>,
    pub only: Option<StepId>,
    pub confirm: Confirmer,
}

/// Connections a plan or run works with.
pub struct Env {
    pub cfg: UpgradeConfig,
    pub repo: Repository,
    pub workload: Cluster,
    pub global: Cluster,
    pub progress: ProgressRef,
    pub cancel: CancellationToken,
}

impl Env {
    pub async fn connect(
        cfg: UpgradeConfig,
        progress: ProgressRef,
        cancel: CancellationToken,
    ) -> Result<Env> {
        let (repo, _) = Repository::open_or_create(&cfg.repository).await?;
        let access = cfg.kube_options();
        let workload = Cluster::connect(&access, Role::Workload).await?;
        let global = Cluster::connect(&access, Role::Global).await?;
        Ok(Env {
            cfg,
            repo,
            workload,
            global,
            progress,
            cancel,
        })
    }

    pub(crate) fn note(&self, s: impl Into<String>) {
        self.progress.event(Event::Notice(s.into()));
    }
}

/// Every step with its live state; changes nothing.
pub async fn plan(env: &Env) -> Result<Vec<StepCheck>> {
    let journal = Journal::latest(&env.repo).await?;
    let mut out = Vec::new();
    for (i, step) in STEPS.iter().enumerate() {
        // A check that cannot read what it needs (a database down) is shown, not fatal: the
        // plan is most useful exactly when something is wrong.
        out.push(
            match steps::check(env, journal.as_ref(), *step, i + 1).await {
                Ok(c) => c,
                Err(e) => StepCheck {
                    step: *step,
                    number: i + 1,
                    title: step.title(),
                    state: State::Blocked,
                    why: format!("cannot check: {e}"),
                    checked: Vec::new(),
                    changes: Vec::new(),
                    destructive: step.destructive(),
                },
            },
        );
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    pub run: String,
    pub resumed: bool,
    /// Steps this invocation applied, with what they changed.
    pub applied: Vec<(StepId, Vec<String>)>,
    /// Steps found done already (by their live check).
    pub already_done: Vec<StepId>,
    /// The final report, when the run reached its end.
    pub report: Option<report::Report>,
}

/// Runs the plan from where the live system stands, resuming the latest unfinished run. One
/// run per repository at a time.
pub async fn run(env: &Env, opts: &RunOptions) -> Result<RunOutcome> {
    let lock = lock::RunLock::acquire(&env.repo).await?;
    let result = run_locked(env, opts).await;
    lock.release().await;
    result
}

async fn run_locked(env: &Env, opts: &RunOptions) -> Result<RunOutcome> {
    let previous = Journal::latest(&env.repo).await?;
    let (mut journal, resumed) = Journal::open_or_start(&env.repo).await?;
    // A new run after a finished one inherits its snapshot: on a finished system every step
    // checks as done, and nothing needs a second snapshot.
    let inherited = match (&previous, resumed) {
        (Some(p), false) => match p.fact("snapshot") {
            Some(id) => facts(&[
                ("snapshot", id.clone()),
                ("previous_run", Value::String(p.run.clone())),
            ]),
            None => BTreeMap::new(),
        },
        _ => BTreeMap::new(),
    };
    journal
        .record_full(
            "run",
            if resumed { "resumed" } else { "started" },
            Some(format!("amlmigrate {}", env!("CARGO_PKG_VERSION"))),
            Vec::new(),
            inherited,
        )
        .await?;
    let mut outcome = RunOutcome {
        run: journal.run.clone(),
        resumed,
        applied: Vec::new(),
        already_done: Vec::new(),
        report: None,
    };
    let result = run_steps(env, opts, &mut journal, &mut outcome).await;
    match result {
        Ok(true) => {
            let rep = report::build(env, &journal).await?;
            report::store(&env.repo, &journal.run, &rep).await?;
            journal
                .record("run", "finished", Some("every step done".into()))
                .await?;
            outcome.report = Some(rep);
            Ok(outcome)
        }
        Ok(false) => {
            journal
                .record(
                    "run",
                    "stopped",
                    Some("stopped where asked (--until/--only)".into()),
                )
                .await?;
            Ok(outcome)
        }
        Err(e) => {
            let _ = journal.record("run", "stopped", Some(e.to_string())).await;
            Err(e)
        }
    }
}

/// `Ok(true)` when every step is done.
async fn run_steps(
    env: &Env,
    opts: &RunOptions,
    journal: &mut Journal,
    outcome: &mut RunOutcome,
) -> Result<bool> {
    for (i, step) in STEPS.iter().copied().enumerate() {
        if env.cancel.is_cancelled() {
            return Err(Error::Interrupted(format!(
                "the upgrade stopped before step {}; run the same command to resume",
                step.name()
            )));
        }
        if let Some(only) = opts.only
            && only != step
        {
            continue;
        }
        let check = steps::check(env, Some(journal), step, i + 1).await?;
        match check.state {
            State::Done => {
                if journal.last(step.name()).map(|e| e.event.as_str()) != Some("done") {
                    journal
                        .record_full(
                            step.name(),
                            "done",
                            Some(check.why.clone()),
                            Vec::new(),
                            checked_fact(&check),
                        )
                        .await?;
                }
                outcome.already_done.push(step);
            }
            State::Blocked => {
                journal
                    .record(step.name(), "blocked", Some(check.why.clone()))
                    .await?;
                let mut msg = format!("step {} is blocked: {}", step.name(), check.why);
                for c in check.checked.iter().filter(|c| c.starts_with("FAIL")) {
                    msg.push_str(&format!("\n  {c}"));
                }
                return Err(Error::Refused(msg));
            }
            State::ToDo | State::Manual => {
                if step.destructive() {
                    steps::require_snapshot(env, journal).await?;
                }
                if step.asks()
                    && check.state == State::ToDo
                    && let Confirm::No(why) = (opts.confirm)(&check)
                {
                    journal
                        .record(step.name(), "declined", Some(why.clone()))
                        .await?;
                    return Err(Error::Refused(format!(
                        "step {} was not confirmed: {why}",
                        step.name()
                    )));
                }
                journal
                    .record_full(
                        step.name(),
                        "started",
                        Some(check.why.clone()),
                        check.changes.iter().map(|c| c.to_string()).collect(),
                        BTreeMap::new(),
                    )
                    .await?;
                env.note(format!("step {} {}: {}", i + 1, step.name(), step.title()));
                match steps::apply(env, journal, step).await {
                    Ok((changes, mut facts)) => {
                        if !facts.contains_key("checked") {
                            facts.extend(checked_fact(&check));
                        }
                        journal
                            .record_full(
                                step.name(),
                                "done",
                                None,
                                changes.iter().map(|c| c.to_string()).collect(),
                                facts,
                            )
                            .await?;
                        outcome
                            .applied
                            .push((step, changes.iter().map(|c| c.to_string()).collect()));
                    }
                    Err(e) => {
                        journal
                            .record(step.name(), "failed", Some(e.to_string()))
                            .await?;
                        return Err(e);
                    }
                }
            }
        }
        if opts.until == Some(step) {
            return Ok(false);
        }
    }
    Ok(opts.only.is_none() || opts.only == Some(StepId::Verify))
}

/// Where the latest run stands.
#[derive(Debug, Clone, Serialize)]
pub struct RunStatus {
    pub run: String,
    pub finished: bool,
    pub steps: Vec<StepStatus>,
    pub last: Option<journal::Entry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepStatus {
    pub step: StepId,
    pub event: Option<String>,
    pub time: Option<chrono::DateTime<chrono::Utc>>,
    pub detail: Option<String>,
}

pub async fn status(repo: &Repository) -> Result<Option<RunStatus>> {
    let Some(j) = Journal::latest(repo).await? else {
        return Ok(None);
    };
    let steps = STEPS
        .iter()
        .map(|s| {
            let e = j.last(s.name());
            StepStatus {
                step: *s,
                event: e.map(|e| e.event.clone()),
                time: e.map(|e| e.time),
                detail: e.and_then(|e| e.detail.clone()),
            }
        })
        .collect();
    Ok(Some(RunStatus {
        run: j.run.clone(),
        finished: j.finished(),
        steps,
        last: j.entries.last().cloned(),
    }))
}

fn checked_fact(c: &StepCheck) -> BTreeMap<String, Value> {
    if c.checked.is_empty() {
        BTreeMap::new()
    } else {
        facts(&[("checked", serde_json::json!(c.checked))])
    }
}

pub(crate) fn facts(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_are_the_steps_in_order() {
        assert_eq!(STEPS.map(|s| s.name()), STEP_NAMES);
        for s in STEPS {
            assert_eq!(StepId::parse(s.name()).unwrap(), s);
        }
        assert!(
            StepId::parse("nope")
                .unwrap_err()
                .to_string()
                .contains("preflight")
        );
    }
}
