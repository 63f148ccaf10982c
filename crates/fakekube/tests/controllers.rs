//! The simulated controllers.

mod common;

use std::time::Duration;

use common::*;
use fakekube::controllers;
use serde_json::json;

// Only a hang reaches it: the controllers act within milliseconds on an idle machine.
const T: Duration = Duration::from_secs(300);

fn pvc(name: &str, volume: Option<&str>) -> serde_json::Value {
    let mut p = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": "team-a"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "storageClassName": "sc"}});
    if let Some(v) = volume {
        p["spec"]["volumeName"] = json!(v);
    }
    p
}

fn pv(name: &str, policy: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
        "spec": {"capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": policy,
                 "storageClassName": "sc", "hostPath": {"path": "/x"}}})
}

#[test]
fn pv_binder_provisions_binds_and_reclaims() {
    let fk = fake();
    controllers::pv_binder(&fk);
    // Dynamic provisioning.
    let c = fk.create(pvc("data", None)).unwrap();
    let uid = c["metadata"]["uid"].as_str().unwrap().to_string();
    let claim = fk
        .get("v1", "PersistentVolumeClaim", Some("team-a"), "data")
        .unwrap();
    assert_eq!(claim["status"]["phase"], "Bound");
    let pv_name = format!("pvc-{uid}");
    assert_eq!(claim["spec"]["volumeName"], pv_name.as_str());
    let vol = fk.get("v1", "PersistentVolume", None, &pv_name).unwrap();
    assert_eq!(vol["status"]["phase"], "Bound");
    assert_eq!(vol["spec"]["persistentVolumeReclaimPolicy"], "Delete");
    assert_eq!(vol["spec"]["storageClassName"], "sc");
    assert_eq!(vol["spec"]["claimRef"]["uid"], uid.as_str());
    // Deleting the claim deletes a Delete-policy volume.
    fk.delete("v1", "PersistentVolumeClaim", Some("team-a"), "data");
    assert!(fk.get("v1", "PersistentVolume", None, &pv_name).is_none());

    // Static volume, Retain: bound by volumeName, Released (claimRef kept) after the claim goes.
    fk.create(pv("keep", "Retain")).unwrap();
    assert_eq!(
        fk.get("v1", "PersistentVolume", None, "keep").unwrap()["status"]["phase"],
        "Available"
    );
    let c = fk.create(pvc("data", Some("keep"))).unwrap();
    let claim = fk
        .get("v1", "PersistentVolumeClaim", Some("team-a"), "data")
        .unwrap();
    assert_eq!(claim["status"]["phase"], "Bound");
    assert_eq!(claim["status"]["capacity"]["storage"], "2Gi");
    assert_eq!(claim["status"]["accessModes"], json!(["ReadWriteOnce"]));
    let vol = fk.get("v1", "PersistentVolume", None, "keep").unwrap();
    assert_eq!(
        vol["spec"]["claimRef"],
        json!({"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": "team-a", "name": "data",
        "uid": c["metadata"]["uid"], "resourceVersion": c["metadata"]["resourceVersion"]})
    );
    fk.delete("v1", "PersistentVolumeClaim", Some("team-a"), "data");
    let vol = fk.get("v1", "PersistentVolume", None, "keep").unwrap();
    assert_eq!(vol["status"]["phase"], "Released");
    assert_eq!(vol["spec"]["claimRef"]["uid"], c["metadata"]["uid"]);

    // A new claim of the same name does not bind to the Released volume while claimRef.uid is
    // the old one (the real controller's behaviour)...
    fk.create(pvc("data", Some("keep"))).unwrap();
    assert_eq!(
        fk.get("v1", "PersistentVolumeClaim", Some("team-a"), "data")
            .unwrap()["status"]["phase"],
        "Pending"
    );
    // ...and binds once the uid is cleared (what a restore does).
    fk.update("v1", "PersistentVolume", None, "keep", |o| {
        o["spec"]["claimRef"].as_object_mut().unwrap().remove("uid");
    });
    assert_eq!(
        fk.get("v1", "PersistentVolumeClaim", Some("team-a"), "data")
            .unwrap()["status"]["phase"],
        "Bound"
    );
    assert_eq!(
        fk.get("v1", "PersistentVolume", None, "keep").unwrap()["status"]["phase"],
        "Bound"
    );
}

#[test]
fn jobs_finish() {
    let fk = fake();
    controllers::volcano_jobs_finish(&fk, Duration::from_millis(100));
    controllers::training_jobs_finish(&fk, Duration::from_millis(100));
    fk.create(json!({"apiVersion": "batch.volcano.sh/v1alpha1", "kind": "Job", "metadata": {"name": "vj", "namespace": "team-a"}, "spec": {}})).unwrap();
    fk.create(json!({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "pj", "namespace": "team-a"}, "spec": {}})).unwrap();
    assert_eq!(
        fk.get("batch.volcano.sh/v1alpha1", "Job", Some("team-a"), "vj")
            .unwrap()["status"]["state"]["phase"],
        "Running"
    );
    assert!(fk.wait_for(
        "batch.volcano.sh/v1alpha1",
        "Job",
        Some("team-a"),
        "vj",
        T,
        |o| { o.is_some_and(|o| o["status"]["state"]["phase"] == "Completed") }
    ));
    assert!(fk.wait_for(
        "kubeflow.org/v1",
        "PyTorchJob",
        Some("team-a"),
        "pj",
        T,
        |o| {
            o.is_some_and(|o| {
                o["status"]["conditions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["type"] == "Succeeded" && c["status"] == "True")
            })
        }
    ));
    // A built-in batch/v1 Job is not touched by the volcano controller.
    fk.create(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bj", "namespace": "team-a"}, "spec": {}})).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        fk.get("batch/v1", "Job", Some("team-a"), "bj")
            .unwrap()
            .get("status")
            .is_none()
    );
}
