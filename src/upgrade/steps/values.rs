//! Untyped values: dotted paths, leaves, the changes a merge patch makes (secrets hidden).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::Change;

/// Every leaf of `v` (objects descended, anything else a leaf) as (`a.b.c`, value).
pub(super) fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() || prefix.is_empty() => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, x, out);
            }
        }
        _ => out.push((prefix.to_string(), v.clone())),
    }
}

pub(super) fn at_path<'a>(o: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(o, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}

/// Sets `a.b.c` in `o`, creating objects on the way.
pub(in crate::upgrade) fn set_path(o: &mut Value, path: &str, value: Value) {
    let mut cur = o;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, k) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let m = cur.as_object_mut().expect("an object");
        if i + 1 == parts.len() {
            m.insert(k.to_string(), value);
            return;
        }
        cur = m.entry(k.to_string()).or_insert(Value::Object(Map::new()));
    }
}

pub(super) fn show(v: Option<&Value>) -> Option<String> {
    v.map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Leaf by leaf, the changes a merge patch makes to `live`; leaves under a path of `secret`
/// are shown as `(hidden)`. `prefix` names the field path of the patch's root in the object.
pub(super) fn patch_changes(
    object: &str,
    prefix: &str,
    live: &Value,
    patch: &Value,
    secret: &BTreeSet<String>,
) -> Vec<Change> {
    let mut ls = Vec::new();
    leaves("", patch, &mut ls);
    ls.into_iter()
        .filter(|(p, want)| at_path(live, p) != Some(want))
        .map(|(p, want)| {
            let field = if prefix.is_empty() {
                p.clone()
            } else {
                format!("{prefix}.{p}")
            };
            if secret.contains(&p) {
                Change::hidden(object, field, at_path(live, &p).is_some())
            } else {
                Change::new(object, field, show(at_path(live, &p)), show(Some(&want)))
            }
        })
        .collect()
}

/// `given` over `defaults`, objects merged key by key.
pub(super) fn merged(defaults: &Value, given: &Value) -> Value {
    let mut out = if defaults.is_object() {
        defaults.clone()
    } else {
        Value::Object(Map::new())
    };
    let mut ls = Vec::new();
    leaves("", given, &mut ls);
    for (p, v) in ls {
        if !p.is_empty() {
            set_path(&mut out, &p, v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_changes_list_only_differing_leaves_and_hide_secrets() {
        let live = json!({"a": true, "b": {"c": 1}, "pw": "old"});
        let patch = json!({"a": true, "b": {"c": 2}, "d": "x", "pw": "new"});
        let secret = BTreeSet::from(["pw".to_string()]);
        let s: Vec<String> =
            patch_changes("AmlCluster default", "spec.values", &live, &patch, &secret)
                .iter()
                .map(|c| c.to_string())
                .collect();
        assert_eq!(
            s,
            [
                "AmlCluster default: spec.values.b.c: 1 → 2",
                "AmlCluster default: spec.values.d: (none) → x",
                "AmlCluster default: spec.values.pw: (hidden) → (hidden)",
            ]
        );
    }
}
