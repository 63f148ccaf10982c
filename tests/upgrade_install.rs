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
            .filter(|o| {
                !["volcano", "workspace"].contains(
                    &o["metadata"]["labels"]["cpaas.io/module-name"]
                        .as_str()
                        .unwrap(),
                )
            })
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
    // The platform renamed it; it is still there under its new name.
    assert!(by_hand["metadata"]["name"] == "business-2-kfp-by-hand");
    assert!(
        lab.plugin("kfp")
            .iter()
            .any(|o| o["spec"]["version"] == "v2.4.0"),
        "the hand-installed 1.4 plugin was deleted"
    );
    assert_eq!(module_infos_of(&lab, "business-1").len(), 6);
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
    // The global cluster holds plugins of business-1 and business-2: the platform's record of
    // the cluster the context points at says which.
    let r = amlmigrate(&[
        "upgrade",
        "init",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(
            "cluster_name = \"business-2\"   # the cluster the kube context points at (Cluster kube-public/business-2 of the global cluster)"
        ),
        "{r:?}"
    );
    // Without that record, it is a person's call.
    point_cluster_at(lab.g(), "business-2", "https://192.168.171.125:6443");
    let r = amlmigrate(&[
        "upgrade",
        "init",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ]);
    assert!(
        r.stdout.contains(
            "cluster_name = \"\"   # DECIDE: the global cluster has plugins of several clusters: business-1, business-2"
        ),
        "{r:?}"
    );
    point_cluster_at(lab.g(), "business-2", &lab.fk.https_url());
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

/// Plugins of the lab's cluster created while the run installed, each checked at its creation:
/// were the modules its package depends on ready (as the platform judges it) at that moment?
fn watch_install_order(lab: &Lab) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (out, cluster) = (seen.clone(), lab.world.cluster());
    lab.g().on_change(move |c, h| {
        let o = &c.object;
        // What the run sent (the platform's renamed copy follows at once).
        let sent = o["metadata"]["name"].as_str().unwrap().len() != cluster.len() + 33;
        if !c.is("cluster.alauda.io", "ModuleInfo")
            || c.kind != fakekube::ChangeKind::Added
            || o["metadata"]["labels"]["cpaas.io/cluster-name"] != cluster
            || !sent
        {
            return;
        }
        let module = o["metadata"]["labels"]["cpaas.io/module-name"]
            .as_str()
            .unwrap();
        let version = o["spec"]["version"].as_str().unwrap();
        let mc = h
            .get(
                "cluster.alauda.io/v1alpha1",
                "ModuleConfig",
                None,
                &format!("{module}-{version}"),
            )
            .unwrap();
        let infos = h.list("cluster.alauda.io/v1alpha1", "ModuleInfo", None);
        for d in mc["spec"]["dependencies"].as_array().into_iter().flatten() {
            let ready = infos.iter().any(|i| {
                i["metadata"]["labels"]["cpaas.io/cluster-name"] == cluster
                    && i["metadata"]["labels"]["cpaas.io/module-name"] == d["moduleName"]
                    && fakekube::plugins::ready(i)
            });
            out.lock().unwrap().push(format!(
                "{module} created, {} {}",
                d["moduleName"].as_str().unwrap(),
                if ready { "ready" } else { "NOT ready" }
            ));
        }
    });
    seen
}

#[test]
fn plugins_install_after_what_their_packages_need_is_ready_and_are_found_renamed() {
    let lab = Lab::new(LabOptions {
        world: World::Plugins,
        ..Default::default()
    });
    // The configuration lists the plugins backwards: the packages' dependencies decide.
    lab.edit_config(|s| {
        let (head, plugins) = s.split_once("[[install.plugins]]").unwrap();
        let (plugins, tail) = plugins.split_once("[mlflow]").unwrap();
        let mut blocks: Vec<&str> = plugins.split("[[install.plugins]]").collect();
        blocks.reverse();
        let blocks: Vec<String> = blocks
            .iter()
            .map(|b| format!("[[install.plugins]]\n{}\n", b.trim()))
            .collect();
        format!("{head}{}[mlflow]{tail}", blocks.concat())
    });
    // The platform publishes the mlflow package late: not deployable until its catalog ran.
    let g = lab.g().handle();
    let package = g
        .get(
            "cluster.alauda.io/v1alpha1",
            "ModuleConfig",
            None,
            "mlflow-v3.1.1",
        )
        .unwrap();
    g.delete(
        "cluster.alauda.io/v1alpha1",
        "ModuleConfig",
        None,
        "mlflow-v3.1.1",
    );
    when_journal_shows(&lab.dir, "install-plugins", "waiting", move || {
        let mut pkg = package;
        pkg["metadata"]
            .as_object_mut()
            .unwrap()
            .retain(|k, _| k == "name" || k == "labels");
        pkg.as_object_mut().unwrap().remove("status");
        g.create(pkg).unwrap();
    });
    let seen = watch_install_order(&lab);
    let plan = lab.upgrade(&["plan"]);
    assert!(
        plan.stdout
            .contains("installs volcano → kftraining → kfbase → kfp → mlflow (the order their packages' dependencies give)"),
        "{plan:?}"
    );
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_upgraded(&lab);
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            "kfp created, kfbase ready",
            "kftraining created, volcano ready",
            "mlflow created, kfbase ready",
        ],
        "a plugin was created before what it depends on was ready"
    );
    // Every 1.4 plugin carries the platform's name, not the one the run sent.
    for (m, _) in PLUGINS_14 {
        let name = lab.plugin(m)[0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        let hash = name.strip_prefix("business-2-").unwrap();
        assert_eq!(hash.len(), 32, "{name}");
    }
}

#[test]
fn a_form_the_package_does_not_accept_is_refused_before_anything_is_written() {
    let lab = Lab::new(LabOptions {
        world: World::Plugins,
        ..Default::default()
    });
    // A misspelled key and a value of the wrong type.
    lab.edit_config(|s| {
        s.replace("volcanoScheduling = {", "volcanoSheduling = {")
            .replace("pgPort = 5432", "pgPort = \"5432\"")
    });
    let plan = lab.upgrade(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    for want in [
        "FAIL [[install.plugins]] kftraining sets volcanoSheduling.enabled, which is not a field of the published kftraining-v1.9.2 form (its fields: volcanoScheduling.enabled); correct or remove it",
        "FAIL [[install.plugins]] mlflow config: pgPort must be integer, not string (the published mlflow-v3.1.1 form)",
    ] {
        assert!(plan.stdout.contains(want), "{want}: {plan:?}");
    }
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert_eq!(lab.writes(), 0, "something was written: {r:?}");
    // The package allows no in-place upgrade from the installed volcano: reinstall it.
    lab.edit_config(|s| {
        s.replace("volcanoSheduling = {", "volcanoScheduling = {")
            .replace("pgPort = \"5432\"", "pgPort = 5432")
    });
    lab.g().update(
        "cluster.alauda.io/v1alpha1",
        "ModuleConfig",
        None,
        "volcano-v1.10.1",
        |o| o["spec"]["supportedUpgradeVersions"] = json!(">= v1.9.0"),
    );
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("volcano v1.8.2 cannot be upgraded in place to v1.10.1: the volcano-v1.10.1 package supports in-place upgrades from >= v1.9.0 only; reinstall it as the article does: add \"volcano\" to [uninstall] plugins"),
        "{r:?}"
    );
    assert_eq!(lab.writes(), 0, "something was written: {r:?}");
    let old_volcano = lab.plugin("volcano")[0]["metadata"]["uid"].clone();
    lab.edit_config(|s| {
        s.replace(
            "[uninstall]\n",
            "[uninstall]\nplugins = [\"mlflow\", \"kftraining\", \"kfp\", \"volcano\", \"kfbase\"]\n",
        )
    });
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_upgraded(&lab);
    assert_ne!(lab.plugin("volcano")[0]["metadata"]["uid"], old_volcano);
}

#[test]
fn a_cluster_name_other_than_the_contexts_cluster_stops_the_run_before_any_write() {
    let lab = Lab::new(LabOptions {
        world: World::Plugins,
        ..Default::default()
    });
    // business-1 has its own 1.3 plugins on the same global cluster: the name must not decide
    // which are recorded and deleted.
    lab.edit_config(|s| {
        s.replace(
            "cluster_name = \"business-2\"",
            "cluster_name = \"business-1\"",
        )
    });
    let plan = lab.upgrade(&["plan"]);
    let want = format!(
        "FAIL kubernetes.cluster_name is business-1, but the kube context points at cluster business-2 (Cluster kube-public/business-2 of the global cluster lists API server {}): set cluster_name = \"business-2\"",
        lab.fk.https_url()
    );
    assert!(plan.stdout.contains(&want), "{plan:?}");
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("set cluster_name = \"business-2\""),
        "{r:?}"
    );
    // Not even a single step ran (--only skips preflight, not this).
    let only = lab.upgrade(&["run", "--yes", "--only", "protect-pvcs"]);
    assert_eq!(only.code, 4, "{only:?}");
    assert_eq!(lab.writes(), 0);
    assert_eq!(module_infos_of(&lab, "business-1").len(), 6);
}

#[test]
fn what_the_run_would_have_to_guess_is_blocked_naming_what_to_set() {
    let lab = Lab::new(LabOptions {
        world: World::Plugins,
        ..Default::default()
    });
    // Not said that this 1.3 had no chart application; no gateway with kfbase's selector; no
    // Workspace plugin.
    lab.edit_config(|s| {
        s.replace(
            "[uninstall]\ntimeout = \"20s\"\nchart = \"\"\n",
            "[uninstall]\ntimeout = \"20s\"\n",
        )
    });
    lab.fk.delete(
        "apps/v1",
        "Deployment",
        Some("kubeflow-gw"),
        "wy-kubeflow-gw",
    );
    let workspace = lab.plugin("workspace")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    lab.g()
        .delete("cluster.alauda.io/v1alpha1", "ModuleInfo", None, &workspace);
    let plan = lab.upgrade(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    for want in [
        "1.3 plugins of cluster business-2 exist, but no HelmRequest of chart kubeflow in any namespace (the 1.3 kubeflow chart application the article deletes): name its namespace with [uninstall] chart_namespace, or, if this 1.3 installation has no chart application (plugins only), say so with [uninstall] chart = \"\"",
        "FAIL no Istio ingress gateway has the pod label istio=wy-kubeflow-gw-kubeflow-gw that kfbase's istioGatewaySelector names",
        "FAIL the Workspace plugin (AML workspaces' backend controller, module workspace) is neither installed on cluster business-2 nor in [[install.plugins]]",
    ] {
        assert!(plan.stdout.contains(want), "{want}: {plan:?}");
    }
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert_eq!(lab.writes(), 0, "{r:?}");
}

#[test]
fn aml_keeps_its_own_database_account_unless_the_configuration_names_one() {
    let lab = Lab::new(LabOptions {
        world: World::Chart,
        ..Default::default()
    });
    // Unset: the plan names the live account and whence, never a password.
    let plan = lab.upgrade(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let live = "ok   AML's database account: user root, kept from the live AmlCluster default global.mysql.user and the password of Secret cpaas-system/aml-mysql-root-token (features.credentials unset)";
    assert!(plan.stdout.contains(live), "{plan:?}");
    assert!(!plan.stdout.contains("fixture-mysql-root"), "{plan:?}");
    // Named: the snapshot's source becomes AML's account, and the plan says so.
    lab.edit_config(|s| s.replace("[features]\n", "[features]\ncredentials = \"aml\"\n"));
    let plan = lab.upgrade(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let named =
        "ok   AML's database account: user amlupgrade of [mysql.aml] (features.credentials)";
    assert!(plan.stdout.contains(named), "{plan:?}");
    assert!(!plan.stdout.contains(live), "{plan:?}");
    for s in secrets(&lab) {
        assert!(!plan.stdout.contains(&s), "{plan:?}");
    }
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    // assert_upgraded reads the configuration: amlupgrade and its password everywhere.
    assert_upgraded(&lab);
}

#[test]
fn the_plan_says_which_namespaces_come_back_without_their_image_builder_secret() {
    let lab = Lab::new(LabOptions {
        world: World::Chart,
        ..Default::default()
    });
    let warning = "namespace team-c goes with the uninstall and comes back from the snapshot without its aml-image-builder-secret";
    // team-c is among the namespaces enable-features writes: nothing to say.
    let plan = lab.upgrade(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(!plan.stdout.contains(warning), "{plan:?}");
    // Without it, and without restore.identity, the plan says so and names the fixes.
    lab.edit_config(|s| {
        s.replace(
            "image_builder_namespaces = [\"kubeflow\", \"team-c\"]",
            "image_builder_namespaces = [\"kubeflow\"]",
        )
    });
    let plan = lab.upgrade(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(plan.stdout.contains(warning), "{plan:?}");
    assert!(
        plan.stdout
            .contains("add team-c to features.image_builder_namespaces"),
        "{plan:?}"
    );
}

#[test]
fn a_platform_that_installs_plugins_through_cluster_plugin_instances_is_named_and_blocked_before_any_write()
 {
    let lab = Lab::new(LabOptions {
        world: World::Plugins,
        ..Default::default()
    });
    let plan = lab.upgrade(&["plan"]);
    for want in [
        "install API: ModuleInfo (cluster.alauda.io) on the global cluster; the workload cluster serves no ClusterPluginInstance",
        // No source of the cluster's ACP version is known: said, not guessed.
        "note the kfbase-v1.10.1 package deploys on ACP >= v3.18.0 (targetClusterVersions): not checked",
    ] {
        assert!(plan.stdout.contains(want), "{want}: {plan:?}");
    }
    // The workload cluster becomes a 4.x platform's: it serves ClusterPluginInstance.
    lab.fk
        .load_yaml(include_str!("../testdata/kube/acp-4x-plugin-instance.yaml"));
    let plan = lab.upgrade(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let refusal = "the workload cluster serves ClusterPluginInstance (cluster.alauda.io): on this platform a plugin is installed through one, and Alauda's docs say not to create its ModuleInfo by hand";
    for want in [
        "install API: ClusterPluginInstance (cluster.alauda.io), served by the workload cluster (a 4.x platform)",
        &format!("FAIL {refusal}"),
        "install kfbase v1.10.1, kfp v2.4.1, volcano v1.10.1, kftraining v1.9.2, mlflow v3.1.1 from the platform (Administrator → Marketplace → Cluster Plugins)",
    ] {
        assert!(plan.stdout.contains(want), "{want}: {plan:?}");
    }
    let before = lab.writes();
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains(refusal), "{r:?}");
    assert_eq!(lab.writes(), before, "something was written: {r:?}");
    assert!(
        lab.fk
            .list("cluster.alauda.io/v1alpha1", "ClusterPluginInstance", None)
            .is_empty()
    );
}

#[test]
fn a_resource_a_1_3_package_says_blocks_its_removal_is_named_in_the_plan_and_the_uninstall_waits_for_it()
 {
    let lab = Lab::new(LabOptions {
        world: World::Plugins,
        ..Default::default()
    });
    // kfp's 1.3 package says the plugin cannot be removed while a ConfigMap of it exists; the
    // platform keeps such a plugin Deleting for as long as it does.
    lab.g().update(
        "cluster.alauda.io/v1alpha1",
        "ModuleConfig",
        None,
        "kfp-v2.0.5",
        |o| {
            o["spec"]["resourcesBlockRemove"] = json!([
                {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "kubeflow", "name": "kfp-blocker"}
            ])
        },
    );
    lab.fk
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kfp-blocker", "namespace": "kubeflow"}}))
        .unwrap();
    let named = "plugin kfp v2.0.5: its package (ModuleConfig kfp-v2.0.5) lists in resourcesBlockRemove ConfigMap kubeflow/kfp-blocker, and the platform does not remove the plugin while that exists; delete it";
    let plan = lab.upgrade(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(plan.stdout.contains(&format!("FAIL {named}")), "{plan:?}");
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr
            .contains("the platform would not remove the 1.3 plugins")
            && r.stderr.contains(named),
        "{r:?}"
    );
    assert_eq!(deleted_module_infos(&lab), Vec::<String>::new(), "{r:?}");
    // Gone: the same command resumes and the uninstall goes through.
    lab.fk
        .delete("v1", "ConfigMap", Some("kubeflow"), "kfp-blocker");
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_upgraded(&lab);
}
