//! Step preflight: what the article requires before anything changes (x86_64 nodes, Istio at
//! least 1.22 and not in CNI mode, not ServiceMesh v2, each MySQL source and its databases, an
//! external Kubeflow Pipelines MySQL at 5.7, PostgreSQL, the storage class, the repository) and
//! whether the global cluster's settings it asks for (dex's redirect URI equal to kfbase's
//! oidcRedirectURL, the ServiceMesh's oauth2 extension provider and dex's CA) can be added;
//! step global-settings adds them, after the snapshot. Preflight writes nothing.

use mysql_async::prelude::Queryable;
use serde_json::Value;

use super::mesh::{cni_mode, istio_version, servicemesh_v2, version_at_least};
use super::{Applied, Env, State, StepCheck, global};
use crate::error::{Error, Result};
use crate::kube::{name_of, str_at};

pub(super) async fn check(env: &Env, c: &mut StepCheck) -> Result<()> {
    checks(env, c).await?;
    // What step global-settings will add, read here so that an edit it could not make is known
    // before anything is deleted; nothing is written until after the snapshot.
    let fixes = global::fixes(env, c).await?;
    for ch in global::changes(env, &fixes) {
        ok(
            c,
            format!(
                "{} can take {} {}: step global-settings adds it after the snapshot",
                ch.object,
                ch.field,
                ch.new.unwrap_or_default()
            ),
        );
    }
    let fails = c.failures().count();
    if fails > 0 {
        c.state = State::Blocked;
        c.why = format!("{fails} preflight check(s) fail; fix each as its line says");
    } else {
        c.why = format!("{} check(s) passed", c.checked.len());
    }
    Ok(())
}

pub(super) async fn apply(env: &Env) -> Result<Applied> {
    let mut c = super::new_check(super::StepId::Preflight);
    check(env, &mut c).await?;
    if c.state == State::Blocked {
        return Err(Error::Refused(format!(
            "preflight: {}",
            c.failures().cloned().collect::<Vec<_>>().join("; ")
        )));
    }
    Ok(Applied::default())
}

fn ok(c: &mut StepCheck, s: String) {
    c.checked.push(format!("ok   {s}"));
}

fn fail(c: &mut StepCheck, s: String) {
    c.checked.push(format!("FAIL {s}"));
}

/// The read-only checks, one line each.
async fn checks(env: &Env, c: &mut StepCheck) -> Result<()> {
    let p = &env.cfg.preflight;
    match crate::upgrade::platform::verify(
        &env.workload,
        &env.global,
        &env.cfg.kubernetes.cluster_name,
    )
    .await?
    {
        Ok(line) => ok(c, line),
        Err(why) => fail(c, why),
    }
    nodes(env, c).await?;
    match istio_version(env).await? {
        Some((v, from)) if version_at_least(&v, &p.istio_min_version) => {
            ok(c, format!("Istio {v} >= {} ({from})", p.istio_min_version))
        }
        Some((v, from)) => fail(
            c,
            format!(
                "Istio {v} ({from}) is older than {}: upgrade the service mesh first",
                p.istio_min_version
            ),
        ),
        None => fail(
            c,
            format!(
                "no Istio found (ServiceMesh {}/{} or Deployment {}/{}): deploy Istio >= {} (non-CNI), e.g. with Alauda Service Mesh",
                p.servicemesh_namespace,
                p.servicemesh_name,
                p.istiod_namespace,
                p.istiod_deployment,
                p.istio_min_version
            ),
        ),
    }
    c.assumptions.push(format!(
        "Istio's CNI mode shows as a DaemonSet {} or pods labelled k8s-app=istio-cni-node",
        p.istio_cni_daemonset
    ));
    match cni_mode(env).await? {
        None => ok(c, "Istio is not in CNI mode".into()),
        Some(what) => fail(
            c,
            format!(
                "Istio runs in CNI mode ({what}); the article requires non-CNI mode: deploy the mesh without istio-cni"
            ),
        ),
    }
    if let Some(why) = servicemesh_v2(env).await? {
        fail(
            c,
            format!(
                "ServiceMesh v2: {why}; the article's oauth2-proxy settings are for ServiceMesh v1 and for v2 it says to ask for help: contact Alauda support before upgrading"
            ),
        );
    }
    databases(env, c).await?;
    storage_and_repository(env, c).await?;
    gateway(env, c).await?;
    workspace(env, c).await?;
    // The configured forms against what the platform publishes, before anything is deleted.
    let refused = super::install::refusals(env).await?;
    if refused.is_empty() {
        ok(
            c,
            "the published 1.4 plugin packages accept the configuration (every key a field of their form, of its type; dependencies and in-place upgrades allowed)".into(),
        );
    }
    for r in refused {
        fail(c, r);
    }
    Ok(())
}

async fn nodes(env: &Env, c: &mut StepCheck) -> Result<()> {
    let arch_wanted = &env.cfg.preflight.architecture;
    let nodes = env.workload.need("Node", "")?;
    let list = env.workload.list(&nodes, None, None, None).await?;
    let bad: Vec<String> = list
        .iter()
        .filter_map(|n| {
            let arch = str_at(n, "status.nodeInfo.architecture")
                .or_else(|| {
                    n.pointer("/metadata/labels/kubernetes.io~1arch")
                        .and_then(Value::as_str)
                })
                .unwrap_or("unknown");
            (arch != arch_wanted).then(|| format!("{} is {arch}", name_of(n)))
        })
        .collect();
    if bad.is_empty() {
        ok(c, format!("{} node(s), all {arch_wanted}", list.len()));
    } else {
        fail(
            c,
            format!(
                "nodes: {}; some AML plugins run only on {arch_wanted} (x86_64): remove or cordon those nodes",
                bad.join(", ")
            ),
        );
    }
    Ok(())
}

/// Each MySQL source answers and holds its databases; an external KFP MySQL is 5.7; the MLflow
/// PostgreSQL answers.
async fn databases(env: &Env, c: &mut StepCheck) -> Result<()> {
    for (name, src) in &env.cfg.mysql {
        let url = env.cfg.mysql_url(name)?;
        let mut conn = match crate::mysql::connect(&url).await {
            Ok(conn) => conn,
            Err(e) => {
                fail(c, format!("MySQL source {name}: {e}"));
                continue;
            }
        };
        let version: Option<String> = conn.query_first("SELECT VERSION()").await.ok().flatten();
        let have: Vec<String> = conn
            .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
            .await
            .map_err(|e| Error::mysql(format!("listing the databases of source {name}"), e))?;
        let _ = conn.disconnect().await;
        let v = version.unwrap_or_default();
        let missing: Vec<&String> = src.databases.iter().filter(|d| !have.contains(d)).collect();
        if missing.is_empty() {
            ok(
                c,
                format!(
                    "MySQL source {name} {} reachable, version {v}, databases: {}",
                    url.redacted(),
                    if src.databases.is_empty() {
                        "(none asked)".to_string()
                    } else {
                        src.databases.join(", ")
                    }
                ),
            );
        } else {
            fail(
                c,
                format!(
                    "MySQL source {name} {}: database(s) {} not found: fix [mysql.{name}] databases",
                    url.redacted(),
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        if src.external {
            if v.starts_with("5.7") {
                ok(
                    c,
                    format!("external Kubeflow Pipelines MySQL ({name}) is {v}"),
                );
            } else {
                fail(
                    c,
                    format!(
                        "MySQL source {name} {} is {v}; Kubeflow Pipelines needs MySQL 5.7: use a 5.7 (PXC) instance or the built-in one",
                        url.redacted()
                    ),
                );
            }
        }
    }
    let pg = env.cfg.pg_url()?;
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
        Err(e) => fail(c, format!("MLflow PostgreSQL: {e}")),
    }
    Ok(())
}

async fn storage_and_repository(env: &Env, c: &mut StepCheck) -> Result<()> {
    let p = &env.cfg.preflight;
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
            fail(
                c,
                format!(
                    "storage class {} does not exist: create it or set preflight.storage_class (and features.*_storage_class) to one that does",
                    p.storage_class
                ),
            );
        }
    }
    match env
        .repo
        .put_run_file(".probe", "writable", b"ok".to_vec())
        .await
    {
        Ok(()) => ok(c, format!("repository {} writable", env.repo.location())),
        Err(e) => fail(c, format!("repository: {e}")),
    }
    Ok(())
}

/// The Istio ingress gateway kfbase's `istioGatewaySelector` names (the article creates it
/// first and copies its pod label into the form): without it users cannot reach Kubeflow.
async fn gateway(env: &Env, c: &mut StepCheck) -> Result<()> {
    let Some(kfbase) = env
        .cfg
        .install
        .plugins
        .iter()
        .find(|p| p.module == "kfbase")
    else {
        return Ok(());
    };
    let config = serde_json::to_value(&kfbase.config).unwrap_or_default();
    let selector: Vec<(String, String)> = config["istioGatewaySelector"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect();
    let shown: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if selector.is_empty() {
        fail(
            c,
            "[[install.plugins]] kfbase sets no istioGatewaySelector: create the Kubeflow Istio ingress gateway (NodePort) as the article says and copy its pod label there".into(),
        );
        return Ok(());
    }
    let deploy = env.workload.need("Deployment", "apps")?;
    let found: Vec<String> = env
        .workload
        .list(&deploy, None, None, None)
        .await?
        .iter()
        .filter(|d| {
            let labels = &d["spec"]["template"]["metadata"]["labels"];
            selector.iter().all(|(k, v)| labels[k] == v.as_str())
        })
        .map(|d| {
            format!(
                "{}/{}",
                crate::kube::namespace_of(d).unwrap_or(""),
                name_of(d)
            )
        })
        .collect();
    if found.is_empty() {
        fail(
            c,
            format!(
                "no Istio ingress gateway has the pod label {} that kfbase's istioGatewaySelector names (no Deployment's pods carry it): create the gateway (NodePort) as the article says, or set istioGatewaySelector to its pod label",
                shown.join(",")
            ),
        );
    } else {
        ok(
            c,
            format!(
                "Istio ingress gateway {} carries kfbase's istioGatewaySelector {}",
                found.join(", "),
                shown.join(",")
            ),
        );
    }
    Ok(())
}

/// The Workspace plugin the article lists (AML workspaces' backend controller): installed on
/// this cluster, or one the run installs.
async fn workspace(env: &Env, c: &mut StepCheck) -> Result<()> {
    let module = &env.cfg.preflight.workspace_module;
    if env.cfg.install.plugins.iter().any(|p| &p.module == module) {
        ok(
            c,
            format!("the Workspace plugin ({module}) is installed by this run"),
        );
        return Ok(());
    }
    let mi = env
        .global
        .need("ModuleInfo", super::plugins::PLUGIN_GROUP)?;
    let live = super::plugins::find_plugin(env, &mi, module, None).await?;
    match live
        .iter()
        .find(|o| str_at(o, "status.phase") == Some("Running"))
    {
        Some(o) => ok(
            c,
            format!(
                "the Workspace plugin ({module} {}) runs on cluster {}",
                str_at(o, "status.version").unwrap_or("?"),
                env.cfg.kubernetes.cluster_name
            ),
        ),
        None => fail(
            c,
            format!(
                "the Workspace plugin (AML workspaces' backend controller, module {module}) is neither installed on cluster {} nor in [[install.plugins]]: push it with violet push and add an [[install.plugins]] {module} (the article's 部署插件 list)",
                env.cfg.kubernetes.cluster_name
            ),
        ),
    }
    Ok(())
}
