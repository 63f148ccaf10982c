//! A snapshot is untrusted input: someone who can write the bucket rewrites a real snapshot's
//! Kubernetes part (objects.json, YAML files, the manifest's user namespaces) and recomputes
//! every hash, so `verify` calls it sound. Each test forges one thing the catalog does not
//! allow and proves that the restore refuses it before its first write, dry run included.

mod common;
mod kubeenv;

use common::cluster::writes;
use serde_json::{Value, json};

use kubeenv::{Env, cluster, dry_run_refuses, forged, refused, requests_naming};

#[test]
fn a_cluster_role_binding_to_cluster_admin_is_refused_even_when_asked_for_by_kind() {
    let env = cluster(false);
    let id = forged(&env, |f| {
        f.add(
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "backdoor"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": "cluster-admin"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                              "name": "mallory@example.com"}]}),
            "clusterrolebindings",
            true,
        )
    });
    // Something the snapshot may restore is missing, so a restore would write if it could.
    env.fk
        .delete("kubeflow.org/v1", "Notebook", Some("team-a"), "eda");
    refused(
        &env,
        &id,
        &[],
        4,
        &["ClusterRoleBinding backdoor", "not in the catalog in use"],
    );
    refused(
        &env,
        &id,
        &["--kinds", "ClusterRoleBinding"],
        4,
        &["ClusterRoleBinding backdoor"],
    );
    let rbac = "rbac.authorization.k8s.io/v1";
    assert!(
        env.fk
            .get(rbac, "ClusterRoleBinding", None, "backdoor")
            .is_none()
    );
    assert!(
        env.fk
            .get("kubeflow.org/v1", "Notebook", Some("team-a"), "eda")
            .is_none(),
        "the rest of a refused snapshot was restored"
    );
    // The dry run says what would really happen: the notebook would come back, the binding not.
    let r = env.restore(&id, &["--dry-run"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stdout.contains("would create  Notebook team-a/eda"),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("refused       ClusterRoleBinding backdoor"),
        "{r:?}"
    );
    dry_run_refuses(&env, &id, &[], 4, "ClusterRoleBinding", "backdoor");
    // Without the forgery, the same restore goes through.
    env.restore_ok(&id, &["--kinds", "Notebook"]);
}

#[test]
fn a_secret_stored_in_clear_is_refused() {
    let env = cluster(false);
    let id = forged(&env, |f| {
        f.add(
            &json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "aml-image-builder-secret", "namespace": "team-b"},
                "data": {"MODEL_REPO_BUILDER_DB_PASSWORD": "bWFsbG9yeQ=="}}),
            "secrets",
            true,
        )
    });
    env.fk
        .delete("v1", "Secret", Some("team-b"), "aml-image-builder-secret");
    refused(
        &env,
        &id,
        &[],
        3,
        &["Secret team-b/aml-image-builder-secret", "stored in clear"],
    );
    assert!(
        env.fk
            .get("v1", "Secret", Some("team-b"), "aml-image-builder-secret")
            .is_none()
    );
    let o = dry_run_refuses(&env, &id, &[], 3, "Secret", "aml-image-builder-secret");
    assert!(!o.to_string().contains("bWFsbG9yeQ"), "{o}");
}

#[test]
fn a_host_path_volume_bound_to_an_attackers_claim_is_refused() {
    let env = cluster(false);
    // The attacker's own namespace and claim, waiting for a volume.
    env.fk
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mallory"}}))
        .unwrap();
    env.fk
        .create(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "grab", "namespace": "mallory"},
            "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "",
                     "volumeName": "node-root", "resources": {"requests": {"storage": "1Gi"}}}}))
        .unwrap();
    let root = |name: &str, claim: (&str, &str)| {
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": "1Ti"}, "accessModes": ["ReadWriteMany"],
                     "hostPath": {"path": "/"}, "persistentVolumeReclaimPolicy": "Retain",
                     "storageClassName": "",
                     "claimRef": {"namespace": claim.0, "name": claim.1}}})
    };
    let refuses = |name: &str, claim: (&str, &str), says: &str| {
        let id = forged(&env, |f| {
            f.add(&root(name, claim), "persistentvolumes", true)
        });
        refused(
            &env,
            &id,
            &[],
            4,
            &[&format!("PersistentVolume {name}"), says],
        );
        assert!(env.fk.get("v1", "PersistentVolume", None, name).is_none());
        dry_run_refuses(&env, &id, &[], 4, "PersistentVolume", name);
    };
    refuses("node-root", ("mallory", "grab"), "mallory/grab is not one");
    // Pointed at a claim the snapshot does restore, which names another volume: refused too.
    refuses(
        "node-root-2",
        ("team-a", "team-a-data"),
        "names another volume",
    );
}

#[test]
fn a_yaml_whose_namespace_differs_from_objects_json_is_refused() {
    let env = cluster(false);
    let rb = "user-alice-example-com-clusterrole-admin";
    let id = forged(&env, |f| {
        let path = f.listed("RoleBinding", Some("team-a"), rb)["path"]
            .as_str()
            .unwrap()
            .to_string();
        f.edit_yaml(&path, |o| {
            o["metadata"]["namespace"] = json!("kube-system");
            o["roleRef"]["name"] = json!("cluster-admin");
            o["subjects"] = json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                    "name": "mallory@example.com"}]);
        });
    });
    let rbac = "rbac.authorization.k8s.io/v1";
    env.fk.delete(rbac, "RoleBinding", Some("team-a"), rb);
    // The namespace filter and the report read objects.json; the write would read the YAML.
    refused(
        &env,
        &id,
        &["--namespaces", "team-a"],
        3,
        &[
            &format!("RoleBinding team-a/{rb}"),
            &format!("kube-system/{rb} but objects.json lists"),
        ],
    );
    assert!(
        env.fk
            .get(rbac, "RoleBinding", Some("kube-system"), rb)
            .is_none()
    );
    assert!(
        env.fk
            .get(rbac, "RoleBinding", Some("team-a"), rb)
            .is_none()
    );
    let o = dry_run_refuses(&env, &id, &["--namespaces", "team-a"], 3, "RoleBinding", rb);
    assert_eq!(o["namespace"], "team-a", "{o}");
}

#[test]
fn objects_outside_the_user_namespaces_are_refused_and_a_snapshot_cannot_make_one() {
    let env = cluster(false);
    let binding = |ns: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "mallory-admin", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": "mallory@example.com"}]})
    };
    let rbac = "rbac.authorization.k8s.io/v1";
    // A namespace the snapshot does not call a user namespace.
    let id = forged(&env, |f| f.add(&binding("default"), "rolebindings", true));
    refused(
        &env,
        &id,
        &[],
        4,
        &[
            "RoleBinding default/mallory-admin",
            "not one of the snapshot's user namespaces",
        ],
    );
    // A system namespace the forged manifest calls a user namespace, with a Profile for it.
    let id = forged(&env, |f| {
        f.manifest["kubernetes"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!("kube-system"));
        f.add(&binding("kube-system"), "rolebindings", true);
        f.add(
            &json!({"apiVersion": "kubeflow.org/v1", "kind": "Profile",
                "metadata": {"name": "kube-system"},
                "spec": {"owner": {"kind": "User", "name": "mallory@example.com"}}}),
            "profiles",
            true,
        );
    });
    refused(
        &env,
        &id,
        &[],
        4,
        &[
            "RoleBinding kube-system/mallory-admin",
            "Profile kube-system",
        ],
    );
    // An existing namespace that is nobody's user namespace (no Profile, no label, no
    // Notebook): refused unless the operator names it.
    let id = forged(&env, |f| {
        f.manifest["kubernetes"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!("cpaas-system"));
        f.add(&binding("cpaas-system"), "rolebindings", true);
    });
    refused(
        &env,
        &id,
        &[],
        4,
        &[
            "RoleBinding cpaas-system/mallory-admin",
            "exists and is not a user namespace",
        ],
    );
    for ns in ["default", "kube-system", "cpaas-system"] {
        assert!(
            env.fk
                .get(rbac, "RoleBinding", Some(ns), "mallory-admin")
                .is_none(),
            "{ns}"
        );
    }
    assert!(
        env.fk
            .get("kubeflow.org/v1", "Profile", None, "kube-system")
            .is_none()
    );
    env.restore_ok(&id, &["--namespaces", "cpaas-system"]);
    assert!(
        env.fk
            .get(rbac, "RoleBinding", Some("cpaas-system"), "mallory-admin")
            .is_some(),
        "an operator who names the namespace gets what they asked for"
    );
}

#[test]
fn namespace_map_with_update_never_changes_existing_cluster_scoped_objects() {
    let env = cluster(false);
    let id = env.backup(&[]);
    let volumes = |env: &Env| -> Vec<Value> {
        env.fk
            .list("v1", "PersistentVolume", None)
            .into_iter()
            .map(|p| {
                json!([
                    p["metadata"]["name"],
                    p["metadata"]["resourceVersion"],
                    p["spec"]["claimRef"]
                ])
            })
            .collect()
    };
    let before = volumes(&env);
    // A cluster-scoped object changed since the snapshot.
    env.fk.update(
        "amlclusters.aml.dev/v1alpha1",
        "AmlCluster",
        None,
        "default",
        |o| {
            o["spec"]["values"]["experimentalFeatures"]["datasets"] = json!(false);
        },
    );
    let r = env.restore(
        &id,
        &[
            "--namespaces",
            "team-a",
            "--namespace-map",
            "team-a=team-a-copy",
            "--on-conflict",
            "update",
            "--kinds",
            "Namespace,Profile,PersistentVolume,PersistentVolumeClaim,RoleBinding,AmlCluster",
        ],
    );
    // The copied claims cannot have the volumes the original claims hold: each fails, named.
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("is claimed by team-a/team-a-data"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("skipped       AmlCluster default"),
        "{r:?}"
    );
    assert!(r.stdout.contains("never changed"), "{r:?}");
    assert_eq!(
        volumes(&env),
        before,
        "a volume of the original namespace was changed"
    );
    let aml = env
        .fk
        .get(
            "amlclusters.aml.dev/v1alpha1",
            "AmlCluster",
            None,
            "default",
        )
        .unwrap();
    assert_eq!(
        aml["spec"]["values"]["experimentalFeatures"]["datasets"],
        false
    );
    // What the map is for still happens.
    assert!(env.fk.get("v1", "Namespace", None, "team-a-copy").is_some());
    assert!(
        env.fk
            .get("kubeflow.org/v1", "Profile", None, "team-a-copy")
            .is_some()
    );
    assert!(
        env.fk
            .get(
                "rbac.authorization.k8s.io/v1",
                "RoleBinding",
                Some("team-a-copy"),
                "user-alice-example-com-clusterrole-admin"
            )
            .is_some()
    );
    // Every original claim still Bound to its volume.
    let check = env.ok(&["pvc", "check", "--repo", env.repo(), &id]);
    assert!(check.contains("8 of 8"), "{check}");
}

/// A namespace or name that would add path segments, a query or a fragment to a request is
/// refused as a name no API server serves, before any request names it: plain, with
/// `--on-conflict update`, and in a dry run (where the fake fails every write without
/// `dryRun=All`).
#[test]
fn names_that_would_alter_a_request_path_are_refused_before_any_request() {
    let env = cluster(false);
    let rbac = "rbac.authorization.k8s.io/v1";
    let istio = "security.istio.io/v1beta1";
    env.fk
        .create(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "istio-system"}}))
        .unwrap();
    env.fk
        .create(json!({"apiVersion": rbac, "kind": "RoleBinding",
            "metadata": {"name": "ops-view", "namespace": "kube-system"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "view"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": "ops@example.com"}]}))
        .unwrap();
    env.fk
        .create(json!({"apiVersion": istio, "kind": "AuthorizationPolicy",
            "metadata": {"name": "deny-all", "namespace": "istio-system"},
            "spec": {"action": "DENY", "rules": [{}]}}))
        .unwrap();
    let live = |env: &Env| {
        (
            env.fk
                .get(rbac, "RoleBinding", Some("kube-system"), "ops-view")
                .unwrap()["subjects"]
                .clone(),
            env.fk
                .get(
                    istio,
                    "AuthorizationPolicy",
                    Some("istio-system"),
                    "deny-all",
                )
                .unwrap()["spec"]
                .clone(),
        )
    };
    let before = live(&env);
    let binding = |ns: &str| {
        json!({"apiVersion": rbac, "kind": "RoleBinding",
            "metadata": {"name": "mallory-admin", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "view"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": "mallory@example.com"}]})
    };
    let allow_all = |ns: &str| {
        json!({"apiVersion": istio, "kind": "AuthorizationPolicy",
            "metadata": {"name": "allow-all", "namespace": ns},
            "spec": {"action": "ALLOW", "rules": [{}]}})
    };
    let forgeries: [(&str, Value, &str); 3] = [
        (
            "kube-system/rolebindings/ops-view#",
            binding("kube-system/rolebindings/ops-view#"),
            "rolebindings",
        ),
        (
            "kube-system/rolebindings/ops-view?x=",
            binding("kube-system/rolebindings/ops-view?x="),
            "rolebindings",
        ),
        (
            "istio-system/authorizationpolicies/deny-all#",
            allow_all("istio-system/authorizationpolicies/deny-all#"),
            "authorizationpolicies",
        ),
    ];
    for (ns, obj, plural) in forgeries {
        let id = forged(&env, |f| {
            f.manifest["kubernetes"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!(ns));
            f.add(&obj, plural, true);
        });
        let kind = obj["kind"].as_str().unwrap();
        let name = obj["metadata"]["name"].as_str().unwrap();
        let says = format!("{kind} {ns}/{name}");
        for extra in [&[][..], &["--on-conflict", "update"]] {
            refused(&env, &id, extra, 3, &[&says, "not a valid namespace name"]);
        }
        env.fk.require_dry_run(true);
        let o = dry_run_refuses(&env, &id, &["--on-conflict", "update"], 3, kind, name);
        env.fk.require_dry_run(false);
        assert!(
            o["error"]
                .as_str()
                .unwrap()
                .contains("not a valid namespace"),
            "{o}"
        );
        let first = ns.split('/').next().unwrap();
        let target = ns.split(['/', '#', '?']).nth(2).unwrap();
        assert_eq!(
            requests_naming(&env, &format!("{first}/{target}")),
            Vec::<String>::new()
        );
        assert_eq!(requests_naming(&env, name), Vec::<String>::new());
    }
    assert_eq!(
        live(&env),
        before,
        "a live object outside the snapshot changed"
    );
}

/// The same trick on a cluster-scoped kind: a volume (and the claim naming it) whose name ends
/// in `#` would reach a live volume of another namespace and set its reclaim policy.
#[test]
fn a_volume_name_that_would_reach_another_volume_is_refused() {
    let env = cluster(false);
    let pv = "pvc-3f1c9a52-7d4e-4b8a-9c21-5e6f7a8b9c01";
    let forged_name = format!("{pv}#");
    let policy = |env: &Env| {
        env.fk.get("v1", "PersistentVolume", None, pv).unwrap()["spec"]
            ["persistentVolumeReclaimPolicy"]
            .clone()
    };
    let before = policy(&env);
    let id = forged(&env, |f| {
        f.add(
            &json!({"apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": forged_name},
                "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                         "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "",
                         "csi": {"driver": "topolvm.io", "volumeHandle": "x"},
                         "claimRef": {"namespace": "team-a", "name": "grab"}}}),
            "persistentvolumes",
            true,
        );
        f.add(
            &json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "grab", "namespace": "team-a"},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                         "volumeName": forged_name,
                         "resources": {"requests": {"storage": "1Gi"}}}}),
            "persistentvolumeclaims",
            true,
        );
    });
    for extra in [&[][..], &["--on-conflict", "update"]] {
        refused(
            &env,
            &id,
            extra,
            3,
            &[
                &format!("PersistentVolume {forged_name}"),
                "PersistentVolumeClaim team-a/grab",
                "spec.volumeName",
            ],
        );
    }
    env.fk.require_dry_run(true);
    dry_run_refuses(
        &env,
        &id,
        &["--on-conflict", "update"],
        3,
        "PersistentVolume",
        &forged_name,
    );
    env.fk.require_dry_run(false);
    assert_eq!(policy(&env), before);
    assert!(
        env.fk
            .get("v1", "PersistentVolumeClaim", Some("team-a"), "grab")
            .is_none()
    );
}

/// A dry run's every write carries `dryRun=All`: with the fake failing any write without it,
/// a dry run that would create and update objects still goes through, and writes nothing.
#[test]
fn every_write_of_a_dry_run_says_dry_run() {
    let env = cluster(false);
    let id = env.backup(&[]);
    env.fk
        .delete("kubeflow.org/v1", "Notebook", Some("team-a"), "eda");
    env.fk.update(
        "amlclusters.aml.dev/v1alpha1",
        "AmlCluster",
        None,
        "default",
        |o| o["spec"]["values"]["experimentalFeatures"]["datasets"] = json!(false),
    );
    env.fk.require_dry_run(true);
    let before = writes(&env.fk);
    let out = env.restore_ok(&id, &["--dry-run", "--on-conflict", "update"]);
    assert!(out.contains("would create  Notebook team-a/eda"), "{out}");
    assert!(out.contains("would update  AmlCluster default"), "{out}");
    assert_eq!(writes(&env.fk), before);
    let dry: Vec<_> = env
        .fk
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert!(dry.len() >= 2, "{dry:?}");
    assert!(
        dry.iter().all(|r| r.query.contains("dryRun=All")),
        "{dry:?}"
    );
}

/// An entry that declares more than a reader holds in memory for one object is refused before
/// it is read (20 MiB of spaces after a real ConfigMap: still valid YAML, a few KiB in the part).
#[test]
fn an_entry_larger_than_a_reader_holds_is_refused_before_it_is_read() {
    let env = cluster(false);
    let id = forged(&env, |f| {
        let path = f.listed("ConfigMap", Some("kubeflow"), "aml-image-builder-config")["path"]
            .as_str()
            .unwrap()
            .to_string();
        let yaml = f.files.get_mut(&path).unwrap();
        yaml.extend(std::iter::repeat_n(b' ', 20 << 20));
        yaml.push(b'\n');
    });
    let before = writes(&env.fk);
    let r = env.restore(&id, &[]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("aml-image-builder-config.yaml"), "{r:?}");
    assert!(r.stderr.contains("declares"), "{r:?}");
    assert_eq!(writes(&env.fk), before);
}
