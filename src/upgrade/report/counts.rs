//! The data before (the snapshot) and after (live): the job records per table, MLflow in total
//! and per experiment, PVCs and Profiles in total and per user namespace.

use std::collections::{BTreeMap, BTreeSet};

use super::Count;
use crate::error::{Error, Result};
use crate::kube::backup::{OBJECTS_ENTRY, PART, StoredObject};
use crate::repo::manifest::Manifest;
use crate::upgrade::Env;
use crate::upgrade::config::AML_SOURCE;
use crate::upgrade::steps;

pub const TABLES: &str = "Database tables";
pub const EXPERIMENTS: &str = "MLflow experiments";
pub const NAMESPACES: &str = "User namespaces";

/// The counts; what could not be counted goes to `missing` (never fatal: the run's work is done).
pub(super) async fn counts(
    env: &Env,
    m: &Manifest,
    missing: &mut Vec<String>,
) -> Result<Vec<Count>> {
    let mut out = Vec::new();
    // The job records stay on their server; the other sources' servers go or change.
    for db in crate::backup::databases_of(m, AML_SOURCE).unwrap_or_default() {
        let live = steps::mysql_table_counts(env, AML_SOURCE, &db.name)
            .await
            .ok();
        for t in &db.tables {
            out.push(Count::cell(
                TABLES,
                format!("{}.{}", db.name, t.name),
                "rows",
                Some(t.rows),
                live.as_ref().and_then(|l| l.get(&t.name).copied()),
            ));
        }
    }
    if env.cfg.mlflow.migrate {
        mlflow(env, m, &mut out, missing).await?;
    }
    if let Some(k) = &m.kubernetes {
        namespaces(env, m, k, &mut out).await?;
    }
    Ok(out)
}

async fn mlflow(
    env: &Env,
    m: &Manifest,
    out: &mut Vec<Count>,
    missing: &mut Vec<String>,
) -> Result<()> {
    let Ok(name) = env.cfg.mlflow_database() else {
        return Ok(());
    };
    let Some(db) = m.mysql.iter().find(|d| d.name == name) else {
        return Ok(());
    };
    let client = env.cfg.pg_url()?.connect().await?;
    for (t, label) in [
        ("experiments", "experiments"),
        ("runs", "runs"),
        ("metrics", "metric points"),
    ] {
        let after: Option<i64> = client
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .await
            .ok()
            .map(|r| r.get(0));
        out.push(Count::total(
            format!("MLflow {label} (2.6 MySQL → 3.1.1 PostgreSQL)"),
            db.tables.iter().find(|x| x.name == t).map(|x| x.rows),
            after.map(|n| n as u64),
        ));
    }
    use crate::mlflow::experiments::{in_postgres, in_snapshot};
    let before = match in_snapshot(&crate::mlflow::snapshot::SnapshotSource {
        repo: env.cfg.repository.clone(),
        snapshot: m.id.clone(),
        database: Some(name),
        trust: env.repo.trust().clone(),
        identity: env.cfg.restore.identity.clone(),
    })
    .await
    {
        Ok(b) => b,
        Err(e) => {
            missing.push(format!(
                "MLflow counts per experiment are left out: reading snapshot {}: {e}",
                m.id
            ));
            return Ok(());
        }
    };
    // A database the migration never reached has no tables: every experiment shows as missing.
    let after = in_postgres(&client).await.unwrap_or_default();
    let ids: BTreeSet<i64> = before.keys().chain(after.keys()).copied().collect();
    for id in ids {
        let (b, a) = (before.get(&id), after.get(&id));
        let label = format!(
            "{} (id {id})",
            b.or(a).map(|e| e.name.as_str()).unwrap_or("")
        );
        out.push(Count::cell(
            EXPERIMENTS,
            label.clone(),
            "runs",
            b.map(|e| e.runs),
            a.map(|e| e.runs),
        ));
        out.push(Count::cell(
            EXPERIMENTS,
            label,
            "metric points",
            b.map(|e| e.metric_points),
            a.map(|e| e.metric_points),
        ));
    }
    Ok(())
}

/// Per user namespace: its Profile, PVCs Bound to the volume they had, Notebooks.
async fn namespaces(
    env: &Env,
    m: &Manifest,
    k: &crate::repo::manifest::KubeSummary,
    out: &mut Vec<Count>,
) -> Result<()> {
    let index = crate::kube::pvc::snapshot_index(&env.repo, &m.id).await?;
    let rows = crate::kube::pvc::check(&env.workload, &index, &Default::default()).await?;
    out.push(Count::total(
        "PVCs Bound to their volume",
        Some(k.pvcs),
        Some(rows.iter().filter(|r| r.problem.is_none()).count() as u64),
    ));
    let stored = stored_objects(env, m).await?;
    let in_snapshot = |kind: &str| -> BTreeMap<String, u64> {
        let mut n = BTreeMap::new();
        for o in stored.iter().filter(|o| o.kind == kind) {
            // A Profile is cluster-scoped and named after its namespace.
            let ns = o.namespace.clone().unwrap_or_else(|| o.name.clone());
            *n.entry(ns).or_default() += 1;
        }
        n
    };
    let profiles_before = in_snapshot("Profile");
    let notebooks_before = in_snapshot("Notebook");
    let profiles_after = live(env, "Profile", true).await?;
    let notebooks_after = live(env, "Notebook", false).await?;
    out.push(Count::total(
        "Profiles",
        k.kinds
            .iter()
            .find(|x| x.kind == "Profile")
            .map(|x| x.objects),
        profiles_after
            .as_ref()
            .map(|p| p.values().copied().sum::<u64>()),
    ));
    let mut pvcs: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in &rows {
        let e = pvcs.entry(r.namespace.as_str()).or_default();
        e.0 += 1;
        e.1 += u64::from(r.problem.is_none());
    }
    let names: BTreeSet<String> = k
        .namespaces
        .iter()
        .cloned()
        .chain(pvcs.keys().map(|s| s.to_string()))
        .chain(profiles_before.keys().cloned())
        .collect();
    let per = |m: &BTreeMap<String, u64>, ns: &str| m.get(ns).copied().unwrap_or(0);
    for ns in &names {
        out.push(Count::cell(
            NAMESPACES,
            ns.clone(),
            "Profile",
            Some(per(&profiles_before, ns)),
            profiles_after.as_ref().map(|p| per(p, ns)),
        ));
        let (before, bound) = pvcs.get(ns.as_str()).copied().unwrap_or_default();
        out.push(Count::cell(
            NAMESPACES,
            ns.clone(),
            "PVCs Bound",
            Some(before),
            Some(bound),
        ));
        out.push(Count::cell(
            NAMESPACES,
            ns.clone(),
            "Notebooks",
            Some(per(&notebooks_before, ns)),
            notebooks_after.as_ref().map(|n| per(n, ns)),
        ));
    }
    Ok(())
}

/// Live objects of a kubeflow.org kind per namespace (a cluster-scoped Profile: its name);
/// `None` when the cluster does not serve the kind.
async fn live(env: &Env, kind: &str, by_name: bool) -> Result<Option<BTreeMap<String, u64>>> {
    let Some(r) = env.workload.resolve(kind, Some("kubeflow.org")) else {
        return Ok(None);
    };
    let mut n = BTreeMap::new();
    for o in env.workload.list(&r, None, None, None).await? {
        let key = if by_name {
            crate::kube::name_of(&o)
        } else {
            crate::kube::namespace_of(&o).unwrap_or_default()
        };
        *n.entry(key.to_string()).or_default() += 1;
    }
    Ok(Some(n))
}

/// `kubernetes/objects.json` of the snapshot: what it stored, by kind and namespace.
async fn stored_objects(env: &Env, m: &Manifest) -> Result<Vec<StoredObject>> {
    let Some(part) = m.part(PART).cloned() else {
        return Ok(Vec::new());
    };
    let found = env
        .repo
        .read_part(&m.id, &part, None, |found: &mut Option<Vec<u8>>, entry| {
            // The others are drained and checked by the reader, never held in memory.
            if entry.entry().path == OBJECTS_ENTRY {
                *found = Some(entry.read_bounded(crate::archive::MAX_INDEX_ENTRY)?);
            }
            Ok(())
        })
        .await?;
    let bytes =
        found.ok_or_else(|| Error::damaged(PART, OBJECTS_ENTRY, "missing from the part"))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::damaged(PART, OBJECTS_ENTRY, format!("not an object list: {e}")))
}
