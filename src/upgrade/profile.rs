//! `amlmigrate profile create`: the Profile, RoleBinding and AuthorizationPolicy the article
//! gives for a new Kubeflow user, applied with server-side apply (a re-run changes nothing).

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::kube::Cluster;

#[derive(Debug, Clone)]
pub struct ProfileOptions {
    pub user: String,
    /// Default: the user's email made a name (`admin@cpaas.io` → `kubeflow-admin-cpaas-io`).
    pub namespace: Option<String>,
    pub gateway_principal: String,
    pub pipeline_ui_principal: String,
    pub dry_run: bool,
}

/// `admin@cpaas.io` → `admin-cpaas-io`, the way KFAM names bindings.
pub fn user_slug(email: &str) -> String {
    let s: String = email
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.trim_matches('-').to_string()
}

pub fn objects(o: &ProfileOptions) -> Result<Vec<Value>> {
    if !o.user.contains('@') {
        return Err(Error::input(format!(
            "--user {:?} is not an email address; give the ACP user's login, e.g. admin@cpaas.io",
            o.user
        )));
    }
    let slug = user_slug(&o.user);
    let ns = o
        .namespace
        .clone()
        .unwrap_or_else(|| format!("kubeflow-{slug}"));
    let binding = format!("user-{slug}-clusterrole-admin");
    let ann = json!({"role": "admin", "user": o.user});
    Ok(vec![
        json!({
            "apiVersion": "kubeflow.org/v1beta1", "kind": "Profile",
            "metadata": {"name": ns},
            "spec": {"owner": {"kind": "User", "name": o.user}},
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": binding, "namespace": ns, "annotations": ann},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kubeflow-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": o.user}],
        }),
        json!({
            "apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy",
            "metadata": {"name": binding, "namespace": ns, "annotations": ann},
            "spec": {"rules": [{
                "from": [{"source": {"principals": [o.gateway_principal, o.pipeline_ui_principal]}}],
                "when": [{"key": "request.headers[kubeflow-userid]", "values": [o.user]}],
            }]},
        }),
    ])
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Applied {
    pub object: String,
    /// created, unchanged, updated (or would …)
    pub action: String,
}

/// How long the Profile controller may take to create the namespace.
const NAMESPACE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Applies the three objects; waits (Ctrl-C stops the wait) for the Profile controller to
/// create the namespace before the two objects that live in it.
pub async fn create(
    cluster: &Cluster,
    o: &ProfileOptions,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Vec<Applied>> {
    let mut out = Vec::new();
    let objs = objects(o)?;
    let ns_name = crate::kube::name_of(&objs[0]).to_string();
    let ns_r = cluster
        .resolve("Namespace", Some(""))
        .ok_or_else(|| Error::other("the cluster serves no namespaces"))?;
    for obj in objs {
        if obj["kind"] != "Profile" && cluster.get(&ns_r, None, &ns_name).await?.is_none() {
            if o.dry_run {
                out.push(Applied {
                    object: crate::kube::objects::describe(&obj),
                    action: "would be created".into(),
                });
                continue;
            }
            // Kubeflow's Profile controller creates the namespace; the bindings go in after.
            super::wait::until(
                cancel,
                super::wait::Patience::new(NAMESPACE_WAIT, std::time::Duration::from_millis(200)),
                async || {
                    Ok(match cluster.get(&ns_r, None, &ns_name).await? {
                        Some(_) => super::wait::Poll::Ready(()),
                        None => super::wait::Poll::Pending(format!("namespace {ns_name}")),
                    })
                },
                |_| {
                    Error::Other(format!(
                        "the Profile controller did not create namespace {ns_name} within {}s: is the Kubeflow Base plugin installed and Running?",
                        NAMESPACE_WAIT.as_secs()
                    ))
                },
            )
            .await?;
        }
        let r = cluster.resolve_object(&obj).ok_or_else(|| {
            Error::input(format!(
                "the cluster does not serve {}: is the Kubeflow Base plugin installed?",
                obj["kind"].as_str().unwrap_or("?")
            ))
        })?;
        // The served version may differ from the article's (Profile v1 vs v1beta1).
        let mut obj = obj;
        obj["apiVersion"] = json!(r.ar.api_version);
        let ns = crate::kube::namespace_of(&obj).map(str::to_string);
        let name = crate::kube::name_of(&obj).to_string();
        let before = cluster.get(&r, ns.as_deref(), &name).await?;
        cluster
            .apply(&r, ns.as_deref(), &name, &obj, true, o.dry_run)
            .await?;
        let changed = match &before {
            None => "created",
            Some(b) if crate::kube::restore::is_subset(&obj, b) => "unchanged",
            Some(_) => "updated",
        };
        out.push(Applied {
            object: crate::kube::objects::describe(&obj),
            action: if o.dry_run && changed != "unchanged" {
                format!("would be {changed}")
            } else {
                changed.to_string()
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_article_names_follow_from_the_email() {
        let o = ProfileOptions {
            user: "admin@cpaas.io".into(),
            namespace: None,
            gateway_principal:
                "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account".into(),
            pipeline_ui_principal: "cluster.local/ns/kubeflow/sa/ml-pipeline-ui".into(),
            dry_run: false,
        };
        let objs = objects(&o).unwrap();
        assert_eq!(objs[0]["metadata"]["name"], "kubeflow-admin-cpaas-io");
        assert_eq!(
            objs[1]["metadata"]["name"],
            "user-admin-cpaas-io-clusterrole-admin"
        );
        assert_eq!(
            objs[2]["spec"]["rules"][0]["when"][0]["values"][0],
            "admin@cpaas.io"
        );
        assert!(
            objects(&ProfileOptions {
                user: "nobody".into(),
                ..o
            })
            .is_err()
        );
    }
}
