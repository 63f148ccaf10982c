//! Istio and the ServiceMesh (global cluster): the version (at least 1.22), not in CNI mode, not
//! ServiceMesh v2 (the article: "ask for help"), and the IstioOperator overlay the article asks
//! for — the `oauth2-proxy-kubeflow` extension provider in a patch entry of its own next to the
//! existing ones, and dex's CA
//! as `jwksResolverExtraRootCA` with `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL` when no root CA is set.

use serde_json::{Value, json};

use super::Env;
use crate::error::{Error, Result};
use crate::kube::{Resource, name_of, namespace_of, str_at};
use crate::upgrade::config::Preflight;

/// The label of istio-cni's node agent pods (what its DaemonSet runs).
const CNI_POD_LABEL: &str = "k8s-app=istio-cni-node";

/// The workload cluster's ServiceMesh in the global cluster, when configured and there.
pub(super) async fn servicemesh(env: &Env) -> Result<Option<(Resource, Value)>> {
    let p = &env.cfg.preflight;
    if p.servicemesh_name.is_empty() {
        return Ok(None);
    }
    let Some(r) = env.global.resolve("ServiceMesh", Some("asm.alauda.io")) else {
        return Ok(None);
    };
    Ok(env
        .global
        .get(&r, Some(&p.servicemesh_namespace), &p.servicemesh_name)
        .await?
        .map(|m| (r, m)))
}

/// ServiceMesh v2, for which the article says to ask for help: the ServiceMesh kind served at
/// a version the overlay is not written for, or a Sail operator `Istio` (what Alauda Service
/// Mesh v2 deploys).
pub(super) async fn servicemesh_v2(env: &Env) -> Result<Option<String>> {
    let p = &env.cfg.preflight;
    for c in [&env.global, &env.workload] {
        if let Some(r) = c.resolve("ServiceMesh", Some("asm.alauda.io"))
            && !p.servicemesh_v1_versions.contains(&r.ar.version)
        {
            return Ok(Some(format!(
                "ServiceMesh is served as {} (the article's overlay is for {})",
                r.ar.api_version,
                p.servicemesh_v1_versions.join(", ")
            )));
        }
        if let Some(r) = c.resolve("Istio", Some("sailoperator.io")) {
            let found = c.list(&r, None, None, None).await?;
            if let Some(i) = found.first() {
                return Ok(Some(format!(
                    "Istio {} ({}) is managed by the Sail operator",
                    name_of(i),
                    r.ar.api_version
                )));
            }
        }
    }
    Ok(None)
}

/// Istio in CNI mode: the DaemonSet `istio_cni_daemonset`, or pods of istio-cni's node agent.
pub(super) async fn cni_mode(env: &Env) -> Result<Option<String>> {
    let w = &env.workload;
    let name = &env.cfg.preflight.istio_cni_daemonset;
    if let Some(r) = w.resolve("DaemonSet", Some("apps")) {
        for d in w.list(&r, None, None, None).await? {
            if name_of(&d) == name {
                return Ok(Some(format!(
                    "DaemonSet {}/{}",
                    namespace_of(&d).unwrap_or(""),
                    name_of(&d)
                )));
            }
        }
    }
    let pods = w.need("Pod", "")?;
    Ok(w.list(&pods, None, Some(CNI_POD_LABEL), None)
        .await?
        .first()
        .map(|p| {
            format!(
                "Pod {}/{} ({CNI_POD_LABEL})",
                namespace_of(p).unwrap_or(""),
                name_of(p)
            )
        }))
}

/// The ServiceMesh merge patch the article's overlay needs, and per overlay path what it adds
/// (`None`: nothing to add); warnings for what cannot be added.
pub(super) async fn mesh_fix(
    env: &Env,
    mesh: &Value,
    warnings: &mut Vec<String>,
) -> Result<Option<(Value, Added)>> {
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
    root_ca(env, patches, &mut added, warnings).await?;
    extension_provider(&env.cfg.preflight, patches, &mut added);
    Ok((!added.is_empty()).then(|| (json!({"spec": {"overlays": overlays}}), added)))
}

type Added = Vec<(String, String)>;

/// Istio must trust dex's certificate to fetch its JWKS: dex's CA as `jwksResolverExtraRootCA`
/// with the refresh interval, unless a root CA is set already (the article leaves it alone).
async fn root_ca(
    env: &Env,
    patches: &mut Vec<Value>,
    added: &mut Added,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let p = &env.cfg.preflight;
    let has_path = |ps: &[Value], path: &str| ps.iter().any(|pt| pt["path"] == path);
    let has_ca = has_path(patches, "spec.values.pilot.jwksResolverExtraRootCA");
    let dex_tls = if has_ca {
        None
    } else {
        env.global
            .get(
                &env.global.need("Secret", "")?,
                Some(&p.dex_namespace),
                "dex.tls",
            )
            .await?
    };
    if !has_ca && dex_tls.is_none() {
        warnings.push(format!(
                "Secret {}/dex.tls not found in the global cluster: jwksResolverExtraRootCA cannot be added, so Istio may not trust dex's JWKS; add the CA that signed dex's certificate to the ServiceMesh by hand",
                p.dex_namespace
            ));
    }
    if !has_ca
        && let Some(secret) = &dex_tls
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
        patches.push(json!({"path": "spec.values.pilot.jwksResolverExtraRootCA", "value": pem}));
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
    Ok(())
}

const PROVIDERS: &str = "spec.meshConfig.extensionProviders";

/// The provider names an overlay patch entry's `value` holds: a list of providers or one.
fn provider_names(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x["name"].as_str().map(String::from))
            .collect(),
        one => one["name"].as_str().map(String::from).into_iter().collect(),
    }
}

/// The `oauth2-proxy-kubeflow` extension provider in a patch entry of its own whose `value` is
/// that one provider, as the article writes it; the entries already there (their providers)
/// are left exactly as they are.
fn extension_provider(p: &Preflight, patches: &mut Vec<Value>, added: &mut Added) {
    let present = patches
        .iter()
        .filter(|pt| pt["path"] == PROVIDERS)
        .flat_map(|pt| provider_names(&pt["value"]))
        .any(|n| n == p.extension_provider);
    if present {
        return;
    }
    let provider = json!({
        "envoyExtAuthzHttp": {
            "headersToDownstreamOnDeny": ["content-type", "set-cookie"],
            "headersToUpstreamOnAllow": ["authorization", "path", "x-auth-request-user", "x-auth-request-email", "x-auth-request-access-token"],
            "includeAdditionalHeadersInCheck": {"X-Auth-Request-Redirect": "http://%REQ(Host)%%REQ(:PATH)%"},
            "includeRequestHeadersInCheck": ["authorization", "cookie", "accept"],
            "port": "80",
            "service": p.oauth2_proxy_service,
        },
        "name": p.extension_provider,
    });
    let kept = patches
        .iter()
        .filter(|pt| pt["path"] == PROVIDERS)
        .flat_map(|pt| provider_names(&pt["value"]))
        .count();
    patches.push(json!({"path": PROVIDERS, "value": provider}));
    added.push((
        PROVIDERS.to_string(),
        format!(
            "+ {} (a patch entry of its own; {kept} existing provider(s) untouched)",
            p.extension_provider
        ),
    ));
}

pub(super) async fn istio_version(env: &Env) -> Result<Option<(String, String)>> {
    let p = &env.cfg.preflight;
    if let Some((_, m)) = servicemesh(env).await?
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
pub(super) fn version_at_least(have: &str, want: &str) -> bool {
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

    /// The patches after the provider is added to `patches`.
    fn with_provider(patches: Value) -> (Vec<Value>, Added) {
        let mut patches = patches.as_array().unwrap().clone();
        let mut added = Vec::new();
        extension_provider(&Preflight::default(), &mut patches, &mut added);
        (patches, added)
    }

    fn one(name: &str) -> Value {
        json!({"name": name, "opentelemetry": {"service": "otel", "port": 4317}})
    }

    #[test]
    fn the_provider_gets_a_patch_entry_of_its_own_whose_value_is_one_provider() {
        for before in [
            json!([]),
            json!([{"path": PROVIDERS, "value": [one("a")]}]),
            json!([{"path": PROVIDERS, "value": one("a")}]),
            json!([{"path": PROVIDERS, "value": [one("a"), one("b")]}]),
            json!([{"path": "spec.values.pilot.env.X", "value": "1m"}, {"path": PROVIDERS, "value": one("a")}, {"path": PROVIDERS, "value": one("b")}]),
        ] {
            let (after, added) = with_provider(before.clone());
            let n = before.as_array().unwrap().len();
            // Every entry there before is untouched, in its place; one entry is added.
            assert_eq!(
                &after[..n],
                before.as_array().unwrap().as_slice(),
                "{before}"
            );
            assert_eq!(after.len(), n + 1, "{before}");
            let new = &after[n];
            assert_eq!(new["path"], PROVIDERS);
            assert!(new["value"].is_object(), "the value is one provider: {new}");
            assert_eq!(new["value"]["name"], "oauth2-proxy-kubeflow");
            assert_eq!(new["value"]["envoyExtAuthzHttp"]["port"], "80");
            assert_eq!(added.len(), 1);
            // Added once: a second pass finds it.
            let (again, added) = with_provider(json!(after));
            assert_eq!(again, after);
            assert!(added.is_empty());
        }
    }

    #[test]
    fn a_provider_already_listed_under_that_name_is_not_added_again() {
        let mut mine = one("oauth2-proxy-kubeflow");
        mine["note"] = json!("configured by hand");
        let before = json!([{"path": PROVIDERS, "value": [one("a"), mine]}]);
        let (after, added) = with_provider(before.clone());
        assert_eq!(json!(after), before);
        assert!(added.is_empty());
    }
}
