//! `recover` from a forged snapshot (every hash recomputed, so `verify` calls it sound), in the
//! upgrade's lab (tests/common/upgrade.rs): its restore-profiles step runs the Kubernetes
//! restore's own rules, so a forgery the restore refuses stops a real recovery (`--yes`) before
//! its first write to the cluster, and `--dry-run` reports the same refusal, naming the object,
//! exits 4 and writes nothing (the fake API server fails any write without `dryRun=All`).

mod common;
mod kubeenv;

use common::upgrade::*;
use common::*;
use serde_json::{Value, json};

use kubeenv::{Forgery, forge};

const RBAC: &str = "rbac.authorization.k8s.io/v1";

/// The kinds the recovery restores here: the configuration's defaults, and the AML instances
/// (which an operator may add for a rebuilt cluster).
const KINDS: &str = r#"["Namespace", "Profile", "PersistentVolume", "PersistentVolumeClaim", "ConfigMap", "RoleBinding", "AuthorizationPolicy", "AmlCluster", "Aml"]"#;

struct Forged {
    lab: Lab,
    id: String,
    /// A RoleBinding of the snapshot taken away from the cluster after it: the recovery would
    /// bring it back, were the snapshot not refused.
    lost: (String, String),
}

/// The lab's own snapshot (the upgrade's snapshot step) with `f` forged into its Kubernetes
/// part. MLflow is left out of the recovery (`mlflow.migrate = false`): the databases are the
/// snapshot's, so restore-profiles is the first step with anything to write.
fn forged(f: impl FnOnce(&mut Forgery)) -> Forged {
    let lab = Lab::new(LabOptions::default());
    lab.edit_config(|t| {
        let t = t.replacen("[mlflow]\n", "[mlflow]\nmigrate = false\n", 1);
        format!("{t}[restore]\nkinds = {KINDS}\n")
    });
    let r = lab.upgrade(&["run", "--yes", "--until", "snapshot"]);
    assert_eq!(r.code, 0, "{r:?}");
    let id = lab
        .journal()
        .iter()
        .find_map(|e| e["facts"]["snapshot"].as_str().map(str::to_string))
        .unwrap();
    let repo = lab.dir.path().join("repo");
    let mut lost = None;
    forge(&repo, &id, |forgery| {
        let rb = forgery
            .objects
            .iter()
            .find(|o| o["kind"] == "RoleBinding" && o["restore"] == true)
            .expect("the snapshot restores a RoleBinding");
        lost = Some((
            rb["namespace"].as_str().unwrap().to_string(),
            rb["name"].as_str().unwrap().to_string(),
        ));
        f(forgery);
    });
    ok(&["verify", "--repo", repo.to_str().unwrap(), &id]);
    let lost = lost.unwrap();
    lab.fk.delete(RBAC, "RoleBinding", Some(&lost.0), &lost.1);
    Forged { lab, id, lost }
}

/// The refusal line both runs print.
fn refusal(r: &Run) -> String {
    let start = "recovery step restore-profiles cannot run";
    r.stderr
        .lines()
        .find_map(|l| l.find(start).map(|i| l[i..].to_string()))
        .unwrap_or_else(|| panic!("no refusal of restore-profiles: {r:?}"))
}

/// `recover --dry-run` and `recover --yes` both exit 4 with the same refusal, naming `says`;
/// neither writes to the cluster, and the lost RoleBinding stays lost (the whole restore is
/// refused, not just the forged object). The dry run's JSON report lists each refused object.
fn refused_both_ways(s: &Forged, says: &[&str]) {
    let lab = &s.lab;
    let before = lab.writes();
    lab.fk.require_dry_run(true);
    let dry = lab.recover(&["--dry-run", &s.id]);
    let json = lab.recover(&["--dry-run", "--json", &s.id]);
    lab.fk.require_dry_run(false);
    assert_eq!(dry.code, 4, "{dry:?}");
    assert!(
        dry.stdout.contains("dry run: nothing was written"),
        "{dry:?}"
    );
    assert_eq!(json.code, 4, "{json:?}");
    let out: Value = serde_json::from_str(&json.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {json:?}"));
    assert_eq!(out["ok"], false, "{out}");
    let profiles = out["outcome"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["step"] == "restore-profiles")
        .unwrap_or_else(|| panic!("{out}"));
    let checked = profiles["checked"].to_string();
    for want in says {
        assert!(checked.contains(want), "{want:?} not in {profiles}");
    }
    assert_eq!(lab.writes(), before, "the dry run wrote: {dry:?}");

    let real = lab.recover(&["--yes", &s.id]);
    assert_eq!(real.code, 4, "{real:?}");
    assert_eq!(refusal(&real), refusal(&dry));
    for want in says {
        assert!(real.stderr.contains(want), "{want:?} not in {real:?}");
    }
    assert_eq!(lab.writes(), before, "the refused recovery wrote: {real:?}");
    let (ns, name) = &s.lost;
    assert!(
        lab.fk.get(RBAC, "RoleBinding", Some(ns), name).is_none(),
        "the rest of a refused snapshot was restored"
    );
}

#[test]
fn recover_refuses_a_namespace_that_would_alter_a_request_path_dry_run_included() {
    let binding = |name: &str, ns: &str, user: &str| {
        json!({"apiVersion": RBAC, "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "view"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})
    };
    let ns = "kube-system/rolebindings/ops-view#";
    let s = forged(|f| {
        f.manifest["kubernetes"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!(ns));
        f.add(
            &binding("mallory-admin", ns, "mallory@example.com"),
            "rolebindings",
            true,
        );
    });
    // The live binding the forged namespace aims at.
    s.lab
        .fk
        .create(binding("ops-view", "kube-system", "ops@example.com"))
        .unwrap();
    refused_both_ways(
        &s,
        &[
            &format!("RoleBinding {ns}/mallory-admin"),
            "not a valid namespace name",
        ],
    );
    let live = s
        .lab
        .fk
        .get(RBAC, "RoleBinding", Some("kube-system"), "ops-view")
        .unwrap();
    assert_eq!(live["subjects"][0]["name"], "ops@example.com");
    let reached: Vec<String> = s
        .lab
        .fk
        .requests()
        .into_iter()
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .filter(|r| r.contains("ops-view") || r.contains("mallory-admin"))
        .collect();
    assert_eq!(reached, Vec::<String>::new());
}

#[test]
fn recover_refuses_a_host_path_volume_pre_bound_to_a_forged_claim_dry_run_included() {
    let s = forged(|f| {
        f.add(
            &json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "grab", "namespace": "team-a"},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "sc-topolvm",
                         "volumeName": "node-root",
                         "resources": {"requests": {"storage": "1Gi"}}}}),
            "persistentvolumeclaims",
            true,
        );
        f.add(
            &json!({"apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": "node-root"},
                "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                         "persistentVolumeReclaimPolicy": "Retain",
                         "storageClassName": "sc-topolvm", "hostPath": {"path": "/"},
                         "claimRef": {"namespace": "team-a", "name": "grab"}}}),
            "persistentvolumes",
            true,
        );
    });
    refused_both_ways(&s, &["PersistentVolume node-root", "hostPath"]);
    let fk = &s.lab.fk;
    assert!(
        fk.get("v1", "PersistentVolume", None, "node-root")
            .is_none()
    );
    assert!(
        fk.get("v1", "PersistentVolumeClaim", Some("team-a"), "grab")
            .is_none()
    );
}

#[test]
fn recover_refuses_an_aml_cluster_instance_the_catalog_does_not_name_dry_run_included() {
    let av = "amlclusters.aml.dev/v1alpha1";
    let s = forged(|f| {
        f.add(
            &json!({"apiVersion": av, "kind": "AmlCluster", "metadata": {"name": "rogue"},
                "spec": {"values": {"global": {"registry": "evil.example.com"}}}}),
            "amlclusters",
            true,
        );
    });
    refused_both_ways(&s, &["AmlCluster rogue", "new_names"]);
    assert!(s.lab.fk.get(av, "AmlCluster", None, "rogue").is_none());
}
