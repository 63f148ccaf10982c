//! Simulated controllers: hooks on [`FakeKube`] that act like the real ones would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{Change, ChangeKind, FakeKube, Handle};

/// Captain uninstalling a chart application (see [`crate::captain`]).
pub use crate::captain::chart_uninstall;
/// ACP's cluster-plugin controller: checks the published ModuleConfig's form and the plugin's
/// dependencies (see [`crate::plugins`]).
pub use crate::plugins::plugin_controller;

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn ident(c: &Change) -> (String, String, Option<String>, String) {
    (
        c.api_version().to_string(),
        c.kind_name().to_string(),
        c.namespace().map(String::from),
        c.name().to_string(),
    )
}

const PV: &str = "PersistentVolume";
const PVC: &str = "PersistentVolumeClaim";

/// The PersistentVolume controller (binding, dynamic provisioning, reclaim). See the README.
pub fn pv_binder(fk: &FakeKube) {
    let running = Arc::new(AtomicBool::new(false));
    let dirty = Arc::new(AtomicBool::new(false));
    fk.on_change(move |c, h| {
        if !(c.is("", PV) || c.is("", PVC)) {
            return;
        }
        dirty.store(true, Ordering::SeqCst);
        if running.swap(true, Ordering::SeqCst) {
            return;
        }
        while dirty.swap(false, Ordering::SeqCst) {
            reconcile_volumes(h);
        }
        running.store(false, Ordering::SeqCst);
        // A change that raced the release of `running` is picked up here.
        if dirty.load(Ordering::SeqCst) && !running.swap(true, Ordering::SeqCst) {
            while dirty.swap(false, Ordering::SeqCst) {
                reconcile_volumes(h);
            }
            running.store(false, Ordering::SeqCst);
        }
    });
}

fn claim_matches(pv: &Value, pvc: &Value) -> bool {
    let cr = &pv["spec"]["claimRef"];
    if cr.is_null() {
        return true;
    }
    s(cr, "/namespace") == s(pvc, "/metadata/namespace")
        && s(cr, "/name") == s(pvc, "/metadata/name")
        && (s(cr, "/uid").is_empty() || s(cr, "/uid") == s(pvc, "/metadata/uid"))
}

fn reconcile_volumes(h: &Handle) {
    // New volumes become Available (a pre-bound one too, until its claim binds).
    for pv in h.list("v1", PV, None) {
        let phase = s(&pv, "/status/phase");
        if phase.is_empty() || phase == "Pending" {
            h.update("v1", PV, None, s(&pv, "/metadata/name"), |o| {
                o["status"] = json!({"phase": "Available"})
            });
        }
    }
    let claims = h.list("v1", PVC, None);
    // Claims: bind to the named volume, or provision one.
    for pvc in &claims {
        if s(pvc, "/status/phase") == "Bound" || !pvc["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        let (ns, name, uid) = (
            s(pvc, "/metadata/namespace"),
            s(pvc, "/metadata/name"),
            s(pvc, "/metadata/uid"),
        );
        let volume = s(pvc, "/spec/volumeName").to_string();
        let pv_name = if volume.is_empty() {
            let pv_name = format!("pvc-{uid}");
            let mut pv = json!({
                "apiVersion": "v1", "kind": PV,
                "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": "fakekube.io/provisioner"},
                             "finalizers": ["kubernetes.io/pv-protection"]},
                "spec": {
                    "capacity": {"storage": pvc["spec"]["resources"]["requests"]["storage"].clone()},
                    "accessModes": pvc["spec"]["accessModes"].clone(),
                    "persistentVolumeReclaimPolicy": "Delete",
                    "hostPath": {"path": format!("/var/lib/fakekube/{pv_name}"), "type": ""},
                    "volumeMode": pvc["spec"]["volumeMode"].as_str().unwrap_or("Filesystem"),
                },
            });
            if let Some(sc) = pvc["spec"]["storageClassName"].as_str() {
                pv["spec"]["storageClassName"] = json!(sc);
            }
            if h.get("v1", PV, None, &pv_name).is_none() && h.create(pv).is_err() {
                continue;
            }
            pv_name
        } else {
            volume.clone()
        };
        let Some(pv) = h.get("v1", PV, None, &pv_name) else {
            continue;
        };
        let phase = s(&pv, "/status/phase");
        let ok = match phase {
            "Available" | "Pending" | "" => claim_matches(&pv, pvc),
            "Released" | "Bound" => !pv["spec"]["claimRef"].is_null() && claim_matches(&pv, pvc),
            _ => false,
        };
        if !ok {
            continue;
        }
        let by_controller = pv["spec"]["claimRef"].is_null();
        h.update("v1", PV, None, &pv_name, |o| {
            o["spec"]["claimRef"] = json!({"kind": PVC, "apiVersion": "v1", "namespace": ns, "name": name,
                "uid": uid, "resourceVersion": s(pvc, "/metadata/resourceVersion")});
            o["status"] = json!({"phase": "Bound", "lastPhaseTransitionTime": now()});
            if by_controller {
                o["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] = json!("yes");
            }
        });
        let capacity = pv["spec"]["capacity"].clone();
        let modes = pv["spec"]["accessModes"].clone();
        h.update("v1", PVC, Some(ns), name, |o| {
            o["spec"]["volumeName"] = json!(pv_name);
            let a = &mut o["metadata"]["annotations"];
            a["pv.kubernetes.io/bind-completed"] = json!("yes");
            if volume.is_empty() {
                a["pv.kubernetes.io/bound-by-controller"] = json!("yes");
                a["volume.kubernetes.io/storage-provisioner"] = json!("fakekube.io/provisioner");
            }
            o["status"] = json!({"phase": "Bound", "accessModes": modes, "capacity": capacity});
        });
    }
    // Volumes whose claim is gone: Delete or Release, per reclaim policy.
    let claims = h.list("v1", PVC, None);
    for pv in h.list("v1", PV, None) {
        if s(&pv, "/status/phase") != "Bound" || pv["spec"]["claimRef"].is_null() {
            continue;
        }
        let cr = &pv["spec"]["claimRef"];
        let alive = claims.iter().any(|c| {
            s(c, "/metadata/namespace") == s(cr, "/namespace")
                && s(c, "/metadata/name") == s(cr, "/name")
                && (s(cr, "/uid").is_empty() || s(c, "/metadata/uid") == s(cr, "/uid"))
        });
        if alive {
            continue;
        }
        let name = s(&pv, "/metadata/name");
        if s(&pv, "/spec/persistentVolumeReclaimPolicy") == "Delete" {
            h.update("v1", PV, None, name, |o| {
                o["status"] = json!({"phase": "Released", "lastPhaseTransitionTime": now()})
            });
            h.delete("v1", PV, None, name);
            // The pv-protection finalizer goes once no claim uses the volume.
            h.update("v1", PV, None, name, |o| {
                if let Some(f) = o["metadata"]["finalizers"].as_array_mut() {
                    f.retain(|x| x != "kubernetes.io/pv-protection");
                }
            });
        } else {
            h.update("v1", PV, None, name, |o| {
                o["status"] = json!({"phase": "Released", "lastPhaseTransitionTime": now()})
            });
        }
    }
}

/// Volcano: a `Job` (batch.volcano.sh) is `Running` at once and `Completed` after `delay`.
pub fn volcano_jobs_finish(fk: &FakeKube, delay: Duration) {
    fk.on_change(move |c, h| {
        if !c.is("batch.volcano.sh", "Job") || c.kind != ChangeKind::Added {
            return;
        }
        let (av, kind, ns, name) = ident(c);
        h.update(&av, &kind, ns.as_deref(), &name, |o| {
            o["status"] = json!({"state": {"phase": "Running", "lastTransitionTime": now()}, "running": 1});
        });
        h.after(delay, move |h| {
            h.update(&av, &kind, ns.as_deref(), &name, |o| {
                o["status"] = json!({"state": {"phase": "Completed", "lastTransitionTime": now()}, "succeeded": 1});
            });
        });
    });
}

const TRAINING_KINDS: &[&str] = &[
    "PyTorchJob",
    "TFJob",
    "MPIJob",
    "XGBoostJob",
    "PaddleJob",
    "JAXJob",
];

/// Kubeflow training operator: PyTorchJob/TFJob/... (kubeflow.org) get conditions Created and
/// Running at once, and `Succeeded: True` after `delay`.
pub fn training_jobs_finish(fk: &FakeKube, delay: Duration) {
    fk.on_change(move |c, h| {
        if c.kind != ChangeKind::Added || !TRAINING_KINDS.iter().any(|k| c.is("kubeflow.org", k)) {
            return;
        }
        let (av, kind, ns, name) = ident(c);
        let cond = |t: &str, st: &str, reason: String| {
            json!({"type": t, "status": st, "reason": reason, "message": format!("{kind} {name} is {}.", t.to_lowercase()),
                   "lastUpdateTime": now(), "lastTransitionTime": now()})
        };
        let running = vec![cond("Created", "True", format!("{kind}Created")), cond("Running", "True", format!("{kind}Running"))];
        let done = vec![
            cond("Created", "True", format!("{kind}Created")),
            cond("Running", "False", format!("{kind}Running")),
            cond("Succeeded", "True", format!("{kind}Succeeded")),
        ];
        h.update(&av, &kind, ns.as_deref(), &name, |o| {
            o["status"] = json!({"conditions": running, "startTime": now()});
        });
        let (av2, kind2) = (av.clone(), kind.clone());
        h.after(delay, move |h| {
            h.update(&av2, &kind2, ns.as_deref(), &name, |o| {
                o["status"] = json!({"conditions": done, "startTime": o["status"]["startTime"].clone(), "completionTime": now()});
            });
        });
    });
}
