//! What a restored volume may point at. A snapshot can be forged whole, claim and volume
//! together, so "bound to a claim this restore restores" is not enough: a `hostPath: /` volume
//! pre-bound to a forged claim hands the node's root filesystem to whoever mounts the claim.
//! So, against the live cluster, before anything is written:
//!
//! - a volume the cluster has is the snapshot's only when the cluster binds it to the same
//!   claim the snapshot does (a Retain volume left Released, or still Bound); a restore never
//!   changes it (see `restore.rs`), it only lets the claim bind again;
//! - a volume the cluster lacks is created only when its source is a CSI volume of a driver and
//!   storage class the operator named (`--volume-driver`, `--volume-class`) and carries no
//!   Secret references; `hostPath`, `local`, CSI Secrets or any other source only when
//!   `--allow-volume-source` names it;
//! - a restored claim that names a volume (`spec.volumeName`) never takes a live volume that is
//!   free or pre-bound to it without the snapshot restoring that very volume.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::admit::Refusal;
use super::{Cluster, str_at};
use crate::error::Result;

/// The operator's word on which volumes a restore may create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VolumePolicy {
    /// CSI drivers whose volumes may be created (`topolvm.io`).
    pub drivers: Vec<String>,
    /// Storage classes a created CSI volume may name (`""` for none).
    pub classes: Vec<String>,
    /// Sources refused otherwise: `hostPath`, `local`, `csi-secrets` (CSI Secret references),
    /// or another PersistentVolume source field (`nfs`).
    pub allow_sources: Vec<String>,
}

/// The source fields of a PersistentVolume spec (core/v1 PersistentVolumeSource).
const SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

/// The claim a volume is bound to (`spec.claimRef`), as `namespace/name`.
pub fn claim_of(pv: &Value) -> Option<String> {
    match (
        str_at(pv, "spec.claimRef.namespace"),
        str_at(pv, "spec.claimRef.name"),
    ) {
        (Some(ns), Some(n)) => Some(format!("{ns}/{n}")),
        _ => None,
    }
}

/// Why a volume the cluster does not have may not be created as the snapshot has it.
pub fn creation_refusal(pv: &Value, policy: &VolumePolicy) -> Option<String> {
    let spec = pv.get("spec").and_then(Value::as_object);
    let sources: Vec<&str> = SOURCES
        .iter()
        .copied()
        .filter(|s| spec.is_some_and(|m| m.contains_key(*s)))
        .collect();
    let allowed = |s: &str| policy.allow_sources.iter().any(|a| a == s);
    let [source] = sources[..] else {
        return Some(format!(
            "a PersistentVolume has exactly one source, this one {} ({})",
            sources.len(),
            sources.join(", ")
        ));
    };
    if source != "csi" {
        return (!allowed(source)).then(|| {
            format!(
                "the cluster has no such volume, and a {source} volume is created from a \
                 snapshot only when the operator names that source (--allow-volume-source \
                 {source}): the snapshot does not choose what a volume points at"
            )
        });
    }
    let csi = pv.pointer("/spec/csi");
    let secrets: Vec<String> = csi
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.ends_with("SecretRef"))
                .map(|(k, v)| {
                    format!(
                        "{k} {}/{}",
                        str_at(v, "namespace").unwrap_or("?"),
                        str_at(v, "name").unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if !secrets.is_empty() && !allowed("csi-secrets") {
        return Some(format!(
            "its CSI source names Secrets ({}); a volume that does is created from a snapshot \
             only with --allow-volume-source csi-secrets",
            secrets.join(", ")
        ));
    }
    let driver = csi.and_then(|c| str_at(c, "driver")).unwrap_or_default();
    if !policy.drivers.iter().any(|d| d == driver) {
        return Some(format!(
            "the cluster has no such volume, and its CSI driver {driver:?} is not one the \
             operator allows (--volume-driver)"
        ));
    }
    let class = str_at(pv, "spec.storageClassName").unwrap_or_default();
    if !policy.classes.iter().any(|c| c == class) {
        return Some(format!(
            "the cluster has no such volume, and its storage class {class:?} is not one the \
             operator allows (--volume-class)"
        ));
    }
    None
}

/// Why a volume the cluster has is not the snapshot's volume: the cluster binds it to another
/// claim, or to none.
pub fn existing_refusal(live: &Value, stored_claim: Option<&str>) -> Option<String> {
    let live_claim = claim_of(live);
    (live_claim.as_deref() != stored_claim).then(|| {
        format!(
            "the cluster's volume of this name is {}, but the snapshot binds it to {}; a \
             restore never rebinds a live volume",
            match &live_claim {
                Some(c) => format!("bound to claim {c}"),
                None => "free (no claimRef)".into(),
            },
            stored_claim.unwrap_or("no claim")
        )
    })
}

/// Why a restored claim may not name the live volume `pv`; `planned` are the volumes this
/// restore writes, by name, with the claim each is bound to.
pub fn claim_refusal(
    claim: &str,
    volume: &str,
    pv: &Value,
    planned: &BTreeMap<String, Option<String>>,
) -> Option<String> {
    let restores_it = planned
        .get(volume)
        .is_some_and(|c| c.as_deref() == Some(claim));
    match claim_of(pv) {
        None if !restores_it => Some(format!(
            "its volume {volume} (spec.volumeName) is free on the cluster (no claimRef); a \
             restored claim never takes a live volume the snapshot did not record for it"
        )),
        Some(c) if c == claim && str_at(pv, "spec.claimRef.uid").is_none() && !restores_it => {
            Some(format!(
                "its volume {volume} (spec.volumeName) is pre-bound to {claim} on the cluster, \
                 but was never bound to it, and the snapshot does not restore that volume"
            ))
        }
        _ => None,
    }
}

/// Refusals of every volume and claim of the plan that the rules above forbid; the caller
/// removes the refused objects from the plan. `items` are (index, kind, prepared object,
/// stored claimRef of a volume).
pub async fn check_plan(
    cluster: &Cluster,
    items: &[(usize, &str, &Value, Option<String>)],
    policy: &VolumePolicy,
) -> Result<Vec<(usize, String)>> {
    let mut out = Vec::new();
    let Some(pvr) = cluster.resolve("PersistentVolume", Some("")) else {
        return Ok(out);
    };
    let pvcr = cluster.resolve("PersistentVolumeClaim", Some(""));
    let planned: BTreeMap<String, Option<String>> = items
        .iter()
        .filter(|(_, kind, _, _)| *kind == "PersistentVolume")
        .map(|(_, _, o, _)| (super::name_of(o).to_string(), claim_of(o)))
        .collect();
    for (i, kind, obj, stored_claim) in items {
        let name = super::name_of(obj);
        match *kind {
            "PersistentVolume" => {
                let why = match cluster.get(&pvr, None, name).await? {
                    Some(live) => existing_refusal(&live, stored_claim.as_deref()),
                    None => creation_refusal(obj, policy),
                };
                out.extend(why.map(|w| (*i, w)));
            }
            "PersistentVolumeClaim" => {
                let Some(volume) = str_at(obj, "spec.volumeName").filter(|v| !v.is_empty()) else {
                    continue;
                };
                let ns = super::namespace_of(obj).unwrap_or_default();
                // A claim that exists is never changed by a restore: nothing to bind.
                if let Some(r) = &pvcr
                    && cluster.get(r, Some(ns), name).await?.is_some()
                {
                    continue;
                }
                if let Some(pv) = cluster.get(&pvr, None, volume).await? {
                    let claim = format!("{ns}/{name}");
                    out.extend(claim_refusal(&claim, volume, &pv, &planned).map(|w| (*i, w)));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A refusal of the plan's object at `stored`.
pub fn refusal(stored: &super::backup::StoredObject, reason: String) -> Refusal {
    Refusal {
        stored: stored.clone(),
        reason,
        damaged: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pv(source: Value, class: &str) -> Value {
        let mut spec = json!({"storageClassName": class,
            "claimRef": {"namespace": "team-a", "name": "data"}});
        for (k, v) in source.as_object().unwrap() {
            spec[k] = v.clone();
        }
        json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": "v"}, "spec": spec})
    }

    #[test]
    fn only_allowed_csi_volumes_are_created() {
        let policy = VolumePolicy {
            drivers: vec!["topolvm.io".into()],
            classes: vec!["topolvm".into()],
            allow_sources: vec![],
        };
        let csi = json!({"csi": {"driver": "topolvm.io", "volumeHandle": "h"}});
        assert_eq!(creation_refusal(&pv(csi.clone(), "topolvm"), &policy), None);
        assert!(creation_refusal(&pv(csi, "fast"), &policy).is_some());
        let other = json!({"csi": {"driver": "nfs.csi.k8s.io", "volumeHandle": "h"}});
        assert!(creation_refusal(&pv(other, "topolvm"), &policy).is_some());
        let secret = json!({"csi": {"driver": "topolvm.io", "volumeHandle": "h",
            "nodePublishSecretRef": {"namespace": "kube-system", "name": "token"}}});
        let why = creation_refusal(&pv(secret.clone(), "topolvm"), &policy).unwrap();
        assert!(why.contains("kube-system/token"), "{why}");
        let root = json!({"hostPath": {"path": "/"}});
        assert!(creation_refusal(&pv(root.clone(), ""), &policy).is_some());
        assert!(creation_refusal(&pv(json!({}), "topolvm"), &policy).is_some());
        let open = VolumePolicy {
            allow_sources: vec!["hostPath".into(), "csi-secrets".into()],
            ..policy
        };
        assert_eq!(creation_refusal(&pv(root, ""), &open), None);
        assert_eq!(creation_refusal(&pv(secret, "topolvm"), &open), None);
    }

    #[test]
    fn a_claim_takes_only_its_own_volume() {
        let free = json!({"spec": {}});
        let mut planned = BTreeMap::new();
        assert!(claim_refusal("team-a/x", "v", &free, &planned).is_some());
        let prebound = json!({"spec": {"claimRef": {"namespace": "team-a", "name": "x"}}});
        assert!(claim_refusal("team-a/x", "v", &prebound, &planned).is_some());
        planned.insert("v".to_string(), Some("team-a/x".to_string()));
        assert_eq!(claim_refusal("team-a/x", "v", &prebound, &planned), None);
        let released = json!({"spec": {"claimRef": {"namespace": "team-a", "name": "x",
            "uid": "u"}}});
        assert_eq!(
            claim_refusal("team-a/x", "v", &released, &BTreeMap::new()),
            None
        );
        assert!(existing_refusal(&released, Some("team-b/y")).is_some());
        assert!(existing_refusal(&free, Some("team-a/x")).is_some());
        assert_eq!(existing_refusal(&released, Some("team-a/x")), None);
    }
}
