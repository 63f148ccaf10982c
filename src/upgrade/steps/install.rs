//! Step install-plugins: the 1.4 plugins in the article's order (kfbase → kfp → volcano →
//! kftraining → mlflow). Each waits for its package to be pushed (ModuleConfig
//! `<module>-<version>`, a person's `violet push`), is created (volcano, which the article
//! keeps, is upgraded in place) and waited for until Running.

use serde_json::{Value, json};

use super::plugins::{PLUGIN_GROUP, find_plugin};
use super::{Applied, Change, Env, Journal, State, StepCheck, StepId};
use crate::error::{Error, Result};
use crate::kube::{name_of, str_at};
use crate::upgrade::wait::{self, Patience, Poll};

pub(super) async fn check(env: &Env, c: &mut StepCheck) -> Result<()> {
    let mi = env.global.need("ModuleInfo", PLUGIN_GROUP)?;
    let mut pending = Vec::new();
    for p in &env.cfg.install.plugins {
        match find_plugin(env, &mi, &p.module, Some(&p.version))
            .await?
            .first()
        {
            Some(o) if str_at(o, "status.phase") == Some("Running") => {
                c.checked
                    .push(format!("ok   {} {} Running", p.module, p.version));
            }
            Some(o) => {
                pending.push(p.module.clone());
                c.changes.push(Change::new(
                    format!("ModuleInfo {} (plugin {})", name_of(o), p.module),
                    "status.phase",
                    str_at(o, "status.phase").map(str::to_string),
                    Some("Running".into()),
                ));
            }
            None => {
                pending.push(p.module.clone());
                let kept = if env.cfg.uninstall.plugins.contains(&p.module) {
                    Vec::new()
                } else {
                    find_plugin(env, &mi, &p.module, None).await?
                };
                c.changes.push(match kept.first() {
                    Some(o) => Change::new(
                        format!(
                            "ModuleInfo {} (plugin {}, upgraded in place)",
                            name_of(o),
                            p.module
                        ),
                        "spec.version",
                        str_at(o, "spec.version").map(str::to_string),
                        Some(p.version.clone()),
                    ),
                    None => Change::new(
                        format!("ModuleInfo (plugin {})", p.module),
                        "spec.version",
                        None,
                        Some(p.version.clone()),
                    ),
                });
            }
        }
    }
    let mut unpublished = Vec::new();
    if let Some(mc) = env.global.resolve("ModuleConfig", Some(PLUGIN_GROUP)) {
        for p in &env.cfg.install.plugins {
            let name = format!("{}-{}", p.module, p.version);
            if env.global.get(&mc, None, &name).await?.is_none() {
                unpublished.push(name);
            }
        }
    }
    if pending.is_empty() {
        c.why = "every 1.4 plugin is Running".into();
    } else if !unpublished.is_empty() {
        c.state = State::Manual;
        c.why = format!(
            "plugin package(s) not pushed yet (no ModuleConfig {}): push them with violet push; the run waits for them, then installs {}",
            unpublished.join(", "),
            pending.join(" → ")
        );
    } else {
        c.state = State::ToDo;
        c.why = format!("to install or wait for: {}", pending.join(" → "));
    }
    Ok(())
}

pub(super) async fn apply(env: &Env, journal: &mut Journal) -> Result<Applied> {
    let mi = env.global.need("ModuleInfo", PLUGIN_GROUP)?;
    let cfg = &env.cfg.install;
    let mut out = Vec::new();
    let mc = env.global.resolve("ModuleConfig", Some(PLUGIN_GROUP));
    for p in &cfg.plugins {
        if let Some(mc) = &mc {
            let published = format!("{}-{}", p.module, p.version);
            super::wait_for_person(
                env,
                journal,
                StepId::InstallPlugins,
                &format!(
                    "push the {} {} plugin package to the platform (violet push), then check it under Marketplace → Upload Packages → Cluster Plugins",
                    p.module, p.version
                ),
                Patience::new(cfg.timeout, cfg.poll),
                async || {
                    Ok(env
                        .global
                        .get(mc, None, &published)
                        .await?
                        .is_none()
                        .then(|| format!("ModuleConfig {published}")))
                },
            )
            .await?;
        }
        let existing = find_plugin(env, &mi, &p.module, Some(&p.version)).await?;
        // A plugin the article keeps installed (volcano) is upgraded in place: one ModuleInfo
        // per plugin, as the platform's own upgrade does.
        let kept = if existing.is_empty() && !env.cfg.uninstall.plugins.contains(&p.module) {
            find_plugin(env, &mi, &p.module, None)
                .await?
                .into_iter()
                .next()
        } else {
            None
        };
        let name = match (existing.first(), kept) {
            (Some(o), _) => name_of(o).to_string(),
            (None, Some(o)) => {
                let patch = json!({"spec": {"version": p.version, "config": serde_json::to_value(&p.config).unwrap_or(Value::Null)}});
                env.global
                    .merge_patch(&mi, None, name_of(&o), &patch, false)
                    .await?;
                out.push(Change::new(
                    format!("ModuleInfo {} (plugin {})", name_of(&o), p.module),
                    "spec.version",
                    str_at(&o, "spec.version").map(str::to_string),
                    Some(p.version.clone()),
                ));
                name_of(&o).to_string()
            }
            (None, None) => {
                let obj = json!({
                    "apiVersion": mi.ar.api_version,
                    "kind": "ModuleInfo",
                    "metadata": {
                        "generateName": format!("{}-", env.cfg.kubernetes.cluster_name),
                        "labels": {
                            "cpaas.io/cluster-name": env.cfg.kubernetes.cluster_name,
                            "cpaas.io/module-name": p.module,
                            "cpaas.io/module-type": "plugin",
                        },
                        "annotations": {"cpaas.io/module-name": p.module},
                    },
                    "spec": {
                        "version": p.version,
                        "config": serde_json::to_value(&p.config).unwrap_or(Value::Null),
                    }
                });
                let created = env.global.create(&mi, None, &obj).await?.ok_or_else(|| {
                    Error::other(format!("creating the ModuleInfo of plugin {} collided with an existing name; run the same command again", p.module))
                })?;
                out.push(Change::new(
                    format!("ModuleInfo {} (plugin {})", name_of(&created), p.module),
                    "spec.version",
                    None,
                    Some(p.version.clone()),
                ));
                name_of(&created).to_string()
            }
        };
        env.note(format!(
            "waiting for plugin {} {} (ModuleInfo {name}) to be Running",
            p.module, p.version
        ));
        let patience = Patience::new(cfg.timeout, cfg.poll);
        wait::until(
            &env.cancel,
            patience,
            async || {
                let o = env.global.get(&mi, None, &name).await?.ok_or_else(|| {
                    Error::other(format!("ModuleInfo {name} of plugin {} disappeared while installing; run the same command again", p.module))
                })?;
                let phase = str_at(&o, "status.phase").unwrap_or("");
                if phase == "Running" {
                    return Ok(Poll::Ready(()));
                }
                let msg = ["status.message", "status.reason"]
                    .iter()
                    .find_map(|f| str_at(&o, f))
                    .map(|m| format!(", message: {m}"))
                    .unwrap_or_default();
                Ok(Poll::Pending(format!(
                    "status.phase is {}{msg}",
                    if phase.is_empty() { "empty" } else { phase }
                )))
            },
            |state| {
                Error::Other(format!(
                    "plugin {} {} (ModuleInfo {name}) did not reach Running within {}: {state}; \
                     fix the plugin (Administrator → Marketplace → Cluster Plugins), then run the same command to resume",
                    p.module,
                    p.version,
                    humantime::format_duration(cfg.timeout),
                ))
            },
        )
        .await?;
    }
    Ok(Applied::changes(out))
}
