//! Step enable-features: the article's "enable the experimental features" — AmlCluster
//! `default` (experimentalFeatures, global.mysql), Aml `default-aml` (amlService), the MySQL
//! password Secret, `MODEL_REPO_BUILDER_DB_*` in each namespace's image-builder ConfigMap and
//! Secret, and `kubectl rollout restart` of `aml-api-deploy`.

use serde_json::{Value, json};
use sha2::Digest;

use super::{Applied, Change, Env, State, StepCheck};
use crate::error::{Error, Result};
use crate::kube::str_at;

const FEATURES_ANNOTATION: &str = "amlmigrate.alauda.io/features";

pub(super) async fn check(env: &Env, c: &mut StepCheck) -> Result<()> {
    c.changes = features(env, false).await?;
    if c.changes.is_empty() {
        c.why = "experimental features on, MySQL settings and image-builder keys in place".into();
    } else {
        c.state = State::ToDo;
        c.why = format!("{} change(s)", c.changes.len());
    }
    Ok(())
}

pub(super) async fn apply(env: &Env) -> Result<Applied> {
    Ok(Applied::changes(features(env, true).await?))
}

fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, x, out);
            }
        }
        _ => out.push((prefix.to_string(), v.clone())),
    }
}

fn at_path<'a>(o: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(o, |v, k| v.get(k))
}

fn show(v: Option<&Value>) -> Option<String> {
    v.map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Patches leaf by leaf: the changes a merge patch would make to `live`.
fn patch_changes(object: &str, live: &Value, patch: &Value) -> Vec<Change> {
    let mut ls = Vec::new();
    leaves("", patch, &mut ls);
    ls.into_iter()
        .filter(|(p, want)| at_path(live, p) != Some(want))
        .map(|(p, want)| {
            Change::new(
                object,
                p.clone(),
                show(at_path(live, &p)),
                show(Some(&want)),
            )
        })
        .collect()
}

async fn features(env: &Env, apply: bool) -> Result<Vec<Change>> {
    use base64::Engine;
    let f = &env.cfg.features;
    let w = &env.workload;
    let mut out = Vec::new();
    let amlcluster_patch = json!({"spec": {"values": {
        "experimentalFeatures": {"datasets": f.datasets, "imageBuilder": f.image_builder, "tuneModels": f.tune_models},
        "global": {"mysql": {
            "database": f.mysql_database, "host": f.mysql_host, "port": f.mysql_port, "user": f.mysql_user,
            "passwordSecretRef": {"name": f.password_secret_name, "namespace": f.password_secret_namespace},
        }},
    }}});
    let aml_patch = json!({"spec": {"values": {"amlService": {
        "trainingPVCSize": f.training_pvc_size,
        "trainingPVCStorageClass": f.training_pvc_storage_class,
        "notebookStorageClass": f.notebook_storage_class,
    }}}});
    for (kind, group, name, patch) in [
        (
            "AmlCluster",
            "amlclusters.aml.dev",
            &f.amlcluster,
            &amlcluster_patch,
        ),
        ("Aml", "amls.aml.dev", &f.aml, &aml_patch),
    ] {
        let r = w.need(kind, group)?;
        let live = w.get(&r, None, name).await?.ok_or_else(|| {
            Error::input(format!(
                "{kind} {name} not found: is the AML operator at 1.4 and its instance created?"
            ))
        })?;
        let ch = patch_changes(&format!("{kind} {name}"), &live, patch);
        if apply && !ch.is_empty() {
            w.merge_patch(&r, None, name, patch, false).await?;
        }
        out.extend(ch);
    }
    let secret_r = w.need("Secret", "")?;
    let password = env
        .cfg
        .mysql_url()?
        .password
        .map(|p| p.expose().to_string())
        .unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&password);
    if f.create_password_secret
        && w.get(
            &secret_r,
            Some(&f.password_secret_namespace),
            &f.password_secret_name,
        )
        .await?
        .is_none()
    {
        out.push(Change::new(
            format!(
                "Secret {}/{}",
                f.password_secret_namespace, f.password_secret_name
            ),
            "data.password",
            None,
            Some("(the MySQL password, hidden)".into()),
        ));
        if apply {
            w.create(&secret_r, Some(&f.password_secret_namespace), &json!({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": f.password_secret_name, "namespace": f.password_secret_namespace,
                             "labels": {"app.kubernetes.io/managed-by": "amlmigrate"}},
                "data": {"password": b64},
            })).await?;
        }
    }
    let cm_r = w.need("ConfigMap", "")?;
    let host = f
        .image_builder_db_host
        .clone()
        .unwrap_or_else(|| f.mysql_host.clone());
    for ns in &f.image_builder_namespaces {
        let data = json!({"data": {
            "MODEL_REPO_BUILDER_DB_DB": f.mysql_database,
            "MODEL_REPO_BUILDER_DB_HOST": host,
            "MODEL_REPO_BUILDER_DB_PORT": f.mysql_port.to_string(),
            "MODEL_REPO_BUILDER_DB_USER": f.mysql_user,
        }});
        let object = format!("ConfigMap {ns}/aml-image-builder-config");
        match w.get(&cm_r, Some(ns), "aml-image-builder-config").await? {
            Some(live) => {
                let ch = patch_changes(&object, &live, &data);
                if apply && !ch.is_empty() {
                    w.merge_patch(&cm_r, Some(ns), "aml-image-builder-config", &data, false)
                        .await?;
                }
                out.extend(ch);
            }
            None => {
                out.push(Change::new(
                    object,
                    "",
                    None,
                    Some("created with the MODEL_REPO_BUILDER_DB_* keys".into()),
                ));
                if apply {
                    let mut obj = data.clone();
                    obj["apiVersion"] = json!("v1");
                    obj["kind"] = json!("ConfigMap");
                    obj["metadata"] = json!({"name": "aml-image-builder-config", "namespace": ns});
                    w.create(&cm_r, Some(ns), &obj).await?;
                }
            }
        }
        let object = format!("Secret {ns}/aml-image-builder-secret");
        let live = w
            .get(&secret_r, Some(ns), "aml-image-builder-secret")
            .await?;
        let have = live
            .as_ref()
            .and_then(|s| str_at(s, "data.MODEL_REPO_BUILDER_DB_PASSWORD"))
            .map(str::to_string);
        if have.as_deref() != Some(b64.as_str()) {
            out.push(Change::new(
                object,
                "data.MODEL_REPO_BUILDER_DB_PASSWORD",
                have.map(|_| "(hidden)".to_string()),
                Some("(the MySQL password, hidden)".into()),
            ));
            if apply {
                let patch = json!({"data": {"MODEL_REPO_BUILDER_DB_PASSWORD": b64}});
                if live.is_some() {
                    w.merge_patch(
                        &secret_r,
                        Some(ns),
                        "aml-image-builder-secret",
                        &patch,
                        false,
                    )
                    .await?;
                } else {
                    let mut obj = patch;
                    obj["apiVersion"] = json!("v1");
                    obj["kind"] = json!("Secret");
                    obj["type"] = json!("Opaque");
                    obj["metadata"] = json!({"name": "aml-image-builder-secret", "namespace": ns});
                    w.create(&secret_r, Some(ns), &obj).await?;
                }
            }
        }
    }
    // `kubectl rollout restart`, once per settings: the settings' hash sits beside restartedAt.
    let hash = {
        let mut h = sha2::Sha256::new();
        h.update(amlcluster_patch.to_string());
        h.update(aml_patch.to_string());
        hex::encode(h.finalize())[..16].to_string()
    };
    let deploy = w.need("Deployment", "apps")?;
    let (ns, name) = (f.restart_namespace.as_str(), f.restart_deployment.as_str());
    if let Some(d) = w.get(&deploy, Some(ns), name).await? {
        let have = d
            .pointer("/spec/template/metadata/annotations")
            .and_then(|a| a.get(FEATURES_ANNOTATION))
            .and_then(Value::as_str);
        if have != Some(hash.as_str()) {
            out.push(Change::new(
                format!("Deployment {ns}/{name}"),
                "rollout",
                None,
                Some("restarted (kubectl rollout restart)".into()),
            ));
            if apply {
                let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                w.merge_patch(
                    &deploy,
                    Some(ns),
                    name,
                    &json!({"spec": {"template": {"metadata": {"annotations": {
                    "kubectl.kubernetes.io/restartedAt": now, FEATURES_ANNOTATION: hash}}}}}),
                    false,
                )
                .await?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_changes_lists_only_the_leaves_that_differ() {
        let live = json!({"spec": {"values": {"a": true, "b": {"c": 1}}}});
        let patch = json!({"spec": {"values": {"a": true, "b": {"c": 2}, "d": "x"}}});
        let ch = patch_changes("AmlCluster default", &live, &patch);
        let s: Vec<String> = ch.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            s,
            [
                "AmlCluster default: spec.values.b.c: 1 → 2",
                "AmlCluster default: spec.values.d: (none) → x"
            ]
        );
    }
}
