//! The CRD schemas of testdata/kube/crds.yaml as the server applies them: pruning, strict
//! field validation and schema validation, with the real status codes and messages.

mod common;

use common::*;
use fakekube::FakeKube;
use serde_json::{Value, json};

const CRDS: &str = include_str!("../../../testdata/kube/crds.yaml");
const FIXTURES: [(&str, &str); 6] = [
    (
        "aml-1.3.yaml",
        include_str!("../../../testdata/kube/aml-1.3.yaml"),
    ),
    (
        "global-1.3.yaml",
        include_str!("../../../testdata/kube/global-1.3.yaml"),
    ),
    (
        "global-1.3-more.yaml",
        include_str!("../../../testdata/kube/global-1.3-more.yaml"),
    ),
    (
        "aml-1.3-chart.yaml",
        include_str!("../../../testdata/kube/aml-1.3-chart.yaml"),
    ),
    (
        "aml-1.3-plugins.yaml",
        include_str!("../../../testdata/kube/aml-1.3-plugins.yaml"),
    ),
    (
        "upgrade-extra.yaml",
        include_str!("../../../testdata/kube/upgrade-extra.yaml"),
    ),
];
const AC: &str = "/apis/amlclusters.aml.dev/v1alpha1/amlclusters";

fn world() -> FakeKube {
    let fk = FakeKube::start();
    fk.load_yaml(CRDS);
    fk
}

fn amlcluster(extra_values: Value) -> Value {
    let mut o = json!({"apiVersion": "amlclusters.aml.dev/v1alpha1", "kind": "AmlCluster",
        "metadata": {"name": "default"},
        "spec": {"values": {"experimentalFeatures": {"datasets": true},
                            "global": {"mysql": {"host": "10.4.158.198", "port": 3306}}}}});
    for (k, v) in extra_values.as_object().unwrap() {
        o["spec"]["values"][k] = v.clone();
    }
    o
}

/// AmlCluster `default` as stored.
fn live(fk: &FakeKube) -> Option<Value> {
    fk.get(
        "amlclusters.aml.dev/v1alpha1",
        "AmlCluster",
        None,
        "default",
    )
}

/// Server-side apply of `cfg` to AmlCluster `default` with the query `q`.
fn apply(fk: &FakeKube, q: &str, cfg: &Value) -> Resp {
    request(
        fk,
        "PATCH",
        &format!("{AC}/default?{q}"),
        Some(FakeKube::ADMIN_TOKEN),
        "application/apply-patch+yaml",
        "application/json",
        &cfg.to_string(),
    )
}

fn warnings(r: &Resp) -> Vec<String> {
    r.headers
        .lines()
        .filter_map(|l| l.strip_prefix("Warning: ").or(l.strip_prefix("warning: ")))
        .map(String::from)
        .collect()
}

#[test]
fn every_fixture_document_survives_the_schemas_unchanged() {
    for (file, yaml) in FIXTURES {
        // Each workload file is self-contained; the global additions need global-1.3.yaml.
        let fk = world();
        if file == "global-1.3-more.yaml" {
            fk.load_yaml(FIXTURES[1].1);
        }
        if file == "upgrade-extra.yaml" {
            fk.load_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: kubeflow}\n");
        }
        fk.load_yaml(yaml);
        let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).unwrap();
        for d in docs.iter().filter(|d| d.is_object()) {
            let (av, kind) = (
                d["apiVersion"].as_str().unwrap(),
                d["kind"].as_str().unwrap(),
            );
            let name = d["metadata"]["name"].as_str().unwrap();
            let live = fk
                .get(av, kind, d["metadata"]["namespace"].as_str(), name)
                .unwrap_or_else(|| panic!("{file}: {kind} {name} missing"));
            for part in ["spec", "data", "status"] {
                // Namespaces and volumes get a spec and status of the server's own.
                if d.get(part).is_none() && part != "data" {
                    continue;
                }
                assert_eq!(
                    live.get(part),
                    d.get(part),
                    "{file}: {kind} {name}: {part} changed by the schema"
                );
            }
        }
    }
}

#[test]
fn a_misspelled_field_disappears_with_a_warning_on_every_kind_of_write() {
    let fk = world();
    // POST: the default field validation is Warn.
    let body = amlcluster(json!({"experimentalFeaturs": {"datasets": true}}));
    let r = post(&fk, AC, &body);
    assert_eq!(r.code, 201, "{}", r.text());
    assert_eq!(
        warnings(&r),
        [r#"299 - "unknown field \"spec.values.experimentalFeaturs\"""#]
    );
    let stored = live(&fk).unwrap();
    assert!(
        stored["spec"]["values"]
            .get("experimentalFeaturs")
            .is_none()
    );
    assert_eq!(
        stored["spec"]["values"]["experimentalFeatures"]["datasets"],
        true
    );
    // Merge patch, as the tool writes features: the misspelled key inside goes too.
    let r = patch(
        &fk,
        &format!("{AC}/default"),
        "application/merge-patch+json",
        r#"{"spec":{"values":{"experimentalFeatures":{"tuneModel":true},"global":{"mysql":{"usr":"root"}}}}}"#,
    );
    assert_eq!(r.code, 200, "{}", r.text());
    assert_eq!(
        warnings(&r),
        [
            r#"299 - "unknown field \"spec.values.experimentalFeatures.tuneModel\"""#,
            r#"299 - "unknown field \"spec.values.global.mysql.usr\"""#
        ]
    );
    let v = r.json();
    assert_eq!(
        v["spec"]["values"]["experimentalFeatures"],
        json!({"datasets": true})
    );
    assert_eq!(v["spec"]["values"]["global"]["mysql"].get("usr"), None);
    // Server-side apply: pruned before it is anyone's field.
    let cfg = json!({"apiVersion": "amlclusters.aml.dev/v1alpha1", "kind": "AmlCluster",
        "metadata": {"name": "default"}, "spec": {"values": {"experimentalFeatures": {"imageBulder": true}}}});
    let r = apply(&fk, "fieldManager=amlmigrate&force=true", &cfg);
    assert_eq!(r.code, 200, "{}", r.text());
    let v = r.json();
    assert!(
        v["spec"]["values"]["experimentalFeatures"]
            .get("imageBulder")
            .is_none()
    );
    assert!(
        !v["metadata"]["managedFields"]
            .to_string()
            .contains("imageBulder")
    );
    // Ignore: pruned without a word.
    let r = patch(
        &fk,
        &format!("{AC}/default?fieldValidation=Ignore"),
        "application/merge-patch+json",
        r#"{"spec":{"valeus":{}}}"#,
    );
    assert_eq!((r.code, warnings(&r).len()), (200, 0), "{}", r.headers);
    // A ServiceMesh overlay: the patch value is any YAML, a misspelled patch key is not.
    fk.load_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: cpaas-system}\n");
    let mesh = json!({"apiVersion": "asm.alauda.io/v1alpha1", "kind": "ServiceMesh",
        "metadata": {"name": "m", "namespace": "cpaas-system"},
        "spec": {"istioVersion": "1.22.4", "overlays": [{"kind": "IstioOperator", "patches": [
            {"path": "spec.meshConfig.extensionProviders", "value": [{"name": "oauth2-proxy-kubeflow", "any": {"x": 1}}]},
            {"path": "spec.values.pilot.jwksResolverExtraRootCA", "vaule": "pem"}]}]}});
    let r = post(
        &fk,
        "/apis/asm.alauda.io/v1alpha1/namespaces/cpaas-system/servicemeshes",
        &mesh,
    );
    assert_eq!(r.code, 201, "{}", r.text());
    assert_eq!(
        warnings(&r),
        [r#"299 - "unknown field \"spec.overlays[0].patches[1].vaule\"""#]
    );
    let patches = &r.json()["spec"]["overlays"][0]["patches"];
    assert_eq!(patches[0]["value"][0]["any"]["x"], 1);
    assert_eq!(
        patches[1],
        json!({"path": "spec.values.pilot.jwksResolverExtraRootCA"})
    );
}

#[test]
fn strict_field_validation_refuses_unknown_fields_like_the_real_server() {
    let fk = world();
    let body = amlcluster(json!({"experimentalFeaturs": {}}));
    let r = post(&fk, &format!("{AC}?fieldValidation=Strict"), &body);
    assert_eq!(r.code, 400, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "AmlCluster in version \"v1alpha1\" cannot be handled as a AmlCluster: strict decoding error: unknown field \"spec.values.experimentalFeaturs\"",
            "reason": "BadRequest", "code": 400})
    );
    assert!(live(&fk).is_none());
    assert_eq!(
        post(
            &fk,
            &format!("{AC}?fieldValidation=Strict"),
            &amlcluster(json!({}))
        )
        .code,
        201
    );
    let r = patch(
        &fk,
        &format!("{AC}/default?fieldValidation=Strict"),
        "application/merge-patch+json",
        r#"{"spec":{"values":{"global":{"mysql":{"usr":"root","pasword":"x"}}}}}"#,
    );
    assert_eq!(r.code, 400);
    assert_eq!(
        r.json()["message"],
        r#"strict decoding error: unknown field "spec.values.global.mysql.pasword", unknown field "spec.values.global.mysql.usr""#
    );
    let mut put_body = live(&fk).unwrap();
    put_body["spec"]["extra"] = json!(1);
    let r = put(
        &fk,
        &format!("{AC}/default?fieldValidation=Strict"),
        &put_body,
    );
    assert_eq!(r.code, 400);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .ends_with(r#"strict decoding error: unknown field "spec.extra""#)
    );
    let cfg = json!({"apiVersion": "amlclusters.aml.dev/v1alpha1", "kind": "AmlCluster",
        "metadata": {"name": "default"}, "spec": {"values": {"experimentalFeatures": {"imageBulder": true}}}});
    let r = apply(&fk, "fieldManager=x&fieldValidation=Strict", &cfg);
    assert_eq!(r.code, 400);
    assert_eq!(
        r.json()["message"],
        "failed to create typed patch object (amlclusters.aml.dev/v1alpha1, Kind=AmlCluster): .spec.values.experimentalFeatures.imageBulder: field not declared in schema"
    );
    let r = patch(
        &fk,
        &format!("{AC}/default?fieldValidation=Sometimes"),
        "application/merge-patch+json",
        "{}",
    );
    assert_eq!(r.code, 400);
    assert!(
        r.text()
            .contains(r#"fieldValidation: Unsupported value: \"Sometimes\""#),
        "{}",
        r.text()
    );
}

#[test]
fn types_and_required_fields_are_validated_with_422_naming_each_field() {
    let fk = world();
    assert_eq!(post(&fk, AC, &amlcluster(json!({}))).code, 201);
    let r = patch(
        &fk,
        &format!("{AC}/default"),
        "application/merge-patch+json",
        r#"{"spec":{"values":{"global":{"mysql":{"port":"3306","passwordSecretRef":{"name":"t"}}},"experimentalFeatures":{"datasets":"yes"}}}}"#,
    );
    assert_eq!(r.code, 422, "{}", r.text());
    let v = r.json();
    assert_eq!(v["reason"], "Invalid");
    assert_eq!(
        v["message"],
        r#"AmlCluster.amlclusters.aml.dev "default" is invalid: [spec.values.experimentalFeatures.datasets: Invalid value: "string": spec.values.experimentalFeatures.datasets in body must be of type boolean: "string", spec.values.global.mysql.passwordSecretRef.namespace: Required value, spec.values.global.mysql.port: Invalid value: "string": spec.values.global.mysql.port in body must be of type integer: "string"]"#
    );
    assert_eq!(v["details"]["causes"][1]["reason"], "FieldValueRequired");
    assert_eq!(
        v["details"]["causes"][1]["field"],
        "spec.values.global.mysql.passwordSecretRef.namespace"
    );
    // Nothing was stored.
    let ac = live(&fk).unwrap();
    assert_eq!(ac["spec"]["values"]["global"]["mysql"]["port"], 3306);
    // A ModuleInfo needs spec.version.
    let r = post(
        &fk,
        "/apis/cluster.alauda.io/v1alpha1/moduleinfoes",
        &json!({"apiVersion": "cluster.alauda.io/v1alpha1", "kind": "ModuleInfo",
                "metadata": {"generateName": "business-1-"}, "spec": {"config": {}}}),
    );
    assert_eq!(r.code, 422, "{}", r.text());
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .ends_with("spec.version: Required value"),
        "{}",
        r.text()
    );
    // kubectl/kube-rs see the same through the Rust API.
    let e = fk
        .create(
            json!({"apiVersion": "amls.aml.dev/v1alpha1", "kind": "Aml", "metadata": {"name": "a"},
                       "spec": {"values": {"amlService": {"trainingPVCSize": 10}}}}),
        )
        .unwrap_err();
    assert_eq!(e["code"], 422, "{e}");
}
