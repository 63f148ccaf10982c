//! Step verify: the checks after the upgrade — job records as in the snapshot, MLflow's counts
//! in PostgreSQL, every PVC Bound to its volume, the features on, every plugin Running.

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;

use super::mlflow::{mlflow_counts_in_snapshot, pg_counts};
use super::plugins::{PLUGIN_GROUP, find_plugin};
use super::{Applied, Env, Facts, Journal, State, StepCheck, snapshot_of};
use crate::error::{Error, Result};
use crate::kube::str_at;

pub(super) async fn check(env: &Env, journal: Option<&Journal>, c: &mut StepCheck) -> Result<()> {
    match snapshot_of(env, journal).await? {
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
    }
    Ok(())
}

pub(super) async fn apply(env: &Env, journal: &Journal) -> Result<Applied> {
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
    Ok(Applied {
        changes: Vec::new(),
        facts: Facts::checked(&lines),
    })
}

pub(in crate::upgrade) async fn mysql_table_counts(
    env: &Env,
    db: &str,
) -> Result<BTreeMap<String, u64>> {
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
