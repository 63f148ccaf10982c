//! Restore of a snapshot's Kubernetes part. Every object is first checked against the catalog
//! in use (`admit.rs`, then scope and namespaces against the cluster); one that may not be
//! restored stops the restore before its first write. Then, in the catalog's order (namespaces
//! and profiles, volumes and claims, config, RBAC, policies, custom resources): a missing object
//! is created with server-side apply (field manager `amlmigrate`); an existing one is left
//! alone (`skip`) or made equal to the snapshot (`update`, see `converge.rs`), so a re-run
//! never duplicates anything. One object failing does not stop the others; the report names
//! each failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::admit::{self, Refusal, Request, admit};
use super::backup::{OBJECTS_ENTRY, PART, StoredObject};
use super::catalog::Catalog;
use super::converge;
use super::objects::{Change, NamespaceMap, prepare_for_restore};
use super::plan::{Planned, check_operator_namespaces, plan};
use super::secrets::Identities;
use super::volumes::VolumePolicy;
use super::{Cluster, KubeOptions, Resource, Role, name_of, namespace_of, str_at};
use crate::error::{Error, Result};
use crate::progress::{Event, ProgressRef};
use crate::repo::Repository;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    /// Leave an existing object as it is.
    #[default]
    Skip,
    /// Make it equal to the snapshot: change what differs, remove what the snapshot does not
    /// have (except status, server metadata and controller-owned fields; see `converge.rs`).
    Update,
}

#[derive(Debug, Clone, Default)]
pub struct KubeRestoreOptions {
    pub access: KubeOptions,
    /// The kinds that may be restored, and where (the operator's, never the snapshot's).
    pub catalog: Catalog,
    pub namespace_map: NamespaceMap,
    pub dry_run: bool,
    pub on_conflict: OnConflict,
    /// Only these kinds (empty: every kind the catalog marked for restore).
    pub kinds: Vec<String>,
    /// Only objects of these (snapshot) namespaces, plus cluster-scoped ones (empty: all).
    pub namespaces: Vec<String>,
    /// Only objects of this cluster (None: both).
    pub cluster: Option<Role>,
    /// age identity file for encrypted Secrets.
    pub identity: Option<PathBuf>,
    /// Which volumes the restore may create (see `volumes.rs`).
    pub volumes: VolumePolicy,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectResult {
    pub cluster: Role,
    pub kind: String,
    pub api_version: String,
    pub namespace: Option<String>,
    pub name: String,
    /// created, updated, unchanged, skipped, would create, would update, failed, refused
    pub action: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KubeRestoreReport {
    pub snapshot: String,
    pub dry_run: bool,
    pub objects: Vec<ObjectResult>,
    /// Some refused object shows that the snapshot was altered (only in a dry run's report:
    /// a real run stops with the error instead).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub damaged: bool,
}

impl KubeRestoreReport {
    pub fn count(&self, action: &str) -> usize {
        self.objects.iter().filter(|o| o.action == action).count()
    }
    pub fn failed(&self) -> Vec<&ObjectResult> {
        self.objects
            .iter()
            .filter(|o| o.action == "failed")
            .collect()
    }
    pub fn refused(&self) -> Vec<&ObjectResult> {
        self.objects
            .iter()
            .filter(|o| o.action == "refused")
            .collect()
    }
}

/// Reads the part (fully checked against the manifest before anything is applied), and the
/// snapshot's user namespaces.
async fn read_objects(
    repo: &Repository,
    id: &str,
) -> Result<(
    Vec<StoredObject>,
    BTreeMap<String, Vec<u8>>,
    BTreeSet<String>,
)> {
    let m = repo.manifest(id).await?;
    let Some(part) = m.part(PART).cloned() else {
        return Err(Error::input(format!(
            "snapshot {id} has no Kubernetes part (it was taken without --kube); nothing to restore"
        )));
    };
    // Read whole into memory: bounded per entry and per part by what the manifest declares.
    crate::archive::check_part_size(&part, crate::archive::MAX_PART_IN_MEMORY)?;
    let user_namespaces = m
        .kubernetes
        .as_ref()
        .map(|k| k.namespaces.iter().cloned().collect())
        .unwrap_or_default();
    let files = repo
        .read_part(
            id,
            &part,
            BTreeMap::new(),
            |files: &mut BTreeMap<String, Vec<u8>>, entry| {
                let path = entry.entry().path.clone();
                let limit = if path == OBJECTS_ENTRY || path == super::pvc::INDEX_ENTRY {
                    crate::archive::MAX_INDEX_ENTRY
                } else {
                    crate::archive::MAX_OBJECT_ENTRY
                };
                files.insert(path, entry.read_bounded(limit)?);
                Ok(())
            },
        )
        .await?;
    let list = files
        .get(OBJECTS_ENTRY)
        .ok_or_else(|| Error::damaged(PART, OBJECTS_ENTRY, "missing from the part"))?;
    let stored: Vec<StoredObject> = serde_json::from_slice(list)
        .map_err(|e| Error::damaged(PART, OBJECTS_ENTRY, format!("not an object list: {e}")))?;
    Ok((stored, files, user_namespaces))
}

pub async fn restore_kube(
    repo: &Repository,
    id: &str,
    opts: &KubeRestoreOptions,
    progress: &ProgressRef,
    cancel: &CancellationToken,
) -> Result<KubeRestoreReport> {
    let progress = &crate::progress::logged(progress.clone(), "kube restore");
    check_operator_namespaces(opts)?;
    let identities = opts.identity.as_deref().map(Identities::load).transpose()?;
    let (stored, files, user_namespaces) = read_objects(repo, id).await?;
    let req = Request {
        catalog: &opts.catalog,
        user_namespaces: &user_namespaces,
        kinds: &opts.kinds,
        namespaces: &opts.namespaces,
        cluster: opts.cluster,
        identities: identities.as_ref(),
    };
    let admission = admit(&stored, &files, &req)?;
    let (clusters, plan, refused) = plan(admission, opts).await?;
    if !refused.is_empty() && !opts.dry_run {
        return Err(refusal_error(&refused));
    }
    progress.event(Event::TableStarted {
        db: "kubernetes".into(),
        table: "objects".into(),
        est_rows: plan.len() as u64,
    });
    let mut results = Vec::new();
    // Namespaces a dry run would create: their objects cannot be dry-run on the server.
    let mut pending_namespaces: BTreeSet<String> = BTreeSet::new();
    for (i, p) in plan.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(Error::Interrupted(format!(
                "restore stopped after {i} of {} objects; re-run the same command to finish \
                 (objects already restored are left as they are)",
                plan.len()
            )));
        }
        let cluster = clusters.of(p.admitted.stored.cluster);
        results.push(restore_planned(cluster, p, opts, &mut pending_namespaces).await?);
        progress.event(Event::TableProgress {
            db: "kubernetes".into(),
            table: "objects".into(),
            rows: i as u64 + 1,
            bytes: 0,
        });
    }
    results.extend(refused.iter().map(|r| {
        let s = &r.stored;
        ObjectResult {
            cluster: s.cluster,
            kind: s.kind.clone(),
            api_version: s.api_version.clone(),
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            action: "refused".into(),
            changes: Vec::new(),
            note: None,
            error: Some(r.reason.clone()),
        }
    }));
    Ok(KubeRestoreReport {
        snapshot: id.to_string(),
        dry_run: opts.dry_run,
        objects: results,
        damaged: refused.iter().any(|r| r.damaged),
    })
}

/// Restores one planned object and says what became of it; only a lost connection is an
/// error, anything else is that object's failure.
async fn restore_planned(
    cluster: &Cluster,
    p: &Planned<'_>,
    opts: &KubeRestoreOptions,
    pending_namespaces: &mut BTreeSet<String>,
) -> Result<ObjectResult> {
    let s = p.admitted.stored;
    let prepared = p
        .admitted
        .object
        .clone()
        .map(|o| prepare_for_restore(o, &opts.namespace_map));
    // What is written, exactly: the prepared object's identity.
    let (namespace, name) = match &prepared {
        Some(o) => (namespace_of(o).map(str::to_string), name_of(o).to_string()),
        None => (
            s.namespace
                .as_deref()
                .map(|n| opts.namespace_map.map(n).to_string()),
            s.name.clone(),
        ),
    };
    let mut result = ObjectResult {
        cluster: s.cluster,
        kind: s.kind.clone(),
        api_version: p
            .resource
            .as_ref()
            .map(|r| r.ar.api_version.clone())
            .unwrap_or_else(|| s.api_version.clone()),
        namespace,
        name,
        action: String::new(),
        changes: Vec::new(),
        note: None,
        error: None,
    };
    let outcome = match (prepared, &p.resource) {
        (None, _) => Ok((
            "skipped".to_string(),
            Vec::new(),
            Some("encrypted in the snapshot; give --identity FILE to restore it".to_string()),
        )),
        (Some(_), None) => Err(Error::other(format!(
            "the cluster {} does not serve {} ({}); install its CustomResourceDefinition \
             (the plugin that owns it) first, then re-run",
            cluster.server, s.kind, s.api_version
        ))),
        (Some(obj), Some(r)) => restore_one(cluster, r, obj, opts, pending_namespaces).await,
    };
    match outcome {
        Ok((action, changes, note)) => {
            result.action = action;
            result.changes = changes;
            result.note = note;
        }
        Err(e @ Error::Connection(_)) => return Err(e),
        Err(e) => {
            result.action = "failed".into();
            result.error = Some(e.to_string());
        }
    }
    Ok(result)
}

/// The error of a restore that refused objects: nothing was written. Damaged when the
/// snapshot contradicts itself, refused when it holds what the catalog does not allow.
pub fn refusal_error(refused: &[Refusal]) -> Error {
    let list: Vec<String> = refused
        .iter()
        .map(|r| format!("{}: {}", admit::describe(&r.stored), r.reason))
        .collect();
    let msg = format!(
        "{} object(s) of the snapshot may not be restored, so nothing was written:\n  {}\n\
         A snapshot holds only what the catalog allows; one that holds more was altered or \
         taken with another catalog (--kube-catalog). Restore the rest with --kinds / \
         --namespaces, or use a snapshot you trust",
        refused.len(),
        list.join("\n  ")
    );
    if refused.iter().any(|r| r.damaged) {
        Error::damaged(PART, OBJECTS_ENTRY, msg)
    } else {
        Error::Refused(msg)
    }
}

type Outcome = (String, Vec<Change>, Option<String>);

async fn restore_one(
    cluster: &Cluster,
    r: &Resource,
    mut obj: Value,
    opts: &KubeRestoreOptions,
    pending_namespaces: &mut BTreeSet<String>,
) -> Result<Outcome> {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(r.ar.api_version.clone()));
    }
    let ns = namespace_of(&obj).map(str::to_string);
    let name = name_of(&obj).to_string();
    let core = |kind: &str| r.ar.kind == kind && r.ar.group.is_empty();
    if opts.dry_run
        && ns
            .as_deref()
            .is_some_and(|n| pending_namespaces.contains(n))
    {
        return Ok((
            "would create".into(),
            Vec::new(),
            Some(format!(
                "namespace {} is created first",
                ns.unwrap_or_default()
            )),
        ));
    }
    let live = cluster.get(r, ns.as_deref(), &name).await?;
    if let Some(l) = &live
        && l.pointer("/metadata/deletionTimestamp").is_some()
    {
        return Err(Error::Refused(format!(
            "{} is being deleted (it has a deletionTimestamp); wait until it is gone, then re-run",
            super::object_name(r, ns.as_deref(), &name)
        )));
    }
    let mapped = !opts.namespace_map.0.is_empty();
    let mut note = None;
    if core("PersistentVolumeClaim") {
        note = prepare_volume(cluster, &obj, opts.dry_run, live.is_some(), mapped).await?;
    }
    let Some(live) = live else {
        cluster
            .apply(r, ns.as_deref(), &name, &obj, false, opts.dry_run)
            .await?;
        if opts.dry_run && core("Namespace") {
            pending_namespaces.insert(name.clone());
        }
        let action = if opts.dry_run {
            "would create"
        } else {
            "created"
        };
        return Ok((action.into(), Vec::new(), note));
    };
    let changes = converge::changes(&live, &obj);
    if changes.is_empty() {
        return Ok(("unchanged".into(), Vec::new(), note));
    }
    if core("PersistentVolume") {
        return Ok((
            "skipped".into(),
            changes,
            Some(
                "exists; a restore never changes a live volume, it only lets its claim bind \
                 again"
                    .into(),
            ),
        ));
    }
    if mapped && !r.namespaced {
        return Ok((
            "skipped".into(),
            changes,
            Some(
                "exists; with --namespace-map existing cluster-scoped objects are never changed, \
                 so those of the original namespaces stay as they are"
                    .into(),
            ),
        ));
    }
    if opts.on_conflict == OnConflict::Skip {
        return Ok((
            "skipped".into(),
            changes,
            Some("exists and differs; --on-conflict update makes it equal to the snapshot".into()),
        ));
    }
    let patch = converge::merge_patch(&live, &obj).expect("differing objects need a patch");
    let after = cluster
        .merge_patch(r, ns.as_deref(), &name, &patch, opts.dry_run)
        .await?;
    let left = converge::changes(&after, &obj);
    if !left.is_empty() {
        let paths: Vec<&str> = left.iter().map(|c| c.path.as_str()).collect();
        note = Some(format!(
            "the server keeps {} field(s) different from the snapshot: {}",
            left.len(),
            paths.join(", ")
        ));
    }
    let action = if opts.dry_run {
        "would update"
    } else {
        "updated"
    };
    Ok((action.into(), converge::changes(&live, &after), note))
}

/// A claim names its volume; a Retain volume whose claim was deleted is Released and still
/// holds the old claim's uid, which keeps a new claim of the same name from binding. Clearing
/// the uid (only when the volume names this very claim) lets it bind again, data intact.
async fn prepare_volume(
    cluster: &Cluster,
    claim: &Value,
    dry_run: bool,
    claim_exists: bool,
    mapped: bool,
) -> Result<Option<String>> {
    let Some(volume) = str_at(claim, "spec.volumeName").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if claim_exists {
        return Ok(None);
    }
    let Some(pvr) = cluster.resolve("PersistentVolume", Some("")) else {
        return Ok(None);
    };
    let Some(pv) = cluster.get(&pvr, None, volume).await? else {
        return Ok(Some(format!(
            "volume {volume} does not exist; the claim stays Pending until it does"
        )));
    };
    let ns = str_at(claim, "metadata.namespace").unwrap_or("");
    let name = str_at(claim, "metadata.name").unwrap_or("");
    let (ref_ns, ref_name) = (
        str_at(&pv, "spec.claimRef.namespace"),
        str_at(&pv, "spec.claimRef.name"),
    );
    match (ref_ns, ref_name) {
        (Some(rn), Some(rname)) if rn == ns && rname == name => {
            if str_at(&pv, "spec.claimRef.uid").is_none() {
                return Ok(None);
            }
            if mapped {
                return Ok(Some(format!(
                    "volume {volume} still holds the old claim's uid; with --namespace-map \
                     existing volumes are never changed: restore without it to rebind"
                )));
            }
            let patch = json!({"spec": {"claimRef": {"uid": null, "resourceVersion": null}}});
            cluster
                .merge_patch(&pvr, None, volume, &patch, dry_run)
                .await?;
            Ok(Some(format!(
                "volume {volume} ({}) {} for this claim to bind again",
                str_at(&pv, "status.phase").unwrap_or("no phase"),
                if dry_run {
                    "would be released"
                } else {
                    "released"
                }
            )))
        }
        (Some(rn), Some(rname)) => Err(Error::Refused(format!(
            "volume {volume} is claimed by {rn}/{rname}, not {ns}/{name}; restoring this claim \
             would not bind it. Restore with --namespace-map to the namespace the volume names, \
             or free the volume first"
        ))),
        _ => Err(Error::Refused(format!(
            "volume {volume} is free on the cluster (no claimRef); a restored claim never takes \
             a live volume the snapshot did not record for it"
        ))),
    }
}

/// True when every field `want` sets has the same value in `have` (the server adds defaults).
pub fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w.iter().all(|(k, v)| match h.get(k) {
            Some(hv) => is_subset(v, hv),
            None => v.is_null(),
        }),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| is_subset(a, b))
        }
        _ => want == have,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_ignores_server_defaults_but_not_changed_values() {
        let want = json!({"spec":{"a":1,"l":[{"x":1}]},"metadata":{"name":"n"}});
        let have =
            json!({"spec":{"a":1,"b":2,"l":[{"x":1,"d":0}]},"metadata":{"name":"n","uid":"u"}});
        assert!(is_subset(&want, &have));
        let changed = json!({"spec":{"a":2},"metadata":{"name":"n"}});
        assert!(!is_subset(&changed, &have));
        let longer = json!({"spec":{"l":[{"x":1},{"x":2}]}});
        assert!(!is_subset(&longer, &have));
    }
}
