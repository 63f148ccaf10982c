//! The steps of the article, one module each with its `check` and `apply` side by side, and the
//! one table that says each step's name, order, whether it asks and whether it destroys.
//!
//! `check` reads the live system (and the journal for facts such as the snapshot id) and never
//! writes; `apply` does the step, idempotently, so a step that was interrupted half way is
//! simply applied again.

mod block_remove;
mod dex;
mod drain;
mod features;
mod form;
mod global;
mod images;
mod install;
mod installation;
mod mesh;
mod mlflow;
mod mlflow_server;
mod notebooks;
mod operator;
mod plugins;
mod preflight;
mod profiles;
mod protect_pvcs;
mod retag;
mod snapshot;
mod uninstall;
mod values;
mod verify;

use serde::Serialize;
use serde_json::Value;

use super::journal::{Event, Facts, Journal};
use super::wait::{self, Patience, Poll};
use super::{Change, Env, State, StepCheck};
use crate::error::{Error, Result};
use crate::kube::{Cluster, Resource, name_of, namespace_of};

pub(in crate::upgrade) use form::Form;
pub(in crate::upgrade) use global::{RESTORE_TITLE, restore_apply, restore_check};
pub(super) use snapshot::snapshot_of;
pub(in crate::upgrade) use values::set_path;
pub(super) use verify::{CHECKLIST, mysql_table_counts};

/// The steps, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepId {
    Preflight,
    Images,
    Drain,
    Snapshot,
    ProtectPvcs,
    DeleteNotebooks,
    WaitOperator,
    RetagLlmTrainer,
    UninstallPlugins,
    GlobalSettings,
    InstallPlugins,
    MigrateMlflow,
    RestoreProfiles,
    EnableFeatures,
    Verify,
}

/// One row of the table.
pub struct StepDef {
    pub id: StepId,
    pub name: &'static str,
    pub title: &'static str,
    /// Writes something outside the repository, so it asks first (unless --yes).
    pub asks: bool,
    /// Deletes or overwrites what cannot be recreated without the snapshot: confirmation
    /// first, and never before a verified snapshot.
    pub destroys: bool,
    /// Where and why it deliberately differs from the article (shown in the plan).
    pub differs: Option<&'static str>,
}

const fn def(
    id: StepId,
    name: &'static str,
    title: &'static str,
    (asks, destroys): (bool, bool),
    differs: Option<&'static str>,
) -> StepDef {
    StepDef {
        id,
        name,
        title,
        asks,
        destroys,
        differs,
    }
}

const READS: (bool, bool) = (false, false);
const WRITES: (bool, bool) = (true, false);
const DESTROYS: (bool, bool) = (true, true);

const N: usize = 15;

/// Every step, in the article's order: back up, (optionally) delete notebooks, wait for the
/// jobs, the operator upgrade (a person), delete the 1.3 installation, install the 1.4 plugins,
/// MLflow, the features and MySQL, Profiles, the checks.
pub const TABLE: [StepDef; N] = [
    def(
        StepId::Preflight,
        "preflight",
        "Preflight: architecture, Istio, databases, storage class, repository, dex, ServiceMesh (reads only)",
        READS,
        None,
    ),
    def(
        StepId::Images,
        "images",
        "The article's images are pushed to the platform registry",
        READS,
        Some(
            "the article pushes the images while installing the 1.4 plugins; they are checked here, before anything is deleted, so a person has everything ready first",
        ),
    ),
    def(
        StepId::Drain,
        "drain",
        "No training or Volcano job is running",
        READS,
        Some(
            "the article backs up first and then waits for the jobs; the snapshot waits for them here, so it holds their final records",
        ),
    ),
    def(
        StepId::Snapshot,
        "snapshot",
        "Snapshot (each MySQL source, Kubernetes, PVC index), verified, and the 1.3 installation recorded",
        READS,
        None,
    ),
    def(
        StepId::ProtectPvcs,
        "protect-pvcs",
        "Protect user volumes (reclaim policy Retain)",
        WRITES,
        None,
    ),
    def(
        StepId::DeleteNotebooks,
        "delete-notebooks",
        "Delete Notebooks and Tensorboards (optional; their specs are in the snapshot)",
        DESTROYS,
        None,
    ),
    def(
        StepId::WaitOperator,
        "wait-operator",
        "The AML operator is upgraded to 1.4 (a person, in OperatorHub)",
        READS,
        None,
    ),
    def(
        StepId::RetagLlmTrainer,
        "retag-llm-trainer",
        "Tag the pushed llm-trainer image as the 1.4 aml-image-builder-config references it",
        WRITES,
        None,
    ),
    def(
        StepId::UninstallPlugins,
        "uninstall-plugins",
        "Delete the recorded 1.3 installation: plugins (MLFlow → Training Operator → Pipelines → Base), the kubeflow chart application",
        DESTROYS,
        None,
    ),
    def(
        StepId::GlobalSettings,
        "global-settings",
        "Global cluster: the ServiceMesh's IstioOperator overlay (dex's CA, the oauth2-proxy-kubeflow provider as a patch entry of its own) and dex's redirect URI",
        WRITES,
        Some(
            "the article adds dex's redirect URI after installing the plugins; both global settings are added here, before them, in one step after the snapshot that holds both objects",
        ),
    ),
    def(
        StepId::InstallPlugins,
        "install-plugins",
        "Install the 1.4 plugins kfbase → kfp → volcano → kftraining → mlflow",
        WRITES,
        Some(
            "the article reinstalls volcano; a volcano plugin that is installed is upgraded in place here (one ModuleInfo per plugin, as the platform's own upgrade does)",
        ),
    ),
    def(
        StepId::MigrateMlflow,
        "migrate-mlflow",
        "Migrate MLflow 2.6 (MySQL) to 3.1.1 (PostgreSQL)",
        DESTROYS,
        Some(
            "the article suggests mlflow-export-import, which gives runs new ids and loses their times; the rows move here, ids, times and every metric point kept",
        ),
    ),
    def(
        StepId::RestoreProfiles,
        "restore-profiles",
        "Restore Profiles, RoleBindings, AuthorizationPolicies (and notebooks)",
        WRITES,
        Some(
            "the article checks the features first and creates Profiles after; they come back first here, so the image-builder settings reach the namespaces the uninstall took away",
        ),
    ),
    def(
        StepId::EnableFeatures,
        "enable-features",
        "Check and set the experimental features and MySQL settings (AmlCluster, Aml, Secrets, image builder), restart aml-api-deploy",
        WRITES,
        None,
    ),
    def(
        StepId::Verify,
        "verify",
        "Checks: job records, MLflow through its Service, aml-api-deploy, plugins, llm-trainer image, PVCs",
        READS,
        None,
    ),
];

/// The steps, in order.
pub const STEPS: [StepId; N] = {
    let mut out = [StepId::Preflight; N];
    let mut i = 0;
    while i < N {
        out[i] = TABLE[i].id;
        i += 1;
    }
    out
};

/// The step names, in order (for flags and help).
pub const STEP_NAMES: [&str; N] = {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = TABLE[i].name;
        i += 1;
    }
    out
};

impl StepId {
    fn def(self) -> &'static StepDef {
        &TABLE[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.def().name
    }

    pub fn title(self) -> &'static str {
        self.def().title
    }

    pub fn destructive(self) -> bool {
        self.def().destroys
    }

    pub fn asks(self) -> bool {
        self.def().asks
    }

    /// Its place in the run, from 1.
    pub fn number(self) -> usize {
        self as usize + 1
    }

    pub fn parse(s: &str) -> Result<StepId> {
        STEPS
            .iter()
            .copied()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                Error::input(format!(
                    "unknown step {s:?}; the steps are: {}",
                    STEP_NAMES.join(", ")
                ))
            })
    }
}

/// What an apply changed, and the facts it learned.
#[derive(Default)]
pub(super) struct Applied {
    pub changes: Vec<Change>,
    pub facts: Facts,
}

impl Applied {
    fn changes(changes: Vec<Change>) -> Self {
        Applied {
            changes,
            facts: Facts::default(),
        }
    }
}

pub(in crate::upgrade) fn new_check(step: StepId) -> StepCheck {
    StepCheck {
        step,
        number: step.number(),
        title: step.title(),
        state: State::Done,
        why: String::new(),
        checked: Vec::new(),
        changes: Vec::new(),
        assumptions: Vec::new(),
        warnings: Vec::new(),
        differs: step.def().differs,
        asks: step.asks(),
        destructive: step.destructive(),
    }
}

/// The live state of a step; changes nothing.
pub(super) async fn check(env: &Env, journal: Option<&Journal>, step: StepId) -> Result<StepCheck> {
    let mut c = new_check(step);
    match step {
        StepId::Preflight => preflight::check(env, &mut c).await?,
        StepId::Images => images::check(env, &mut c).await?,
        StepId::Drain => drain::check(env, &mut c).await?,
        StepId::Snapshot => snapshot::check(env, journal, &mut c).await?,
        StepId::ProtectPvcs => protect_pvcs::check(env, &mut c).await?,
        StepId::DeleteNotebooks => notebooks::check(env, journal, &mut c).await?,
        StepId::WaitOperator => operator::check(env, &mut c).await?,
        StepId::RetagLlmTrainer => retag::check(env, &mut c).await?,
        StepId::UninstallPlugins => uninstall::check(env, journal, &mut c).await?,
        StepId::GlobalSettings => global::check(env, &mut c).await?,
        StepId::InstallPlugins => install::check(env, &mut c).await?,
        StepId::MigrateMlflow => mlflow::check(env, journal, &mut c).await?,
        StepId::RestoreProfiles => profiles::check(env, journal, &mut c).await?,
        StepId::EnableFeatures => features::check(env, &mut c).await?,
        StepId::Verify => verify::check(env, journal, &mut c).await?,
    }
    // The first uninstall opens the window: the plan says whether its data path was rehearsed.
    if step == StepId::UninstallPlugins
        && c.state != State::Done
        && let Some(id) = snapshot_of(env, journal).await?
    {
        match super::rehearse::note_for(&env.repo, &id).await? {
            Ok(line) => c.checked.push(line),
            Err(w) => c.warnings.push(w),
        }
    }
    Ok(c)
}

/// Does the step.
pub(super) async fn apply(env: &Env, journal: &mut Journal, step: StepId) -> Result<Applied> {
    match step {
        StepId::Preflight => preflight::apply(env).await,
        StepId::Images => images::apply(env, journal).await,
        StepId::Drain => drain::apply(env).await,
        StepId::Snapshot => snapshot::apply(env).await,
        StepId::ProtectPvcs => protect_pvcs::apply(env).await,
        StepId::DeleteNotebooks => notebooks::apply(env).await,
        StepId::WaitOperator => operator::apply(env, journal).await,
        StepId::RetagLlmTrainer => retag::apply(env).await,
        StepId::UninstallPlugins => uninstall::apply(env, journal).await,
        StepId::GlobalSettings => global::apply(env, journal).await,
        StepId::InstallPlugins => install::apply(env, journal).await,
        StepId::MigrateMlflow => mlflow::apply(env, journal).await,
        StepId::RestoreProfiles => profiles::apply(env, journal).await,
        StepId::EnableFeatures => features::apply(env).await,
        StepId::Verify => verify::apply(env, journal).await,
    }
}

/// Is version `a` newer than `b` (`v1.10.1` > `v1.9.2`)?
pub(in crate::upgrade) fn newer(a: &str, b: &str) -> bool {
    a != b && mesh::version_at_least(a, b)
}

/// A step the configuration leaves out.
fn skip(c: &mut StepCheck, why: impl Into<String>) {
    c.state = State::Skipped;
    c.why = why.into();
}

/// Destructive steps need a verified snapshot of this run first.
pub(super) async fn require_snapshot(env: &Env, journal: &Journal) -> Result<String> {
    snapshot_of(env, Some(journal)).await?.ok_or_else(|| {
        Error::Refused(
            "no verified snapshot in this run yet: nothing destructive runs before step snapshot has succeeded"
                .into(),
        )
    })
}

fn describe(o: &Value) -> String {
    crate::kube::objects::describe(o)
}

/// A step only a person can do: tells what to do once (and journals it), then polls `missing`
/// (`Some(what is still missing)`) until it is `None` or the timeout passes.
async fn wait_for_person(
    env: &Env,
    journal: &mut Journal,
    step: StepId,
    instruction: &str,
    patience: Patience,
    mut missing: impl AsyncFnMut() -> Result<Option<String>>,
) -> Result<()> {
    let mut told = false;
    wait::until(
        &env.cancel,
        patience,
        async || match missing().await? {
            None => Ok(Poll::Ready(())),
            Some(what) => {
                if !told {
                    env.note(format!(
                        "ACTION NEEDED: {instruction}. Waiting for: {what} (timeout {})",
                        humantime::format_duration(patience.timeout)
                    ));
                    journal
                        .record_wait(
                            step.name(),
                            Event::Waiting,
                            format!("{instruction}: {what}"),
                            patience.timeout,
                        )
                        .await?;
                    told = true;
                }
                Ok(Poll::Pending(what))
            }
        },
        |what| {
            Error::Other(format!(
                "still waiting after {} for: {what}; {instruction}, then run the same command",
                humantime::format_duration(patience.timeout)
            ))
        },
    )
    .await
}

/// Records in the journal that `step` now waits for the system (`what`, until `timeout`), for
/// `upgrade status`.
async fn record_polling(
    journal: &mut Journal,
    step: StepId,
    what: &str,
    timeout: std::time::Duration,
) -> Result<()> {
    journal
        .record_wait(step.name(), Event::Polling, what.to_string(), timeout)
        .await
}

/// Deletes a workload-cluster object and waits until it is gone (finalizers done).
async fn delete_and_wait(env: &Env, o: &Value) -> Result<Change> {
    let r = env
        .workload
        .resolve_object(o)
        .ok_or_else(|| Error::other(format!("{} is no longer served", describe(o))))?;
    let (ns, name) = (namespace_of(o), name_of(o));
    env.workload.delete(&r, ns, name).await?;
    wait_gone(env, &env.workload, &r, ns, name).await?;
    Ok(Change::new(
        describe(o),
        "",
        Some("exists".into()),
        Some("deleted".into()),
    ))
}

async fn wait_gone(
    env: &Env,
    c: &Cluster,
    r: &Resource,
    ns: Option<&str>,
    name: &str,
) -> Result<()> {
    let timeout = env.cfg.uninstall.timeout;
    let every = std::time::Duration::from_millis(250)
        .min(timeout / 4 + std::time::Duration::from_millis(50));
    wait::until(
        &env.cancel,
        Patience::new(timeout, every),
        async || {
            Ok(match c.get(r, ns, name).await? {
                None => Poll::Ready(()),
                Some(o) => Poll::Pending(o["metadata"]["finalizers"].to_string()),
            })
        },
        |fin| {
            Error::Other(format!(
                "{} {} is still there {} after it was deleted (finalizers {fin}); \
                 check what holds it, then run the same command",
                r.ar.kind,
                name,
                humantime::format_duration(timeout)
            ))
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_step_order_and_names_parse_back() {
        for (i, d) in TABLE.iter().enumerate() {
            assert_eq!(d.id as usize, i, "{}", d.name);
            assert_eq!(StepId::parse(d.name).unwrap(), d.id);
            assert_eq!(d.id.number(), i + 1);
        }
        // Destroying implies asking.
        assert!(TABLE.iter().all(|d| !d.destroys || d.asks));
        assert!(
            StepId::parse("nope")
                .unwrap_err()
                .to_string()
                .contains("preflight")
        );
    }
}
