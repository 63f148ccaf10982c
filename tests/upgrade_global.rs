//! The global cluster's objects the upgrade edits (dex's ConfigMap, the workload cluster's
//! ServiceMesh): saved in the snapshot before the global cluster is written at all, edited only
//! in step global-settings (which asks, and runs alone with --only), the ServiceMesh in the
//! article's shape whatever providers it had, and put back by `recover`.

mod common;

use std::collections::BTreeMap;

use common::upgrade::*;
use common::*;
use fakekube::FakeKube;
use serde_json::{Value, json};

const MESH_API: &str = "asm.alauda.io/v1alpha1";
const PROVIDERS: &str = "spec.meshConfig.extensionProviders";

fn mesh(lab: &Lab) -> Value {
    lab.g()
        .get(
            MESH_API,
            "ServiceMesh",
            Some("cpaas-system"),
            lab.world.cluster(),
        )
        .expect("the lab's ServiceMesh")
}

fn dex_text(lab: &Lab) -> String {
    lab.g()
        .get("v1", "ConfigMap", Some("cpaas-system"), "dex-configmap")
        .expect("dex's ConfigMap")["data"]["config.yaml"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The IstioOperator overlay's patch entries (none when there is no such overlay).
fn patches(mesh: &Value) -> Vec<Value> {
    mesh["spec"]["overlays"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["kind"] == "IstioOperator")
        .and_then(|o| o["patches"].as_array().cloned())
        .unwrap_or_default()
}

/// The provider entries the article's step adds: its own patch entry, one provider as value.
fn assert_article_shape(before: &[Value], after: &[Value]) {
    assert!(after.len() > before.len(), "nothing added: {after:?}");
    // Every entry there before is untouched and keeps its place.
    assert_eq!(&after[..before.len()], before, "existing entries changed");
    let mine: Vec<&Value> = after
        .iter()
        .filter(|p| p["path"] == PROVIDERS && p["value"]["name"] == "oauth2-proxy-kubeflow")
        .collect();
    assert_eq!(mine.len(), 1, "{after:?}");
    let v = &mine[0]["value"];
    assert!(v.is_object(), "the value is one provider (a mapping): {v}");
    assert_eq!(
        v["envoyExtAuthzHttp"]["service"],
        "oauth2-proxy.kubeflow-oauth2-proxy.svc.cluster.local"
    );
    assert_eq!(v["envoyExtAuthzHttp"]["port"], "80");
}

/// The objects of the latest snapshot's Kubernetes part, by `kind ns/name` of the global
/// cluster, as stored.
fn snapshot_global_objects(lab: &Lab) -> BTreeMap<String, Value> {
    let to = lab
        .dir
        .path()
        .join(format!("export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&to);
    ok(&[
        "export",
        "--repo",
        lab.dir.path().join("repo").to_str().unwrap(),
        "latest",
        "--to",
        to.to_str().unwrap(),
    ]);
    let (_, files) = read_plain_part(&to.join("parts/kubernetes.tar.zst"));
    let list: Vec<Value> = serde_json::from_slice(&files["kubernetes/objects.json"]).unwrap();
    list.iter()
        .filter(|o| o["cluster"] == "global" && o["kind"] != "ModuleInfo")
        .map(|o| {
            let text = String::from_utf8(files[o["path"].as_str().unwrap()].clone()).unwrap();
            (
                format!(
                    "{} {}/{}",
                    o["kind"].as_str().unwrap(),
                    o["namespace"].as_str().unwrap_or(""),
                    o["name"].as_str().unwrap()
                ),
                amlmigrate::kube::objects::from_yaml(&text, "snapshot").unwrap(),
            )
        })
        .collect()
}

/// Index in `fk`'s request log of the first write that is not a dry run.
fn first_write(fk: &FakeKube) -> usize {
    fk.requests()
        .iter()
        .position(|r| {
            matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
                && !r.query.contains("dryRun=All")
        })
        .expect("a write to the global cluster")
}

#[test]
fn dex_and_the_servicemesh_are_in_the_snapshot_before_the_global_cluster_is_written_and_recover_puts_them_back()
 {
    let lab = Lab::new(LabOptions {
        split: true,
        ..Default::default()
    });
    let global = lab.global.as_ref().unwrap();
    let (dex_before, mesh_before) = (dex_text(&lab), mesh(&lab));
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_upgraded(&lab);

    // The snapshot holds both objects as they were before the run changed them.
    let saved = snapshot_global_objects(&lab);
    assert_eq!(
        saved.keys().collect::<Vec<_>>(),
        [
            "ConfigMap cpaas-system/dex-configmap",
            "ServiceMesh cpaas-system/business-1"
        ],
        "{saved:?}"
    );
    assert_eq!(
        saved["ConfigMap cpaas-system/dex-configmap"]["data"]["config.yaml"],
        dex_before.as_str()
    );
    assert!(!dex_before.contains(OIDC_REDIRECT));
    assert_eq!(
        saved["ServiceMesh cpaas-system/business-1"]["spec"],
        mesh_before["spec"]
    );
    // …read by the snapshot before the first write of the run to the global cluster.
    let log = global.requests();
    let read = |plural: &str, name: &str| {
        log.iter()
            .position(|r| r.method == "GET" && r.path.ends_with(plural) && r.query.contains(name))
            .unwrap_or_else(|| panic!("the snapshot never listed {plural} {name}"))
    };
    let first = first_write(global);
    assert!(
        read("/configmaps", "dex-configmap") < first
            && read("/servicemeshes", "business-1") < first,
        "the global cluster was written (request {first}: {} {}) before the snapshot read dex and the ServiceMesh",
        log[first].method,
        log[first].path
    );
    // The edits are a step of their own, after the snapshot and the 1.3 uninstall, before the
    // 1.4 plugins (the article's order).
    let journal = lab.journal();
    let at = |step: &str, event: &str| {
        journal
            .iter()
            .position(|e| e["step"] == step && e["event"] == event)
            .unwrap_or_else(|| panic!("no {step} {event}"))
    };
    assert!(at("snapshot", "done") < at("global-settings", "started"));
    assert!(at("uninstall-plugins", "done") < at("global-settings", "started"));
    assert!(at("global-settings", "done") < at("install-plugins", "started"));
    assert!(lab.events("preflight").iter().all(|e| e != "started"));
    // One existing provider (a list of one): kept as it was, ours in an entry of its own.
    assert_article_shape(&patches(&mesh_before), &patches(&mesh(&lab)));

    // A recovery of the upgraded cluster leaves both as they are (they differ from the
    // snapshot by the article's settings only).
    let env = lab.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dry = amlmigrate_env(&["recover", "--config", lab.cfg(), "--dry-run"], &env);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout.contains("restore-global     done")
            && dry.stdout.contains("exists and is left as it is")
            && dry.stdout.contains("global-settings    done"),
        "{dry:?}"
    );
    // Both are lost: recover puts them back as the snapshot holds them, and global-settings
    // adds the article's settings again.
    global.delete(MESH_API, "ServiceMesh", Some("cpaas-system"), "business-1");
    global.delete("v1", "ConfigMap", Some("cpaas-system"), "dex-configmap");
    let dry = amlmigrate_env(&["recover", "--config", lab.cfg(), "--dry-run"], &env);
    assert_eq!(dry.code, 0, "{dry:?}");
    for want in [
        "restore-global     to do",
        "change: ServiceMesh cpaas-system/business-1 (global): (none) → created from snapshot",
        "change: ConfigMap cpaas-system/dex-configmap (global): (none) → created from snapshot",
    ] {
        assert!(dry.stdout.contains(want), "dry run lacks {want:?}: {dry:?}");
    }
    assert!(
        global
            .get(MESH_API, "ServiceMesh", Some("cpaas-system"), "business-1")
            .is_none()
    );
    let r = amlmigrate_env(&["recover", "--config", lab.cfg(), "--yes"], &env);
    assert_eq!(r.code, 0, "{r:?}");
    let dex = dex_text(&lab);
    assert_eq!(
        dex.replace(&format!("  - {OIDC_REDIRECT}\n"), ""),
        dex_before,
        "dex's config is not the snapshot's plus the redirect URI"
    );
    let back = mesh(&lab);
    assert_eq!(
        back["metadata"]["labels"],
        mesh_before["metadata"]["labels"]
    );
    assert_article_shape(&patches(&mesh_before), &patches(&back));
}

#[test]
fn global_settings_waits_for_the_snapshot_runs_alone_with_only_and_adds_a_first_provider() {
    // business-2's ServiceMesh has no overlay at all: no provider yet.
    let lab = Lab::new(LabOptions {
        world: World::Plugins,
        ..Default::default()
    });
    assert!(patches(&mesh(&lab)).is_empty());
    let plan = lab.upgrade(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    for want in [
        "global-settings    to do",
        "change: ServiceMesh cpaas-system/business-2 (global): spec.overlays[IstioOperator] spec.meshConfig.extensionProviders: (none) → + oauth2-proxy-kubeflow",
        "can take config.yaml staticClients[alauda-auth].redirectURIs",
    ] {
        assert!(plan.stdout.contains(want), "plan lacks {want:?}: {plan:?}");
    }
    let before = lab.writes();
    let r = lab.upgrade(&["run", "--yes", "--only", "global-settings"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("no verified snapshot"), "{r:?}");
    assert_eq!(
        lab.writes(),
        before,
        "the global cluster was written before the snapshot"
    );
    let r = lab.upgrade(&["run", "--yes", "--until", "snapshot"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        lab.writes(),
        before,
        "a step up to the snapshot wrote to a cluster"
    );
    assert!(!dex_text(&lab).contains(OIDC_REDIRECT));
    let r = lab.upgrade(&["run", "--yes", "--only", "global-settings"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(dex_text(&lab).contains(OIDC_REDIRECT));
    let after = patches(&mesh(&lab));
    assert_article_shape(&[], &after);
    // The article's three entries: the refresh interval, dex's CA, the provider.
    let paths: Vec<&str> = after.iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "spec.values.pilot.jwksResolverExtraRootCA",
            "spec.values.pilot.env.PILOT_JWT_PUB_KEY_REFRESH_INTERVAL",
            PROVIDERS
        ]
    );
    // Nothing after it ran; again, it has nothing to do.
    assert!(lab.events("protect-pvcs").is_empty());
    assert!(lab.events("install-plugins").is_empty());
    let before = lab.writes();
    let r = lab.upgrade(&["run", "--yes", "--only", "global-settings"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(lab.writes(), before);
}

#[test]
fn two_existing_providers_stay_byte_for_byte_and_the_new_one_gets_its_own_entry() {
    let lab = Lab::new(LabOptions::default());
    // Two providers before: the fixture's list of one, and a second entry holding one.
    lab.g().update(
        MESH_API,
        "ServiceMesh",
        Some("cpaas-system"),
        "business-1",
        |m| {
            let patches = m["spec"]["overlays"][0]["patches"].as_array_mut().unwrap();
            patches.push(json!({"path": PROVIDERS, "value": {
                "name": "tenant-authz",
                "envoyExtAuthzGrpc": {"service": "authz.tenant.svc.cluster.local", "port": 9000}
            }}));
        },
    );
    let before = patches(&mesh(&lab));
    assert_eq!(before.len(), 2);
    let r = lab.upgrade(&["run", "--yes", "--until", "snapshot"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = lab.upgrade(&["run", "--yes", "--only", "global-settings"]);
    assert_eq!(r.code, 0, "{r:?}");
    let after = patches(&mesh(&lab));
    assert_article_shape(&before, &after);
    assert_eq!(
        after.iter().filter(|p| p["path"] == PROVIDERS).count(),
        3,
        "{after:?}"
    );
}
