//! ACP cluster plugins: a plugin is a `ModuleInfo` of the global cluster found by its labels
//! (the platform names it), `ModuleConfig` `<module>-<version>` is a published package.

use serde_json::Value;

use super::Env;
use crate::error::Result;
use crate::kube::{Resource, str_at};

pub(super) const PLUGIN_GROUP: &str = "cluster.alauda.io";

/// The 1.4 version the configuration installs for a module.
pub(super) fn new_version<'a>(env: &'a Env, module: &str) -> Option<&'a str> {
    env.cfg
        .install
        .plugins
        .iter()
        .find(|p| p.module == module)
        .map(|p| p.version.as_str())
}

/// ModuleInfos of a plugin on our cluster, found by labels (ACP renames them).
pub(super) async fn find_plugin(
    env: &Env,
    mi: &Resource,
    module: &str,
    version: Option<&str>,
) -> Result<Vec<Value>> {
    let labels = format!(
        "cpaas.io/cluster-name={},cpaas.io/module-name={module},cpaas.io/module-type=plugin",
        env.cfg.kubernetes.cluster_name
    );
    let mut all = env.global.list(mi, None, Some(&labels), None).await?;
    if let Some(v) = version {
        all.retain(|o| str_at(o, "spec.version") == Some(v));
    }
    Ok(all)
}
