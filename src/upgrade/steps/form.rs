//! A published plugin's install form, read from its `ModuleConfig` as Alauda's field reference
//! describes it: `spec.deployDescriptors` (each a `path` into `spec.config`, with
//! `x-descriptors` giving the widget, whether it is required, a condition and a default) over
//! the `spec.config` defaults; its `dependencies` (`moduleName`, `versionsMatch`) and the
//! in-place upgrade range it publishes (`supportedUpgradeVersions`).
//!
//! The ModuleConfig comes from the platform: it is read into [`Form`] once, and the
//! configuration is checked against that value whole (unknown keys included).

use std::collections::BTreeSet;

use serde_json::Value;

use super::values::{at_path, leaves, merged};

const UI: &str = "urn:alm:descriptor:com.tectonic.ui:";
const DEFAULT: &str = "urn:alm:descriptor:com.tectonic.default:";

/// The value type a widget takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::upgrade) enum Kind {
    String,
    Integer,
    Boolean,
    Object,
    Array,
    /// The widget does not say.
    Any,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Integer => "integer",
            Kind::Boolean => "boolean",
            Kind::Object => "object",
            Kind::Array => "array",
            Kind::Any => "any",
        }
    }

    fn holds(self, v: &Value) -> bool {
        match self {
            Kind::String => v.is_string(),
            Kind::Integer => v.is_i64() || v.is_u64(),
            Kind::Boolean => v.is_boolean(),
            Kind::Object => v.is_object(),
            Kind::Array => v.is_array(),
            Kind::Any => true,
        }
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

/// One field of the form.
#[derive(Debug, Clone)]
pub(in crate::upgrade) struct Field {
    pub path: String,
    pub kind: Kind,
    pub required: bool,
    pub secret: bool,
    /// Counts only while this path has this value.
    pub depends: Option<(String, Value)>,
}

/// A dependency the package declares.
#[derive(Debug, Clone)]
pub(in crate::upgrade) struct Dependency {
    pub module: String,
    /// A version range (`>= v1.10.0`); empty: any.
    pub versions: String,
}

/// A ModuleConfig as the checks use it.
#[derive(Debug, Clone)]
pub(in crate::upgrade) struct Form {
    pub name: String,
    pub fields: Vec<Field>,
    pub defaults: Value,
    pub dependencies: Vec<Dependency>,
    pub supported_upgrade: String,
    /// The ACP versions it deploys on (`targetClusterVersions`).
    pub target_cluster_versions: String,
    pub ready_for_deploy: bool,
}

fn scalar(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn field(d: &Value) -> Option<(Field, Option<Value>)> {
    let path = d["path"].as_str().filter(|p| !p.is_empty())?;
    let mut f = Field {
        path: path.to_string(),
        kind: Kind::Any,
        required: false,
        secret: false,
        depends: None,
    };
    let mut default = None;
    for x in d["x-descriptors"].as_array().into_iter().flatten() {
        let x = x.as_str().unwrap_or("");
        if let Some(v) = x.strip_prefix(DEFAULT) {
            default = Some(scalar(v));
            continue;
        }
        let Some(ui) = x.strip_prefix(UI) else {
            continue;
        };
        match ui {
            "text" | "textarea" => f.kind = Kind::String,
            "password" => (f.kind, f.secret) = (Kind::String, true),
            "number" => f.kind = Kind::Integer,
            "booleanSwitch" | "checkbox" => f.kind = Kind::Boolean,
            "validation:required" => f.required = true,
            _ if ui.starts_with("select:") => f.kind = Kind::String,
            _ if ui.starts_with("selector") => f.kind = Kind::Object,
            _ if ui.starts_with("arrayFieldGroup") => f.kind = Kind::Array,
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
    Some((f, default))
}

fn blank(v: &Value) -> bool {
    match v {
        Value::String(s) => s.trim().is_empty(),
        Value::Object(m) => m.is_empty() || m.values().all(blank),
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

impl Form {
    /// Reads a ModuleConfig.
    pub fn of(mc: &Value) -> Form {
        let mut defaults = if mc["spec"]["config"].is_object() {
            mc["spec"]["config"].clone()
        } else {
            Value::Object(Default::default())
        };
        let mut fields = Vec::new();
        for d in mc["spec"]["deployDescriptors"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some((f, default)) = field(d) {
                if let Some(v) = default
                    && at_path(&defaults, &f.path).is_none()
                {
                    super::set_path(&mut defaults, &f.path, v);
                }
                fields.push(f);
            }
        }
        let text = |p: &str| {
            mc.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let dependencies = mc["spec"]["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| {
                Some(Dependency {
                    module: d["moduleName"]
                        .as_str()
                        .filter(|m| !m.is_empty())?
                        .to_string(),
                    versions: d["versionsMatch"].as_str().unwrap_or("").to_string(),
                })
            })
            .collect();
        Form {
            name: text("/metadata/name"),
            fields,
            defaults,
            dependencies,
            supported_upgrade: text("/spec/supportedUpgradeVersions"),
            target_cluster_versions: text("/spec/targetClusterVersions"),
            ready_for_deploy: mc["status"]["readyForDeploy"] == true,
        }
    }

    fn applies(f: &Field, values: &Value) -> bool {
        match &f.depends {
            None => true,
            Some((p, want)) => at_path(values, p) == Some(want),
        }
    }

    /// Fields the form shows as passwords.
    pub fn secret_fields(&self) -> BTreeSet<String> {
        self.fields
            .iter()
            .filter(|f| f.secret)
            .map(|f| f.path.clone())
            .collect()
    }

    /// The defaults with `config` over them.
    pub fn values(&self, config: &Value) -> Value {
        merged(&self.defaults, config)
    }

    /// Required fields that apply to `config` (over the defaults) and are missing or blank.
    pub fn missing(&self, config: &Value) -> Vec<String> {
        let values = self.values(config);
        self.fields
            .iter()
            .filter(|f| f.required && Self::applies(f, &values))
            .filter(|f| at_path(&values, &f.path).is_none_or(blank))
            .map(|f| f.path.clone())
            .collect()
    }

    /// Keys of `config` that are neither a field's path (or inside an object or array field)
    /// nor a path of the defaults: what the platform would refuse, or worse ignore.
    pub fn unknown(&self, config: &Value) -> Vec<String> {
        let mut keys = Vec::new();
        leaves("", config, &mut keys);
        keys.into_iter()
            .map(|(k, _)| k)
            .filter(|k| !k.is_empty())
            .filter(|k| {
                let described = self.fields.iter().any(|f| {
                    *k == f.path
                        || (matches!(f.kind, Kind::Object | Kind::Array)
                            && k.starts_with(&format!("{}.", f.path)))
                });
                let defaulted = k
                    .split('.')
                    .try_fold(&self.defaults, |v, s| v.get(s))
                    .is_some();
                !described && !defaulted
            })
            .collect()
    }

    /// Values of `config` (over the defaults) of another type than their field's widget.
    pub fn wrong_types(&self, config: &Value) -> Vec<String> {
        let values = self.values(config);
        self.fields
            .iter()
            .filter(|f| Self::applies(f, &values))
            .filter_map(|f| {
                let v = at_path(&values, &f.path)?;
                (!f.kind.holds(v))
                    .then(|| format!("{} must be {}, not {}", f.path, f.kind.name(), kind_of(v)))
            })
            .collect()
    }

    /// The form's field paths, as a person reads them in the UI.
    pub fn paths(&self) -> String {
        let p: Vec<&str> = self.fields.iter().map(|f| f.path.as_str()).collect();
        p.join(", ")
    }
}

fn semver(v: &str) -> Option<semver::Version> {
    semver::Version::parse(v.trim().trim_start_matches('v')).ok()
}

/// Whether `version` (`v1.8.2`) is in a published range such as `>= v1.0.0` or
/// `>=v1.8.0, <v2.0.0`; an empty range holds for every version, one that does not parse for none.
pub(in crate::upgrade) fn in_range(range: &str, version: &str) -> bool {
    if range.trim().is_empty() {
        return true;
    }
    match (
        semver::VersionReq::parse(&range.replace('v', "")),
        semver(version),
    ) {
        (Ok(r), Some(v)) => r.matches(&v),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mc() -> Value {
        let ui = |s: &str| format!("{UI}{s}");
        json!({"metadata": {"name": "kfp-v2.4.1"}, "spec": {
            "config": {"pgPort": 5432, "mysql": {"builtin": true, "host": "", "storageSize": "20Gi"}},
            "deployDescriptors": [
                {"path": "pgHost", "x-descriptors": [ui("text"), ui("validation:required")]},
                {"path": "pgPort", "x-descriptors": [ui("number"), ui("validation:required")]},
                {"path": "pgPassword", "x-descriptors": [ui("password"), ui("validation:required")]},
                {"path": "mysql.builtin", "x-descriptors": [ui("booleanSwitch")]},
                {"path": "mysql.host", "x-descriptors": [ui("text"), ui("validation:required"), ui("fieldDependency:mysql.builtin:false")]},
                {"path": "gateway", "x-descriptors": [ui("selector:core:v1:Pod"), format!("{DEFAULT}{{\"istio\": \"gw\"}}")]},
            ],
            "dependencies": [{"moduleName": "kfbase", "versionsMatch": ">= v1.10.0"}],
            "supportedUpgradeVersions": ">= v1.8.0"},
            "status": {"readyForDeploy": true}})
    }

    #[test]
    fn a_form_names_missing_unknown_and_mistyped_keys_under_their_conditions() {
        let form = Form::of(&mc());
        assert_eq!(form.missing(&json!({"pgHost": "pg"})), ["pgPassword"]);
        assert_eq!(
            form.missing(&json!({"pgHost": "pg", "pgPassword": "x", "mysql": {"builtin": false}})),
            ["mysql.host"]
        );
        assert_eq!(
            form.unknown(&json!({"pgHost": "pg", "gateway": {"app": "x"}, "mysql": {"storageSize": "1Gi"}, "gatway": {"istio": "x"}})),
            ["gatway.istio"]
        );
        assert_eq!(
            form.wrong_types(&json!({"pgPort": "5432", "mysql": {"builtin": "yes"}})),
            [
                "pgPort must be integer, not string",
                "mysql.builtin must be boolean, not string"
            ]
        );
        assert_eq!(
            form.secret_fields(),
            BTreeSet::from(["pgPassword".to_string()])
        );
        assert_eq!(form.values(&json!({}))["gateway"], json!({"istio": "gw"}));
        assert_eq!(form.dependencies[0].module, "kfbase");
        assert!(form.ready_for_deploy);
        assert!(in_range(&form.supported_upgrade, "v1.8.2"));
        assert!(!in_range(">= v1.9.0", "v1.8.2"));
        assert!(in_range(">=v1.8.0, <v2.0.0", "v1.10.1"));
        assert!(!in_range(">= v1.0.0", "latest"));
    }
}
