//! ACP's cluster-plugin controller, strict: a `ModuleInfo` installs only what the published
//! `ModuleConfig` of its version allows (see README.md, "Plugins"), and behaves as Alauda's docs
//! say the platform does.
//!
//! - **Names.** A created ModuleInfo is renamed by the platform to `<cluster>-<32 hex>` (the
//!   object sent is deleted, a copy under the new name created; the deleted one carries
//!   annotation [`RENAMED_ANNOTATION`] naming the new one). Clients find it by its labels.
//! - **Catalog.** A ModuleConfig that appears (created without status) is not deployable at
//!   first: `status.readyForDeploy: false`, turning `true` on the second read of it by a client
//!   (the asynchronous catalog operation, driven by requests so tests never race a clock).
//! - **Evaluation.** A ModuleInfo of module `M` at `spec.version` `V` is evaluated `delay` after
//!   any ModuleInfo or ModuleConfig changes:
//!   - no ModuleConfig `M-V`, or one not `readyForDeploy`: `Pending`, `ModuleConfigNotFound`;
//!   - `spec.config` against the form (`spec.deployDescriptors` over the `spec.config` defaults,
//!     see [`crate::forms`]): a key the form does not have, a required field missing, a value of
//!     the wrong type: `Failed`, `InvalidConfig`, the message naming each;
//!   - an installed version (`status.version`) other than `V` that `supportedUpgradeVersions`
//!     does not include: `Failed`, `UpgradeNotSupported`;
//!   - a module of `spec.dependencies` (`moduleName`, `versionsMatch`) not ready on the same
//!     cluster at a matching version: `Failed`, `DependencyNotReady`;
//!   - the ModuleConfig carries [`FAILS_ANNOTATION`] (a test's broken package): `Failed`,
//!     `InstallFailed`; [`HOLDS_ANNOTATION`]: `Processing`, for as long as it is there;
//!   - otherwise `Running` with `status.version = V` and `status.appReleases` (one per chart)
//!     `synced` but not yet `ready`: they turn ready on the second read of the ModuleInfo by a
//!     client after that (charts still rolling out). Ready = Running, versions equal, every
//!     appRelease ready, synced and not failed.
//!
//! An installed plugin (Running at its spec.version, `status.observedGeneration` current) is
//! left alone; a spec change (generation bump) or a Pending/Failed phase is evaluated again. The
//! controller adds finalizer [`FINALIZER`] when it installs; a deleted ModuleInfo loses it
//! `delay` later, unless a resource its package's `resourcesBlockRemove` names exists (entries
//! read as `apiVersion`, `kind`, optional `namespace` and `name`: a guess at the shape): then it
//! stays `Deleting`, reason `ResourcesBlockRemove`, for as long as that resource does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::forms::{check_form, versions_match};
use crate::{ChangeKind, FakeKube, Handle, RequestRecord};

pub const GROUP: &str = "cluster.alauda.io";
const API: &str = "cluster.alauda.io/v1alpha1";
/// The finalizer an installed plugin carries until its uninstall finished.
pub const FINALIZER: &str = "moduleinfo";
/// On a ModuleConfig: its package fails to install, with this message (see the module docs).
pub const FAILS_ANNOTATION: &str = "fakekube.test/install-fails";
/// On a ModuleConfig: its install stays `Processing` for as long as the annotation is there (a
/// test holds the platform still while it looks at the run).
pub const HOLDS_ANNOTATION: &str = "fakekube.test/install-holds";
/// On a ModuleInfo the platform deleted because it renamed it: the new name.
pub const RENAMED_ANNOTATION: &str = "fakekube.test/renamed-to";
const CLUSTER_LABEL: &str = "cpaas.io/cluster-name";
const MODULE_LABEL: &str = "cpaas.io/module-name";

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn label<'a>(v: &'a Value, key: &str) -> &'a str {
    v["metadata"]["labels"][key].as_str().unwrap_or("")
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Ready as the platform judges it: Running, `status.version == spec.version`, every
/// appRelease ready, synced and not failed.
pub fn ready(mi: &Value) -> bool {
    let releases = mi["status"]["appReleases"].as_array();
    mi["status"]["phase"] == "Running"
        && mi["status"]["version"] == mi["spec"]["version"]
        && releases.is_some_and(|r| {
            !r.is_empty()
                && r.iter()
                    .all(|a| a["ready"] == true && a["synced"] == true && a["failed"] != true)
        })
}

/// Starts the controller on `fk` (the cluster that holds ModuleInfos: ACP's global cluster).
pub fn plugin_controller(fk: &FakeKube, delay: Duration) {
    // A first pass over what is already there (fixtures), as a controller does at start.
    let scheduled = Arc::new(AtomicBool::new(true));
    let first = scheduled.clone();
    fk.after(delay, move |h| {
        first.store(false, Ordering::SeqCst);
        reconcile(h);
    });
    fk.on_change(|c, h| {
        if c.kind == ChangeKind::Added && c.is(GROUP, "ModuleInfo") {
            rename(h, &c.object);
        }
        if c.kind == ChangeKind::Added
            && c.is(GROUP, "ModuleConfig")
            && c.object["status"]["readyForDeploy"].is_null()
        {
            h.update(API, "ModuleConfig", None, c.name(), |o| {
                o["status"]["readyForDeploy"] = json!(false)
            });
        }
    });
    fk.on_change(move |c, h| {
        // A resource going may let a plugin held by its package's resourcesBlockRemove go.
        let unblocks = c.kind == ChangeKind::Deleted
            && h.list(API, "ModuleInfo", None)
                .iter()
                .any(|m| m["status"]["reason"] == "ResourcesBlockRemove");
        if !(c.is(GROUP, "ModuleInfo") || c.is(GROUP, "ModuleConfig") || unblocks) {
            return;
        }
        if scheduled.swap(true, Ordering::SeqCst) {
            return;
        }
        let scheduled = scheduled.clone();
        h.after(delay, move |h| {
            // Cleared before reading: a change made while we work schedules another pass.
            scheduled.store(false, Ordering::SeqCst);
            reconcile(h);
        });
    });
    let reads: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    fk.on_request(move |r, h| observed(h, r, &reads));
}

/// The platform's name for a ModuleInfo of `cluster`.
fn platform_name(name: &str, cluster: &str) -> bool {
    name.strip_prefix(cluster)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn rename(h: &Handle, mi: &Value) {
    let (name, cluster) = (s(mi, "/metadata/name"), label(mi, CLUSTER_LABEL));
    if cluster.is_empty() || platform_name(name, cluster) {
        return;
    }
    let new = format!("{cluster}-{:032x}", rand::random::<u128>());
    let mut copy = json!({"apiVersion": API, "kind": "ModuleInfo",
        "metadata": {"name": new}, "spec": mi["spec"].clone()});
    for k in ["labels", "annotations", "finalizers"] {
        if !mi["metadata"][k].is_null() {
            copy["metadata"][k] = mi["metadata"][k].clone();
        }
    }
    h.update(API, "ModuleInfo", None, name, |o| {
        o["metadata"]["annotations"][RENAMED_ANNOTATION] = json!(new)
    });
    h.delete(API, "ModuleInfo", None, name);
    h.create(copy).expect("the renamed ModuleInfo");
}

/// A client read ModuleConfigs or ModuleInfos: the catalog and the charts move on (see the
/// module documentation), counting reads per object.
fn observed(h: &Handle, r: &RequestRecord, reads: &Mutex<HashMap<String, u32>>) {
    if r.method != "GET" {
        return;
    }
    let path = r.path.trim_end_matches('/');
    let prefix = format!("/apis/{API}/");
    let Some(rest) = path.strip_prefix(&prefix) else {
        return;
    };
    let (resource, name) = rest.split_once('/').unwrap_or((rest, ""));
    let kind = match resource {
        "moduleconfigs" => "ModuleConfig",
        "moduleinfoes" => "ModuleInfo",
        _ => return,
    };
    let waiting = |o: &Value| match kind {
        "ModuleConfig" => o["status"]["readyForDeploy"] == false,
        _ => {
            o["status"]["phase"] == "Running"
                && o["status"]["appReleases"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["ready"] != true))
        }
    };
    for o in h.list(API, kind, None) {
        let n = s(&o, "/metadata/name");
        if (!name.is_empty() && n != name) || !waiting(&o) {
            continue;
        }
        let key = format!("{kind}/{n}/{}", o["metadata"]["generation"]);
        let seen = {
            let mut m = reads.lock().unwrap_or_else(|e| e.into_inner());
            let c = m.entry(key).or_default();
            *c += 1;
            *c
        };
        if seen >= 2 {
            h.update(API, kind, None, n, |o| match kind {
                "ModuleConfig" => o["status"]["readyForDeploy"] = json!(true),
                _ => {
                    for a in o["status"]["appReleases"]
                        .as_array_mut()
                        .into_iter()
                        .flatten()
                    {
                        a["ready"] = json!(true);
                    }
                }
            });
        }
    }
}

/// One pass over every ModuleInfo.
fn reconcile(h: &Handle) {
    let infos = h.list(API, "ModuleInfo", None);
    for mi in &infos {
        let name = s(mi, "/metadata/name").to_string();
        if !mi["metadata"]["deletionTimestamp"].is_null() {
            let blocking = blocking_removal(h, mi);
            h.update(API, "ModuleInfo", None, &name, |o| {
                if blocking.is_empty()
                    && let Some(f) = o["metadata"]["finalizers"].as_array_mut()
                {
                    f.retain(|x| x != FINALIZER);
                }
                o["status"]["phase"] = json!("Deleting");
                if !blocking.is_empty() {
                    o["status"]["reason"] = json!("ResourcesBlockRemove");
                    o["status"]["message"] = json!(format!(
                        "cannot remove the plugin while these exist: {}",
                        blocking.join(", ")
                    ));
                }
            });
            continue;
        }
        let generation = mi["metadata"]["generation"].clone();
        let installed =
            s(mi, "/status/phase") == "Running" && mi["status"]["version"] == mi["spec"]["version"];
        match mi["status"].get("observedGeneration") {
            // Installed before this controller watched (a fixture): adopt it as it is, its
            // charts ready.
            None if installed => {
                h.update(API, "ModuleInfo", None, &name, |o| {
                    o["status"]["observedGeneration"] = generation;
                    if o["status"]["appReleases"].is_null() {
                        o["status"]["appReleases"] = app_releases(o, true);
                    }
                });
                continue;
            }
            Some(g) if installed && *g == generation => continue,
            _ => {}
        }
        let status = evaluate(h, mi, &infos);
        h.update(API, "ModuleInfo", None, &name, |o| write_status(o, status));
    }
}

/// The resources of the installed package's `resourcesBlockRemove` that exist on this server
/// (`Kind ns/name`). Entries are read as `apiVersion`, `kind`, optional `namespace` and `name`:
/// the field reference gives no shape, so this one is a guess (README.md, "Plugins").
fn blocking_removal(h: &Handle, mi: &Value) -> Vec<String> {
    let version = mi["status"]["version"]
        .as_str()
        .or(mi["spec"]["version"].as_str())
        .unwrap_or("");
    let package = format!("{}-{version}", label(mi, MODULE_LABEL));
    let Some(mc) = h.get(API, "ModuleConfig", None, &package) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in mc["spec"]["resourcesBlockRemove"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let (av, kind) = (s(e, "/apiVersion"), s(e, "/kind"));
        let ns = e["namespace"].as_str();
        for o in h.list(av, kind, ns) {
            let name = s(&o, "/metadata/name");
            if e["name"].as_str().is_none_or(|n| n == name) {
                out.push(format!("{kind} {}/{name}", ns.unwrap_or("")));
            }
        }
    }
    out
}

fn write_status(o: &mut Value, mut st: Value) {
    let keep_version = o["status"]["version"].clone();
    if st["phase"] == "Running" {
        let f = o["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !f.iter().any(|x| x == FINALIZER) {
            let mut f = f;
            f.push(json!(FINALIZER));
            o["metadata"]["finalizers"] = json!(f);
        }
        // Charts that were ready stay so when nothing about the install changed.
        let was_ready = o["status"]["phase"] == "Running"
            && o["status"]["version"] == st["version"]
            && o["status"]["appReleases"][0]["ready"] == true;
        st["appReleases"] = app_releases(o, was_ready);
    } else {
        if !keep_version.is_null() {
            st["version"] = keep_version;
        }
        let failed = st["reason"] == "InstallFailed";
        st["appReleases"] =
            json!([{"name": chart_name(o), "ready": false, "synced": false, "failed": failed}]);
    }
    st["observedGeneration"] = o["metadata"]["generation"].clone();
    // Keep the transition time when nothing changed, so a re-evaluation is a no-op.
    let same = o["status"]["phase"] == st["phase"] && o["status"]["message"] == st["message"];
    let since = if same {
        o["status"]["conditions"][0]["lastTransitionTime"].clone()
    } else {
        json!(now())
    };
    st["conditions"][0]["lastTransitionTime"] = since;
    o["status"] = st;
}

fn chart_name(mi: &Value) -> String {
    format!("{}-plugin", label(mi, MODULE_LABEL))
}

fn app_releases(mi: &Value, ready: bool) -> Value {
    json!([{"name": chart_name(mi), "ready": ready, "synced": true, "failed": false}])
}

fn status(phase: &str, reason: &str, message: String, version: Option<&Value>) -> Value {
    let ready = if phase == "Running" { "True" } else { "False" };
    let mut st = json!({
        "phase": phase,
        "reason": reason,
        "message": message,
        "conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": message}],
    });
    if let Some(v) = version {
        st["version"] = v.clone();
    }
    st
}

/// The status a ModuleInfo gets now (see the module documentation).
fn evaluate(h: &Handle, mi: &Value, infos: &[Value]) -> Value {
    let module = label(mi, MODULE_LABEL);
    let version = s(mi, "/spec/version");
    let cluster = label(mi, CLUSTER_LABEL);
    let what = format!("plugin {module} {version}");
    if module.is_empty() {
        return status(
            "Failed",
            "InvalidModuleInfo",
            format!(
                "ModuleInfo has no label {MODULE_LABEL}: the platform cannot tell which plugin to install"
            ),
            None,
        );
    }
    let mc_name = format!("{module}-{version}");
    let Some(mc) = h
        .get(API, "ModuleConfig", None, &mc_name)
        .filter(|mc| mc["status"]["readyForDeploy"] != json!(false))
    else {
        return status(
            "Pending",
            "ModuleConfigNotFound",
            format!(
                "{what}: ModuleConfig {mc_name} not found or not ready for deploy: publish the plugin package (violet push)"
            ),
            None,
        );
    };
    let problems = check_form(&mc, &mi["spec"]["config"]);
    if !problems.is_empty() {
        return status(
            "Failed",
            "InvalidConfig",
            format!("{what}: invalid configuration: {}", problems.join("; ")),
            None,
        );
    }
    let installed = s(mi, "/status/version");
    let range = s(&mc, "/spec/supportedUpgradeVersions");
    if !installed.is_empty() && installed != version && !versions_match(range, installed) {
        return status(
            "Failed",
            "UpgradeNotSupported",
            format!(
                "{what}: an in-place upgrade from {installed} is not supported (supportedUpgradeVersions {range}): uninstall the plugin, then install {version}"
            ),
            None,
        );
    }
    let mut missing = vec![];
    for dep in mc["spec"]["dependencies"].as_array().into_iter().flatten() {
        let (d, range) = (s(dep, "/moduleName"), s(dep, "/versionsMatch"));
        let ok = infos.iter().any(|o| {
            label(o, MODULE_LABEL) == d
                && label(o, CLUSTER_LABEL) == cluster
                && o["metadata"]["deletionTimestamp"].is_null()
                && ready(o)
                && versions_match(range, s(o, "/status/version"))
        });
        if !ok {
            missing.push(if range.is_empty() {
                d.to_string()
            } else {
                format!("{d} ({range})")
            });
        }
    }
    if !missing.is_empty() {
        return status(
            "Failed",
            "DependencyNotReady",
            format!(
                "{what} depends on {}, which is not ready on cluster {cluster}: install it first",
                missing.join(", "),
            ),
            None,
        );
    }
    if let Some(m) = mc["metadata"]["annotations"][FAILS_ANNOTATION].as_str() {
        return status("Failed", "InstallFailed", format!("{what}: {m}"), None);
    }
    if mc["metadata"]["annotations"][HOLDS_ANNOTATION].is_string() {
        return status(
            "Processing",
            "Installing",
            format!("{what}: installing"),
            None,
        );
    }
    status(
        "Running",
        "Installed",
        format!("{what} is running"),
        Some(&mi["spec"]["version"]),
    )
}
