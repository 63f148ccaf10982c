//! A ModuleConfig's install form as ACP's field reference describes it: `spec.deployDescriptors`
//! (each a `path` into `spec.config` with `x-descriptors` giving its widget, default and
//! conditions) over the `spec.config` defaults; and the version ranges of `dependencies[].
//! versionsMatch`, `supportedUpgradeVersions` and `targetClusterVersions`.
//!
//! The x-descriptors read (OLM's spec-descriptor URNs, which ACP's form renderer uses):
//! `…ui:text`, `…ui:select:<v>` (string), `…ui:password` (string, secret), `…ui:number`
//! (integer), `…ui:booleanSwitch`, `…ui:checkbox` (boolean), `…ui:selector…` (a label map:
//! object), `…ui:arrayFieldGroup…` (array), `…ui:validation:required`,
//! `…ui:fieldDependency:<path>:<value>` (the field applies only while `<path>` has `<value>`),
//! and `urn:alm:descriptor:com.tectonic.default:<value>`.

use serde_json::{Value, json};

const UI: &str = "urn:alm:descriptor:com.tectonic.ui:";
const DEFAULT: &str = "urn:alm:descriptor:com.tectonic.default:";

/// One field of the form.
#[derive(Clone, Debug, PartialEq)]
pub struct Descriptor {
    pub path: String,
    /// string, integer, boolean, object or array ("" when the widget does not say).
    pub kind: &'static str,
    pub required: bool,
    pub secret: bool,
    /// The field applies only while this path has this value.
    pub depends: Option<(String, Value)>,
    pub default: Option<Value>,
}

fn scalar(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| json!(text))
}

/// The form fields of a ModuleConfig (`spec.deployDescriptors`).
pub fn descriptors(mc: &Value) -> Vec<Descriptor> {
    let mut out = vec![];
    for d in mc["spec"]["deployDescriptors"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(path) = d["path"].as_str().filter(|p| !p.is_empty()) else {
            continue;
        };
        let mut f = Descriptor {
            path: path.to_string(),
            kind: "",
            required: false,
            secret: false,
            depends: None,
            default: None,
        };
        for x in d["x-descriptors"].as_array().into_iter().flatten() {
            let x = x.as_str().unwrap_or("");
            if let Some(v) = x.strip_prefix(DEFAULT) {
                f.default = Some(scalar(v));
                continue;
            }
            let Some(ui) = x.strip_prefix(UI) else {
                continue;
            };
            match ui {
                "text" | "textarea" => f.kind = "string",
                "password" => (f.kind, f.secret) = ("string", true),
                "number" => f.kind = "integer",
                "booleanSwitch" | "checkbox" => f.kind = "boolean",
                "validation:required" => f.required = true,
                _ if ui.starts_with("select:") => f.kind = "string",
                _ if ui.starts_with("selector") => f.kind = "object",
                _ if ui.starts_with("arrayFieldGroup") => f.kind = "array",
                _ => {
                    if let Some((p, v)) = ui
                        .strip_prefix("fieldDependency:")
                        .and_then(|r| r.split_once(':'))
                    {
                        f.depends = Some((p.to_string(), scalar(v)));
                    }
                }
            }
        }
        out.push(f);
    }
    out
}

/// The form's values: the ModuleInfo's `spec.config` over the ModuleConfig's defaults
/// (`spec.config`, then each descriptor's default).
pub fn form_values(mc: &Value, given: &Value) -> Value {
    let defaults = &mc["spec"]["config"];
    let mut out = if defaults.is_object() {
        defaults.clone()
    } else {
        json!({})
    };
    for d in descriptors(mc) {
        if let Some(v) = d.default
            && at(&out, &d.path).is_none()
        {
            set(&mut out, &d.path, v);
        }
    }
    merge(&mut out, given);
    out
}

fn set(o: &mut Value, path: &str, v: Value) {
    let mut cur = o;
    for k in path.split('.') {
        if !cur.is_object() {
            *cur = json!({});
        }
        cur = cur
            .as_object_mut()
            .expect("an object")
            .entry(k)
            .or_insert(Value::Null);
    }
    *cur = v;
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

pub fn at<'a>(values: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.')
        .try_fold(values, |v, k| v.get(k))
        .filter(|v| !v.is_null())
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

/// Every leaf path of `v` (objects descended; an empty object is a leaf).
fn leaves(prefix: &str, v: &Value, out: &mut Vec<String>) {
    match v.as_object() {
        Some(m) if !m.is_empty() => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, x, out);
            }
        }
        _ if !prefix.is_empty() => out.push(prefix.to_string()),
        _ => {}
    }
}

/// A key of `given` the form does not have: neither a descriptor's path (or inside an object or
/// array field) nor a path of the `spec.config` defaults.
fn unknown_keys(mc: &Value, fields: &[Descriptor], given: &Value) -> Vec<String> {
    let mut keys = vec![];
    leaves("", given, &mut keys);
    let defaults = &mc["spec"]["config"];
    keys.into_iter()
        .filter(|k| {
            let described = fields.iter().any(|d| {
                *k == d.path
                    || (matches!(d.kind, "object" | "array")
                        && k.starts_with(&format!("{}.", d.path)))
            });
            let defaulted = k.split('.').try_fold(defaults, |v, s| v.get(s)).is_some();
            !described && !defaulted
        })
        .collect()
}

/// Every problem of the ModuleInfo configuration `given` against the published form of `mc`
/// (empty when the form accepts it).
pub fn check_form(mc: &Value, given: &Value) -> Vec<String> {
    let fields = descriptors(mc);
    let values = form_values(mc, given);
    let mut out = vec![];
    let unknown = unknown_keys(mc, &fields, given);
    if !unknown.is_empty() {
        let paths: Vec<&str> = fields.iter().map(|d| d.path.as_str()).collect();
        out.push(format!(
            "unknown field(s) {} (the form's fields: {})",
            unknown.join(", "),
            paths.join(", ")
        ));
    }
    for f in &fields {
        if let Some((p, want)) = &f.depends
            && at(&values, p) != Some(want)
        {
            continue;
        }
        let key = &f.path;
        match at(&values, key) {
            None if f.required => out.push(format!("required field {key} is missing")),
            Some(v) if f.required && empty(v) => {
                let how = if at(given, key).is_some() {
                    "empty"
                } else {
                    "missing"
                };
                out.push(format!("required field {key} is {how}"))
            }
            Some(v) if !f.kind.is_empty() && kind_of(v) != f.kind => {
                out.push(format!(
                    "field {key} must be {}, not {}",
                    f.kind,
                    kind_of(v)
                ));
            }
            _ => {}
        }
    }
    out
}

/// The form fields of a ModuleConfig that are passwords.
pub fn secret_fields(mc: &Value) -> Vec<String> {
    descriptors(mc)
        .into_iter()
        .filter(|d| d.secret)
        .map(|d| d.path)
        .collect()
}

fn semver(v: &str) -> Option<semver::Version> {
    semver::Version::parse(v.trim().trim_start_matches('v')).ok()
}

/// Whether `version` (`v1.8.2`) satisfies a range such as `>= v1.0.0` or `>=v1.8.0, <v2.0.0`;
/// an empty range holds for every version.
pub fn versions_match(range: &str, version: &str) -> bool {
    if range.trim().is_empty() {
        return true;
    }
    let req = range.replace('v', "");
    match (semver::VersionReq::parse(&req), semver(version)) {
        (Ok(r), Some(v)) => r.matches(&v),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mc() -> Value {
        json!({"spec": {
        "config": {"pgPort": 5432, "mysql": {"builtin": true, "storageSize": "20Gi"}, "gateway": {"istio": ""}},
        "deployDescriptors": [
            {"path": "pgHost", "x-descriptors": [format!("{UI}text"), format!("{UI}validation:required")]},
            {"path": "pgPort", "x-descriptors": [format!("{UI}number"), format!("{UI}validation:required")]},
            {"path": "pgPassword", "x-descriptors": [format!("{UI}password"), format!("{UI}validation:required")]},
            {"path": "mysql.builtin", "x-descriptors": [format!("{UI}booleanSwitch"), format!("{DEFAULT}true")]},
            {"path": "mysql.host", "x-descriptors": [format!("{UI}text"), format!("{UI}validation:required"), format!("{UI}fieldDependency:mysql.builtin:false")]},
            {"path": "gateway", "x-descriptors": [format!("{UI}selector:core:v1:Pod"), format!("{UI}validation:required")]},
        ]}})
    }

    #[test]
    fn each_missing_wrong_or_unknown_field_is_named() {
        let given = json!({"pgHost": "pg", "pgPort": "5432", "mysql": {"builtin": false}, "gatway": {"istio": "gw"}});
        assert_eq!(
            check_form(&mc(), &given),
            [
                "unknown field(s) gatway.istio (the form's fields: pgHost, pgPort, pgPassword, mysql.builtin, mysql.host, gateway)",
                "field pgPort must be integer, not string",
                "required field pgPassword is missing",
                "required field mysql.host is missing",
                "required field gateway is missing",
            ]
        );
        // A default of the config (no descriptor) and keys inside an object field are known.
        let given = json!({"pgHost": "pg", "pgPassword": "x", "gateway": {"istio": "gw"}, "mysql": {"storageSize": "5Gi"}});
        assert!(check_form(&mc(), &given).is_empty());
        assert_eq!(secret_fields(&mc()), ["pgPassword"]);
    }

    #[test]
    fn version_ranges() {
        assert!(versions_match(">= v1.0.0", "v1.8.2"));
        assert!(!versions_match(">= v1.9.0", "v1.8.2"));
        assert!(versions_match(">=v1.8.0, <v2.0.0", "v1.10.1"));
        assert!(versions_match("", "v0.1.0"));
        assert!(!versions_match(">= v1.0.0", "latest"));
    }
}
