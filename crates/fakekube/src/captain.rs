//! Captain, ACP's Helm controller, as far as uninstalling a chart application goes: a deleted
//! `HelmRequest` (app.alauda.io) is uninstalled `delay` later (its finalizers go, so it
//! disappears). Uninstalling the Kubeflow chart deletes every Volcano job (batch.volcano.sh
//! `Job`), as the article warns ("卸载之前的 kubeflow 插件后，所有 vcjob 资源将被删除").

use std::time::Duration;

use serde_json::{Value, json};

use crate::{ChangeKind, FakeKube};

/// The finalizer Captain puts on a HelmRequest it installed.
pub const FINALIZER: &str = "captain.alauda.io";

fn is_kubeflow_chart(hr: &Value) -> bool {
    let chart = hr["spec"]["chart"].as_str().unwrap_or("");
    chart.rsplit('/').next() == Some("kubeflow")
}

/// Starts the controller on `fk` (the workload cluster).
pub fn chart_uninstall(fk: &FakeKube, delay: Duration) {
    fk.on_change(move |c, h| {
        if !c.is("app.alauda.io", "HelmRequest")
            || c.kind == ChangeKind::Deleted
            || c.object["metadata"]["deletionTimestamp"].is_null()
        {
            return;
        }
        let (av, ns, name) = (
            c.api_version().to_string(),
            c.namespace().unwrap_or("").to_string(),
            c.name().to_string(),
        );
        let kubeflow = is_kubeflow_chart(&c.object);
        h.after(delay, move |h| {
            if kubeflow {
                for j in h.list("batch.volcano.sh/v1alpha1", "Job", None) {
                    h.delete(
                        "batch.volcano.sh/v1alpha1",
                        "Job",
                        j["metadata"]["namespace"].as_str(),
                        j["metadata"]["name"].as_str().unwrap_or(""),
                    );
                }
            }
            h.update(&av, "HelmRequest", Some(&ns), &name, |o| {
                o["metadata"]["finalizers"] = json!([]);
            });
        });
    });
}
