//! What the uninstall may touch and what the install and the features write, against the 1.3
//! installations the issue names: a chart application (business-3), plugin ModuleInfos
//! (business-2), and plugins of other clusters sharing the global cluster; and `upgrade init`
//! reading a starting configuration from such a cluster.

mod common;

use common::upgrade::*;
use common::*;
use serde_json::{Value, json};

fn deleted_module_infos(lab: &Lab) -> Vec<String> {
    let mut out: Vec<String> = lab
        .g()
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("/moduleinfoes/"))
        .map(|r| r.path.rsplit('/').next().unwrap().to_string())
        .collect();
    out.sort();
    out
}

fn module_infos_of(lab: &Lab, cluster: &str) -> Vec<Value> {
    lab.g()
        .list("cluster.alauda.io/v1alpha1", "ModuleInfo", None)
        .into_iter()
        .filter(|o| o["metadata"]["labels"]["cpaas.io/cluster-name"] == cluster)
        .collect()
}

#[test]
fn a_chart_application_install_loses_only_its_chart_and_keeps_its_in_cluster_mysql_host() {
    let lab = Lab::new(LabOptions {
        world: World::Chart,
        ..Default::default()
    });
    let others_before: Vec<Value> = ["business-1", "business-2"]
        .iter()
        .flat_map(|c| module_infos_of(&lab, c))
        .collect();
    let plan = lab.upgrade(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    for want in [
        "ok   1.3 installation: HelmRequest kubeflow/kubeflow (recorded; the uninstall deletes it)",
        "assumes: the 1.3 kubeflow chart application: a HelmRequest (app.alauda.io/v1) in any namespace whose chart (spec.chart, last path segment) is kubeflow",
    ] {
        assert!(plan.stdout.contains(want), "{want}: {plan:?}");
    }
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_upgraded(&lab);
    // Item 7: the live in-cluster MySQL host stays (the configuration leaves it unset).
    let ac = lab
        .fk
        .get(
            "amlclusters.aml.dev/v1alpha1",
            "AmlCluster",
            None,
            "default",
        )
        .unwrap();
    assert_eq!(
        ac["spec"]["values"]["global"]["mysql"]["host"],
        "mysql.business-3-db.svc"
    );
    assert_eq!(ac["spec"]["values"]["global"]["mysql"]["database"], "aml");
    // Item 4: only the chart went; no plugin of any cluster was deleted, other clusters' plugins
    // are as they were.
    assert_eq!(deleted_module_infos(&lab), Vec::<String>::new());
    let others_after: Vec<Value> = ["business-1", "business-2"]
        .iter()
        .flat_map(|c| module_infos_of(&lab, c))
        .collect();
    let names = |v: &[Value]| -> Vec<(String, String)> {
        v.iter()
            .map(|o| {
                (
                    o["metadata"]["name"].as_str().unwrap().to_string(),
                    o["spec"]["version"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(names(&others_after), names(&others_before));
    let chart_deletes = lab
        .fk
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("/helmrequests/"))
        .count();
    assert_eq!(chart_deletes, 1);
}

#[test]
fn the_uninstall_deletes_only_what_the_snapshot_recorded_and_never_a_1_4_plugin() {
    let lab = Lab::new(LabOptions {
        world: World::Plugins,
        ..Default::default()
    });
    let recorded: Vec<String> = {
        let mut v: Vec<String> = module_infos_of(&lab, "business-2")
            .iter()
            .filter(|o| o["metadata"]["labels"]["cpaas.io/module-name"] != "volcano")
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(recorded.len(), 4);
    let r = lab.upgrade(&["run", "--yes", "--until", "snapshot"]);
    assert_eq!(r.code, 0, "{r:?}");
    // After the snapshot a person installs a 1.4 Kubeflow Pipelines by hand (an earlier
    // attempt, at another 1.4 version than the configuration's).
    let by_hand = lab
        .g()
        .create(
            json!({"apiVersion": "cluster.alauda.io/v1alpha1", "kind": "ModuleInfo",
            "metadata": {"name": "business-2-kfp-by-hand", "labels": {
                "cpaas.io/cluster-name": "business-2", "cpaas.io/module-name": "kfp",
                "cpaas.io/module-type": "plugin"}},
            "spec": {"version": "v2.4.0", "config": {"mysql": {"builtin": true}}}}),
        )
        .unwrap();
    let plan = lab.upgrade(&["plan"]);
    assert!(
        plan.stdout
            .contains("(plugin kfp v2.0.5): exists (recorded as 1.3) → deleted")
            || plan.stdout.contains("waits for the operator upgrade"),
        "{plan:?}"
    );
    assert!(!plan.stdout.contains("business-2-kfp-by-hand"), "{plan:?}");
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        deleted_module_infos(&lab),
        recorded,
        "deleted something else than the recorded 1.3 plugins"
    );
    assert!(
        lab.g()
            .get(
                "cluster.alauda.io/v1alpha1",
                "ModuleInfo",
                None,
                by_hand["metadata"]["name"].as_str().unwrap()
            )
            .is_some(),
        "the hand-installed 1.4 plugin was deleted"
    );
    assert_eq!(module_infos_of(&lab, "business-1").len(), 5);
    // The recorded installation is in the journal, with uids.
    let recorded_fact: Vec<Value> = lab
        .journal()
        .iter()
        .find_map(|e| e["facts"]["installation"]["plugins"].as_array().cloned())
        .unwrap();
    assert_eq!(recorded_fact.len(), 4);
    assert!(
        recorded_fact
            .iter()
            .all(|r| r["uid"].as_str().is_some_and(|u| !u.is_empty()))
    );
    // A second run finds the recorded installation gone and deletes nothing more.
    let before = deleted_module_infos(&lab).len();
    let again = lab.upgrade(&["run", "--yes"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(deleted_module_infos(&lab).len(), before);
}

#[test]
fn upgrade_init_writes_a_starting_configuration_from_the_live_cluster() {
    let lab = Lab::new(LabOptions {
        world: World::Plugins,
        ..Default::default()
    });
    let kubeconfig = lab.dir.path().join("kubeconfig");
    let out = lab.dir.path().join("init.toml");
    let repo = lab.dir.path().join("repo-init");
    // The global cluster holds plugins of business-1 and business-2: which one is a person's call.
    let r = amlmigrate(&[
        "upgrade",
        "init",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(
            "cluster_name = \"\"   # DECIDE: the global cluster has plugins of several clusters: business-1, business-2"
        ),
        "{r:?}"
    );
    let r = amlmigrate(&[
        "upgrade",
        "init",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--cluster-name",
        "business-2",
        "--repo",
        repo.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("marked DECIDE need a person"), "{r:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    for want in [
        "cluster_name = \"business-2\"",
        // AmlCluster global.mysql, kept as the cluster reaches it.
        "url = \"mysql://root@mysql.business-2-db.svc:3306\"",
        "mysql_host = \"mysql.business-2-db.svc\"",
        "password_secret_name = \"aml-mysql-root-token\"",
        "training_pvc_size = \"10Gi\"",
        // The installed 1.3 plugins and the newest published 1.4 packages.
        "kfbase v1.8.0",
        "mlflow v2.6.0",
        "version = \"v1.10.1\"",
        "version = \"v3.1.1\"",
        "istioGatewaySelector = { istio = \"wy-kubeflow-gw-kubeflow-gw\" }",
        "config = { minio = { builtin = true }, mysql = { builtin = true }, pipelineBackend = \"argo\" }",
        "secrets = { pgPassword = \"postgres\" }",
        // The 1.3 MLflow's MySQL, storage classes, user namespaces, the ServiceMesh.
        "url = \"mysql://root@mysql.kubeflow:3306\"",
        "storage_class = \"sc-topolvm\"",
        "image_builder_namespaces = [\"kubeflow\", \"team-c\"]",
        "servicemesh_name = \"business-2\"",
        // What only a person can decide.
        "# DECIDE: oidcRedirectURL",
        "[postgres]\nurl = \"\"   # DECIDE:",
        "delete = false   # DECIDE:",
    ] {
        assert!(text.contains(want), "init lacks {want:?}:\n{text}");
    }
    // Undecided, it stops the plan with a message naming what to set.
    let plan = amlmigrate(&["upgrade", "plan", "--config", out.to_str().unwrap()]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(plan.stderr.contains("PostgreSQL URL"), "{plan:?}");
    // Decided, it is a configuration the plan reads.
    let decided = text
        .replace(
            "[postgres]\nurl = \"\"",
            &format!("[postgres]\nurl = \"{}/{}\"", common::pg::PG, lab.pg.name),
        )
        .replace(
            "url = \"\"   # DECIDE: e.g. mysql://root@127.0.0.1:13306",
            "url = \"mysql://amlupgrade@127.0.0.1:3306\"   # e.g.",
        )
        .replace(
            "url = \"mysql://root@mysql.business-2-db.svc:3306\"",
            "url = \"mysql://amlupgrade@127.0.0.1:3306\"",
        )
        .replace(
            "url = \"mysql://root@mysql.kubeflow:3306\"",
            "url = \"mysql://amlupgrade@127.0.0.1:3306\"",
        )
        .replace(
            "ca_file = \"\"",
            &format!("ca_file = \"{}\"", lab.registry.ca_file.display()),
        )
        .replace(
            "kubeflowNamespace = \"kubeflow\" }",
            &format!("kubeflowNamespace = \"kubeflow\", oidcRedirectURL = \"{OIDC_REDIRECT}\" }}"),
        );
    std::fs::write(&out, decided).unwrap();
    // Planning changes nothing: it refuses a repository that does not exist, creating none.
    let plan = amlmigrate_env(
        &["upgrade", "plan", "--config", out.to_str().unwrap()],
        &[("AMLMIGRATE_MYSQL_PASSWORD", MYSQL_PASSWORD)],
    );
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(plan.stderr.contains(repo.to_str().unwrap()), "{plan:?}");
    assert!(!repo.exists(), "upgrade plan created {}", repo.display());
    ok(&["repo", "init", "--repo", repo.to_str().unwrap()]);
    let plan = amlmigrate_env(
        &["upgrade", "plan", "--config", out.to_str().unwrap()],
        &[("AMLMIGRATE_MYSQL_PASSWORD", MYSQL_PASSWORD)],
    );
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(plan.stdout.contains(" preflight "), "{plan:?}");
    // Never over an existing file.
    let again = amlmigrate(&[
        "upgrade",
        "init",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(again.code, 4, "{again:?}");
}
