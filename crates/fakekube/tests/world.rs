//! The simulated ACP and AML that can say no: the plugin controller checks the published
//! form and the dependencies, Captain uninstalls the chart application, and the AML operator
//! acts only when a person upgrades it.

use std::time::Duration;

use fakekube::{AmlOperator, FakeKube, controllers, operator::LLM_TRAINER_TAG_14};
use serde_json::{Value, json};

mod common;

const CRDS: &str = include_str!("../../../testdata/kube/crds.yaml");
const GLOBAL: &str = include_str!("../../../testdata/kube/global-1.3.yaml");
const GLOBAL_MORE: &str = include_str!("../../../testdata/kube/global-1.3-more.yaml");
const CHART: &str = include_str!("../../../testdata/kube/aml-1.3-chart.yaml");
const PLUGINS: &str = include_str!("../../../testdata/kube/aml-1.3-plugins.yaml");
const MI: &str = "cluster.alauda.io/v1alpha1";
const DELAY: Duration = Duration::from_millis(100);
// Only a hang reaches it: the controllers act within milliseconds on an idle machine.
const T: Duration = Duration::from_secs(300);

/// The ACP global cluster with every published package and the plugin controller.
fn global() -> FakeKube {
    let fk = FakeKube::start();
    fk.load_yaml(CRDS);
    fk.load_yaml(GLOBAL);
    fk.load_yaml(GLOBAL_MORE);
    controllers::plugin_controller(&fk, DELAY);
    fk
}

/// Creates a ModuleInfo as the tool (or the Cluster Plugins form) does; returns the name the
/// platform gave it (found by its labels: the name sent is gone).
fn install(fk: &FakeKube, cluster: &str, module: &str, version: &str, config: Value) -> String {
    let before: Vec<Value> = fk.list(MI, "ModuleInfo", None);
    let created = fk
        .create(json!({"apiVersion": MI, "kind": "ModuleInfo",
            "metadata": {"generateName": format!("{cluster}-"),
                "labels": {"cpaas.io/cluster-name": cluster, "cpaas.io/module-name": module, "cpaas.io/module-type": "plugin"}},
            "spec": {"version": version, "config": config}}))
        .unwrap();
    let sent = created["metadata"]["name"].as_str().unwrap();
    assert!(
        fk.get(MI, "ModuleInfo", None, sent).is_none(),
        "{sent} was not renamed"
    );
    let mine = fk
        .list(MI, "ModuleInfo", None)
        .into_iter()
        .filter(|o| {
            let l = &o["metadata"]["labels"];
            l["cpaas.io/cluster-name"] == cluster
                && l["cpaas.io/module-name"] == module
                && o["spec"]["version"] == version
                && !before
                    .iter()
                    .any(|b| b["metadata"]["name"] == o["metadata"]["name"])
        })
        .collect::<Vec<_>>();
    assert_eq!(mine.len(), 1, "{mine:?}");
    let name = mine[0]["metadata"]["name"].as_str().unwrap().to_string();
    let hash = name.strip_prefix(&format!("{cluster}-")).unwrap();
    assert!(
        hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );
    name
}

/// Reads a ModuleInfo as a client does (over HTTP); what the charts' readiness moves on.
fn read(fk: &FakeKube, name: &str) -> Value {
    common::get(fk, &format!("/apis/{MI}/moduleinfoes/{name}")).json()
}

/// Waits until the platform judges the plugin ready, reading it as a client does.
fn ready(fk: &FakeKube, name: &str) -> Value {
    phase(fk, name, "Running");
    let mut o = read(fk, name);
    for _ in 0..3 {
        if fakekube::plugins::ready(&o) {
            return o;
        }
        o = read(fk, name);
    }
    panic!("{name} Running but never ready: {o}");
}

/// The name of the ModuleInfo of `module` among `infos`.
fn name_of(infos: &[Value], module: &str) -> String {
    let o = infos
        .iter()
        .find(|o| o["metadata"]["labels"]["cpaas.io/module-name"] == module)
        .unwrap_or_else(|| panic!("no ModuleInfo of {module}"));
    o["metadata"]["name"].as_str().unwrap().to_string()
}

/// Waits for the ModuleInfo's phase; returns the object.
fn phase(fk: &FakeKube, name: &str, want: &str) -> Value {
    let ok = fk.wait_for(MI, "ModuleInfo", None, name, T, |o| {
        o.is_some_and(|o| o["status"]["phase"] == want)
    });
    let o = fk.get(MI, "ModuleInfo", None, name);
    assert!(ok, "ModuleInfo {name} never {want}: {o:?}");
    o.unwrap()
}

/// The name of business-2's installed 1.3 kfp plugin.
fn business_2_kfp(fk: &FakeKube) -> String {
    let infos = fk.list(MI, "ModuleInfo", None);
    let business_2: Vec<Value> = infos
        .into_iter()
        .filter(|o| o["metadata"]["labels"]["cpaas.io/cluster-name"] == "business-2")
        .collect();
    name_of(&business_2, "kfp")
}

fn kfbase_form() -> Value {
    json!({"istioGatewaySelector": {"istio": "wy-kubeflow-gw-kubeflow-gw"},
           "oidcRedirectURL": "https://192.168.139.133:30665/oauth2/callback"})
}

#[test]
fn mlflow_without_pg_password_fails_naming_the_field_and_a_fixed_form_runs() {
    let fk = global();
    let base = install(&fk, "business-2", "kfbase", "v1.10.1", kfbase_form());
    ready(&fk, &base);
    let mlflow = install(
        &fk,
        "business-2",
        "mlflow",
        "v3.1.1",
        json!({"pgHost": "10.4.158.200", "pgPort": 5432, "pgUsername": "mlflow"}),
    );
    let o = phase(&fk, &mlflow, "Failed");
    assert_eq!(o["status"]["reason"], "InvalidConfig");
    assert_eq!(
        o["status"]["message"],
        "plugin mlflow v3.1.1: invalid configuration: required field pgPassword is missing"
    );
    assert_eq!(o["status"]["conditions"][0]["status"], "False");
    // Re-evaluations of an unchanged failure write nothing.
    let rv = o["metadata"]["resourceVersion"].clone();
    fk.update(MI, "ModuleInfo", None, &base, |o| {
        o["metadata"]["labels"]["touched"] = json!("yes")
    });
    std::thread::sleep(DELAY * 4);
    assert_eq!(
        fk.get(MI, "ModuleInfo", None, &mlflow).unwrap()["metadata"]["resourceVersion"],
        rv
    );
    // The form filled in: the same ModuleInfo is evaluated again and installs.
    fk.update(MI, "ModuleInfo", None, &mlflow, |o| {
        o["spec"]["config"]["pgPassword"] = json!("s3cret")
    });
    let o = phase(&fk, &mlflow, "Running");
    assert_eq!(o["status"]["version"], "v3.1.1");
    assert_eq!(o["metadata"]["finalizers"], json!(["moduleinfo"]));
    // A key the form does not have fails the install, naming it and the form's fields.
    let typo = install(
        &fk,
        "business-3",
        "kfbase",
        "v1.10.1",
        json!({"istioGatewaySelecter": {"istio": "gw"}, "istioGatewaySelector": {"istio": "gw"},
               "oidcRedirectURL": "https://x/oauth2/callback"}),
    );
    assert_eq!(
        phase(&fk, &typo, "Failed")["status"]["message"],
        "plugin kfbase v1.10.1: invalid configuration: unknown field(s) istioGatewaySelecter.istio (the form's fields: kubeflowNamespace, istioGatewaySelector, oidcIssuer, oidcRedirectURL)"
    );
    // An empty value is as missing as an absent one; a wrong type is named too.
    let kfbase = install(
        &fk,
        "business-3",
        "kfbase",
        "v1.10.1",
        json!({"istioGatewaySelector": {"istio": ""}, "kubeflowNamespace": 7}),
    );
    assert_eq!(
        phase(&fk, &kfbase, "Failed")["status"]["message"],
        "plugin kfbase v1.10.1: invalid configuration: field kubeflowNamespace must be string, not integer; required field istioGatewaySelector is empty; required field oidcRedirectURL is missing"
    );
}

#[test]
fn a_plugin_installed_before_what_it_depends_on_fails_until_that_runs() {
    let fk = global();
    // kftraining (volcano scheduling on by default) before volcano.
    let training = install(&fk, "business-3", "kftraining", "v1.9.2", json!({}));
    let o = phase(&fk, &training, "Failed");
    assert_eq!(o["status"]["reason"], "DependencyNotReady");
    assert_eq!(
        o["status"]["message"],
        "plugin kftraining v1.9.2 depends on volcano (>= v1.10.0), which is not ready on cluster business-3: install it first"
    );
    // kfp and mlflow need Kubeflow Base.
    let kfp = install(&fk, "business-3", "kfp", "v2.4.1", json!({}));
    assert!(
        phase(&fk, &kfp, "Failed")["status"]["message"]
            .as_str()
            .unwrap()
            .contains("depends on kfbase")
    );
    // Another cluster's volcano does not count.
    let other = install(&fk, "business-4", "volcano", "v1.10.1", json!({}));
    ready(&fk, &other);
    std::thread::sleep(DELAY * 3);
    assert_eq!(
        phase(&fk, &training, "Failed")["status"]["reason"],
        "DependencyNotReady"
    );
    // Once volcano runs on business-3, the failed plugin is picked up again.
    // Running is not enough: its charts must be ready first.
    let volcano = install(&fk, "business-3", "volcano", "v1.10.1", json!({}));
    let o = phase(&fk, &volcano, "Running");
    assert!(!fakekube::plugins::ready(&o), "{o}");
    std::thread::sleep(DELAY * 3);
    assert_eq!(
        phase(&fk, &training, "Failed")["status"]["reason"],
        "DependencyNotReady"
    );
    ready(&fk, &volcano);
    phase(&fk, &training, "Running");
}

#[test]
fn the_articles_install_order_with_complete_forms_runs_every_plugin() {
    let fk = global();
    for (module, version, config) in [
        ("kfbase", "v1.10.1", kfbase_form()),
        ("kfp", "v2.4.1", json!({})),
        ("volcano", "v1.10.1", json!({})),
        ("kftraining", "v1.9.2", json!({})),
        (
            "mlflow",
            "v3.1.1",
            json!({"pgHost": "pg", "pgPort": 5432, "pgUsername": "mlflow", "pgPassword": "x"}),
        ),
    ] {
        let name = install(&fk, "business-3", module, version, config);
        let o = ready(&fk, &name);
        assert_eq!(o["status"]["version"], version);
        assert_eq!(
            o["status"]["appReleases"],
            json!([{"name": format!("{module}-plugin"), "ready": true, "synced": true, "failed": false}])
        );
    }
    // External Pipelines MySQL: its connection fields become required.
    let kfp = install(
        &fk,
        "business-5",
        "kfp",
        "v2.4.1",
        json!({"mysql": {"builtin": false, "host": "mysql57"}}),
    );
    let msg = phase(&fk, &kfp, "Failed")["status"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("required field mysql.user is missing")
            && msg.contains("required field mysql.password is missing"),
        "{msg}"
    );
}

#[test]
fn a_version_without_a_published_package_stays_pending_until_it_is_pushed() {
    let fk = global();
    let pkg = fk.get(MI, "ModuleConfig", None, "volcano-v1.10.1").unwrap();
    fk.delete(MI, "ModuleConfig", None, "volcano-v1.10.1");
    let v = install(&fk, "business-3", "volcano", "v1.10.1", json!({}));
    let o = phase(&fk, &v, "Pending");
    assert_eq!(o["status"]["reason"], "ModuleConfigNotFound");
    assert!(
        o["status"]["message"]
            .as_str()
            .unwrap()
            .contains("ModuleConfig volcano-v1.10.1 not found")
    );
    // violet push publishes it.
    let mut pkg = pkg;
    pkg["metadata"]
        .as_object_mut()
        .unwrap()
        .retain(|k, _| k == "name" || k == "labels");
    fk.create(pkg).unwrap();
    // The catalog has not made it deployable yet: the plugin stays Pending until a client has
    // looked at the package (the catalog operation is asynchronous; requests drive it here).
    let path = format!("/apis/{MI}/moduleconfigs/volcano-v1.10.1");
    std::thread::sleep(DELAY * 3);
    assert_eq!(
        phase(&fk, &v, "Pending")["status"]["reason"],
        "ModuleConfigNotFound"
    );
    assert_eq!(
        common::get(&fk, &path).json()["status"]["readyForDeploy"],
        false
    );
    assert_eq!(
        common::get(&fk, &path).json()["status"]["readyForDeploy"],
        true
    );
    phase(&fk, &v, "Running");
}

#[test]
fn installed_1_3_plugins_are_left_alone_and_an_upgrade_in_place_is_checked() {
    let fk = global();
    // The 1.3 plugins of the fixtures are adopted as they are (their packages' forms differ).
    std::thread::sleep(DELAY * 3);
    let installed: Vec<Value> = fk
        .list(MI, "ModuleInfo", None)
        .into_iter()
        .filter(|o| o["metadata"]["labels"]["cpaas.io/cluster-name"] == "business-2")
        .collect();
    assert_eq!(installed.len(), 6);
    for o in &installed {
        assert_eq!(o["status"]["phase"], "Running", "{o}");
        assert_eq!(
            o["status"]["observedGeneration"],
            o["metadata"]["generation"]
        );
    }
    // An in-place upgrade from a version the package does not support fails.
    let volcano = name_of(&installed, "volcano");
    fk.update(MI, "ModuleConfig", None, "volcano-v1.10.1", |o| {
        o["spec"]["supportedUpgradeVersions"] = json!(">= v1.9.0")
    });
    fk.update(MI, "ModuleInfo", None, &volcano, |o| {
        o["spec"]["version"] = json!("v1.10.1")
    });
    let o = phase(&fk, &volcano, "Failed");
    assert_eq!(o["status"]["reason"], "UpgradeNotSupported");
    assert_eq!(o["status"]["version"], "v1.8.2");
    fk.update(MI, "ModuleInfo", None, &volcano, |o| {
        o["spec"]["version"] = json!("v1.8.2")
    });
    phase(&fk, &volcano, "Running");
    fk.update(MI, "ModuleConfig", None, "volcano-v1.10.1", |o| {
        o["spec"]["supportedUpgradeVersions"] = json!(">= v1.8.0")
    });
    // Volcano upgraded in place keeps Running at its old version until 1.4 runs.
    fk.update(MI, "ModuleInfo", None, &volcano, |o| {
        o["spec"]["version"] = json!("v1.10.1")
    });
    assert!(
        fk.wait_for(MI, "ModuleInfo", None, &volcano, T, |o| o.is_some_and(
            |o| o["status"]["version"] == "v1.10.1" && o["status"]["phase"] == "Running"
        ))
    );
    // mlflow upgraded in place without the PostgreSQL form: Failed, still reporting 2.6.0.
    let mlflow = name_of(&installed, "mlflow");
    fk.update(MI, "ModuleInfo", None, &mlflow, |o| {
        o["spec"]["version"] = json!("v3.1.1")
    });
    let o = phase(&fk, &mlflow, "Failed");
    assert_eq!(o["status"]["version"], "v2.6.0");
    assert!(
        o["status"]["message"]
            .as_str()
            .unwrap()
            .contains("required field pgHost is missing")
    );
}

#[test]
fn deleting_a_plugin_waits_for_its_uninstall_then_it_is_gone() {
    let fk = global();
    let name = &business_2_kfp(&fk);
    assert!(fk.delete(MI, "ModuleInfo", None, name));
    let o = fk.get(MI, "ModuleInfo", None, name).unwrap();
    assert!(
        o["metadata"]["deletionTimestamp"].is_string(),
        "the finalizer keeps it first"
    );
    assert!(fk.wait_for(MI, "ModuleInfo", None, name, T, |o| o.is_none()));
    // A finalizer of someone else's keeps it (Deleting) after the controller's went.
    let other = install(&fk, "business-3", "volcano", "v1.10.1", json!({}));
    phase(&fk, &other, "Running");
    fk.update(MI, "ModuleInfo", None, &other, |o| {
        o["metadata"]["finalizers"] = json!(["moduleinfo", "example.com/hold"])
    });
    fk.delete(MI, "ModuleInfo", None, &other);
    let o = phase(&fk, &other, "Deleting");
    assert_eq!(o["metadata"]["finalizers"], json!(["example.com/hold"]));
}

#[test]
fn a_plugin_stays_deleting_while_a_resource_its_package_blocks_removal_on_exists() {
    let fk = global();
    fk.update(MI, "ModuleConfig", None, "kfp-v2.0.5", |o| {
        o["spec"]["resourcesBlockRemove"] =
            json!([{"apiVersion": "v1", "kind": "ConfigMap", "namespace": "default", "name": "kfp-blocker"}])
    });
    fk.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kfp-blocker", "namespace": "default"}}))
        .unwrap();
    let name = &business_2_kfp(&fk);
    assert!(fk.delete(MI, "ModuleInfo", None, name));
    let held = fk.wait_for(MI, "ModuleInfo", None, name, T, |o| {
        o.is_some_and(|o| o["status"]["reason"] == "ResourcesBlockRemove")
    });
    let o = fk.get(MI, "ModuleInfo", None, name).unwrap();
    assert!(held, "{o}");
    assert_eq!(o["metadata"]["finalizers"], json!(["moduleinfo"]), "{o}");
    assert!(
        o["status"]["message"]
            .as_str()
            .unwrap()
            .contains("ConfigMap default/kfp-blocker"),
        "{o}"
    );
    // The resource goes: so does the plugin.
    assert!(fk.delete("v1", "ConfigMap", Some("default"), "kfp-blocker"));
    assert!(fk.wait_for(MI, "ModuleInfo", None, name, T, |o| o.is_none()));
}

/// A workload cluster loaded from a fixture with its controllers.
fn workload(yaml: &str) -> FakeKube {
    let fk = FakeKube::start();
    fk.load_yaml(CRDS);
    fk.load_yaml(yaml);
    controllers::chart_uninstall(&fk, DELAY);
    controllers::pv_binder(&fk);
    fk
}

fn llm_trainer(fk: &FakeKube, ns: &str) -> String {
    fk.get("v1", "ConfigMap", Some(ns), "aml-image-builder-config")
        .unwrap()["data"]["LLM_TRAINER_IMAGE"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn deleting_the_chart_application_uninstalls_kubeflow_and_its_volcano_jobs() {
    let fk = workload(CHART);
    assert_eq!(fk.list("batch.volcano.sh/v1alpha1", "Job", None).len(), 1);
    assert!(fk.delete(
        "app.alauda.io/v1",
        "HelmRequest",
        Some("kubeflow"),
        "kubeflow"
    ));
    let hr = fk
        .get(
            "app.alauda.io/v1",
            "HelmRequest",
            Some("kubeflow"),
            "kubeflow",
        )
        .unwrap();
    assert!(hr["metadata"]["deletionTimestamp"].is_string());
    assert!(fk.wait_for(
        "app.alauda.io/v1",
        "HelmRequest",
        Some("kubeflow"),
        "kubeflow",
        T,
        |o| o.is_none()
    ));
    assert!(fk.list("batch.volcano.sh/v1alpha1", "Job", None).is_empty());
}

#[test]
fn the_operator_does_nothing_until_a_person_upgrades_it() {
    let fk = workload(CHART);
    let op = AmlOperator::new(&fk);
    let before_cm = llm_trainer(&fk, "kubeflow");
    assert_eq!(op.version().as_deref(), Some("v1.3.2"));
    // Whatever the tool deletes or writes, the 1.3 operator stays 1.3.
    fk.delete(
        "app.alauda.io/v1",
        "HelmRequest",
        Some("kubeflow"),
        "kubeflow",
    );
    fk.delete("amls.aml.dev/v1alpha1", "Aml", None, "default-aml");
    fk.update(
        "amlclusters.aml.dev/v1alpha1",
        "AmlCluster",
        None,
        "default",
        |o| o["spec"]["values"]["experimentalFeatures"]["datasets"] = json!(false),
    );
    std::thread::sleep(DELAY * 5);
    assert_eq!(op.version().as_deref(), Some("v1.3.2"));
    assert_eq!(llm_trainer(&fk, "kubeflow"), before_cm);
    assert_eq!(op.upgrades(), 0);
    // A person upgrades it in OperatorHub.
    op.upgrade("v1.4.0");
    assert_eq!(op.upgrades(), 1);
    assert_eq!(op.version().as_deref(), Some("v1.4.0"));
    assert_eq!(
        llm_trainer(&fk, "kubeflow"),
        format!("192.168.171.123:11443/mlops/llm-trainer:{LLM_TRAINER_TAG_14}")
    );
    // Other keys and the user namespaces' copies are the operator's business only in kubeflow.
    let cm = fk
        .get(
            "v1",
            "ConfigMap",
            Some("kubeflow"),
            "aml-image-builder-config",
        )
        .unwrap();
    assert_eq!(
        cm["data"]["BUILDKIT_IMAGE"],
        "192.168.171.123:11443/mlops/buildkit:v0.15.2-aml"
    );
    assert!(llm_trainer(&fk, "team-c").ends_with(":v1.3.2-rc.4.g7c1d2e9a"));
    let deploy = fk
        .get("apps/v1", "Deployment", Some("kubeflow"), "aml-api-deploy")
        .unwrap();
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "192.168.171.123:11443/mlops/aml-api:v1.4.0"
    );
    let ac = amlcluster(&fk);
    assert_eq!(
        ac["spec"]["values"]["experimentalFeatures"]["datasets"], false,
        "features kept"
    );
    assert_eq!(
        ac["spec"]["values"]["global"]["mysql"]["host"],
        "mysql.business-3-db.svc"
    );
}

fn amlcluster(fk: &FakeKube) -> Value {
    fk.get(
        "amlclusters.aml.dev/v1alpha1",
        "AmlCluster",
        None,
        "default",
    )
    .unwrap()
}

#[test]
fn an_operator_that_resets_features_and_a_later_upgrade_with_another_tag() {
    let fk = workload(PLUGINS);
    let op = AmlOperator::new(&fk)
        .resets_features(true)
        .llm_trainer_tag("v1.4.3")
        .config_namespaces(&["kubeflow", "team-c"]);
    op.upgrade_after(Duration::from_millis(200), "v1.4.1");
    assert_eq!(
        op.version().as_deref(),
        Some("v1.3.2"),
        "not before its time"
    );
    assert!(fk.wait_for(
        "amlclusters.aml.dev/v1alpha1",
        "AmlCluster",
        None,
        "default",
        T,
        |o| o.is_some_and(|o| o["status"]["version"] == "v1.4.1")
    ));
    let ac = amlcluster(&fk);
    assert!(ac["spec"]["values"].get("experimentalFeatures").is_none());
    assert_eq!(
        ac["spec"]["values"]["global"]["mysql"]["port"], 3306,
        "MySQL settings kept"
    );
    for ns in ["kubeflow", "team-c"] {
        assert!(
            llm_trainer(&fk, ns).ends_with("/mlops/llm-trainer:v1.4.3"),
            "{ns}"
        );
    }
    let aml = fk
        .get("amls.aml.dev/v1alpha1", "Aml", None, "default-aml")
        .unwrap();
    assert_eq!(aml["status"]["version"], "v1.4.1");
}
