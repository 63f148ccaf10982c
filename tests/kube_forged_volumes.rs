//! A forged snapshot (every hash recomputed) does not choose what a volume points at, which
//! live volume a claim takes, or a new instance of a singleton kind: each forgery is refused
//! before the first write, dry run included, and what the operator names explicitly goes
//! through.

mod common;
mod kubeenv;

use common::cluster::wait_until;
use serde_json::{Value, json};

use kubeenv::{Env, cluster, dry_run_refuses, forged, refused};

fn claim(ns: &str, name: &str, volume: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "sc-topolvm",
                 "volumeName": volume, "resources": {"requests": {"storage": "1Gi"}}}})
}

fn volume(name: &str, source: Value, claim: (&str, &str)) -> Value {
    let mut spec = json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "sc-topolvm",
        "claimRef": {"namespace": claim.0, "name": claim.1}});
    for (k, v) in source.as_object().unwrap() {
        spec[k] = v.clone();
    }
    json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
        "spec": spec})
}

fn host_path(path: &str) -> Value {
    json!({"hostPath": {"path": path}})
}

fn topolvm() -> Value {
    json!({"csi": {"driver": "topolvm.io", "volumeHandle": "5d1e2f3a"}})
}

/// A volume and the claim it is pre-bound to, both forged into snapshot `id`.
fn forged_pair(env: &Env, ns: &str, pv: Value) -> String {
    let name = pv["metadata"]["name"].as_str().unwrap().to_string();
    forged(env, |f| {
        f.add(&claim(ns, "grab", &name), "persistentvolumeclaims", true);
        f.add(&pv, "persistentvolumes", true);
    })
}

#[test]
fn a_forged_host_path_volume_pre_bound_to_a_forged_claim_is_refused() {
    let env = cluster(false);
    let root = volume("node-root", host_path("/"), ("team-a", "grab"));
    let id = forged_pair(&env, "team-a", root);
    let allowed = [
        "--volume-driver",
        "topolvm.io",
        "--volume-class",
        "sc-topolvm",
    ];
    refused(
        &env,
        &id,
        &allowed,
        4,
        &[
            "PersistentVolume node-root",
            "hostPath",
            "--allow-volume-source",
        ],
    );
    // Through --namespace-map too (the claim reference follows the map).
    refused(
        &env,
        &id,
        &["--namespace-map", "team-a=team-x"],
        4,
        &["PersistentVolume node-root", "hostPath"],
    );
    dry_run_refuses(&env, &id, &[], 4, "PersistentVolume", "node-root");
    assert!(
        env.fk
            .get("v1", "PersistentVolume", None, "node-root")
            .is_none()
    );
    assert!(
        env.fk
            .get("v1", "PersistentVolumeClaim", Some("team-a"), "grab")
            .is_none()
    );
    // An operator who names the source gets it.
    env.restore_ok(&id, &["--allow-volume-source", "hostPath"]);
    assert!(
        env.fk
            .get("v1", "PersistentVolume", None, "node-root")
            .is_some()
    );
}

#[test]
fn a_csi_volume_naming_a_secret_is_refused() {
    let env = cluster(false);
    let mut source = topolvm();
    source["csi"]["nodePublishSecretRef"] = json!({"namespace": "kube-system", "name": "token"});
    let id = forged_pair(
        &env,
        "team-b",
        volume("secret-vol", source, ("team-b", "grab")),
    );
    refused(
        &env,
        &id,
        &[
            "--volume-driver",
            "topolvm.io",
            "--volume-class",
            "sc-topolvm",
        ],
        4,
        &[
            "PersistentVolume secret-vol",
            "kube-system/token",
            "csi-secrets",
        ],
    );
    assert!(
        env.fk
            .get("v1", "PersistentVolume", None, "secret-vol")
            .is_none()
    );
}

#[test]
fn a_host_path_volume_pre_bound_to_an_existing_claim_is_refused() {
    let env = cluster(false);
    let rb = ("team-a", "team-a-data");
    let id = forged(&env, |f| {
        let path = f.listed("PersistentVolumeClaim", Some(rb.0), rb.1)["path"]
            .as_str()
            .unwrap()
            .to_string();
        let mut old = String::new();
        f.edit_yaml(&path, |o| {
            old = o["spec"]["volumeName"].as_str().unwrap().to_string();
            o["spec"]["volumeName"] = json!("etc");
        });
        // The claim's own volume leaves the snapshot, so nothing else stands in the way.
        let listed = f.listed("PersistentVolume", None, &old)["path"]
            .as_str()
            .unwrap()
            .to_string();
        f.files.remove(&listed);
        f.objects.retain(|o| o["path"] != listed.as_str());
        f.add(
            &volume("etc", host_path("/etc"), rb),
            "persistentvolumes",
            true,
        );
    });
    refused(
        &env,
        &id,
        &["--kinds", "PersistentVolume,PersistentVolumeClaim"],
        4,
        &["PersistentVolume etc", "hostPath"],
    );
    assert!(env.fk.get("v1", "PersistentVolume", None, "etc").is_none());
}

#[test]
fn a_forged_claim_never_takes_a_free_live_volume() {
    let env = cluster(false);
    let mut spare = volume("spare", topolvm(), ("", ""));
    spare["spec"].as_object_mut().unwrap().remove("claimRef");
    env.fk.create(spare).unwrap();
    let id = forged(&env, |f| {
        f.add(
            &claim("team-a", "grab", "spare"),
            "persistentvolumeclaims",
            true,
        );
    });
    refused(
        &env,
        &id,
        &[],
        4,
        &[
            "PersistentVolumeClaim team-a/grab",
            "spare",
            "free on the cluster",
        ],
    );
    dry_run_refuses(&env, &id, &[], 4, "PersistentVolumeClaim", "grab");
    let spare = env.fk.get("v1", "PersistentVolume", None, "spare").unwrap();
    assert!(spare["spec"]["claimRef"].is_null(), "{spare}");
}

#[test]
fn a_volume_the_cluster_lacks_is_created_only_for_an_allowed_driver_and_class() {
    let env = cluster(false);
    let id = env.backup(&[]);
    let claim = ("team-a", "team-a-data");
    let pv = env
        .fk
        .get("v1", "PersistentVolumeClaim", Some(claim.0), claim.1)
        .unwrap()["spec"]["volumeName"]
        .as_str()
        .unwrap()
        .to_string();
    // The claim and its volume are gone (a new cluster, or a Delete volume).
    env.fk
        .delete("v1", "PersistentVolumeClaim", Some(claim.0), claim.1);
    env.fk.delete("v1", "PersistentVolume", None, &pv);
    wait_until("volume gone", || {
        env.fk.get("v1", "PersistentVolume", None, &pv).is_none()
    });
    let kinds = ["--kinds", "PersistentVolume,PersistentVolumeClaim"];
    refused(
        &env,
        &id,
        &kinds,
        4,
        &[
            &format!("PersistentVolume {pv}"),
            "topolvm.io",
            "--volume-driver",
        ],
    );
    let mut args = kinds.to_vec();
    args.extend(["--volume-driver", "topolvm.io", "--volume-class", "other"]);
    refused(&env, &id, &args, 4, &["sc-topolvm", "--volume-class"]);
    let mut args = kinds.to_vec();
    args.extend([
        "--volume-driver",
        "topolvm.io",
        "--volume-class",
        "sc-topolvm",
    ]);
    env.restore_ok(&id, &args);
    wait_until("claim Bound again", || {
        env.fk
            .get("v1", "PersistentVolumeClaim", Some(claim.0), claim.1)
            .is_some_and(|c| c["status"]["phase"] == "Bound")
    });
}

#[test]
fn a_new_aml_cluster_instance_is_refused_and_the_known_one_comes_back() {
    let env = cluster(false);
    let av = "amlclusters.aml.dev/v1alpha1";
    let id = forged(&env, |f| {
        let mut rogue = json!({"apiVersion": av, "kind": "AmlCluster",
            "metadata": {"name": "rogue"}, "spec": {"values": {}}});
        rogue["spec"]["values"]["global"] = json!({"registry": "evil.example.com"});
        f.add(&rogue, "amlclusters", true);
    });
    refused(&env, &id, &[], 4, &["AmlCluster rogue", "new_names"]);
    dry_run_refuses(&env, &id, &[], 4, "AmlCluster", "rogue");
    assert!(env.fk.get(av, "AmlCluster", None, "rogue").is_none());
    // The instance the documentation names comes back when it is gone.
    let id = env.backup(&[]);
    env.fk.delete(av, "AmlCluster", None, "default");
    env.restore_ok(&id, &["--kinds", "AmlCluster"]);
    assert!(env.fk.get(av, "AmlCluster", None, "default").is_some());
}
