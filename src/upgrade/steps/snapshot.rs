//! Step snapshot: the MySQL databases (MLflow's among them), the Kubernetes objects and the PVC
//! index in one snapshot, verified before anything destructive may run.

use super::{Applied, Change, Env, Facts, Journal, State, StepCheck};
use crate::error::Result;

pub(super) async fn check(env: &Env, journal: Option<&Journal>, c: &mut StepCheck) -> Result<()> {
    match snapshot_of(env, journal).await? {
        Some(id) => c.why = format!("snapshot {id} taken and verified"),
        None => {
            c.state = State::ToDo;
            c.why = format!(
                "no verified snapshot of this run yet; databases {} and the Kubernetes objects go to {}",
                env.cfg.mysql.databases.join(", "),
                env.cfg.repository
            );
        }
    }
    Ok(())
}

pub(super) async fn apply(env: &Env) -> Result<Applied> {
    let id = take_snapshot(env).await?;
    Ok(Applied {
        changes: vec![Change::new("snapshot", "", None, Some(id.clone()))],
        facts: Facts {
            snapshot: Some(id),
            ..Default::default()
        },
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
        Ok(Some(id))
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
        mlflow_artifacts: cfg.snapshot.mlflow_artifacts.clone(),
        tags: [("reason".to_string(), "pre-upgrade 1.3 to 1.4".to_string())].into(),
        zstd_level: 3,
    };
    let m = backup(&env.repo, &opts, env.progress.clone(), env.cancel.clone()).await?;
    crate::verify::verify(&env.repo, &m.id, env.progress.clone()).await?;
    Ok(m.id)
}
