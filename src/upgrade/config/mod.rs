//! `upgrade.toml`: every setting the 1.3 → 1.4 upgrade needs. Defaults are the article's
//! values; `examples/upgrade-1.3-to-1.4.toml` documents each line. Passwords are never in
//! this file: they come from files or environment variables it names.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod load;

pub use load::source_password_env;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeConfig {
    /// Snapshot repository: snapshots, the run journal and the reports go here.
    pub repository: String,
    #[serde(default)]
    pub kubernetes: KubeSettings,
    /// The MySQL servers the snapshot takes, by name: `aml` (the job records, and the user and
    /// password AmlCluster uses), and as installed `kfp` (Kubeflow Pipelines) and `mlflow`
    /// (MLflow 2.6).
    pub mysql: BTreeMap<String, MysqlSource>,
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
    #[serde(default)]
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

/// The source that holds the AML job records (the snapshot reads them with its account, which
/// AML gets only when `features.credentials` names this source).
pub const AML_SOURCE: &str = "aml";
/// The source of Kubeflow Pipelines' databases; when `external`, it must be MySQL 5.7.
pub const KFP_SOURCE: &str = "kfp";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSource {
    /// mysql://user@host:port (no password here).
    pub url: String,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password (default: `AMLMIGRATE_MYSQL_PASSWORD_<NAME>`,
    /// then `AMLMIGRATE_MYSQL_PASSWORD`).
    pub password_env: Option<String>,
    /// Databases the snapshot takes from this server; empty: none (the source only provides a
    /// credential pair).
    #[serde(default)]
    pub databases: Vec<String>,
    /// An external server the article restricts to MySQL 5.7 (Kubeflow Pipelines).
    #[serde(default)]
    pub external: bool,
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
    pub dex_namespace: String,
    pub dex_configmap: String,
    /// The ServiceMesh of the workload cluster, in the global cluster.
    pub servicemesh_namespace: String,
    pub servicemesh_name: String,
    pub extension_provider: String,
    pub oauth2_proxy_service: String,
    /// Istio must not run in CNI mode: a DaemonSet of this name (any namespace of the workload
    /// cluster) means it does.
    pub istio_cni_daemonset: String,
    /// The ServiceMesh API versions the article's overlay applies to; another served version is
    /// ServiceMesh v2, for which the article says to ask for help.
    pub servicemesh_v1_versions: Vec<String>,
    /// The module name of the Workspace plugin (AML workspaces' backend controller), which the
    /// article lists among the plugins: installed on the cluster, or in [[install.plugins]].
    pub workspace_module: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Images {
    /// Registry base URL (https://host:port); empty: the images step is skipped.
    pub registry: String,
    /// The CA that signed the registry's certificate (PEM); it replaces the system roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any registry certificate (not checked at all): only for a lab.
    pub insecure: bool,
    /// Username; the password comes from `password_file` or $AMLMIGRATE_REGISTRY_PASSWORD, and
    /// is sent only when the registry asks for it (401).
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Hosts besides the registry's own that may receive the credentials as a token realm
    /// (https only).
    pub token_hosts: Vec<String>,
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
    /// The repository is plain on purpose (`encrypt_to` then covers only the Secrets), as
    /// `backup --unencrypted-repo`; without it, `encrypt_to` and a marker saying "not
    /// encrypted" stop the snapshot step.
    pub unencrypted_repo: bool,
    /// The MLflow 2.6 artifact store, when it is reachable from here: a folder or
    /// `s3://bucket/prefix[?profile=NAME]`.
    pub mlflow_artifacts: Option<crate::mlflow::artifacts::ArtifactLocation>,
    /// Sign the snapshot with this Ed25519 secret key (PKCS#8 PEM, `amlmigrate key generate`).
    pub sign_key: Option<PathBuf>,
    /// Check every snapshot the upgrade reads against these public keys (PEM) and refuse one
    /// unsigned or signed otherwise.
    pub verify_keys: Vec<PathBuf>,
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
    /// The 1.3 `kubeflow` chart application: objects of this kind whose chart (`spec.chart`,
    /// last path segment) is `chart`, in `chart_namespace` or any namespace.
    pub chart_api_version: String,
    pub chart_kind: String,
    pub chart: String,
    pub chart_namespace: Option<String>,
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
    /// A plugin reporting `Failed` with the same message this long fails the step at once
    /// (a transient failure changes or clears its message sooner).
    #[serde(with = "humantime_serde")]
    pub failed_grace: Duration,
    pub plugins: Vec<Plugin>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Plugin {
    pub module: String,
    pub version: String,
    /// spec.config of the ModuleInfo (the form's values), never a password.
    #[serde(default)]
    pub config: toml::Table,
    /// Form fields filled from a password source, never from this file: field → `postgres` or
    /// `mysql.<name>`. Default for mlflow: `pgPassword = "postgres"`.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

impl Plugin {
    /// Its secret form fields and their sources, with the article's default for MLflow (its
    /// PostgreSQL password is the migration's).
    pub fn secret_sources(&self) -> BTreeMap<String, String> {
        let mut out = self.secrets.clone();
        if self.module == "mlflow" && !out.contains_key("pgPassword") {
            out.insert("pgPassword".into(), "postgres".into());
        }
        out
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlflowSettings {
    /// Migrate MLflow 2.6 (MySQL) to 3.1.1 (PostgreSQL).
    pub migrate: bool,
    /// The MySQL source of MLflow 2.6 (a name of [mysql.*]).
    pub source: String,
    /// Its database (default: the source's only database).
    pub source_database: Option<String>,
    /// The MLflow 3.1.1 server, scaled to 0 during the copy and back afterwards.
    pub deployment_namespace: String,
    pub deployment_name: String,
    /// (old prefix, new prefix) artifact URI rewrites.
    pub rewrite_artifact_uri: BTreeMap<String, String>,
    /// The MLflow 3.1.1 artifact store (a folder or `s3://bucket/prefix[?profile=NAME]`): the
    /// snapshot's artifact part (snapshot.mlflow_artifacts) is unpacked there, every file checked.
    pub artifacts_to: Option<String>,
    /// The 3.1.1 server's Service, which the final check asks (through the API server's
    /// service proxy) for the migrated experiment and run counts.
    pub service_namespace: String,
    pub service_name: String,
    pub service_port: u16,
    /// Ask the server at this URL instead of through the service proxy (e.g. an ingress).
    pub server_url: Option<String>,
    /// Ask the 3.1.1 server at all in the final check (false: the database counts only).
    pub check_server: bool,
}

/// The article's "enable the experimental features". A value left unset keeps what the live
/// object has; where it has nothing either, the step refuses rather than guesses.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Features {
    pub amlcluster: String,
    pub aml: String,
    pub datasets: bool,
    pub image_builder: bool,
    pub tune_models: bool,
    /// global.mysql of the AmlCluster: the address the cluster reaches MySQL at.
    pub mysql_host: Option<String>,
    pub mysql_port: Option<u16>,
    pub mysql_database: Option<String>,
    /// AML's own database account (global.mysql.user, the password Secret and each
    /// aml-image-builder-secret): the `[mysql.*]` source named here gives the user (its URL)
    /// and the password (its password_file / password_env). Unset: the live account is kept
    /// (the AmlCluster's user, the password its passwordSecretRef Secret holds) — the snapshot
    /// account never becomes AML's unless it is named here.
    pub credentials: Option<String>,
    pub password_secret_name: Option<String>,
    pub password_secret_namespace: Option<String>,
    /// Create or update the password Secret from the credentials' password.
    pub create_password_secret: bool,
    pub training_pvc_size: Option<String>,
    pub training_pvc_storage_class: Option<String>,
    pub notebook_storage_class: Option<String>,
    pub restart_namespace: String,
    pub restart_deployment: String,
    /// How long the final check waits for that restart to roll out.
    #[serde(with = "humantime_serde")]
    pub rollout_timeout: Duration,
    /// Namespaces whose aml-image-builder-config/-secret get the MODEL_REPO_BUILDER_DB_* keys.
    pub image_builder_namespaces: Vec<String>,
    /// MODEL_REPO_BUILDER_DB_HOST (default: the AmlCluster's global.mysql.host).
    pub image_builder_db_host: Option<String>,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            amlcluster: "default".into(),
            aml: "default-aml".into(),
            datasets: true,
            image_builder: true,
            tune_models: true,
            mysql_host: None,
            mysql_port: None,
            mysql_database: None,
            credentials: None,
            password_secret_name: None,
            password_secret_namespace: None,
            create_password_secret: true,
            training_pvc_size: None,
            training_pvc_storage_class: None,
            notebook_storage_class: None,
            restart_namespace: "kubeflow".into(),
            restart_deployment: "aml-api-deploy".into(),
            rollout_timeout: Duration::from_secs(10 * 60),
            image_builder_namespaces: vec!["kubeflow".into()],
            image_builder_db_host: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestoreSettings {
    /// Kinds restored from the snapshot at the end (never duplicating what exists).
    pub kinds: Vec<String>,
    /// age identity file, for Secrets of the snapshot.
    pub identity: Option<PathBuf>,
    /// Which volumes the cluster lacks a restore may create (`[restore.volumes]`: drivers,
    /// classes, allow_sources).
    pub volumes: crate::kube::volumes::VolumePolicy,
}

fn d_cluster_name() -> String {
    "business-1".into()
}

impl Default for Preflight {
    fn default() -> Self {
        Preflight {
            architecture: "amd64".into(),
            istio_min_version: "1.22".into(),
            istiod_namespace: "istio-system".into(),
            istiod_deployment: "istiod".into(),
            storage_class: String::new(),
            dex_namespace: "cpaas-system".into(),
            dex_configmap: "dex-configmap".into(),
            servicemesh_namespace: "cpaas-system".into(),
            servicemesh_name: String::new(),
            extension_provider: "oauth2-proxy-kubeflow".into(),
            oauth2_proxy_service: "oauth2-proxy.kubeflow-oauth2-proxy.svc.cluster.local".into(),
            istio_cni_daemonset: "istio-cni-node".into(),
            servicemesh_v1_versions: vec!["v1alpha1".into()],
            workspace_module: "workspace".into(),
        }
    }
}

impl Default for Images {
    fn default() -> Self {
        Images {
            registry: String::new(),
            ca_file: None,
            insecure: false,
            username: None,
            password_file: None,
            token_hosts: Vec::new(),
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
            chart: "kubeflow".into(),
            chart_namespace: None,
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
            failed_grace: Duration::from_secs(60),
            plugins: Vec::new(),
        }
    }
}

impl Default for MlflowSettings {
    fn default() -> Self {
        MlflowSettings {
            migrate: true,
            source: "mlflow".into(),
            source_database: None,
            deployment_namespace: "kubeflow".into(),
            deployment_name: "mlflow".into(),
            rewrite_artifact_uri: BTreeMap::new(),
            artifacts_to: None,
            service_namespace: "kubeflow".into(),
            service_name: "mlflow".into(),
            service_port: 5000,
            server_url: None,
            check_server: true,
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
            volumes: Default::default(),
        }
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
        crate::span::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl SnapshotSettings {
    /// The repository handle with this config's signing key and trusted keys (read now, so a
    /// wrong path fails before the run starts).
    pub fn signing(
        &self,
        repo: crate::repo::Repository,
    ) -> crate::error::Result<crate::repo::Repository> {
        let key = self
            .sign_key
            .as_deref()
            .map(crate::repo::sign::SignKey::read)
            .transpose()?
            .map(std::sync::Arc::new);
        let trust = crate::repo::sign::Trust::read(&self.verify_keys)?;
        Ok(repo.with_sign_key(key).with_trust(trust))
    }
}
