//! The Kubernetes side: cluster access, discovery by kind, untyped objects.
//!
//! Everything goes through discovery and `DynamicObject`s turned into JSON values: typed structs
//! drop fields they do not know, and an AML cluster carries CRDs whose schemas we do not own.
//! Two clusters matter: the workload cluster (AML, Kubeflow, user namespaces) and the ACP
//! global cluster (plugin ModuleInfos); by default they are the same.

pub mod admit;
mod api;
pub mod backup;
pub mod catalog;
pub mod converge;
pub mod names;
pub mod objects;
mod plan;
pub mod pvc;
pub mod restore;
pub mod secrets;
pub mod volumes;

use std::fmt;
use std::path::PathBuf;

use kube::api::DynamicObject;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use kube::{Client, Config};
use serde_json::Value;

use crate::error::{Error, Result};

/// The field manager every write of ours uses, so `managedFields` shows who set what.
pub const FIELD_MANAGER: &str = "amlmigrate";

/// How to reach the clusters. One options struct serves the CLI, config files and the library.
#[derive(Debug, Clone, Default)]
pub struct KubeOptions {
    /// A kubeconfig file; default: `$KUBECONFIG`, `~/.kube/config`, then in-cluster config.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context of the workload cluster; default: the current context.
    pub context: Option<String>,
    /// The kubeconfig context of the ACP global cluster; default: the workload cluster.
    pub global_context: Option<String>,
}

/// Which of the two clusters an object lives in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Workload,
    Global,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Workload => "workload",
            Role::Global => "global",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connected cluster with its discovered resources.
pub struct Cluster {
    pub client: Client,
    pub role: Role,
    /// The API server URL (no credentials), for messages and the manifest.
    pub server: String,
    pub context: Option<String>,
    pub version: String,
    discovery: Discovery,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("role", &self.role)
            .field("server", &self.server)
            .finish()
    }
}

/// A resource type as discovery serves it.
#[derive(Debug, Clone)]
pub struct Resource {
    pub ar: ApiResource,
    pub namespaced: bool,
}

impl Resource {
    /// `notebooks.kubeflow.org`, or `persistentvolumeclaims` for the core group: how the API
    /// server names a resource in its own messages.
    pub fn qualified(&self) -> String {
        if self.ar.group.is_empty() {
            self.ar.plural.clone()
        } else {
            format!("{}.{}", self.ar.plural, self.ar.group)
        }
    }
}

/// Built-in API groups: a kind found only there never stands in for a custom resource of the
/// same kind (a Volcano `Job` must not become a `batch/v1` Job).
pub(crate) fn is_builtin_group(g: &str) -> bool {
    g.is_empty() || !g.contains('.') || g.ends_with(".k8s.io")
}

impl Cluster {
    /// Connects with the given options; `role` picks the context.
    pub async fn connect(opts: &KubeOptions, role: Role) -> Result<Cluster> {
        let context = match role {
            Role::Workload => opts.context.clone(),
            Role::Global => opts.global_context.clone().or_else(|| opts.context.clone()),
        };
        let config = load_config(opts.kubeconfig.as_ref(), context.as_deref()).await?;
        let server = config.cluster_url.to_string();
        let server = server.trim_end_matches('/').to_string();
        let client = Client::try_from(config).map_err(|e| {
            Error::Connection(format!(
                "cannot build a Kubernetes client for {server}: {e}; check the kubeconfig's \
                 certificates and TLS settings"
            ))
        })?;
        let version = client
            .apiserver_version()
            .await
            .map_err(|e| api_error(e, &server, "get", "the server version (/version)"))?;
        let discovery = Discovery::new(client.clone())
            .run()
            .await
            .map_err(|e| api_error(e, &server, "discover", "the served API resources"))?;
        Ok(Cluster {
            client,
            role,
            server,
            context,
            version: version.git_version,
            discovery,
        })
    }

    /// Finds a kind through discovery. `group` is the expected group; a kind served by one other
    /// (non built-in) group is accepted too, so a group that differs on a real cluster works.
    pub fn resolve(&self, kind: &str, group: Option<&str>) -> Option<Resource> {
        let mut found: Vec<(ApiResource, ApiCapabilities)> = Vec::new();
        for g in self.discovery.groups() {
            for (ar, caps) in g.recommended_resources() {
                if ar.kind == kind && !ar.plural.contains('/') {
                    found.push((ar, caps));
                }
            }
        }
        let pick = match group {
            Some(want) => {
                if let Some(i) = found.iter().position(|(ar, _)| ar.group == want) {
                    Some(found.swap_remove(i))
                } else {
                    let mut custom: Vec<_> = found
                        .into_iter()
                        .filter(|(ar, _)| !is_builtin_group(&ar.group) && !is_builtin_group(want))
                        .collect();
                    (custom.len() == 1).then(|| custom.remove(0))
                }
            }
            None => (found.len() == 1).then(|| found.remove(0)),
        };
        pick.map(|(ar, caps)| Resource {
            ar,
            namespaced: caps.scope == Scope::Namespaced,
        })
    }

    /// Like [`Cluster::resolve`], but a kind the cluster does not serve is an error naming it.
    pub fn need(&self, kind: &str, group: &str) -> Result<Resource> {
        self.resolve(kind, Some(group)).ok_or_else(|| {
            Error::input(format!(
                "the {} cluster ({}) does not serve {kind} ({}); check --context/--kubeconfig, \
                 or install what provides it",
                self.role,
                self.server,
                if group.is_empty() { "core" } else { group }
            ))
        })
    }

    /// The resource of an object's `apiVersion`/`kind`, falling back to the kind alone.
    pub fn resolve_object(&self, obj: &Value) -> Option<Resource> {
        let kind = obj.get("kind")?.as_str()?;
        let api_version = obj.get("apiVersion")?.as_str()?;
        self.resolve(kind, Some(group_of(api_version)))
    }
}

pub(crate) fn to_value(obj: DynamicObject, r: &Resource) -> Value {
    let mut v = serde_json::to_value(obj).expect("a DynamicObject serializes");
    // List items of built-in kinds come without apiVersion/kind; a stored object needs both.
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(r.ar.api_version.clone()));
        m.insert("kind".into(), Value::String(r.ar.kind.clone()));
    }
    v
}

pub(crate) fn where_(r: &Resource, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if r.namespaced => format!("{} in namespace {ns}", r.qualified()),
        _ => r.qualified(),
    }
}

pub fn object_name(r: &Resource, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if r.namespaced => format!("{} {ns}/{name}", r.qualified()),
        _ => format!("{} {name}", r.qualified()),
    }
}

async fn load_config(kubeconfig: Option<&PathBuf>, context: Option<&str>) -> Result<Config> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| {
                Error::input(format!(
                    "cannot read kubeconfig {}: {e}; give a readable kubeconfig with --kubeconfig",
                    path.display()
                ))
            })?;
            Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| {
                    Error::input(format!(
                        "kubeconfig {}{}: {e}; check the context name (kubectl config get-contexts)",
                        path.display(),
                        context.map(|c| format!(", context {c}")).unwrap_or_default()
                    ))
                })
        }
        None if context.is_some() => Config::from_kubeconfig(&options).await.map_err(|e| {
            Error::input(format!(
                "kubeconfig context {}: {e}; check the name (kubectl config get-contexts) or give \
                 --kubeconfig",
                context.unwrap_or_default()
            ))
        }),
        None => Config::infer().await.map_err(|e| {
            Error::input(format!(
                "no Kubernetes configuration found ({e}); give --kubeconfig, set KUBECONFIG, or \
                 run inside a cluster with a service account"
            ))
        }),
    }
}

/// Turns a client error into one that names the server, the verb and the object, and the fix.
pub fn api_error(e: kube::Error, server: &str, verb: &str, what: &str) -> Error {
    match e {
        kube::Error::Api(s) => match s.code {
            401 => Error::Connection(format!(
                "the Kubernetes API server {server} rejected our credentials (401 Unauthorized) \
                 when trying to {verb} {what}; the token or client certificate in the kubeconfig \
                 is wrong or has expired: log in again or refresh the kubeconfig"
            )),
            403 => Error::Forbidden(format!(
                "not allowed to {verb} {what} on {server}: {}; grant this permission (RBAC verb \
                 {verb}) to the user or service account, or run as one who has it",
                s.message
            )),
            code => Error::Other(format!(
                "the Kubernetes API server {server} refused to {verb} {what}: {} ({}, HTTP {code})",
                s.message,
                if s.reason.is_empty() {
                    "no reason given"
                } else {
                    s.reason.as_str()
                }
            )),
        },
        kube::Error::Auth(err) => Error::Connection(format!(
            "cannot authenticate to the Kubernetes API server {server} to {verb} {what}: {err}; \
             refresh the kubeconfig credentials"
        )),
        other => Error::Connection(format!(
            "cannot reach the Kubernetes API server {server} to {verb} {what}: {}; check \
             --kubeconfig/--context and that the server is reachable from here",
            chain(&other)
        )),
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// A string field at a dotted path (`metadata.name`).
/// The group of an `apiVersion` (`""` for the core `v1`).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

pub fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    at(v, path)?.as_str()
}

pub fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path.split('.') {
        cur = cur.get(seg)?;
    }
    Some(cur)
}

pub fn name_of(v: &Value) -> &str {
    str_at(v, "metadata.name").unwrap_or("")
}

pub fn namespace_of(v: &Value) -> Option<&str> {
    str_at(v, "metadata.namespace")
}
