//! A plugin package's `resourcesBlockRemove`: resources that must be gone before the platform
//! removes the plugin (Alauda's ModuleConfig field reference). The reference does not give its
//! entries' shape; they are read here as objects naming `apiVersion` and `kind`, optionally
//! `namespace` and `name` (every object of that kind there, or the one so named). An entry of
//! another shape is named as it is and blocks: the uninstall does not start on a guess, nor
//! hang on a plugin the platform will not remove.

use serde_json::Value;

use super::Env;
use super::plugins::{PLUGIN_GROUP, find_plugin, new_version};
use crate::error::Result;
use crate::kube::{group_of, name_of, namespace_of, str_at};

/// What keeps the platform from removing a plugin the uninstall deletes: one line per resource
/// (or unreadable entry), naming the plugin, its package and what to do.
pub(super) async fn blockers(env: &Env) -> Result<Vec<String>> {
    let (Some(mi), Some(mc)) = (
        env.global.resolve("ModuleInfo", Some(PLUGIN_GROUP)),
        env.global.resolve("ModuleConfig", Some(PLUGIN_GROUP)),
    ) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for module in &env.cfg.uninstall.plugins {
        for o in find_plugin(env, &mi, module, None).await? {
            let version = str_at(&o, "status.version")
                .or(str_at(&o, "spec.version"))
                .unwrap_or("");
            if new_version(env, module) == Some(version) {
                continue;
            }
            let package = format!("{module}-{version}");
            let Some(config) = env.global.get(&mc, None, &package).await? else {
                continue;
            };
            let entries = config["spec"]["resourcesBlockRemove"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for entry in &entries {
                for what in present(env, entry).await? {
                    out.push(format!(
                        "plugin {module} {version}: its package (ModuleConfig {package}) lists in resourcesBlockRemove {what}, and the platform does not remove the plugin while that exists; delete it (the snapshot keeps what its catalog covers), then run again"
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// The resources of one entry that exist on the workload cluster, or the entry itself when it
/// cannot be read.
async fn present(env: &Env, entry: &Value) -> Result<Vec<String>> {
    let (Some(api_version), Some(kind)) = (str_at(entry, "apiVersion"), str_at(entry, "kind"))
    else {
        return Ok(vec![format!(
            "the entry {entry} (a shape amlmigrate cannot read: check by hand that nothing it names exists)"
        )]);
    };
    let Some(r) = env.workload.resolve(kind, Some(group_of(api_version))) else {
        // The cluster does not serve that kind: none of it exists.
        return Ok(Vec::new());
    };
    let ns = str_at(entry, "namespace");
    let objects = match str_at(entry, "name") {
        Some(name) => env.workload.get(&r, ns, name).await?.into_iter().collect(),
        None => env.workload.list(&r, ns, None, None).await?,
    };
    Ok(objects
        .iter()
        .map(|o| match namespace_of(o) {
            Some(ns) => format!("{kind} {ns}/{}", name_of(o)),
            None => format!("{kind} {}", name_of(o)),
        })
        .collect())
}
