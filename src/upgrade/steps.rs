//! The steps of the article. `check` reads the live system (and the journal for facts such as
//! the snapshot id) and never writes; `apply` does the step, idempotently, so a step that was
//! interrupted half way is simply applied again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use serde_json::{Value, json};
use sha2::Digest;

use super::journal::Journal;
use super::{Change, Env, State, StepCheck, StepId, facts};
use crate::error::{Error, Result};
use crate::kube::{Cluster, Resource, group_of, name_of, namespace_of, str_at};

const PLUGIN_GROUP: &str = "cluster.alauda.io";
const REPLICAS_ANNOTATION: &str = "amlmigrate.alauda.io/original-replicas";
const FEATURES_ANNOTATION: &str = "amlmigrate.alauda.io/features";
const TRAINING_KINDS: [&str; 5] = ["PyTorchJob", "TFJob", "MPIJob", "XGBoostJob", "PaddleJob"];

type Applied = (Vec<Change>, BTreeMap<String, Value>);

fn step_check(step: StepId, number: usize, state: State, why: impl Into<String>) -> StepCheck {
    StepCheck {
        step,
        number,
        title: step.title(),
        state,
        why: why.into(),
        checked: Vec::new(),
        changes: Vec::new(),
        destructive: step.destructive(),
    }
}

pub(super) async fn check(
    env: &Env,
    journal: Option<&Journal>,
    step: StepId,
    number: usize,
) -> Result<StepCheck> {
    let mut c = step_check(step, number, State::Done, "");
    match step {
        StepId::Preflight => preflight(env, &mut c).await?,
        StepId::Images => images(env, &mut c).await?,
        StepId::Drain => {
            let running = running_jobs(env).await?;
            if running.is_empty() {
                c.why = "no training, Volcano or fine-tune job is running".into();
            } else {
                c.state = State::ToDo;
                c.why = format!(
                    "{} job(s) running: {}; the run waits for them (timeout {})",
                    running.len(),
                    running.join(", "),
                    humantime::format_duration(env.cfg.drain.timeout)
                );
            }
        }
        StepId::Snapshot => match snapshot_of(env, journal).await? {
            Some(id) => c.why = format!("snapshot {id} taken and verified"),
            None => {
                c.state = State::ToDo;
                c.why = format!(
                    "no verified snapshot of this run yet; databases {} and the Kubernetes objects go to {}",
                    env.cfg.mysql.databases.join(", "),
                    env.cfg.repository
                );
            }
        },
        StepId::ProtectPvcs => {
            let ns = crate::kube::pvc::user_namespaces(&env.workload, &[]).await?;
            let changes = crate::kube::pvc::protect(&env.workload, &ns, true).await?;
            for v in changes.iter().filter(|v| v.action != "unchanged") {
                c.changes.push(Change::new(
                    format!("PersistentVolume {} ({})", v.volume, v.claim),
                    "spec.persistentVolumeReclaimPolicy",
                    v.from.clone(),
                    v.to.clone(),
                ));
            }
            let kept = changes.len() - c.changes.len();
            if c.changes.is_empty() {
                c.why = format!("{kept} volume(s) of user PVCs already Retain");
            } else {
                c.state = State::ToDo;
                c.why = format!("{} volume(s) to set to Retain", c.changes.len());
            }
        }
        StepId::DeleteNotebooks => {
            if !env.cfg.notebooks.delete {
                c.why = "not asked (notebooks.delete = false)".into();
            } else if snapshot_of(env, journal).await?.is_some()
                && old_plugins(env).await?.0.is_empty()
            {
                // Past the uninstall, Notebooks that exist are 1.4's (recreated or new).
                c.why = "the 1.3 plugins are gone; Notebooks now belong to 1.4".into();
            } else {
                for o in notebooks(env).await? {
                    c.changes.push(Change::new(
                        describe(&o),
                        "",
                        Some("exists".into()),
                        Some("deleted".into()),
                    ));
                }
                if c.changes.is_empty() {
                    c.why = "no Notebook or Tensorboard left".into();
                } else {
                    c.state = State::ToDo;
                    c.why = format!("{} Notebook(s)/Tensorboard(s) to delete", c.changes.len());
                }
            }
        }
        StepId::UninstallPlugins => {
            let (old, chart) = old_plugins(env).await?;
            for (module, o) in &old {
                c.changes.push(Change::new(
                    format!("ModuleInfo {} (plugin {module})", name_of(o)),
                    "",
                    str_at(o, "spec.version").map(|v| format!("installed {v}")),
                    Some("deleted".into()),
                ));
            }
            if let Some(ch) = &chart {
                c.changes.push(Change::new(
                    describe(ch),
                    "",
                    Some("exists".into()),
                    Some("deleted".into()),
                ));
            }
            if c.changes.is_empty() {
                c.why = "no 1.3 plugin and no kubeflow chart application left".into();
            } else {
                c.state = State::ToDo;
                c.why = format!(
                    "in order {}: delete and wait until gone",
                    env.cfg.uninstall.plugins.join(" → ")
                );
            }
        }
        StepId::WaitOperator => {
            let (ok, what) = operator_at_target(env).await?;
            if ok {
                c.why = what;
            } else {
                c.state = State::Manual;
                c.why = format!(
                    "{what}. Upgrade the Alauda AI operator to 1.4: Marketplace → OperatorHub → \
                     Alauda AI → Upgrade; the run waits until {} {} {} starts with {}",
                    env.cfg.operator.kind,
                    env.cfg.operator.name,
                    env.cfg.operator.field,
                    env.cfg.operator.version_prefix
                );
            }
        }
        StepId::InstallPlugins => {
            let mi = env.global.need("ModuleInfo", PLUGIN_GROUP)?;
            let mut pending = Vec::new();
            for p in &env.cfg.install.plugins {
                match find_plugin(env, &mi, &p.module, Some(&p.version))
                    .await?
                    .first()
                {
                    Some(o) if str_at(o, "status.phase") == Some("Running") => {
                        c.checked
                            .push(format!("ok   {} {} Running", p.module, p.version));
                    }
                    Some(o) => {
                        pending.push(p.module.clone());
                        c.changes.push(Change::new(
                            format!("ModuleInfo {} (plugin {})", name_of(o), p.module),
                            "status.phase",
                            str_at(o, "status.phase").map(str::to_string),
                            Some("Running".into()),
                        ));
                    }
                    None => {
                        pending.push(p.module.clone());
                        let kept = if env.cfg.uninstall.plugins.contains(&p.module) {
                            Vec::new()
                        } else {
                            find_plugin(env, &mi, &p.module, None).await?
                        };
                        c.changes.push(match kept.first() {
                            Some(o) => Change::new(
                                format!(
                                    "ModuleInfo {} (plugin {}, upgraded in place)",
                                    name_of(o),
                                    p.module
                                ),
                                "spec.version",
                                str_at(o, "spec.version").map(str::to_string),
                                Some(p.version.clone()),
                            ),
                            None => Change::new(
                                format!("ModuleInfo (plugin {})", p.module),
                                "spec.version",
                                None,
                                Some(p.version.clone()),
                            ),
                        });
                    }
                }
            }
            let mut unpublished = Vec::new();
            if let Some(mc) = env.global.resolve("ModuleConfig", Some(PLUGIN_GROUP)) {
                for p in &env.cfg.install.plugins {
                    let name = format!("{}-{}", p.module, p.version);
                    if env.global.get(&mc, None, &name).await?.is_none() {
                        unpublished.push(name);
                    }
                }
            }
            if pending.is_empty() {
                c.why = "every 1.4 plugin is Running".into();
            } else if !unpublished.is_empty() {
                c.state = State::Manual;
                c.why = format!(
                    "plugin package(s) not pushed yet (no ModuleConfig {}): push them with violet push; the run waits for them, then installs {}",
                    unpublished.join(", "),
                    pending.join(" → ")
                );
            } else {
                c.state = State::ToDo;
                c.why = format!("to install or wait for: {}", pending.join(" → "));
            }
        }
        StepId::MigrateMlflow => {
            if !env.cfg.mlflow.migrate {
                c.why = "not asked (mlflow.migrate = false)".into();
            } else {
                let target = pg_counts(env).await?;
                match snapshot_of(env, journal).await? {
                    None => {
                        c.state = State::ToDo;
                        c.why =
                            "waits for the snapshot (the MLflow 2.6 database is copied from it)"
                                .into();
                    }
                    Some(id) => {
                        let source = mlflow_counts_in_snapshot(env, &id).await?;
                        if target.as_ref() == Some(&source) {
                            c.why = format!(
                                "PostgreSQL holds the snapshot's {} experiments, {} runs, {} metric points",
                                source[0], source[1], source[2]
                            );
                        } else {
                            c.state = State::ToDo;
                            c.why = format!(
                                "copy {} experiments, {} runs, {} metric points from snapshot {id} to {}",
                                source[0],
                                source[1],
                                source[2],
                                env.cfg.pg_url()?.redacted()
                            );
                        }
                    }
                }
            }
        }
        StepId::EnableFeatures => {
            c.changes = features(env, false).await?;
            if c.changes.is_empty() {
                c.why = "experimental features on, MySQL settings and image-builder keys in place"
                    .into();
            } else {
                c.state = State::ToDo;
                c.why = format!("{} change(s)", c.changes.len());
            }
        }
        StepId::RestoreProfiles => match snapshot_of(env, journal).await? {
            None => {
                c.state = State::ToDo;
                c.why = "waits for the snapshot".into();
            }
            Some(id) => {
                let rep = restore(env, &id, true).await?;
                for o in rep.objects.iter().filter(|o| o.action == "would create") {
                    c.changes.push(created_from_snapshot(o));
                }
                if c.changes.is_empty() {
                    c.why = format!(
                        "every {} of snapshot {id} exists",
                        restore_kinds(env).join("/")
                    );
                } else {
                    c.state = State::ToDo;
                    c.why = format!(
                        "{} object(s) to restore from snapshot {id}",
                        c.changes.len()
                    );
                }
            }
        },
        StepId::Verify => match snapshot_of(env, journal).await? {
            None => {
                c.state = State::ToDo;
                c.why = "waits for the snapshot".into();
            }
            Some(id) => {
                c.checked = verify_lines(env, &id).await?;
                let fails = c.checked.iter().filter(|l| l.starts_with("FAIL")).count();
                if fails == 0 {
                    c.why = format!("{} check(s) passed", c.checked.len());
                } else {
                    c.state = State::ToDo;
                    c.why = format!("{fails} of {} check(s) fail", c.checked.len());
                }
            }
        },
    }
    Ok(c)
}

pub(super) async fn apply(env: &Env, journal: &mut Journal, step: StepId) -> Result<Applied> {
    match step {
        StepId::Preflight => {
            let mut c = step_check(step, 0, State::Done, "");
            preflight(env, &mut c).await?;
            fix_preflight(env).await?;
            Ok((c.changes, BTreeMap::new()))
        }
        StepId::Images => {
            let cfg = &env.cfg.images;
            wait_for_person(
                env,
                journal,
                step,
                &format!("push the missing images to {}", cfg.registry),
                (cfg.timeout, cfg.poll),
                async || {
                    let st = super::images::image_state(env).await?;
                    Ok((!st.missing.is_empty()).then(|| st.missing.join(", ")))
                },
            )
            .await?;
            let copied = super::images::copy_missing_images(env).await?;
            Ok((copied, BTreeMap::new()))
        }
        StepId::Drain => {
            let cfg = &env.cfg.drain;
            let started = Instant::now();
            loop {
                let running = running_jobs(env).await?;
                if running.is_empty() {
                    return Ok((Vec::new(), BTreeMap::new()));
                }
                if started.elapsed() > cfg.timeout {
                    return Err(Error::Other(format!(
                        "{} job(s) still running after {}: {}; wait for them or stop them, then run the same command",
                        running.len(),
                        humantime::format_duration(cfg.timeout),
                        running.join(", ")
                    )));
                }
                env.note(format!(
                    "waiting: {} job(s) running: {}",
                    running.len(),
                    running.join(", ")
                ));
                sleep(env, cfg.poll).await?;
            }
        }
        StepId::Snapshot => {
            let id = take_snapshot(env).await?;
            Ok((
                vec![Change::new("snapshot", "", None, Some(id.clone()))],
                facts(&[("snapshot", json!(id))]),
            ))
        }
        StepId::ProtectPvcs => {
            let ns = crate::kube::pvc::user_namespaces(&env.workload, &[]).await?;
            let changes = crate::kube::pvc::protect(&env.workload, &ns, false).await?;
            Ok((
                changes
                    .into_iter()
                    .filter(|v| v.action == "changed")
                    .map(|v| {
                        Change::new(
                            format!("PersistentVolume {} ({})", v.volume, v.claim),
                            "spec.persistentVolumeReclaimPolicy",
                            v.from,
                            v.to,
                        )
                    })
                    .collect(),
                BTreeMap::new(),
            ))
        }
        StepId::DeleteNotebooks => {
            let mut out = Vec::new();
            for o in notebooks(env).await? {
                out.push(delete_and_wait(env, &o).await?);
            }
            Ok((out, BTreeMap::new()))
        }
        StepId::UninstallPlugins => {
            let mi = env.global.need("ModuleInfo", PLUGIN_GROUP)?;
            let mut out = Vec::new();
            for module in &env.cfg.uninstall.plugins {
                let new_version = new_version(env, module);
                for o in find_plugin(env, &mi, module, None).await? {
                    if new_version.is_some() && str_at(&o, "spec.version") == new_version {
                        continue;
                    }
                    env.note(format!(
                        "uninstalling plugin {module} (ModuleInfo {})",
                        name_of(&o)
                    ));
                    env.global.delete(&mi, None, name_of(&o)).await?;
                    wait_gone(
                        env,
                        &env.global,
                        &mi,
                        None,
                        name_of(&o),
                        env.cfg.uninstall.timeout,
                    )
                    .await?;
                    out.push(Change::new(
                        format!("ModuleInfo {} (plugin {module})", name_of(&o)),
                        "",
                        str_at(&o, "spec.version").map(|v| format!("installed {v}")),
                        Some("deleted".into()),
                    ));
                }
            }
            let (_, chart) = old_plugins(env).await?;
            if let Some(ch) = chart {
                out.push(delete_and_wait(env, &ch).await?);
            }
            Ok((out, BTreeMap::new()))
        }
        StepId::WaitOperator => {
            let op = &env.cfg.operator;
            wait_for_person(
                env,
                journal,
                step,
                &format!(
                    "upgrade the Alauda AI operator to 1.4 (Marketplace → OperatorHub → Alauda AI → Upgrade) until {} {} {} starts with {}",
                    op.kind, op.name, op.field, op.version_prefix
                ),
                (op.timeout, op.poll),
                async || {
                    let (ok, what) = operator_at_target(env).await?;
                    Ok((!ok).then_some(what))
                },
            )
            .await?;
            let (_, what) = operator_at_target(env).await?;
            Ok((
                vec![Change::new(
                    format!("{} {}", op.kind, op.name),
                    op.field.clone(),
                    None,
                    Some(what),
                )],
                BTreeMap::new(),
            ))
        }
        StepId::InstallPlugins => install_plugins(env, journal).await,
        StepId::MigrateMlflow => migrate_mlflow(env, journal).await,
        StepId::EnableFeatures => Ok((features(env, true).await?, BTreeMap::new())),
        StepId::RestoreProfiles => {
            let id = snapshot_of(env, Some(journal)).await?.ok_or_else(|| {
                Error::Refused("no verified snapshot in this run; run step snapshot first".into())
            })?;
            let rep = restore(env, &id, false).await?;
            let failed = rep.failed();
            if !failed.is_empty() {
                return Err(Error::Other(format!(
                    "{} object(s) could not be restored: {}",
                    failed.len(),
                    failed
                        .iter()
                        .map(|o| format!(
                            "{} {}: {}",
                            o.kind,
                            o.name,
                            o.error.clone().unwrap_or_default()
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                )));
            }
            Ok((
                rep.objects
                    .iter()
                    .filter(|o| o.action == "created")
                    .map(created_from_snapshot)
                    .collect(),
                BTreeMap::new(),
            ))
        }
        StepId::Verify => {
            let id = snapshot_of(env, Some(journal)).await?.ok_or_else(|| {
                Error::Refused("no verified snapshot in this run; run step snapshot first".into())
            })?;
            let lines = verify_lines(env, &id).await?;
            let fails: Vec<&String> = lines.iter().filter(|l| l.starts_with("FAIL")).collect();
            if !fails.is_empty() {
                return Err(Error::Other(format!(
                    "verification failed:\n  {}",
                    fails
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join("\n  ")
                )));
            }
            Ok((Vec::new(), facts(&[("checked", json!(lines))])))
        }
    }
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

async fn sleep(env: &Env, d: Duration) -> Result<()> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = env.cancel.cancelled() => Err(Error::Interrupted("the upgrade was stopped while waiting; run the same command to resume".into())),
    }
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
    (timeout, poll): (Duration, Duration),
    mut missing: impl AsyncFnMut() -> Result<Option<String>>,
) -> Result<()> {
    let started = Instant::now();
    let mut told = false;
    while let Some(what) = missing().await? {
        if !told {
            env.note(format!(
                "ACTION NEEDED: {instruction}. Waiting for: {what} (timeout {})",
                humantime::format_duration(timeout)
            ));
            journal
                .record(
                    step.name(),
                    "waiting",
                    Some(format!("{instruction}: {what}")),
                )
                .await?;
            told = true;
        }
        if started.elapsed() > timeout {
            return Err(Error::Other(format!(
                "still waiting after {} for: {what}; {instruction}, then run the same command",
                humantime::format_duration(timeout)
            )));
        }
        sleep(env, poll).await?;
    }
    Ok(())
}

/// Deletes a workload-cluster object and waits until it is gone (finalizers done).
async fn delete_and_wait(env: &Env, o: &Value) -> Result<Change> {
    let r = env
        .workload
        .resolve_object(o)
        .ok_or_else(|| Error::other(format!("{} is no longer served", describe(o))))?;
    let (ns, name) = (namespace_of(o), name_of(o));
    env.workload.delete(&r, ns, name).await?;
    wait_gone(env, &env.workload, &r, ns, name, env.cfg.uninstall.timeout).await?;
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
    timeout: Duration,
) -> Result<()> {
    let started = Instant::now();
    loop {
        match c.get(r, ns, name).await? {
            None => return Ok(()),
            Some(o) => {
                if started.elapsed() > timeout {
                    let fin = o["metadata"]["finalizers"].to_string();
                    return Err(Error::Other(format!(
                        "{} {} is still there {} after it was deleted (finalizers {fin}); \
                         check what holds it, then run the same command",
                        r.ar.kind,
                        name,
                        humantime::format_duration(timeout)
                    )));
                }
            }
        }
        sleep(
            env,
            Duration::from_millis(250).min(timeout / 4 + Duration::from_millis(50)),
        )
        .await?;
    }
}

// ------------------------------------------------------------------ preflight

struct Fixes {
    dex: Option<(Value, String)>,
    /// The merge patch and, per IstioOperator overlay path, what it adds.
    mesh: Option<(Value, Vec<(String, String)>)>,
}

async fn preflight(env: &Env, c: &mut StepCheck) -> Result<()> {
    let cfg = &env.cfg;
    let p = &cfg.preflight;
    let ok = |c: &mut StepCheck, s: String| c.checked.push(format!("ok   {s}"));
    // Nodes.
    let nodes = env.workload.need("Node", "")?;
    let mut bad = Vec::new();
    let list = env.workload.list(&nodes, None, None, None).await?;
    for n in &list {
        let arch = str_at(n, "status.nodeInfo.architecture")
            .or_else(|| {
                n.pointer("/metadata/labels/kubernetes.io~1arch")
                    .and_then(Value::as_str)
            })
            .unwrap_or("unknown");
        if arch != p.architecture {
            bad.push(format!("{} is {arch}", name_of(n)));
        }
    }
    if bad.is_empty() {
        ok(c, format!("{} node(s), all {}", list.len(), p.architecture));
    } else {
        c.checked.push(format!(
            "FAIL nodes: {}; some AML plugins run only on {} (x86_64): remove or cordon those nodes",
            bad.join(", "),
            p.architecture
        ));
    }
    // Istio.
    match istio_version(env).await? {
        Some((v, from)) if version_at_least(&v, &p.istio_min_version) => {
            ok(c, format!("Istio {v} >= {} ({from})", p.istio_min_version))
        }
        Some((v, from)) => c.checked.push(format!(
            "FAIL Istio {v} ({from}) is older than {}: upgrade the service mesh first",
            p.istio_min_version
        )),
        None => c.checked.push(format!(
            "FAIL no Istio found (ServiceMesh {}/{} or Deployment {}/{}): deploy Istio >= {} (non-CNI), e.g. with Alauda Service Mesh",
            p.servicemesh_namespace, p.servicemesh_name, p.istiod_namespace, p.istiod_deployment, p.istio_min_version
        )),
    }
    // Databases.
    let my = cfg.mysql_url()?;
    match mysql_version(&my).await {
        Ok(v) => ok(
            c,
            format!("AML MySQL {} reachable, version {v}", my.redacted()),
        ),
        Err(e) => c.checked.push(format!("FAIL AML MySQL: {e}")),
    }
    let pg = cfg.pg_url()?;
    match pg.connect().await {
        Ok(client) => {
            let v: String = client
                .query_one("SHOW server_version", &[])
                .await
                .map(|r| r.get(0))
                .unwrap_or_default();
            ok(
                c,
                format!("MLflow PostgreSQL {} reachable, version {v}", pg.redacted()),
            );
        }
        Err(e) => c.checked.push(format!("FAIL MLflow PostgreSQL: {e}")),
    }
    if let Some(kfp) = &cfg.mysql.kfp_url {
        let url = crate::mysql::MysqlUrl::parse(kfp)?;
        match mysql_version(&url).await {
            Ok(v) if v.starts_with("5.7") => ok(c, format!("Kubeflow Pipelines MySQL {} is {v}", url.redacted())),
            Ok(v) => c.checked.push(format!(
                "FAIL Kubeflow Pipelines MySQL {} is {v}; Kubeflow Pipelines needs MySQL 5.7: use a 5.7 (PXC) instance or the built-in one",
                url.redacted()
            )),
            Err(e) => c.checked.push(format!("FAIL Kubeflow Pipelines MySQL: {e}")),
        }
    }
    // Storage class.
    if !p.storage_class.is_empty() {
        let found = match env.workload.resolve("StorageClass", Some("storage.k8s.io")) {
            Some(r) => env
                .workload
                .get(&r, None, &p.storage_class)
                .await?
                .is_some(),
            None => false,
        };
        if found {
            ok(c, format!("storage class {} exists", p.storage_class));
        } else {
            c.checked.push(format!(
                "FAIL storage class {} does not exist: create it or set preflight.storage_class (and features.*_storage_class) to one that does",
                p.storage_class
            ));
        }
    }
    // Repository.
    match env
        .repo
        .put_run_file(".probe", "writable", b"ok".to_vec())
        .await
    {
        Ok(()) => ok(c, format!("repository {} writable", env.repo.location())),
        Err(e) => c.checked.push(format!("FAIL repository: {e}")),
    }
    // dex and ServiceMesh (global cluster): missing entries are offered as fixes.
    let fixes = preflight_fixes(env).await?;
    if let Some((_, uri)) = &fixes.dex {
        c.changes.push(Change::new(
            format!("ConfigMap {}/{} (global)", p.dex_namespace, p.dex_configmap),
            "config.yaml staticClients[alauda-auth].redirectURIs",
            None,
            Some(format!("+ {uri}")),
        ));
    } else if !p.dex_redirect_uri.is_empty() {
        ok(
            c,
            format!("dex lists the redirect URI {}", p.dex_redirect_uri),
        );
    }
    if let Some((_, added)) = &fixes.mesh {
        for (path, what) in added {
            c.changes.push(Change::new(
                format!(
                    "ServiceMesh {}/{} (global)",
                    p.servicemesh_namespace, p.servicemesh_name
                ),
                format!("spec.overlays[IstioOperator] {path}"),
                None,
                Some(what.clone()),
            ));
        }
    } else if !p.servicemesh_name.is_empty() {
        ok(
            c,
            format!(
                "ServiceMesh carries the {} extension provider",
                p.extension_provider
            ),
        );
    }
    let fails = c.checked.iter().filter(|l| l.starts_with("FAIL")).count();
    if fails > 0 {
        c.state = State::Blocked;
        c.why = format!("{fails} preflight check(s) fail; fix each as its line says");
    } else if !c.changes.is_empty() {
        c.state = State::ToDo;
        c.why = format!(
            "{} setting(s) of the global cluster to add",
            c.changes.len()
        );
    } else {
        c.why = format!("{} check(s) passed", c.checked.len());
    }
    Ok(())
}

async fn preflight_fixes(env: &Env) -> Result<Fixes> {
    let p = &env.cfg.preflight;
    let mut fixes = Fixes {
        dex: None,
        mesh: None,
    };
    if !p.dex_redirect_uri.is_empty() {
        let cm = env.global.need("ConfigMap", "")?;
        let Some(obj) = env
            .global
            .get(&cm, Some(&p.dex_namespace), &p.dex_configmap)
            .await?
        else {
            return Err(Error::input(format!(
                "ConfigMap {}/{} not found in the global cluster: check --global-context (kubernetes.global_context)",
                p.dex_namespace, p.dex_configmap
            )));
        };
        let text = obj["data"]["config.yaml"].as_str().unwrap_or_default();
        if !text.contains(&p.dex_redirect_uri) {
            let mut conf: Value = serde_saphyr::from_str(text).map_err(|e| {
                Error::other(format!(
                    "dex config.yaml in {}/{} is not YAML: {e}",
                    p.dex_namespace, p.dex_configmap
                ))
            })?;
            let clients = conf["staticClients"].as_array_mut().ok_or_else(|| {
                Error::other("dex config.yaml has no staticClients: add the redirect URI by hand")
            })?;
            let idx = clients
                .iter()
                .position(|c| c["id"] == "alauda-auth")
                .unwrap_or(0);
            let uris = clients
                .get_mut(idx)
                .and_then(|c| c.get_mut("redirectURIs"))
                .and_then(Value::as_array_mut)
                .ok_or_else(|| {
                    Error::other("dex staticClients have no redirectURIs: add the URI by hand")
                })?;
            uris.push(json!(p.dex_redirect_uri));
            let new_text = serde_saphyr::to_string(&conf)
                .map_err(|e| Error::other(format!("cannot write the dex configuration: {e}")))?;
            fixes.dex = Some((
                json!({"data": {"config.yaml": new_text}}),
                p.dex_redirect_uri.clone(),
            ));
        }
    }
    if !p.servicemesh_name.is_empty()
        && let Some(r) = env.global.resolve("ServiceMesh", Some("asm.alauda.io"))
        && let Some(mesh) = env
            .global
            .get(&r, Some(&p.servicemesh_namespace), &p.servicemesh_name)
            .await?
    {
        let mut overlays = mesh["spec"]["overlays"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let idx = match overlays.iter().position(|o| o["kind"] == "IstioOperator") {
            Some(i) => i,
            None => {
                overlays.push(json!({"kind": "IstioOperator", "patches": []}));
                overlays.len() - 1
            }
        };
        if !overlays[idx]["patches"].is_array() {
            overlays[idx]["patches"] = json!([]);
        }
        let patches = overlays[idx]["patches"]
            .as_array_mut()
            .expect("patches is a list");
        let mut added = Vec::new();
        // Istio must trust dex's certificate to fetch its JWKS; the article leaves a root CA
        // that is already set alone.
        let has_path = |ps: &[Value], path: &str| ps.iter().any(|pt| pt["path"] == path);
        if !has_path(patches, "spec.values.pilot.jwksResolverExtraRootCA")
            && let Some(secret) = env
                .global
                .get(
                    &env.global.need("Secret", "")?,
                    Some(&p.dex_namespace),
                    "dex.tls",
                )
                .await?
            && let Some(crt) = secret["data"]["tls.crt"].as_str()
        {
            use base64::Engine;
            let pem = base64::engine::general_purpose::STANDARD
                .decode(crt)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    Error::other(format!(
                        "Secret {}/dex.tls holds no PEM certificate in tls.crt",
                        p.dex_namespace
                    ))
                })?;
            patches
                .push(json!({"path": "spec.values.pilot.jwksResolverExtraRootCA", "value": pem}));
            added.push((
                "spec.values.pilot.jwksResolverExtraRootCA".to_string(),
                format!("the CA of Secret {}/dex.tls", p.dex_namespace),
            ));
            if !has_path(
                patches,
                "spec.values.pilot.env.PILOT_JWT_PUB_KEY_REFRESH_INTERVAL",
            ) {
                patches.push(json!({"path": "spec.values.pilot.env.PILOT_JWT_PUB_KEY_REFRESH_INTERVAL", "value": "1m"}));
                added.push((
                    "spec.values.pilot.env.PILOT_JWT_PUB_KEY_REFRESH_INTERVAL".to_string(),
                    "1m".to_string(),
                ));
            }
        }
        let names = |v: &Value| -> Vec<String> {
            match v {
                Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x["name"].as_str().map(String::from))
                    .collect(),
                one => one["name"].as_str().map(String::from).into_iter().collect(),
            }
        };
        let providers = patches
            .iter()
            .find(|pt| pt["path"] == "spec.meshConfig.extensionProviders")
            .map(|pt| names(&pt["value"]))
            .unwrap_or_default();
        if !providers.contains(&p.extension_provider) {
            let provider = json!({
                "name": p.extension_provider,
                "envoyExtAuthzHttp": {
                    "headersToDownstreamOnDeny": ["content-type", "set-cookie"],
                    "headersToUpstreamOnAllow": ["authorization", "path", "x-auth-request-user", "x-auth-request-email", "x-auth-request-access-token"],
                    "includeAdditionalHeadersInCheck": {"X-Auth-Request-Redirect": "http://%REQ(Host)%%REQ(:PATH)%"},
                    "includeRequestHeadersInCheck": ["authorization", "cookie", "accept"],
                    "port": "80",
                    "service": p.oauth2_proxy_service,
                }
            });
            match patches
                .iter_mut()
                .find(|pt| pt["path"] == "spec.meshConfig.extensionProviders")
            {
                Some(pt) => {
                    // Providers already there stay; a single provider becomes a list of two.
                    let mut list = match pt["value"].take() {
                        Value::Array(a) => a,
                        Value::Null => vec![],
                        one => vec![one],
                    };
                    list.push(provider);
                    pt["value"] = Value::Array(list);
                }
                None => patches.push(
                    json!({"path": "spec.meshConfig.extensionProviders", "value": [provider]}),
                ),
            }
            added.push((
                "spec.meshConfig.extensionProviders".to_string(),
                format!("+ {} (existing providers kept)", p.extension_provider),
            ));
        }
        if !added.is_empty() {
            fixes.mesh = Some((json!({"spec": {"overlays": overlays}}), added));
        }
    }
    Ok(fixes)
}

async fn fix_preflight(env: &Env) -> Result<()> {
    let p = &env.cfg.preflight;
    let fixes = preflight_fixes(env).await?;
    if let Some((patch, _)) = fixes.dex {
        let cm = env.global.need("ConfigMap", "")?;
        env.global
            .merge_patch(&cm, Some(&p.dex_namespace), &p.dex_configmap, &patch, false)
            .await?;
    }
    if let Some((patch, _)) = fixes.mesh {
        let r = env.global.need("ServiceMesh", "asm.alauda.io")?;
        env.global
            .merge_patch(
                &r,
                Some(&p.servicemesh_namespace),
                &p.servicemesh_name,
                &patch,
                false,
            )
            .await?;
    }
    Ok(())
}

async fn istio_version(env: &Env) -> Result<Option<(String, String)>> {
    let p = &env.cfg.preflight;
    if !p.servicemesh_name.is_empty()
        && let Some(r) = env.global.resolve("ServiceMesh", Some("asm.alauda.io"))
        && let Some(m) = env
            .global
            .get(&r, Some(&p.servicemesh_namespace), &p.servicemesh_name)
            .await?
        && let Some(v) = str_at(&m, "spec.istioVersion")
    {
        return Ok(Some((
            v.to_string(),
            format!("ServiceMesh {}", p.servicemesh_name),
        )));
    }
    if let Some(r) = env.workload.resolve("Deployment", Some("apps"))
        && let Some(d) = env
            .workload
            .get(&r, Some(&p.istiod_namespace), &p.istiod_deployment)
            .await?
        && let Some(img) = d
            .pointer("/spec/template/spec/containers/0/image")
            .and_then(Value::as_str)
        && let Some((_, tag)) = img.rsplit_once(':')
    {
        return Ok(Some((
            tag.to_string(),
            format!("Deployment {}/{}", p.istiod_namespace, p.istiod_deployment),
        )));
    }
    Ok(None)
}

/// `1.22.4+2024…` >= `1.22`: numeric comparison of the leading dotted numbers.
pub(crate) fn version_at_least(have: &str, want: &str) -> bool {
    let nums = |s: &str| -> Vec<u64> {
        s.trim_start_matches('v')
            .split(|c: char| !c.is_ascii_digit() && c != '.')
            .next()
            .unwrap_or("")
            .split('.')
            .filter_map(|x| x.parse().ok())
            .collect()
    };
    let (h, w) = (nums(have), nums(want));
    for i in 0..w.len().max(h.len()) {
        let (a, b) = (
            h.get(i).copied().unwrap_or(0),
            w.get(i).copied().unwrap_or(0),
        );
        if a != b {
            return a > b;
        }
    }
    true
}

async fn mysql_version(url: &crate::mysql::MysqlUrl) -> Result<String> {
    let mut conn = crate::mysql::connect(url).await?;
    let v: Option<String> =
        conn.query_first("SELECT VERSION()")
            .await
            .map_err(|e| Error::Mysql {
                context: "reading the server version".into(),
                source: e,
            })?;
    let _ = conn.disconnect().await;
    Ok(v.unwrap_or_default())
}

// ------------------------------------------------------------------ images

async fn images(env: &Env, c: &mut StepCheck) -> Result<()> {
    if env.cfg.images.registry.is_empty() {
        c.why = "no registry configured (images.registry); not checked".into();
        return Ok(());
    }
    let st = super::images::image_state(env).await?;
    c.checked = st.checked;
    c.changes = st.copies;
    if !st.missing.is_empty() {
        c.state = State::Manual;
        c.why = format!(
            "not in {}: {}; push them (nerdctl load/tag/push, as the article says); the run waits until they are there",
            env.cfg.images.registry,
            st.missing.join(", ")
        );
    } else if !c.changes.is_empty() {
        c.state = State::ToDo;
        c.why = "tag the pushed llm-trainer image with the tag aml-image-builder-config references"
            .into();
    } else {
        c.why = format!("{} image(s) present", c.checked.len());
    }
    Ok(())
}

// ------------------------------------------------------------------ drain

async fn running_jobs(env: &Env) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if let Some(r) = env.workload.resolve("Job", Some("batch.volcano.sh")) {
        for j in env.workload.list(&r, None, None, None).await? {
            let phase = str_at(&j, "status.state.phase").unwrap_or("Pending");
            if !matches!(phase, "Completed" | "Failed" | "Terminated" | "Aborted") {
                out.push(format!(
                    "vcjob {}/{} ({phase})",
                    namespace_of(&j).unwrap_or(""),
                    name_of(&j)
                ));
            }
        }
    }
    for kind in TRAINING_KINDS {
        let Some(r) = env.workload.resolve(kind, Some("kubeflow.org")) else {
            continue;
        };
        for j in env.workload.list(&r, None, None, None).await? {
            let finished = j["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    matches!(c["type"].as_str(), Some("Succeeded" | "Failed"))
                        && c["status"] == "True"
                })
            });
            if !finished {
                out.push(format!(
                    "{kind} {}/{}",
                    namespace_of(&j).unwrap_or(""),
                    name_of(&j)
                ));
            }
        }
    }
    if let Some(sql) = &env.cfg.drain.running_sql {
        let url = env.cfg.mysql_url()?;
        let mut conn = crate::mysql::connect(&url).await?;
        let n: Option<i64> = conn
            .query_first(sql.as_str())
            .await
            .map_err(|e| Error::Mysql {
                context: format!("running drain.running_sql ({sql})"),
                source: e,
            })?;
        let _ = conn.disconnect().await;
        if let Some(n) = n.filter(|n| *n > 0) {
            out.push(format!(
                "{n} fine-tune record(s) running (drain.running_sql)"
            ));
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------ snapshot

/// The snapshot of this run, when its manifest exists (it is committed only after a
/// successful backup; the step records it only after verify passed).
pub(super) async fn snapshot_of(env: &Env, journal: Option<&Journal>) -> Result<Option<String>> {
    let Some(id) = journal
        .and_then(|j| j.fact("snapshot"))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    if env.repo.snapshot_ids().await?.iter().any(|s| s == id) {
        Ok(Some(id.to_string()))
    } else {
        Ok(None)
    }
}

async fn take_snapshot(env: &Env) -> Result<String> {
    use crate::backup::{BackupOptions, backup};
    use crate::kube::backup::KubeBackupOptions;
    use crate::mysql::backup::MysqlBackupOptions;
    let cfg = &env.cfg;
    let mut mysql = MysqlBackupOptions::new(cfg.mysql_url()?);
    mysql.databases = Some(cfg.mysql.databases.clone());
    let recipients = if cfg.snapshot.encrypt_to.is_empty() {
        None
    } else {
        Some(crate::kube::secrets::Recipients::parse(
            &cfg.snapshot.encrypt_to,
        )?)
    };
    let opts = BackupOptions {
        mysql: Some(mysql),
        kube: Some(KubeBackupOptions {
            access: cfg.kube_options(),
            catalog: Default::default(),
            namespaces: Vec::new(),
            recipients,
        }),
        mlflow_artifacts: cfg.snapshot.mlflow_artifacts.clone().map(Into::into),
        tags: [("reason".to_string(), "pre-upgrade 1.3 to 1.4".to_string())].into(),
        zstd_level: 3,
    };
    let m = backup(&env.repo, &opts, env.progress.clone(), env.cancel.clone()).await?;
    crate::verify::verify(&env.repo, &m.id, env.progress.clone()).await?;
    Ok(m.id)
}

// ------------------------------------------------------------------ notebooks

async fn notebooks(env: &Env) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (kind, group) in [
        ("Notebook", "kubeflow.org"),
        ("Tensorboard", "tensorboard.kubeflow.org"),
    ] {
        if let Some(r) = env.workload.resolve(kind, Some(group)) {
            out.extend(env.workload.list(&r, None, None, None).await?);
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------ plugins

fn new_version<'a>(env: &'a Env, module: &str) -> Option<&'a str> {
    env.cfg
        .install
        .plugins
        .iter()
        .find(|p| p.module == module)
        .map(|p| p.version.as_str())
}

/// ModuleInfos of a plugin on our cluster, found by labels (ACP renames them).
async fn find_plugin(
    env: &Env,
    mi: &Resource,
    module: &str,
    version: Option<&str>,
) -> Result<Vec<Value>> {
    let labels = format!(
        "cpaas.io/cluster-name={},cpaas.io/module-name={module},cpaas.io/module-type=plugin",
        env.cfg.kubernetes.cluster_name
    );
    let mut all = env.global.list(mi, None, Some(&labels), None).await?;
    if let Some(v) = version {
        all.retain(|o| str_at(o, "spec.version") == Some(v));
    }
    Ok(all)
}

async fn old_plugins(env: &Env) -> Result<(Vec<(String, Value)>, Option<Value>)> {
    let mut old = Vec::new();
    if let Some(mi) = env.global.resolve("ModuleInfo", Some(PLUGIN_GROUP)) {
        for module in &env.cfg.uninstall.plugins {
            let new = new_version(env, module);
            for o in find_plugin(env, &mi, module, None).await? {
                if new.is_none() || str_at(&o, "spec.version") != new {
                    old.push((module.clone(), o));
                }
            }
        }
    }
    let u = &env.cfg.uninstall;
    let chart = match env
        .workload
        .resolve(&u.chart_kind, Some(group_of(&u.chart_api_version)))
    {
        Some(r) => {
            env.workload
                .get(&r, Some(&u.chart_namespace), &u.chart_name)
                .await?
        }
        None => None,
    };
    Ok((old, chart))
}

async fn operator_at_target(env: &Env) -> Result<(bool, String)> {
    let op = &env.cfg.operator;
    let Some(r) = env
        .workload
        .resolve(&op.kind, Some(group_of(&op.api_version)))
    else {
        return Ok((false, format!("{} is not served yet", op.kind)));
    };
    let Some(o) = env
        .workload
        .get(&r, op.namespace.as_deref(), &op.name)
        .await?
    else {
        return Ok((false, format!("{} {} does not exist yet", op.kind, op.name)));
    };
    let v = str_at(&o, &op.field).unwrap_or("");
    Ok((
        v.starts_with(&op.version_prefix),
        format!(
            "{} {} {} is {}",
            op.kind,
            op.name,
            op.field,
            if v.is_empty() { "empty" } else { v }
        ),
    ))
}

async fn install_plugins(env: &Env, journal: &mut Journal) -> Result<Applied> {
    let mi = env.global.need("ModuleInfo", PLUGIN_GROUP)?;
    let cfg = &env.cfg.install;
    let mut out = Vec::new();
    let mc = env.global.resolve("ModuleConfig", Some(PLUGIN_GROUP));
    for p in &cfg.plugins {
        if let Some(mc) = &mc {
            let published = format!("{}-{}", p.module, p.version);
            wait_for_person(
                env,
                journal,
                StepId::InstallPlugins,
                &format!(
                    "push the {} {} plugin package to the platform (violet push), then check it under Marketplace → Upload Packages → Cluster Plugins",
                    p.module, p.version
                ),
                (cfg.timeout, cfg.poll),
                async || {
                    Ok(env
                        .global
                        .get(mc, None, &published)
                        .await?
                        .is_none()
                        .then(|| format!("ModuleConfig {published}")))
                },
            )
            .await?;
        }
        let existing = find_plugin(env, &mi, &p.module, Some(&p.version)).await?;
        // A plugin the article keeps installed (volcano) is upgraded in place: one ModuleInfo
        // per plugin, as the platform's own upgrade does.
        let kept = if existing.is_empty() && !env.cfg.uninstall.plugins.contains(&p.module) {
            find_plugin(env, &mi, &p.module, None)
                .await?
                .into_iter()
                .next()
        } else {
            None
        };
        let name = match (existing.first(), kept) {
            (Some(o), _) => name_of(o).to_string(),
            (None, Some(o)) => {
                let patch = json!({"spec": {"version": p.version, "config": serde_json::to_value(&p.config).unwrap_or(Value::Null)}});
                env.global
                    .merge_patch(&mi, None, name_of(&o), &patch, false)
                    .await?;
                out.push(Change::new(
                    format!("ModuleInfo {} (plugin {})", name_of(&o), p.module),
                    "spec.version",
                    str_at(&o, "spec.version").map(str::to_string),
                    Some(p.version.clone()),
                ));
                name_of(&o).to_string()
            }
            (None, None) => {
                let obj = json!({
                    "apiVersion": mi.ar.api_version,
                    "kind": "ModuleInfo",
                    "metadata": {
                        "generateName": format!("{}-", env.cfg.kubernetes.cluster_name),
                        "labels": {
                            "cpaas.io/cluster-name": env.cfg.kubernetes.cluster_name,
                            "cpaas.io/module-name": p.module,
                            "cpaas.io/module-type": "plugin",
                        },
                        "annotations": {"cpaas.io/module-name": p.module},
                    },
                    "spec": {
                        "version": p.version,
                        "config": serde_json::to_value(&p.config).unwrap_or(Value::Null),
                    }
                });
                let created = env.global.create(&mi, None, &obj).await?.ok_or_else(|| {
                    Error::other(format!("creating the ModuleInfo of plugin {} collided with an existing name; run the same command again", p.module))
                })?;
                out.push(Change::new(
                    format!("ModuleInfo {} (plugin {})", name_of(&created), p.module),
                    "spec.version",
                    None,
                    Some(p.version.clone()),
                ));
                name_of(&created).to_string()
            }
        };
        env.note(format!(
            "waiting for plugin {} {} (ModuleInfo {name}) to be Running",
            p.module, p.version
        ));
        let started = Instant::now();
        loop {
            let o = env.global.get(&mi, None, &name).await?.ok_or_else(|| {
                Error::other(format!("ModuleInfo {name} of plugin {} disappeared while installing; run the same command again", p.module))
            })?;
            let phase = str_at(&o, "status.phase").unwrap_or("");
            if phase == "Running" {
                break;
            }
            if started.elapsed() > cfg.timeout {
                let msg = ["status.message", "status.reason"]
                    .iter()
                    .find_map(|f| str_at(&o, f))
                    .map(|m| format!(", message: {m}"))
                    .unwrap_or_default();
                return Err(Error::Other(format!(
                    "plugin {} {} (ModuleInfo {name}) did not reach Running within {}: status.phase is {}{msg}; \
                     fix the plugin (Administrator → Marketplace → Cluster Plugins), then run the same command to resume",
                    p.module,
                    p.version,
                    humantime::format_duration(cfg.timeout),
                    if phase.is_empty() { "empty" } else { phase }
                )));
            }
            sleep(env, cfg.poll).await?;
        }
    }
    Ok((out, BTreeMap::new()))
}

// ------------------------------------------------------------------ MLflow

/// experiments, runs, metric points in the MLflow 3.1.1 database (`None` before its schema exists).
async fn pg_counts(env: &Env) -> Result<Option<[u64; 3]>> {
    let client = env.cfg.pg_url()?.connect().await?;
    let has: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('experiments','runs','metrics')",
            &[],
        )
        .await
        .map(|r| r.get(0))
        .map_err(|e| Error::Other(format!("reading the MLflow 3.1.1 database: {}", crate::postgres::describe(&e))))?;
    if has < 3 {
        return Ok(None);
    }
    let mut out = [0u64; 3];
    for (i, t) in ["experiments", "runs", "metrics"].iter().enumerate() {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .await
            .map(|r| r.get(0))
            .map_err(|e| {
                Error::Other(format!(
                    "counting {t} in the MLflow 3.1.1 database: {}",
                    crate::postgres::describe(&e)
                ))
            })?;
        out[i] = n as u64;
    }
    Ok(Some(out))
}

async fn mlflow_counts_in_snapshot(env: &Env, id: &str) -> Result<[u64; 3]> {
    let m = env.repo.manifest(id).await?;
    let db = m
        .mysql
        .iter()
        .find(|d| d.name == env.cfg.mlflow.source_database)
        .ok_or_else(|| {
            Error::input(format!(
                "snapshot {id} has no database {}; set mlflow.source_database to the MLflow 2.6 database",
                env.cfg.mlflow.source_database
            ))
        })?;
    let rows = |t: &str| {
        db.tables
            .iter()
            .find(|x| x.name == t)
            .map(|x| x.rows)
            .unwrap_or(0)
    };
    Ok([rows("experiments"), rows("runs"), rows("metrics")])
}

async fn migrate_mlflow(env: &Env, journal: &Journal) -> Result<Applied> {
    use crate::mlflow::migrate::{MigrateOptions, MigrateSource, migrate};
    use crate::mlflow::snapshot::SnapshotSource;
    let cfg = &env.cfg.mlflow;
    let id = require_snapshot(env, journal).await?;
    let mut changes = Vec::new();
    // The 3.1.1 server must not write while the copy runs: scale it to 0, remembering its size
    // on the Deployment itself so an interrupted run still knows what to scale back to.
    let deploy = env.workload.need("Deployment", "apps")?;
    let (ns, name) = (
        cfg.deployment_namespace.as_str(),
        cfg.deployment_name.as_str(),
    );
    if let Some(d) = env.workload.get(&deploy, Some(ns), name).await? {
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let recorded = d
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(REPLICAS_ANNOTATION))
            .is_some();
        if replicas > 0 && !recorded {
            env.workload
                .merge_patch(&deploy, Some(ns), name, &json!({"metadata": {"annotations": {REPLICAS_ANNOTATION: replicas.to_string()}}, "spec": {"replicas": 0}}), false)
                .await?;
            changes.push(Change::new(
                format!("Deployment {ns}/{name}"),
                "spec.replicas",
                Some(replicas.to_string()),
                Some("0 (during the copy)".into()),
            ));
        }
    }
    let opts = MigrateOptions {
        from: MigrateSource::Snapshot(SnapshotSource {
            repo: env.cfg.repository.clone(),
            snapshot: id.clone(),
            database: Some(cfg.source_database.clone()),
        }),
        to: env.cfg.pg_url()?,
        rewrite_artifact_uri: cfg
            .rewrite_artifact_uri
            .iter()
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect(),
        artifacts_to: cfg.artifacts_to.clone(),
        artifacts_from: None,
    };
    let rep = migrate(&opts, env.progress.clone(), env.cancel.clone()).await?;
    changes.push(Change::new(
        format!("MLflow database {}", env.cfg.pg_url()?.redacted()),
        "",
        None,
        Some(format!(
            "{} ({} metric points)",
            rep.outcome, rep.metric_points
        )),
    ));
    if let Some(d) = env.workload.get(&deploy, Some(ns), name).await?
        && let Some(orig) = d
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(REPLICAS_ANNOTATION))
            .and_then(Value::as_str)
    {
        let n: i64 = orig.parse().unwrap_or(1);
        env.workload
            .merge_patch(&deploy, Some(ns), name, &json!({"metadata": {"annotations": {REPLICAS_ANNOTATION: null}}, "spec": {"replicas": n}}), false)
            .await?;
        changes.push(Change::new(
            format!("Deployment {ns}/{name}"),
            "spec.replicas",
            Some("0".into()),
            Some(n.to_string()),
        ));
    }
    Ok((
        changes,
        facts(&[
            ("mlflow_outcome", json!(rep.outcome)),
            ("mlflow_metric_points", json!(rep.metric_points)),
        ]),
    ))
}

// ------------------------------------------------------------------ features

fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, x, out);
            }
        }
        _ => out.push((prefix.to_string(), v.clone())),
    }
}

fn at_path<'a>(o: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(o, |v, k| v.get(k))
}

fn show(v: Option<&Value>) -> Option<String> {
    v.map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Patches leaf by leaf: the changes a merge patch would make to `live`.
fn patch_changes(object: &str, live: &Value, patch: &Value) -> Vec<Change> {
    let mut ls = Vec::new();
    leaves("", patch, &mut ls);
    ls.into_iter()
        .filter(|(p, want)| at_path(live, p) != Some(want))
        .map(|(p, want)| {
            Change::new(
                object,
                p.clone(),
                show(at_path(live, &p)),
                show(Some(&want)),
            )
        })
        .collect()
}

async fn features(env: &Env, apply: bool) -> Result<Vec<Change>> {
    use base64::Engine;
    let f = &env.cfg.features;
    let w = &env.workload;
    let mut out = Vec::new();
    let amlcluster_patch = json!({"spec": {"values": {
        "experimentalFeatures": {"datasets": f.datasets, "imageBuilder": f.image_builder, "tuneModels": f.tune_models},
        "global": {"mysql": {
            "database": f.mysql_database, "host": f.mysql_host, "port": f.mysql_port, "user": f.mysql_user,
            "passwordSecretRef": {"name": f.password_secret_name, "namespace": f.password_secret_namespace},
        }},
    }}});
    let aml_patch = json!({"spec": {"values": {"amlService": {
        "trainingPVCSize": f.training_pvc_size,
        "trainingPVCStorageClass": f.training_pvc_storage_class,
        "notebookStorageClass": f.notebook_storage_class,
    }}}});
    for (kind, group, name, patch) in [
        (
            "AmlCluster",
            "amlclusters.aml.dev",
            &f.amlcluster,
            &amlcluster_patch,
        ),
        ("Aml", "amls.aml.dev", &f.aml, &aml_patch),
    ] {
        let r = w.need(kind, group)?;
        let live = w.get(&r, None, name).await?.ok_or_else(|| {
            Error::input(format!(
                "{kind} {name} not found: is the AML operator at 1.4 and its instance created?"
            ))
        })?;
        let ch = patch_changes(&format!("{kind} {name}"), &live, patch);
        if apply && !ch.is_empty() {
            w.merge_patch(&r, None, name, patch, false).await?;
        }
        out.extend(ch);
    }
    let secret_r = w.need("Secret", "")?;
    let password = env
        .cfg
        .mysql_url()?
        .password
        .map(|p| p.expose().to_string())
        .unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&password);
    if f.create_password_secret
        && w.get(
            &secret_r,
            Some(&f.password_secret_namespace),
            &f.password_secret_name,
        )
        .await?
        .is_none()
    {
        out.push(Change::new(
            format!(
                "Secret {}/{}",
                f.password_secret_namespace, f.password_secret_name
            ),
            "data.password",
            None,
            Some("(the MySQL password, hidden)".into()),
        ));
        if apply {
            w.create(&secret_r, Some(&f.password_secret_namespace), &json!({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": f.password_secret_name, "namespace": f.password_secret_namespace,
                             "labels": {"app.kubernetes.io/managed-by": "amlmigrate"}},
                "data": {"password": b64},
            })).await?;
        }
    }
    let cm_r = w.need("ConfigMap", "")?;
    let host = f
        .image_builder_db_host
        .clone()
        .unwrap_or_else(|| f.mysql_host.clone());
    for ns in &f.image_builder_namespaces {
        let data = json!({"data": {
            "MODEL_REPO_BUILDER_DB_DB": f.mysql_database,
            "MODEL_REPO_BUILDER_DB_HOST": host,
            "MODEL_REPO_BUILDER_DB_PORT": f.mysql_port.to_string(),
            "MODEL_REPO_BUILDER_DB_USER": f.mysql_user,
        }});
        let object = format!("ConfigMap {ns}/aml-image-builder-config");
        match w.get(&cm_r, Some(ns), "aml-image-builder-config").await? {
            Some(live) => {
                let ch = patch_changes(&object, &live, &data);
                if apply && !ch.is_empty() {
                    w.merge_patch(&cm_r, Some(ns), "aml-image-builder-config", &data, false)
                        .await?;
                }
                out.extend(ch);
            }
            None => {
                out.push(Change::new(
                    object,
                    "",
                    None,
                    Some("created with the MODEL_REPO_BUILDER_DB_* keys".into()),
                ));
                if apply {
                    let mut obj = data.clone();
                    obj["apiVersion"] = json!("v1");
                    obj["kind"] = json!("ConfigMap");
                    obj["metadata"] = json!({"name": "aml-image-builder-config", "namespace": ns});
                    w.create(&cm_r, Some(ns), &obj).await?;
                }
            }
        }
        let object = format!("Secret {ns}/aml-image-builder-secret");
        let live = w
            .get(&secret_r, Some(ns), "aml-image-builder-secret")
            .await?;
        let have = live
            .as_ref()
            .and_then(|s| str_at(s, "data.MODEL_REPO_BUILDER_DB_PASSWORD"))
            .map(str::to_string);
        if have.as_deref() != Some(b64.as_str()) {
            out.push(Change::new(
                object,
                "data.MODEL_REPO_BUILDER_DB_PASSWORD",
                have.map(|_| "(hidden)".to_string()),
                Some("(the MySQL password, hidden)".into()),
            ));
            if apply {
                let patch = json!({"data": {"MODEL_REPO_BUILDER_DB_PASSWORD": b64}});
                if live.is_some() {
                    w.merge_patch(
                        &secret_r,
                        Some(ns),
                        "aml-image-builder-secret",
                        &patch,
                        false,
                    )
                    .await?;
                } else {
                    let mut obj = patch;
                    obj["apiVersion"] = json!("v1");
                    obj["kind"] = json!("Secret");
                    obj["type"] = json!("Opaque");
                    obj["metadata"] = json!({"name": "aml-image-builder-secret", "namespace": ns});
                    w.create(&secret_r, Some(ns), &obj).await?;
                }
            }
        }
    }
    // `kubectl rollout restart`, once per settings: the settings' hash sits beside restartedAt.
    let hash = {
        let mut h = sha2::Sha256::new();
        h.update(amlcluster_patch.to_string());
        h.update(aml_patch.to_string());
        hex::encode(h.finalize())[..16].to_string()
    };
    let deploy = w.need("Deployment", "apps")?;
    let (ns, name) = (f.restart_namespace.as_str(), f.restart_deployment.as_str());
    if let Some(d) = w.get(&deploy, Some(ns), name).await? {
        let have = d
            .pointer("/spec/template/metadata/annotations")
            .and_then(|a| a.get(FEATURES_ANNOTATION))
            .and_then(Value::as_str);
        if have != Some(hash.as_str()) {
            out.push(Change::new(
                format!("Deployment {ns}/{name}"),
                "rollout",
                None,
                Some("restarted (kubectl rollout restart)".into()),
            ));
            if apply {
                let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                w.merge_patch(
                    &deploy,
                    Some(ns),
                    name,
                    &json!({"spec": {"template": {"metadata": {"annotations": {
                    "kubectl.kubernetes.io/restartedAt": now, FEATURES_ANNOTATION: hash}}}}}),
                    false,
                )
                .await?;
            }
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------ restore and verify

fn restore_kinds(env: &Env) -> Vec<String> {
    let mut k = env.cfg.restore.kinds.clone();
    if env.cfg.notebooks.recreate {
        k.extend(["Notebook".to_string(), "Tensorboard".to_string()]);
    }
    k
}

fn created_from_snapshot(o: &crate::kube::restore::ObjectResult) -> Change {
    let ns = o
        .namespace
        .as_deref()
        .map(|n| format!("{n}/"))
        .unwrap_or_default();
    Change::new(
        format!("{} {ns}{}", o.kind, o.name),
        "",
        None,
        Some("created from the snapshot".into()),
    )
}

async fn restore(
    env: &Env,
    id: &str,
    dry_run: bool,
) -> Result<crate::kube::restore::KubeRestoreReport> {
    use crate::kube::restore::{KubeRestoreOptions, restore_kube};
    let opts = KubeRestoreOptions {
        access: env.cfg.kube_options(),
        dry_run,
        kinds: restore_kinds(env),
        identity: env.cfg.restore.identity.clone(),
        ..Default::default()
    };
    restore_kube(&env.repo, id, &opts, &env.progress, &env.cancel).await
}

pub(super) async fn mysql_table_counts(env: &Env, db: &str) -> Result<BTreeMap<String, u64>> {
    let url = env.cfg.mysql_url()?;
    let mut conn = crate::mysql::connect(&url).await?;
    let tables: Vec<String> = conn
        .exec("SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY table_name", (db,))
        .await
        .map_err(|e| Error::Mysql { context: format!("listing the tables of {db}"), source: e })?;
    let mut out = BTreeMap::new();
    for t in tables {
        let n: Option<u64> = conn
            .query_first(format!(
                "SELECT COUNT(*) FROM `{}`.`{}`",
                db.replace('`', "``"),
                t.replace('`', "``")
            ))
            .await
            .map_err(|e| Error::Mysql {
                context: format!("counting rows of {db}.{t}"),
                source: e,
            })?;
        out.insert(t, n.unwrap_or(0));
    }
    let _ = conn.disconnect().await;
    Ok(out)
}

async fn verify_lines(env: &Env, id: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let m = env.repo.manifest(id).await?;
    let aml = &env.cfg.mysql.aml_database;
    match m.mysql.iter().find(|d| &d.name == aml) {
        None => out.push(format!(
            "FAIL snapshot {id} has no database {aml} (mysql.aml_database)"
        )),
        Some(db) => {
            let live = mysql_table_counts(env, aml).await?;
            for t in &db.tables {
                let now = live.get(&t.name).copied();
                if now == Some(t.rows) {
                    out.push(format!(
                        "ok   {aml}.{}: {} rows, as in the snapshot",
                        t.name, t.rows
                    ));
                } else {
                    out.push(format!(
                        "FAIL {aml}.{}: {} rows in the snapshot, {} now; restore it with `amlmigrate restore {id} --only mysql`",
                        t.name,
                        t.rows,
                        now.map(|n| n.to_string()).unwrap_or_else(|| "no table".into())
                    ));
                }
            }
        }
    }
    if env.cfg.mlflow.migrate {
        let src = mlflow_counts_in_snapshot(env, id).await?;
        match pg_counts(env).await? {
            Some(t) if t == src => out.push(format!(
                "ok   MLflow 3.1.1: {} experiments, {} runs, {} metric points, as the 2.6 source",
                t[0], t[1], t[2]
            )),
            other => out.push(format!(
                "FAIL MLflow 3.1.1 holds {:?} experiments/runs/metric points, the 2.6 source {:?}",
                other, src
            )),
        }
    }
    let index = crate::kube::pvc::snapshot_index(&env.repo, id).await?;
    let rows = crate::kube::pvc::check(&env.workload, &index, &Default::default()).await?;
    let bad: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            r.problem
                .as_ref()
                .map(|p| format!("{}/{} ({p})", r.namespace, r.name))
        })
        .collect();
    if bad.is_empty() {
        out.push(format!(
            "ok   {} PVC(s) Bound to the volume they had",
            rows.len()
        ));
    } else {
        out.push(format!("FAIL PVCs: {}", bad.join(", ")));
    }
    let f = &env.cfg.features;
    if let Some(r) = env
        .workload
        .resolve("AmlCluster", Some("amlclusters.aml.dev"))
        && let Some(o) = env.workload.get(&r, None, &f.amlcluster).await?
    {
        let ef = &o["spec"]["values"]["experimentalFeatures"];
        let want = [
            ("datasets", f.datasets),
            ("imageBuilder", f.image_builder),
            ("tuneModels", f.tune_models),
        ];
        let off: Vec<&str> = want
            .iter()
            .filter(|(k, w)| *w && ef[*k] != true)
            .map(|(k, _)| *k)
            .collect();
        if off.is_empty() {
            out.push("ok   experimental features on".into());
        } else {
            out.push(format!(
                "FAIL experimental features off: {}",
                off.join(", ")
            ));
        }
    } else {
        out.push(format!("FAIL AmlCluster {} not found", f.amlcluster));
    }
    if let Some(mi) = env.global.resolve("ModuleInfo", Some(PLUGIN_GROUP)) {
        for p in &env.cfg.install.plugins {
            let found = find_plugin(env, &mi, &p.module, Some(&p.version)).await?;
            match found.first().and_then(|o| str_at(o, "status.phase")) {
                Some("Running") => {
                    out.push(format!("ok   plugin {} {} Running", p.module, p.version))
                }
                other => out.push(format!(
                    "FAIL plugin {} {}: {}",
                    p.module,
                    p.version,
                    other.unwrap_or("not installed")
                )),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically_and_ignore_build_suffixes() {
        assert!(version_at_least("1.22.4+202408291030", "1.22"));
        assert!(version_at_least("v1.22", "1.22"));
        assert!(version_at_least("1.23.0", "1.22"));
        assert!(!version_at_least("1.21.9", "1.22"));
        assert!(!version_at_least("1.9", "1.22"));
    }

    #[test]
    fn patch_changes_lists_only_the_leaves_that_differ() {
        let live = json!({"spec": {"values": {"a": true, "b": {"c": 1}}}});
        let patch = json!({"spec": {"values": {"a": true, "b": {"c": 2}, "d": "x"}}});
        let ch = patch_changes("AmlCluster default", &live, &patch);
        let s: Vec<String> = ch.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            s,
            [
                "AmlCluster default: spec.values.b.c: 1 → 2",
                "AmlCluster default: spec.values.d: (none) → x"
            ]
        );
    }
}
