//! Step snapshot: every MySQL source (the job records, Kubeflow Pipelines', MLflow 2.6's), the
//! Kubernetes objects and the PVC index in one snapshot, verified before anything destructive
//! may run; with it the journal records what the 1.3 installation is, which is all the
//! uninstall will ever delete.

use super::{Applied, Change, Env, Facts, Journal, State, StepCheck, installation};
use crate::error::{Error, Result};

pub(super) async fn check(env: &Env, journal: Option<&Journal>, c: &mut StepCheck) -> Result<()> {
    if let Some(id) = snapshot_of(env, journal).await? {
        c.why = format!("snapshot {id} taken and verified");
        return Ok(());
    }
    // What will be recorded as the 1.3 installation, found now so that a person sees it (and
    // a wrong guess is refused) before anything is written.
    match installation::find(env, c).await? {
        None => return Ok(()),
        Some(inst) => {
            for r in inst.plugins.iter().chain(&inst.charts) {
                c.checked.push(format!(
                    "ok   1.3 installation: {r} (recorded; the uninstall deletes it)"
                ));
            }
        }
    }
    // A marker rewritten by whoever can write the bucket must not switch the snapshot's
    // encryption off: the same check as `backup --encrypt-to`, shown before anything runs.
    if let Err(e) = encryption_intent(env) {
        c.state = State::Blocked;
        c.why = e.to_string();
        return Ok(());
    }
    c.state = State::ToDo;
    c.why = format!(
        "no verified snapshot of this run yet; MySQL sources {} and the Kubernetes objects go to {}",
        env.cfg
            .mysql
            .iter()
            .map(|(n, s)| format!("{n} ({})", s.databases.join(", ")))
            .collect::<Vec<_>>()
            .join(", "),
        env.cfg.repository
    );
    Ok(())
}

pub(super) async fn apply(env: &Env) -> Result<Applied> {
    let mut c = super::new_check(super::StepId::Snapshot);
    let inst = installation::find(env, &mut c)
        .await?
        .ok_or_else(|| Error::Refused(c.why.clone()))?;
    encryption_intent(env)?;
    let id = take_snapshot(env).await?;
    Ok(Applied {
        changes: vec![Change::new("snapshot", "", None, Some(id.clone()))],
        facts: Facts {
            snapshot: Some(id),
            installation: Some(inst),
            ..Default::default()
        },
    })
}

fn encryption_intent(env: &Env) -> Result<()> {
    let s = &env.cfg.snapshot;
    env.repo
        .check_encryption_intent(&crate::repo::EncryptionIntent {
            recipients: &s.encrypt_to,
            plain: s.unencrypted_repo,
            settings: ("snapshot.encrypt_to", "snapshot.unencrypted_repo = true"),
        })
}

/// The snapshot of this run, when its manifest exists (it is committed only after a
/// successful backup; the step records it only after verify passed).
pub(in crate::upgrade) async fn snapshot_of(
    env: &Env,
    journal: Option<&Journal>,
) -> Result<Option<String>> {
    let Some(id) = journal.and_then(|j| j.fact(|f| f.snapshot.clone())) else {
        return Ok(None);
    };
    if env.repo.snapshot_ids().await?.contains(&id) {
        // With verify keys, a snapshot rewritten since it was taken stops the run here, before
        // any later step relies on it.
        env.repo.signed_by(&id).await?;
        Ok(Some(id))
    } else {
        Ok(None)
    }
}

async fn take_snapshot(env: &Env) -> Result<String> {
    use crate::backup::{BackupOptions, MysqlSource, backup};
    use crate::kube::backup::KubeBackupOptions;
    use crate::mysql::backup::MysqlBackupOptions;
    let cfg = &env.cfg;
    let mut mysql = Vec::new();
    for (name, src) in cfg.mysql.iter().filter(|(_, s)| !s.databases.is_empty()) {
        let mut options = MysqlBackupOptions::new(cfg.mysql_url(name)?);
        options.databases = Some(src.databases.clone());
        mysql.push(MysqlSource {
            name: name.clone(),
            options,
        });
    }
    let recipients = if cfg.snapshot.encrypt_to.is_empty() {
        None
    } else {
        Some(crate::kube::secrets::Recipients::parse(
            &cfg.snapshot.encrypt_to,
        )?)
    };
    let opts = BackupOptions {
        mysql,
        kube: Some(KubeBackupOptions {
            access: cfg.kube_options(),
            // The global objects step global-settings edits go in too, as they are now.
            catalog: super::global::catalog(cfg),
            namespaces: Vec::new(),
            recipients,
        }),
        mlflow_artifacts: cfg.snapshot.mlflow_artifacts.clone(),
        tags: [("reason".to_string(), "pre-upgrade 1.3 to 1.4".to_string())].into(),
        zstd_level: 3,
    };
    let m = backup(&env.repo, &opts, env.progress.clone(), env.cancel.clone()).await?;
    crate::verify::verify(&env.repo, &m.id, env.progress.clone()).await?;
    Ok(m.id)
}
