//! PersistentVolumeClaims of user namespaces: the index every Kubernetes snapshot carries, the
//! live listing, protection of their volumes (reclaim policy Retain, the old value kept in an
//! annotation) and the check that every claim of a snapshot is still Bound to its volume.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Cluster, at, name_of, namespace_of, str_at};
use crate::error::{Error, Result};
use crate::repo::Repository;

/// Where `pvc protect` keeps a volume's reclaim policy from before, for `pvc unprotect`.
pub const ORIGINAL_POLICY_ANNOTATION: &str = "amlmigrate.alauda.io/original-reclaim-policy";
/// The index inside a snapshot's Kubernetes part.
pub const INDEX_ENTRY: &str = "kubernetes/pvc-index.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mounter {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PvcRecord {
    pub namespace: String,
    pub name: String,
    pub storage_class: Option<String>,
    /// Capacity of the bound claim (or the request while unbound).
    pub capacity: Option<String>,
    pub access_modes: Vec<String>,
    /// The bound PersistentVolume.
    pub volume: Option<String>,
    pub reclaim_policy: Option<String>,
    pub phase: Option<String>,
    pub mounted_by: Vec<Mounter>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Claims a Notebook, Tensorboard or Pod mounts.
fn claims_of(obj: &Value) -> Vec<String> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let volumes = match kind {
        "Notebook" => at(obj, "spec.template.spec.volumes"),
        "Pod" => at(obj, "spec.volumes"),
        "Tensorboard" => {
            // logspath: pvc://<claim>/<path>
            return str_at(obj, "spec.logspath")
                .and_then(|p| p.strip_prefix("pvc://"))
                .map(|rest| rest.split('/').next().unwrap_or("").to_string())
                .filter(|c| !c.is_empty())
                .into_iter()
                .collect();
        }
        _ => None,
    };
    volumes
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter_map(|v| str_at(v, "persistentVolumeClaim.claimName").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Builds the index from the claims, the volumes and the objects that may mount them.
pub fn build_index(pvcs: &[Value], pvs: &[Value], mounters: &[Value]) -> Vec<PvcRecord> {
    let pv_by_name: BTreeMap<&str, &Value> = pvs.iter().map(|p| (name_of(p), p)).collect();
    let mut mounts: BTreeMap<(String, String), Vec<Mounter>> = BTreeMap::new();
    for m in mounters {
        let ns = namespace_of(m).unwrap_or("").to_string();
        for claim in claims_of(m) {
            let list = mounts.entry((ns.clone(), claim)).or_default();
            let mm = Mounter {
                kind: m
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                name: name_of(m).to_string(),
            };
            if !list.contains(&mm) {
                list.push(mm);
            }
        }
    }
    let mut out: Vec<PvcRecord> = pvcs
        .iter()
        .map(|c| {
            let ns = namespace_of(c).unwrap_or("").to_string();
            let name = name_of(c).to_string();
            let volume = str_at(c, "spec.volumeName")
                .filter(|v| !v.is_empty())
                .map(str::to_string);
            let pv = volume.as_deref().and_then(|v| pv_by_name.get(v));
            let mut access = strings(at(c, "status.accessModes"));
            if access.is_empty() {
                access = strings(at(c, "spec.accessModes"));
            }
            PvcRecord {
                storage_class: str_at(c, "spec.storageClassName").map(str::to_string),
                capacity: str_at(c, "status.capacity.storage")
                    .or_else(|| str_at(c, "spec.resources.requests.storage"))
                    .map(str::to_string),
                access_modes: access,
                reclaim_policy: pv
                    .and_then(|p| str_at(p, "spec.persistentVolumeReclaimPolicy"))
                    .map(str::to_string),
                phase: str_at(c, "status.phase").map(str::to_string),
                mounted_by: mounts
                    .remove(&(ns.clone(), name.clone()))
                    .unwrap_or_default(),
                volume,
                namespace: ns,
                name,
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

/// User namespaces: the ones given, else the namespaces of Kubeflow Profiles (a Profile owns
/// the namespace of its name), namespaces labelled as profile namespaces, and namespaces that
/// hold Notebooks or Tensorboards.
pub async fn user_namespaces(cluster: &Cluster, given: &[String]) -> Result<Vec<String>> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let mut out = BTreeSet::new();
    if let Some(r) = cluster.resolve("Profile", Some("kubeflow.org")) {
        for p in cluster.list(&r, None, None, None).await? {
            out.insert(name_of(&p).to_string());
        }
    }
    let nsr = cluster.need("Namespace", "")?;
    let existing: BTreeSet<String> = cluster
        .list(&nsr, None, None, None)
        .await?
        .iter()
        .map(|n| name_of(n).to_string())
        .collect();
    for n in cluster
        .list(
            &nsr,
            None,
            Some("app.kubernetes.io/part-of=kubeflow-profile"),
            None,
        )
        .await?
    {
        out.insert(name_of(&n).to_string());
    }
    for (kind, group) in [
        ("Notebook", "kubeflow.org"),
        ("Tensorboard", "tensorboard.kubeflow.org"),
    ] {
        if let Some(r) = cluster.resolve(kind, Some(group)) {
            for o in cluster.list(&r, None, None, None).await? {
                if let Some(ns) = namespace_of(&o) {
                    out.insert(ns.to_string());
                }
            }
        }
    }
    // A Profile whose namespace is gone has no claims to index.
    Ok(out.into_iter().filter(|n| existing.contains(n)).collect())
}

/// Claims, their volumes and their mounters in `namespaces`, live.
pub struct Live {
    pub pvcs: Vec<Value>,
    pub pvs: Vec<Value>,
    pub mounters: Vec<Value>,
    /// Mounter kinds that could not be listed (not served, or forbidden), for a notice.
    pub notices: Vec<String>,
}

pub async fn fetch(cluster: &Cluster, namespaces: &[String]) -> Result<Live> {
    let pvcr = cluster.need("PersistentVolumeClaim", "")?;
    let pvr = cluster.need("PersistentVolume", "")?;
    let mut pvcs = Vec::new();
    for ns in namespaces {
        pvcs.extend(cluster.list(&pvcr, Some(ns), None, None).await?);
    }
    let wanted: BTreeSet<&str> = pvcs
        .iter()
        .filter_map(|c| str_at(c, "spec.volumeName"))
        .collect();
    let pvs: Vec<Value> = cluster
        .list(&pvr, None, None, None)
        .await?
        .into_iter()
        .filter(|p| wanted.contains(name_of(p)))
        .collect();
    let mut mounters = Vec::new();
    let mut notices = Vec::new();
    for (kind, group) in [
        ("Notebook", "kubeflow.org"),
        ("Tensorboard", "tensorboard.kubeflow.org"),
        ("Pod", ""),
    ] {
        let Some(r) = cluster.resolve(kind, Some(group)) else {
            continue;
        };
        // A scheduled backup without fixed namespaces may not list Pods: one notice, not one
        // per namespace.
        let mut forbidden = Vec::new();
        for ns in namespaces {
            match cluster.list(&r, Some(ns), None, None).await {
                Ok(list) => mounters.extend(list),
                Err(Error::Forbidden(_)) => forbidden.push(ns.as_str()),
                Err(e) => return Err(e),
            }
        }
        if !forbidden.is_empty() {
            notices.push(format!(
                "who mounts claims: {kind}s not listed in {} (forbidden); the PVC index names \
                 the other mounters only",
                forbidden.join(", ")
            ));
        }
    }
    Ok(Live {
        pvcs,
        pvs,
        mounters,
        notices,
    })
}

/// The live index of `namespaces` (user namespaces when empty).
pub async fn live_index(
    cluster: &Cluster,
    namespaces: &[String],
) -> Result<(Vec<PvcRecord>, Vec<String>)> {
    let ns = user_namespaces(cluster, namespaces).await?;
    let live = fetch(cluster, &ns).await?;
    Ok((
        build_index(&live.pvcs, &live.pvs, &live.mounters),
        live.notices,
    ))
}

#[derive(Debug, Clone, Serialize)]
pub struct VolumeChange {
    pub volume: String,
    /// `namespace/name` of the claim.
    pub claim: String,
    pub from: Option<String>,
    pub to: Option<String>,
    /// `changed`, `would change`, `unchanged`.
    pub action: String,
}

/// Sets the reclaim policy of every volume bound to a claim of `namespaces` to Retain,
/// recording the old policy. Volumes already on Retain are left as they are.
pub async fn protect(
    cluster: &Cluster,
    namespaces: &[String],
    dry_run: bool,
) -> Result<Vec<VolumeChange>> {
    let pvr = cluster.need("PersistentVolume", "")?;
    let (index, _) = live_index(cluster, namespaces).await?;
    let mut out = Vec::new();
    for rec in index {
        let Some(volume) = rec.volume.clone() else {
            continue;
        };
        let claim = format!("{}/{}", rec.namespace, rec.name);
        let Some(pv) = cluster.get(&pvr, None, &volume).await? else {
            continue;
        };
        let policy = str_at(&pv, "spec.persistentVolumeReclaimPolicy").map(str::to_string);
        if policy.as_deref() == Some("Retain") {
            out.push(VolumeChange {
                volume,
                claim,
                from: policy.clone(),
                to: policy,
                action: "unchanged".into(),
            });
            continue;
        }
        let patch = json!({
            "metadata": {"annotations": {ORIGINAL_POLICY_ANNOTATION: policy.clone().unwrap_or_else(|| "Delete".into())}},
            "spec": {"persistentVolumeReclaimPolicy": "Retain"},
        });
        cluster
            .merge_patch(&pvr, None, &volume, &patch, dry_run)
            .await?;
        out.push(VolumeChange {
            volume,
            claim,
            from: policy,
            to: Some("Retain".into()),
            action: if dry_run { "would change" } else { "changed" }.into(),
        });
    }
    Ok(out)
}

/// Puts back the reclaim policy `protect` recorded, on every volume that carries the record.
pub async fn unprotect(cluster: &Cluster, dry_run: bool) -> Result<Vec<VolumeChange>> {
    let pvr = cluster.need("PersistentVolume", "")?;
    let mut out = Vec::new();
    for pv in cluster.list(&pvr, None, None, None).await? {
        let Some(old) = pv
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(ORIGINAL_POLICY_ANNOTATION))
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            continue;
        };
        let name = name_of(&pv).to_string();
        let claim = match (
            str_at(&pv, "spec.claimRef.namespace"),
            str_at(&pv, "spec.claimRef.name"),
        ) {
            (Some(ns), Some(n)) => format!("{ns}/{n}"),
            _ => String::new(),
        };
        let patch = json!({
            "metadata": {"annotations": {ORIGINAL_POLICY_ANNOTATION: null}},
            "spec": {"persistentVolumeReclaimPolicy": old},
        });
        cluster
            .merge_patch(&pvr, None, &name, &patch, dry_run)
            .await?;
        out.push(VolumeChange {
            volume: name,
            claim,
            from: str_at(&pv, "spec.persistentVolumeReclaimPolicy").map(str::to_string),
            to: Some(old),
            action: if dry_run { "would change" } else { "changed" }.into(),
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckRow {
    pub namespace: String,
    pub name: String,
    pub volume: Option<String>,
    pub live_volume: Option<String>,
    pub phase: Option<String>,
    /// None when the claim is as the snapshot recorded it.
    pub problem: Option<String>,
}

/// Proves that every claim in a snapshot's index still exists, is Bound, to the same volume.
pub async fn check(
    cluster: &Cluster,
    index: &[PvcRecord],
    nsmap: &super::objects::NamespaceMap,
) -> Result<Vec<CheckRow>> {
    let pvcr = cluster.need("PersistentVolumeClaim", "")?;
    let mut out = Vec::new();
    for rec in index {
        let ns = nsmap.map(&rec.namespace).to_string();
        let live = cluster.get(&pvcr, Some(&ns), &rec.name).await?;
        let (live_volume, phase) = match &live {
            Some(c) => (
                str_at(c, "spec.volumeName").map(str::to_string),
                str_at(c, "status.phase").map(str::to_string),
            ),
            None => (None, None),
        };
        let deleting = live
            .as_ref()
            .and_then(|c| str_at(c, "metadata.deletionTimestamp"));
        let problem = if live.is_none() {
            Some("missing".to_string())
        } else if let Some(since) = deleting {
            // Still readable, but going (kubernetes.io/pvc-protection holds it while mounted).
            Some(format!("being deleted (since {since})"))
        } else if phase.as_deref() != Some("Bound") {
            Some(format!(
                "not Bound ({})",
                phase.as_deref().unwrap_or("no phase")
            ))
        } else if rec.volume.is_some() && live_volume != rec.volume {
            Some(format!(
                "bound to {}, the snapshot had {}",
                live_volume.as_deref().unwrap_or("nothing"),
                rec.volume.as_deref().unwrap_or("nothing")
            ))
        } else {
            None
        };
        out.push(CheckRow {
            namespace: ns,
            name: rec.name.clone(),
            volume: rec.volume.clone(),
            live_volume,
            phase,
            problem,
        });
    }
    Ok(out)
}

/// The PVC index stored in a snapshot (read and checked against the manifest).
pub async fn snapshot_index(repo: &Repository, id: &str) -> Result<Vec<PvcRecord>> {
    let m = repo.manifest(id).await?;
    let Some(part) = m.part(super::backup::PART).cloned() else {
        return Err(Error::input(format!(
            "snapshot {id} has no Kubernetes part; take one with `amlmigrate backup --kube`"
        )));
    };
    let found = repo
        .read_part(id, &part, None, |found: &mut Option<Vec<u8>>, entry| {
            // The others are drained and checked by the reader, never held in memory.
            if entry.entry().path == INDEX_ENTRY {
                *found = Some(entry.read_bounded(crate::archive::MAX_INDEX_ENTRY)?);
            }
            Ok(())
        })
        .await?;
    let bytes = found
        .ok_or_else(|| Error::damaged(super::backup::PART, INDEX_ENTRY, "missing from the part"))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::damaged(
            super::backup::PART,
            INDEX_ENTRY,
            format!("not a PVC index: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_joins_claims_volumes_and_mounters() {
        let pvcs = vec![
            json!({"kind":"PersistentVolumeClaim","metadata":{"name":"ws","namespace":"a"},
                "spec":{"storageClassName":"sc","volumeName":"pv1","accessModes":["ReadWriteOnce"],
                "resources":{"requests":{"storage":"5Gi"}}},
                "status":{"phase":"Bound","capacity":{"storage":"10Gi"},"accessModes":["ReadWriteOnce"]}}),
            json!({"kind":"PersistentVolumeClaim","metadata":{"name":"logs","namespace":"a"},
                "spec":{"accessModes":["ReadWriteMany"],"resources":{"requests":{"storage":"1Gi"}}},
                "status":{"phase":"Pending"}}),
        ];
        let pvs = vec![json!({"kind":"PersistentVolume","metadata":{"name":"pv1"},
            "spec":{"persistentVolumeReclaimPolicy":"Delete"}})];
        let mounters = vec![
            json!({"kind":"Notebook","metadata":{"name":"nb","namespace":"a"},
                "spec":{"template":{"spec":{"volumes":[{"name":"w","persistentVolumeClaim":{"claimName":"ws"}},{"name":"d","emptyDir":{}}]}}}}),
            json!({"kind":"Tensorboard","metadata":{"name":"tb","namespace":"a"},"spec":{"logspath":"pvc://logs/run1"}}),
            json!({"kind":"Pod","metadata":{"name":"nb-0","namespace":"a"},
                "spec":{"volumes":[{"name":"w","persistentVolumeClaim":{"claimName":"ws"}}]}}),
            json!({"kind":"Pod","metadata":{"name":"other","namespace":"b"},
                "spec":{"volumes":[{"name":"w","persistentVolumeClaim":{"claimName":"ws"}}]}}),
        ];
        let idx = build_index(&pvcs, &pvs, &mounters);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx[0].name, "logs");
        assert_eq!(idx[0].capacity.as_deref(), Some("1Gi"));
        assert_eq!(idx[0].volume, None);
        assert_eq!(
            idx[0].mounted_by,
            vec![Mounter {
                kind: "Tensorboard".into(),
                name: "tb".into()
            }]
        );
        let ws = &idx[1];
        assert_eq!(ws.capacity.as_deref(), Some("10Gi"));
        assert_eq!(ws.reclaim_policy.as_deref(), Some("Delete"));
        assert_eq!(ws.phase.as_deref(), Some("Bound"));
        assert_eq!(
            ws.mounted_by
                .iter()
                .map(|m| format!("{}/{}", m.kind, m.name))
                .collect::<Vec<_>>(),
            ["Notebook/nb", "Pod/nb-0"]
        );
    }
}
