//! Step uninstall-plugins: the 1.3 plugins in the article's order (MLFlow → Training Operator
//! → Pipelines → Base), each deleted and waited for until gone, then the 1.3 `kubeflow` chart
//! application.

use serde_json::Value;

use super::plugins::{PLUGIN_GROUP, find_plugin, new_version};
use super::{Applied, Change, Env, State, StepCheck, describe};
use crate::error::Result;
use crate::kube::{group_of, name_of, str_at};

pub(super) async fn check(env: &Env, c: &mut StepCheck) -> Result<()> {
    let (old, chart) = old_plugins(env).await?;
    for (module, o) in &old {
        c.changes.push(Change::new(
            format!("ModuleInfo {} (plugin {module})", name_of(o)),
            "",
            str_at(o, "spec.version").map(|v| format!("installed {v}")),
            Some("deleted".into()),
        ));
    }
    if let Some(ch) = &chart {
        c.changes.push(Change::new(
            describe(ch),
            "",
            Some("exists".into()),
            Some("deleted".into()),
        ));
    }
    if c.changes.is_empty() {
        c.why = "no 1.3 plugin and no kubeflow chart application left".into();
    } else {
        c.state = State::ToDo;
        c.why = format!(
            "in order {}: delete and wait until gone",
            env.cfg.uninstall.plugins.join(" → ")
        );
    }
    Ok(())
}

pub(super) async fn apply(env: &Env) -> Result<Applied> {
    let mi = env.global.need("ModuleInfo", PLUGIN_GROUP)?;
    let mut out = Vec::new();
    for module in &env.cfg.uninstall.plugins {
        let new_version = new_version(env, module);
        for o in find_plugin(env, &mi, module, None).await? {
            if new_version.is_some() && str_at(&o, "spec.version") == new_version {
                continue;
            }
            env.note(format!(
                "uninstalling plugin {module} (ModuleInfo {})",
                name_of(&o)
            ));
            env.global.delete(&mi, None, name_of(&o)).await?;
            super::wait_gone(env, &env.global, &mi, None, name_of(&o)).await?;
            out.push(Change::new(
                format!("ModuleInfo {} (plugin {module})", name_of(&o)),
                "",
                str_at(&o, "spec.version").map(|v| format!("installed {v}")),
                Some("deleted".into()),
            ));
        }
    }
    let (_, chart) = old_plugins(env).await?;
    if let Some(ch) = chart {
        out.push(super::delete_and_wait(env, &ch).await?);
    }
    Ok(Applied::changes(out))
}

pub(super) async fn old_plugins(env: &Env) -> Result<(Vec<(String, Value)>, Option<Value>)> {
    let mut old = Vec::new();
    if let Some(mi) = env.global.resolve("ModuleInfo", Some(PLUGIN_GROUP)) {
        for module in &env.cfg.uninstall.plugins {
            let new = new_version(env, module);
            for o in find_plugin(env, &mi, module, None).await? {
                if new.is_none() || str_at(&o, "spec.version") != new {
                    old.push((module.clone(), o));
                }
            }
        }
    }
    let u = &env.cfg.uninstall;
    let chart = match env
        .workload
        .resolve(&u.chart_kind, Some(group_of(&u.chart_api_version)))
    {
        Some(r) => {
            env.workload
                .get(&r, Some(&u.chart_namespace), &u.chart_name)
                .await?
        }
        None => None,
    };
    Ok((old, chart))
}
