//! Untyped objects: what a backup keeps of them, where they live in a part, how a restore
//! prepares them (namespace map, stale references) and how two versions differ.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Role, name_of, namespace_of};
use crate::error::{Error, Result};

/// Fields the API server owns. A restore must not send them, and they carry no user data.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "managedFields",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Removes server-managed fields (and `status` unless kept), as `kubectl get -o yaml` would
/// show the object minus what the server fills in.
pub fn clean(mut obj: Value, keep_status: bool) -> Value {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in SERVER_METADATA {
            m.remove(*f);
        }
        if m.get("annotations")
            .and_then(Value::as_object)
            .is_some_and(|a| a.is_empty())
        {
            m.remove("annotations");
        }
    }
    if !keep_status && let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
    obj
}

/// `kubernetes/<cluster>/<group or core>/<plural>/<namespace or _cluster>/<name>.yaml`
pub fn entry_path(
    role: Role,
    group: &str,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> String {
    format!(
        "kubernetes/{}/{}/{}/{}/{}.yaml",
        role,
        if group.is_empty() { "core" } else { group },
        plural,
        namespace.unwrap_or("_cluster"),
        name
    )
}

pub fn to_yaml(obj: &Value) -> String {
    serde_saphyr::to_string(obj).expect("a JSON value serializes as YAML")
}

pub fn from_yaml(text: &str, what: &str) -> Result<Value> {
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| Error::other(format!("{what}: not a Kubernetes object in YAML: {e}")))
}

/// Namespace renames for a restore (`--namespace-map team-a=team-a2`).
#[derive(Debug, Clone, Default)]
pub struct NamespaceMap(pub BTreeMap<String, String>);

impl NamespaceMap {
    pub fn map<'a>(&'a self, ns: &'a str) -> &'a str {
        self.0.get(ns).map(String::as_str).unwrap_or(ns)
    }
}

/// Prepares a backed-up object for applying to a cluster: maps namespaces wherever the AML
/// objects name them, and drops references that cannot hold on another object's life
/// (owner uids, a PV's claim uid), which would otherwise make the garbage collector delete
/// the restored object or keep a volume from binding.
pub fn prepare_for_restore(mut obj: Value, nsmap: &NamespaceMap) -> Value {
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("ownerReferences");
        if let Some(Value::String(ns)) = meta.get_mut("namespace") {
            *ns = nsmap.map(ns).to_string();
        }
        // Namespace and Profile objects are named after the namespace they stand for.
        if (kind == "Namespace" || kind == "Profile")
            && let Some(Value::String(n)) = meta.get_mut("name")
        {
            *n = nsmap.map(n).to_string();
        }
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            // Binding bookkeeping of the PV controller; a new claim is bound afresh.
            a.remove("pv.kubernetes.io/bind-completed");
            a.remove("pv.kubernetes.io/bound-by-controller");
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    match kind.as_str() {
        "PersistentVolume" => {
            if let Some(cr) = obj
                .pointer_mut("/spec/claimRef")
                .and_then(Value::as_object_mut)
            {
                cr.remove("uid");
                cr.remove("resourceVersion");
                if let Some(Value::String(ns)) = cr.get_mut("namespace") {
                    *ns = nsmap.map(ns).to_string();
                }
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            if let Some(Value::Array(subjects)) = obj.get_mut("subjects") {
                for s in subjects {
                    if let Some(Value::String(ns)) = s.get_mut("namespace") {
                        *ns = nsmap.map(ns).to_string();
                    }
                }
            }
        }
        // Principals look like cluster.local/ns/<namespace>/sa/<account>.
        "AuthorizationPolicy" if !nsmap.0.is_empty() => {
            rewrite_strings(obj.get_mut("spec"), &|s| {
                let mut out = s.to_string();
                for (from, to) in &nsmap.0 {
                    out = out.replace(&format!("/ns/{from}/"), &format!("/ns/{to}/"));
                }
                out
            });
        }
        _ => {}
    }
    obj
}

fn rewrite_strings(v: Option<&mut Value>, f: &dyn Fn(&str) -> String) {
    match v {
        Some(Value::String(s)) => *s = f(s),
        Some(Value::Array(a)) => a.iter_mut().for_each(|x| rewrite_strings(Some(x), f)),
        Some(Value::Object(m)) => m.values_mut().for_each(|x| rewrite_strings(Some(x), f)),
        _ => {}
    }
}

/// What shows instead of the value of a Secret or of a field that looks like a credential.
pub const HIDDEN: &str = "(hidden)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Add,
    Change,
    Remove,
}

/// One changed field: dotted path, old and new value (None: absent). Values of Secrets and of
/// fields that hold credentials are replaced by [`HIDDEN`] (`hidden: true`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Change {
    pub path: String,
    pub op: Op,
    pub old: Option<Value>,
    pub new: Option<Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

/// Field-level differences between a live object and what applying would make of it, ignoring
/// what the server manages. Every value of a Secret, and of a field whose name says it holds a
/// credential (see [`is_secret_key`]), is hidden.
pub fn diff(live: &Value, wanted: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    let a = clean(live.clone(), false);
    let b = clean(wanted.clone(), false);
    let secret = is_secret_kind(&b) || is_secret_kind(&a);
    walk_diff("", &a, &b, secret, &mut out);
    out
}

/// A core `Secret`: every value of it is sensitive.
pub fn is_secret_kind(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && obj.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

/// A field name that says it holds a credential (`pgPassword`, `MODEL_REPO_BUILDER_DB_PASSWORD`,
/// `apiToken`, `secretKey` …). References to Secrets (`passwordSecretRef`) are hidden too,
/// which costs nothing.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace(['_', '-', '.'], "");
    [
        "password",
        "passwd",
        "secretkey",
        "apikey",
        "privatekey",
        "accesskey",
        "credential",
    ]
    .iter()
    .any(|w| k.contains(w))
        || k.ends_with("token")
        || k.ends_with("secret")
}

/// Replaces every string value stored under a credential-looking key (see [`is_secret_key`]) with
/// [`HIDDEN`] and returns the paths it hid. For objects a snapshot keeps only as records (plugin
/// ModuleInfos carry a plugin form's `pgPassword` in clear): nothing restores them, so their
/// credentials have no business in a bucket. References (`passwordSecretRef: {name, …}`) are
/// objects, not strings, and stay.
pub fn redact_credentials(obj: &mut Value) -> Vec<String> {
    fn walk(path: &str, v: &mut Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m.iter_mut() {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    if is_secret_key(k) && child.is_string() && child != HIDDEN {
                        *child = Value::String(HIDDEN.into());
                        out.push(p);
                    } else {
                        walk(&p, child, out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter_mut().enumerate() {
                    walk(&format!("{path}[{i}]"), child, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for top in ["spec", "data", "status"] {
        if let Some(v) = obj.get_mut(top) {
            walk(top, v, &mut out);
        }
    }
    out
}

fn hide(v: Option<&Value>, secret: bool) -> Option<Value> {
    v.map(|v| {
        if secret {
            Value::String(HIDDEN.into())
        } else {
            v.clone()
        }
    })
}

fn walk_diff(path: &str, a: &Value, b: &Value, secret: bool, out: &mut Vec<Change>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            // `env: [{name: DB_PASSWORD, value: …}]`: the name marks the value.
            let named_secret = |m: &Map<String, Value>| {
                m.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(is_secret_key)
            };
            let pair_secret = named_secret(x) || named_secret(y);
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let secret = secret || is_secret_key(k) || (pair_secret && k == "value");
                let empty = Value::Object(Map::new());
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => walk_diff(&p, va, vb, secret, out),
                    // A map added or removed whole: each of its fields is named.
                    (Some(va @ Value::Object(m)), None) if !m.is_empty() => {
                        walk_diff(&p, va, &empty, secret, out)
                    }
                    (None, Some(vb @ Value::Object(m))) if !m.is_empty() => {
                        walk_diff(&p, &empty, vb, secret, out)
                    }
                    (va, vb) => out.push(Change {
                        path: p,
                        op: if va.is_none() { Op::Add } else { Op::Remove },
                        old: hide(va, secret),
                        new: hide(vb, secret),
                        hidden: secret,
                    }),
                }
            }
        }
        // Lists of the same length (containers, volumes) differ element by element; naming
        // `containers[0].image` beats printing both whole lists.
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                walk_diff(&format!("{path}[{i}]"), va, vb, secret, out);
            }
        }
        _ if a == b => {}
        _ => out.push(Change {
            path: path.to_string(),
            op: Op::Change,
            old: hide(Some(a), secret),
            new: hide(Some(b), secret),
            hidden: secret,
        }),
    }
}

/// `Kind ns/name` for messages.
pub fn describe(obj: &Value) -> String {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("?");
    match namespace_of(obj) {
        Some(ns) => format!("{kind} {ns}/{}", name_of(obj)),
        None => format!("{kind} {}", name_of(obj)),
    }
}

/// An empty JSON object, for patches.
pub fn obj() -> Map<String, Value> {
    Map::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clean_drops_server_fields_and_status_only() {
        let o = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"n",
            "uid":"u","resourceVersion":"7","managedFields":[],"creationTimestamp":"t","generation":2,
            "labels":{"x":"y"},"annotations":{}},"data":{"k":"v"},"status":{"s":1}});
        let c = clean(o.clone(), false);
        assert_eq!(
            c,
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"n","labels":{"x":"y"}},"data":{"k":"v"}})
        );
        assert_eq!(clean(o, true)["status"], json!({"s":1}));
    }

    #[test]
    fn yaml_round_trip_keeps_ambiguous_strings_as_strings() {
        let o = json!({"metadata":{"name":"x"},"data":{"a":"yes","b":"0755","c":"1.0","d":"null",
            "e":"", "f":"line1\nline2\n", "g": "~", "h": "true", "i": 3, "j": 2.5, "k": null, "l": [1,"2"]}});
        let back = from_yaml(&to_yaml(&o), "t").unwrap();
        assert_eq!(back, o);
    }

    #[test]
    fn restore_prep_maps_namespaces_and_drops_stale_references() {
        let map = NamespaceMap([("a".to_string(), "b".to_string())].into());
        let pv = json!({"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"pv1",
            "annotations":{"pv.kubernetes.io/bound-by-controller":"yes"}},
            "spec":{"claimRef":{"namespace":"a","name":"c","uid":"old","resourceVersion":"9"}}});
        let p = prepare_for_restore(pv, &map);
        assert_eq!(p["spec"]["claimRef"], json!({"namespace":"b","name":"c"}));
        assert!(p["metadata"].get("annotations").is_none());
        let ap = json!({"apiVersion":"security.istio.io/v1beta1","kind":"AuthorizationPolicy",
            "metadata":{"name":"ns-owner","namespace":"a","ownerReferences":[{"uid":"x"}]},
            "spec":{"rules":[{"from":[{"source":{"principals":["cluster.local/ns/a/sa/default-editor"]}}]}]}});
        let p = prepare_for_restore(ap, &map);
        assert_eq!(p["metadata"], json!({"name":"ns-owner","namespace":"b"}));
        assert_eq!(
            p["spec"]["rules"][0]["from"][0]["source"]["principals"][0],
            "cluster.local/ns/b/sa/default-editor"
        );
        let prof = json!({"apiVersion":"kubeflow.org/v1","kind":"Profile","metadata":{"name":"a"}});
        assert_eq!(prepare_for_restore(prof, &map)["metadata"]["name"], "b");
    }

    #[test]
    fn diff_lists_changed_added_and_removed_fields() {
        let a =
            json!({"metadata":{"name":"x","resourceVersion":"1"},"spec":{"a":1,"b":{"c":2},"d":3}});
        let b =
            json!({"metadata":{"name":"x","resourceVersion":"2"},"spec":{"a":1,"b":{"c":5},"e":4}});
        let d = diff(&a, &b);
        let paths: Vec<&str> = d.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["spec.b.c", "spec.d", "spec.e"]);
        assert_eq!(d[0].old, Some(json!(2)));
        assert_eq!(d[1].new, None);
    }

    #[test]
    fn diff_names_the_element_of_a_list_that_changed() {
        let a =
            json!({"spec":{"containers":[{"name":"a","image":"x:1"},{"name":"b","image":"y:1"}]}});
        let b =
            json!({"spec":{"containers":[{"name":"a","image":"x:2"},{"name":"b","image":"y:1"}]}});
        let d = diff(&a, &b);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, "spec.containers[0].image");
        assert_eq!(d[0].new, Some(json!("x:2")));
    }

    #[test]
    fn record_credentials_are_redacted_and_secret_references_kept() {
        let mut o = json!({"apiVersion": "cluster.alauda.io/v1alpha1", "kind": "ModuleInfo",
            "metadata": {"name": "mlflow-x", "annotations": {"note": "keep"}},
            "spec": {"config": {"pgHost": "pg", "pgPassword": "Sup3r", "tokens": [{"apiToken": "t"}],
                "passwordSecretRef": {"name": "aml-mysql-root-token"}}}});
        let hidden = redact_credentials(&mut o);
        assert_eq!(
            hidden,
            ["spec.config.pgPassword", "spec.config.tokens[0].apiToken"]
        );
        assert_eq!(o["spec"]["config"]["pgPassword"], HIDDEN);
        assert_eq!(o["spec"]["config"]["pgHost"], "pg");
        assert_eq!(
            o["spec"]["config"]["passwordSecretRef"]["name"],
            "aml-mysql-root-token"
        );
        assert!(
            redact_credentials(&mut o).is_empty(),
            "hiding twice changes nothing"
        );
    }

    #[test]
    fn secret_values_and_credential_fields_are_hidden() {
        let live = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},
            "data":{"MODEL_REPO_BUILDER_DB_PASSWORD":"b2xk","user":"dQ=="}});
        let want = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},
            "data":{"MODEL_REPO_BUILDER_DB_PASSWORD":"bmV3","host":"aA=="}});
        let d = diff(&live, &want);
        assert_eq!(d.len(), 3, "{d:?}");
        for c in &d {
            assert!(c.hidden, "{c:?}");
            for v in [&c.old, &c.new].into_iter().flatten() {
                assert_eq!(v, &json!(HIDDEN), "{c:?}");
            }
        }
        assert_eq!((d[1].op, &d[1].new), (Op::Add, &Some(json!(HIDDEN))));
        assert_eq!((d[2].op, &d[2].new), (Op::Remove, &None));
        let text = serde_json::to_string(&d).unwrap();
        assert!(!text.contains("bmV3") && !text.contains("b2xk") && !text.contains("dQ=="));

        let live = json!({"apiVersion":"cluster.alauda.io/v1alpha1","kind":"ModuleInfo",
            "metadata":{"name":"m"},"spec":{"config":{"pgHost":"a","pgPassword":"old"},
            "env":[{"name":"DB_PASSWORD","value":"x1"},{"name":"HOST","value":"h1"}]}});
        let want = json!({"apiVersion":"cluster.alauda.io/v1alpha1","kind":"ModuleInfo",
            "metadata":{"name":"m"},"spec":{"config":{"pgHost":"b","pgPassword":"new"},
            "env":[{"name":"DB_PASSWORD","value":"x2"},{"name":"HOST","value":"h2"}]}});
        let shown: Vec<(String, bool)> = diff(&live, &want)
            .into_iter()
            .map(|c| (c.path, c.hidden))
            .collect();
        assert_eq!(
            shown,
            [
                ("spec.config.pgHost".to_string(), false),
                ("spec.config.pgPassword".to_string(), true),
                ("spec.env[0].value".to_string(), true),
                ("spec.env[1].value".to_string(), false),
            ]
        );
    }
}
