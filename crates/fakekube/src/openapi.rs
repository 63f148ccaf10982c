//! A minimal OpenAPI v3: just enough for kubectl. kubectl 1.32 validates by asking whether the
//! PATCH operation of a kind accepts the `fieldValidation` query parameter (then it lets the
//! server validate); without `/openapi/v3` it falls back to `/openapi/v2` and, on 404, fails
//! with "failed to download openapi". No schemas are served (`components.schemas` is empty), so
//! `kubectl apply` computes strategic merge patches from its compiled-in types.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use serde_json::{Value, json};

use crate::discovery::ResourceType;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn by_gv<'a>(
    types: impl Iterator<Item = &'a ResourceType>,
) -> BTreeMap<String, Vec<(&'a ResourceType, String)>> {
    let mut m: BTreeMap<String, Vec<(&ResourceType, String)>> = BTreeMap::new();
    for rt in types {
        for v in &rt.versions {
            m.entry(gv_path(&rt.group, v))
                .or_default()
                .push((rt, v.clone()));
        }
    }
    m
}

fn hash(items: &[(&ResourceType, String)]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (rt, v) in items {
        (&rt.plural, &rt.kind, v, rt.namespaced).hash(&mut h);
    }
    format!("{:016X}", h.finish())
}

/// `GET /openapi/v3`.
pub fn root<'a>(types: impl Iterator<Item = &'a ResourceType>) -> Value {
    let paths: serde_json::Map<String, Value> = by_gv(types)
        .iter()
        .map(|(gv, items)| {
            (
                gv.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={}", hash(items))}),
            )
        })
        .collect();
    json!({"paths": paths})
}

/// `GET /openapi/v3/<api/v1 | apis/group/version>`.
pub fn group_version<'a>(gv: &str, types: impl Iterator<Item = &'a ResourceType>) -> Option<Value> {
    let all = by_gv(types);
    let items = all.get(gv)?;
    let mut paths = serde_json::Map::new();
    for (rt, v) in items {
        let base = if rt.namespaced {
            format!("/{gv}/namespaces/{{namespace}}/{}/{{name}}", rt.plural)
        } else {
            format!("/{gv}/{}/{{name}}", rt.plural)
        };
        let gvk = json!({"group": rt.group, "version": v, "kind": rt.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}
        ]);
        let op = |id: &str| {
            json!({"operationId": format!("{id}{}", rt.kind), "x-kubernetes-action": id,
                   "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": {}})
        };
        paths.insert(base, json!({"get": op("read"), "put": op("replace"), "patch": op("patch"), "delete": op("delete")}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.4"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
