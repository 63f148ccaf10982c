//! Step verify: the checks after the upgrade, each proving something live — the job records
//! are the snapshot's, MLflow 3.1.1 answers through its Service with the migrated experiments
//! and runs, `aml-api-deploy` rolled out and is Available, every plugin is Running, the
//! llm-trainer image the 1.4 ConfigMap references resolves, every PVC is Bound to its old
//! volume, the features are on. The article's UI checks are a person's checklist in the report.

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use serde_json::Value;

use super::mlflow::{mlflow_counts_in_snapshot, pg_counts};
use super::plugins::{PLUGIN_GROUP, find_plugin};
use super::{Applied, Env, Facts, Journal, State, StepCheck, snapshot_of};
use crate::error::{Error, Result};
use crate::kube::str_at;
use crate::upgrade::config::AML_SOURCE;
use crate::upgrade::wait::{self, Patience, Poll};

pub(super) async fn check(env: &Env, journal: Option<&Journal>, c: &mut StepCheck) -> Result<()> {
    match snapshot_of(env, journal).await? {
        None => {
            c.state = State::ToDo;
            c.why = "waits for the snapshot".into();
        }
        Some(id) => {
            c.checked = verify_lines(env, &id).await?;
            let fails = c.failures().count();
            if fails == 0 {
                c.why = format!("{} check(s) passed", c.checked.len());
            } else {
                c.state = State::ToDo;
                c.why = format!("{fails} of {} check(s) fail", c.checked.len());
            }
        }
    }
    Ok(())
}

pub(super) async fn apply(env: &Env, journal: &Journal) -> Result<Applied> {
    let id = snapshot_of(env, Some(journal)).await?.ok_or_else(|| {
        Error::Refused("no verified snapshot in this run; run step snapshot first".into())
    })?;
    // As `kubectl rollout status`: the restart of the features' step rolls out first.
    let f = &env.cfg.features;
    let every = std::time::Duration::from_millis(500).min(f.rollout_timeout);
    wait::until(
        &env.cancel,
        Patience::new(f.rollout_timeout, every),
        async || {
            let line = rollout(env).await?;
            Ok(if line.starts_with("ok") {
                Poll::Ready(())
            } else {
                Poll::Pending(line)
            })
        },
        Error::Other,
    )
    .await
    .or_else(|e| match e {
        Error::Other(_) => Ok(()),
        e => Err(e),
    })?;
    let lines = verify_lines(env, &id).await?;
    let fails: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("FAIL"))
        .map(String::as_str)
        .collect();
    if !fails.is_empty() {
        return Err(Error::Other(format!(
            "verification failed:\n  {}",
            fails.join("\n  ")
        )));
    }
    Ok(Applied {
        changes: Vec::new(),
        facts: Facts::checked(&lines),
    })
}

/// Rows per table of a database of a MySQL source.
pub(in crate::upgrade) async fn mysql_table_counts(
    env: &Env,
    source: &str,
    db: &str,
) -> Result<BTreeMap<String, u64>> {
    let url = env.cfg.mysql_url(source)?;
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
    job_records(env, id, &mut out).await?;
    if env.cfg.mlflow.migrate {
        mlflow(env, id, &mut out).await?;
    }
    out.push(rollout(env).await?);
    plugins(env, &mut out).await?;
    out.push(super::retag::llm_trainer_line(env).await?);
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
    out.push(features(env).await?);
    Ok(out)
}

/// The job records (every database of the `aml` source) hold the snapshot's rows.
async fn job_records(env: &Env, id: &str, out: &mut Vec<String>) -> Result<()> {
    let m = env.repo.manifest(id).await?;
    let dbs = match crate::backup::databases_of(&m, AML_SOURCE) {
        Ok(d) => d,
        Err(e) => {
            out.push(format!("FAIL job records: {e}"));
            return Ok(());
        }
    };
    for db in dbs {
        let live = mysql_table_counts(env, AML_SOURCE, &db.name).await?;
        for t in &db.tables {
            let now = live.get(&t.name).copied();
            if now == Some(t.rows) {
                out.push(format!(
                    "ok   {}.{}: {} rows, as in the snapshot",
                    db.name, t.name, t.rows
                ));
            } else {
                out.push(format!(
                    "FAIL {}.{}: {} rows in the snapshot, {} now; restore it with `amlmigrate restore {id} --source {AML_SOURCE} --databases {}`",
                    db.name,
                    t.name,
                    t.rows,
                    now.map(|n| n.to_string()).unwrap_or_else(|| "no table".into()),
                    db.name
                ));
            }
        }
    }
    Ok(())
}

/// MLflow: the 3.1.1 database holds the 2.6 source's counts, and the server itself lists them
/// through its Service.
async fn mlflow(env: &Env, id: &str, out: &mut Vec<String>) -> Result<()> {
    let src = mlflow_counts_in_snapshot(env, id).await?;
    match pg_counts(env).await? {
        Some(t) if t == src => out.push(format!(
            "ok   MLflow 3.1.1 database: {} experiments, {} runs, {} metric points, as the 2.6 source",
            t[0], t[1], t[2]
        )),
        other => out.push(format!(
            "FAIL MLflow 3.1.1 database holds {:?} experiments/runs/metric points, the 2.6 source {:?}",
            other, src
        )),
    }
    let m = &env.cfg.mlflow;
    if !m.check_server {
        out.push("skip MLflow 3.1.1 server: not asked (mlflow.check_server = false)".into());
        return Ok(());
    }
    let svc = env.workload.need("Service", "")?;
    if env
        .workload
        .get(&svc, Some(&m.service_namespace), &m.service_name)
        .await?
        .is_none()
    {
        out.push(format!(
            "FAIL Service {}/{} (the MLflow 3.1.1 server, mlflow.service_*) does not exist: is the mlflow plugin Running?",
            m.service_namespace, m.service_name
        ));
        return Ok(());
    }
    match super::mlflow_server::counts(env).await {
        Ok((e, r, via)) if e == src[0] && r == src[1] => out.push(format!(
            "ok   MLflow 3.1.1 server ({via}) lists {e} experiments and {r} runs, as the 2.6 source"
        )),
        Ok((e, r, via)) => out.push(format!(
            "FAIL MLflow 3.1.1 server ({via}) lists {e} experiments and {r} runs, the 2.6 source had {} and {}",
            src[0], src[1]
        )),
        Err(e) => out.push(format!("FAIL MLflow 3.1.1 server: {e}")),
    }
    Ok(())
}

/// `aml-api-deploy` restarted, rolled out (every replica updated) and Available.
async fn rollout(env: &Env) -> Result<String> {
    let f = &env.cfg.features;
    let what = format!(
        "Deployment {}/{}",
        f.restart_namespace, f.restart_deployment
    );
    let r = env.workload.need("Deployment", "apps")?;
    let Some(d) = env
        .workload
        .get(&r, Some(&f.restart_namespace), &f.restart_deployment)
        .await?
    else {
        return Ok(format!("FAIL {what} does not exist"));
    };
    let n = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let want = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let observed = n("/status/observedGeneration") >= n("/metadata/generation");
    let available = d["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Available" && c["status"] == "True")
    });
    let restarted = d
        .pointer("/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt")
        .is_some();
    Ok(
        if observed
            && restarted
            && available
            && n("/status/updatedReplicas") >= want
            && n("/status/availableReplicas") >= want
        {
            format!("ok   {what} restarted, rolled out ({want} replica(s) updated) and Available")
        } else {
            format!(
                "FAIL {what} is not rolled out: restarted {restarted}, generation observed {observed}, {}/{want} updated, {}/{want} available, Available condition {available}; see `kubectl -n {} rollout status deploy {}`",
                n("/status/updatedReplicas"),
                n("/status/availableReplicas"),
                f.restart_namespace,
                f.restart_deployment
            )
        },
    )
}

async fn plugins(env: &Env, out: &mut Vec<String>) -> Result<()> {
    let Some(mi) = env.global.resolve("ModuleInfo", Some(PLUGIN_GROUP)) else {
        out.push("FAIL the global cluster serves no ModuleInfo".into());
        return Ok(());
    };
    for p in &env.cfg.install.plugins {
        let found = find_plugin(env, &mi, &p.module, Some(&p.version)).await?;
        match found.first().and_then(|o| str_at(o, "status.phase")) {
            Some("Running") => out.push(format!("ok   plugin {} {} Running", p.module, p.version)),
            other => out.push(format!(
                "FAIL plugin {} {}: {}",
                p.module,
                p.version,
                other.unwrap_or("not installed")
            )),
        }
    }
    Ok(())
}

async fn features(env: &Env) -> Result<String> {
    let f = &env.cfg.features;
    let Some(r) = env
        .workload
        .resolve("AmlCluster", Some("amlclusters.aml.dev"))
    else {
        return Ok("FAIL the cluster serves no AmlCluster".into());
    };
    let Some(o) = env.workload.get(&r, None, &f.amlcluster).await? else {
        return Ok(format!("FAIL AmlCluster {} not found", f.amlcluster));
    };
    let ef = &o["spec"]["values"]["experimentalFeatures"];
    let off: Vec<&str> = [
        ("datasets", f.datasets),
        ("imageBuilder", f.image_builder),
        ("tuneModels", f.tune_models),
    ]
    .iter()
    .filter(|(k, w)| *w && ef[*k] != true)
    .map(|(k, _)| *k)
    .collect();
    Ok(if off.is_empty() {
        "ok   experimental features on".into()
    } else {
        format!("FAIL experimental features off: {}", off.join(", "))
    })
}

/// What only a person can check, from the article's "test the experimental features".
pub(in crate::upgrade) const CHECKLIST: [&str; 8] = [
    "Log in as an Alauda AI user with namespace rights: the navigation shows Datasets, Model optimization, and Advanced → Kubeflow and MLFlow",
    "A dataset can be cached and previewed",
    "A simple fine-tune job runs to the end",
    "A simple image build job for an existing model runs to the end",
    "Old notebooks (if kept) open under Advanced → Kubeflow → Notebooks",
    "The MLflow web UI opens and shows the migrated experiments",
    "Tell notebook users that packages they installed with pip inside notebooks are gone and must be installed again",
    "Kubeflow Pipelines' history (mlpipeline, cachedb, metadb) is in the snapshot: restore it into the new KFP MySQL with `amlmigrate restore <snapshot> --source kfp --mysql …` if you want it back",
];
