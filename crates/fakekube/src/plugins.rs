//! ACP's cluster-plugin controller, strict: a `ModuleInfo` installs only what the published
//! `ModuleConfig` of its version allows (see README.md, "Plugins").
//!
//! A ModuleInfo (cluster.alauda.io) of module `M` at `spec.version` `V` is evaluated `delay`
//! after any ModuleInfo or ModuleConfig changes:
//! - no ModuleConfig `M-V` (or one not `readyForDeploy`): `Pending`, reason `ModuleConfigNotFound`;
//! - the form values (`spec.config` over the ModuleConfig's `spec.config` defaults) miss a
//!   required field of the ModuleConfig's `spec.form`, or one has the wrong type: `Failed`,
//!   reason `InvalidConfig`, the message naming each field;
//! - a module of `spec.dependencies` has no Running ModuleInfo on the same cluster
//!   (`cpaas.io/cluster-name`): `Failed`, reason `DependencyNotReady`;
//! - the ModuleConfig carries annotation [`FAILS_ANNOTATION`] (a test's broken package): `Failed`,
//!   reason `InstallFailed`, the annotation's value as the message, for as long as it is there;
//! - it carries [`HOLDS_ANNOTATION`]: `Processing`, for as long as it is there;
//! - otherwise `Running` with `status.version = V`.
//!
//! An installed plugin (Running at its spec.version, `status.observedGeneration` current) is
//! left alone; a spec change (generation bump) or a Pending/Failed phase is evaluated again, so a
//! fixed configuration or a dependency that came up later is picked up. The controller adds
//! finalizer [`FINALIZER`] when it installs; a deleted ModuleInfo loses it `delay` later.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{FakeKube, Handle};

pub const GROUP: &str = "cluster.alauda.io";
const API: &str = "cluster.alauda.io/v1alpha1";
/// The finalizer an installed plugin carries until its uninstall finished.
pub const FINALIZER: &str = "moduleinfo";
/// On a ModuleConfig: its package fails to install, with this message (see the module docs).
pub const FAILS_ANNOTATION: &str = "fakekube.test/install-fails";
/// On a ModuleConfig: its install stays `Processing` for as long as the annotation is there (a
/// test holds the platform still while it looks at the run).
pub const HOLDS_ANNOTATION: &str = "fakekube.test/install-holds";
const CLUSTER_LABEL: &str = "cpaas.io/cluster-name";
const MODULE_LABEL: &str = "cpaas.io/module-name";

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
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
    fk.on_change(move |c, h| {
        if !(c.is(GROUP, "ModuleInfo") || c.is(GROUP, "ModuleConfig")) {
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
}

/// One pass over every ModuleInfo.
fn reconcile(h: &Handle) {
    let infos = h.list(API, "ModuleInfo", None);
    for mi in &infos {
        let name = s(mi, "/metadata/name").to_string();
        if !mi["metadata"]["deletionTimestamp"].is_null() {
            h.update(API, "ModuleInfo", None, &name, |o| {
                if let Some(f) = o["metadata"]["finalizers"].as_array_mut() {
                    f.retain(|x| x != FINALIZER);
                }
                o["status"]["phase"] = json!("Deleting");
            });
            continue;
        }
        let generation = mi["metadata"]["generation"].clone();
        let installed =
            s(mi, "/status/phase") == "Running" && mi["status"]["version"] == mi["spec"]["version"];
        match mi["status"].get("observedGeneration") {
            // Installed before this controller watched (a fixture): adopt it as it is.
            None if installed => {
                h.update(API, "ModuleInfo", None, &name, |o| {
                    o["status"]["observedGeneration"] = generation;
                });
                continue;
            }
            Some(g) if installed && *g == generation => continue,
            _ => {}
        }
        let status = evaluate(h, mi, &infos);
        h.update(API, "ModuleInfo", None, &name, |o| {
            let keep_version = o["status"]["version"].clone();
            let mut st = status;
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
            } else if !keep_version.is_null() {
                st["version"] = keep_version;
            }
            st["observedGeneration"] = o["metadata"]["generation"].clone();
            // Keep the transition time when nothing changed, so a re-evaluation is a no-op.
            let same =
                o["status"]["phase"] == st["phase"] && o["status"]["message"] == st["message"];
            let since = if same {
                o["status"]["conditions"][0]["lastTransitionTime"].clone()
            } else {
                json!(now())
            };
            st["conditions"][0]["lastTransitionTime"] = since;
            o["status"] = st;
        });
    }
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
    let module = s(
        mi,
        &format!("/metadata/labels/{}", MODULE_LABEL.replace('/', "~1")),
    );
    let version = s(mi, "/spec/version");
    let cluster = s(
        mi,
        &format!("/metadata/labels/{}", CLUSTER_LABEL.replace('/', "~1")),
    );
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
    let values = form_values(&mc["spec"]["config"], &mi["spec"]["config"]);
    let problems = check_form(&mc["spec"]["form"], &values, &mi["spec"]["config"]);
    if !problems.is_empty() {
        return status(
            "Failed",
            "InvalidConfig",
            format!("{what}: invalid configuration: {}", problems.join("; ")),
            None,
        );
    }
    let mut missing = vec![];
    for dep in mc["spec"]["dependencies"].as_array().into_iter().flatten() {
        if !condition_holds(&dep["when"], &values) {
            continue;
        }
        let d = s(dep, "/module");
        let running = infos.iter().any(|o| {
            o["metadata"]["labels"][MODULE_LABEL] == d
                && o["metadata"]["labels"][CLUSTER_LABEL] == cluster
                && o["metadata"]["deletionTimestamp"].is_null()
                && o["status"]["phase"] == "Running"
        });
        if !running {
            missing.push(d.to_string());
        }
    }
    if !missing.is_empty() {
        return status(
            "Failed",
            "DependencyNotReady",
            format!(
                "{what} depends on {}, which is not Running on cluster {cluster}: install {} first",
                missing.join(", "),
                missing.join(", ")
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

/// The form's values: the ModuleInfo's `spec.config` over the ModuleConfig's defaults.
pub fn form_values(defaults: &Value, given: &Value) -> Value {
    let mut out = if defaults.is_object() {
        defaults.clone()
    } else {
        json!({})
    };
    merge(&mut out, given);
    out
}

fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) if !o.is_null() => *b = o.clone(),
        _ => {}
    }
}

fn at<'a>(values: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.')
        .try_fold(values, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}

fn condition_holds(when: &Value, values: &Value) -> bool {
    if !when.is_object() {
        return true;
    }
    at(values, s(when, "/key")) == when.get("equals")
}

fn empty(v: &Value) -> bool {
    match v {
        Value::String(x) => x.trim().is_empty(),
        Value::Object(m) => m.is_empty() || m.values().all(empty),
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::Null => "null",
    }
}

/// Every problem of `values` against the form's fields (empty when the form is satisfied);
/// `given` (the ModuleInfo's own config) tells a field left out from one filled in empty.
pub fn check_form(form: &Value, values: &Value, given: &Value) -> Vec<String> {
    let mut out = vec![];
    for f in form.as_array().into_iter().flatten() {
        let key = s(f, "/key");
        if !condition_holds(&f["when"], values) {
            continue;
        }
        let required = f["required"] == json!(true);
        match at(values, key) {
            None if required => out.push(format!("required field {key} is missing")),
            Some(v) if required && empty(v) => {
                let how = if at(given, key).is_some() {
                    "empty"
                } else {
                    "missing"
                };
                out.push(format!("required field {key} is {how}"))
            }
            Some(v) => {
                let want = s(f, "/type");
                if !want.is_empty() && kind_of(v) != want {
                    out.push(format!("field {key} must be {want}, not {}", kind_of(v)));
                }
            }
            None => {}
        }
    }
    out
}

/// The form fields of a ModuleConfig marked `secret: true` (what a UI shows as a password).
pub fn secret_fields(mc: &Value) -> Vec<String> {
    mc["spec"]["form"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["secret"] == json!(true))
        .map(|f| s(f, "/key").to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> Value {
        json!([
            {"key": "pgHost", "type": "string", "required": true},
            {"key": "pgPort", "type": "integer", "required": true},
            {"key": "pgPassword", "type": "string", "required": true, "secret": true},
            {"key": "mysql.host", "type": "string", "required": true, "when": {"key": "mysql.builtin", "equals": false}},
            {"key": "gateway", "type": "object", "required": true},
        ])
    }

    #[test]
    fn defaults_fill_in_and_each_missing_or_wrong_field_is_named() {
        let given = json!({"pgHost": "pg", "pgPort": "5432", "mysql": {"builtin": false}});
        let values = form_values(
            &json!({"pgHost": "", "pgPort": 5432, "mysql": {"builtin": true}, "gateway": {"istio": ""}}),
            &given,
        );
        assert_eq!(
            check_form(&form(), &values, &given),
            [
                "field pgPort must be integer, not string",
                "required field pgPassword is missing",
                "required field mysql.host is missing",
                "required field gateway is missing",
            ]
        );
        let given = json!({"pgHost": "pg", "pgPassword": "x", "gateway": {"istio": "gw"}});
        let values = form_values(&json!({"pgPort": 5432, "mysql": {"builtin": true}}), &given);
        assert!(check_form(&form(), &values, &given).is_empty());
        assert_eq!(
            secret_fields(&json!({"spec": {"form": form()}})),
            ["pgPassword"]
        );
    }
}
