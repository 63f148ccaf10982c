//! Structural schemas of CustomResourceDefinitions, applied to every write as kube-apiserver
//! applies them: unknown fields are pruned (reported per `fieldValidation`), `null`s of
//! non-nullable fields are dropped, defaults are filled in, then types, `required`, `enum`,
//! lengths and bounds are validated (422 Invalid with the real field paths and messages).
//!
//! Pruning rules (k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning): in an object,
//! a key survives if `properties` names it, if `additionalProperties` is a schema (or `true`),
//! or if `x-kubernetes-preserve-unknown-fields: true` (then a key the schema does not name keeps
//! its whole subtree). An object schema with none of these keeps nothing. Arrays apply `items`
//! to each element. `apiVersion`, `kind` and `metadata` at the root (and in
//! `x-kubernetes-embedded-resource` objects) are never pruned.

use serde_json::{Map, Value};

/// The `fieldValidation` query parameter of writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop unknown fields silently.
    Ignore,
    /// Drop them and answer a `Warning` header per field (the server's default).
    #[default]
    Warn,
    /// Refuse the request (400).
    Strict,
}

impl FieldValidation {
    pub fn parse(s: Option<&str>) -> Result<FieldValidation, String> {
        match s.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            )),
        }
    }
}

/// One validation failure: (Status cause reason, field path, message).
pub type Failure = (&'static str, String, String);

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// Removes every field `schema` does not allow from `obj` (the whole object, root level);
/// returns the paths removed, in document order (`spec.values.foo`, `spec.items[0].bar`).
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut removed = vec![];
    prune_object(schema, obj, "", true, &mut removed);
    removed
}

fn prune_object(schema: &Value, v: &mut Value, path: &str, root: bool, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
            let embedded = root || flag(schema, "x-kubernetes-embedded-resource");
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let sub = props
                    .and_then(|p| p.get(&k))
                    .or(additional.filter(|a| a.is_object()));
                let p = join(path, &k);
                match sub {
                    Some(sub) => {
                        if m[&k].is_null() && !flag(sub, "nullable") {
                            m.remove(&k);
                        } else {
                            prune_object(sub, m.get_mut(&k).unwrap(), &p, false, out);
                        }
                    }
                    None if preserve || additional == Some(&Value::Bool(true)) => {}
                    None => {
                        m.remove(&k);
                        out.push(p);
                    }
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for (i, e) in a.iter_mut().enumerate() {
                    prune_object(items, e, &format!("{path}[{i}]"), false, out);
                }
            }
        }
        _ => {}
    }
}

/// Fills in `default`s of absent properties (recursively, also into items and maps).
pub fn apply_defaults(schema: &Value, v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, sub) in props {
                    if !m.contains_key(k)
                        && let Some(d) = sub.get("default")
                    {
                        m.insert(k.clone(), d.clone());
                    }
                    if let Some(child) = m.get_mut(k) {
                        apply_defaults(sub, child);
                    }
                }
            }
            if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                let named = schema.get("properties").and_then(Value::as_object);
                for (k, child) in m.iter_mut() {
                    if named.is_none_or(|n| !n.contains_key(k)) {
                        apply_defaults(add, child);
                    }
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for e in a {
                    apply_defaults(items, e);
                }
            }
        }
        _ => {}
    }
}

/// JSON type name as kube-openapi prints it.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(want: &str, v: &Value, int_or_string: bool) -> bool {
    let got = type_name(v);
    if int_or_string {
        return matches!(got, "integer" | "string");
    }
    match want {
        "" => true,
        "number" => matches!(got, "number" | "integer"),
        w => w == got,
    }
}

/// How a value appears in `Invalid value: …` (Go's %#v of the decoded value, roughly).
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) | Value::Array(_) => format!("{:?}", type_name(v)),
        other => other.to_string(),
    }
}

/// Validates the whole object (root level: apiVersion, kind and metadata are skipped).
pub fn validate(schema: &Value, obj: &Value) -> Vec<Failure> {
    let mut out = vec![];
    validate_at(schema, obj, "", true, &mut out);
    out
}

fn validate_at(schema: &Value, v: &Value, path: &str, root: bool, out: &mut Vec<Failure>) {
    let want = schema.get("type").and_then(Value::as_str).unwrap_or("");
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    if v.is_null() && flag(schema, "nullable") {
        return;
    }
    if !type_ok(want, v, int_or_string) {
        let got = type_name(v);
        out.push((
            "FieldValueTypeInvalid",
            path.to_string(),
            format!("Invalid value: {got:?}: {path} in body must be of type {want}: {got:?}"),
        ));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(shown).collect();
        out.push((
            "FieldValueNotSupported",
            path.to_string(),
            format!(
                "Unsupported value: {}: supported values: {}",
                shown(v),
                list.join(", ")
            ),
        ));
    }
    let num = |k: &str| schema.get(k).and_then(Value::as_f64);
    match v {
        Value::String(s) => {
            let n = s.chars().count() as f64;
            if let Some(min) = num("minLength").filter(|m| n < *m) {
                out.push((
                    "FieldValueInvalid",
                    path.to_string(),
                    format!(
                        "Invalid value: {}: {path} in body should be at least {min} chars long",
                        shown(v)
                    ),
                ));
            }
            if let Some(max) = num("maxLength").filter(|m| n > *m) {
                out.push((
                    "FieldValueTooLong",
                    path.to_string(),
                    format!("Too long: may not be more than {max} bytes"),
                ));
            }
        }
        Value::Number(x) => {
            let x = x.as_f64().unwrap_or(0.0);
            if let Some(min) = num("minimum").filter(|m| x < *m) {
                out.push((
                    "FieldValueInvalid",
                    path.to_string(),
                    format!(
                        "Invalid value: {}: {path} in body should be greater than or equal to {min}",
                        shown(v)
                    ),
                ));
            }
            if let Some(max) = num("maximum").filter(|m| x > *m) {
                out.push((
                    "FieldValueInvalid",
                    path.to_string(),
                    format!(
                        "Invalid value: {}: {path} in body should be less than or equal to {max}",
                        shown(v)
                    ),
                ));
            }
        }
        Value::Object(m) => validate_object(schema, m, path, root, out),
        Value::Array(a) => {
            if let Some(min) = num("minItems").filter(|m| (a.len() as f64) < *m) {
                out.push((
                    "FieldValueInvalid",
                    path.to_string(),
                    format!(
                        "Invalid value: {}: {path} in body should have at least {min} items",
                        a.len()
                    ),
                ));
            }
            if let Some(items) = schema.get("items") {
                for (i, e) in a.iter().enumerate() {
                    validate_at(items, e, &format!("{path}[{i}]"), false, out);
                }
            }
        }
        _ => {}
    }
}

fn validate_object(
    schema: &Value,
    m: &Map<String, Value>,
    path: &str,
    root: bool,
    out: &mut Vec<Failure>,
) {
    for r in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if root && matches!(r, "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if !m.contains_key(r) {
            out.push((
                "FieldValueRequired",
                join(path, r),
                "Required value".to_string(),
            ));
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (k, child) in m {
        if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(sub) = props.and_then(|p| p.get(k)).or(additional) {
            validate_at(sub, child, &join(path, k), false, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["version"], "properties": {
                "version": {"type": "string", "minLength": 1},
                "port": {"type": "integer", "default": 5432, "minimum": 1},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                           "properties": {"known": {"type": "object", "properties": {"x": {"type": "boolean"}}}}},
                "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "opt": {"type": "string"},
                "nil": {"type": "string", "nullable": true},
            }},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        }})
    }

    #[test]
    fn unknown_fields_go_known_and_preserved_ones_stay() {
        let mut o = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "odd": 1},
            "spec": {"version": "v1", "verison": "typo", "labels": {"a": "b"},
                     "config": {"anything": {"deep": 1}, "known": {"x": true, "y": 2}},
                     "items": [{"name": "a", "nmae": "b"}], "opt": null, "nil": null},
            "status": {"whatever": [1]}, "extra": 1});
        let removed = prune(&schema(), &mut o);
        assert_eq!(
            removed,
            [
                "extra",
                "spec.config.known.y",
                "spec.items[0].nmae",
                "spec.verison"
            ]
        );
        assert_eq!(o["metadata"]["odd"], 1, "metadata is never pruned");
        assert_eq!(o["spec"]["config"]["anything"]["deep"], 1);
        assert!(o["spec"].get("opt").is_none(), "a non-nullable null goes");
        assert!(o["spec"]["nil"].is_null() && o["spec"].get("nil").is_some());
        assert_eq!(o["status"]["whatever"], json!([1]));
    }

    #[test]
    fn defaults_then_validation_with_real_messages() {
        let mut o = json!({"spec": {"version": "", "mode": "c", "labels": {"a": 1}, "items": "x"}});
        apply_defaults(&schema(), &mut o);
        assert_eq!(o["spec"]["port"], 5432);
        let f = validate(&schema(), &o);
        let msgs: Vec<String> = f.iter().map(|(_, p, m)| format!("{p}: {m}")).collect();
        assert!(
            msgs.contains(&r#"spec.items: Invalid value: "string": spec.items in body must be of type array: "string""#.to_string()),
            "{msgs:?}"
        );
        assert!(
            msgs.contains(
                &r#"spec.mode: Unsupported value: "c": supported values: "a", "b""#.to_string()
            ),
            "{msgs:?}"
        );
        assert!(msgs.contains(&r#"spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer""#.to_string()), "{msgs:?}");
        assert!(msgs.contains(&r#"spec.version: Invalid value: "": spec.version in body should be at least 1 chars long"#.to_string()), "{msgs:?}");
        let f = validate(&schema(), &json!({"spec": {"port": 0}}));
        assert_eq!(
            f[0],
            (
                "FieldValueRequired",
                "spec.version".into(),
                "Required value".into()
            )
        );
        assert!(
            f[1].2.contains("should be greater than or equal to 1"),
            "{f:?}"
        );
    }

    #[test]
    fn an_object_schema_without_properties_keeps_nothing() {
        let mut o = json!({"metadata": {"name": "x"}, "spec": {"a": 1}});
        assert_eq!(prune(&json!({"type": "object"}), &mut o), ["spec"]);
        assert_eq!(o, json!({"metadata": {"name": "x"}}));
    }
}
