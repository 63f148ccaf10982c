//! Step install-plugins: the 1.4 plugins, each after what its published package depends on
//! (the article's kfbase → kfp → volcano → kftraining → mlflow). Each waits for its package
//! (ModuleConfig `<module>-<version>`, a person's `violet push`) to be ready for deploy, has its
//! configuration checked whole against the form that package publishes (every key a field of
//! its `deployDescriptors` or `config`, of the field's type, every required one there, secrets
//! such as MLflow's pgPassword filled from their password source), is created — or, for
//! volcano, which the article keeps, upgraded in place when the package supports it — and is
//! waited for, found by its labels, until the platform calls it ready.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::form::{Form, in_range};
use super::plugins::{InstallApi, PLUGIN_GROUP, find_plugin, ready, wait_ready};
use super::values::{at_path, leaves, patch_changes, set_path};
use super::{Applied, Change, Env, Journal, State, StepCheck, StepId};
use crate::error::{Error, Result};
use crate::kube::{Resource, name_of, str_at};
use crate::upgrade::config::Plugin;
use crate::upgrade::wait::Patience;

/// What the ModuleInfo of a plugin should carry.
struct Wanted {
    /// spec.config, secrets filled in.
    config: Value,
    secret: BTreeSet<String>,
    /// Why it cannot be installed as configured (form fields unknown, missing, mistyped;
    /// passwords).
    problems: Vec<String>,
}

/// The configuration of `p` against its published form; secrets are read from their sources,
/// and a value inferred from the configuration is said in `assumptions`.
fn wanted(env: &Env, p: &Plugin, form: &Form, assumptions: &mut Vec<String>) -> Wanted {
    let mut config = serde_json::to_value(&p.config).unwrap_or_else(|_| json!({}));
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
    for key in form.unknown(&config) {
        problems.push(format!(
            "[[install.plugins]] {} sets {key}, which is not a field of the published {} form (its fields: {}); correct or remove it",
            p.module,
            form.name,
            form.paths()
        ));
    }
    for w in form.wrong_types(&config) {
        problems.push(format!(
            "[[install.plugins]] {} config: {w} (the published {} form)",
            p.module, form.name
        ));
    }
    for field in form.missing(&config) {
        if secret.contains(&field) && !sources.contains_key(&field) {
            problems.push(format!(
                "form field {field} of plugin {} is a secret: say where it comes from with secrets = {{ {field} = \"postgres\" }} (or \"mysql.<name>\") in its [[install.plugins]]",
                p.module
            ));
        } else if !sources.contains_key(&field) {
            problems.push(format!(
                "the {} form requires {field}, which [[install.plugins]] {} config does not set",
                form.name, p.module
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

/// The published package of `p`, read into its form (`None`: not pushed yet).
async fn published(env: &Env, p: &Plugin) -> Result<Option<Form>> {
    let Some(mc) = env.global.resolve("ModuleConfig", Some(PLUGIN_GROUP)) else {
        return Ok(None);
    };
    Ok(env
        .global
        .get(&mc, None, &format!("{}-{}", p.module, p.version))
        .await?
        .map(|o| Form::of(&o)))
}

/// The configured plugins, each after those its package depends on, otherwise in the
/// configuration's order (a cycle keeps that order).
fn ordered<'a>(plugins: &'a [Plugin], forms: &BTreeMap<String, Form>) -> Vec<&'a Plugin> {
    let mut left: Vec<&Plugin> = plugins.iter().collect();
    let mut out = Vec::new();
    while !left.is_empty() {
        // A package not published yet says nothing: it waits for the ones that did.
        let free = left
            .iter()
            .position(|p| {
                forms.get(&p.module).is_some_and(|f| {
                    f.dependencies
                        .iter()
                        .all(|d| d.module == p.module || !left.iter().any(|q| q.module == d.module))
                })
            })
            .or_else(|| left.iter().position(|p| !forms.contains_key(&p.module)));
        out.push(left.remove(free.unwrap_or(0)));
    }
    out
}

/// Why `p` cannot be installed as its package says: a dependency that neither this run
/// installs nor the cluster runs at a matching version, or an in-place upgrade from a version
/// the package does not support.
async fn rule_problems(
    env: &Env,
    mi: &Resource,
    p: &Plugin,
    form: &Form,
    found: &Found,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let cluster = &env.cfg.kubernetes.cluster_name;
    for d in &form.dependencies {
        let range = if d.versions.is_empty() {
            String::new()
        } else {
            format!(" {}", d.versions)
        };
        if let Some(q) = env
            .cfg
            .install
            .plugins
            .iter()
            .find(|q| q.module == d.module)
        {
            if !in_range(&d.versions, &q.version) {
                out.push(format!(
                    "the {} package needs {}{range}, but [[install.plugins]] {} installs {}",
                    form.name, d.module, d.module, q.version
                ));
            }
            continue;
        }
        let kept = !env.cfg.uninstall.plugins.contains(&d.module);
        let live = find_plugin(env, mi, &d.module, None).await?;
        if !(kept
            && live
                .iter()
                .any(|o| in_range(&d.versions, str_at(o, "status.version").unwrap_or(""))))
        {
            out.push(format!(
                "the {} package needs plugin {}{range} on cluster {cluster}, which this configuration does not install and the cluster will not run: add an [[install.plugins]] {}",
                form.name, d.module, d.module
            ));
        }
    }
    if let Found::Kept(o) = found {
        let installed = str_at(o, "status.version")
            .or(str_at(o, "spec.version"))
            .unwrap_or("");
        if !in_range(&form.supported_upgrade, installed) {
            out.push(format!(
                "{} {installed} cannot be upgraded in place to {}: the {} package supports in-place upgrades from {} only; reinstall it as the article does: add \"{}\" to [uninstall] plugins (the snapshot records it, the uninstall removes it, this step installs {})",
                p.module, p.version, form.name, form.supported_upgrade, p.module, p.version
            ));
        }
    }
    Ok(out)
}

/// The published forms of the configured plugins that are ready for deploy, and the names of
/// those that are not (yet).
async fn packages(env: &Env) -> Result<(BTreeMap<String, Form>, Vec<String>)> {
    let mut forms = BTreeMap::new();
    let mut waiting = Vec::new();
    for p in &env.cfg.install.plugins {
        match published(env, p).await? {
            Some(f) if f.ready_for_deploy => {
                forms.insert(p.module.clone(), f);
            }
            Some(f) => waiting.push(format!("{} (pushed, not ready for deploy yet)", f.name)),
            None => waiting.push(format!("no ModuleConfig {}-{}", p.module, p.version)),
        }
    }
    Ok((forms, waiting))
}

/// `module version` of each configured plugin the platform does not call ready at its version.
async fn not_ready(env: &Env, mi: &Resource) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for p in &env.cfg.install.plugins {
        let live = find_plugin(env, mi, &p.module, Some(&p.version)).await?;
        if !live.iter().any(|o| ready(o, &p.version).is_ok()) {
            out.push(format!("{} {}", p.module, p.version));
        }
    }
    Ok(out)
}

/// Why this platform's install API cannot install what is left to install.
async fn api_refusal(env: &Env, mi: &Resource) -> Result<Option<String>> {
    let api = InstallApi::of(env);
    if api == InstallApi::ModuleInfo {
        return Ok(None);
    }
    Ok(api.refusal(&not_ready(env, mi).await?))
}

/// What refuses the install of the published packages as configured (checked before anything
/// is deleted: preflight and the uninstall ask for it).
pub(super) async fn refusals(env: &Env) -> Result<Vec<String>> {
    let mi = env.global.need("ModuleInfo", PLUGIN_GROUP)?;
    let (forms, _) = packages(env).await?;
    let mut out: Vec<String> = api_refusal(env, &mi).await?.into_iter().collect();
    for p in &env.cfg.install.plugins {
        if let Some(form) = forms.get(&p.module) {
            out.extend(wanted(env, p, form, &mut Vec::new()).problems);
            let found = found(env, &mi, p).await?;
            out.extend(rule_problems(env, &mi, p, form, &found).await?);
        }
    }
    Ok(out)
}

pub(super) async fn check(env: &Env, c: &mut StepCheck) -> Result<()> {
    let mi = env.global.need("ModuleInfo", PLUGIN_GROUP)?;
    let (forms, unpublished) = packages(env).await?;
    let order = ordered(&env.cfg.install.plugins, &forms);
    let mut pending = Vec::new();
    let mut problems = Vec::new();
    for p in &order {
        let Some(form) = forms.get(&p.module) else {
            pending.push(p.module.clone());
            continue;
        };
        if !form.target_cluster_versions.is_empty() {
            // No public source gives a cluster's ACP version to compare with.
            c.checked.push(format!(
                "note the {} package deploys on ACP {} (targetClusterVersions): not checked, amlmigrate knows no source of this cluster's ACP version; check it by hand",
                form.name, form.target_cluster_versions
            ));
        }
        let w = wanted(env, p, form, &mut c.assumptions);
        problems.extend(w.problems.iter().cloned());
        let found = found(env, &mi, p).await?;
        problems.extend(rule_problems(env, &mi, p, form, &found).await?);
        let ch = changes(p, &found, &w);
        match &found {
            Found::At(o) if ch.is_empty() && ready(o, &p.version).is_ok() => {
                c.checked.push(format!(
                    "ok   {} {} ready (Running, every appRelease ready)",
                    p.module, p.version
                ));
            }
            Found::At(o) => {
                pending.push(p.module.clone());
                if ch.is_empty()
                    && let Err(not) = ready(o, &p.version)
                {
                    c.checked.push(format!(
                        "{} {} is not ready yet: {not}{}",
                        p.module,
                        p.version,
                        str_at(o, "status.message")
                            .map(|m| format!(" ({m})"))
                            .unwrap_or_default()
                    ));
                }
            }
            _ => pending.push(p.module.clone()),
        }
        c.changes.extend(ch);
    }
    let order: Vec<&str> = order.iter().map(|p| p.module.as_str()).collect();
    c.checked.push(InstallApi::of(env).describe());
    let refused = api_refusal(env, &mi).await?;
    if pending.is_empty() {
        c.why = "every 1.4 plugin is ready with its configuration".into();
    } else if let Some(refused) = refused {
        c.state = State::Blocked;
        c.why = refused;
    } else if !problems.is_empty() {
        c.state = State::Blocked;
        c.why = format!(
            "a plugin cannot be installed as configured: {}",
            problems.join("; ")
        );
    } else if !unpublished.is_empty() {
        c.state = State::Manual;
        c.why = format!(
            "plugin package(s) not pushed or not ready for deploy yet ({}): push them with violet push; the run waits for them, then installs {} (the order their packages' dependencies give)",
            unpublished.join(", "),
            order.join(" → ")
        );
    } else {
        c.state = State::ToDo;
        c.why = format!(
            "to install or wait for, in the order the packages' dependencies give: {}",
            pending.join(" → ")
        );
    }
    Ok(())
}

pub(super) async fn apply(env: &Env, journal: &mut Journal) -> Result<Applied> {
    let mi = env.global.need("ModuleInfo", PLUGIN_GROUP)?;
    let cfg = &env.cfg.install;
    if let Some(refused) = api_refusal(env, &mi).await? {
        return Err(Error::Refused(refused));
    }
    // Every package first: the order comes from what they publish.
    for p in &cfg.plugins {
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
                Ok(match published(env, p).await? {
                    Some(f) if f.ready_for_deploy => None,
                    Some(f) => Some(format!("ModuleConfig {} ready for deploy", f.name)),
                    None => Some(format!("ModuleConfig {}-{}", p.module, p.version)),
                })
            },
        )
        .await?;
    }
    let (forms, _) = packages(env).await?;
    let mut out = Vec::new();
    for p in ordered(&cfg.plugins, &forms) {
        let form = forms.get(&p.module).ok_or_else(|| {
            Error::other(format!(
                "the {} {} package is no longer ready for deploy; run the same command again",
                p.module, p.version
            ))
        })?;
        let w = wanted(env, p, form, &mut Vec::new());
        let found = found(env, &mi, p).await?;
        let mut problems = w.problems.clone();
        problems.extend(rule_problems(env, &mi, p, form, &found).await?);
        if !problems.is_empty() {
            return Err(Error::Refused(format!(
                "plugin {} {} cannot be installed as configured: {}",
                p.module,
                p.version,
                problems.join("; ")
            )));
        }
        out.extend(changes(p, &found, &w));
        write(env, &mi, p, &found, &w).await?;
        wait_ready(env, journal, &mi, p).await?;
    }
    Ok(Applied::changes(out))
}

/// Creates or patches the ModuleInfo (the platform may rename what it is given).
async fn write(env: &Env, mi: &Resource, p: &Plugin, found: &Found, w: &Wanted) -> Result<()> {
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
            Ok(())
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
            Ok(())
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
            env.global.create(mi, None, &obj).await?.ok_or_else(|| {
                Error::other(format!(
                    "creating the ModuleInfo of plugin {} collided with an existing name; run the same command again",
                    p.module
                ))
            })?;
            Ok(())
        }
    }
}
