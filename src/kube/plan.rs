//! The plan of a Kubernetes restore: each admitted object's resource on the cluster, in the
//! catalog's order, after the checks that need the cluster: scope as discovery serves it,
//! target namespaces that are not user namespaces, volumes and claims (`volumes.rs`), and
//! instances a snapshot may not add. Whatever fails one is refused, before any write.

use std::collections::BTreeSet;

use serde_json::Value;

use super::admit::{self, Admitted, Refusal, SYSTEM_NAMESPACES};
use super::catalog::Scope;
use super::objects::prepare_for_restore;
use super::pvc::user_namespaces;
use super::restore::KubeRestoreOptions;
use super::volumes;
use super::{Cluster, Resource, Role};
use crate::error::{Error, Result};

/// An admitted object with the resource it is written to (None: the cluster does not serve it).
pub(super) struct Planned<'a> {
    pub admitted: Admitted<'a>,
    pub resource: Option<Resource>,
}

/// The workload cluster, and the global one when it is another and the restore needs it.
pub(super) struct Clusters {
    pub workload: Cluster,
    pub global: Option<Cluster>,
}

impl Clusters {
    pub fn of(&self, role: Role) -> &Cluster {
        match (role, &self.global) {
            (Role::Global, Some(g)) => g,
            _ => &self.workload,
        }
    }
}

/// `--namespaces` and `--namespace-map` name namespaces: each must be a valid one.
pub(super) fn check_operator_namespaces(opts: &KubeRestoreOptions) -> Result<()> {
    let map = &opts.namespace_map.0;
    for ns in opts.namespaces.iter().chain(map.keys()).chain(map.values()) {
        super::names::namespace(ns)
            .map_err(|e| Error::input(format!("{e}; give namespaces as Kubernetes names them")))?;
    }
    Ok(())
}

/// Connects, resolves each admitted object's resource, refuses those whose scope or target
/// namespace the cluster does not allow, and orders the rest as the catalog says.
pub(super) async fn plan<'a>(
    admission: admit::Admission<'a>,
    opts: &KubeRestoreOptions,
) -> Result<(Clusters, Vec<Planned<'a>>, Vec<Refusal>)> {
    let mut refused = admission.refused;
    let workload = Cluster::connect(&opts.access, Role::Workload).await?;
    let separate_global =
        opts.access.global_context.is_some() && opts.access.global_context != opts.access.context;
    let needs_global = admission
        .admitted
        .iter()
        .any(|a| a.stored.cluster == Role::Global);
    let global = if separate_global && needs_global {
        Some(Cluster::connect(&opts.access, Role::Global).await?)
    } else {
        None
    };
    let clusters = Clusters { workload, global };
    let mut plan: Vec<Planned> = Vec::new();
    for a in admission.admitted {
        let resource = clusters
            .of(a.stored.cluster)
            .resolve(&a.entry.kind, a.entry.group_hint());
        match &resource {
            Some(r) if r.namespaced != a.stored.namespace.is_some() => refused.push(Refusal {
                stored: a.stored.clone(),
                reason: format!(
                    "{} is {} on this cluster, but the snapshot gives it {}",
                    r.qualified(),
                    if r.namespaced {
                        "namespaced"
                    } else {
                        "cluster-scoped"
                    },
                    if r.namespaced {
                        "no namespace"
                    } else {
                        "a namespace"
                    }
                ),
                damaged: false,
            }),
            _ => plan.push(Planned {
                admitted: a,
                resource,
            }),
        }
    }
    refuse_foreign_namespaces(&clusters.workload, opts, &mut plan, &mut refused).await?;
    refuse_volumes(&clusters.workload, opts, &mut plan, &mut refused).await?;
    refuse_new_instances(&clusters, opts, &mut plan, &mut refused).await?;
    plan.sort_by_cached_key(|p| {
        let s = p.admitted.stored;
        (
            p.admitted.entry.order,
            s.cluster,
            s.namespace.clone(),
            s.name.clone(),
        )
    });
    Ok((clusters, plan, refused))
}

/// A restore writes into a namespace that exists only when it is a user namespace there too
/// (a Profile's, labelled as one, or holding Notebooks), or the operator named it
/// (`--namespaces`, `--namespace-map`). So a snapshot that calls `default` or an operator's
/// namespace a user namespace cannot place RoleBindings or Secrets there.
async fn refuse_foreign_namespaces(
    cluster: &Cluster,
    opts: &KubeRestoreOptions,
    plan: &mut Vec<Planned<'_>>,
    refused: &mut Vec<Refusal>,
) -> Result<()> {
    let map = &opts.namespace_map;
    let named: BTreeSet<String> = opts
        .namespaces
        .iter()
        .map(|n| map.map(n).to_string())
        .chain(map.0.values().cloned())
        .collect();
    let target = |p: &Planned| -> Option<String> {
        let s = p.admitted.stored;
        match (&s.namespace, p.admitted.entry.scope) {
            (Some(ns), _) if p.admitted.entry.namespaces.contains(ns) => None,
            (Some(ns), _) => Some(map.map(ns).to_string()),
            (None, Scope::UserNamespaceObjects) => Some(map.map(&s.name).to_string()),
            (None, _) => None,
        }
    };
    let candidates: BTreeSet<String> = plan
        .iter()
        .filter_map(target)
        .filter(|t| !named.contains(t) || SYSTEM_NAMESPACES.contains(&t.as_str()))
        .collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let nsr = cluster.need("Namespace", "")?;
    let mut foreign = BTreeSet::new();
    let mut live_users: Option<BTreeSet<String>> = None;
    for t in candidates {
        if SYSTEM_NAMESPACES.contains(&t.as_str()) {
            foreign.insert(t);
            continue;
        }
        if cluster.get(&nsr, None, &t).await?.is_none() {
            continue;
        }
        if live_users.is_none() {
            live_users = Some(user_namespaces(cluster, &[]).await?.into_iter().collect());
        }
        if !live_users.as_ref().is_some_and(|u| u.contains(&t)) {
            foreign.insert(t);
        }
    }
    let (keep, drop): (Vec<Planned>, Vec<Planned>) = std::mem::take(plan)
        .into_iter()
        .partition(|p| target(p).is_none_or(|t| !foreign.contains(&t)));
    *plan = keep;
    for p in drop {
        let t = target(&p).unwrap_or_default();
        refused.push(Refusal {
            stored: p.admitted.stored.clone(),
            reason: if SYSTEM_NAMESPACES.contains(&t.as_str()) {
                format!("namespace {t} is a system namespace; nothing is restored into it")
            } else {
                format!(
                    "namespace {t} exists and is not a user namespace (no Profile, no \
                     kubeflow-profile label, no Notebook); name it with --namespaces to restore \
                     into it anyway"
                )
            },
            damaged: false,
        });
    }
    Ok(())
}

/// Volumes and claims whose binding the snapshot may not choose (`volumes.rs`).
async fn refuse_volumes(
    cluster: &Cluster,
    opts: &KubeRestoreOptions,
    plan: &mut Vec<Planned<'_>>,
    refused: &mut Vec<Refusal>,
) -> Result<()> {
    let prepared: Vec<(usize, &str, Value, Option<String>)> = plan
        .iter()
        .enumerate()
        .filter(|(_, p)| p.admitted.stored.group.is_empty() && p.resource.is_some())
        .filter_map(|(i, p)| {
            let kind = p.admitted.stored.kind.as_str();
            let obj = p.admitted.object.as_ref()?;
            matches!(kind, "PersistentVolume" | "PersistentVolumeClaim").then(|| {
                let stored_claim = volumes::claim_of(obj);
                let o = prepare_for_restore(obj.clone(), &opts.namespace_map);
                (i, kind, o, stored_claim)
            })
        })
        .collect();
    let items: Vec<_> = prepared
        .iter()
        .map(|(i, k, o, c)| (*i, *k, o, c.clone()))
        .collect();
    let mut out = volumes::check_plan(cluster, &items, &opts.volumes).await?;
    out.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
    for (i, reason) in out {
        let p = plan.remove(i);
        refused.push(volumes::refusal(p.admitted.stored, reason));
    }
    Ok(())
}

/// Objects of a kind whose catalog entry lists `new_names` are created only under those
/// names; under any other, only an object the cluster already has is restored.
async fn refuse_new_instances(
    clusters: &Clusters,
    opts: &KubeRestoreOptions,
    plan: &mut Vec<Planned<'_>>,
    refused: &mut Vec<Refusal>,
) -> Result<()> {
    let mut out = Vec::new();
    for (i, p) in plan.iter().enumerate() {
        let (s, entry) = (p.admitted.stored, p.admitted.entry);
        let (Some(allowed), Some(r)) = (&entry.new_names, &p.resource) else {
            continue;
        };
        if allowed.contains(&s.name) {
            continue;
        }
        let ns = s.namespace.as_deref().map(|n| opts.namespace_map.map(n));
        if clusters.of(s.cluster).get(r, ns, &s.name).await?.is_none() {
            out.push((
                i,
                format!(
                    "the cluster has no {} named {}, and a restore creates one only under the \
                     names the catalog gives ({}); restore it under its own name, or name it in \
                     the catalog (new_names)",
                    s.kind,
                    s.name,
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ),
            ));
        }
    }
    for (i, reason) in out.into_iter().rev() {
        let p = plan.remove(i);
        refused.push(volumes::refusal(p.admitted.stored, reason));
    }
    Ok(())
}
