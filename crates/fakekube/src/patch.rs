//! JSON merge patch (RFC 7386), JSON patch (RFC 6902), an approximation of strategic merge
//! patch, and the field sets server-side apply tracks in `managedFields`.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// RFC 7386.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

fn unescape(tok: &str) -> String {
    tok.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(p: &str) -> Result<Vec<String>, String> {
    if p.is_empty() {
        return Ok(vec![]);
    }
    let rest = p
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid JSON pointer {p:?}"))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn pointer_get<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, tok| match cur {
        Value::Object(m) => m.get(tok),
        Value::Array(a) => tok.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn parent_mut<'a>(v: &'a mut Value, path: &[String]) -> Result<&'a mut Value, String> {
    let mut cur = v;
    for tok in &path[..path.len() - 1] {
        cur = match cur {
            Value::Object(m) => m.get_mut(tok),
            Value::Array(a) => tok.parse::<usize>().ok().and_then(move |i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| "doc is missing path".to_string())?;
    }
    Ok(cur)
}

fn add(doc: &mut Value, path: &[String], val: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = val;
        return Ok(());
    }
    let last = path.last().unwrap();
    match parent_mut(doc, path)? {
        Value::Object(m) => {
            m.insert(last.clone(), val);
            Ok(())
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>().map_err(|e| e.to_string())?
            };
            if i > a.len() {
                return Err(format!("add operation index out of bounds: {i}"));
            }
            a.insert(i, val);
            Ok(())
        }
        _ => Err("doc is missing path".into()),
    }
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, String> {
    let last = path.last().ok_or("cannot remove the whole document")?;
    match parent_mut(doc, path)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| format!("unable to remove nonexistent key: {last}")),
        Value::Array(a) => {
            let i = last.parse::<usize>().map_err(|e| e.to_string())?;
            if i >= a.len() {
                return Err(format!("remove operation index out of bounds: {i}"));
            }
            Ok(a.remove(i))
        }
        _ => Err("doc is missing path".into()),
    }
}

/// RFC 6902. The error text is the one the apiserver wraps into its 422/500.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("json patch must be an array of operations")?;
    for op in ops {
        let path = split_pointer(op["path"].as_str().unwrap_or(""))?;
        match op["op"].as_str().unwrap_or("") {
            "add" => add(doc, &path, op["value"].clone())?,
            "remove" => {
                remove(doc, &path)?;
            }
            "replace" => {
                if pointer_get(doc, &path).is_none() {
                    return Err(format!(
                        "replace operation does not apply: doc is missing key: {}",
                        op["path"]
                    ));
                }
                remove(doc, &path).ok();
                add(doc, &path, op["value"].clone())?;
            }
            "move" => {
                let from = split_pointer(op["from"].as_str().unwrap_or(""))?;
                let v = remove(doc, &from)?;
                add(doc, &path, v)?;
            }
            "copy" => {
                let from = split_pointer(op["from"].as_str().unwrap_or(""))?;
                let v = pointer_get(doc, &from)
                    .cloned()
                    .ok_or("copy from a missing path")?;
                add(doc, &path, v)?;
            }
            "test" => {
                if pointer_get(doc, &path) != Some(&op["value"]) {
                    return Err(format!(
                        "testing value {} failed: test failed",
                        op["path"].as_str().unwrap_or("")
                    ));
                }
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(())
}

fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    let candidates: &[&'static str] = match field {
        "ports" => &["containerPort", "port"],
        "volumeMounts" | "volumeDevices" => &["mountPath", "devicePath"],
        "imagePullSecrets"
        | "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env" => &["name"],
        "conditions" => &["type"],
        "tolerations" | "hostAliases" => &[],
        _ => &["name"],
    };
    candidates
        .iter()
        .copied()
        .find(|k| items.iter().all(|i| i.get(*k).is_some()))
}

/// Strategic merge patch, approximated without schemas: maps merge, lists of objects merge by
/// their usual key (`name`, `containerPort`, `mountPath`, `type`), `metadata.finalizers` is a
/// union, other lists are replaced; `$patch: delete|replace` and `$setElementOrder`/`$retainKeys`
/// directives are understood (the last two are ignored).
pub fn strategic_merge(target: &mut Value, patch: &Value, field: &str) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = p.clone();
        p.remove("$patch");
        *target = Value::Object(p);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().unwrap();
    for (k, v) in p {
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" || k == "$patch" {
            continue;
        }
        if let Some(list_field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Some(del)) = (t.get_mut(list_field), v.as_array()) {
                cur.retain(|x| !del.contains(x));
            }
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Array(items) => {
                let cur = t.get(k).and_then(Value::as_array).cloned();
                let merged = match cur {
                    Some(mut cur) if k == "finalizers" => {
                        for i in items {
                            if !cur.contains(i) {
                                cur.push(i.clone());
                            }
                        }
                        cur
                    }
                    Some(mut cur) if items.iter().all(Value::is_object) && !items.is_empty() => {
                        match merge_key(k, items) {
                            Some(key) if cur.iter().all(|c| c.get(key).is_some()) => {
                                for item in items {
                                    let pos = cur.iter().position(|c| c[key] == item[key]);
                                    let delete = item.get("$patch").and_then(Value::as_str)
                                        == Some("delete");
                                    match (pos, delete) {
                                        (Some(i), true) => {
                                            cur.remove(i);
                                        }
                                        (Some(i), false) => strategic_merge(&mut cur[i], item, k),
                                        (None, false) => {
                                            let mut n = Value::Null;
                                            strategic_merge(&mut n, item, k);
                                            cur.push(n);
                                        }
                                        (None, true) => {}
                                    }
                                }
                                cur
                            }
                            _ => items.clone(),
                        }
                    }
                    _ => items.clone(),
                };
                t.insert(k.clone(), Value::Array(merged));
            }
            Value::Object(_) => strategic_merge(t.entry(k.clone()).or_insert(Value::Null), v, k),
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
    let _ = field;
}

/// A field path as server-side apply tracks it (`f:` map keys; lists are atomic leaves).
pub type FieldPath = Vec<String>;
pub type FieldSet = BTreeSet<FieldPath>;

/// Leaf paths of an object, restricted to what managedFields track: everything except
/// apiVersion/kind and the system part of metadata; `status` only when `status` is true
/// (the status subresource) and only status then.
pub fn field_set(obj: &Value, status_only: bool, skip_status: bool) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(m) = obj.as_object() else { return out };
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "status" if skip_status => {}
            "status" => leaves(v, vec![k.clone()], &mut out),
            _ if status_only => {}
            "metadata" => {
                for mk in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(mv) = v.get(mk) {
                        leaves(mv, vec!["metadata".into(), mk.into()], &mut out);
                    }
                }
            }
            _ => leaves(v, vec![k.clone()], &mut out),
        }
    }
    out
}

fn leaves(v: &Value, path: FieldPath, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                let mut p = path.clone();
                p.push(k.clone());
                leaves(c, p, out);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

/// Leaf paths whose values differ between two objects (present in either).
pub fn changed_paths(old: &Value, new: &Value, status_only: bool, skip_status: bool) -> FieldSet {
    let a = field_set(old, status_only, skip_status);
    let b = field_set(new, status_only, skip_status);
    a.union(&b)
        .filter(|p| get_path(old, p) != get_path(new, p))
        .cloned()
        .collect()
}

pub fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

pub fn set_path(v: &mut Value, path: &[String], val: Value) {
    let mut cur = v;
    for k in &path[..path.len() - 1] {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        cur = cur
            .as_object_mut()
            .unwrap()
            .entry(k.clone())
            .or_insert(Value::Null);
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    cur.as_object_mut()
        .unwrap()
        .insert(path.last().unwrap().clone(), val);
}

/// Removes a leaf and any maps left empty above it.
pub fn remove_path(v: &mut Value, path: &[String]) {
    fn rec(cur: &mut Value, path: &[String]) -> bool {
        let Some(m) = cur.as_object_mut() else {
            return false;
        };
        if path.len() == 1 {
            m.remove(&path[0]);
        } else if let Some(child) = m.get_mut(&path[0])
            && rec(child, &path[1..])
        {
            m.remove(&path[0]);
        }
        m.is_empty()
    }
    rec(v, path);
}

pub fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// The `fieldsV1` JSON of a field set.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Value::Object(Map::new());
    for path in set {
        let mut cur = &mut root;
        for (i, k) in path.iter().enumerate() {
            let key = format!("f:{k}");
            let m = cur.as_object_mut().unwrap();
            cur = m.entry(key).or_insert_with(|| json!({}));
            let top_struct = i == 0 && matches!(k.as_str(), "metadata" | "spec" | "status");
            if i + 1 < path.len() && !top_struct {
                cur.as_object_mut()
                    .unwrap()
                    .entry(".")
                    .or_insert_with(|| json!({}));
            }
        }
    }
    root
}

pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn rec(v: &Value, path: FieldPath, out: &mut FieldSet) {
        let mut child = false;
        if let Some(m) = v.as_object() {
            for (k, c) in m {
                if let Some(name) = k.strip_prefix("f:") {
                    child = true;
                    let mut p = path.clone();
                    p.push(name.to_string());
                    rec(c, p, out);
                }
            }
        }
        if !child && !path.is_empty() {
            out.insert(path);
        }
    }
    let mut out = FieldSet::new();
    rec(v, vec![], &mut out);
    out
}

/// `fieldpath.Path.String()`: `.spec.replicas`.
pub fn path_string(p: &[String]) -> String {
    p.iter().map(|k| format!(".{k}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_json_patch() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut v, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(v, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
        json_patch(&mut v, &json!([{"op": "add", "path": "/l/-", "value": 4}, {"op": "replace", "path": "/a/c", "value": 9},
            {"op": "remove", "path": "/a/d"}, {"op": "test", "path": "/l/1", "value": 4}]))
        .unwrap();
        assert_eq!(v, json!({"a": {"c": 9}, "l": [3, 4]}));
        assert!(json_patch(&mut v, &json!([{"op": "test", "path": "/l/0", "value": 0}])).is_err());
    }

    #[test]
    fn strategic_merges_named_lists() {
        let mut v = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        strategic_merge(
            &mut v,
            &json!({"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "a", "image": "z"}, {"name": "b", "$patch": "delete"}]}}),
            "",
        );
        assert_eq!(
            v,
            json!({"spec": {"containers": [{"name": "a", "image": "z"}]}})
        );
    }

    #[test]
    fn fields_v1_roundtrip() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": {"a": "1"}}, "data": {"k": "v"}});
        let set = field_set(&obj, false, true);
        let f = to_fields_v1(&set);
        assert_eq!(
            f,
            json!({"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}})
        );
        assert_eq!(from_fields_v1(&f), set);
    }
}
