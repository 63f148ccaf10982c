//! Step install-plugins: the 1.4 plugins in the article's order (kfbase → kfp → volcano →
//! kftraining → mlflow). Each waits for its package to be pushed (ModuleConfig
//! `<module>-<version>`, a person's `violet push`), has its configuration checked against the
//! form that ModuleConfig publishes (every required field, secrets such as MLflow's pgPassword
//! filled from their password source), is created — or, for volcano, which the article keeps,
//! upgraded in place — and waited for until Running.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::plugins::{PLUGIN_GROUP, find_plugin};
use super::values::{Form, at_path, leaves, patch_changes, set_path};
use super::{Applied, Change, Env, Journal, State, StepCheck, StepId};
use crate::error::{Error, Result};
use crate::kube::{Resource, name_of, str_at};
use crate::upgrade::config::Plugin;
use crate::upgrade::wait::{self, Patience, Poll};

/// What the ModuleInfo of a plugin should carry.
struct Wanted {
    /// spec.config, secrets filled in.
    config: Value,
    secret: BTreeSet<String>,
    /// Why it cannot be installed as configured (missing form fields, passwords).
    problems: Vec<String>,
}

/// The configuration of `p` against its published form (`mc`); secrets are read from their
/// sources, and a value inferred from the configuration is said in `assumptions`.
fn wanted(env: &Env, p: &Plugin, mc: &Value, assumptions: &mut Vec<String>) -> Wanted {
    let mut config = serde_json::to_value(&p.config).unwrap_or_else(|_| json!({}));
    let form = Form(mc);
    let sources = p.secret_sources();
    let mut secret: BTreeSet<String> = form.secret_fields();
    let mut problems = Vec::new();
    for (field, from) in &sources {
        secret.insert(field.clone());
        match env.cfg.password(from) {
            Ok(pw) => set_path(&mut config, field, json!(pw.expose())),
            Err(e) => problems.push(format!("plugin {} form field {field}: {e}", p.module)),
        }
    }
    // MLflow's database user is the migration's: one credential pair with its password.
    if p.module == "mlflow"
        && at_path(&config, "pgUsername").is_none()
        && let Ok(pg) = env.cfg.pg_url()
    {
        assumptions.push(format!(
            "mlflow pgUsername = {} (the [postgres] URL's user, whose password pgPassword gets)",
            pg.user()
        ));
        set_path(&mut config, "pgUsername", json!(pg.user()));
    }
    for field in form.missing(&config) {
        if secret.contains(&field) && !sources.contains_key(&field) {
            problems.push(format!(
                "form field {field} of plugin {} is a secret: say where it comes from with secrets = {{ {field} = \"postgres\" }} (or \"mysql.<name>\") in its [[install.plugins]]",
                p.module
            ));
        } else if !sources.contains_key(&field) {
            problems.push(format!(
                "the {}-{} form requires {field}, which [[install.plugins]] {} config does not set",
                p.module, p.version, p.module
            ));
        }
    }
    Wanted {
        config,
        secret,
        problems,
    }
}

/// A plugin's ModuleInfo as it is now: at the 1.4 version, a kept older one to upgrade in place
/// (volcano), or none.
enum Found {
    At(Value),
    Kept(Value),
    None,
}

async fn found(env: &Env, mi: &Resource, p: &Plugin) -> Result<Found> {
    if let Some(o) = find_plugin(env, mi, &p.module, Some(&p.version))
        .await?
        .into_iter()
        .next()
    {
        return Ok(Found::At(o));
    }
    // A plugin the article keeps installed (volcano) is upgraded in place: one ModuleInfo per
    // plugin, as the platform's own upgrade does.
    if !env.cfg.uninstall.plugins.contains(&p.module)
        && let Some(o) = find_plugin(env, mi, &p.module, None)
            .await?
            .into_iter()
            .next()
    {
        return Ok(Found::Kept(o));
    }
    Ok(Found::None)
}

/// The changes installing `p` makes, given what exists.
fn changes(p: &Plugin, found: &Found, w: &Wanted) -> Vec<Change> {
    match found {
        Found::At(o) => patch_changes(
            &format!("ModuleInfo {} (plugin {})", name_of(o), p.module),
            "spec.config",
            &o["spec"]["config"],
            &w.config,
            &w.secret,
        ),
        Found::Kept(o) => {
            let object = format!(
                "ModuleInfo {} (plugin {}, upgraded in place)",
                name_of(o),
                p.module
            );
            let mut out = vec![Change::new(
                &object,
                "spec.version",
                str_at(o, "spec.version").map(String::from),
                Some(p.version.clone()),
            )];
            out.extend(patch_changes(
                &object,
                "spec.config",
                &o["spec"]["config"],
                &w.config,
                &w.secret,
            ));
            out
        }
        Found::None => {
            let object = format!("ModuleInfo (plugin {})", p.module);
            let mut out = vec![Change::new(
                &object,
                "spec.version",
                None,
                Some(p.version.clone()),
            )];
            out.extend(patch_changes(
                &object,
                "spec.config",
                &json!({}),
                &w.config,
                &w.secret,
            ));
            out
        }
    }
}

async fn module_config(env: &Env, p: &Plugin) -> Result<Option<Value>> {
    let Some(mc) = env.global.resolve("ModuleConfig", Some(PLUGIN_GROUP)) else {
        return Ok(None);
    };
    env.global
        .get(&mc, None, &format!("{}-{}", p.module, p.version))
        .await
}

pub(super) async fn check(env: &Env, c: &mut StepCheck) -> Result<()> {
    let mi = env.global.need("ModuleInfo", PLUGIN_GROUP)?;
    let mut pending = Vec::new();
    let mut unpublished = Vec::new();
    let mut problems = Vec::new();
    for p in &env.cfg.install.plugins {
        let Some(mc) = module_config(env, p).await? else {
            unpublished.push(format!("{}-{}", p.module, p.version));
            pending.push(p.module.clone());
            continue;
        };
        let w = wanted(env, p, &mc, &mut c.assumptions);
        problems.extend(w.problems.iter().cloned());
        let found = found(env, &mi, p).await?;
        let ch = changes(p, &found, &w);
        match &found {
            Found::At(o) if ch.is_empty() && str_at(o, "status.phase") == Some("Running") => {
                c.checked
                    .push(format!("ok   {} {} Running", p.module, p.version));
            }
            Found::At(o) => {
                pending.push(p.module.clone());
                if ch.is_empty() {
                    c.checked.push(format!(
                        "{} {} is {}{}",
                        p.module,
                        p.version,
                        str_at(o, "status.phase").unwrap_or("not Running yet"),
                        str_at(o, "status.message")
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    ));
                }
            }
            _ => pending.push(p.module.clone()),
        }
        c.changes.extend(ch);
    }
    if pending.is_empty() {
        c.why = "every 1.4 plugin is Running with its configuration".into();
    } else if !problems.is_empty() {
        c.state = State::Blocked;
        c.why = format!(
            "a plugin cannot be installed as configured: {}",
            problems.join("; ")
        );
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
    for p in &cfg.plugins {
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
                Ok(module_config(env, p)
                    .await?
                    .is_none()
                    .then(|| format!("ModuleConfig {published}")))
            },
        )
        .await?;
        let mc = module_config(env, p).await?.unwrap_or_default();
        let w = wanted(env, p, &mc, &mut Vec::new());
        if !w.problems.is_empty() {
            return Err(Error::Refused(format!(
                "plugin {} {} cannot be installed as configured: {}",
                p.module,
                p.version,
                w.problems.join("; ")
            )));
        }
        let found = found(env, &mi, p).await?;
        out.extend(changes(p, &found, &w));
        let name = write(env, &mi, p, &found, &w).await?;
        wait_running(env, journal, &mi, p, &name).await?;
    }
    Ok(Applied::changes(out))
}

/// Creates or patches the ModuleInfo; its name.
async fn write(env: &Env, mi: &Resource, p: &Plugin, found: &Found, w: &Wanted) -> Result<String> {
    let mut differs = Vec::new();
    leaves("", &w.config, &mut differs);
    match found {
        Found::At(o) => {
            let live = &o["spec"]["config"];
            if differs.iter().any(|(k, v)| at_path(live, k) != Some(v)) {
                env.global
                    .merge_patch(
                        mi,
                        None,
                        name_of(o),
                        &json!({"spec": {"config": w.config}}),
                        false,
                    )
                    .await?;
            }
            Ok(name_of(o).to_string())
        }
        Found::Kept(o) => {
            env.global
                .merge_patch(
                    mi,
                    None,
                    name_of(o),
                    &json!({"spec": {"version": p.version, "config": w.config}}),
                    false,
                )
                .await?;
            Ok(name_of(o).to_string())
        }
        Found::None => {
            let cluster = &env.cfg.kubernetes.cluster_name;
            let obj = json!({
                "apiVersion": mi.ar.api_version,
                "kind": "ModuleInfo",
                "metadata": {
                    "generateName": format!("{cluster}-"),
                    "labels": {
                        "cpaas.io/cluster-name": cluster,
                        "cpaas.io/module-name": p.module,
                        "cpaas.io/module-type": "plugin",
                    },
                    "annotations": {"cpaas.io/module-name": p.module},
                },
                "spec": {"version": p.version, "config": w.config},
            });
            let created = env.global.create(mi, None, &obj).await?.ok_or_else(|| {
                Error::other(format!(
                    "creating the ModuleInfo of plugin {} collided with an existing name; run the same command again",
                    p.module
                ))
            })?;
            Ok(name_of(&created).to_string())
        }
    }
}

async fn wait_running(
    env: &Env,
    journal: &mut Journal,
    mi: &Resource,
    p: &Plugin,
    name: &str,
) -> Result<()> {
    let cfg = &env.cfg.install;
    let what = format!(
        "plugin {} {} (ModuleInfo {name}) to be Running",
        p.module, p.version
    );
    env.note(format!("waiting for {what}"));
    super::record_polling(journal, StepId::InstallPlugins, &what, cfg.timeout).await?;
    let mut failed = wait::Unchanged::default();
    wait::until(
        &env.cancel,
        Patience::new(cfg.timeout, cfg.poll),
        async || {
            let o = env.global.get(mi, None, name).await?.ok_or_else(|| {
                Error::other(format!(
                    "ModuleInfo {name} of plugin {} disappeared while installing; run the same command again",
                    p.module
                ))
            })?;
            let phase = str_at(&o, "status.phase").unwrap_or("");
            // Running for this spec: the version it reports, and (when the controller says)
            // the generation it looked at.
            let current = o["status"]["version"] == o["spec"]["version"]
                && (o["status"]["observedGeneration"].is_null()
                    || o["status"]["observedGeneration"] == o["metadata"]["generation"]);
            if phase == "Running" && current {
                return Ok(Poll::Ready(()));
            }
            let message = ["status.message", "status.reason"]
                .iter()
                .find_map(|f| str_at(&o, f))
                .unwrap_or("");
            let steady = failed.observe((phase == "Failed").then(|| message.to_string()));
            if phase == "Failed" && steady >= cfg.failed_grace {
                return Err(Error::Other(format!(
                    "plugin {} {} (ModuleInfo {name}) failed: {message} (unchanged for {}); \
                     fix the plugin or its package (Administrator → Marketplace → Cluster Plugins), \
                     then run the same command to resume",
                    p.module,
                    p.version,
                    humantime::format_duration(round_secs(steady)),
                )));
            }
            let msg = if message.is_empty() {
                String::new()
            } else {
                format!(", message: {message}")
            };
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
    .await
}

fn round_secs(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(d.as_secs())
}
