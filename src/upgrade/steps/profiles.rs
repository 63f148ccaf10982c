//! Step restore-profiles: the users' Namespaces, Profiles, volumes and claims, ConfigMaps,
//! RoleBindings and AuthorizationPolicies (and Notebooks when asked) come back from the
//! snapshot, never duplicating what exists.

use super::{Applied, Change, Env, Journal, State, StepCheck, snapshot_of};
use crate::error::{Error, Result};
use crate::upgrade::REFUSED;

pub(super) async fn check(env: &Env, journal: Option<&Journal>, c: &mut StepCheck) -> Result<()> {
    builder_secrets_not_restored(env, c).await?;
    match snapshot_of(env, journal).await? {
        None => {
            c.state = State::ToDo;
            c.why = "waits for the snapshot".into();
        }
        Some(id) => {
            let rep = restore(env, &id, true).await?;
            // A real run refuses the whole restore; the check says so, naming each object.
            let refused: Vec<String> = rep
                .refused()
                .iter()
                .map(|o| {
                    format!(
                        "{} {}{}: {}",
                        o.kind,
                        o.namespace
                            .as_deref()
                            .map(|n| format!("{n}/"))
                            .unwrap_or_default(),
                        o.name,
                        o.error.as_deref().unwrap_or("refused")
                    )
                })
                .collect();
            if !refused.is_empty() {
                c.state = State::Blocked;
                c.why = format!(
                    "{} object(s) of snapshot {id} may not be restored, so nothing would be \
                     written: {}",
                    refused.len(),
                    refused.join("; ")
                );
                c.checked
                    .extend(refused.iter().map(|r| format!("{REFUSED} {r}")));
                return Ok(());
            }
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
    }
    Ok(())
}

pub(super) async fn apply(env: &Env, journal: &Journal) -> Result<Applied> {
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
    Ok(Applied::changes(
        rep.objects
            .iter()
            .filter(|o| o.action == "created")
            .map(created_from_snapshot)
            .collect(),
    ))
}

/// A user namespace the uninstall takes (one per Profile) comes back from the snapshot without
/// its `aml-image-builder-secret` unless Secrets are restored (`restore.identity` and `Secret`
/// in `restore.kinds`) or enable-features writes it (`features.image_builder_namespaces`).
async fn builder_secrets_not_restored(env: &Env, c: &mut StepCheck) -> Result<()> {
    let r = &env.cfg.restore;
    if r.identity.is_some() && r.kinds.iter().any(|k| k == "Secret") {
        return Ok(());
    }
    let w = &env.workload;
    let (Some(profile_r), Some(secret_r)) = (
        w.resolve("Profile", Some("kubeflow.org")),
        w.resolve("Secret", Some("")),
    ) else {
        return Ok(());
    };
    let written = &env.cfg.features.image_builder_namespaces;
    for p in w.list(&profile_r, None, None, None).await? {
        let Some(ns) = crate::kube::str_at(&p, "metadata.name") else {
            continue;
        };
        if written.iter().any(|n| n == ns)
            || w.get(&secret_r, Some(ns), BUILDER_SECRET).await?.is_none()
        {
            continue;
        }
        c.warnings.push(format!(
            "namespace {ns} goes with the uninstall and comes back from the snapshot without its \
             {BUILDER_SECRET} (Secrets are restored only with restore.identity and \"Secret\" in \
             restore.kinds): set those, or add {ns} to features.image_builder_namespaces so \
             enable-features writes it"
        ));
    }
    Ok(())
}

const BUILDER_SECRET: &str = "aml-image-builder-secret";

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
        catalog: super::global::catalog(&env.cfg),
        // The global cluster's objects are recover's restore-global step's.
        cluster: Some(crate::kube::Role::Workload),
        dry_run,
        kinds: restore_kinds(env),
        identity: env.cfg.restore.identity.clone(),
        volumes: env.cfg.restore.volumes.clone(),
        ..Default::default()
    };
    restore_kube(&env.repo, id, &opts, &env.progress, &env.cancel).await
}
