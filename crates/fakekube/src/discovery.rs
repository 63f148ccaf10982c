//! The resource types the fake serves (built-ins and CRDs) and the discovery documents.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

/// One served resource (a `group/plural`), possibly under several versions (CRDs).
#[derive(Clone, Debug)]
pub struct ResourceType {
    pub group: String,
    /// Served versions; the first is the preferred/storage one.
    pub versions: Vec<String>,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub has_status: bool,
    /// metadata.generation is maintained (CRs, workloads; not for configmaps, PVs, ...).
    pub generation: bool,
    /// Defined by a CustomResourceDefinition (no strategic merge patch).
    pub crd: bool,
    /// CRD additionalPrinterColumns: (name, type, jsonPath, priority).
    pub columns: Vec<(String, String, String, i64)>,
    pub verbs: Vec<&'static str>,
    /// CRD `openAPIV3Schema` per served version (absent for built-ins: no pruning).
    pub schemas: BTreeMap<String, Arc<Value>>,
}

pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceType {
    /// `plural.group` (`plural` for core).
    pub fn qualified(&self) -> String {
        crate::status::qualified(&self.group, &self.plural)
    }
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }
    pub fn preferred_api_version(&self) -> String {
        self.api_version(&self.versions[0])
    }
    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }
    /// The structural schema of `version` ("" = the preferred one), if the CRD has one.
    pub fn schema(&self, version: &str) -> Option<&Value> {
        let v = if version.is_empty() {
            &self.versions[0]
        } else {
            version
        };
        self.schemas.get(v).map(|s| s.as_ref())
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short: &[&str],
    status: bool,
    generation: bool,
    categories: &[&str],
) -> ResourceType {
    ResourceType {
        group: group.into(),
        versions: vec![version.into()],
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: categories.iter().map(|s| s.to_string()).collect(),
        has_status: status,
        generation,
        crd: false,
        columns: vec![],
        verbs: VERBS.to_vec(),
        schemas: BTreeMap::new(),
    }
}

/// The built-in kinds (a subset of a 1.32 cluster, with the real short names and subresources).
pub fn builtins() -> Vec<ResourceType> {
    let all = &["all"][..];
    let mut v = vec![
        builtin(
            "",
            "v1",
            "Namespace",
            "namespaces",
            false,
            &["ns"],
            true,
            false,
            &[],
        ),
        builtin("", "v1", "Node", "nodes", false, &["no"], true, false, &[]),
        builtin(
            "",
            "v1",
            "PersistentVolume",
            "persistentvolumes",
            false,
            &["pv"],
            true,
            false,
            &[],
        ),
        builtin(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            &["pvc"],
            true,
            false,
            &[],
        ),
        builtin(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            &["cm"],
            false,
            false,
            &[],
        ),
        builtin("", "v1", "Secret", "secrets", true, &[], false, false, &[]),
        builtin(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            &["sa"],
            false,
            false,
            &[],
        ),
        builtin("", "v1", "Pod", "pods", true, &["po"], true, false, all),
        builtin(
            "",
            "v1",
            "Service",
            "services",
            true,
            &["svc"],
            true,
            false,
            all,
        ),
        builtin(
            "",
            "v1",
            "Event",
            "events",
            true,
            &["ev"],
            false,
            false,
            &[],
        ),
        builtin(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            &["deploy"],
            true,
            true,
            all,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
            false,
            false,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            &[],
            false,
            false,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            &[],
            false,
            false,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            &[],
            false,
            false,
            &[],
        ),
        builtin(
            "batch",
            "v1",
            "CronJob",
            "cronjobs",
            true,
            &["cj"],
            true,
            true,
            all,
        ),
        builtin("batch", "v1", "Job", "jobs", true, &[], true, true, all),
        builtin(
            "storage.k8s.io",
            "v1",
            "StorageClass",
            "storageclasses",
            false,
            &["sc"],
            false,
            false,
            &[],
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            true,
            true,
            &[],
        ),
    ];
    // Namespaces and nodes cannot be deleted as a collection on a real server.
    for rt in v.iter_mut() {
        if rt.plural == "namespaces" {
            rt.verbs = vec![
                "create", "delete", "get", "list", "patch", "update", "watch",
            ];
        }
    }
    v
}

/// Builds the resource type a CustomResourceDefinition object declares.
pub fn from_crd(crd: &Value) -> Result<ResourceType, String> {
    let spec = &crd["spec"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let group = s(&spec["group"]);
    let names = &spec["names"];
    let kind = s(&names["kind"]);
    let plural = s(&names["plural"]);
    if group.is_empty() || kind.is_empty() || plural.is_empty() {
        return Err("spec.group, spec.names.kind and spec.names.plural are required".into());
    }
    let mut singular = s(&names["singular"]);
    if singular.is_empty() {
        singular = kind.to_lowercase();
    }
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut versions = Vec::new();
    let mut has_status = false;
    let mut columns = Vec::new();
    let mut schemas = BTreeMap::new();
    for ver in spec["versions"].as_array().into_iter().flatten() {
        if ver["served"] == json!(false) {
            continue;
        }
        let name = s(&ver["name"]);
        let schema = &ver["schema"]["openAPIV3Schema"];
        if schema.is_object() {
            schemas.insert(name.clone(), Arc::new(schema.clone()));
        }
        let storage = ver["storage"] == json!(true);
        if storage {
            versions.insert(0, name);
            has_status |= ver["subresources"]["status"].is_object();
            for c in ver["additionalPrinterColumns"]
                .as_array()
                .into_iter()
                .flatten()
            {
                columns.push((
                    s(&c["name"]),
                    s(&c["type"]),
                    s(&c["jsonPath"]),
                    c["priority"].as_i64().unwrap_or(0),
                ));
            }
        } else {
            versions.push(name);
        }
    }
    if versions.is_empty() {
        return Err("spec.versions must have a served version".into());
    }
    Ok(ResourceType {
        group,
        versions,
        kind,
        plural,
        singular,
        namespaced: spec["scope"].as_str() != Some("Cluster"),
        short_names: list(&names["shortNames"]),
        categories: list(&names["categories"]),
        has_status,
        generation: true,
        crd: true,
        columns,
        verbs: VERBS.to_vec(),
        schemas,
    })
}

/// `GET /api`.
pub fn api_versions(host: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
}

/// `GET /apis`: every non-core group with its versions.
pub fn api_group_list<'a>(types: impl Iterator<Item = &'a ResourceType>) -> Value {
    let groups = group_versions(types);
    let groups: Vec<Value> = groups.iter().map(|(g, vs)| api_group(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group_versions<'a>(
    types: impl Iterator<Item = &'a ResourceType>,
) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rt in types.filter(|rt| !rt.group.is_empty()) {
        let e = groups.entry(rt.group.clone()).or_default();
        for v in &rt.versions {
            if !e.contains(v) {
                e.push(v.clone());
            }
        }
    }
    // Preferred first: the highest "kube-like" version (v1 > v1beta1 > v1alpha1).
    for vs in groups.values_mut() {
        vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    }
    groups
}

fn version_priority(v: &str) -> (u32, u32, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let num: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major = num.parse().unwrap_or(0);
    let tail = &rest[num.len()..];
    let (stage, n) = if let Some(t) = tail.strip_prefix("beta") {
        (1, t.parse().unwrap_or(0))
    } else if let Some(t) = tail.strip_prefix("alpha") {
        (0, t.parse().unwrap_or(0))
    } else {
        (2, 0)
    };
    (stage, major, n)
}

pub fn api_group(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": vs, "preferredVersion": vs[0].clone()})
}

/// `GET /api/v1` or `/apis/<group>/<version>`.
pub fn api_resource_list<'a>(
    group: &str,
    version: &str,
    types: impl Iterator<Item = &'a ResourceType>,
) -> Value {
    let mut resources = Vec::new();
    for rt in types.filter(|rt| rt.group == group && rt.serves(version)) {
        let mut r = json!({
            "name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
            "kind": rt.kind, "verbs": rt.verbs,
        });
        if !rt.short_names.is_empty() {
            r["shortNames"] = json!(rt.short_names);
        }
        if !rt.categories.is_empty() {
            r["categories"] = json!(rt.categories);
        }
        resources.push(r);
        if rt.has_status {
            resources.push(
                json!({"name": format!("{}/status", rt.plural), "singularName": "",
                "namespaced": rt.namespaced, "kind": rt.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
    }
    resources.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

pub fn version() -> Value {
    json!({
        "major": "1", "minor": "32", "gitVersion": "v1.32.4-fakekube", "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.8",
        "compiler": "gc", "platform": "linux/amd64"
    })
}
