//! The fake Kubernetes API server loaded with the AML 1.3 fixtures of testdata/kube.

use fakekube::FakeKube;
use serde_json::Value;

pub const CRDS: &str = include_str!("../../testdata/kube/crds.yaml");
pub const WORKLOAD: &str = include_str!("../../testdata/kube/aml-1.3.yaml");
pub const GLOBAL: &str = include_str!("../../testdata/kube/global-1.3.yaml");
pub const UPGRADE_EXTRA: &str = include_str!("../../testdata/kube/upgrade-extra.yaml");

/// Documents of a multi-document YAML file, in order (comments and empty documents dropped).
pub fn docs(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .unwrap()
        .into_iter()
        .filter(|d| d.is_object())
        .collect()
}

/// A fake cluster holding the CRDs and the given fixture files, with the PV controller
/// running. Volumes are created before claims (as a provisioner would have), so each claim
/// binds to its volume; status is set as a live cluster has it.
pub fn load(yamls: &[&str]) -> FakeKube {
    let fk = FakeKube::start();
    fk.load_yaml(CRDS);
    fakekube::controllers::pv_binder(&fk);
    let mut all: Vec<Value> = yamls.iter().flat_map(|y| docs(y)).collect();
    all.sort_by_key(|d| match d["kind"].as_str().unwrap() {
        "Namespace" => 0,
        "PersistentVolume" => 1,
        _ => 2,
    });
    for d in all {
        let status = d.get("status").cloned();
        let (av, kind) = (
            d["apiVersion"].as_str().unwrap().to_string(),
            d["kind"].as_str().unwrap().to_string(),
        );
        let ns = d["metadata"]["namespace"].as_str().map(str::to_string);
        let name = d["metadata"]["name"].as_str().unwrap().to_string();
        if let Err(e) = fk.create(d) {
            // The namespace of an object in the global file may already exist.
            assert_eq!(e["reason"], "AlreadyExists", "{e}");
            continue;
        }
        // A POST drops status for kinds with a status subresource; a live cluster has it.
        if let Some(st) = status
            && !matches!(kind.as_str(), "PersistentVolume" | "PersistentVolumeClaim")
        {
            fk.update(&av, &kind, ns.as_deref(), &name, |o| o["status"] = st);
        }
    }
    wait_until("every claim Bound", || {
        fk.list("v1", "PersistentVolumeClaim", None)
            .iter()
            .all(|c| c["status"]["phase"] == "Bound")
    });
    fk
}

/// Write requests (not dry runs) the fake has served.
pub fn writes(fk: &FakeKube) -> usize {
    fk.requests()
        .iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        .filter(|r| !r.query.contains("dryRun=All"))
        .count()
}

pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    super::gate::wait_for(what, || f().then_some(()));
}
