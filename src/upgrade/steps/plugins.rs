//! ACP cluster plugins: a plugin is a `ModuleInfo` of the global cluster found by its labels
//! (the platform renames what it is given), `ModuleConfig` `<module>-<version>` a published
//! package; ready is what the platform calls ready.

use serde_json::Value;

use super::{Env, Journal, StepId};
use crate::error::{Error, Result};
use crate::kube::{Resource, name_of, str_at};
use crate::upgrade::config::Plugin;
use crate::upgrade::wait::{self, Patience, Poll};

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

/// ModuleInfos of a plugin on our cluster, found by labels (ACP renames them), not being
/// deleted.
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
    all.retain(|o| o["metadata"]["deletionTimestamp"].is_null());
    if let Some(v) = version {
        all.retain(|o| str_at(o, "spec.version") == Some(v));
    }
    Ok(all)
}

/// Ready as the platform judges it: `spec.version == status.version == version`, phase
/// Running for the current generation, every `status.appReleases` entry ready, synced and
/// not failed. `Err` says what is not there yet.
pub(super) fn ready(o: &Value, version: &str) -> std::result::Result<(), String> {
    let phase = str_at(o, "status.phase").unwrap_or("");
    let spec = str_at(o, "spec.version").unwrap_or("");
    let status = str_at(o, "status.version").unwrap_or("");
    let mut not = Vec::new();
    if phase != "Running" {
        not.push(format!(
            "status.phase is {}",
            if phase.is_empty() { "empty" } else { phase }
        ));
    }
    if spec != version || status != version {
        not.push(format!(
            "spec.version {spec}, status.version {}",
            if status.is_empty() { "(none)" } else { status }
        ));
    }
    if !o["status"]["observedGeneration"].is_null()
        && o["status"]["observedGeneration"] != o["metadata"]["generation"]
    {
        not.push("the platform has not looked at its latest spec yet".into());
    }
    let releases: Vec<String> = o["status"]["appReleases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| !(a["ready"] == true && a["synced"] == true && a["failed"] != true))
        .map(|a| {
            format!(
                "{} (ready {}, synced {}, failed {})",
                a["name"].as_str().unwrap_or("?"),
                a["ready"],
                a["synced"],
                a["failed"]
            )
        })
        .collect();
    if !releases.is_empty() {
        not.push(format!("appReleases not ready: {}", releases.join(", ")));
    }
    if not.is_empty() {
        Ok(())
    } else {
        Err(not.join("; "))
    }
}

/// Waits until the platform's ModuleInfo of `p` (whatever its name) is ready at `p.version`.
pub(super) async fn wait_ready(
    env: &Env,
    journal: &mut Journal,
    mi: &Resource,
    p: &Plugin,
) -> Result<()> {
    let cfg = &env.cfg.install;
    let what = format!(
        "plugin {} {} to be ready (ModuleInfo labelled cpaas.io/module-name={}: status.phase Running, status.version {}, every appRelease ready and synced)",
        p.module, p.version, p.module, p.version
    );
    env.note(format!("waiting for {what}"));
    super::record_polling(journal, StepId::InstallPlugins, &what, cfg.timeout).await?;
    let mut failed = wait::Unchanged::default();
    wait::until(
        &env.cancel,
        Patience::new(cfg.timeout, cfg.poll),
        async || {
            let found = find_plugin(env, mi, &p.module, Some(&p.version)).await?;
            let Some(o) = found.iter().find(|o| ready(o, &p.version).is_ok()).or(found.first())
            else {
                return Ok(Poll::Pending(format!(
                    "no ModuleInfo of plugin {} at spec.version {} on cluster {}",
                    p.module, p.version, env.cfg.kubernetes.cluster_name
                )));
            };
            let Err(not) = ready(o, &p.version) else {
                return Ok(Poll::Ready(()));
            };
            let phase = str_at(o, "status.phase").unwrap_or("");
            let message = ["status.message", "status.reason"]
                .iter()
                .find_map(|f| str_at(o, f))
                .unwrap_or("");
            let steady = failed.observe((phase == "Failed").then(|| message.to_string()));
            if phase == "Failed" && steady >= cfg.failed_grace {
                return Err(Error::Other(format!(
                    "plugin {} {} (ModuleInfo {}) failed: {message} (unchanged for {}); \
                     fix the plugin or its package (Administrator → Marketplace → Cluster Plugins), \
                     then run the same command to resume",
                    p.module,
                    p.version,
                    name_of(o),
                    humantime::format_duration(std::time::Duration::from_secs(steady.as_secs())),
                )));
            }
            let msg = if message.is_empty() {
                String::new()
            } else {
                format!(", message: {message}")
            };
            Ok(Poll::Pending(format!("ModuleInfo {}: {not}{msg}", name_of(o))))
        },
        |state| {
            Error::Other(format!(
                "plugin {} {} was not ready within {}: {state}; \
                 fix the plugin (Administrator → Marketplace → Cluster Plugins), then run the same command to resume",
                p.module,
                p.version,
                humantime::format_duration(cfg.timeout),
            ))
        },
    )
    .await
}

/// How this platform installs a plugin, found by discovery: a 4.x platform serves
/// `ClusterPluginInstance` on the workload cluster (its cluster transformer then makes the
/// ModuleInfo, and Alauda's docs say not to make one by hand); an older one is given the
/// ModuleInfo on the global cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InstallApi {
    ModuleInfo,
    ClusterPluginInstance,
}

impl InstallApi {
    pub(super) fn of(env: &Env) -> InstallApi {
        match env
            .workload
            .resolve("ClusterPluginInstance", Some(PLUGIN_GROUP))
        {
            Some(r) if r.ar.group == PLUGIN_GROUP => InstallApi::ClusterPluginInstance,
            _ => InstallApi::ModuleInfo,
        }
    }

    /// The plan's line saying which API the run uses, and why.
    pub(super) fn describe(self) -> String {
        match self {
            InstallApi::ModuleInfo => "install API: ModuleInfo (cluster.alauda.io) on the global cluster; the workload cluster serves no ClusterPluginInstance".into(),
            InstallApi::ClusterPluginInstance => "install API: ClusterPluginInstance (cluster.alauda.io), served by the workload cluster (a 4.x platform)".into(),
        }
    }

    /// Why the run cannot install `pending` (`module version` each) through this API: on a
    /// ClusterPluginInstance platform it will not write one by guesswork, nor the ModuleInfo
    /// the docs forbid.
    pub(super) fn refusal(self, pending: &[String]) -> Option<String> {
        (self == InstallApi::ClusterPluginInstance && !pending.is_empty()).then(|| format!(
            "the workload cluster serves ClusterPluginInstance (cluster.alauda.io): on this platform a plugin is installed through one, and Alauda's docs say not to create its ModuleInfo by hand; the public docs give only its spec.pluginName and spec.config, not how it names the version to install, so amlmigrate does not write one. Uninstall the 1.3 plugins and install {} from the platform (Administrator → Marketplace → Cluster Plugins) as the article does, then run again: the uninstall and install steps then find them done",
            pending.join(", ")
        ))
    }
}
