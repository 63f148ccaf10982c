//! RBAC authorization of service accounts, as kube-apiserver's RBAC authorizer decides it
//! (k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac): a request is allowed when a
//! ClusterRoleBinding, or a RoleBinding in the request's namespace, binds the account (by
//! ServiceAccount subject or one of its groups) to a role with a rule matching the verb, API
//! group, resource and, when the rule lists `resourceNames`, the name. A `list` or `watch`
//! matches `resourceNames` only with a `metadata.name=<name>` field selector, as the real
//! server has done since 1.x. Only users named `system:serviceaccount:<ns>:<name>` are
//! authorized this way; the other test users keep the `deny` rules.

use serde_json::Value;

use crate::store::{ListQuery, Store};

const RBAC: &str = "rbac.authorization.k8s.io";

/// One request as the authorizer sees it.
pub struct Attributes<'a> {
    pub user: &'a str,
    pub verb: &'a str,
    pub group: &'a str,
    /// `plural` or `plural/subresource`.
    pub resource: &'a str,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    /// The raw `fieldSelector` of a list or watch.
    pub field_selector: Option<&'a str>,
}

/// `(namespace, name)` of a service account user.
pub fn service_account(user: &str) -> Option<(&str, &str)> {
    user.strip_prefix("system:serviceaccount:")?.split_once(':')
}

fn items(s: &Store, plural: &str, ns: Option<&str>) -> Vec<Value> {
    let Some(rt) = s.resolve(RBAC, "v1", plural) else {
        return Vec::new();
    };
    s.list(&rt, ns, &ListQuery::default(), "v1")
        .ok()
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn binds(binding: &Value, sa_ns: &str, sa_name: &str) -> bool {
    let groups = [
        "system:serviceaccounts".to_string(),
        format!("system:serviceaccounts:{sa_ns}"),
        "system:authenticated".to_string(),
    ];
    binding["subjects"].as_array().is_some_and(|subjects| {
        subjects.iter().any(|s| match s["kind"].as_str() {
            Some("ServiceAccount") => s["namespace"] == sa_ns && s["name"] == sa_name,
            Some("Group") => s["name"]
                .as_str()
                .is_some_and(|g| groups.iter().any(|x| x == g)),
            _ => false,
        })
    })
}

fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let any = |field: &str, want: &str| strs(&rule[field]).iter().any(|v| *v == "*" || *v == want);
    if !(any("verbs", a.verb) && any("apiGroups", a.group) && any("resources", a.resource)) {
        return false;
    }
    let names = strs(&rule["resourceNames"]);
    if names.is_empty() {
        return true;
    }
    let name = match a.verb {
        "list" | "watch" => a.field_selector.and_then(|f| {
            f.split(',')
                .filter_map(|t| t.trim().strip_prefix("metadata.name="))
                .next()
        }),
        _ => a.name,
    };
    name.is_some_and(|n| names.contains(&n))
}

/// Whether RBAC allows the request (only asked for service accounts).
pub fn allows(s: &Store, a: &Attributes) -> bool {
    let Some((sa_ns, sa_name)) = service_account(a.user) else {
        return true;
    };
    let role_rules = |kind: &str, name: &str, ns: Option<&str>| -> Vec<Value> {
        let plural = if kind == "ClusterRole" {
            "clusterroles"
        } else {
            "roles"
        };
        items(s, plural, if kind == "ClusterRole" { None } else { ns })
            .into_iter()
            .find(|r| r["metadata"]["name"] == name)
            .and_then(|r| r["rules"].as_array().cloned())
            .unwrap_or_default()
    };
    let mut bindings: Vec<(Value, Option<String>)> = items(s, "clusterrolebindings", None)
        .into_iter()
        .map(|b| (b, None))
        .collect();
    if let Some(ns) = a.namespace {
        bindings.extend(
            items(s, "rolebindings", Some(ns))
                .into_iter()
                .map(|b| (b, Some(ns.to_string()))),
        );
    }
    bindings.iter().any(|(b, ns)| {
        binds(b, sa_ns, sa_name)
            && b["roleRef"]["apiGroup"] == RBAC
            && role_rules(
                b["roleRef"]["kind"].as_str().unwrap_or(""),
                b["roleRef"]["name"].as_str().unwrap_or(""),
                ns.as_deref(),
            )
            .iter()
            .any(|r| rule_allows(r, a))
    })
}
