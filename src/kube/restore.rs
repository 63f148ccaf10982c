//! Restore of a snapshot's Kubernetes part: server-side apply with field manager `amlmigrate`,
//! in dependency order (namespaces and profiles, volumes and claims, config, RBAC, policies,
//! then custom resources). An object that exists is left alone unless asked to update it, so a
//! re-run never duplicates anything. One object failing does not stop the others; the report
//! names each failure.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::backup::{OBJECTS_ENTRY, PART, StoredObject};
use super::objects::{Change, NamespaceMap, diff, from_yaml, prepare_for_restore};
use super::secrets::Identities;
use super::{Cluster, KubeOptions, Role, str_at};
use crate::error::{Error, Result};
use crate::progress::{Event, ProgressRef};
use crate::repo::Repository;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    /// Leave an existing object as it is.
    #[default]
    Skip,
    /// Apply the snapshot's fields over it (server-side apply, taking ownership).
    Update,
}

#[derive(Debug, Clone, Default)]
pub struct KubeRestoreOptions {
    pub access: KubeOptions,
    pub namespace_map: NamespaceMap,
    pub dry_run: bool,
    pub on_conflict: OnConflict,
    /// Only these kinds (empty: every kind the catalog marked for restore).
    pub kinds: Vec<String>,
    /// Only objects of these (snapshot) namespaces, plus cluster-scoped ones (empty: all).
    pub namespaces: Vec<String>,
    /// age identity file for encrypted Secrets.
    pub identity: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectResult {
    pub cluster: Role,
    pub kind: String,
    pub api_version: String,
    pub namespace: Option<String>,
    pub name: String,
    /// created, updated, unchanged, skipped, would create, would update, failed
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
}

/// Reads the part (fully checked against the manifest before anything is applied).
async fn read_objects(
    repo: &Repository,
    id: &str,
) -> Result<(Vec<StoredObject>, BTreeMap<String, Vec<u8>>)> {
    let m = repo.manifest(id).await?;
    let Some(part) = m.part(PART).cloned() else {
        return Err(Error::input(format!(
            "snapshot {id} has no Kubernetes part (it was taken without --kube); nothing to restore"
        )));
    };
    let files = repo
        .read_part(
            id,
            &part,
            BTreeMap::new(),
            |files: &mut BTreeMap<String, Vec<u8>>, entry| {
                let mut buf = Vec::new();
                entry
                    .read_to_end(&mut buf)
                    .map_err(|e| Error::io("reading the Kubernetes part", e))?;
                files.insert(entry.entry().path.clone(), buf);
                Ok(())
            },
        )
        .await?;
    let list = files
        .get(OBJECTS_ENTRY)
        .ok_or_else(|| Error::damaged(PART, OBJECTS_ENTRY, "missing from the part"))?;
    let stored: Vec<StoredObject> = serde_json::from_slice(list)
        .map_err(|e| Error::damaged(PART, OBJECTS_ENTRY, format!("not an object list: {e}")))?;
    Ok((stored, files))
}

pub async fn restore_kube(
    repo: &Repository,
    id: &str,
    opts: &KubeRestoreOptions,
    progress: &ProgressRef,
    cancel: &CancellationToken,
) -> Result<KubeRestoreReport> {
    let identities = opts.identity.as_deref().map(Identities::load).transpose()?;
    let (stored, files) = read_objects(repo, id).await?;
    let mut selected: Vec<&StoredObject> = stored
        .iter()
        .filter(|s| s.restore || opts.kinds.iter().any(|k| k == &s.kind))
        .filter(|s| opts.kinds.is_empty() || opts.kinds.iter().any(|k| k == &s.kind))
        .filter(|s| {
            opts.namespaces.is_empty()
                || match &s.namespace {
                    Some(ns) => opts.namespaces.contains(ns),
                    None => {
                        !matches!(s.kind.as_str(), "Namespace" | "Profile")
                            || opts.namespaces.contains(&s.name)
                    }
                }
        })
        .collect();
    selected.sort_by(|a, b| {
        (a.order, &a.cluster, &a.namespace, &a.name).cmp(&(
            b.order,
            &b.cluster,
            &b.namespace,
            &b.name,
        ))
    });
    let workload = Cluster::connect(&opts.access, Role::Workload).await?;
    let separate_global =
        opts.access.global_context.is_some() && opts.access.global_context != opts.access.context;
    let global = if separate_global && selected.iter().any(|s| s.cluster == Role::Global) {
        Some(Cluster::connect(&opts.access, Role::Global).await?)
    } else {
        None
    };
    progress.event(Event::TableStarted {
        db: "kubernetes".into(),
        table: "objects".into(),
        est_rows: selected.len() as u64,
    });
    let mut results = Vec::new();
    // Namespaces a dry run would create: their objects cannot be dry-run on the server.
    let mut pending_namespaces: BTreeSet<String> = BTreeSet::new();
    for (i, s) in selected.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(Error::Interrupted(format!(
                "restore stopped after {i} of {} objects; re-run the same command to finish \
                 (objects already restored are left as they are)",
                selected.len()
            )));
        }
        let cluster = match (s.cluster, &global) {
            (Role::Global, Some(g)) => g,
            _ => &workload,
        };
        let mut result = ObjectResult {
            cluster: s.cluster,
            kind: s.kind.clone(),
            api_version: s.api_version.clone(),
            namespace: s
                .namespace
                .as_deref()
                .map(|n| opts.namespace_map.map(n).to_string()),
            name: if matches!(s.kind.as_str(), "Namespace" | "Profile") {
                opts.namespace_map.map(&s.name).to_string()
            } else {
                s.name.clone()
            },
            action: String::new(),
            changes: Vec::new(),
            note: None,
            error: None,
        };
        match restore_one(
            cluster,
            s,
            &files,
            identities.as_ref(),
            opts,
            &mut pending_namespaces,
        )
        .await
        {
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
        results.push(result);
        progress.event(Event::TableProgress {
            db: "kubernetes".into(),
            table: "objects".into(),
            rows: i as u64 + 1,
            bytes: 0,
        });
    }
    Ok(KubeRestoreReport {
        snapshot: id.to_string(),
        dry_run: opts.dry_run,
        objects: results,
    })
}

type Outcome = (String, Vec<Change>, Option<String>);

async fn restore_one(
    cluster: &Cluster,
    s: &StoredObject,
    files: &BTreeMap<String, Vec<u8>>,
    identities: Option<&Identities>,
    opts: &KubeRestoreOptions,
    pending_namespaces: &mut BTreeSet<String>,
) -> Result<Outcome> {
    let raw = files.get(&s.path).ok_or_else(|| {
        Error::damaged(PART, &s.path, "listed in objects.json but not in the part")
    })?;
    let text = if s.encrypted {
        let Some(ids) = identities else {
            return Ok((
                "skipped".into(),
                Vec::new(),
                Some("encrypted in the snapshot; give --identity FILE to restore it".into()),
            ));
        };
        ids.decrypt(raw, &s.path)?
    } else {
        raw.clone()
    };
    let text =
        String::from_utf8(text).map_err(|_| Error::damaged(PART, &s.path, "not UTF-8 YAML"))?;
    let obj = prepare_for_restore(from_yaml(&text, &s.path)?, &opts.namespace_map);
    let r = cluster.resolve(&s.kind, Some(&s.group)).ok_or_else(|| {
        Error::other(format!(
            "the cluster {} does not serve {} ({}); install its CustomResourceDefinition \
                 (the plugin that owns it) first, then re-run",
            cluster.server, s.kind, s.api_version
        ))
    })?;
    let mut obj = obj;
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(r.ar.api_version.clone()));
    }
    let ns = str_at(&obj, "metadata.namespace").map(str::to_string);
    let name = str_at(&obj, "metadata.name").unwrap_or("").to_string();
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
    let live = cluster.get(&r, ns.as_deref(), &name).await?;
    if let Some(l) = &live
        && l.pointer("/metadata/deletionTimestamp").is_some()
    {
        return Err(Error::Refused(format!(
            "{} is being deleted (it has a deletionTimestamp); wait until it is gone, then re-run",
            super::object_name(&r, ns.as_deref(), &name)
        )));
    }
    let mut note = None;
    if s.kind == "PersistentVolumeClaim" && s.group.is_empty() {
        note = prepare_volume(cluster, &obj, opts.dry_run, live.is_some()).await?;
    }
    match live {
        Some(live) if opts.on_conflict == OnConflict::Skip => {
            if is_subset(&obj, &live) {
                Ok(("unchanged".into(), Vec::new(), note))
            } else {
                let changes = diff_wanted(&live, &obj);
                Ok((
                    "skipped".into(),
                    changes,
                    Some(
                        "exists and differs; --on-conflict update applies the snapshot's fields"
                            .into(),
                    ),
                ))
            }
        }
        Some(live) => {
            let after = cluster
                .apply(&r, ns.as_deref(), &name, &obj, true, opts.dry_run)
                .await?;
            let changes = diff(&live, &after);
            let action = match (changes.is_empty(), opts.dry_run) {
                (true, _) => "unchanged",
                (false, true) => "would update",
                (false, false) => "updated",
            };
            Ok((action.into(), changes, note))
        }
        None => {
            cluster
                .apply(&r, ns.as_deref(), &name, &obj, false, opts.dry_run)
                .await?;
            if opts.dry_run && s.kind == "Namespace" && s.group.is_empty() {
                pending_namespaces.insert(name.clone());
            }
            Ok((
                if opts.dry_run {
                    "would create"
                } else {
                    "created"
                }
                .into(),
                Vec::new(),
                note,
            ))
        }
    }
}

/// A claim names its volume; a Retain volume whose claim was deleted is Released and still
/// holds the old claim's uid, which keeps a new claim of the same name from binding. Clearing
/// the uid (only when the volume names this very claim) lets it bind again, data intact.
async fn prepare_volume(
    cluster: &Cluster,
    claim: &Value,
    dry_run: bool,
    claim_exists: bool,
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
        _ => Ok(None),
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

/// The fields of `want` that differ from `live` (what an update would change).
fn diff_wanted(live: &Value, want: &Value) -> Vec<Change> {
    diff(live, want)
        .into_iter()
        .filter(|c| c.new.is_some())
        .collect()
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
