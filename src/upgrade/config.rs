//! `upgrade.toml`: every setting the 1.3 → 1.4 upgrade needs. Defaults are the article's
//! values; `examples/upgrade-1.3-to-1.4.toml` documents each line. Passwords are never in
//! this file: they come from files or environment variables it names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::mysql::MysqlUrl;
use crate::postgres::PgUrl;
use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeConfig {
    /// Snapshot repository: snapshots, the run journal and the reports go here.
    pub repository: String,
    #[serde(default)]
    pub kubernetes: KubeSettings,
    pub mysql: MysqlSettings,
    pub postgres: PgSettings,
    #[serde(default)]
    pub preflight: Preflight,
    #[serde(default)]
    pub images: Images,
    #[serde(default)]
    pub drain: Drain,
    #[serde(default)]
    pub snapshot: SnapshotSettings,
    #[serde(default)]
    pub notebooks: Notebooks,
    #[serde(default)]
    pub uninstall: Uninstall,
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub install: Install,
    #[serde(default)]
    pub mlflow: MlflowSettings,
    pub features: Features,
    #[serde(default)]
    pub restore: RestoreSettings,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KubeSettings {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub global_context: Option<String>,
    /// The workload cluster's name in ACP (label `cpaas.io/cluster-name` of its ModuleInfos).
    #[serde(default = "d_cluster_name")]
    pub cluster_name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSettings {
    /// mysql://user@host:port of the AML MySQL (no password here).
    pub url: String,
    /// File holding the password; default: $AMLMIGRATE_MYSQL_PASSWORD.
    pub password_file: Option<PathBuf>,
    /// Databases the snapshot takes (the MLflow 2.6 database among them).
    #[serde(default = "d_databases")]
    pub databases: Vec<String>,
    /// The AML job records database, whose row counts the final check compares.
    #[serde(default = "d_aml_db")]
    pub aml_database: String,
    /// An external Kubeflow Pipelines MySQL (must be 5.7), when not the built-in one.
    pub kfp_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PgSettings {
    /// postgres://user@host:port/database for MLflow 3.1.1 (no password here).
    pub url: String,
    /// File holding the password; default: $PGPASSWORD.
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Preflight {
    pub architecture: String,
    pub istio_min_version: String,
    /// Where the Istio version is read: the ServiceMesh (spec.istioVersion), else this Deployment's image tag.
    pub istiod_namespace: String,
    pub istiod_deployment: String,
    pub storage_class: String,
    /// The oauth2 callback (oidcRedirectURL of KubeflowBase); empty: not checked.
    pub dex_redirect_uri: String,
    pub dex_namespace: String,
    pub dex_configmap: String,
    /// The ServiceMesh of the workload cluster, in the global cluster.
    pub servicemesh_namespace: String,
    pub servicemesh_name: String,
    pub extension_provider: String,
    pub oauth2_proxy_service: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Images {
    /// Registry base URL (https://host:port); empty: the images step is skipped.
    pub registry: String,
    /// Accept a self-signed registry certificate.
    pub insecure: bool,
    /// Username; the password comes from $AMLMIGRATE_REGISTRY_PASSWORD.
    pub username: Option<String>,
    /// repository:tag the article lists, relative to the registry.
    pub required: Vec<String>,
    /// The llm-trainer tag that was pushed; the tag aml-image-builder-config references must exist too.
    pub llm_trainer: String,
    pub config_namespace: String,
    /// How long to wait for a person to push missing images.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub poll: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Drain {
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub poll: Duration,
    /// Optional SQL on the AML database returning the number of running fine-tune records.
    pub running_sql: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotSettings {
    /// age recipients for the Secrets of the snapshot; none: Secrets are left out.
    pub encrypt_to: Vec<String>,
    /// The MLflow 2.6 artifact folder, when it is reachable from here.
    pub mlflow_artifacts: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Notebooks {
    /// Delete Notebooks and Tensorboards before the uninstall (their specs are in the snapshot).
    pub delete: bool,
    /// Recreate them from the snapshot at the end, on their preserved PVCs.
    pub recreate: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Uninstall {
    /// Module names, in the article's order.
    pub plugins: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The 1.3 `kubeflow` chart application.
    pub chart_api_version: String,
    pub chart_kind: String,
    pub chart_namespace: String,
    pub chart_name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Operator {
    /// How to tell the AML operator is at 1.4: this object's field starts with `version_prefix`.
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub field: String,
    pub version_prefix: String,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub poll: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Install {
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub poll: Duration,
    pub plugins: Vec<Plugin>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Plugin {
    pub module: String,
    pub version: String,
    /// spec.config of the ModuleInfo (the form's values).
    #[serde(default)]
    pub config: toml::Table,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlflowSettings {
    /// Migrate MLflow 2.6 (MySQL) to 3.1.1 (PostgreSQL).
    pub migrate: bool,
    /// The MLflow 2.6 database on the AML MySQL.
    pub source_database: String,
    /// The MLflow 3.1.1 server, scaled to 0 during the copy and back afterwards.
    pub deployment_namespace: String,
    pub deployment_name: String,
    /// (old prefix, new prefix) artifact URI rewrites.
    pub rewrite_artifact_uri: BTreeMap<String, String>,
    /// The MLflow 3.1.1 artifact folder: the snapshot's artifact part (snapshot.mlflow_artifacts)
    /// is unpacked there, every file checked.
    pub artifacts_to: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Features {
    #[serde(default = "d_amlcluster")]
    pub amlcluster: String,
    #[serde(default = "d_aml")]
    pub aml: String,
    #[serde(default = "yes")]
    pub datasets: bool,
    #[serde(default = "yes")]
    pub image_builder: bool,
    #[serde(default = "yes")]
    pub tune_models: bool,
    /// global.mysql of the AmlCluster.
    pub mysql_host: String,
    #[serde(default = "d_port")]
    pub mysql_port: u16,
    #[serde(default = "d_root")]
    pub mysql_user: String,
    #[serde(default = "d_aml_db")]
    pub mysql_database: String,
    #[serde(default = "d_secret_name")]
    pub password_secret_name: String,
    #[serde(default = "d_cpaas_system")]
    pub password_secret_namespace: String,
    /// Create the password Secret (from the MySQL password) when it is missing.
    #[serde(default)]
    pub create_password_secret: bool,
    pub training_pvc_size: String,
    pub training_pvc_storage_class: String,
    pub notebook_storage_class: String,
    #[serde(default = "d_kubeflow")]
    pub restart_namespace: String,
    #[serde(default = "d_restart")]
    pub restart_deployment: String,
    /// Namespaces whose aml-image-builder-config/-secret get the MODEL_REPO_BUILDER_DB_* keys.
    #[serde(default = "d_builder_namespaces")]
    pub image_builder_namespaces: Vec<String>,
    /// MODEL_REPO_BUILDER_DB_HOST (default: mysql_host).
    pub image_builder_db_host: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestoreSettings {
    /// Kinds restored from the snapshot at the end (never duplicating what exists).
    pub kinds: Vec<String>,
    /// age identity file, for Secrets of the snapshot.
    pub identity: Option<PathBuf>,
}

fn yes() -> bool {
    true
}
fn d_cluster_name() -> String {
    "business-1".into()
}
fn d_databases() -> Vec<String> {
    ["aml", "mlpipeline", "cachedb", "metadb", "mlflow"]
        .map(String::from)
        .to_vec()
}
fn d_aml_db() -> String {
    "aml".into()
}
fn d_amlcluster() -> String {
    "default".into()
}
fn d_aml() -> String {
    "default-aml".into()
}
fn d_port() -> u16 {
    3306
}
fn d_root() -> String {
    "root".into()
}
fn d_secret_name() -> String {
    "aml-mysql-root-token".into()
}
fn d_cpaas_system() -> String {
    "cpaas-system".into()
}
fn d_kubeflow() -> String {
    "kubeflow".into()
}
fn d_restart() -> String {
    "aml-api-deploy".into()
}
fn d_builder_namespaces() -> Vec<String> {
    vec!["kubeflow".into()]
}

impl Default for Preflight {
    fn default() -> Self {
        Preflight {
            architecture: "amd64".into(),
            istio_min_version: "1.22".into(),
            istiod_namespace: "istio-system".into(),
            istiod_deployment: "istiod".into(),
            storage_class: String::new(),
            dex_redirect_uri: String::new(),
            dex_namespace: "cpaas-system".into(),
            dex_configmap: "dex-configmap".into(),
            servicemesh_namespace: "cpaas-system".into(),
            servicemesh_name: String::new(),
            extension_provider: "oauth2-proxy-kubeflow".into(),
            oauth2_proxy_service: "oauth2-proxy.kubeflow-oauth2-proxy.svc.cluster.local".into(),
        }
    }
}

impl Default for Images {
    fn default() -> Self {
        Images {
            registry: String::new(),
            insecure: false,
            username: None,
            required: [
                "mlops/llm-trainer:v1.4.3",
                "mlops/buildkit-gitlfs:v0.13-rootless-aml",
                "mlops/buildkit:v0.15.2-aml",
            ]
            .map(String::from)
            .to_vec(),
            llm_trainer: "mlops/llm-trainer:v1.4.3".into(),
            config_namespace: "kubeflow".into(),
            timeout: Duration::from_secs(4 * 3600),
            poll: Duration::from_secs(15),
        }
    }
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            timeout: Duration::from_secs(2 * 3600),
            poll: Duration::from_secs(10),
            running_sql: None,
        }
    }
}

impl Default for Uninstall {
    fn default() -> Self {
        Uninstall {
            plugins: ["mlflow", "kftraining", "kfp", "kfbase"]
                .map(String::from)
                .to_vec(),
            timeout: Duration::from_secs(15 * 60),
            chart_api_version: "app.alauda.io/v1".into(),
            chart_kind: "HelmRequest".into(),
            chart_namespace: "kubeflow".into(),
            chart_name: "kubeflow".into(),
        }
    }
}

impl Default for Operator {
    fn default() -> Self {
        Operator {
            api_version: "amlclusters.aml.dev/v1alpha1".into(),
            kind: "AmlCluster".into(),
            namespace: None,
            name: "default".into(),
            field: "status.version".into(),
            version_prefix: "v1.4".into(),
            timeout: Duration::from_secs(4 * 3600),
            poll: Duration::from_secs(15),
        }
    }
}

impl Default for Install {
    fn default() -> Self {
        Install {
            timeout: Duration::from_secs(20 * 60),
            poll: Duration::from_secs(5),
            plugins: Vec::new(),
        }
    }
}

impl Default for MlflowSettings {
    fn default() -> Self {
        MlflowSettings {
            migrate: true,
            source_database: "mlflow".into(),
            deployment_namespace: "kubeflow".into(),
            deployment_name: "mlflow".into(),
            rewrite_artifact_uri: BTreeMap::new(),
            artifacts_to: None,
        }
    }
}

impl Default for RestoreSettings {
    fn default() -> Self {
        RestoreSettings {
            kinds: [
                "Namespace",
                "Profile",
                "PersistentVolume",
                "PersistentVolumeClaim",
                "ConfigMap",
                "RoleBinding",
                "AuthorizationPolicy",
            ]
            .map(String::from)
            .to_vec(),
            identity: None,
        }
    }
}

impl UpgradeConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::input(format!(
                "cannot read the upgrade configuration {}: {e}; start from examples/upgrade-1.3-to-1.4.toml",
                path.display()
            ))
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, name: &str) -> Result<Self> {
        let cfg: UpgradeConfig = toml::from_str(text)
            .map_err(|e| Error::input(format!("upgrade configuration {name}: {e}")))?;
        cfg.check(name)?;
        Ok(cfg)
    }

    fn check(&self, name: &str) -> Result<()> {
        let mut problems = Vec::new();
        for p in &self.uninstall.plugins {
            if p.is_empty() {
                problems.push("uninstall.plugins holds an empty name".to_string());
            }
        }
        for p in &self.install.plugins {
            if p.version.is_empty() {
                problems.push(format!("install plugin {} has no version", p.module));
            }
        }
        if self.install.plugins.is_empty() {
            problems.push(
                "no [[install.plugins]]: list kfbase, kfp, volcano, kftraining and mlflow with their 1.4 versions"
                    .into(),
            );
        }
        MysqlUrl::parse(&self.mysql.url)?;
        PgUrl::parse(&self.postgres.url)?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::input(format!(
                "upgrade configuration {name}: {}",
                problems.join("; ")
            )))
        }
    }

    pub fn mysql_url(&self) -> Result<MysqlUrl> {
        let pw = read_password(
            self.mysql.password_file.as_deref(),
            "AMLMIGRATE_MYSQL_PASSWORD",
        )?;
        Ok(MysqlUrl::parse(&self.mysql.url)?.with_fallback_password(pw))
    }

    pub fn pg_url(&self) -> Result<PgUrl> {
        let pw = read_password(self.postgres.password_file.as_deref(), "PGPASSWORD")?;
        Ok(PgUrl::parse(&self.postgres.url)?.with_fallback_password(pw))
    }

    pub fn kube_options(&self) -> crate::kube::KubeOptions {
        crate::kube::KubeOptions {
            kubeconfig: self.kubernetes.kubeconfig.clone(),
            context: self.kubernetes.context.clone(),
            global_context: self.kubernetes.global_context.clone(),
        }
    }
}

fn read_password(file: Option<&Path>, env: &str) -> Result<Option<Secret>> {
    match file {
        Some(f) => std::fs::read_to_string(f)
            .map(|s| Some(Secret::new(s.trim_end_matches(['\n', '\r']))))
            .map_err(|e| {
                Error::input(format!(
                    "cannot read the password file {}: {e}",
                    f.display()
                ))
            }),
        None => Ok(std::env::var(env).ok().map(Secret::new)),
    }
}

/// serde for `"90s"`, `"15m"`, `"2h"` durations.
mod humantime_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!("{s:?} is not a duration like 90s, 15m or 2h: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses_with_every_plugin_in_order() {
        let text = include_str!("../../examples/upgrade-1.3-to-1.4.toml");
        let cfg = UpgradeConfig::parse(text, "example").unwrap();
        let modules: Vec<&str> = cfg
            .install
            .plugins
            .iter()
            .map(|p| p.module.as_str())
            .collect();
        assert_eq!(
            modules,
            ["kfbase", "kfp", "volcano", "kftraining", "mlflow"]
        );
        assert_eq!(
            cfg.uninstall.plugins,
            ["mlflow", "kftraining", "kfp", "kfbase"]
        );
        assert_eq!(cfg.install.timeout, Duration::from_secs(20 * 60));
    }

    #[test]
    fn an_unknown_key_or_a_bad_duration_is_refused_naming_it() {
        let text = include_str!("../../examples/upgrade-1.3-to-1.4.toml");
        let e = UpgradeConfig::parse(&text.replace("timeout = \"2h\"", "timeout = \"soon\""), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("soon"), "{e}");
        let e = UpgradeConfig::parse(&text.replace("[drain]", "[drain]\nwat = 1"), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("wat"), "{e}");
    }
}
