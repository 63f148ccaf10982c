//! Step preflight: what the article requires before anything changes (x86_64 nodes, Istio at
//! least 1.22, the databases, the storage class, the repository) and the global cluster's
//! settings it asks for (dex's redirect URI, the ServiceMesh's oauth2 extension provider and
//! dex's CA), which are offered as changes.

use mysql_async::prelude::Queryable;
use serde_json::{Value, json};

use super::{Applied, Change, Env, State, StepCheck};
use crate::error::{Error, Result};
use crate::kube::{name_of, str_at};

pub(super) async fn check(env: &Env, c: &mut StepCheck) -> Result<()> {
    preflight(env, c).await
}

pub(super) async fn apply(env: &Env) -> Result<Applied> {
    let mut c = super::new_check(super::StepId::Preflight);
    preflight(env, &mut c).await?;
    fix_preflight(env).await?;
    Ok(Applied::changes(c.changes))
}

struct Fixes {
    dex: Option<(Value, String)>,
    /// The merge patch and, per IstioOperator overlay path, what it adds.
    mesh: Option<(Value, Vec<(String, String)>)>,
}

async fn preflight(env: &Env, c: &mut StepCheck) -> Result<()> {
    let cfg = &env.cfg;
    let p = &cfg.preflight;
    let ok = |c: &mut StepCheck, s: String| c.checked.push(format!("ok   {s}"));
    // Nodes.
    let nodes = env.workload.need("Node", "")?;
    let mut bad = Vec::new();
    let list = env.workload.list(&nodes, None, None, None).await?;
    for n in &list {
        let arch = str_at(n, "status.nodeInfo.architecture")
            .or_else(|| {
                n.pointer("/metadata/labels/kubernetes.io~1arch")
                    .and_then(Value::as_str)
            })
            .unwrap_or("unknown");
        if arch != p.architecture {
            bad.push(format!("{} is {arch}", name_of(n)));
        }
    }
    if bad.is_empty() {
        ok(c, format!("{} node(s), all {}", list.len(), p.architecture));
    } else {
        c.checked.push(format!(
            "FAIL nodes: {}; some AML plugins run only on {} (x86_64): remove or cordon those nodes",
            bad.join(", "),
            p.architecture
        ));
    }
    // Istio.
    match istio_version(env).await? {
        Some((v, from)) if version_at_least(&v, &p.istio_min_version) => {
            ok(c, format!("Istio {v} >= {} ({from})", p.istio_min_version))
        }
        Some((v, from)) => c.checked.push(format!(
            "FAIL Istio {v} ({from}) is older than {}: upgrade the service mesh first",
            p.istio_min_version
        )),
        None => c.checked.push(format!(
            "FAIL no Istio found (ServiceMesh {}/{} or Deployment {}/{}): deploy Istio >= {} (non-CNI), e.g. with Alauda Service Mesh",
            p.servicemesh_namespace, p.servicemesh_name, p.istiod_namespace, p.istiod_deployment, p.istio_min_version
        )),
    }
    // Databases.
    let my = cfg.mysql_url()?;
    match mysql_version(&my).await {
        Ok(v) => ok(
            c,
            format!("AML MySQL {} reachable, version {v}", my.redacted()),
        ),
        Err(e) => c.checked.push(format!("FAIL AML MySQL: {e}")),
    }
    let pg = cfg.pg_url()?;
    match pg.connect().await {
        Ok(client) => {
            let v: String = client
                .query_one("SHOW server_version", &[])
                .await
                .map(|r| r.get(0))
                .unwrap_or_default();
            ok(
                c,
                format!("MLflow PostgreSQL {} reachable, version {v}", pg.redacted()),
            );
        }
        Err(e) => c.checked.push(format!("FAIL MLflow PostgreSQL: {e}")),
    }
    if let Some(kfp) = &cfg.mysql.kfp_url {
        let url = crate::mysql::MysqlUrl::parse(kfp)?;
        match mysql_version(&url).await {
            Ok(v) if v.starts_with("5.7") => ok(c, format!("Kubeflow Pipelines MySQL {} is {v}", url.redacted())),
            Ok(v) => c.checked.push(format!(
                "FAIL Kubeflow Pipelines MySQL {} is {v}; Kubeflow Pipelines needs MySQL 5.7: use a 5.7 (PXC) instance or the built-in one",
                url.redacted()
            )),
            Err(e) => c.checked.push(format!("FAIL Kubeflow Pipelines MySQL: {e}")),
        }
    }
    // Storage class.
    if !p.storage_class.is_empty() {
        let found = match env.workload.resolve("StorageClass", Some("storage.k8s.io")) {
            Some(r) => env
                .workload
                .get(&r, None, &p.storage_class)
                .await?
                .is_some(),
            None => false,
        };
        if found {
            ok(c, format!("storage class {} exists", p.storage_class));
        } else {
            c.checked.push(format!(
                "FAIL storage class {} does not exist: create it or set preflight.storage_class (and features.*_storage_class) to one that does",
                p.storage_class
            ));
        }
    }
    // Repository.
    match env
        .repo
        .put_run_file(".probe", "writable", b"ok".to_vec())
        .await
    {
        Ok(()) => ok(c, format!("repository {} writable", env.repo.location())),
        Err(e) => c.checked.push(format!("FAIL repository: {e}")),
    }
    // dex and ServiceMesh (global cluster): missing entries are offered as fixes.
    let fixes = preflight_fixes(env).await?;
    if let Some((_, uri)) = &fixes.dex {
        c.changes.push(Change::new(
            format!("ConfigMap {}/{} (global)", p.dex_namespace, p.dex_configmap),
            "config.yaml staticClients[alauda-auth].redirectURIs",
            None,
            Some(format!("+ {uri}")),
        ));
    } else if !p.dex_redirect_uri.is_empty() {
        ok(
            c,
            format!("dex lists the redirect URI {}", p.dex_redirect_uri),
        );
    }
    if let Some((_, added)) = &fixes.mesh {
        for (path, what) in added {
            c.changes.push(Change::new(
                format!(
                    "ServiceMesh {}/{} (global)",
                    p.servicemesh_namespace, p.servicemesh_name
                ),
                format!("spec.overlays[IstioOperator] {path}"),
                None,
                Some(what.clone()),
            ));
        }
    } else if !p.servicemesh_name.is_empty() {
        ok(
            c,
            format!(
                "ServiceMesh carries the {} extension provider",
                p.extension_provider
            ),
        );
    }
    let fails = c.checked.iter().filter(|l| l.starts_with("FAIL")).count();
    if fails > 0 {
        c.state = State::Blocked;
        c.why = format!("{fails} preflight check(s) fail; fix each as its line says");
    } else if !c.changes.is_empty() {
        c.state = State::ToDo;
        c.why = format!(
            "{} setting(s) of the global cluster to add",
            c.changes.len()
        );
    } else {
        c.why = format!("{} check(s) passed", c.checked.len());
    }
    Ok(())
}

async fn preflight_fixes(env: &Env) -> Result<Fixes> {
    let p = &env.cfg.preflight;
    let mut fixes = Fixes {
        dex: None,
        mesh: None,
    };
    if !p.dex_redirect_uri.is_empty() {
        let cm = env.global.need("ConfigMap", "")?;
        let Some(obj) = env
            .global
            .get(&cm, Some(&p.dex_namespace), &p.dex_configmap)
            .await?
        else {
            return Err(Error::input(format!(
                "ConfigMap {}/{} not found in the global cluster: check --global-context (kubernetes.global_context)",
                p.dex_namespace, p.dex_configmap
            )));
        };
        let text = obj["data"]["config.yaml"].as_str().unwrap_or_default();
        if !text.contains(&p.dex_redirect_uri) {
            let mut conf: Value = serde_saphyr::from_str(text).map_err(|e| {
                Error::other(format!(
                    "dex config.yaml in {}/{} is not YAML: {e}",
                    p.dex_namespace, p.dex_configmap
                ))
            })?;
            let clients = conf["staticClients"].as_array_mut().ok_or_else(|| {
                Error::other("dex config.yaml has no staticClients: add the redirect URI by hand")
            })?;
            let idx = clients
                .iter()
                .position(|c| c["id"] == "alauda-auth")
                .unwrap_or(0);
            let uris = clients
                .get_mut(idx)
                .and_then(|c| c.get_mut("redirectURIs"))
                .and_then(Value::as_array_mut)
                .ok_or_else(|| {
                    Error::other("dex staticClients have no redirectURIs: add the URI by hand")
                })?;
            uris.push(json!(p.dex_redirect_uri));
            let new_text = serde_saphyr::to_string(&conf)
                .map_err(|e| Error::other(format!("cannot write the dex configuration: {e}")))?;
            fixes.dex = Some((
                json!({"data": {"config.yaml": new_text}}),
                p.dex_redirect_uri.clone(),
            ));
        }
    }
    if !p.servicemesh_name.is_empty()
        && let Some(r) = env.global.resolve("ServiceMesh", Some("asm.alauda.io"))
        && let Some(mesh) = env
            .global
            .get(&r, Some(&p.servicemesh_namespace), &p.servicemesh_name)
            .await?
    {
        let mut overlays = mesh["spec"]["overlays"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let idx = match overlays.iter().position(|o| o["kind"] == "IstioOperator") {
            Some(i) => i,
            None => {
                overlays.push(json!({"kind": "IstioOperator", "patches": []}));
                overlays.len() - 1
            }
        };
        if !overlays[idx]["patches"].is_array() {
            overlays[idx]["patches"] = json!([]);
        }
        let patches = overlays[idx]["patches"]
            .as_array_mut()
            .expect("patches is a list");
        let mut added = Vec::new();
        // Istio must trust dex's certificate to fetch its JWKS; the article leaves a root CA
        // that is already set alone.
        let has_path = |ps: &[Value], path: &str| ps.iter().any(|pt| pt["path"] == path);
        if !has_path(patches, "spec.values.pilot.jwksResolverExtraRootCA")
            && let Some(secret) = env
                .global
                .get(
                    &env.global.need("Secret", "")?,
                    Some(&p.dex_namespace),
                    "dex.tls",
                )
                .await?
            && let Some(crt) = secret["data"]["tls.crt"].as_str()
        {
            use base64::Engine;
            let pem = base64::engine::general_purpose::STANDARD
                .decode(crt)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    Error::other(format!(
                        "Secret {}/dex.tls holds no PEM certificate in tls.crt",
                        p.dex_namespace
                    ))
                })?;
            patches
                .push(json!({"path": "spec.values.pilot.jwksResolverExtraRootCA", "value": pem}));
            added.push((
                "spec.values.pilot.jwksResolverExtraRootCA".to_string(),
                format!("the CA of Secret {}/dex.tls", p.dex_namespace),
            ));
            if !has_path(
                patches,
                "spec.values.pilot.env.PILOT_JWT_PUB_KEY_REFRESH_INTERVAL",
            ) {
                patches.push(json!({"path": "spec.values.pilot.env.PILOT_JWT_PUB_KEY_REFRESH_INTERVAL", "value": "1m"}));
                added.push((
                    "spec.values.pilot.env.PILOT_JWT_PUB_KEY_REFRESH_INTERVAL".to_string(),
                    "1m".to_string(),
                ));
            }
        }
        let names = |v: &Value| -> Vec<String> {
            match v {
                Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x["name"].as_str().map(String::from))
                    .collect(),
                one => one["name"].as_str().map(String::from).into_iter().collect(),
            }
        };
        let providers = patches
            .iter()
            .find(|pt| pt["path"] == "spec.meshConfig.extensionProviders")
            .map(|pt| names(&pt["value"]))
            .unwrap_or_default();
        if !providers.contains(&p.extension_provider) {
            let provider = json!({
                "name": p.extension_provider,
                "envoyExtAuthzHttp": {
                    "headersToDownstreamOnDeny": ["content-type", "set-cookie"],
                    "headersToUpstreamOnAllow": ["authorization", "path", "x-auth-request-user", "x-auth-request-email", "x-auth-request-access-token"],
                    "includeAdditionalHeadersInCheck": {"X-Auth-Request-Redirect": "http://%REQ(Host)%%REQ(:PATH)%"},
                    "includeRequestHeadersInCheck": ["authorization", "cookie", "accept"],
                    "port": "80",
                    "service": p.oauth2_proxy_service,
                }
            });
            match patches
                .iter_mut()
                .find(|pt| pt["path"] == "spec.meshConfig.extensionProviders")
            {
                Some(pt) => {
                    // Providers already there stay; a single provider becomes a list of two.
                    let mut list = match pt["value"].take() {
                        Value::Array(a) => a,
                        Value::Null => vec![],
                        one => vec![one],
                    };
                    list.push(provider);
                    pt["value"] = Value::Array(list);
                }
                None => patches.push(
                    json!({"path": "spec.meshConfig.extensionProviders", "value": [provider]}),
                ),
            }
            added.push((
                "spec.meshConfig.extensionProviders".to_string(),
                format!("+ {} (existing providers kept)", p.extension_provider),
            ));
        }
        if !added.is_empty() {
            fixes.mesh = Some((json!({"spec": {"overlays": overlays}}), added));
        }
    }
    Ok(fixes)
}

async fn fix_preflight(env: &Env) -> Result<()> {
    let p = &env.cfg.preflight;
    let fixes = preflight_fixes(env).await?;
    if let Some((patch, _)) = fixes.dex {
        let cm = env.global.need("ConfigMap", "")?;
        env.global
            .merge_patch(&cm, Some(&p.dex_namespace), &p.dex_configmap, &patch, false)
            .await?;
    }
    if let Some((patch, _)) = fixes.mesh {
        let r = env.global.need("ServiceMesh", "asm.alauda.io")?;
        env.global
            .merge_patch(
                &r,
                Some(&p.servicemesh_namespace),
                &p.servicemesh_name,
                &patch,
                false,
            )
            .await?;
    }
    Ok(())
}

async fn istio_version(env: &Env) -> Result<Option<(String, String)>> {
    let p = &env.cfg.preflight;
    if !p.servicemesh_name.is_empty()
        && let Some(r) = env.global.resolve("ServiceMesh", Some("asm.alauda.io"))
        && let Some(m) = env
            .global
            .get(&r, Some(&p.servicemesh_namespace), &p.servicemesh_name)
            .await?
        && let Some(v) = str_at(&m, "spec.istioVersion")
    {
        return Ok(Some((
            v.to_string(),
            format!("ServiceMesh {}", p.servicemesh_name),
        )));
    }
    if let Some(r) = env.workload.resolve("Deployment", Some("apps"))
        && let Some(d) = env
            .workload
            .get(&r, Some(&p.istiod_namespace), &p.istiod_deployment)
            .await?
        && let Some(img) = d
            .pointer("/spec/template/spec/containers/0/image")
            .and_then(Value::as_str)
        && let Some((_, tag)) = img.rsplit_once(':')
    {
        return Ok(Some((
            tag.to_string(),
            format!("Deployment {}/{}", p.istiod_namespace, p.istiod_deployment),
        )));
    }
    Ok(None)
}

/// `1.22.4+2024…` >= `1.22`: numeric comparison of the leading dotted numbers.
pub(crate) fn version_at_least(have: &str, want: &str) -> bool {
    let nums = |s: &str| -> Vec<u64> {
        s.trim_start_matches('v')
            .split(|c: char| !c.is_ascii_digit() && c != '.')
            .next()
            .unwrap_or("")
            .split('.')
            .filter_map(|x| x.parse().ok())
            .collect()
    };
    let (h, w) = (nums(have), nums(want));
    for i in 0..w.len().max(h.len()) {
        let (a, b) = (
            h.get(i).copied().unwrap_or(0),
            w.get(i).copied().unwrap_or(0),
        );
        if a != b {
            return a > b;
        }
    }
    true
}

async fn mysql_version(url: &crate::mysql::MysqlUrl) -> Result<String> {
    let mut conn = crate::mysql::connect(url).await?;
    let v: Option<String> =
        conn.query_first("SELECT VERSION()")
            .await
            .map_err(|e| Error::Mysql {
                context: "reading the server version".into(),
                source: e,
            })?;
    let _ = conn.disconnect().await;
    Ok(v.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically_and_ignore_build_suffixes() {
        assert!(version_at_least("1.22.4+202408291030", "1.22"));
        assert!(version_at_least("v1.22", "1.22"));
        assert!(version_at_least("1.23.0", "1.22"));
        assert!(!version_at_least("1.21.9", "1.22"));
        assert!(!version_at_least("1.9", "1.22"));
    }
}
