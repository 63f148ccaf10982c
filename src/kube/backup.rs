//! The Kubernetes part of a snapshot: every object the catalog names, one YAML file each as
//! the API served it minus server-managed fields, Secrets only encrypted, plus the PVC index and
//! an object list (`kubernetes/objects.json`) that restore orders its work by.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::catalog::{Catalog, Entry, Scope};
use super::objects::{HIDDEN, clean, describe, entry_path, redact_credentials, to_yaml};
use super::pvc::{INDEX_ENTRY, build_index, fetch, user_namespaces};
use super::secrets::Recipients;
use super::{Cluster, KubeOptions, Resource, Role, name_of, namespace_of, str_at};
use crate::error::{Error, Result};
use crate::progress::{Event, ProgressRef};
use crate::repo::Repository;
use crate::repo::manifest::{KubeKind, KubeSummary, Part, Source};
use crate::repo::sink::PartSink;

/// The part's name in the manifest and its file `parts/kubernetes.tar.zst`.
pub const PART: &str = "kubernetes";
pub const OBJECTS_ENTRY: &str = "kubernetes/objects.json";

#[derive(Debug, Clone, Default)]
pub struct KubeBackupOptions {
    pub access: KubeOptions,
    pub catalog: Catalog,
    /// User namespaces; empty: found from Profiles (see `pvc::user_namespaces`).
    pub namespaces: Vec<String>,
    pub recipients: Option<Recipients>,
}

/// One stored object, as listed in `kubernetes/objects.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredObject {
    pub cluster: Role,
    pub api_version: String,
    pub kind: String,
    pub group: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: String,
    /// Entry in the part; `.yaml.age` when encrypted.
    pub path: String,
    pub encrypted: bool,
    pub restore: bool,
    pub order: u32,
}

pub struct KubeBackup {
    pub part: Part,
    pub summary: KubeSummary,
    pub sources: Vec<Source>,
    pub notices: Vec<String>,
}

pub async fn backup_kube(
    repo: &Repository,
    id: &str,
    opts: &KubeBackupOptions,
    level: i32,
    progress: &ProgressRef,
    cancel: &CancellationToken,
) -> Result<KubeBackup> {
    let workload = Cluster::connect(&opts.access, Role::Workload).await?;
    let needs_global = opts
        .catalog
        .entries
        .iter()
        .any(|e| e.cluster == Role::Global);
    let separate_global =
        opts.access.global_context.is_some() && opts.access.global_context != opts.access.context;
    let global = if needs_global && separate_global {
        Some(Cluster::connect(&opts.access, Role::Global).await?)
    } else {
        None
    };
    let cluster_for = |role: Role| -> &Cluster {
        match (role, &global) {
            (Role::Global, Some(g)) => g,
            _ => &workload,
        }
    };
    let namespaces = user_namespaces(&workload, &opts.namespaces).await?;
    let live = fetch(&workload, &namespaces).await?;
    let bound: BTreeSet<String> = live
        .pvcs
        .iter()
        .filter_map(|c| str_at(c, "spec.volumeName").map(str::to_string))
        .collect();
    let index = build_index(&live.pvcs, &live.pvs, &live.mounters);
    let mut notices = live.notices.clone();

    let rel = format!("parts/{PART}.tar.zst");
    let sink = PartSink::open(repo, id, &rel, level);
    let started = std::time::Instant::now();
    progress.event(Event::TableStarted {
        db: "kubernetes".into(),
        table: "objects".into(),
        est_rows: 0,
    });
    let mut kinds: Vec<KubeKind> = Vec::new();
    let mut not_served = Vec::new();
    let mut left_out = Vec::new();
    let mut stored: Vec<StoredObject> = Vec::new();
    let produced = async {
        for entry in &opts.catalog.entries {
            if cancel.is_cancelled() {
                return Err(Error::Interrupted(
                    "backup stopped while reading Kubernetes objects; no snapshot was written"
                        .into(),
                ));
            }
            let cluster = cluster_for(entry.cluster);
            let Some(r) = cluster.resolve(&entry.kind, entry.group_hint()) else {
                let what = if entry.group.is_empty() {
                    entry.kind.clone()
                } else {
                    format!("{} ({})", entry.kind, entry.group)
                };
                not_served.push(format!("{what} on the {} cluster", entry.cluster));
                notices.push(format!(
                    "the {} cluster does not serve {what}; skipped",
                    entry.cluster
                ));
                continue;
            };
            let objects = fetch_entry(cluster, &r, entry, &namespaces, &bound).await?;
            let mut count = 0u64;
            for obj in objects {
                let mut obj = clean(obj, entry.keep_status);
                if !entry.restore {
                    let hidden = redact_credentials(&mut obj);
                    if !hidden.is_empty() {
                        notices.push(format!(
                            "{}: credential fields stored as {HIDDEN} (a record, never restored): {}",
                            describe(&obj),
                            hidden.join(", ")
                        ));
                    }
                }
                let ns = namespace_of(&obj).map(str::to_string);
                let name = name_of(&obj).to_string();
                let path = entry_path(entry.cluster, &r.ar.group, &r.ar.plural, ns.as_deref(), &name);
                let yaml = to_yaml(&obj);
                let sensitive = r.ar.kind == "Secret" && r.ar.group.is_empty();
                let (path, data, encrypted) = if sensitive {
                    match &opts.recipients {
                        Some(rc) if !rc.is_empty() => {
                            (format!("{path}.age"), rc.encrypt(yaml.as_bytes())?, true)
                        }
                        _ => {
                            left_out.push(format!(
                                "Secret {}/{name}",
                                ns.as_deref().unwrap_or("")
                            ));
                            continue;
                        }
                    }
                } else {
                    (path, yaml.into_bytes(), false)
                };
                sink.entry(path.clone(), data).await?;
                stored.push(StoredObject {
                    cluster: entry.cluster,
                    api_version: r.ar.api_version.clone(),
                    kind: r.ar.kind.clone(),
                    group: r.ar.group.clone(),
                    plural: r.ar.plural.clone(),
                    namespace: ns,
                    name,
                    path,
                    encrypted,
                    restore: entry.restore,
                    order: entry.order,
                });
                count += 1;
                progress.event(Event::TableProgress {
                    db: "kubernetes".into(),
                    table: "objects".into(),
                    rows: stored.len() as u64,
                    bytes: 0,
                });
            }
            kinds.push(KubeKind {
                cluster: entry.cluster,
                kind: r.ar.kind.clone(),
                api_version: r.ar.api_version.clone(),
                objects: count,
                restore: entry.restore,
            });
        }
        if !left_out.is_empty() {
            notices.push(format!(
                "{} Secret(s) left out of the snapshot because no --encrypt-to recipient was given: {}",
                left_out.len(),
                left_out.join(", ")
            ));
        }
        sink.entry(
            INDEX_ENTRY.to_string(),
            serde_json::to_vec_pretty(&index).expect("index serializes"),
        )
        .await?;
        sink.entry(
            OBJECTS_ENTRY.to_string(),
            serde_json::to_vec_pretty(&stored).expect("object list serializes"),
        )
        .await?;
        Ok(())
    }
    .await;
    let ((), info) = sink.close(produced).await?;
    progress.event(Event::TableFinished {
        db: "kubernetes".into(),
        table: "objects".into(),
        rows: stored.len() as u64,
        bytes: info.entries.iter().map(|e| e.size).sum(),
        elapsed: started.elapsed(),
    });
    for n in &notices {
        progress.event(Event::Notice(n.clone()));
    }
    let mut sources = vec![source(&workload)];
    if let Some(g) = &global {
        sources.push(source(g));
    }
    Ok(KubeBackup {
        part: Part {
            name: PART.into(),
            path: rel,
            kind: PART.into(),
            size: info.size,
            sha256: info.sha256,
            entries: info.entries,
            chunked: info.chunked,
        },
        summary: KubeSummary {
            part: PART.into(),
            namespaces,
            objects: stored.len() as u64,
            kinds,
            not_served,
            left_out,
            encrypted: stored.iter().filter(|s| s.encrypted).count() as u64,
            pvcs: index.len() as u64,
        },
        sources,
        notices,
    })
}

fn source(c: &Cluster) -> Source {
    Source {
        kind: format!("kubernetes-{}", c.role),
        name: None,
        location: match &c.context {
            Some(ctx) => format!("{} (context {ctx})", c.server),
            None => c.server.clone(),
        },
        server_version: Some(c.version.clone()),
        consistency: Some("objects listed kind by kind; not one point in time".into()),
    }
}

async fn fetch_entry(
    cluster: &Cluster,
    r: &Resource,
    entry: &Entry,
    namespaces: &[String],
    bound: &BTreeSet<String>,
) -> Result<Vec<Value>> {
    let selector = entry.selector.as_deref();
    // Named objects are asked for by name, one request each: RBAC `resourceNames` then limits
    // a scheduled backup's ServiceAccount to exactly them (see schedule.rs).
    // Objects named after user namespaces are asked for by those names too.
    let names: Vec<&String> = match entry.scope {
        Scope::UserNamespaceObjects => namespaces
            .iter()
            .filter(|n| entry.names.is_empty() || entry.names.contains(n))
            .collect(),
        _ => entry.names.iter().collect(),
    };
    let fields: Vec<Option<String>> =
        if names.is_empty() && entry.scope != Scope::UserNamespaceObjects {
            vec![None]
        } else {
            names
                .iter()
                .map(|n| Some(format!("metadata.name={n}")))
                .collect()
        };
    let scopes: Vec<Option<&str>> = match entry.scope {
        Scope::UserNamespaces if r.namespaced => namespaces
            .iter()
            .chain(&entry.namespaces)
            .map(|n| Some(n.as_str()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        Scope::Namespaces if r.namespaced => {
            entry.namespaces.iter().map(|n| Some(n.as_str())).collect()
        }
        _ => vec![None],
    };
    let mut objects = Vec::new();
    for ns in scopes {
        for field in &fields {
            objects.extend(cluster.list(r, ns, selector, field.as_deref()).await?);
        }
    }
    match entry.scope {
        Scope::UserNamespaceObjects => {
            objects.retain(|o| namespaces.iter().any(|n| n == name_of(o)));
        }
        Scope::BoundVolumes => objects.retain(|o| bound.contains(name_of(o))),
        // A kind served cluster-scoped has no namespace to be in.
        Scope::Namespaces if !r.namespaced => objects.clear(),
        Scope::All | Scope::UserNamespaces | Scope::Namespaces => {}
    }
    if !entry.names.is_empty() {
        objects.retain(|o| entry.names.iter().any(|n| n == name_of(o)));
    }
    objects.sort_by(|a, b| (namespace_of(a), name_of(a)).cmp(&(namespace_of(b), name_of(b))));
    Ok(objects)
}
