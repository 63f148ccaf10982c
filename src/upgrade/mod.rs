//! The guided 1.3 → 1.4 upgrade: the knowledge-base article as one ordered, journaled,
//! resumable plan. Each step checks the live system (not only the journal) to say whether it is
//! done, shows what it would change (secrets as `(hidden)`) and what it assumed, applies, and
//! records the transition. Steps that write ask the caller first; destructive steps never run
//! before a verified snapshot exists.

pub mod config;
pub mod init;
pub mod journal;
mod lock;
mod platform;
pub mod profile;
pub mod recover;
mod registry;
pub mod rehearse;
pub mod report;
mod steprun;
mod steps;
mod wait;

use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::kube::{Cluster, Role};
use crate::progress::{self, ProgressRef};
use crate::repo::Repository;
pub use config::UpgradeConfig;
use journal::{Event, Facts, Journal, RUN};
pub use steps::{STEP_NAMES, STEPS, StepDef, StepId, TABLE};

/// One thing a step would change or changed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    pub object: String,
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// How a secret value is shown, everywhere.
pub const HIDDEN: &str = "(hidden)";

impl Change {
    /// A change of a secret value: neither side is shown.
    pub fn hidden(object: impl Into<String>, field: impl Into<String>, had: bool) -> Self {
        Change::new(
            object,
            field,
            had.then(|| HIDDEN.into()),
            Some(HIDDEN.into()),
        )
    }

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

/// How a check line names an object of the snapshot that a restore refuses; a dry run that
/// finds one fails, as the real run would.
pub const REFUSED: &str = "FAIL refused:";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Done,
    ToDo,
    /// Cannot run until something outside the tool is fixed; `why` says what.
    Blocked,
    /// A person must act (instructions in `why`); the run waits for it.
    Manual,
    /// Not done, on purpose: the configuration leaves it out (`why` says which setting).
    Skipped,
}

impl State {
    pub fn word(self) -> &'static str {
        match self {
            State::Done => "done",
            State::ToDo => "to do",
            State::Blocked => "BLOCKED",
            State::Manual => "manual",
            State::Skipped => "skipped",
        }
    }
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
    /// What the step takes as given where the article names nothing (found by kind and
    /// labels, a default, an inferred value).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assumptions: Vec<String>,
    /// Something missing that does not stop this step, but a person should know.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Where and why this step deliberately differs from the article.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differs: Option<&'static str>,
    pub asks: bool,
    pub destructive: bool,
}

impl StepCheck {
    fn journaled(&self) -> steprun::Checked<'_> {
        steprun::Checked {
            name: self.step.name(),
            state: self.state,
            why: &self.why,
            checked: &self.checked,
            warnings: &self.warnings,
            changes: &self.changes,
        }
    }

    /// The `FAIL …` lines of what it checked.
    pub fn failures(&self) -> impl Iterator<Item = &String> {
        self.checked.iter().filter(|l| l.starts_with("FAIL"))
    }
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
        // Planning changes nothing, and a run's snapshot goes only into a repository made on
        // purpose (`repo init`): a mistyped `repository` is refused, not created.
        let mut repo = Repository::open(&cfg.repository).await?;
        // An encrypted repository: the snapshot's recipients write, the restore identity reads.
        repo.unlock(&cfg.snapshot.encrypt_to, cfg.restore.identity.as_deref())?;
        let repo = cfg.snapshot.signing(repo)?;
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
        let s = s.into();
        tracing::info!("upgrade: {s}");
        self.progress.event(progress::Event::Notice(s));
    }
}

/// Every step with its live state; changes nothing.
pub async fn plan(env: &Env) -> Result<Vec<StepCheck>> {
    let journal = Journal::latest(&env.repo).await?;
    let mut out = Vec::new();
    for step in STEPS {
        // A check that cannot read what it needs (a database down) is shown, not fatal: the
        // plan is most useful exactly when something is wrong.
        out.push(match steps::check(env, journal.as_ref(), step).await {
            Ok(c) => c,
            Err(e) => {
                let mut c = steps::new_check(step);
                c.state = State::Blocked;
                c.why = format!("cannot check: {e}");
                c
            }
        });
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
    /// Steps the configuration leaves out.
    pub skipped: Vec<StepId>,
    /// The final report, when the run reached its end.
    pub report: Option<report::Report>,
}

/// Runs the plan from where the live system stands, resuming the latest unfinished run. One
/// run per repository at a time.
pub async fn run(env: &Env, opts: &RunOptions) -> Result<RunOutcome> {
    let lock = lock::RunLock::acquire(&env.repo, lock::UPGRADE).await?;
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
        (Some(p), false) => match p.fact(|f| f.snapshot.clone()) {
            Some(id) => Facts {
                snapshot: Some(id),
                previous_run: Some(p.run.clone()),
                installation: p.fact(|f| f.installation.clone()),
                ..Default::default()
            },
            None => Facts::default(),
        },
        _ => Facts::default(),
    };
    journal
        .record_full(
            RUN,
            if resumed {
                Event::Resumed
            } else {
                Event::Started
            },
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
        skipped: Vec::new(),
        report: None,
    };
    let result = run_steps(env, opts, &mut journal, &mut outcome).await;
    match result {
        Ok(true) => {
            let rep = report::build(env, &journal).await?;
            report::store(&env.repo, &journal.run, &rep).await?;
            journal
                .record(RUN, Event::Finished, Some("every step done".into()))
                .await?;
            outcome.report = Some(rep);
            Ok(outcome)
        }
        Ok(false) => {
            journal
                .record(
                    RUN,
                    Event::Stopped,
                    Some("stopped where asked (--until/--only)".into()),
                )
                .await?;
            Ok(outcome)
        }
        Err(e) => Err(steprun::stopped(&mut journal, e).await),
    }
}

/// `Ok(true)` when every step is done.
async fn run_steps(
    env: &Env,
    opts: &RunOptions,
    journal: &mut Journal,
    outcome: &mut RunOutcome,
) -> Result<bool> {
    // The cluster decides which plugins are recorded and deleted: the platform's name for the
    // context's cluster, or nothing runs.
    if let Err(why) =
        platform::verify(&env.workload, &env.global, &env.cfg.kubernetes.cluster_name).await?
    {
        return Err(Error::Refused(why));
    }
    let mut warned = false;
    for step in STEPS {
        if env.cancel.is_cancelled() {
            return Err(steprun::interrupted("upgrade", step.name()));
        }
        if let Some(only) = opts.only
            && only != step
        {
            continue;
        }
        let check = steps::check(env, Some(journal), step).await?;
        match check.state {
            State::Done | State::Skipped => {
                steprun::record_settled(journal, &check.journaled()).await?;
                if check.state == State::Done {
                    outcome.already_done.push(step);
                } else {
                    outcome.skipped.push(step);
                }
            }
            State::Blocked => {
                steprun::record_blocked(journal, step.name(), &check.why).await?;
                let mut msg = format!("step {} is blocked: {}", step.name(), check.why);
                for c in check.failures() {
                    msg.push_str(&format!("\n  {c}"));
                }
                return Err(Error::Refused(msg));
            }
            State::ToDo | State::Manual => {
                if step.destructive() && !warned {
                    warned = true;
                    warn_unrehearsed(env, journal).await;
                }
                apply_step(env, opts, journal, outcome, &check).await?
            }
        }
        if opts.until == Some(step) {
            return Ok(false);
        }
    }
    Ok(opts.only.is_none() || opts.only == Some(StepId::Verify))
}

/// Before the first destructive step: a warning when the snapshot it relies on was never
/// rehearsed (or its rehearsal failed). Only a warning: the rehearsal is advice, not a gate.
async fn warn_unrehearsed(env: &Env, journal: &Journal) {
    if let Ok(Some(id)) = steps::snapshot_of(env, Some(journal)).await
        && let Ok(Err(w)) = rehearse::note_for(&env.repo, &id).await
    {
        env.note(format!("WARNING: {w}"));
    }
}

/// Asks when the step asks, journals `started`, applies, journals `done` or `failed`.
async fn apply_step(
    env: &Env,
    opts: &RunOptions,
    journal: &mut Journal,
    outcome: &mut RunOutcome,
    check: &StepCheck,
) -> Result<()> {
    let step = check.step;
    if step.destructive() {
        steps::require_snapshot(env, journal).await?;
    }
    if step.asks()
        && let Confirm::No(why) = (opts.confirm)(check)
    {
        return Err(steprun::declined(journal, "step", step.name(), why).await?);
    }
    let seen = check.journaled();
    steprun::record_started(journal, &seen).await?;
    env.note(format!(
        "step {} {}: {}",
        step.number(),
        step.name(),
        step.title()
    ));
    let applied = match steps::apply(env, journal, step).await {
        Ok(mut applied) => {
            steprun::fill_facts(&mut applied.facts, &seen);
            let changes: Vec<String> = applied.changes.iter().map(|c| c.to_string()).collect();
            tracing::info!(
                step = step.name(),
                changes = changes.len(),
                "upgrade: step {} done",
                step.name()
            );
            for c in &changes {
                tracing::debug!(
                    step = step.name(),
                    "upgrade: step {} changed {c}",
                    step.name()
                );
            }
            Ok((changes, applied.facts))
        }
        Err(e) => {
            tracing::info!(
                step = step.name(),
                "upgrade: step {} failed: {e}",
                step.name()
            );
            Err(e)
        }
    };
    let changes = steprun::record_applied(journal, step.name(), applied).await?;
    outcome.applied.push((step, changes));
    Ok(())
}

/// Where the latest run stands.
#[derive(Debug, Clone, Serialize)]
pub struct RunStatus {
    pub run: String,
    pub finished: bool,
    pub steps: Vec<StepStatus>,
    pub last: Option<journal::Entry>,
    /// The step the run is in (or was in when its process ended without a word: kill -9).
    pub current: Option<Current>,
}

/// The step a run is in, and what it waits for.
#[derive(Debug, Clone, Serialize)]
pub struct Current {
    pub step: String,
    pub since: chrono::DateTime<chrono::Utc>,
    pub waiting: Option<Waiting>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Waiting {
    pub what: String,
    /// A person must act (else the run polls the system).
    pub person: bool,
    pub since: chrono::DateTime<chrono::Utc>,
    pub deadline: Option<chrono::DateTime<chrono::Utc>>,
}

/// The step the journal's last entry leaves running, with the wait it started last.
fn current(j: &Journal) -> Option<Current> {
    let last = j.entries.last()?;
    if last.step == journal::RUN
        || !matches!(last.event, Event::Started | Event::Waiting | Event::Polling)
    {
        return None;
    }
    let mine = j.entries.iter().rev().take_while(|e| e.step == last.step);
    let mut since = last.time;
    let mut waiting = None;
    for e in mine {
        match e.event {
            Event::Started => {
                since = e.time;
                break;
            }
            Event::Waiting | Event::Polling if waiting.is_none() => {
                waiting = Some(Waiting {
                    what: e.detail.clone().unwrap_or_default(),
                    person: e.event == Event::Waiting,
                    since: e.time,
                    deadline: e.deadline,
                })
            }
            _ => {}
        }
    }
    Some(Current {
        step: last.step.clone(),
        since,
        waiting,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct StepStatus {
    pub step: StepId,
    pub event: Option<Event>,
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
                event: e.map(|e| e.event),
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
        current: current(&j),
    }))
}
