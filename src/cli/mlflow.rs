//! `amlmigrate mlflow migrate` and `amlmigrate mlflow verify`

use anyhow::Context;
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use amlmigrate::mlflow::migrate::{MigrateOptions, MigrateSource, TableReport, migrate, verify};
use amlmigrate::mlflow::snapshot::SnapshotSource;
use amlmigrate::mysql::MysqlUrl;
use amlmigrate::postgres::PgUrl;

use super::{GlobalArgs, password, print_json, progress_for, thousands};

/// MLflow 2.6 (MySQL) → 3.1.1 (PostgreSQL), keeping every id, time and metric point.
#[derive(Args)]
pub struct MlflowArgs {
    #[command(subcommand)]
    command: MlflowCommand,
}

#[derive(Subcommand)]
enum MlflowCommand {
    Migrate(MigrateArgs),
    Verify(VerifyArgs),
}

/// The two databases, for migrate and verify.
#[derive(Args)]
struct Ends {
    /// The MLflow 2.6 MySQL database: mysql://user@host[:port]/mlflow[?ssl-mode=verify-identity&ssl-ca=FILE]
    /// (password from --mysql-password-file or AMLMIGRATE_MYSQL_PASSWORD rather than the URL).
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "from_snapshot",
        conflicts_with = "from_snapshot"
    )]
    from: Option<String>,
    /// Read the MLflow 2.6 database from a snapshot instead: the repository and the snapshot
    /// (an id, a unique prefix or `latest`).
    #[arg(long, num_args = 2, value_names = ["REPO", "SNAPSHOT"])]
    from_snapshot: Option<Vec<String>>,
    /// With --from-snapshot: the database inside the snapshot (default: the one that holds
    /// MLflow's tables).
    #[arg(long, value_name = "DB", requires = "from_snapshot")]
    from_database: Option<String>,
    /// Read the MySQL password of --from from this file (a trailing newline is ignored).
    #[arg(long, value_name = "FILE", requires = "from")]
    mysql_password_file: Option<std::path::PathBuf>,
    /// With --from-snapshot: the MySQL source of the snapshot that holds MLflow 2.6 (e.g.
    /// mlflow); its database is used (the one holding MLflow's tables when it has several).
    #[arg(long, value_name = "NAME", requires = "from_snapshot")]
    from_source: Option<String>,
    /// With --from-snapshot: check the snapshot's signature with these public keys first.
    #[command(flatten)]
    trust: super::key::TrustArgs,
    /// With --from-snapshot in an encrypted repository: the age identity that reads it.
    #[command(flatten)]
    identity: super::IdentityArg,
    /// The PostgreSQL database for MLflow 3.1.1:
    /// postgres://user@host[:port]/db[?sslmode=verify-full&sslrootcert=FILE] (password from
    /// --pg-password-file or PGPASSWORD rather than the URL). Empty, or freshly created by
    /// MLflow 3.1.1. sslmode is libpq's: disable, prefer (the default), require, verify-ca,
    /// verify-full.
    #[arg(long, value_name = "URL")]
    to: String,
    /// Read the PostgreSQL password of --to from this file (a trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    pg_password_file: Option<std::path::PathBuf>,
    /// Rewrite artifact locations that start with OLD to start with NEW (repeatable; the first
    /// match applies): experiments.artifact_location, runs.artifact_uri and model version
    /// sources. Example: --rewrite-artifact-uri /mnt/mlflow=s3://aml-mlflow/artifacts
    #[arg(long, value_name = "OLD=NEW", value_parser = super::parse_pair)]
    rewrite_artifact_uri: Vec<(String, String)>,
}

impl Ends {
    /// The database of `--from-source`: `--from-database` when it belongs to that source, the
    /// source's only database, or the only one of its databases that holds MLflow's tables.
    async fn source_database(&self) -> anyhow::Result<Option<String>> {
        let (Some(source), Some(snap)) = (&self.from_source, &self.from_snapshot) else {
            return Ok(self.from_database.clone());
        };
        let repo = self
            .trust
            .open_with(&snap[0], self.identity.identity.as_deref())
            .await?;
        let id = repo.resolve(&snap[1]).await?;
        let m = repo.manifest(&id).await?;
        let dbs = amlmigrate::backup::databases_of(&m, source)?;
        let names = || {
            dbs.iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(db) = &self.from_database {
            if !dbs.iter().any(|d| &d.name == db) {
                anyhow::bail!(amlmigrate::Error::input(format!(
                    "--from-database {db} is not in MySQL source {source} of snapshot {id} (it holds {})",
                    names()
                )));
            }
            return Ok(Some(db.clone()));
        }
        let mlflow: Vec<&str> = dbs
            .iter()
            .filter(|d| {
                ["experiments", "runs", "metrics"]
                    .iter()
                    .all(|t| d.tables.iter().any(|x| x.name == *t))
            })
            .map(|d| d.name.as_str())
            .collect();
        match (dbs.as_slice(), mlflow.as_slice()) {
            ([one], _) => Ok(Some(one.name.clone())),
            (_, [one]) => Ok(Some(one.to_string())),
            _ => anyhow::bail!(amlmigrate::Error::input(format!(
                "MySQL source {source} of snapshot {id} holds {}; name MLflow's with --from-database",
                names()
            ))),
        }
    }

    async fn options(&self) -> anyhow::Result<MigrateOptions> {
        let database = self.source_database().await?;
        let from = match (&self.from, &self.from_snapshot) {
            (Some(url), _) => {
                MigrateSource::Mysql(MysqlUrl::parse(url)?.with_fallback_password(password(
                    self.mysql_password_file.as_deref(),
                    "--mysql-password-file",
                    "AMLMIGRATE_MYSQL_PASSWORD",
                )?))
            }
            (None, Some(snap)) => MigrateSource::Snapshot(SnapshotSource {
                repo: snap[0].clone(),
                snapshot: snap[1].clone(),
                database,
                trust: self.trust.trust()?,
                identity: self.identity.identity.clone(),
            }),
            (None, None) => anyhow::bail!("give --from URL or --from-snapshot REPO SNAPSHOT"),
        };
        let to = PgUrl::parse(&self.to)?.with_fallback_password(password(
            self.pg_password_file.as_deref(),
            "--pg-password-file",
            "PGPASSWORD",
        )?);
        Ok(MigrateOptions {
            from,
            to,
            rewrite_artifact_uri: self.rewrite_artifact_uri.clone(),
            artifacts_from: None,
            artifacts_to: None,
        })
    }
}

/// Copies an MLflow 2.6 database into PostgreSQL for MLflow 3.1.1, then verifies it.
///
/// The source must be at MLflow 2.6.0's alembic head (7f2a7d5fae7d). The target must be empty
/// (the exact MLflow 3.1.1 schema is created, stamped bda7b8c39065) or freshly created by
/// MLflow 3.1.1 (only its Default experiment). Every shared table is copied with COPY in
/// foreign-key order, keeping experiment ids, run ids, names, lifecycle stages, times, params,
/// tags, every metric point, datasets, inputs, models, versions, tags and aliases; sequences
/// are moved past the copied ids.
///
/// Everything happens in one PostgreSQL transaction that commits only when every table's row
/// count and checksum equal the source's: an interruption at any moment leaves the target as it
/// was; run the same command again. A run against a target that already holds exactly the
/// source's data says "already migrated" and changes nothing.
#[derive(Args)]
#[command(after_long_help = r#"Example:
  amlmigrate mlflow migrate --from mysql://root@mysql:3306/mlflow \
      --to postgres://mlflow@pg:5432/mlflow"#)]
struct MigrateArgs {
    #[command(flatten)]
    ends: Ends,
    /// The artifact store of the MLflow 2.6 server (its --artifacts-destination): a folder, or
    /// s3://BUCKET/PREFIX in S3/MinIO. Copied with checksums to --artifacts-to before the
    /// database; files already there with the same bytes are skipped, different ones are never
    /// overwritten, symbolic links are never followed. An s3:// store uses the AWS_* variables
    /// (as an s3:// repository does), or, with ?profile=NAME, only that profile of
    /// ~/.aws/config and ~/.aws/credentials (endpoint_url, region, keys).
    #[arg(long, value_name = "PATH|URL", requires = "artifacts_to")]
    artifacts_from: Option<String>,
    /// The artifact store the MLflow 3.1.1 server will serve (a folder or
    /// s3://BUCKET/PREFIX[?profile=NAME]). Filled from --artifacts-from, or, with
    /// --from-snapshot, from the snapshot's artifact part (backup --mlflow-artifacts).
    #[arg(long, value_name = "PATH|URL")]
    artifacts_to: Option<String>,
}

/// Compares an MLflow 2.6 database with its migrated copy, table by table.
///
/// Row counts and an order-independent checksum of normalised rows, source against target.
/// Exit 0 when every table is equal, 3 otherwise.
#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    ends: Ends,
}

pub async fn run(
    args: MlflowArgs,
    g: &GlobalArgs,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    match args.command {
        MlflowCommand::Migrate(a) => {
            let mut opts = a.ends.options().await?;
            opts.artifacts_from = a.artifacts_from;
            opts.artifacts_to = a.artifacts_to;
            let ui = progress_for(g);
            let result = migrate(&opts, ui.clone(), cancel).await;
            ui.finish();
            let report =
                result.with_context(|| format!("MLflow migration {} -> {}", opts.from, opts.to))?;
            if g.json {
                print_json(&serde_json::json!({ "ok": true, "migrate": report }));
            } else if !g.quiet {
                print_tables(&report.tables);
                if let Some(a) = &report.artifacts {
                    println!(
                        "artifacts: {} files, {} copied from {} to {} and read back ({} already there)",
                        thousands(a.files),
                        super::human_bytes(a.bytes),
                        a.from,
                        a.to,
                        thousands(a.already_there)
                    );
                }
                println!(
                    "{}: {} -> {} ({} metric points, schema {}) in {:.1}s",
                    report.outcome,
                    report.source,
                    report.target,
                    thousands(report.metric_points),
                    if report.schema_created {
                        "created"
                    } else {
                        "found"
                    },
                    report.seconds
                );
            }
            Ok(())
        }
        MlflowCommand::Verify(a) => {
            let opts = a.ends.options().await?;
            let ui = progress_for(g);
            let result = verify(&opts, ui.clone()).await;
            ui.finish();
            let tables = result?;
            let equal = tables.iter().all(|t| t.equal);
            if g.json {
                print_json(&serde_json::json!({ "ok": equal, "tables": tables }));
            } else if !g.quiet {
                print_tables(&tables);
            }
            if !equal {
                let bad: Vec<&str> = tables
                    .iter()
                    .filter(|t| !t.equal)
                    .map(|t| t.table.as_str())
                    .collect();
                return Err(amlmigrate::Error::damaged(
                    "mlflow verify",
                    bad.join(", "),
                    format!("{} differs from {}", opts.to, opts.from),
                )
                .into());
            }
            Ok(())
        }
    }
}

fn print_tables(tables: &[TableReport]) {
    println!(
        "{:<26} {:>14} {:>14}  RESULT",
        "TABLE", "SOURCE ROWS", "TARGET ROWS"
    );
    for t in tables {
        println!(
            "{:<26} {:>14} {:>14}  {}",
            t.table,
            thousands(t.source_rows),
            thousands(t.target_rows),
            if t.equal { "equal" } else { "DIFFERENT" }
        );
    }
}
