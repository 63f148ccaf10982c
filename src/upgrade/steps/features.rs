//! Step enable-features: the article's "check the features and the MySQL settings" after the
//! upgrade — AmlCluster `default` (experimentalFeatures, global.mysql), Aml `default-aml`
//! (amlService), the MySQL password Secret, `MODEL_REPO_BUILDER_DB_*` in each namespace's
//! image-builder ConfigMap and Secret, and `kubectl rollout restart` of `aml-api-deploy`.
//!
//! A value the configuration leaves unset keeps what the live object has (an in-cluster MySQL
//! host stays); where neither says anything the step refuses and names the key to set. The user
//! and the password written everywhere are one pair, AML's own account: the `features.credentials`
//! MySQL source when named, else the live one kept. Passwords are shown as `(hidden)`.

use std::collections::BTreeSet;

use base64::Engine;
use serde_json::{Value, json};
use sha2::Digest;

use super::values::{at_path, patch_changes, show};
use super::{Applied, Change, Env, State, StepCheck};
use crate::error::{Error, Result};
use crate::kube::{Resource, str_at};
use crate::secret::Secret;
use crate::upgrade::config::AML_SOURCE;

const FEATURES_ANNOTATION: &str = "amlmigrate.alauda.io/features";
const CONFIGMAP: &str = "aml-image-builder-config";
const SECRET: &str = "aml-image-builder-secret";

/// One write the step makes.
enum Write {
    Patch(Resource, Option<String>, String, Value),
    Create(Resource, Option<String>, Value),
}

#[derive(Default)]
struct Planned {
    writes: Vec<Write>,
    changes: Vec<Change>,
}

impl Planned {
    fn patch(&mut self, r: &Resource, ns: Option<&str>, name: &str, patch: Value, ch: Vec<Change>) {
        if !ch.is_empty() {
            self.writes.push(Write::Patch(
                r.clone(),
                ns.map(String::from),
                name.to_string(),
                patch,
            ));
            self.changes.extend(ch);
        }
    }
}

/// What the features get: the two operator patches and the MySQL settings they hold.
struct Settings {
    amlcluster: Value,
    aml: Value,
    host: Value,
    port: Value,
    database: Value,
    user: String,
    password: Secret,
    secret_ns: String,
    secret_name: String,
}

/// The configured value, else the live one, else `None` with the key to set recorded.
fn pick(
    configured: Option<Value>,
    live: Option<&Value>,
    key: &str,
    missing: &mut Vec<String>,
) -> Value {
    configured.or_else(|| live.cloned()).unwrap_or_else(|| {
        missing.push(key.to_string());
        Value::Null
    })
}

async fn settings(
    env: &Env,
    c: &mut StepCheck,
    ac: &Value,
    aml: &Value,
) -> Result<Option<Settings>> {
    let f = &env.cfg.features;
    let mysql = &ac["spec"]["values"]["global"]["mysql"];
    let service = &aml["spec"]["values"]["amlService"];
    let mut missing = Vec::new();
    let host = pick(
        f.mysql_host.clone().map(Value::from),
        at_path(mysql, "host"),
        "features.mysql_host (the address the cluster reaches the AML MySQL at)",
        &mut missing,
    );
    let port = pick(
        f.mysql_port.map(Value::from),
        at_path(mysql, "port"),
        "features.mysql_port",
        &mut missing,
    );
    let database = match (f.mysql_database.clone(), at_path(mysql, "database")) {
        (Some(d), _) => Value::from(d),
        (None, Some(d)) => d.clone(),
        (None, None) => match env
            .cfg
            .mysql
            .get(AML_SOURCE)
            .and_then(|s| s.databases.first())
        {
            Some(d) => {
                c.assumptions.push(format!(
                    "global.mysql.database = {d} (the first database of [mysql.{AML_SOURCE}])"
                ));
                Value::from(d.clone())
            }
            None => pick(None, None, "features.mysql_database", &mut missing),
        },
    };
    let amlservice = aml_service(f, service, &mut missing);
    let (secret_name, secret_ns) = secret_ref(f, &mysql["passwordSecretRef"], c);
    let (user, password) = account(env, c, mysql, (&secret_ns, &secret_name), &mut missing).await?;
    if !missing.is_empty() {
        c.state = State::Blocked;
        c.why = format!(
            "neither the configuration nor the live objects say: {}; set them in [features]",
            missing.join(", ")
        );
        return Ok(None);
    }
    let amlcluster = json!({"spec": {"values": {
        "experimentalFeatures": {"datasets": f.datasets, "imageBuilder": f.image_builder, "tuneModels": f.tune_models},
        "global": {"mysql": {
            "database": database, "host": host, "port": port, "user": user,
            "passwordSecretRef": {"name": secret_name, "namespace": secret_ns},
        }},
    }}});
    Ok(Some(Settings {
        amlcluster,
        aml: json!({"spec": {"values": {"amlService": amlservice}}}),
        host,
        port,
        database,
        user,
        password,
        secret_ns,
        secret_name,
    }))
}

/// AML's database account: the `[mysql.*]` source `features.credentials` names, else the live
/// one (the AmlCluster's user, the password its Secret holds). The snapshot account is never
/// taken unnamed. The plan says which and whence, never the password.
async fn account(
    env: &Env,
    c: &mut StepCheck,
    mysql: &Value,
    (ns, name): (&str, &str),
    missing: &mut Vec<String>,
) -> Result<(String, Secret)> {
    const SET: &str =
        "features.credentials (the [mysql.*] source whose user and password AML uses)";
    if let Some(source) = &env.cfg.features.credentials {
        let user = env.cfg.mysql_url(source)?.user;
        let password = env
            .cfg
            .password(&format!("mysql.{source}"))
            .unwrap_or_else(|e| {
                missing.push(e.to_string());
                Secret::new("")
            });
        c.checked.push(format!(
            "ok   AML's database account: user {user} of [mysql.{source}] (features.credentials)"
        ));
        return Ok((user, password));
    }
    let secret_r = env.workload.need("Secret", "")?;
    let live = env.workload.get(&secret_r, Some(ns), name).await?;
    let password = live
        .as_ref()
        .and_then(|s| str_at(s, "data.password"))
        .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
        .and_then(|p| String::from_utf8(p).ok())
        .filter(|p| !p.is_empty());
    match (str_at(mysql, "user").filter(|u| !u.is_empty()), password) {
        (Some(user), Some(password)) => {
            c.checked.push(format!(
                "ok   AML's database account: user {user}, kept from the live AmlCluster {} global.mysql.user and the password of Secret {ns}/{name} (features.credentials unset)",
                env.cfg.features.amlcluster
            ));
            Ok((user.to_string(), Secret::new(password)))
        }
        _ => {
            missing.push(format!(
                "{SET}: the live AmlCluster has no global.mysql.user or Secret {ns}/{name} no data.password"
            ));
            Ok((String::new(), Secret::new("")))
        }
    }
}

/// Aml `amlService`: configured, else live, else missing.
fn aml_service(
    f: &crate::upgrade::config::Features,
    service: &Value,
    missing: &mut Vec<String>,
) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for (key, name, cfg) in [
        ("trainingPVCSize", "training_pvc_size", &f.training_pvc_size),
        (
            "trainingPVCStorageClass",
            "training_pvc_storage_class",
            &f.training_pvc_storage_class,
        ),
        (
            "notebookStorageClass",
            "notebook_storage_class",
            &f.notebook_storage_class,
        ),
    ] {
        let v = pick(
            cfg.clone().map(Value::from),
            at_path(service, key),
            &format!("features.{name}"),
            missing,
        );
        out.insert(key.into(), v);
    }
    out
}

/// The password Secret: configured, else the live `passwordSecretRef`, else the article's.
fn secret_ref(
    f: &crate::upgrade::config::Features,
    live: &Value,
    c: &mut StepCheck,
) -> (String, String) {
    match (
        f.password_secret_name
            .clone()
            .or_else(|| str_at(live, "name").map(String::from)),
        f.password_secret_namespace
            .clone()
            .or_else(|| str_at(live, "namespace").map(String::from)),
    ) {
        (Some(n), Some(ns)) => (n, ns),
        (n, ns) => {
            c.assumptions.push(
                "passwordSecretRef: the article's Secret cpaas-system/aml-mysql-root-token (neither configured nor set live)".into(),
            );
            (
                n.unwrap_or_else(|| "aml-mysql-root-token".into()),
                ns.unwrap_or_else(|| "cpaas-system".into()),
            )
        }
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Every write the step would make now; `None` (c Blocked) when it cannot say.
async fn plan(env: &Env, c: &mut StepCheck) -> Result<Option<Planned>> {
    let f = &env.cfg.features;
    let w = &env.workload;
    let ac_r = w.need("AmlCluster", "amlclusters.aml.dev")?;
    let aml_r = w.need("Aml", "amls.aml.dev")?;
    let deploy_r = w.need("Deployment", "apps")?;
    let (Some(ac), Some(aml)) = (
        w.get(&ac_r, None, &f.amlcluster).await?,
        w.get(&aml_r, None, &f.aml).await?,
    ) else {
        c.state = State::Blocked;
        c.why = format!(
            "AmlCluster {} or Aml {} not found: is the AML operator at 1.4 and its instances created?",
            f.amlcluster, f.aml
        );
        return Ok(None);
    };
    let Some(deploy) = w
        .get(&deploy_r, Some(&f.restart_namespace), &f.restart_deployment)
        .await?
    else {
        c.state = State::Blocked;
        c.why = format!(
            "Deployment {}/{} not found: the article restarts it after the settings change (is AML 1.4 running? features.restart_*)",
            f.restart_namespace, f.restart_deployment
        );
        return Ok(None);
    };
    let Some(s) = settings(env, c, &ac, &aml).await? else {
        return Ok(None);
    };
    let mut p = Planned::default();
    let none = BTreeSet::new();
    for (r, name, live, patch) in [
        (&ac_r, &f.amlcluster, &ac, &s.amlcluster),
        (&aml_r, &f.aml, &aml, &s.aml),
    ] {
        let ch = patch_changes(&format!("{} {name}", r.ar.kind), "", live, patch, &none);
        p.patch(r, None, name, patch.clone(), ch);
    }
    password_secret(env, c, &s, &mut p).await?;
    image_builder(env, c, &s, &mut p).await?;
    restart(env, &s, &deploy_r, &deploy, &mut p);
    Ok(Some(p))
}

/// The Secret `global.mysql.passwordSecretRef` names holds the credentials' password.
async fn password_secret(
    env: &Env,
    c: &mut StepCheck,
    s: &Settings,
    p: &mut Planned,
) -> Result<()> {
    let f = &env.cfg.features;
    let w = &env.workload;
    let secret_r = w.need("Secret", "")?;
    let pw = b64(s.password.expose());
    let object = format!("Secret {}/{}", s.secret_ns, s.secret_name);
    match w.get(&secret_r, Some(&s.secret_ns), &s.secret_name).await? {
        Some(live) if str_at(&live, "data.password") != Some(pw.as_str()) => {
            if f.create_password_secret {
                p.patch(
                    &secret_r,
                    Some(&s.secret_ns),
                    &s.secret_name,
                    json!({"data": {"password": pw}}),
                    vec![Change::hidden(&object, "data.password", true)],
                );
            } else {
                c.warnings.push(format!(
                    "{object} holds another password than AML's database account's and create_password_secret = false: AML will not reach MySQL with it"
                ));
            }
        }
        Some(_) => {}
        None if f.create_password_secret => {
            p.writes.push(Write::Create(
                secret_r.clone(),
                Some(s.secret_ns.clone()),
                json!({
                    "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": s.secret_name, "namespace": s.secret_ns,
                                 "labels": {"app.kubernetes.io/managed-by": "amlmigrate"}},
                    "data": {"password": pw},
                }),
            ));
            p.changes.push(Change::hidden(&object, "data.password", false));
        }
        None => c.warnings.push(format!(
            "{object} does not exist and create_password_secret = false: AML cannot reach MySQL until it does"
        )),
    }
    Ok(())
}

/// A ConfigMap or Secret of a namespace: patched with `data`, or created holding it.
fn upsert(
    p: &mut Planned,
    r: &Resource,
    ns: &str,
    name: &str,
    live: Option<&Value>,
    data: Value,
    changes: Vec<Change>,
) {
    match live {
        Some(_) => p.patch(r, Some(ns), name, data, changes),
        None if !changes.is_empty() => {
            let mut obj = data;
            obj["apiVersion"] = json!("v1");
            obj["kind"] = json!(r.ar.kind);
            if r.ar.kind == "Secret" {
                obj["type"] = json!("Opaque");
            }
            obj["metadata"] = json!({"name": name, "namespace": ns});
            p.writes
                .push(Write::Create(r.clone(), Some(ns.to_string()), obj));
            p.changes.extend(changes);
        }
        None => {}
    }
}

/// Each namespace's image-builder ConfigMap (`MODEL_REPO_BUILDER_DB_*`, live values kept, the
/// credentials' user) and Secret (the credentials' password).
async fn image_builder(env: &Env, c: &mut StepCheck, s: &Settings, p: &mut Planned) -> Result<()> {
    let f = &env.cfg.features;
    let w = &env.workload;
    let secret_r = w.need("Secret", "")?;
    let cm_r = w.need("ConfigMap", "")?;
    let ns_r = w.need("Namespace", "")?;
    let pw = b64(s.password.expose());
    for ns in &f.image_builder_namespaces {
        if w.get(&ns_r, None, ns).await?.is_none() {
            c.warnings.push(format!(
                "namespace {ns} (features.image_builder_namespaces) does not exist: its image-builder settings are not written"
            ));
            continue;
        }
        let live = w.get(&cm_r, Some(ns), CONFIGMAP).await?;
        let keep = |key: &str, default: Value| -> Value {
            live.as_ref()
                .and_then(|o| o["data"].get(key))
                .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                .cloned()
                .unwrap_or(default)
        };
        let host = match &f.image_builder_db_host {
            Some(h) => Value::from(h.clone()),
            None => keep("MODEL_REPO_BUILDER_DB_HOST", s.host.clone()),
        };
        let data = json!({"data": {
            "MODEL_REPO_BUILDER_DB_DB": keep("MODEL_REPO_BUILDER_DB_DB", Value::from(show(Some(&s.database)))),
            "MODEL_REPO_BUILDER_DB_HOST": host,
            "MODEL_REPO_BUILDER_DB_PORT": keep("MODEL_REPO_BUILDER_DB_PORT", Value::from(show(Some(&s.port)))),
            "MODEL_REPO_BUILDER_DB_USER": s.user,
        }});
        let object = format!("ConfigMap {ns}/{CONFIGMAP}");
        let ch = match &live {
            Some(l) => patch_changes(&object, "", l, &data, &BTreeSet::new()),
            None => vec![Change::new(
                &object,
                "",
                None,
                Some("created with the MODEL_REPO_BUILDER_DB_* keys".into()),
            )],
        };
        upsert(p, &cm_r, ns, CONFIGMAP, live.as_ref(), data, ch);
        let live = w.get(&secret_r, Some(ns), SECRET).await?;
        let key = "MODEL_REPO_BUILDER_DB_PASSWORD";
        let have = live
            .as_ref()
            .and_then(|s| s["data"].get(key))
            .and_then(Value::as_str);
        let ch = if have == Some(pw.as_str()) {
            Vec::new()
        } else {
            vec![Change::hidden(
                format!("Secret {ns}/{SECRET}"),
                format!("data.{key}"),
                have.is_some(),
            )]
        };
        upsert(
            p,
            &secret_r,
            ns,
            SECRET,
            live.as_ref(),
            json!({"data": {key: pw}}),
            ch,
        );
    }
    Ok(())
}

/// `kubectl rollout restart`, once per settings: their hash sits beside restartedAt.
fn restart(env: &Env, s: &Settings, deploy_r: &Resource, deploy: &Value, p: &mut Planned) {
    let f = &env.cfg.features;
    let hash = {
        let mut h = sha2::Sha256::new();
        h.update(s.amlcluster.to_string());
        h.update(s.aml.to_string());
        h.update(b64(s.password.expose()));
        hex::encode(h.finalize())[..16].to_string()
    };
    let have = deploy
        .pointer("/spec/template/metadata/annotations")
        .and_then(|a| a.get(FEATURES_ANNOTATION))
        .and_then(Value::as_str);
    if have == Some(hash.as_str()) {
        return;
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    p.writes.push(Write::Patch(
        deploy_r.clone(),
        Some(f.restart_namespace.clone()),
        f.restart_deployment.clone(),
        json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": now, FEATURES_ANNOTATION: hash}}}}}),
    ));
    p.changes.push(Change::new(
        format!(
            "Deployment {}/{}",
            f.restart_namespace, f.restart_deployment
        ),
        "rollout",
        None,
        Some("restarted (kubectl rollout restart)".into()),
    ));
}

pub(super) async fn check(env: &Env, c: &mut StepCheck) -> Result<()> {
    let Some(p) = plan(env, c).await? else {
        return Ok(());
    };
    c.changes = p.changes;
    if c.changes.is_empty() {
        c.why = "experimental features on, MySQL settings and image-builder keys in place".into();
    } else {
        c.state = State::ToDo;
        c.why = format!("{} change(s)", c.changes.len());
    }
    Ok(())
}

pub(super) async fn apply(env: &Env) -> Result<Applied> {
    let mut c = super::new_check(super::StepId::EnableFeatures);
    let Some(p) = plan(env, &mut c).await? else {
        return Err(Error::Refused(format!("enable-features: {}", c.why)));
    };
    let w = &env.workload;
    for write in p.writes {
        match write {
            Write::Patch(r, ns, name, patch) => {
                w.merge_patch(&r, ns.as_deref(), &name, &patch, false)
                    .await?;
            }
            Write::Create(r, ns, obj) => {
                w.create(&r, ns.as_deref(), &obj).await?;
            }
        }
    }
    Ok(Applied {
        changes: p.changes,
        facts: crate::upgrade::journal::Facts {
            warnings: c.warnings,
            ..Default::default()
        },
    })
}
