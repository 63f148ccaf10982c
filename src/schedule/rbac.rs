//! The scheduled backup's permissions: read-only (get/list), on exactly what `backup --kube`
//! reads, as narrow as RBAC can say it (`resourceNames`, Roles in known namespaces).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::ScheduleSpec;
use crate::kube::Cluster;
use crate::kube::catalog::Scope;

/// English plural of a kind as the API server names resources (`AuthorizationPolicy` →
/// `authorizationpolicies`), for kinds discovery does not serve yet.
fn plural(kind: &str) -> String {
    let k = kind.to_ascii_lowercase();
    if let Some(stem) = k.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        return format!("{stem}ies");
    }
    if k.ends_with('s') {
        return format!("{k}es");
    }
    format!("{k}s")
}

/// Kind and expected group → served group and plural, when discovery knows the kind.
pub type ResolveFn<'a> = dyn Fn(&str, &str) -> Option<(String, String)> + 'a;

/// Read-only permissions of the scheduled backup: rules of the ClusterRole, and rules of one
/// Role per namespace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rbac {
    pub cluster: Vec<Value>,
    pub namespaces: BTreeMap<String, Vec<Value>>,
}

/// Grants in the making: where (None: cluster-wide) → (group, resourceNames) → plurals.
type Grants = BTreeMap<Option<String>, BTreeMap<(String, Vec<String>), BTreeSet<String>>>;

/// Exactly what `backup --kube` reads, and no more (get/list only):
///
/// - the catalog's kinds; named entries (the image-builder ConfigMap and Secret) only by name
///   (`resourceNames`; the backup asks for each by a `metadata.name` field selector, which is
///   what lets RBAC authorize such a list); Secrets only when they are stored (encrypted);
/// - with `--namespaces`, namespaced kinds through a Role in each of those namespaces (and in
///   the namespaces a catalog entry names, `kubeflow`), Namespaces and Profiles by name, and
///   the claims, volumes and mounting Pods the PVC index needs;
/// - without, user namespaces are found at each run (Profiles, labelled namespaces, namespaces
///   holding Notebooks), so namespaced kinds are granted cluster-wide (never Pods: the PVC
///   index then names Notebook and Tensorboard mounters only).
pub fn rbac_rules(spec: &ScheduleSpec, resolve: &ResolveFn) -> Rbac {
    if !spec.kube {
        return Rbac::default();
    }
    let fixed = !spec.namespaces.is_empty();
    let mut grants: Grants = BTreeMap::new();
    let mut grant = |at: Option<&str>, kind: &str, group: &str, names: &[String]| {
        let (g, p) = resolve(kind, group).unwrap_or_else(|| (group.to_string(), plural(kind)));
        let mut names = names.to_vec();
        names.sort();
        grants
            .entry(at.map(str::to_string))
            .or_default()
            .entry((g, names))
            .or_default()
            .insert(p);
    };
    for e in &spec.catalog.entries {
        if e.kind == "Secret" && spec.encrypt_to.is_empty() {
            continue;
        }
        match e.scope {
            Scope::All => grant(None, &e.kind, &e.group, &e.names),
            Scope::BoundVolumes => grant(None, &e.kind, &e.group, &[]),
            Scope::UserNamespaceObjects if fixed => {
                grant(None, &e.kind, &e.group, &spec.namespaces)
            }
            Scope::UserNamespaceObjects => grant(None, &e.kind, &e.group, &[]),
            Scope::UserNamespaces if fixed => {
                let all: BTreeSet<&String> = spec.namespaces.iter().chain(&e.namespaces).collect();
                for ns in all {
                    grant(Some(ns), &e.kind, &e.group, &e.names);
                }
            }
            Scope::UserNamespaces => grant(None, &e.kind, &e.group, &e.names),
            Scope::Namespaces => {
                for ns in &e.namespaces {
                    grant(Some(ns), &e.kind, &e.group, &e.names);
                }
            }
        }
    }
    // The PVC index: claims and who mounts them, in user namespaces; their volumes.
    grant(None, "PersistentVolume", "", &[]);
    let mounters = [
        ("PersistentVolumeClaim", ""),
        ("Notebook", "kubeflow.org"),
        ("Tensorboard", "tensorboard.kubeflow.org"),
    ];
    if fixed {
        for ns in &spec.namespaces {
            for (k, g) in mounters.iter().chain(&[("Pod", "")]) {
                grant(Some(ns), k, g, &[]);
            }
        }
    } else {
        // Finding the user namespaces lists these.
        for (k, g) in mounters
            .iter()
            .chain(&[("Namespace", ""), ("Profile", "kubeflow.org")])
        {
            grant(None, k, g, &[]);
        }
    }
    let render = |rules: BTreeMap<(String, Vec<String>), BTreeSet<String>>| -> Vec<Value> {
        rules
            .into_iter()
            .map(|((g, names), resources)| {
                let mut r = json!({
                    "apiGroups": [g],
                    "resources": resources.into_iter().collect::<Vec<_>>(),
                    "verbs": ["get", "list"],
                });
                if !names.is_empty() {
                    r["resourceNames"] = json!(names);
                }
                r
            })
            .collect()
    };
    let mut out = Rbac::default();
    for (at, rules) in grants {
        match at {
            None => out.cluster = render(rules),
            Some(ns) => {
                out.namespaces.insert(ns, render(rules));
            }
        }
    }
    out
}

/// The rules with kinds resolved through the cluster's discovery where it serves them.
pub fn cluster_rules(cluster: &Cluster, spec: &ScheduleSpec) -> Rbac {
    rbac_rules(spec, &|kind, group| {
        cluster
            .resolve(kind, Some(group))
            .map(|r| (r.ar.group.clone(), r.ar.plural.clone()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::catalog::Catalog;

    #[test]
    fn plurals_follow_the_api_server() {
        assert_eq!(plural("AuthorizationPolicy"), "authorizationpolicies");
        assert_eq!(plural("Notebook"), "notebooks");
        assert_eq!(plural("Aml"), "amls");
        assert_eq!(plural("Gateway"), "gateways");
    }

    fn resources(rules: &[Value]) -> Vec<(String, Option<Value>)> {
        rules
            .iter()
            .flat_map(|r| {
                r["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| {
                        (
                            p.as_str().unwrap().to_string(),
                            r.get("resourceNames").cloned(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn secrets_are_readable_only_when_they_are_stored_encrypted_and_only_by_name() {
        let mut spec = ScheduleSpec {
            kube: true,
            catalog: Catalog::default(),
            ..Default::default()
        };
        let secrets = |spec: &ScheduleSpec| {
            resources(&rbac_rules(spec, &|_, _| None).cluster)
                .into_iter()
                .filter(|(p, _)| p == "secrets")
                .collect::<Vec<_>>()
        };
        assert!(secrets(&spec).is_empty());
        spec.encrypt_to = vec!["age1x".into()];
        assert_eq!(
            secrets(&spec),
            [(
                "secrets".to_string(),
                Some(json!(["aml-image-builder-secret"]))
            )]
        );
        let rbac = rbac_rules(&spec, &|_, _| None);
        assert!(rbac.namespaces.is_empty());
        for r in &rbac.cluster {
            assert_eq!(r["verbs"], json!(["get", "list"]));
        }
        let all = resources(&rbac.cluster);
        assert!(all.contains(&(
            "configmaps".into(),
            Some(json!(["aml-image-builder-config"]))
        )));
        assert!(!all.iter().any(|(p, _)| p == "pods"), "{all:?}");
        assert!(!all.contains(&("configmaps".into(), None)), "{all:?}");
    }

    #[test]
    fn with_namespaces_namespaced_kinds_are_granted_by_roles_in_them() {
        let spec = ScheduleSpec {
            kube: true,
            catalog: Catalog::default(),
            namespaces: vec!["team-a".into(), "team-b".into()],
            encrypt_to: vec!["age1x".into()],
            unencrypted_repo: false,
            ..Default::default()
        };
        let rbac = rbac_rules(&spec, &|_, _| None);
        assert_eq!(
            rbac.namespaces.keys().collect::<Vec<_>>(),
            ["kubeflow", "team-a", "team-b"]
        );
        let cluster = resources(&rbac.cluster);
        for p in [
            "secrets",
            "configmaps",
            "pods",
            "persistentvolumeclaims",
            "notebooks",
        ] {
            assert!(
                !cluster.iter().any(|(x, _)| x == p),
                "{p} cluster-wide: {cluster:?}"
            );
        }
        let names = json!(["team-a", "team-b"]);
        assert!(
            cluster.contains(&("namespaces".into(), Some(names.clone()))),
            "{cluster:?}"
        );
        assert!(
            cluster.contains(&("profiles".into(), Some(names))),
            "{cluster:?}"
        );
        assert!(
            cluster.contains(&("persistentvolumes".into(), None)),
            "{cluster:?}"
        );
        let kubeflow = resources(&rbac.namespaces["kubeflow"]);
        assert_eq!(
            kubeflow,
            [
                (
                    "configmaps".into(),
                    Some(json!(["aml-image-builder-config"]))
                ),
                ("secrets".into(), Some(json!(["aml-image-builder-secret"])))
            ]
        );
        let team = resources(&rbac.namespaces["team-a"]);
        assert!(team.contains(&("pods".into(), None)), "{team:?}");
        assert!(team.contains(&("secrets".into(), Some(json!(["aml-image-builder-secret"])))));
    }
}
