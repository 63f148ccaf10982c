//! `restore --on-conflict update` puts objects back as they were (issue 12): fields added since
//! the snapshot are removed, changed ones put back, controller-owned ones left alone; `skip`
//! and the dry run list each field update would change or remove; Secret values and
//! credentials never show in those lists. Changes are made with the real kubectl.

mod common;
mod kubeenv;

use std::process::Command;

use common::cluster::writes;
use serde_json::{Value, json};

use kubeenv::{Env, age_key, cluster};

fn kubectl(env: &Env, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .args(["--kubeconfig", env.kc()])
        .args(args)
        .output()
        .expect("kubectl is installed (scripts/test.sh says so when it is not)");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn amlcluster(env: &Env) -> Value {
    serde_json::from_str(&kubectl(
        env,
        &[
            "get",
            "amlclusters.amlclusters.aml.dev",
            "default",
            "-o",
            "json",
        ],
    ))
    .unwrap()
}

#[test]
fn update_removes_a_field_added_after_the_snapshot_as_the_issue_reproduces_it() {
    let env = cluster(false);
    // The 1.3 cluster before the datasets feature was switched on.
    env.fk.update(
        "amlclusters.aml.dev/v1alpha1",
        "AmlCluster",
        None,
        "default",
        |o| {
            o["spec"]["values"]["experimentalFeatures"]
                .as_object_mut()
                .unwrap()
                .remove("datasets");
        },
    );
    let snapshot_spec = amlcluster(&env)["spec"].clone();
    let id = env.backup(&[]);
    kubectl(
        &env,
        &[
            "patch",
            "amlclusters.amlclusters.aml.dev",
            "default",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"values":{"experimentalFeatures":{"datasets":true}}}}"#,
        ],
    );
    // And a label someone added to a notebook, with kubectl too.
    kubectl(
        &env,
        &[
            "label",
            "notebooks.kubeflow.org",
            "eda",
            "-n",
            "team-a",
            "added=yes",
        ],
    );
    assert_eq!(
        amlcluster(&env)["spec"]["values"]["experimentalFeatures"]["datasets"],
        true
    );

    // skip leaves it, and says what update would do.
    let out = env.restore_ok(&id, &[]);
    assert!(out.contains("skipped       AmlCluster default"), "{out}");
    assert!(
        out.contains("spec.values.experimentalFeatures.datasets: true → (removed)"),
        "{out}"
    );
    assert!(
        out.contains("metadata.labels.added: \"yes\" → (removed)"),
        "{out}"
    );

    // The dry run lists the removal and writes nothing.
    let n = writes(&env.fk);
    let r = env.restore(&id, &["--on-conflict", "update", "--dry-run", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(writes(&env.fk), n, "the dry run wrote");
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let objects = report["kubernetes"]["objects"].as_array().unwrap();
    let aml = objects.iter().find(|o| o["kind"] == "AmlCluster").unwrap();
    assert_eq!(aml["action"], "would update", "{aml}");
    assert_eq!(
        aml["changes"],
        json!([{"path": "spec.values.experimentalFeatures.datasets", "op": "remove",
                "old": true, "new": null}])
    );

    // update makes it equal to the snapshot; everything else was already equal.
    let r = env.restore(&id, &["--on-conflict", "update", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    for o in report["kubernetes"]["objects"].as_array().unwrap() {
        let changed = (o["kind"] == "AmlCluster" && o["name"] == "default")
            || (o["kind"] == "Notebook" && o["name"] == "eda");
        assert_eq!(
            o["action"],
            if changed { "updated" } else { "unchanged" },
            "{o}"
        );
    }
    assert_eq!(amlcluster(&env)["spec"], snapshot_spec);
    let nb: Value = serde_json::from_str(&kubectl(
        &env,
        &[
            "get",
            "notebooks.kubeflow.org",
            "eda",
            "-n",
            "team-a",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert!(nb["metadata"]["labels"].get("added").is_none(), "{nb}");
    // Claims stay bound to their volumes: volumeName and binding annotations are the
    // controller's, and were neither compared nor written.
    let check = env.ok(&["pvc", "check", "--repo", env.repo(), &id]);
    assert!(check.contains("8 of 8"), "{check}");

    // A second update finds nothing to do and writes nothing.
    let n = writes(&env.fk);
    let out = env.restore_ok(&id, &["--on-conflict", "update"]);
    assert!(!out.contains("updated"), "{out}");
    assert_eq!(writes(&env.fk), n, "{out}");
}

#[test]
fn diffs_of_secrets_and_credential_fields_say_hidden_never_the_values() {
    let env = cluster(false);
    let (recipient, identity) = age_key(env.dir.path());
    let id = env.backup(&["--encrypt-to", &recipient, "--unencrypted-repo"]);
    let snapshot_value = "Zml4dHVyZS1teXNxbC1yb290"; // the fixture's password, base64
    // Since the snapshot: the Secret's password changed and a key was added; a password was
    // put into the (not secret) ConfigMap.
    env.fk.update(
        "v1",
        "Secret",
        Some("team-a"),
        "aml-image-builder-secret",
        |o| {
            o["data"]["MODEL_REPO_BUILDER_DB_PASSWORD"] = json!("bGl2ZS1wYXNzd29yZA==");
            o["data"]["EXTRA_TOKEN"] = json!("ZXh0cmEtdG9rZW4=");
        },
    );
    env.fk.update(
        "v1",
        "ConfigMap",
        Some("team-a"),
        "aml-image-builder-config",
        |o| {
            o["data"]["MODEL_REPO_BUILDER_DB_PASSWORD"] = json!("plain-live-password");
        },
    );
    let values = [
        snapshot_value,
        "fixture-mysql-root",
        "bGl2ZS1wYXNzd29yZA",
        "live-password",
        "ZXh0cmEtdG9rZW4",
        "extra-token",
        "plain-live-password",
    ];
    let key = identity.to_str().unwrap();
    for extra in [
        vec!["--identity", key],
        vec!["--identity", key, "--json"],
        vec!["--identity", key, "--on-conflict", "update", "--dry-run"],
        vec![
            "--identity",
            key,
            "--on-conflict",
            "update",
            "--dry-run",
            "--json",
        ],
    ] {
        let mut args = vec!["--namespaces", "team-a", "--kinds", "Secret,ConfigMap"];
        args.extend(&extra);
        let r = env.restore(&id, &args);
        assert_eq!(r.code, 0, "{r:?}");
        for v in values {
            assert!(!r.all().contains(v), "{v} shown with {extra:?}: {r:?}");
        }
        assert!(r.stdout.contains("(hidden)"), "{r:?}");
        if extra.contains(&"--json") {
            let report: Value = serde_json::from_str(&r.stdout).unwrap();
            let objects = report["kubernetes"]["objects"].as_array().unwrap();
            let secret = objects.iter().find(|o| o["kind"] == "Secret").unwrap();
            let changes = secret["changes"].as_array().unwrap();
            assert_eq!(changes.len(), 2, "{secret}");
            for c in changes {
                assert_eq!(c["hidden"], true, "{c}");
            }
            let cm = objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
            assert_eq!(
                cm["changes"],
                json!([{"path": "data.MODEL_REPO_BUILDER_DB_PASSWORD", "op": "remove",
                        "old": "(hidden)", "new": null, "hidden": true}])
            );
        } else {
            assert!(
                r.stdout
                    .contains("data.MODEL_REPO_BUILDER_DB_PASSWORD: (hidden) → (hidden)"),
                "{r:?}"
            );
            assert!(
                r.stdout.contains("data.EXTRA_TOKEN: (hidden) → (removed)"),
                "{r:?}"
            );
        }
    }
    // And the update itself puts the snapshot's values back.
    let r = env.restore(
        &id,
        &[
            "--namespaces",
            "team-a",
            "--kinds",
            "Secret,ConfigMap",
            "--identity",
            key,
            "--on-conflict",
            "update",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    for v in values {
        assert!(!r.all().contains(v), "{v} shown: {r:?}");
    }
    let s = env
        .fk
        .get("v1", "Secret", Some("team-a"), "aml-image-builder-secret")
        .unwrap();
    assert_eq!(
        s["data"],
        json!({"MODEL_REPO_BUILDER_DB_PASSWORD": snapshot_value})
    );
}
