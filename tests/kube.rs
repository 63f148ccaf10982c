//! The Kubernetes half end to end: the real binary against the fake API server (real HTTP,
//! discovery, server-side apply, dry run, RBAC), loaded with the AML 1.3 fixtures of
//! testdata/kube.

mod common;
mod kubeenv;

use std::collections::BTreeMap;

use common::*;
use fakekube::FakeKube;
use serde_json::{Value, json};

use common::cluster::{CRDS, docs, wait_until, writes};
use kubeenv::{age_key, cluster, manifest};

const USER_NAMESPACES: [&str; 3] = ["kubeflow-admin-cpaas-io", "team-a", "team-b"];

/// What a restore must bring back: the object minus what the server (or a controller) owns.
fn comparable(mut o: Value) -> Value {
    let m = o["metadata"].as_object_mut().unwrap();
    for f in [
        "uid",
        "resourceVersion",
        "managedFields",
        "creationTimestamp",
        "generation",
        "ownerReferences",
        "finalizers",
    ] {
        m.remove(f);
    }
    if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
        a.retain(|k, _| !k.starts_with("pv.kubernetes.io/"));
        if a.is_empty() {
            m.remove("annotations");
        }
    }
    o.as_object_mut().unwrap().remove("status");
    if let Some(cr) = o
        .pointer_mut("/spec/claimRef")
        .and_then(Value::as_object_mut)
    {
        cr.remove("uid");
        cr.remove("resourceVersion");
        cr.remove("apiVersion");
        cr.remove("kind");
    }
    o
}

/// Every restorable object of the user namespaces and the AML resources, keyed by identity.
fn restorable(fk: &FakeKube) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut add = |v: Value| {
        let key = format!(
            "{} {} {}",
            v["kind"].as_str().unwrap(),
            v["metadata"]["namespace"].as_str().unwrap_or("-"),
            v["metadata"]["name"].as_str().unwrap()
        );
        out.insert(key, comparable(v));
    };
    for ns in USER_NAMESPACES {
        for (av, kind) in [
            ("v1", "PersistentVolumeClaim"),
            ("rbac.authorization.k8s.io/v1", "RoleBinding"),
            ("security.istio.io/v1beta1", "AuthorizationPolicy"),
            ("kubeflow.org/v1", "Notebook"),
            ("tensorboard.kubeflow.org/v1alpha1", "Tensorboard"),
        ] {
            fk.list(av, kind, Some(ns)).into_iter().for_each(&mut add);
        }
        if let Some(n) = fk.get("v1", "Namespace", None, ns) {
            add(n);
        }
    }
    for p in fk.list("kubeflow.org/v1", "Profile", None) {
        add(p);
    }
    for cm in fk.list("v1", "ConfigMap", None) {
        if cm["metadata"]["name"] == "aml-image-builder-config" {
            add(cm);
        }
    }
    for s in fk.list("v1", "Secret", None) {
        if s["metadata"]["name"] == "aml-image-builder-secret" {
            add(s);
        }
    }
    let claimed: Vec<String> = fk
        .list("v1", "PersistentVolumeClaim", None)
        .iter()
        .filter(|c| USER_NAMESPACES.contains(&c["metadata"]["namespace"].as_str().unwrap()))
        .map(|c| c["spec"]["volumeName"].as_str().unwrap().to_string())
        .collect();
    for pv in fk.list("v1", "PersistentVolume", None) {
        if claimed
            .iter()
            .any(|c| c == pv["metadata"]["name"].as_str().unwrap())
        {
            add(pv);
        }
    }
    for (av, kind) in [
        ("amlclusters.aml.dev/v1alpha1", "AmlCluster"),
        ("amls.aml.dev/v1alpha1", "Aml"),
    ] {
        fk.list(av, kind, None).into_iter().for_each(&mut add);
    }
    out
}

/// Deletes what the 1.3 → 1.4 upgrade (or an accident) takes away: the user namespaces with
/// everything in them, the Profiles, the AML resources and the image-builder settings.
fn delete_everything(fk: &FakeKube) {
    for p in fk.list("kubeflow.org/v1", "Profile", None) {
        fk.delete(
            "kubeflow.org/v1",
            "Profile",
            None,
            p["metadata"]["name"].as_str().unwrap(),
        );
    }
    for ns in USER_NAMESPACES {
        assert!(fk.delete("v1", "Namespace", None, ns));
    }
    fk.delete(
        "v1",
        "ConfigMap",
        Some("kubeflow"),
        "aml-image-builder-config",
    );
    fk.delete("v1", "Secret", Some("kubeflow"), "aml-image-builder-secret");
    fk.delete(
        "amlclusters.aml.dev/v1alpha1",
        "AmlCluster",
        None,
        "default",
    );
    fk.delete("amls.aml.dev/v1alpha1", "Aml", None, "default-aml");
    wait_until("user namespaces gone", || {
        USER_NAMESPACES
            .iter()
            .all(|ns| fk.get("v1", "Namespace", None, ns).is_none())
    });
    // Released Retain volumes stay; Delete volumes went with their claims.
    for pv in fk.list("v1", "PersistentVolume", None) {
        assert_eq!(
            pv["spec"]["persistentVolumeReclaimPolicy"], "Retain",
            "{pv}"
        );
    }
}

#[test]
fn backup_then_delete_everything_then_restore_brings_every_object_back() {
    let env = cluster(true);
    let (recipient, identity) = age_key(env.dir.path());
    // Protect first, as the guided upgrade does: every user volume survives the deletion.
    env.ok(&["pvc", "protect", "--quiet"]);
    let before = restorable(&env.fk);
    assert!(before.len() > 30, "fixtures too small: {}", before.len());
    let id = env.backup(&["--encrypt-to", &recipient, "--unencrypted-repo"]);

    let m = manifest(env.repo(), &id);
    let k = &m["kubernetes"];
    assert_eq!(k["namespaces"], json!(USER_NAMESPACES), "{k}");
    assert_eq!(k["pvcs"], 8, "{k}");
    assert_eq!(k["left_out"], json!([]), "{k}");
    assert_eq!(k["encrypted"], 3, "{k}");
    let kinds: BTreeMap<String, u64> = k["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["kind"].as_str().unwrap().to_string(),
                x["objects"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds["Profile"], 3);
    assert_eq!(kinds["Notebook"], 4);
    // The five Kubeflow plugins and the Workspace plugin.
    assert_eq!(kinds["ModuleInfo"], 6);
    assert_eq!(kinds["PyTorchJob"], 1);
    // The Secret values never appear in clear in the snapshot.
    plain_snapshot(&env.repo, &id);
    let part = std::fs::read(
        env.repo
            .join(format!("snapshots/{id}/parts/kubernetes.tar.zst")),
    )
    .unwrap();
    let plain = zstd::decode_all(&part[..]).unwrap();
    let entries = String::from_utf8_lossy(&plain);
    assert!(entries.contains("aml-image-builder-secret.yaml.age"));
    assert!(
        !entries.contains("MODEL_REPO_BUILDER_DB_PASSWORD"),
        "secret key in clear"
    );

    ok(&["verify", "--repo", env.repo(), &id]);
    delete_everything(&env.fk);
    assert!(restorable(&env.fk).len() < before.len());

    let out = env.restore_ok(&id, &["--identity", identity.to_str().unwrap()]);
    assert!(out.contains("created"), "{out}");
    wait_until("restored claims Bound", || {
        env.fk
            .list("v1", "PersistentVolumeClaim", None)
            .iter()
            .all(|c| c["status"]["phase"] == "Bound")
    });
    let after = restorable(&env.fk);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "restored objects differ in identity"
    );
    for (key, b) in &before {
        assert_eq!(&after[key], b, "{key} differs after restore");
    }
    // Every claim is Bound to the very volume it had: the data is back.
    let check = env.ok(&["pvc", "check", "--repo", env.repo(), &id]);
    assert!(check.contains("8 of 8"), "{check}");

    // A second restore changes nothing and creates nothing.
    let writes_before = writes(&env.fk);
    let again = env.ok(&[
        "restore",
        "--json",
        "--repo",
        env.repo(),
        &id,
        "--only",
        "kubernetes",
        "--identity",
        identity.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_str(&again).unwrap();
    for o in report["kubernetes"]["objects"].as_array().unwrap() {
        assert_eq!(o["action"], "unchanged", "{o}");
    }
    assert_eq!(
        writes(&env.fk),
        writes_before,
        "a re-run wrote to the cluster"
    );
}

#[test]
fn dry_run_restore_shows_what_would_change_and_writes_nothing() {
    let env = cluster(false);
    let id = env.backup(&[]);
    env.fk
        .update("kubeflow.org/v1", "Notebook", Some("team-a"), "eda", |o| {
            o["spec"]["template"]["spec"]["containers"][0]["image"] = json!("changed:1");
        });
    env.fk.delete(
        "security.istio.io/v1beta1",
        "AuthorizationPolicy",
        Some("team-b"),
        "user-bob-example-com-clusterrole-admin",
    );
    let n = writes(&env.fk);
    let out = env.restore_ok(&id, &["--dry-run", "--on-conflict", "update"]);
    assert_eq!(writes(&env.fk), n, "dry run wrote: {out}");
    assert!(
        out.contains(
            "would create  AuthorizationPolicy team-b/user-bob-example-com-clusterrole-admin"
        ),
        "{out}"
    );
    assert!(out.contains("would update  Notebook team-a/eda"), "{out}");
    assert!(out.contains("\"changed:1\" →"), "{out}");
    assert!(out.contains("dry run"), "{out}");
    assert!(
        env.fk
            .requests()
            .iter()
            .any(|r| r.query.contains("dryRun=All"))
    );
    assert!(
        env.fk
            .get(
                "security.istio.io/v1beta1",
                "AuthorizationPolicy",
                Some("team-b"),
                "user-bob-example-com-clusterrole-admin"
            )
            .is_none()
    );

    // Without --on-conflict update, a differing object is reported and left alone.
    let out = env.restore_ok(&id, &[]);
    assert!(out.contains("skipped       Notebook team-a/eda"), "{out}");
    assert!(
        out.contains("created       AuthorizationPolicy team-b/"),
        "{out}"
    );
    let nb = env
        .fk
        .get("kubeflow.org/v1", "Notebook", Some("team-a"), "eda")
        .unwrap();
    assert_eq!(
        nb["spec"]["template"]["spec"]["containers"][0]["image"],
        "changed:1"
    );
    let out = env.restore_ok(&id, &["--on-conflict", "update", "--kinds", "Notebook"]);
    assert!(out.contains("updated       Notebook team-a/eda"), "{out}");
    let nb = env
        .fk
        .get("kubeflow.org/v1", "Notebook", Some("team-a"), "eda")
        .unwrap();
    assert_ne!(
        nb["spec"]["template"]["spec"]["containers"][0]["image"],
        "changed:1"
    );
    // One merge patch by our field manager, guarded by the live resourceVersion.
    let mf = nb["metadata"]["managedFields"].as_array().unwrap();
    assert!(
        mf.iter()
            .any(|f| f["manager"] == "amlmigrate" && f["operation"] == "Update"),
        "{mf:?}"
    );
    let patches: Vec<_> = env
        .fk
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/notebooks/eda"))
        .filter(|r| !r.query.contains("dryRun"))
        .collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert!(
        patches[0]
            .content_type
            .starts_with("application/merge-patch+json")
    );
}

#[test]
fn namespace_map_restores_a_profile_namespace_under_a_new_name() {
    let env = cluster(false);
    let id = env.backup(&[]);
    env.restore_ok(
        &id,
        &[
            "--namespaces",
            "team-b",
            "--namespace-map",
            "team-b=team-b-copy",
            "--kinds",
            "Namespace,Profile,RoleBinding,AuthorizationPolicy,Notebook",
        ],
    );
    let p = env
        .fk
        .get("kubeflow.org/v1", "Profile", None, "team-b-copy")
        .expect("profile");
    assert_eq!(
        p["spec"],
        env.fk
            .get("kubeflow.org/v1", "Profile", None, "team-b")
            .unwrap()["spec"]
    );
    assert!(
        env.fk
            .get(
                "kubeflow.org/v1",
                "Notebook",
                Some("team-b-copy"),
                "vscode-dev"
            )
            .is_some()
    );
    let rb = env
        .fk
        .get(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            Some("team-b-copy"),
            "user-bob-example-com-clusterrole-admin",
        )
        .unwrap();
    assert_eq!(rb["roleRef"]["name"], "kubeflow-admin");
    let ap = env
        .fk
        .get(
            "security.istio.io/v1beta1",
            "AuthorizationPolicy",
            Some("team-b-copy"),
            "user-bob-example-com-clusterrole-admin",
        )
        .unwrap();
    assert!(!ap["spec"].to_string().contains("/ns/team-b/"), "{ap}");
    // team-a was not selected.
    assert!(env.fk.get("v1", "Namespace", None, "team-a-copy").is_none());
}

#[test]
fn pvc_protect_unprotect_and_list() {
    let env = cluster(false);
    let list = env.ok(&["pvc", "list"]);
    assert!(list.starts_with("NAMESPACE"), "{list}");
    assert!(
        list.contains("team-a") && list.contains("Notebook/llm-finetune"),
        "{list}"
    );
    assert!(list.contains("Tensorboard/llm-finetune-tb"), "{list}");
    let json: Value = serde_json::from_str(&env.ok(&["pvc", "list", "--json"])).unwrap();
    let pvcs = json["pvcs"].as_array().unwrap();
    assert_eq!(pvcs.len(), 8);
    let scratch = pvcs.iter().find(|p| p["name"] == "scratch-old").unwrap();
    assert_eq!(scratch["mounted_by"], json!([]));

    let policies = |fk: &FakeKube| -> BTreeMap<String, (String, Option<String>)> {
        fk.list("v1", "PersistentVolume", None)
            .into_iter()
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap().to_string(),
                    (
                        p["spec"]["persistentVolumeReclaimPolicy"].as_str().unwrap().to_string(),
                        p["metadata"]["annotations"]["amlmigrate.alauda.io/original-reclaim-policy"]
                            .as_str()
                            .map(str::to_string),
                    ),
                )
            })
            .collect()
    };
    let original = policies(&env.fk);
    let dry = env.ok(&["pvc", "protect", "--dry-run"]);
    assert!(dry.contains("would change"), "{dry}");
    assert_eq!(policies(&env.fk), original);
    let out = env.ok(&["pvc", "protect"]);
    assert!(
        out.contains("7 volume(s) changed, 1 already as wanted"),
        "{out}"
    );
    let protected = policies(&env.fk);
    for (name, (policy, note)) in &protected {
        let (was, _) = &original[name];
        assert_eq!(policy, "Retain", "{name}");
        if was == "Delete" {
            assert_eq!(note.as_deref(), Some("Delete"), "{name}");
        } else {
            assert_eq!(
                note, &None,
                "{name}: a volume that was already Retain got a note"
            );
        }
    }
    // Idempotent.
    let again = env.ok(&["pvc", "protect"]);
    assert!(again.contains("0 volume(s) changed"), "{again}");
    env.ok(&["pvc", "unprotect"]);
    assert_eq!(policies(&env.fk), original);
}

#[test]
fn pvc_check_finds_a_missing_claim_and_restore_rebinds_a_retained_volume() {
    let env = cluster(false);
    let id = env.backup(&[]);
    let ok_run = env.ok(&["pvc", "check", "--repo", env.repo(), &id]);
    assert!(ok_run.contains("8 of 8"), "{ok_run}");
    // team-a-data's volume is Retain: deleting the claim leaves it Released, with the old uid.
    env.fk
        .delete("v1", "PersistentVolumeClaim", Some("team-a"), "team-a-data");
    wait_until("volume Released", || {
        env.fk
            .list("v1", "PersistentVolume", None)
            .iter()
            .any(|p| p["status"]["phase"] == "Released")
    });
    let r = env.run(&["pvc", "check", "--repo", env.repo(), &id]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("PROBLEM  team-a/team-a-data: missing"),
        "{r:?}"
    );
    assert!(r.stderr.contains("team-a/team-a-data (missing)"), "{r:?}");

    let out = env.restore_ok(&id, &["--kinds", "PersistentVolumeClaim"]);
    assert!(
        out.contains("released for this claim to bind again"),
        "{out}"
    );
    wait_until("claim Bound again", || {
        env.fk
            .get("v1", "PersistentVolumeClaim", Some("team-a"), "team-a-data")
            .unwrap()["status"]["phase"]
            == "Bound"
    });
    let ok_run = env.ok(&["pvc", "check", "--repo", env.repo(), &id]);
    assert!(ok_run.contains("8 of 8"), "{ok_run}");
    // A claim being deleted (pvc-protection holds it while a pod mounts it) is not present.
    env.fk.update(
        "v1",
        "PersistentVolumeClaim",
        Some("team-a"),
        "team-a-data",
        |o| o["metadata"]["finalizers"] = json!(["kubernetes.io/pvc-protection"]),
    );
    env.fk
        .delete("v1", "PersistentVolumeClaim", Some("team-a"), "team-a-data");
    let r = env.run(&["pvc", "check", "--repo", env.repo(), &id]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains("PROBLEM  team-a/team-a-data: being deleted (since "),
        "{r:?}"
    );
}

#[test]
fn secrets_without_a_recipient_are_left_out_and_listed() {
    let env = cluster(false);
    let id = env.backup(&[]);
    let m = manifest(env.repo(), &id);
    let left: Vec<&str> = m["kubernetes"]["left_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        left,
        [
            "Secret kubeflow/aml-image-builder-secret",
            "Secret team-a/aml-image-builder-secret",
            "Secret team-b/aml-image-builder-secret"
        ]
    );
    plain_snapshot(&env.repo, &id);
    let part = std::fs::read(
        env.repo
            .join(format!("snapshots/{id}/parts/kubernetes.tar.zst")),
    )
    .unwrap();
    let plain = String::from_utf8_lossy(&zstd::decode_all(&part[..]).unwrap()).into_owned();
    assert!(
        !plain.contains("aml-image-builder-secret.yaml"),
        "secret stored"
    );
    assert!(m["notices"].to_string().contains("left out"), "{m}");
}

#[test]
fn credentials_in_plugin_records_never_reach_the_snapshot() {
    // A 1.4 mlflow plugin's form holds its database password in clear (the platform asks for it
    // there); the snapshot keeps ModuleInfos as records only, so the value is hidden.
    let env = cluster(true);
    let mi = env
        .fk
        .list("cluster.alauda.io/v1alpha1", "ModuleInfo", None)
        .into_iter()
        .next()
        .expect("the global fixtures hold plugin ModuleInfos");
    let name = mi["metadata"]["name"].as_str().unwrap().to_string();
    env.fk.update(
        "cluster.alauda.io/v1alpha1",
        "ModuleInfo",
        None,
        &name,
        |o| {
            o["spec"]["config"]["pgPassword"] = json!("Pl41n-Pg-Passw0rd");
            o["spec"]["config"]["pgHost"] = json!("pg.example");
        },
    );
    let id = env.backup(&[]);
    plain_snapshot(&env.repo, &id);
    let part = std::fs::read(
        env.repo
            .join(format!("snapshots/{id}/parts/kubernetes.tar.zst")),
    )
    .unwrap();
    let plain = String::from_utf8_lossy(&zstd::decode_all(&part[..]).unwrap()).into_owned();
    assert!(
        !plain.contains("Pl41n-Pg-Passw0rd"),
        "a plugin password was stored"
    );
    assert!(plain.contains("pg.example"), "the rest of the form is kept");
    let m = manifest(env.repo(), &id);
    assert!(
        m["notices"].to_string().contains(&format!(
            "ModuleInfo {name}: credential fields stored as (hidden)"
        )),
        "{m}"
    );
}

#[test]
fn a_kind_the_cluster_does_not_serve_is_reported_and_skipped() {
    let fk = FakeKube::start();
    // Only some CRDs: no Tensorboard, no Volcano, no AML.
    let crds: Vec<Value> = docs(CRDS)
        .into_iter()
        .filter(|c| {
            ["profiles.kubeflow.org", "notebooks.kubeflow.org"]
                .contains(&c["metadata"]["name"].as_str().unwrap())
        })
        .collect();
    for c in crds {
        fk.create(c).unwrap();
    }
    fk.create(json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"u1"}}))
        .unwrap();
    fk.create(json!({"apiVersion":"kubeflow.org/v1","kind":"Profile","metadata":{"name":"u1"},"spec":{"owner":{"kind":"User","name":"u@x"}}})).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = fk.write_kubeconfig(dir.path(), FakeKube::ADMIN_TOKEN);
    let repo = dir.path().join("r");
    let r = amlmigrate(&[
        "backup",
        "--init",
        "--json",
        "--repo",
        repo.to_str().unwrap(),
        "--kube",
        "--kubeconfig",
        kc.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let out: Value = serde_json::from_str(&r.stdout).unwrap();
    let ns = out["kubernetes"]["not_served"].to_string();
    assert!(
        ns.contains("Tensorboard") && ns.contains("AmlCluster") && ns.contains("batch.volcano.sh"),
        "{ns}"
    );
    assert!(r.stderr.contains("does not serve Tensorboard"), "{r:?}");
}

#[test]
fn forbidden_expired_and_unreachable_clusters_give_the_documented_errors() {
    let env = cluster(false);
    // RBAC: a user who may not list Notebooks.
    env.fk.deny("viewer", "list", "kubeflow.org", "notebooks");
    let kc = env.kubeconfig_as(Some("viewer"), "viewer");
    let repo = env.dir.path().join("r1");
    let r = amlmigrate(&[
        "backup",
        "--init",
        "--repo",
        repo.to_str().unwrap(),
        "--kube",
        "--kubeconfig",
        kc.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(
        r.stderr
            .contains("not allowed to list notebooks.kubeflow.org"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("cannot list resource \"notebooks\""),
        "{r:?}"
    );
    assert!(
        !repo.join("snapshots").exists()
            || std::fs::read_dir(repo.join("snapshots")).unwrap().count() == 0,
        "a snapshot was left"
    );

    // Expired or wrong token.
    let kc = env.kubeconfig_as(None, "expired");
    let r = amlmigrate(&["pvc", "list", "--kubeconfig", kc.to_str().unwrap()]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(
        r.stderr.contains("401 Unauthorized") && r.stderr.contains("log in again"),
        "{r:?}"
    );
    assert!(!r.stderr.contains("expired-token"), "token leaked: {r:?}");

    // Nothing listening.
    let closed = common::gate::ClosedPort::new();
    let port = closed.port;
    let dead = env
        .fk
        .kubeconfig_yaml(FakeKube::ADMIN_TOKEN)
        .replace(&env.fk.https_url(), &format!("http://127.0.0.1:{port}"));
    let path = env.dir.path().join("dead.yaml");
    std::fs::write(&path, dead).unwrap();
    let r = amlmigrate(&[
        "pvc",
        "list",
        "--json",
        "--kubeconfig",
        path.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 5, "{r:?}");
    let err: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(err["error"]["kind"], "connection");
    assert!(
        err["error"]["message"].as_str().unwrap().contains(&format!(
            "cannot reach the Kubernetes API server http://127.0.0.1:{port}"
        )),
        "{err}"
    );
}

#[test]
fn a_partial_restore_failure_names_each_object_and_restores_the_rest() {
    let env = cluster(false);
    let id = env.backup(&[]);
    delete_everything(&env.fk);
    env.fk
        .deny("ops", "patch", "security.istio.io", "authorizationpolicies");
    let kc = env.kubeconfig_as(Some("ops"), "ops");
    // The Delete volumes went with their claims: new ones are created only for the driver and
    // class the operator names.
    let r = amlmigrate(&[
        "restore",
        "--repo",
        env.repo(),
        &id,
        "--only",
        "kubernetes",
        "--volume-driver",
        "topolvm.io",
        "--volume-class",
        "sc-topolvm",
        "--kubeconfig",
        kc.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("4 Kubernetes object(s) could not be restored"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains(
            "failed        AuthorizationPolicy team-a/user-alice-example-com-clusterrole-admin"
        ),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("not allowed to apply authorizationpolicies.security.istio.io"),
        "{r:?}"
    );
    // Everything else is back.
    assert!(
        env.fk
            .get("kubeflow.org/v1", "Notebook", Some("team-b"), "vscode-dev")
            .is_some()
    );
    assert!(
        env.fk
            .get("kubeflow.org/v1", "Profile", None, "team-a")
            .is_some()
    );
    // Once the permission is granted, the same command finishes the job.
    let r = env.restore_ok(&id, &[]);
    assert!(r.contains("4 created"), "{r}");
}
