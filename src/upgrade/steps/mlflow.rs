//! Step migrate-mlflow: MLflow 2.6 (MySQL, from the snapshot) into MLflow 3.1.1's PostgreSQL
//! database, with the 3.1.1 server scaled to 0 while the rows move.

use serde_json::{Value, json};

use super::{
    Applied, Change, Env, Facts, Journal, State, StepCheck, require_snapshot, skip, snapshot_of,
};
use crate::error::{Error, Result};

const REPLICAS_ANNOTATION: &str = "amlmigrate.alauda.io/original-replicas";

pub(super) async fn check(env: &Env, journal: Option<&Journal>, c: &mut StepCheck) -> Result<()> {
    let cfg = &env.cfg.mlflow;
    if !cfg.migrate {
        skip(
            c,
            "not asked (mlflow.migrate = false): MLflow 2.6's history is not moved to 3.1.1",
        );
        return Ok(());
    }
    let deploy = env.workload.need("Deployment", "apps")?;
    let server = env
        .workload
        .get(
            &deploy,
            Some(&cfg.deployment_namespace),
            &cfg.deployment_name,
        )
        .await?;
    {
        let target = pg_counts(env).await?;
        match snapshot_of(env, journal).await? {
            None => {
                c.state = State::ToDo;
                c.why = "waits for the snapshot (the MLflow 2.6 database is copied from it)".into();
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
    // The copy replaces what the 3.1.1 server may write: never while it is not known to be
    // stopped.
    if server.is_none() {
        let what = format!(
            "Deployment {}/{} (the MLflow 3.1.1 server the mlflow 1.4 plugin runs) not found",
            cfg.deployment_namespace, cfg.deployment_name
        );
        if c.state == State::ToDo && snapshot_of(env, journal).await?.is_some() {
            c.state = State::Blocked;
            c.why = format!(
                "{what}: the copy runs only with that server scaled to 0; set mlflow.deployment_namespace and mlflow.deployment_name to it (kubectl get deploy -A | grep mlflow)"
            );
        } else {
            c.warnings.push(format!(
                "{what}: the copy waits for it (set mlflow.deployment_* if it has another name)"
            ));
        }
    }
    Ok(())
}

/// experiments, runs, metric points in the MLflow 3.1.1 database (`None` before its schema exists).
pub(super) async fn pg_counts(env: &Env) -> Result<Option<[u64; 3]>> {
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

pub(super) async fn mlflow_counts_in_snapshot(env: &Env, id: &str) -> Result<[u64; 3]> {
    let m = env.repo.manifest(id).await?;
    let name = env.cfg.mlflow_database()?;
    let db = crate::backup::databases_of(&m, &env.cfg.mlflow.source)?
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| {
            Error::input(format!(
                "snapshot {id} has no database {name} in MySQL source {}; set mlflow.source and mlflow.source_database to the MLflow 2.6 database",
                env.cfg.mlflow.source
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

pub(super) async fn apply(env: &Env, journal: &Journal) -> Result<Applied> {
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
            database: Some(env.cfg.mlflow_database()?),
            trust: env.repo.trust().clone(),
            identity: env.cfg.restore.identity.clone(),
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
    Ok(Applied {
        changes,
        facts: Facts {
            mlflow_outcome: Some(rep.outcome.to_string()),
            mlflow_metric_points: Some(rep.metric_points),
            ..Default::default()
        },
    })
}
