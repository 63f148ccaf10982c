//! What the 1.3 installation is: the plugins' ModuleInfos (found by labels, at a version other
//! than the one the configuration installs) and the `kubeflow` chart application (found by kind
//! and chart name). The snapshot step records it; the uninstall deletes exactly that.

use serde_json::Value;

use super::plugins::{PLUGIN_GROUP, find_plugin, new_version};
use super::{Env, State, StepCheck};
use crate::error::Result;
use crate::kube::{Resource, group_of, name_of, namespace_of, str_at};
use crate::upgrade::journal::{Installation, Recorded};

fn recorded(r: &Resource, o: &Value) -> Recorded {
    Recorded {
        kind: r.ar.kind.clone(),
        api_version: r.ar.api_version.clone(),
        namespace: namespace_of(o).map(String::from),
        name: name_of(o).to_string(),
        uid: str_at(o, "metadata.uid").unwrap_or("").to_string(),
        module: None,
        version: None,
    }
}

/// The 1.3 installation as it is now; `None` (with `c` Blocked and why) when nothing matches
/// or the chart application is ambiguous: the run refuses rather than guesses.
pub(super) async fn find(env: &Env, c: &mut StepCheck) -> Result<Option<Installation>> {
    let u = &env.cfg.uninstall;
    let cluster = &env.cfg.kubernetes.cluster_name;
    let mut inst = Installation::default();
    c.assumptions.push(format!(
        "1.3 plugins: ModuleInfos labelled cpaas.io/cluster-name={cluster}, cpaas.io/module-type=plugin, cpaas.io/module-name in {}, at a version other than the one [[install.plugins]] installs",
        u.plugins.join(", ")
    ));
    if let Some(mi) = env.global.resolve("ModuleInfo", Some(PLUGIN_GROUP)) {
        for module in &u.plugins {
            let new = new_version(env, module);
            for o in find_plugin(env, &mi, module, None).await? {
                let version = str_at(&o, "spec.version");
                if new.is_some() && version == new {
                    continue;
                }
                inst.plugins.push(Recorded {
                    module: Some(module.clone()),
                    version: version.map(String::from),
                    ..recorded(&mi, &o)
                });
            }
        }
    }
    let where_ = u
        .chart_namespace
        .as_deref()
        .map(|n| format!("namespace {n}"))
        .unwrap_or_else(|| "any namespace".into());
    if u.chart.is_empty() {
        c.assumptions.push(
            "the 1.3 installation has no kubeflow chart application ([uninstall] chart = \"\")"
                .into(),
        );
    } else {
        c.assumptions.push(format!(
            "the 1.3 kubeflow chart application: a {} ({}) in {where_} whose chart (spec.chart, last path segment) is {}",
            u.chart_kind, u.chart_api_version, u.chart
        ));
    }
    if !u.chart.is_empty()
        && let Some(r) = env
            .workload
            .resolve(&u.chart_kind, Some(group_of(&u.chart_api_version)))
    {
        for o in env
            .workload
            .list(&r, u.chart_namespace.as_deref(), None, None)
            .await?
        {
            let chart = str_at(&o, "spec.chart").unwrap_or("");
            if chart.rsplit('/').next() == Some(u.chart.as_str()) {
                inst.charts.push(recorded(&r, &o));
            }
        }
    }
    if inst.charts.len() > 1 {
        c.state = State::Blocked;
        c.why = format!(
            "{} chart applications of chart {} ({}): name the one 1.3 installed with uninstall.chart_namespace",
            inst.charts.len(),
            u.chart,
            inst.charts
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(None);
    }
    if !u.chart.is_empty() && inst.charts.is_empty() && !inst.plugins.is_empty() {
        c.state = State::Blocked;
        c.why = format!(
            "1.3 plugins of cluster {cluster} exist, but no {} of chart {} in {where_} (the 1.3 kubeflow chart application the article deletes): name its namespace with [uninstall] chart_namespace, or, if this 1.3 installation has no chart application (plugins only), say so with [uninstall] chart = \"\"; nothing is deleted or installed on a guess",
            u.chart_kind, u.chart
        );
        return Ok(None);
    }
    if inst.is_empty() {
        c.state = State::Blocked;
        c.why = format!(
            "no 1.3 Kubeflow installation found: no plugin ModuleInfo of {} labelled cpaas.io/cluster-name={cluster} (global cluster) and no {} of chart {} (workload cluster); check kubernetes.cluster_name and [uninstall] — nothing is deleted on a guess",
            u.plugins.join(", "),
            u.chart_kind,
            u.chart
        );
        return Ok(None);
    }
    Ok(Some(inst))
}
