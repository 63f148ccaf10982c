//! `meta.k8s.io/v1` Table output (what `kubectl get` asks for).

use serde_json::{Value, json};

use crate::discovery::ResourceType;

/// `k8s.io/apimachinery/pkg/util/duration.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    } else if secs < 0 {
        return "0s".into();
    } else if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age(ts: &Value) -> Value {
    match ts
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    {
        Some(t) => json!(human_duration(
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()
        )),
        None => json!("<unknown>"),
    }
}

/// A small JSONPath subset: `.a.b`, `.a[0]`, `.a[?(@.type=="Ready")].status`.
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            cur = cur.get(&r[..end])?;
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (k, v) = f.split_once("==")?;
                let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
                cur = cur
                    .as_array()?
                    .iter()
                    .find(|i| i.get(k.trim()).and_then(Value::as_str) == Some(v))?;
            } else {
                cur = cur.get(inner.parse::<usize>().ok()?)?;
            }
        } else {
            return None;
        }
    }
    Some(cur)
}

fn cell(v: Option<&Value>, typ: &str) -> Value {
    match (v, typ) {
        (None, _) | (Some(Value::Null), _) => Value::Null,
        (Some(v), "date") => age(v),
        (Some(v), _) => v.clone(),
    }
}

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// Columns: (name, type, jsonPath or a built-in pseudo-path, priority).
fn columns(rt: &ResourceType) -> Vec<(String, String, String, i64)> {
    let c = |n: &str, t: &str, p: &str| (n.to_string(), t.to_string(), p.to_string(), 0);
    let mut cols = vec![c("Name", "string", ".metadata.name")];
    match (rt.group.as_str(), rt.plural.as_str()) {
        (_, _) if rt.crd => {
            if rt.columns.is_empty() {
                cols.push(c("Age", "date", ".metadata.creationTimestamp"));
            } else {
                cols.extend(rt.columns.iter().cloned());
            }
            return cols;
        }
        ("", "namespaces") => cols.push(c("Status", "string", ".status.phase")),
        ("", "configmaps") => cols.push(c("Data", "integer", "#data")),
        ("", "secrets") => {
            cols.push(c("Type", "string", ".type"));
            cols.push(c("Data", "integer", "#data"));
        }
        ("", "persistentvolumeclaims") => {
            cols.push(c("Status", "string", ".status.phase"));
            cols.push(c("Volume", "string", ".spec.volumeName"));
            cols.push(c("Capacity", "string", ".status.capacity.storage"));
            cols.push(c("StorageClass", "string", ".spec.storageClassName"));
        }
        ("", "persistentvolumes") => {
            cols.push(c("Capacity", "string", ".spec.capacity.storage"));
            cols.push(c(
                "Reclaim Policy",
                "string",
                ".spec.persistentVolumeReclaimPolicy",
            ));
            cols.push(c("Status", "string", ".status.phase"));
            cols.push(c("Claim", "string", "#claim"));
            cols.push(c("StorageClass", "string", ".spec.storageClassName"));
        }
        _ => {}
    }
    cols.push(c("Age", "date", ".metadata.creationTimestamp"));
    cols
}

fn eval(obj: &Value, path: &str, typ: &str) -> Value {
    match path {
        "#data" => json!(obj["data"].as_object().map(|m| m.len()).unwrap_or(0)),
        "#claim" => match obj["spec"]["claimRef"]["name"].as_str() {
            Some(n) => json!(format!(
                "{}/{n}",
                obj["spec"]["claimRef"]["namespace"].as_str().unwrap_or("")
            )),
            None => json!(""),
        },
        _ => {
            let v = cell(json_path(obj, path), typ);
            if v.is_null() && typ == "string" && path.starts_with(".spec") {
                json!("")
            } else {
                v
            }
        }
    }
}

/// The Table for `objects` (`include` is the `includeObject` query: None, Object, Metadata).
pub fn table(
    rt: &ResourceType,
    objects: &[Value],
    rv: &str,
    cont: Option<&Value>,
    include: &str,
) -> Value {
    let cols = columns(rt);
    let defs: Vec<Value> = cols
        .iter()
        .map(|(n, t, _, p)| {
            let (format, desc) = match n.as_str() {
                "Name" => ("name", NAME_DESC),
                _ => ("", ""),
            };
            json!({"name": n, "type": t, "format": format, "description": desc, "priority": p})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols.iter().map(|(_, t, p, _)| eval(o, p, t)).collect();
            let mut row = json!({"cells": cells});
            match include {
                "None" => {}
                "Object" => row["object"] = o.clone(),
                _ => {
                    row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                        "metadata": o["metadata"].clone()})
                }
            }
            row
        })
        .collect();
    let mut md = json!({"resourceVersion": rv});
    if let Some(c) = cont {
        md["continue"] = c.clone();
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": md, "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_paths() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600 * 3 + 60), "3h1m");
        assert_eq!(human_duration(86400 * 3), "3d");
        let o = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(&json!("True"))
        );
        assert_eq!(
            json_path(&o, ".status.conditions[0].type"),
            Some(&json!("A"))
        );
    }
}
