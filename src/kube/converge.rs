//! What `restore --on-conflict update` makes equal to the snapshot, and the one write that does
//! it. Server-side apply never removes a field another manager owns, so "apply the snapshot"
//! would only add back what is missing. Like Velero's `existingResourcePolicy: update`, we
//! compute a JSON merge patch from the live object to the snapshot's and send it with the live
//! `resourceVersion` (a concurrent change makes it fail with a conflict instead of being lost).
//! Nulls and empty maps count as absent; lists are compared and replaced whole.
//!
//! Compared and written: everything but `status` and the server's metadata, i.e. `spec`,
//! `data`, any other top-level field, and `metadata.labels` / `metadata.annotations`. Left as the
//! live object has them, because a controller owns them (docs/kubernetes.md lists them):
//!
//! - metadata other than labels and annotations (uid, resourceVersion, generation,
//!   creationTimestamp, managedFields, finalizers, ownerReferences, deletion fields);
//! - annotations `pv.kubernetes.io/*`, `volume.kubernetes.io/*`, `volume.beta.kubernetes.io/*`
//!   (binding and provisioning), `kubectl.kubernetes.io/last-applied-configuration`, and the
//!   Notebook culler's `notebooks.kubeflow.org/last-activity` and
//!   `notebooks.kubeflow.org/last_activity_check_timestamp`;
//! - label `kubernetes.io/metadata.name` (set by the API server on namespaces);
//! - PersistentVolumeClaim `spec.volumeName`, PersistentVolume `spec.claimRef` (the binding),
//!   Namespace `spec.finalizers`.

use serde_json::{Map, Value};

use super::objects::{Change, diff};

const OWNED_ANNOTATION_PREFIXES: &[&str] = &[
    "pv.kubernetes.io/",
    "volume.kubernetes.io/",
    "volume.beta.kubernetes.io/",
];
const OWNED_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "notebooks.kubeflow.org/last-activity",
    "notebooks.kubeflow.org/last_activity_check_timestamp",
];
const OWNED_LABELS: &[&str] = &["kubernetes.io/metadata.name"];

/// Kind-specific fields a controller owns.
fn owned_spec(kind: &str) -> &'static [&'static str] {
    match kind {
        "PersistentVolumeClaim" => &["volumeName"],
        "PersistentVolume" => &["claimRef"],
        "Namespace" => &["finalizers"],
        _ => &[],
    }
}

/// True for a path (from the object's root) that a restore neither compares nor writes.
pub fn owned(kind: &str, path: &[&str]) -> bool {
    match path {
        [] => false,
        ["apiVersion" | "kind" | "status", ..] => true,
        ["metadata"] => false,
        ["metadata", "labels"] | ["metadata", "annotations"] => false,
        ["metadata", "labels", key, ..] => OWNED_LABELS.contains(key),
        ["metadata", "annotations", key, ..] => {
            OWNED_ANNOTATIONS.contains(key)
                || OWNED_ANNOTATION_PREFIXES.iter().any(|p| key.starts_with(p))
        }
        ["metadata", ..] => true,
        ["spec", field, ..] => owned_spec(kind).contains(field),
        _ => false,
    }
}

/// True when some owned path lies at or below `path`.
fn holds_owned(kind: &str, path: &[&str], v: &Value) -> bool {
    if owned(kind, path) {
        return true;
    }
    match v {
        Value::Object(m) => m.iter().any(|(k, x)| {
            let mut p = path.to_vec();
            p.push(k);
            holds_owned(kind, &p, x)
        }),
        _ => false,
    }
}

fn kind_of(obj: &Value) -> &str {
    obj.get("kind").and_then(Value::as_str).unwrap_or("")
}

/// The part of `obj` a restore makes equal: owned paths and nulls removed (a merge patch cannot
/// set a null, and the API server does not keep one). `apiVersion` and `kind` stay, for
/// messages and to tell Secrets apart.
pub fn comparable(obj: &Value) -> Value {
    fn strip(kind: &str, path: &mut Vec<String>, v: &Value) -> Option<Value> {
        match v {
            Value::Null => None,
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, x) in m {
                    path.push(k.clone());
                    let p: Vec<&str> = path.iter().map(String::as_str).collect();
                    if !owned(kind, &p)
                        && let Some(x) = strip(kind, path, x)
                    {
                        out.insert(k.clone(), x);
                    }
                    path.pop();
                }
                // An empty map is the same as none (what is left of `spec` once the owned
                // `finalizers` are gone, labels of which only owned ones were set).
                if out.is_empty() && !path.is_empty() {
                    return None;
                }
                Some(Value::Object(out))
            }
            other => Some(other.clone()),
        }
    }
    let kind = kind_of(obj);
    let mut out = strip(kind, &mut Vec::new(), obj).unwrap_or(Value::Object(Map::new()));
    if let Some(m) = out.as_object_mut() {
        for k in ["apiVersion", "kind"] {
            if let Some(v) = obj.get(k) {
                m.insert(k.into(), v.clone());
            }
        }
        if m.get("metadata")
            .is_some_and(|md| md.as_object().is_some_and(Map::is_empty))
        {
            m.remove("metadata");
        }
    }
    out
}

/// What `--on-conflict update` would change in `live` to make it equal to `wanted`, removals
/// included. Empty: the object is as the snapshot has it.
pub fn changes(live: &Value, wanted: &Value) -> Vec<Change> {
    diff(&comparable(live), &comparable(wanted))
}

/// The JSON merge patch (RFC 7386) that turns `live` into `wanted` on every compared field and
/// touches no owned one, with the live `resourceVersion` as a precondition. `None` when there
/// is nothing to change.
pub fn merge_patch(live: &Value, wanted: &Value) -> Option<Value> {
    let kind = kind_of(wanted);
    let want = comparable(wanted);
    let mut patch = patch_between(kind, &mut Vec::new(), live, &want)?;
    if let Some(rv) = live.pointer("/metadata/resourceVersion").cloned() {
        let m = patch
            .as_object_mut()
            .expect("a patch of objects is an object");
        let meta = m
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        meta.as_object_mut()
            .expect("metadata is an object")
            .insert("resourceVersion".into(), rv);
    }
    Some(patch)
}

fn patch_between(kind: &str, path: &mut Vec<String>, live: &Value, want: &Value) -> Option<Value> {
    let (Value::Object(l), Value::Object(w)) = (live, want) else {
        return (live != want).then(|| want.clone());
    };
    let mut out = Map::new();
    let keys: std::collections::BTreeSet<&String> = l.keys().chain(w.keys()).collect();
    for k in keys {
        path.push(k.clone());
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        if !owned(kind, &p) {
            let entry = match (l.get(k), w.get(k)) {
                (Some(a), Some(b)) => patch_between(kind, path, a, b),
                (None, Some(b)) => Some(b.clone()),
                // Removing a map that holds an owned field removes its other keys one by one.
                (Some(a), None) if holds_owned(kind, &p, a) => {
                    patch_between(kind, path, a, &Value::Object(Map::new()))
                }
                (Some(Value::Null), None) | (None, None) => None,
                (Some(_), None) => Some(Value::Null),
            };
            if let Some(e) = entry {
                out.insert(k.clone(), e);
            }
        }
        path.pop();
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply_merge(target: &mut Value, patch: &Value) {
        match (target.as_object_mut(), patch.as_object()) {
            (Some(t), Some(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        apply_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
            _ => *target = patch.clone(),
        }
    }

    #[test]
    fn patch_removes_what_was_added_and_restores_what_changed_but_keeps_owned_fields() {
        let snapshot = json!({"apiVersion":"v1","kind":"PersistentVolumeClaim",
            "metadata":{"name":"c","namespace":"a","labels":{"app":"x"}},
            "spec":{"volumeName":"pv-old","resources":{"requests":{"storage":"1Gi"}}}});
        let live = json!({"apiVersion":"v1","kind":"PersistentVolumeClaim",
            "metadata":{"name":"c","namespace":"a","resourceVersion":"7","uid":"u",
                "finalizers":["kubernetes.io/pvc-protection"],
                "labels":{"app":"y","extra":"1"},
                "annotations":{"pv.kubernetes.io/bind-completed":"yes","note":"added"}},
            "spec":{"volumeName":"pv-new","resources":{"requests":{"storage":"1Gi"}},"selector":{"a":"b"}},
            "status":{"phase":"Bound"}});
        let paths: Vec<(String, crate::kube::objects::Op)> = changes(&live, &snapshot)
            .into_iter()
            .map(|c| (c.path, c.op))
            .collect();
        use crate::kube::objects::Op;
        assert_eq!(
            paths,
            [
                ("metadata.annotations.note".to_string(), Op::Remove),
                ("metadata.labels.app".to_string(), Op::Change),
                ("metadata.labels.extra".to_string(), Op::Remove),
                ("spec.selector.a".to_string(), Op::Remove),
            ]
        );
        let patch = merge_patch(&live, &snapshot).unwrap();
        assert_eq!(
            patch,
            json!({"metadata":{"resourceVersion":"7",
                "annotations":{"note":null},"labels":{"app":"x","extra":null}},
                "spec":{"selector":null}})
        );
        let mut after = live.clone();
        apply_merge(&mut after, &patch);
        assert!(changes(&after, &snapshot).is_empty());
        assert_eq!(after["spec"]["volumeName"], "pv-new");
        assert_eq!(
            after["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"],
            "yes"
        );
        assert_eq!(
            after["metadata"]["finalizers"],
            json!(["kubernetes.io/pvc-protection"])
        );
    }

    #[test]
    fn equal_objects_need_no_patch_whatever_the_server_added() {
        let snap = json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a",
            "labels":{"team":"a"}}});
        let live = json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a","uid":"u",
            "resourceVersion":"3","labels":{"team":"a","kubernetes.io/metadata.name":"a"},
            "ownerReferences":[{"uid":"p"}]},"spec":{"finalizers":["kubernetes"]},
            "status":{"phase":"Active"}});
        assert!(changes(&live, &snap).is_empty());
        assert_eq!(merge_patch(&live, &snap), None);
    }

    #[test]
    fn a_map_holding_an_owned_field_is_emptied_key_by_key() {
        let snap = json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}});
        let live = json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a",
            "resourceVersion":"3","labels":{"extra":"1","kubernetes.io/metadata.name":"a"}}});
        assert_eq!(
            merge_patch(&live, &snap).unwrap(),
            json!({"metadata":{"resourceVersion":"3","labels":{"extra":null}}})
        );
    }

    #[test]
    fn nulls_in_the_snapshot_equal_absent_fields() {
        let snap = json!({"apiVersion":"kubeflow.org/v1","kind":"Notebook","metadata":{"name":"n"},
            "spec":{"template":{"metadata":{"creationTimestamp":null},"spec":{}}}});
        let live = json!({"apiVersion":"kubeflow.org/v1","kind":"Notebook","metadata":{"name":"n"},
            "spec":{"template":{"metadata":{},"spec":{}}}});
        assert!(changes(&live, &snap).is_empty());
    }
}
