//! What a restore may write. A snapshot is untrusted input: whoever can write the bucket can
//! rewrite `objects.json` and the YAML files (and recompute their hashes), so every object is
//! checked against the catalog in use, which is the operator's, before anything is applied:
//!
//! - its kind is in the catalog (same cluster, same group or another custom one), and the
//!   catalog's entry, not the snapshot, says whether it is restored and in which order;
//! - the YAML says exactly what `objects.json` says (apiVersion, kind, namespace, name) and
//!   lives at the path that identity gives; no identity appears twice;
//! - a namespaced object lives in one of the snapshot's user namespaces (never `kube-*`) or a
//!   namespace its catalog entry names; a `user-namespace-objects` kind (Namespace, Profile) is
//!   named after a user namespace; names and label selectors of the entry hold;
//! - a Secret is stored encrypted, and nothing else is;
//! - a PersistentVolume is bound (its `claimRef`) to a claim this restore restores, which
//!   names it (`spec.volumeName`);
//! - every namespace and name follows Kubernetes' rule for its kind, and so do the names a
//!   claim or volume refers to (`spec.volumeName`, `spec.claimRef`): they become request paths.
//!
//! Broken identity or encryption, or a name no API server serves, means the snapshot was
//! altered: damaged. Anything else the catalog does not allow is refused. The checks that need
//! the cluster (scope as discovery serves it, whether an existing namespace is a user
//! namespace) are in `restore.rs`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::backup::StoredObject;
use super::catalog::{Catalog, Entry, Scope};
use super::objects::{entry_path, from_yaml};
use super::secrets::Identities;
use super::{Role, group_of, name_of, names, namespace_of, str_at};
use crate::error::Result;

/// Namespaces no snapshot may restore into, whatever it claims.
pub const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease"];

/// An object the restore will apply.
pub struct Admitted<'a> {
    pub stored: &'a StoredObject,
    pub entry: &'a Entry,
    /// The object as stored; `None` when it is encrypted and no identity was given.
    pub object: Option<Value>,
}

/// An object the restore will not apply, and why.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub stored: StoredObject,
    pub reason: String,
    /// The snapshot contradicts itself (altered): exit 3 rather than 4.
    pub damaged: bool,
}

pub struct Admission<'a> {
    pub admitted: Vec<Admitted<'a>>,
    pub refused: Vec<Refusal>,
}

/// What the operator asked for, and what the snapshot says its user namespaces are.
pub struct Request<'a> {
    pub catalog: &'a Catalog,
    pub user_namespaces: &'a BTreeSet<String>,
    /// `--kinds` (empty: every kind the catalog restores).
    pub kinds: &'a [String],
    /// `--namespaces` (empty: all).
    pub namespaces: &'a [String],
    /// Only objects of this cluster (None: both); the others are neither checked nor written.
    pub cluster: Option<Role>,
    pub identities: Option<&'a Identities>,
}

impl Request<'_> {
    fn wants_kind(&self, kind: &str) -> bool {
        self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind)
    }

    fn selected(&self, s: &StoredObject, entry: &Entry) -> bool {
        (entry.restore || self.kinds.iter().any(|k| k == &s.kind))
            && self.wants_kind(&s.kind)
            && (self.namespaces.is_empty()
                || match &s.namespace {
                    Some(ns) => self.namespaces.contains(ns),
                    None => {
                        entry.scope != Scope::UserNamespaceObjects
                            || self.namespaces.contains(&s.name)
                    }
                })
    }
}

/// Checks every object of the snapshot that the request selects. `files` are the part's
/// entries by path.
pub fn admit<'a>(
    stored: &'a [StoredObject],
    files: &BTreeMap<String, Vec<u8>>,
    req: &'a Request<'a>,
) -> Result<Admission<'a>> {
    let mut admitted: Vec<Admitted<'a>> = Vec::new();
    let mut refused = Vec::new();
    let mut seen_paths = BTreeSet::new();
    let mut seen_ids = BTreeSet::new();
    for s in stored {
        let refuse = |reason: String, damaged: bool| Refusal {
            stored: s.clone(),
            reason,
            damaged,
        };
        if req.cluster.is_some_and(|c| c != s.cluster) {
            continue;
        }
        // Before anything else looks at them: a name no API server serves was put there.
        if let Err(reason) = name_rules(s) {
            refused.push(refuse(reason, true));
            continue;
        }
        let Some(entry) = req.catalog.entry_for(s.cluster, &s.kind, &s.group) else {
            if req.wants_kind(&s.kind) {
                refused.push(refuse(
                    format!(
                        "kind {} ({}) of the {} cluster is not in the catalog in use; only the \
                         catalog's kinds are restored (give the catalog the backup used with \
                         --kube-catalog)",
                        s.kind,
                        if s.group.is_empty() { "core" } else { &s.group },
                        s.cluster
                    ),
                    false,
                ));
            }
            continue;
        };
        if !req.selected(s, entry) {
            continue;
        }
        let identity = (
            s.cluster,
            s.group.clone(),
            s.kind.clone(),
            s.namespace.clone(),
            s.name.clone(),
        );
        if !seen_paths.insert(s.path.clone()) || !seen_ids.insert(identity) {
            refused.push(refuse("listed twice in objects.json".into(), true));
            continue;
        }
        match check(s, entry, files, req)? {
            Ok(object) => admitted.push(Admitted {
                stored: s,
                entry,
                object,
            }),
            Err((reason, damaged)) => refused.push(refuse(reason, damaged)),
        }
    }
    // Volumes last: each must belong to a claim admitted above.
    refuse_unbound_volumes(stored, req, &mut admitted, &mut refused);
    Ok(Admission { admitted, refused })
}

/// Removes from `admitted` each PersistentVolume not bound to an admitted claim that names
/// it; one whose claim `--namespaces` leaves out goes silently, the others are refused.
fn refuse_unbound_volumes(
    stored: &[StoredObject],
    req: &Request,
    admitted: &mut Vec<Admitted<'_>>,
    refused: &mut Vec<Refusal>,
) {
    let claims: BTreeMap<(&str, &str), Option<&str>> = admitted
        .iter()
        .filter(|a| a.stored.kind == "PersistentVolumeClaim" && a.stored.group.is_empty())
        .filter_map(|a| {
            let ns = a.stored.namespace.as_deref()?;
            let vol = a.object.as_ref().and_then(|o| str_at(o, "spec.volumeName"));
            Some(((ns, a.stored.name.as_str()), vol))
        })
        .collect();
    // Claims the snapshot lists but `--namespaces` leaves out take their volumes with them.
    let filtered_out = |ns: &str, name: &str| {
        !req.namespaces.is_empty()
            && !req.namespaces.iter().any(|n| n == ns)
            && stored.iter().any(|c| {
                c.kind == "PersistentVolumeClaim"
                    && c.group.is_empty()
                    && c.namespace.as_deref() == Some(ns)
                    && c.name == name
            })
    };
    let mut unbound = Vec::new();
    for (i, a) in admitted.iter().enumerate() {
        if a.entry.scope != Scope::BoundVolumes {
            continue;
        }
        let Some(pv) = &a.object else { continue };
        let claim = (
            str_at(pv, "spec.claimRef.namespace").unwrap_or(""),
            str_at(pv, "spec.claimRef.name").unwrap_or(""),
        );
        match claims.get(&claim) {
            Some(v) if *v == Some(a.stored.name.as_str()) => {}
            None if filtered_out(claim.0, claim.1) => unbound.push((i, None)),
            found => unbound.push((
                i,
                Some(match (claim.1.is_empty(), found) {
                    (true, _) => "a PersistentVolume is restored only bound to a claim this \
                                  restore restores; this one names no claim (spec.claimRef)"
                        .to_string(),
                    (false, Some(_)) => format!(
                        "its claim {}/{} names another volume (spec.volumeName)",
                        claim.0, claim.1
                    ),
                    (false, None) => format!(
                        "a PersistentVolume is restored only bound to a claim this restore \
                         restores, and its claim {}/{} is not one (add PersistentVolumeClaim to \
                         --kinds if the snapshot holds it)",
                        claim.0, claim.1
                    ),
                }),
            )),
        }
    }
    for (i, reason) in unbound.into_iter().rev() {
        let a = admitted.remove(i);
        if let Some(reason) = reason {
            refused.push(Refusal {
                stored: a.stored.clone(),
                reason,
                damaged: false,
            });
        }
    }
}

type Refused = (String, bool);

/// The stored object, decrypted and parsed, when it passes every rule that needs no cluster.
/// The outer error is the operator's (a wrong identity file), not the snapshot's.
fn check(
    s: &StoredObject,
    entry: &Entry,
    files: &BTreeMap<String, Vec<u8>>,
    req: &Request,
) -> Result<std::result::Result<Option<Value>, Refused>> {
    if let Err(r) = stored_rules(s).and_then(|()| namespace_rules(s, entry, req)) {
        return Ok(Err(r));
    }
    let Some(raw) = files.get(&s.path) else {
        return Ok(Err((
            "listed in objects.json but not in the part".into(),
            true,
        )));
    };
    let text = if s.encrypted {
        let Some(ids) = req.identities else {
            return Ok(Ok(None));
        };
        match ids.decrypt(raw, &s.path) {
            Ok(t) => t,
            Err(e) if e.kind() == crate::ErrorKind::Damaged => {
                return Ok(Err((e.to_string(), true)));
            }
            Err(e) => return Err(e),
        }
    } else {
        raw.clone()
    };
    Ok(parse_and_match(s, entry, text).map(Some))
}

/// The namespace and name follow Kubernetes' rules for the kind (see `names.rs`).
fn name_rules(s: &StoredObject) -> std::result::Result<(), String> {
    if let Some(ns) = &s.namespace {
        names::namespace(ns)?;
    }
    names::object_name(&s.kind, &s.group, &s.name)
}

/// Names inside an object that become request paths: a claim's volume, a volume's claim.
fn reference_rules(s: &StoredObject, obj: &Value) -> std::result::Result<(), String> {
    let core = |kind: &str| s.kind == kind && s.group.is_empty();
    let check = |path: &str, f: fn(&str) -> std::result::Result<(), String>| match str_at(obj, path)
    {
        Some(v) if !v.is_empty() => f(v).map_err(|e| format!("{path}: {e}")),
        _ => Ok(()),
    };
    if core("PersistentVolumeClaim") {
        check("spec.volumeName", |v| {
            names::object_name("PersistentVolume", "", v)
        })?;
    }
    if core("PersistentVolume") {
        check("spec.claimRef.namespace", names::namespace)?;
        check("spec.claimRef.name", |v| {
            names::object_name("PersistentVolumeClaim", "", v)
        })?;
    }
    Ok(())
}

/// Encryption, path and group agree with the identity `objects.json` gives.
fn stored_rules(s: &StoredObject) -> std::result::Result<(), Refused> {
    let damaged = |m: String| Err((m, true));
    let secret = s.kind == "Secret" && s.group.is_empty();
    if secret && !s.encrypted {
        return damaged(
            "a Secret stored in clear: backups store Secrets only encrypted (--encrypt-to), so \
             this one was put there by someone else"
                .into(),
        );
    }
    if s.encrypted && !secret {
        return damaged(format!("a {} stored encrypted: only Secrets are", s.kind));
    }
    let want_path = entry_path(
        s.cluster,
        &s.group,
        &s.plural,
        s.namespace.as_deref(),
        &s.name,
    ) + if s.encrypted { ".age" } else { "" };
    if s.path != want_path {
        return damaged(format!(
            "stored at {} but its identity says {want_path}",
            s.path
        ));
    }
    if group_of(&s.api_version) != s.group {
        return damaged(format!(
            "apiVersion {} is not of group {:?}",
            s.api_version, s.group
        ));
    }
    Ok(())
}

/// The YAML is one object whose identity is the one `objects.json` lists, and it matches the
/// entry's label selector.
fn parse_and_match(
    s: &StoredObject,
    entry: &Entry,
    text: Vec<u8>,
) -> std::result::Result<Value, Refused> {
    let damaged = |m: String| (m, true);
    let text = String::from_utf8(text).map_err(|_| damaged("not UTF-8 YAML".into()))?;
    let obj = from_yaml(&text, &s.path).map_err(|e| damaged(e.to_string()))?;
    let said = (
        obj.get("apiVersion").and_then(Value::as_str),
        obj.get("kind").and_then(Value::as_str),
        namespace_of(&obj),
        name_of(&obj),
    );
    let listed = (
        Some(s.api_version.as_str()),
        Some(s.kind.as_str()),
        s.namespace.as_deref(),
        s.name.as_str(),
    );
    if said != listed {
        let show = |(av, k, ns, n): (Option<&str>, Option<&str>, Option<&str>, &str)| {
            format!(
                "{} {} {}{n}",
                av.unwrap_or("?"),
                k.unwrap_or("?"),
                ns.map(|n| format!("{n}/")).unwrap_or_default()
            )
        };
        return Err(damaged(format!(
            "its YAML is {} but objects.json lists {}",
            show(said),
            show(listed)
        )));
    }
    reference_rules(s, &obj).map_err(damaged)?;
    if let Some(sel) = &entry.selector
        && !selector_matches(sel, obj.pointer("/metadata/labels"))
    {
        return Err((
            format!("its labels do not match the catalog's selector {sel}"),
            false,
        ));
    }
    Ok(obj)
}

fn namespace_rules(
    s: &StoredObject,
    entry: &Entry,
    req: &Request,
) -> std::result::Result<(), Refused> {
    let refused = |m: String| Err((m, false));
    let user = |ns: &str| req.user_namespaces.contains(ns) && !SYSTEM_NAMESPACES.contains(&ns);
    if !entry.names.is_empty() && !entry.names.contains(&s.name) {
        return refused(format!(
            "the catalog restores only {} named {}",
            s.kind,
            entry.names.join(", ")
        ));
    }
    match (&s.namespace, entry.scope) {
        (Some(_), Scope::UserNamespaceObjects | Scope::BoundVolumes) => {
            refused(format!("a {} has no namespace", s.kind))
        }
        (Some(ns), Scope::Namespaces) if !entry.namespaces.contains(ns) => refused(format!(
            "the catalog restores {} only in namespace(s) {}, not {ns}",
            s.kind,
            entry.namespaces.join(", ")
        )),
        (None, Scope::Namespaces) => refused(format!(
            "the catalog restores {} only in namespace(s) {}, and this one has none",
            s.kind,
            entry.namespaces.join(", ")
        )),
        (Some(ns), _) if user(ns) || entry.namespaces.contains(ns) => Ok(()),
        (Some(ns), _) => refused(format!(
            "namespace {ns} is not one of the snapshot's user namespaces ({}){}",
            req.user_namespaces
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            if entry.namespaces.is_empty() {
                String::new()
            } else {
                format!(" nor {}", entry.namespaces.join(", "))
            }
        )),
        (None, Scope::UserNamespaceObjects) if !user(&s.name) => refused(format!(
            "a {} is restored only for a user namespace of the snapshot, and {} is not one",
            s.kind, s.name
        )),
        (None, _) => Ok(()),
    }
}

/// Whether `labels` satisfy a label selector (`a=b,c!=d,e in (x,y),f notin (z),g,!h`).
pub fn selector_matches(selector: &str, labels: Option<&Value>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let mut terms = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in selector.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    terms.push(cur);
    terms
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .all(|t| {
            let set = |rest: &str| -> Vec<String> {
                rest.trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .collect()
            };
            if let Some((k, v)) = t.split_once("!=") {
                get(k.trim()) != Some(v.trim())
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                get(k.trim()) == Some(v.trim())
            } else if let Some((k, rest)) = t.split_once(" notin ") {
                get(k.trim()).is_none_or(|v| !set(rest).iter().any(|x| x == v))
            } else if let Some((k, rest)) = t.split_once(" in ") {
                get(k.trim()).is_some_and(|v| set(rest).iter().any(|x| x == v))
            } else if let Some(k) = t.strip_prefix('!') {
                get(k.trim()).is_none()
            } else {
                get(t).is_some()
            }
        })
}

/// A stored object's identity for messages: `Kind ns/name (cluster)`.
pub fn describe(s: &StoredObject) -> String {
    let ns = s
        .namespace
        .as_deref()
        .map(|n| format!("{n}/"))
        .unwrap_or_default();
    match s.cluster {
        Role::Workload => format!("{} {ns}{}", s.kind, s.name),
        Role::Global => format!("{} {ns}{} (global cluster)", s.kind, s.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_match_like_the_api_server() {
        let l = json!({"cpaas.io/module-type":"plugin","tier":"a"});
        for (sel, want) in [
            ("cpaas.io/module-type=plugin", true),
            ("cpaas.io/module-type==plugin,tier=a", true),
            ("cpaas.io/module-type=chart", false),
            ("tier!=b", true),
            ("tier in (a, b)", true),
            ("tier notin (a)", false),
            ("tier,!missing", true),
            ("missing", false),
        ] {
            assert_eq!(selector_matches(sel, Some(&l)), want, "{sel}");
        }
    }

    /// A global-cluster ConfigMap stored at `ns/name`, with its YAML.
    fn global_cm(ns: &str, name: &str) -> (StoredObject, Vec<u8>) {
        let path = entry_path(Role::Global, "", "configmaps", Some(ns), name);
        let yaml = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n  config.yaml: x\n"
        );
        let s = StoredObject {
            cluster: Role::Global,
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            group: String::new(),
            plural: "configmaps".into(),
            namespace: Some(ns.into()),
            name: name.into(),
            path,
            encrypted: false,
            restore: true,
            order: 15,
        };
        (s, yaml.into_bytes())
    }

    #[test]
    fn a_namespaces_kind_is_restored_only_under_its_names_in_its_namespaces() {
        let mut catalog = Catalog::default();
        catalog.entries.push(Entry {
            kind: "ConfigMap".into(),
            group: String::new(),
            cluster: Role::Global,
            scope: Scope::Namespaces,
            names: vec!["dex-configmap".into()],
            namespaces: vec!["cpaas-system".into()],
            selector: None,
            restore: true,
            keep_status: false,
            order: 15,
            new_names: None,
        });
        // team-a is a user namespace of the snapshot: that does not make it a place for a
        // global settings object.
        let users: BTreeSet<String> = ["team-a".to_string()].into();
        let objects = [
            global_cm("cpaas-system", "dex-configmap"),
            global_cm("team-a", "dex-configmap"),
            global_cm("cpaas-system", "other"),
        ];
        let stored: Vec<StoredObject> = objects.iter().map(|(s, _)| s.clone()).collect();
        let files: BTreeMap<String, Vec<u8>> = objects
            .iter()
            .map(|(s, y)| (s.path.clone(), y.clone()))
            .collect();
        let kinds = ["ConfigMap".to_string()];
        for cluster in [None, Some(Role::Global)] {
            let req = Request {
                catalog: &catalog,
                user_namespaces: &users,
                kinds: &kinds,
                namespaces: &[],
                cluster,
                identities: None,
            };
            let a = admit(&stored, &files, &req).unwrap();
            let admitted: Vec<_> = a
                .admitted
                .iter()
                .map(|x| (x.stored.namespace.clone().unwrap(), x.stored.name.clone()))
                .collect();
            assert_eq!(
                admitted,
                [("cpaas-system".to_string(), "dex-configmap".to_string())]
            );
            let reasons: Vec<&str> = a.refused.iter().map(|r| r.reason.as_str()).collect();
            assert_eq!(reasons.len(), 2, "{reasons:?}");
            assert!(reasons[0].contains("only in namespace(s) cpaas-system, not team-a"));
            assert!(reasons[1].contains("only ConfigMap named dex-configmap"));
        }
        // A restore of the workload cluster's objects neither admits nor refuses them.
        let req = Request {
            catalog: &catalog,
            user_namespaces: &users,
            kinds: &kinds,
            namespaces: &[],
            cluster: Some(Role::Workload),
            identities: None,
        };
        let a = admit(&stored, &files, &req).unwrap();
        assert!(a.admitted.is_empty() && a.refused.is_empty());
    }
}
