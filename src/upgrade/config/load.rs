//! Reading `upgrade.toml`: parsing with hints for moved keys, the checks that refuse a
//! configuration before anything runs, and the password sources (files or environment, never
//! the file itself).

use std::collections::BTreeMap;
use std::path::Path;

use super::{AML_SOURCE, MysqlSource, UpgradeConfig};
use crate::error::{Error, Result};
use crate::mysql::MysqlUrl;
use crate::postgres::PgUrl;
use crate::secret::Secret;

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
        let cfg: UpgradeConfig = toml::from_str(text).map_err(|e| {
            let msg = e.to_string();
            let hint = MOVED
                .iter()
                .find(|(key, _)| msg.contains(&format!("`{key}`")))
                .map(|(_, hint)| format!("\n{hint}"))
                .unwrap_or_default();
            Error::input(format!("upgrade configuration {name}: {msg}{hint}"))
        })?;
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
        if self.install.plugins.is_empty() {
            problems.push(
                "no [[install.plugins]]: list kfbase, kfp, volcano, kftraining and mlflow with their 1.4 versions"
                    .into(),
            );
        }
        for p in &self.install.plugins {
            if p.version.is_empty() {
                problems.push(format!("install plugin {} has no version", p.module));
            }
            for key in p.config.keys().filter(|k| looks_secret(k)) {
                problems.push(format!(
                    "install plugin {} config.{key}: no password belongs in this file; say where it comes from with secrets = {{ {key} = \"postgres\" }} (or \"mysql.<name>\")",
                    p.module
                ));
            }
            for (field, from) in &p.secrets {
                if let Err(e) = self.password_source(from) {
                    problems.push(format!("install plugin {} secrets.{field}: {e}", p.module));
                }
            }
        }
        if self.kubernetes.cluster_name.is_empty() {
            problems.push(
                "kubernetes.cluster_name is empty: the workload cluster's name in ACP (label cpaas.io/cluster-name of its plugins)".into(),
            );
        }
        if self
            .images
            .ca_file
            .as_ref()
            .is_some_and(|f| f.as_os_str().is_empty())
        {
            problems.push(
                "images.ca_file is empty: name the CA that signed the registry's certificate, or remove the line to use the system roots".into(),
            );
        }
        if !self.mysql.contains_key(AML_SOURCE) {
            problems.push(format!(
                "no [mysql.{AML_SOURCE}]: name the MySQL that holds the AML job records (url, databases)"
            ));
        }
        let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
        for (source, m) in &self.mysql {
            if !valid_name(source) {
                problems.push(format!(
                    "[mysql.{source}]: a source name is lower-case letters, digits, - and _"
                ));
            }
            if let Err(e) = MysqlUrl::parse(&m.url) {
                problems.push(format!("[mysql.{source}] url: {e}"));
            }
            for db in &m.databases {
                if let Some(first) = owner.insert(db, source) {
                    problems.push(format!(
                        "database {db} is named by both [mysql.{first}] and [mysql.{source}]; a snapshot holds each database name once"
                    ));
                }
            }
        }
        if !self.mysql.contains_key(&self.features.credentials) {
            problems.push(format!(
                "features.credentials = {:?} names no [mysql.*] source",
                self.features.credentials
            ));
        }
        if self.mlflow.migrate
            && let Err(e) = self.mlflow_database()
        {
            problems.push(e.to_string());
        }
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

    pub fn source(&self, name: &str) -> Result<&MysqlSource> {
        self.mysql.get(name).ok_or_else(|| {
            Error::input(format!(
                "no MySQL source [mysql.{name}] in the upgrade configuration (it has: {})",
                self.mysql.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// The URL of a MySQL source, with its password from its file or environment.
    pub fn mysql_url(&self, name: &str) -> Result<MysqlUrl> {
        let s = self.source(name)?;
        let pw = match (&s.password_file, &s.password_env) {
            (Some(f), _) => read_password(Some(f), &format!("mysql.{name}"), "")?,
            (None, Some(var)) => std::env::var(var).ok().map(Secret::new),
            (None, None) => std::env::var(source_password_env(name))
                .or_else(|_| std::env::var("AMLMIGRATE_MYSQL_PASSWORD"))
                .ok()
                .map(Secret::new),
        };
        Ok(MysqlUrl::parse(&s.url)?.with_fallback_password(pw))
    }

    /// The AML job-record source's URL.
    pub fn aml_url(&self) -> Result<MysqlUrl> {
        self.mysql_url(AML_SOURCE)
    }

    pub fn pg_url(&self) -> Result<PgUrl> {
        let pw = read_password(
            self.postgres.password_file.as_deref(),
            "postgres",
            "PGPASSWORD",
        )?;
        Ok(PgUrl::parse(&self.postgres.url)?.with_fallback_password(pw))
    }

    /// A password by its source name: `postgres`, or `mysql.<name>`. Checks the name only.
    fn password_source(&self, from: &str) -> Result<()> {
        match from.split_once('.') {
            _ if from == "postgres" => Ok(()),
            Some(("mysql", name)) => self.source(name).map(|_| ()),
            _ => Err(Error::input(format!(
                "{from:?} is not a password source: use \"postgres\" or \"mysql.<name>\""
            ))),
        }
    }

    /// The password of a source named `postgres` or `mysql.<name>`; an error names where it is
    /// looked for when there is none.
    pub fn password(&self, from: &str) -> Result<Secret> {
        self.password_source(from)?;
        let (pw, whence) = match from.split_once('.') {
            Some(("mysql", name)) => (
                self.mysql_url(name)?.password,
                match &self.source(name)?.password_file {
                    Some(f) => format!("the file {}", f.display()),
                    None => format!(
                        "${} or $AMLMIGRATE_MYSQL_PASSWORD",
                        self.source(name)?
                            .password_env
                            .clone()
                            .unwrap_or_else(|| source_password_env(name))
                    ),
                },
            ),
            _ => (
                self.pg_url()?.password,
                match &self.postgres.password_file {
                    Some(f) => format!("the file {}", f.display()),
                    None => "$PGPASSWORD".to_string(),
                },
            ),
        };
        pw.filter(|p| !p.is_empty()).ok_or_else(|| {
            Error::input(format!(
                "no password for {from}: put it in {whence} (never in the configuration file)"
            ))
        })
    }

    pub fn registry_password(&self) -> Result<Option<Secret>> {
        read_password(
            self.images.password_file.as_deref(),
            "images",
            "AMLMIGRATE_REGISTRY_PASSWORD",
        )
    }

    /// MLflow 2.6's database: `mlflow.source_database`, or the source's only database.
    pub fn mlflow_database(&self) -> Result<String> {
        let src = self.mysql.get(&self.mlflow.source).ok_or_else(|| {
            Error::input(format!(
                "mlflow.source = {:?} names no [mysql.*] source; name the MySQL that holds MLflow 2.6 (or set mlflow.migrate = false)",
                self.mlflow.source
            ))
        })?;
        match (&self.mlflow.source_database, src.databases.as_slice()) {
            (Some(db), dbs) if dbs.contains(db) => Ok(db.clone()),
            (Some(db), _) => Err(Error::input(format!(
                "mlflow.source_database {db} is not among the databases of [mysql.{}]",
                self.mlflow.source
            ))),
            (None, [one]) => Ok(one.clone()),
            (None, _) => Err(Error::input(format!(
                "[mysql.{}] names {} databases: say which is MLflow 2.6's with mlflow.source_database",
                self.mlflow.source,
                src.databases.len()
            ))),
        }
    }

    /// The kfbase form's oidcRedirectURL: the URI dex must list.
    pub fn oidc_redirect_url(&self) -> Option<&str> {
        self.install
            .plugins
            .iter()
            .find(|p| p.module == "kfbase")
            .and_then(|p| p.config.get("oidcRedirectURL"))
            .and_then(|v| v.as_str())
    }

    pub fn kube_options(&self) -> crate::kube::KubeOptions {
        crate::kube::KubeOptions {
            kubeconfig: self.kubernetes.kubeconfig.clone(),
            context: self.kubernetes.context.clone(),
            global_context: self.kubernetes.global_context.clone(),
        }
    }
}

/// Keys that moved, and where to.
const MOVED: [(&str, &str); 5] = [
    (
        "mysql_user",
        "features.mysql_user is gone: the user AmlCluster gets comes from the URL of the [mysql.<features.credentials>] source, with its password (one credential pair)",
    ),
    (
        "dex_redirect_uri",
        "preflight.dex_redirect_uri is gone: dex gets the oidcRedirectURL of the kfbase plugin ([[install.plugins]] module = \"kfbase\", config), so the two are equal",
    ),
    (
        "kfp_url",
        "mysql.kfp_url is gone: name Kubeflow Pipelines' MySQL as [mysql.kfp] (url, databases, external = true for an external 5.7)",
    ),
    (
        "aml_database",
        "mysql.aml_database is gone: the job records are the databases of [mysql.aml]",
    ),
    (
        "url",
        "[mysql] now holds named sources: [mysql.aml] url = …, databases = [\"aml\"]; [mysql.kfp] …; [mysql.mlflow] … (see examples/upgrade-1.3-to-1.4.toml)",
    ),
];

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k.contains("secret") || k.ends_with("token")
}

/// `AMLMIGRATE_MYSQL_PASSWORD_<NAME>`: the source name upper-cased, `-` as `_`.
pub fn source_password_env(name: &str) -> String {
    format!(
        "AMLMIGRATE_MYSQL_PASSWORD_{}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

/// `section`'s `password_file` through the one password-file reader, else `env`.
fn read_password(file: Option<&Path>, section: &str, env: &str) -> Result<Option<Secret>> {
    let source = format!("the upgrade configuration's [{section}] password_file");
    crate::secret::password_from(file, &source, env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_documented_example_parses_with_every_plugin_in_order() {
        let text = include_str!("../../../examples/upgrade-1.3-to-1.4.toml");
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
        let text = include_str!("../../../examples/upgrade-1.3-to-1.4.toml");
        let e = UpgradeConfig::parse(&text.replace("timeout = \"2h\"", "timeout = \"soon\""), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("soon"), "{e}");
        let e = UpgradeConfig::parse(&text.replace("[drain]", "[drain]\nwat = 1"), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("wat"), "{e}");
    }

    #[test]
    fn moved_keys_say_where_they_went() {
        let text = include_str!("../../../examples/upgrade-1.3-to-1.4.toml");
        let e = UpgradeConfig::parse(
            &text.replace("[features]", "[features]\nmysql_user = \"root\""),
            "x",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("one credential pair"), "{e}");
        let e = UpgradeConfig::parse(
            &text.replace(
                "[preflight]",
                "[preflight]\ndex_redirect_uri = \"https://x\"",
            ),
            "x",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("oidcRedirectURL"), "{e}");
    }

    #[test]
    fn a_password_in_a_plugin_form_or_a_database_in_two_sources_is_refused() {
        let text = include_str!("../../../examples/upgrade-1.3-to-1.4.toml");
        let e = UpgradeConfig::parse(
            &text.replace(
                "pgUsername = \"mlflow\" }",
                "pgUsername = \"mlflow\", pgPassword = \"x\" }",
            ),
            "x",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("config.pgPassword: no password belongs in this file"),
            "{e}"
        );
        let e = UpgradeConfig::parse(
            &text.replace("databases = [\"mlflow\"]", "databases = [\"aml\"]"),
            "x",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("database aml is named by both [mysql.aml] and [mysql.mlflow]"),
            "{e}"
        );
    }

    #[test]
    fn mlflow_gets_the_postgres_password_by_default_and_sources_read_their_own_variables() {
        let text = include_str!("../../../examples/upgrade-1.3-to-1.4.toml");
        let cfg = UpgradeConfig::parse(text, "example").unwrap();
        let mlflow = cfg
            .install
            .plugins
            .iter()
            .find(|p| p.module == "mlflow")
            .unwrap();
        assert_eq!(mlflow.secret_sources()["pgPassword"], "postgres");
        assert_eq!(
            source_password_env("kfp-ext"),
            "AMLMIGRATE_MYSQL_PASSWORD_KFP_EXT"
        );
        assert_eq!(cfg.mlflow_database().unwrap(), "mlflow");
        assert_eq!(
            cfg.oidc_redirect_url(),
            Some("https://192.168.139.133:30665/oauth2/callback")
        );
    }

    #[test]
    fn password_files_of_the_configuration_go_through_the_one_reader() {
        let text = include_str!("../../../examples/upgrade-1.3-to-1.4.toml");
        let mut cfg = UpgradeConfig::parse(text, "example").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("pg.pw");
        std::fs::write(&empty, "\n").unwrap();
        cfg.postgres.password_file = Some(empty);
        let e = cfg.pg_url().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Input);
        let text = e.to_string();
        assert!(
            text.contains("[postgres] password_file") && text.contains("empty"),
            "{text}"
        );
        let name = cfg.mysql.keys().next().unwrap().clone();
        let pw = dir.path().join("my.pw");
        std::fs::write(&pw, "s3cret\r\n").unwrap();
        cfg.mysql.get_mut(&name).unwrap().password_file = Some(pw);
        let url = cfg.mysql_url(&name).unwrap();
        assert_eq!(url.password.unwrap().expose(), "s3cret");
    }
}
