//! One database's schema, run on the control connection as the part streams by: the
//! database and tables before any row, each object in its creation context, triggers and
//! events once every row is in.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::objects::{self, Ready, ReadySchema};
use super::parallel::Item;
use super::{
    BASE_SQL_MODE, DbContext, MAX_SCHEMA_BYTES, RestoredDatabase, RestoredTable, schema_too_big,
};
use crate::error::{Error, MysqlContext, Result};
use crate::mysql::catalog::{DbSchema, ObjectKind};
use crate::mysql::context;
use crate::mysql::sqltext::{ident, path_segment, qualified};
use crate::progress::Event;

pub(super) struct DbState<'c> {
    pub ctx: &'c DbContext<'c>,
    dbdir: String,
    schema: Option<ReadySchema>,
    /// Rows committed per table of the database, by manifest index.
    pub done: Vec<Option<u64>>,
}

impl<'c> DbState<'c> {
    pub(super) fn new(ctx: &'c DbContext<'c>) -> Self {
        DbState {
            ctx,
            dbdir: format!("mysql/{}", path_segment(&ctx.plan.db.name)),
            schema: None,
            done: vec![None; ctx.plan.db.tables.len()],
        }
    }

    fn target(&self) -> &str {
        &self.ctx.plan.target
    }

    /// The manifest index of the table a `.tsv` entry belongs to; `None` for other entries.
    pub(super) fn table_of(&self, path: &str) -> Result<Option<usize>> {
        let rel = path
            .strip_prefix(&format!("{}/", self.dbdir))
            .unwrap_or(path);
        if !rel.ends_with(".tsv") {
            return Ok(None);
        }
        let dir = rel.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let index = self
            .ctx
            .plan
            .db
            .tables
            .iter()
            .position(|t| t.dir == dir)
            .ok_or_else(|| {
                Error::damaged(
                    &self.ctx.plan.db.part,
                    path,
                    "chunk of a table the manifest does not list",
                )
            })?;
        if self.schema.is_none() {
            return Err(Error::damaged(
                &self.ctx.plan.db.part,
                path,
                "data before schema.json",
            ));
        }
        Ok(Some(index))
    }

    /// An entry other than a chunk: `schema.json` runs the schema, the rest is skipped.
    pub(super) async fn entry(&mut self, conn: &mut Conn, item: Item) -> Result<()> {
        let Item { path, mut data } = item;
        if path != format!("{}/schema.json", self.dbdir) {
            while data.recv().await.is_some() {}
            return Ok(());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = data.recv().await {
            bytes.extend_from_slice(&chunk.map_err(|e| Error::io("reading schema.json", e))?);
            if bytes.len() as u64 > MAX_SCHEMA_BYTES {
                return Err(schema_too_big(&self.ctx.plan.db.part, &path));
            }
        }
        let schema: DbSchema = serde_json::from_slice(&bytes).map_err(|e| {
            Error::damaged(
                &self.ctx.plan.db.part,
                &path,
                format!("not a valid schema: {e}"),
            )
        })?;
        let ready = objects::prepare(self.ctx, &schema)?;
        self.pre_data(conn, &ready).await?;
        self.schema = Some(ready);
        Ok(())
    }

    /// Creates one object in its creation context: its session settings, the database
    /// collation it was created under, and its text in its client character set. An object of
    /// a snapshot from before contexts were recorded is created in the restore's own session.
    async fn exec_object(&self, conn: &mut Conn, o: &Ready) -> Result<()> {
        let what = || {
            format!(
                "creating {} {}",
                o.kind.keyword().to_lowercase(),
                qualified(self.target(), &o.name)
            )
        };
        let Some(set) = o.context.set_sql() else {
            return run_ddl(conn, o.sql.as_bytes()).await.ctx(what);
        };
        let bytes = match o
            .context
            .charset
            .as_deref()
            .filter(|_| o.context.needs_encoding(&o.sql))
        {
            None => o.sql.clone().into_bytes(),
            Some(cs) => match context::encode(conn, &o.sql, cs).await {
                Ok(b) => b,
                Err(context::EncodeError::Server(e)) => return Err(e).ctx(what),
                Err(context::EncodeError::Lossy) => {
                    return Err(Error::Refused(format!(
                        "{} of snapshot {}: its text holds characters its character set {cs} \
                         cannot hold, so it was edited after the backup; restore from another \
                         snapshot",
                        what(),
                        self.ctx.manifest.id
                    )));
                }
            },
        };
        let collation_was = self.switch_database_collation(conn, o).await?;
        conn.query_drop(set)
            .await
            .ctx(|| format!("setting the creation context of {}", o.name))?;
        let run = run_ddl(conn, &bytes).await.ctx(what);
        conn.query_drop(format!(
            "SET NAMES utf8mb4, SESSION sql_mode = '{BASE_SQL_MODE}', time_zone = '+00:00'"
        ))
        .await
        .ctx(|| "restoring session settings".into())?;
        if let Some(c) = collation_was {
            conn.query_drop(context::alter_database_sql(self.target(), &c))
                .await
                .ctx(|| {
                    format!(
                        "restoring the collation of database {}",
                        ident(self.target())
                    )
                })?;
        }
        run
    }

    /// Sets the target database's collation to the one `o` was created under, as mysqldump
    /// does; returns the one to set back afterwards.
    async fn switch_database_collation(
        &self,
        conn: &mut Conn,
        o: &Ready,
    ) -> Result<Option<String>> {
        let Some(want) = &o.context.database_collation else {
            return Ok(None);
        };
        let target = self.target();
        let current: Option<String> = conn
            .exec_first(
                "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (target,),
            )
            .await
            .ctx(|| format!("reading the collation of database {}", ident(target)))?;
        match current {
            Some(c) if c != *want => {
                conn.query_drop(context::alter_database_sql(target, want))
                    .await
                    .ctx(|| {
                        format!(
                            "setting database {} to collation {want}, which {} was created under",
                            ident(target),
                            o.name
                        )
                    })?;
                Ok(Some(c))
            }
            _ => Ok(None),
        }
    }

    /// Drops a routine, trigger or event of the same name, then creates the snapshot's.
    async fn replace_object(&self, conn: &mut Conn, o: &Ready) -> Result<()> {
        conn.query_drop(format!(
            "DROP {} IF EXISTS {}",
            o.kind.keyword(),
            ident(&o.name)
        ))
        .await
        .ctx(|| format!("replacing {}", qualified(self.target(), &o.name)))?;
        self.exec_object(conn, o).await
    }

    async fn pre_data(&self, conn: &mut Conn, schema: &ReadySchema) -> Result<()> {
        let target = self.target().to_string();
        conn.query_drop(schema.create_database.as_str())
            .await
            .ctx(|| format!("creating database {}", ident(&target)))?;
        conn.query_drop(format!("USE {}", ident(&target)))
            .await
            .ctx(|| format!("using database {}", ident(&target)))?;
        for o in schema.triggers() {
            conn.query_drop(format!("DROP TRIGGER IF EXISTS {}", ident(&o.name)))
                .await
                .ctx(|| {
                    format!(
                        "dropping trigger {} until the data is in",
                        qualified(&target, &o.name)
                    )
                })?;
        }
        for o in &schema.pre_data {
            match o.kind {
                ObjectKind::Table => {
                    if !self.ctx.plan.existing.contains(&o.name) {
                        self.exec_object(conn, o).await?;
                    }
                }
                ObjectKind::View => self.exec_object(conn, o).await?,
                ObjectKind::Function
                | ObjectKind::Procedure
                | ObjectKind::Trigger
                | ObjectKind::Event => self.replace_object(conn, o).await?,
            }
        }
        Ok(())
    }

    pub(super) async fn finish(mut self, conn: &mut Conn) -> Result<RestoredDatabase> {
        let target = self.target().to_string();
        let db = self.ctx.plan.db;
        for (i, t) in db.tables.iter().enumerate() {
            if self.done[i].is_some() {
                continue;
            }
            if t.rows != 0 {
                return Err(Error::damaged(
                    &db.part,
                    format!("mysql/{}/{}", path_segment(&db.name), t.dir),
                    "the table's chunks are missing",
                ));
            }
            let started = std::time::Instant::now();
            if self.ctx.replace && self.ctx.plan.existing.contains(&t.name) {
                conn.query_drop(format!("DELETE FROM {}", qualified(&target, &t.name)))
                    .await
                    .ctx(|| format!("emptying {} for --replace", qualified(&target, &t.name)))?;
            }
            self.ctx.progress.event(Event::TableFinished {
                db: target.clone(),
                table: t.name.clone(),
                rows: 0,
                bytes: 0,
                elapsed: started.elapsed(),
            });
            self.done[i] = Some(0);
        }
        let schema = self.schema.take().ok_or_else(|| {
            Error::damaged(&db.part, format!("{}/schema.json", self.dbdir), "missing")
        })?;
        conn.query_drop(format!("USE {}", ident(&target)))
            .await
            .ctx(|| format!("using database {}", ident(&target)))?;
        for o in &schema.post_data {
            self.replace_object(conn, o).await?;
        }
        let tables: Vec<RestoredTable> = db
            .tables
            .iter()
            .zip(&self.done)
            .map(|(t, rows)| RestoredTable {
                name: t.name.clone(),
                rows: rows.unwrap_or(0),
            })
            .collect();
        Ok(RestoredDatabase {
            source: db.name.clone(),
            target,
            rows: tables.iter().map(|t| t.rows).sum(),
            tables,
        })
    }
}

/// Runs one statement of a snapshot's schema as a prepared statement: the server then refuses
/// a second statement whatever the text holds (the driver always asks for multi-statement
/// support on the text protocol and cannot be told otherwise). MySQL cannot prepare
/// `CREATE TRIGGER`/`PROCEDURE`/`FUNCTION`/`EVENT` (error 1295); those run as text the tool
/// wrote from tokens [`validate::check_object`] proved to be one statement.
async fn run_ddl(conn: &mut Conn, sql: &[u8]) -> std::result::Result<(), mysql_async::Error> {
    match conn.exec_drop(sql, ()).await {
        Err(mysql_async::Error::Server(e)) if e.code == 1295 => conn.query_drop(sql).await,
        other => other,
    }
}
