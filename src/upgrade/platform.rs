//! Which cluster the kube context points at, as the platform names it: the `Cluster`
//! (clusterregistry.k8s.io, namespace `kube-public`) of the global cluster whose
//! `spec.kubernetesApiEndpoints.serverEndpoints[].serverAddress` is the workload context's API
//! server. That name is the `cpaas.io/cluster-name` label of the cluster's plugins: a wrong one
//! would make the run record and uninstall another cluster's plugins.

use serde_json::Value;

use crate::error::Result;
use crate::kube::{Cluster, name_of};

/// What the global cluster says about the workload context's cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// The Cluster object listing the workload's API server.
    Found(String),
    /// The global cluster serves no Cluster kind (a platform this tool does not know).
    NotServed,
    /// No Cluster lists that API server; the ones there are.
    Unknown(Vec<String>),
}

/// `https://h:443/` and `https://H` are the same server.
fn normal(url: &str) -> String {
    let u = url.trim().trim_end_matches('/').to_ascii_lowercase();
    u.strip_suffix(":443")
        .filter(|_| u.starts_with("https://"))
        .map(String::from)
        .unwrap_or(u)
}

fn addresses(c: &Value) -> impl Iterator<Item = &str> {
    c["spec"]["kubernetesApiEndpoints"]["serverEndpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["serverAddress"].as_str())
}

/// The platform's name of the cluster `workload` is connected to.
pub async fn cluster_name(workload: &Cluster, global: &Cluster) -> Result<Named> {
    let Some(r) = global.resolve("Cluster", Some("clusterregistry.k8s.io")) else {
        return Ok(Named::NotServed);
    };
    let all = global.list(&r, None, None, None).await?;
    let me = normal(&workload.server);
    Ok(
        match all.iter().find(|c| addresses(c).any(|a| normal(a) == me)) {
            Some(c) => Named::Found(name_of(c).to_string()),
            None => Named::Unknown(all.iter().map(|c| name_of(c).to_string()).collect()),
        },
    )
}

/// Whether `configured` is the cluster the context points at; `Err` says why not and what to
/// set (the run stops on it before writing anything).
pub async fn verify(
    workload: &Cluster,
    global: &Cluster,
    configured: &str,
) -> Result<std::result::Result<String, String>> {
    Ok(match cluster_name(workload, global).await? {
        Named::Found(n) if n == configured => Ok(format!(
            "kubernetes.cluster_name {n} is the cluster the kube context points at (Cluster kube-public/{n} of the global cluster lists API server {})",
            workload.server
        )),
        Named::Found(n) => Err(format!(
            "kubernetes.cluster_name is {configured}, but the kube context points at cluster {n} (Cluster kube-public/{n} of the global cluster lists API server {}): set cluster_name = \"{n}\", or point the context at {configured}; a wrong name would record and uninstall another cluster's plugins",
            workload.server
        )),
        Named::NotServed => Err(format!(
            "cannot tell which cluster the kube context points at: the global cluster {} serves no Cluster (clusterregistry.k8s.io) objects; check that global_context is ACP's global cluster",
            global.server
        )),
        Named::Unknown(names) => Err(format!(
            "cannot tell which cluster the kube context points at: no Cluster of the global cluster lists API server {} (Clusters there: {}); point the context at the workload cluster through the address ACP registered for it",
            workload.server,
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_compare_as_urls() {
        assert_eq!(normal("https://10.0.0.1:443/"), "https://10.0.0.1");
        assert_eq!(
            normal("HTTPS://Api.Example:6443"),
            "https://api.example:6443"
        );
        assert_ne!(normal("http://h:443"), normal("http://h"));
    }
}
