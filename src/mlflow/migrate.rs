//! `mlflow migrate` and `mlflow verify`.
//!
//! Safety: the whole migration — schema, every row, sequences, verification — runs in one
//! PostgreSQL transaction, and the source is read in one consistent-snapshot transaction. The
//! target commits only after every table's row count and checksum equal the source's, so an
//! interruption at any moment (Ctrl-C, kill -9, a lost connection) leaves the target as it
//! was, and a re-run starts clean. A re-run after success finds the same data and changes
//! nothing.

use std::time::Instant;

use futures::TryStreamExt;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde::Serialize;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::artifacts::ArtifactLocation;
use super::copier::{TableCopier, pg_cols};
use super::rows::{ARTIFACT_URI_COLUMNS, Norm, PgType, TableSpec, TableSum};
use super::snapshot::{OpenSnapshot, SnapshotSource};
use super::{SHARED_TABLES, SOURCE_REVISIONS, TARGET_REVISION, schema_parts};
use crate::error::{Error, MysqlContext, Result};
use crate::mysql::sqltext::ident;
use crate::mysql::{MysqlUrl, connect, text};
use crate::postgres::{PgUrl, describe};
use crate::progress::{Event, ProgressRef};

/// Where the MLflow 2.6 rows come from.
#[derive(Debug, Clone)]
pub enum MigrateSource {
    /// A live MySQL database (the URL must name it).
    Mysql(MysqlUrl),
    /// The MLflow database inside a snapshot of `amlmigrate backup`.
    Snapshot(SnapshotSource),
}

impl std::fmt::Display for MigrateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigrateSource::Mysql(url) => write!(f, "{url}"),
            MigrateSource::Snapshot(s) => write!(f, "snapshot {} in {}", s.snapshot, s.repo),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub from: MigrateSource,
    /// The PostgreSQL database for MLflow 3.1.1: empty, or freshly created by MLflow 3.1.1.
    pub to: PgUrl,
    /// `(old prefix, new prefix)` rewrites of artifact locations (experiments, runs, model
    /// version sources); the first matching rule applies.
    pub rewrite_artifact_uri: Vec<(String, String)>,
    /// Where the MLflow 3.1.1 server's artifact tree goes (a folder or `s3://bucket/prefix`,
    /// read with [`ArtifactLocation::parse`]). Filled from `artifacts_from`, or, with a
    /// snapshot source, from the snapshot's artifact part.
    pub artifacts_to: Option<String>,
    /// The MLflow 2.6 server's artifact store (its `--artifacts-destination`: a folder or
    /// `s3://bucket/prefix`).
    pub artifacts_from: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub table: String,
    pub source_rows: u64,
    pub target_rows: u64,
    pub source_checksum: String,
    pub target_checksum: String,
    pub equal: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    pub source: String,
    pub target: String,
    pub source_revision: String,
    pub target_revision: String,
    /// `migrated`, or `already migrated` when the target already held exactly the source's data.
    pub outcome: String,
    /// Whether the tool created the schema (the target was empty) or found MLflow 3.1.1's own.
    pub schema_created: bool,
    pub tables: Vec<TableReport>,
    pub metric_points: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<super::artifacts::ArtifactReport>,
    pub seconds: f64,
}

fn pg_err(context: impl std::fmt::Display) -> impl FnOnce(tokio_postgres::Error) -> Error {
    move |e| {
        Error::other(format!(
            "PostgreSQL error while {context}: {}",
            describe(&e)
        ))
    }
}

async fn open_source(url: &MysqlUrl) -> Result<(Conn, String)> {
    let db = url.database.clone().ok_or_else(|| {
        Error::input(format!(
            "--from {url} names no database: give the MLflow database, e.g. mysql://user@host:3306/mlflow"
        ))
    })?;
    let mut conn = connect(url).await?;
    conn.query_drop(
        "SET SESSION net_write_timeout = 86400, net_read_timeout = 86400, wait_timeout = 86400, time_zone = '+00:00'",
    )
    .await
    .ctx(|| "preparing the source session".into())?;
    conn.query_drop("SET NAMES utf8mb4")
        .await
        .ctx(|| "setting utf8mb4".into())?;
    let rev: std::result::Result<Option<String>, _> = conn
        .query_first(format!(
            "SELECT version_num FROM {}.alembic_version",
            ident(&db)
        ))
        .await;
    let rev = match rev {
        Ok(Some(r)) => r,
        Ok(None) | Err(_) => {
            return Err(Error::input(format!(
                "{url} is not an MLflow database (no alembic_version row); check the database name"
            )));
        }
    };
    check_revision(&url.to_string(), &rev)?;
    conn.query_drop(format!("USE {}", ident(&db)))
        .await
        .ctx(|| format!("using {db}"))?;
    Ok((conn, rev))
}

fn check_revision(what: &str, rev: &str) -> Result<()> {
    if SOURCE_REVISIONS.iter().any(|(r, _)| *r == rev) {
        return Ok(());
    }
    let supported: Vec<String> = SOURCE_REVISIONS
        .iter()
        .map(|(r, v)| format!("{r} ({v})"))
        .collect();
    Err(Error::input(format!(
        "the MLflow database at {what} is at alembic revision {rev}; this version migrates from {}",
        supported.join(", ")
    )))
}

/// An opened source: a live MySQL connection or a snapshot's part.
enum Src {
    Live(Conn),
    Snap(Box<OpenSnapshot>),
}

/// Opens the source and checks its revision; returns it with its revision and its name.
async fn open(from: &MigrateSource) -> Result<(Src, String, String)> {
    match from {
        MigrateSource::Mysql(url) => {
            let (conn, rev) = open_source(url).await?;
            Ok((Src::Live(conn), rev, url.redacted()))
        }
        MigrateSource::Snapshot(s) => {
            let snap = OpenSnapshot::open(s).await?;
            let rev = snap.revision().await?;
            check_revision(&snap.display, &rev)?;
            let display = snap.display.clone();
            Ok((Src::Snap(Box::new(snap)), rev, display))
        }
    }
}

impl Src {
    /// Starts the one consistent read of a live source.
    async fn begin(&mut self) -> Result<()> {
        if let Src::Live(my) = self {
            my.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .await
                .ctx(|| "setting the isolation level".into())?;
            my.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await
                .ctx(|| "starting the source snapshot".into())?;
        }
        Ok(())
    }

    async fn end(&mut self) {
        if let Src::Live(my) = self {
            let _ = my.query_drop("COMMIT").await;
        }
    }

    /// Source columns of a shared table in row order, and whether each is in the primary key.
    async fn columns(&mut self, t: &str) -> Result<Vec<(String, bool)>> {
        match self {
            Src::Snap(snap) => snap.columns(t),
            Src::Live(my) => {
                let src: Vec<mysql_async::Row> = my
                    .exec(
                        "SELECT COLUMN_NAME, COLUMN_KEY FROM information_schema.COLUMNS \
                         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                        (t,),
                    )
                    .await
                    .ctx(|| format!("reading the columns of source table {t}"))?;
                if src.is_empty() {
                    return Err(Error::input(format!(
                        "the source has no table {t}; it is not an MLflow 2.6 database"
                    )));
                }
                Ok(src
                    .iter()
                    .map(|r| {
                        (
                            text(r, 0).unwrap_or_default(),
                            text(r, 1).as_deref() == Some("PRI"),
                        )
                    })
                    .collect())
            }
        }
    }

    async fn rows(&mut self, t: &str) -> Result<u64> {
        match self {
            Src::Snap(snap) => Ok(snap.rows(t)),
            Src::Live(my) => {
                let n: Option<i64> = my
                    .query_first(format!("SELECT COUNT(*) FROM {}", ident(t)))
                    .await
                    .ctx(|| format!("counting {t}"))?;
                Ok(n.unwrap_or(0) as u64)
            }
        }
    }

    /// Copies every table into `pg` (or, without it, only reads them); source checksums in
    /// `specs` order.
    async fn copy_all(
        &mut self,
        pg: Option<&Client>,
        specs: &[TableSpec],
        rules: &[(String, String)],
        progress: &ProgressRef,
        cancel: &CancellationToken,
    ) -> Result<Vec<TableSum>> {
        match self {
            Src::Snap(snap) => snap.copy_all(pg, specs, rules, progress, cancel).await,
            Src::Live(my) => {
                let mut sums = Vec::new();
                for spec in specs {
                    sums.push(copy_table(my, pg, spec, rules, progress, cancel).await?);
                }
                Ok(sums)
            }
        }
    }
}

enum Target {
    Empty,
    /// Created by MLflow 3.1.1 and holding only its Default experiment.
    FreshMlflow,
    /// At the 3.1.1 head and holding data.
    Populated,
}

async fn classify(pg: &Client, url: &PgUrl) -> Result<Target> {
    let tables: i64 = pg
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .await
        .map_err(pg_err("inspecting the target"))?
        .get(0);
    if tables == 0 {
        return Ok(Target::Empty);
    }
    let rev = pg
        .query_opt("SELECT version_num FROM public.alembic_version", &[])
        .await
        .ok()
        .flatten()
        .map(|r| r.get::<_, String>(0));
    let Some(rev) = rev else {
        return Err(Error::Refused(format!(
            "{url} holds tables but no MLflow schema (no alembic_version); migrate into an empty database"
        )));
    };
    if rev != TARGET_REVISION {
        return Err(Error::Refused(format!(
            "{url} holds an MLflow schema at revision {rev}, not MLflow 3.1.1's {TARGET_REVISION}; migrate into an empty database"
        )));
    }
    let mut others = 0i64;
    for t in SHARED_TABLES.iter().filter(|t| **t != "experiments") {
        let n: i64 = pg
            .query_one(&format!("SELECT count(*) FROM public.{t}"), &[])
            .await
            .map_err(pg_err(format!("counting {t}")))?
            .get(0);
        others += n;
    }
    let experiments: Vec<(i32, String)> = pg
        .query(
            "SELECT experiment_id, name FROM public.experiments ORDER BY experiment_id LIMIT 2",
            &[],
        )
        .await
        .map_err(pg_err("reading experiments"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    if others == 0 && (experiments.is_empty() || experiments == [(0, "Default".to_string())]) {
        return Ok(Target::FreshMlflow);
    }
    Ok(Target::Populated)
}

/// Columns both sides have (in source order), with their PostgreSQL types, and the source key.
async fn table_specs(src: &mut Src, pg: &Client) -> Result<Vec<TableSpec>> {
    let mut specs = Vec::new();
    for t in SHARED_TABLES {
        let source = src.columns(t).await?;
        // The length limit too: a value over it is refused naming the row, before the
        // server's generic "value too long" would end the COPY.
        let target: Vec<(String, String, Option<i32>)> = pg
            .query(
                "SELECT column_name::text, data_type::text, character_maximum_length::int4 \
                 FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = $1",
                &[t],
            )
            .await
            .map_err(pg_err(format!("reading the columns of target table {t}")))?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let mut columns = Vec::new();
        let mut key = Vec::new();
        for (name, primary) in source {
            let Some((_, ty, max_chars)) = target.iter().find(|(n, _, _)| *n == name) else {
                return Err(Error::other(format!(
                    "source column {t}.{name} has no place in MLflow 3.1.1's schema"
                )));
            };
            let pg = PgType::from_data_type(ty).ok_or_else(|| {
                Error::other(format!(
                    "target column {t}.{name} has unsupported type {ty}"
                ))
            })?;
            if primary {
                key.push(columns.len());
            }
            let artifact_uri = ARTIFACT_URI_COLUMNS.contains(&(t, name.as_str()));
            columns.push(super::rows::Column {
                name,
                pg,
                max_chars: max_chars.and_then(|n| u32::try_from(n).ok()),
                artifact_uri,
            });
        }
        specs.push(TableSpec {
            name: t.to_string(),
            columns,
            key,
        });
    }
    Ok(specs)
}

fn select_sql(spec: &TableSpec) -> String {
    let cols: Vec<String> = spec.columns.iter().map(|c| ident(&c.name)).collect();
    format!("SELECT {} FROM {}", cols.join(", "), ident(&spec.name))
}

/// Streams one table from MySQL into a PostgreSQL COPY (or, without `pg`, only reads it);
/// returns the source checksum.
async fn copy_table(
    my: &mut Conn,
    pg: Option<&Client>,
    spec: &TableSpec,
    rules: &[(String, String)],
    progress: &ProgressRef,
    cancel: &CancellationToken,
) -> Result<TableSum> {
    let mut copier = TableCopier::start(pg, spec, rules, progress, cancel).await?;
    let what = || format!("reading source table {}", spec.name);
    let mut result = my.exec_iter(select_sql(spec), ()).await.ctx(what)?;
    while let Some(row) = result.next().await.ctx(what)? {
        copier.row(row.unwrap()).await?;
    }
    drop(result);
    copier.finish().await
}

async fn target_sum(pg: &Client, spec: &TableSpec) -> Result<TableSum> {
    let sql = format!("SELECT {} FROM public.{}", pg_cols(spec), spec.name);
    let ctx = || format!("reading target table {}", spec.name);
    let stream = pg
        .query_raw(&sql, std::iter::empty::<i32>())
        .await
        .map_err(pg_err(ctx()))?;
    futures::pin_mut!(stream);
    let mut sum = TableSum::default();
    while let Some(row) = stream.try_next().await.map_err(pg_err(ctx()))? {
        let mut texts: Vec<Option<String>> = vec![None; spec.columns.len()];
        let mut norm: Vec<Norm<'_>> = Vec::with_capacity(spec.columns.len());
        for (i, col) in spec.columns.iter().enumerate() {
            if col.pg == PgType::Text {
                texts[i] = row.try_get::<_, Option<String>>(i).map_err(pg_err(ctx()))?;
            }
        }
        for (i, col) in spec.columns.iter().enumerate() {
            let n = match col.pg {
                PgType::Bool => row
                    .try_get::<_, Option<bool>>(i)
                    .map_err(pg_err(ctx()))?
                    .map(Norm::Bool),
                PgType::Int4 => row
                    .try_get::<_, Option<i32>>(i)
                    .map_err(pg_err(ctx()))?
                    .map(|v| Norm::Int(v.into())),
                PgType::Int8 => row
                    .try_get::<_, Option<i64>>(i)
                    .map_err(pg_err(ctx()))?
                    .map(Norm::Int),
                PgType::Float8 => row
                    .try_get::<_, Option<f64>>(i)
                    .map_err(pg_err(ctx()))?
                    .map(Norm::Float),
                PgType::Text => texts[i].as_deref().map(|s| Norm::Text(s.as_bytes())),
            };
            norm.push(n.unwrap_or(Norm::Null));
        }
        sum.add(norm);
    }
    Ok(sum)
}

fn report_row(spec: &TableSpec, s: TableSum, t: TableSum) -> TableReport {
    TableReport {
        table: spec.name.clone(),
        source_rows: s.rows,
        target_rows: t.rows,
        source_checksum: s.hex(),
        target_checksum: t.hex(),
        equal: s == t,
    }
}

fn first_difference(tables: &[TableReport]) -> Option<String> {
    tables.iter().find(|t| !t.equal).map(|t| {
        if t.source_rows != t.target_rows {
            format!(
                "table {}: {} rows in the source, {} in the target",
                t.table, t.source_rows, t.target_rows
            )
        } else {
            format!(
                "table {}: same {} rows but different content (checksum {} vs {})",
                t.table, t.source_rows, t.source_checksum, t.target_checksum
            )
        }
    })
}

/// Compares source and target table by table (row counts and order-independent checksums of
/// normalised rows). Differences are in the report; this only fails when it cannot read.
pub async fn verify(opts: &MigrateOptions, progress: ProgressRef) -> Result<Vec<TableReport>> {
    let (mut src, _, _) = open(&opts.from).await?;
    let pg = opts.to.connect().await?;
    src.begin().await?;
    let specs = table_specs(&mut src, &pg).await?;
    progress.event(Event::Plan {
        what: "mlflow verify",
        tables: specs.len() as u64,
        est_rows: 0,
        est_bytes: 0,
    });
    let sums = src
        .copy_all(
            None,
            &specs,
            &opts.rewrite_artifact_uri,
            &progress,
            &CancellationToken::new(),
        )
        .await?;
    src.end().await;
    let mut out = Vec::new();
    for (spec, s) in specs.iter().zip(sums) {
        let t = target_sum(&pg, spec).await?;
        out.push(report_row(spec, s, t));
    }
    Ok(out)
}

pub async fn migrate(
    opts: &MigrateOptions,
    progress: ProgressRef,
    cancel: CancellationToken,
) -> Result<MigrateReport> {
    let started = Instant::now();
    let progress = crate::progress::logged(progress, "mlflow migrate");
    let (mut src, revision, source_name) = open(&opts.from).await?;
    let pg = opts.to.connect().await?;
    let target = classify(&pg, &opts.to).await?;
    tracing::info!(
        source = source_name,
        source_revision = revision,
        target = opts.to.redacted(),
        "mlflow migrate: {source_name} (revision {revision}) into {}: target {}",
        opts.to.redacted(),
        match target {
            Target::Empty => "empty",
            Target::Populated => "already holds MLflow data",
            Target::FreshMlflow => "has MLflow 3.1.1's empty schema",
        }
    );
    // Artifacts of a live store first: the copy is idempotent, and the database is only touched
    // once it is done. A snapshot's artifacts are unpacked only once its rows are accepted (just
    // before COMMIT), so a snapshot refused for its rows leaves no files behind.
    let location = |s: &Option<String>| s.as_deref().map(ArtifactLocation::parse).transpose();
    let (artifacts_from, artifacts_to) = (
        location(&opts.artifacts_from)?,
        location(&opts.artifacts_to)?,
    );
    let artifacts = match (&artifacts_from, &artifacts_to, &src) {
        (Some(from), Some(to), _) => {
            Some(super::artifacts::copy_tree(from, to, &progress, &cancel).await?)
        }
        (None, Some(_), Src::Snap(_)) => None,
        (None, Some(_), Src::Live(_)) => {
            return Err(Error::input(
                "--artifacts-to needs --artifacts-from (or --from-snapshot with a snapshot taken with --mlflow-artifacts)",
            ));
        }
        (Some(_), None, _) => return Err(Error::input("--artifacts-from needs --artifacts-to")),
        (None, None, _) => None,
    };
    let snapshot_artifacts = async |src: &Src| match (&artifacts_to, src) {
        (Some(to), Src::Snap(snap)) if artifacts_from.is_none() => snap
            .extract_artifacts(to, &progress, &cancel)
            .await
            .map(Some),
        _ => Ok(artifacts.clone()),
    };
    let report =
        |outcome: &str,
         schema_created: bool,
         tables: Vec<TableReport>,
         artifacts: Option<super::artifacts::ArtifactReport>| MigrateReport {
            source: source_name.clone(),
            target: opts.to.redacted(),
            source_revision: revision.clone(),
            target_revision: TARGET_REVISION.into(),
            outcome: outcome.into(),
            schema_created,
            metric_points: tables
                .iter()
                .find(|t| t.table == "metrics")
                .map(|t| t.target_rows)
                .unwrap_or(0),
            tables,
            artifacts,
            seconds: started.elapsed().as_secs_f64(),
        };
    if let Target::Populated = target {
        let tables = verify(opts, progress.clone()).await?;
        return match first_difference(&tables) {
            None => {
                let artifacts = snapshot_artifacts(&src).await?;
                Ok(report("already migrated", false, tables, artifacts))
            }
            Some(diff) => Err(Error::Refused(format!(
                "{} already holds MLflow data that differs from the source ({diff}); nothing was changed. Migrate into an empty database",
                opts.to
            ))),
        };
    }

    src.begin().await?;
    pg.batch_execute("BEGIN")
        .await
        .map_err(pg_err("starting the target transaction"))?;
    let schema_created = matches!(target, Target::Empty);
    let work = async {
        let (tables_sql, constraints_sql) = schema_parts();
        if schema_created {
            pg.batch_execute(tables_sql)
                .await
                .map_err(pg_err("creating the MLflow 3.1.1 tables"))?;
        } else {
            // MLflow 3.1.1 created its Default experiment; the source brings its own (id 0).
            pg.batch_execute("DELETE FROM public.experiment_tags WHERE experiment_id = 0; DELETE FROM public.experiments WHERE experiment_id = 0")
                .await
                .map_err(pg_err("removing the empty Default experiment"))?;
        }
        let specs = table_specs(&mut src, &pg).await?;
        let mut est_rows = 0u64;
        for spec in &specs {
            est_rows += src.rows(&spec.name).await?;
        }
        progress.event(Event::Plan {
            what: "mlflow",
            tables: specs.len() as u64,
            est_rows,
            est_bytes: 0,
        });
        let sums = src
            .copy_all(Some(&pg), &specs, &opts.rewrite_artifact_uri, &progress, &cancel)
            .await?;
        if schema_created {
            pg.batch_execute(constraints_sql)
                .await
                .map_err(pg_err("creating MLflow 3.1.1's keys, indexes and foreign keys over the copied rows"))?;
        }
        reset_sequences(&pg).await?;
        let mut tables = Vec::new();
        for (spec, s) in specs.iter().zip(sums) {
            let t = target_sum(&pg, spec).await?;
            tables.push(report_row(spec, s, t));
        }
        if let Some(diff) = first_difference(&tables) {
            return Err(Error::Damaged {
                part: "mlflow migration".into(),
                entry: diff.clone(),
                detail: "the target does not equal the source after the copy; it was rolled back".into(),
            });
        }
        if cancel.is_cancelled() {
            return Err(Error::Interrupted(
                "migration stopped; the target transaction was rolled back, nothing was written".into(),
            ));
        }
        Ok(tables)
    }
    .await;
    match work {
        Ok(tables) => {
            let artifacts = match snapshot_artifacts(&src).await {
                Ok(a) => a,
                Err(e) => {
                    let _ = pg.batch_execute("ROLLBACK").await;
                    return Err(e);
                }
            };
            pg.batch_execute("COMMIT")
                .await
                .map_err(pg_err("committing the migration"))?;
            src.end().await;
            tracing::info!(
                tables = tables.len(),
                seconds = started.elapsed().as_secs_f64(),
                "mlflow migrate: committed {} table(s), every count and checksum equal",
                tables.len()
            );
            Ok(report("migrated", schema_created, tables, artifacts))
        }
        Err(e) => {
            let _ = pg.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// Moves every serial sequence past the ids copied explicitly, or the next experiment MLflow
/// creates would collide.
async fn reset_sequences(pg: &Client) -> Result<()> {
    let serials = pg
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND column_default LIKE 'nextval(%'",
            &[],
        )
        .await
        .map_err(pg_err("listing sequences"))?;
    for r in serials {
        let (t, c): (String, String) = (r.get(0), r.get(1));
        pg.batch_execute(&format!(
            "SELECT setval(pg_get_serial_sequence('public.{t}', '{c}'), COALESCE(MAX(\"{c}\"), 0) + 1, false) FROM public.{t}"
        ))
        .await
        .map_err(pg_err(format!("moving the sequence of {t}.{c}")))?;
    }
    Ok(())
}
