//! What a database holds, read from `information_schema` and `SHOW CREATE`, and rendered as the
//! part's `schema.sql`, `load.sql` and `post-data.sql`.
//!
//! Triggers and events go to `post-data.sql`, after the data: a trigger created before the rows
//! are loaded would fire on every loaded row. Routines come before views (a view may call a
//! function), views after tables and in dependency order.

use std::collections::{BTreeMap, BTreeSet};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};

use super::context::{self, Context};
use super::sqltext::{comment_name, ident, literal, path_segment, qualified};
use super::text;
use crate::error::{Error, MysqlContext, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Table,
    Function,
    Procedure,
    View,
    Trigger,
    Event,
}

impl ObjectKind {
    pub fn keyword(self) -> &'static str {
        match self {
            ObjectKind::Table => "TABLE",
            ObjectKind::Function => "FUNCTION",
            ObjectKind::Procedure => "PROCEDURE",
            ObjectKind::View => "VIEW",
            ObjectKind::Trigger => "TRIGGER",
            ObjectKind::Event => "EVENT",
        }
    }

    /// Compound statements need a client-side delimiter in a `.sql` file.
    fn compound(self) -> bool {
        matches!(
            self,
            ObjectKind::Function | ObjectKind::Procedure | ObjectKind::Trigger | ObjectKind::Event
        )
    }
}

/// One `CREATE` statement with the session settings it was created under.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchemaObject {
    pub kind: ObjectKind,
    pub name: String,
    pub sql: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The client character set, connection collation and database collation the object was
    /// created under (absent in snapshots from before they were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub character_set_client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation_connection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_collation: Option<String>,
}

impl SchemaObject {
    /// An object with no recorded session settings (a table).
    pub fn plain(kind: ObjectKind, name: String, sql: String) -> Self {
        SchemaObject {
            kind,
            name,
            sql,
            sql_mode: None,
            time_zone: None,
            character_set_client: None,
            collation_connection: None,
            database_collation: None,
        }
    }

    /// Sets the character set, collation and database collation from `SHOW CREATE` columns
    /// `cs`, `cs + 1` and (when `with_db`) `cs + 2`.
    fn with_charsets(mut self, row: &mysql_async::Row, cs: usize, with_db: bool) -> Self {
        self.character_set_client = text(row, cs);
        self.collation_connection = text(row, cs + 1);
        if with_db {
            self.database_collation = text(row, cs + 2);
        }
        self
    }
}

/// `schema.json` of a part: the machine-readable schema `amlmigrate restore` executes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DbSchema {
    pub name: String,
    pub charset: String,
    pub collation: String,
    /// Tables (foreign-key order), routines, views (dependency order).
    pub pre_data: Vec<SchemaObject>,
    /// Triggers and events.
    pub post_data: Vec<SchemaObject>,
}

#[derive(Debug, Clone)]
pub struct TableInfo {
    pub name: String,
    pub engine: String,
    /// Stored columns, in table order (generated columns are computed again on load).
    pub columns: Vec<String>,
    pub est_rows: u64,
    pub est_bytes: u64,
}

impl TableInfo {
    pub fn dir(&self) -> String {
        path_segment(&self.name)
    }
}

#[derive(Debug, Clone)]
pub struct DbCatalog {
    pub schema: DbSchema,
    pub tables: Vec<TableInfo>,
    pub collations: BTreeSet<String>,
    pub notices: Vec<String>,
    /// Statements written in their object's client character set for the part's `.sql` files.
    pub encoded: Encoded,
}

/// Statements whose client character set is not UTF-8, in its bytes, by kind and name.
pub type Encoded = BTreeMap<(ObjectKind, String), Vec<u8>>;

impl DbCatalog {
    pub fn names_of(&self, kind: ObjectKind) -> Vec<String> {
        self.schema
            .pre_data
            .iter()
            .chain(&self.schema.post_data)
            .filter(|o| o.kind == kind)
            .map(|o| o.name.clone())
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseRef {
    pub name: String,
    pub charset: String,
    pub collation: String,
}

pub async fn list_databases(conn: &mut Conn) -> Result<Vec<DatabaseRef>> {
    let rows: Vec<mysql_async::Row> = conn
        .query(
            "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
             FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME",
        )
        .await
        .ctx(|| "listing databases".into())?;
    Ok(rows
        .iter()
        .map(|r| DatabaseRef {
            name: text(r, 0).unwrap_or_default(),
            charset: text(r, 1).unwrap_or_default(),
            collation: text(r, 2).unwrap_or_default(),
        })
        .collect())
}

fn is_generated(extra: &str) -> bool {
    let e = extra.to_ascii_uppercase();
    e.contains("VIRTUAL GENERATED")
        || e.contains("STORED GENERATED")
        || e.contains("PERSISTENT GENERATED")
        || e == "VIRTUAL"
        || e == "PERSISTENT"
}

/// Reads everything about one database. Call with `character_set_results = utf8mb4`.
pub async fn read(conn: &mut Conn, db: &DatabaseRef) -> Result<DbCatalog> {
    let name = &db.name;
    let mut notices = Vec::new();
    let mut collations: BTreeSet<String> = BTreeSet::new();
    if !db.collation.is_empty() {
        collations.insert(db.collation.clone());
    }

    let tables: Vec<mysql_async::Row> = conn
        .exec(
            "SELECT TABLE_NAME, TABLE_TYPE, COALESCE(ENGINE, ''), COALESCE(TABLE_ROWS, 0), \
             COALESCE(DATA_LENGTH, 0), COALESCE(TABLE_COLLATION, '') \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
            (name,),
        )
        .await
        .ctx(|| format!("listing tables of {}", ident(name)))?;
    let mut base: BTreeMap<String, TableInfo> = BTreeMap::new();
    let mut views: Vec<String> = Vec::new();
    for r in &tables {
        let tname = text(r, 0).unwrap_or_default();
        let ttype = text(r, 1).unwrap_or_default();
        let engine = text(r, 2).unwrap_or_default();
        let coll = text(r, 5).unwrap_or_default();
        if !coll.is_empty() {
            collations.insert(coll);
        }
        match ttype.as_str() {
            "VIEW" | "SYSTEM VIEW" => views.push(tname),
            "SEQUENCE" => notices.push(format!(
                "{}: sequences are not backed up by this version; recreate it after restore",
                qualified(name, &tname)
            )),
            _ => {
                if ttype == "SYSTEM VERSIONED" {
                    notices.push(format!(
                        "{}: system-versioned table; only current rows are backed up, not its history",
                        qualified(name, &tname)
                    ));
                }
                if !engine.eq_ignore_ascii_case("InnoDB") {
                    notices.push(format!(
                        "{}: engine {engine} is not transactional; its rows are read outside the consistent snapshot",
                        qualified(name, &tname)
                    ));
                }
                let est_rows: u64 = r.get::<Option<u64>, _>(3).flatten().unwrap_or(0);
                let est_bytes: u64 = r.get::<Option<u64>, _>(4).flatten().unwrap_or(0);
                base.insert(
                    tname.clone(),
                    TableInfo {
                        name: tname,
                        engine,
                        columns: Vec::new(),
                        est_rows,
                        est_bytes,
                    },
                );
            }
        }
    }

    let cols: Vec<mysql_async::Row> = conn
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME, COALESCE(EXTRA, ''), COALESCE(COLLATION_NAME, '') \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (name,),
        )
        .await
        .ctx(|| format!("listing columns of {}", ident(name)))?;
    for r in &cols {
        let t = text(r, 0).unwrap_or_default();
        let coll = text(r, 3).unwrap_or_default();
        if !coll.is_empty() {
            collations.insert(coll);
        }
        if let Some(info) = base.get_mut(&t)
            && !is_generated(&text(r, 2).unwrap_or_default())
        {
            info.columns.push(text(r, 1).unwrap_or_default());
        }
    }

    let fks: Vec<mysql_async::Row> = conn
        .exec(
            "SELECT TABLE_NAME, REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND UNIQUE_CONSTRAINT_SCHEMA = ?",
            (name, name),
        )
        .await
        .ctx(|| format!("reading foreign keys of {}", ident(name)))?;
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &fks {
        if let (Some(child), Some(parent)) = (text(r, 0), text(r, 1))
            && child != parent
        {
            deps.entry(child).or_default().insert(parent);
        }
    }
    let order = topo_order(base.keys().cloned().collect(), &deps);

    let mut pre_data = Vec::new();
    let mut infos = Vec::new();
    for t in order {
        let row: Option<mysql_async::Row> = conn
            .query_first(format!("SHOW CREATE TABLE {}", qualified(name, &t)))
            .await
            .ctx(|| format!("reading the definition of {}", qualified(name, &t)))?;
        let sql = row.as_ref().and_then(|r| text(r, 1)).ok_or_else(|| {
            Error::other(format!(
                "SHOW CREATE TABLE {} returned nothing",
                qualified(name, &t)
            ))
        })?;
        pre_data.push(SchemaObject::plain(ObjectKind::Table, t.clone(), sql));
        infos.push(base.remove(&t).expect("table listed"));
    }

    let routines: Vec<mysql_async::Row> = conn
        .exec(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE IN ('FUNCTION', 'PROCEDURE') ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
            (name,),
        )
        .await
        .ctx(|| format!("listing routines of {}", ident(name)))?;
    for r in &routines {
        let rname = text(r, 0).unwrap_or_default();
        let kind = if text(r, 1).as_deref() == Some("FUNCTION") {
            ObjectKind::Function
        } else {
            ObjectKind::Procedure
        };
        let o = show_create(conn, kind, name, &rname).await?;
        pre_data.push(o);
    }

    let mut view_sql = BTreeMap::new();
    let mut view_rows = BTreeMap::new();
    for v in &views {
        let row: Option<mysql_async::Row> = conn
            .query_first(format!("SHOW CREATE VIEW {}", qualified(name, v)))
            .await
            .ctx(|| format!("reading the definition of view {}", qualified(name, v)))?;
        let sql = row.as_ref().and_then(|r| text(r, 1)).ok_or_else(|| {
            Error::other(format!(
                "SHOW CREATE VIEW {} returned nothing",
                qualified(name, v)
            ))
        })?;
        view_sql.insert(v.clone(), sql);
        view_rows.insert(v.clone(), row.expect("row read"));
    }
    let mut view_deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (v, sql) in &view_sql {
        for other in view_sql.keys().filter(|o| *o != v) {
            if sql.contains(&qualified(name, other)) {
                view_deps
                    .entry(v.clone())
                    .or_default()
                    .insert(other.clone());
            }
        }
    }
    for v in topo_order(view_sql.keys().cloned().collect(), &view_deps) {
        let sql = view_sql.remove(&v).expect("view listed");
        let row = view_rows.remove(&v).expect("view listed");
        // A view records no sql_mode, time zone or database collation of its own.
        pre_data.push(SchemaObject::plain(ObjectKind::View, v, sql).with_charsets(&row, 2, false));
    }

    let mut post_data = Vec::new();
    let triggers: Vec<mysql_async::Row> = conn
        .exec(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? \
             ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
            (name,),
        )
        .await
        .ctx(|| format!("listing triggers of {}", ident(name)))?;
    for r in &triggers {
        let tname = text(r, 0).unwrap_or_default();
        post_data.push(show_create(conn, ObjectKind::Trigger, name, &tname).await?);
    }
    let events: Vec<mysql_async::Row> = conn
        .exec(
            "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME",
            (name,),
        )
        .await
        .ctx(|| format!("listing events of {}", ident(name)))?;
    for r in &events {
        let ename = text(r, 0).unwrap_or_default();
        let row: Option<mysql_async::Row> = conn
            .query_first(format!("SHOW CREATE EVENT {}", qualified(name, &ename)))
            .await
            .ctx(|| format!("reading event {}", qualified(name, &ename)))?;
        let row =
            row.ok_or_else(|| Error::other(format!("SHOW CREATE EVENT {ename} returned nothing")))?;
        let sql = text(&row, 3).ok_or_else(|| {
            Error::other(format!(
                "no privilege to read event {}",
                qualified(name, &ename)
            ))
        })?;
        let mut o = SchemaObject::plain(ObjectKind::Event, ename.clone(), sql);
        o.sql_mode = text(&row, 1);
        o.time_zone = text(&row, 2);
        post_data.push(o.with_charsets(&row, 4, true));
    }

    for o in pre_data.iter().chain(&post_data) {
        for c in [&o.collation_connection, &o.database_collation]
            .into_iter()
            .flatten()
        {
            collations.insert(c.clone());
        }
    }
    let mut encoded = Encoded::new();
    for o in pre_data.iter().chain(&post_data) {
        let ctx = file_context(o);
        let Some(cs) = ctx
            .charset
            .as_deref()
            .filter(|_| ctx.needs_encoding(&o.sql))
        else {
            continue;
        };
        let what = || {
            format!(
                "{} {} (created under character set {cs})",
                o.kind.keyword().to_lowercase(),
                qualified(name, &o.name)
            )
        };
        let bytes = match context::encode(conn, &o.sql, cs).await {
            Ok(b) => b,
            Err(context::EncodeError::Server(e)) => {
                return Err(Error::mysql(format!("encoding {}", what()), e));
            }
            Err(context::EncodeError::Lossy) => {
                return Err(Error::other(format!(
                    "{}: its text holds characters that character set cannot hold",
                    what()
                )));
            }
        };
        encoded.insert((o.kind, o.name.clone()), bytes);
    }

    Ok(DbCatalog {
        encoded,
        schema: DbSchema {
            name: name.clone(),
            charset: db.charset.clone(),
            collation: db.collation.clone(),
            pre_data,
            post_data,
        },
        tables: infos,
        collations,
        notices,
    })
}

/// `SHOW CREATE` of a routine or trigger: name, sql_mode, statement, then the character set,
/// collation and database collation it was created under.
async fn show_create(
    conn: &mut Conn,
    kind: ObjectKind,
    db: &str,
    name: &str,
) -> Result<SchemaObject> {
    let row: Option<mysql_async::Row> = conn
        .query_first(format!(
            "SHOW CREATE {} {}",
            kind.keyword(),
            qualified(db, name)
        ))
        .await
        .ctx(|| {
            format!(
                "reading {} {}",
                kind.keyword().to_lowercase(),
                qualified(db, name)
            )
        })?;
    let row = row.ok_or_else(|| {
        Error::other(format!(
            "SHOW CREATE {} {name} returned nothing",
            kind.keyword()
        ))
    })?;
    let sql = text(&row, 2).ok_or_else(|| {
        Error::other(format!(
            "cannot read the body of {} {}: the backup user lacks privileges on it",
            kind.keyword().to_lowercase(),
            qualified(db, name)
        ))
    })?;
    let mut o = SchemaObject::plain(kind, name.to_string(), sql);
    o.sql_mode = text(&row, 1);
    Ok(o.with_charsets(&row, 3, true))
}

/// Orders names so that each comes after those it depends on; cycles fall back to name order.
pub fn topo_order(names: Vec<String>, deps: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let all: BTreeSet<String> = names.iter().cloned().collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::with_capacity(names.len());
    let mut remaining: Vec<String> = names;
    remaining.sort();
    while !remaining.is_empty() {
        let before = out.len();
        remaining.retain(|n| {
            let ready = deps
                .get(n)
                .is_none_or(|d| d.iter().all(|p| done.contains(p) || !all.contains(p)));
            if ready {
                done.insert(n.clone());
                out.push(n.clone());
            }
            !ready
        });
        if out.len() == before {
            // A cycle: take the first remaining name and go on.
            let n = remaining.remove(0);
            done.insert(n.clone());
            out.push(n);
        }
    }
    out
}

const HEADER_SETTINGS: &str = "SET NAMES utf8mb4;\nSET FOREIGN_KEY_CHECKS = 0;\nSET UNIQUE_CHECKS = 0;\nSET SQL_MODE = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION';\nSET time_zone = '+00:00';\n";

/// The creation context of `o` as the part's `.sql` files set it. The values were read from
/// the server at backup, and are written as quoted literals.
fn file_context(o: &SchemaObject) -> Context {
    Context {
        sql_mode: o.sql_mode.clone(),
        time_zone: o.time_zone.clone(),
        charset: o.character_set_client.clone(),
        collation: o.collation_connection.clone(),
        database_collation: o.database_collation.clone(),
    }
}

/// Writes each object in its creation context, as mysqldump does: the session settings, the
/// database's collation when the object was created under another, the statement in its
/// client character set, and the file's own settings again after it.
fn render_objects(out: &mut Vec<u8>, db: &DbSchema, objects: &[SchemaObject], encoded: &Encoded) {
    for o in objects {
        let mut head = format!(
            "\n-- {} {}.{}\n",
            o.kind.keyword().to_lowercase(),
            comment_name(&db.name),
            comment_name(&o.name)
        );
        let ctx = file_context(o);
        if let Some(set) = ctx.set_sql() {
            head.push_str(&set);
            head.push_str(";\n");
        }
        let other_db_collation = ctx
            .database_collation
            .as_deref()
            .filter(|c| !c.is_empty() && *c != db.collation);
        if let Some(c) = other_db_collation {
            head.push_str(&context::alter_database_sql(&db.name, c));
            head.push_str(";\n");
        }
        let compound = o.kind.compound();
        if compound {
            if matches!(o.kind, ObjectKind::Trigger | ObjectKind::Event) {
                head.push_str(&format!(
                    "DROP {} IF EXISTS {};\n",
                    o.kind.keyword(),
                    ident(&o.name)
                ));
            }
            head.push_str("DELIMITER ;;\n");
        }
        let mut tail = String::from(if compound { ";;\nDELIMITER ;\n" } else { ";\n" });
        if !ctx.is_empty() {
            tail.push_str(
                "SET NAMES utf8mb4;\nSET SQL_MODE = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION';\nSET time_zone = '+00:00';\n",
            );
        }
        if other_db_collation.is_some() && !db.collation.is_empty() {
            tail.push_str(&context::alter_database_sql(&db.name, &db.collation));
            tail.push_str(";\n");
        }
        out.extend_from_slice(head.as_bytes());
        match encoded.get(&(o.kind, o.name.clone())) {
            Some(bytes) => out.extend_from_slice(bytes),
            None => out.extend_from_slice(o.sql.as_bytes()),
        }
        out.extend_from_slice(tail.as_bytes());
    }
}

impl DbSchema {
    pub fn create_database_sql(&self, name: &str, charset: &str, collation: &str) -> String {
        let mut s = format!("CREATE DATABASE IF NOT EXISTS {}", ident(name));
        if !charset.is_empty() {
            s.push_str(&format!(" DEFAULT CHARACTER SET {}", ident(charset)));
        }
        if !collation.is_empty() {
            s.push_str(&format!(" COLLATE {}", ident(collation)));
        }
        s
    }

    /// `schema.sql`: database, tables, routines, views, for `mysql < schema.sql`.
    pub fn render_schema_sql(&self, snapshot: &str, encoded: &Encoded) -> Vec<u8> {
        let mut out = format!(
            "-- amlmigrate snapshot {snapshot}: schema of database {}\n-- Restore order: schema.sql, then load.sql (mysql --local-infile=1), then post-data.sql.\n",
            comment_name(&self.name)
        );
        out.push_str(HEADER_SETTINGS);
        out.push_str(&self.create_database_sql(&self.name, &self.charset, &self.collation));
        out.push_str(";\n");
        out.push_str(&format!("USE {};\n", ident(&self.name)));
        let mut out = out.into_bytes();
        render_objects(&mut out, self, &self.pre_data, encoded);
        out
    }

    /// `post-data.sql`: triggers and events, created once the rows are in.
    pub fn render_post_data_sql(&self, snapshot: &str, encoded: &Encoded) -> Vec<u8> {
        let mut out = format!(
            "-- amlmigrate snapshot {snapshot}: triggers and events of database {}, created after the data\n",
            comment_name(&self.name)
        );
        out.push_str(HEADER_SETTINGS);
        out.push_str(&format!("USE {};\n", ident(&self.name)));
        let mut out = out.into_bytes();
        render_objects(&mut out, self, &self.post_data, encoded);
        out
    }
}

/// The `LOAD DATA` statement for one chunk; `file` is the name sent to the client.
pub fn load_data_sql(file: &str, db: &str, table: &str, columns: &[String]) -> String {
    let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    format!(
        "LOAD DATA LOCAL INFILE {} INTO TABLE {} CHARACTER SET binary \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
        literal(file),
        qualified(db, table),
        cols.join(", ")
    )
}

/// `load.sql`: one `LOAD DATA LOCAL INFILE` per chunk, with paths relative to the folder the
/// part was unpacked in.
pub fn render_load_sql(
    snapshot: &str,
    db: &str,
    chunks: &[(String, Vec<String>, Vec<String>)],
) -> String {
    let mut out = format!(
        "-- amlmigrate snapshot {snapshot}: data of database {}\n-- Run from the folder the part was unpacked in: mysql --local-infile=1 < {}\n",
        comment_name(db),
        format_args!("mysql/{}/load.sql", path_segment(db))
    );
    out.push_str(HEADER_SETTINGS);
    out.push_str(&format!("USE {};\n", ident(db)));
    for (table, columns, files) in chunks {
        for f in files {
            out.push_str(&load_data_sql(f, db, table, columns));
            out.push_str(";\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_come_after_the_tables_they_reference() {
        let mut deps = BTreeMap::new();
        deps.insert("c".to_string(), BTreeSet::from(["b".to_string()]));
        deps.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
        let order = topo_order(vec!["c".into(), "b".into(), "a".into(), "z".into()], &deps);
        let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
        assert!(pos("a") < pos("b") && pos("b") < pos("c"));
        assert_eq!(order.len(), 4);
    }

    #[test]
    fn a_foreign_key_cycle_still_orders_every_table() {
        let mut deps = BTreeMap::new();
        deps.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
        deps.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
        assert_eq!(topo_order(vec!["a".into(), "b".into()], &deps).len(), 2);
    }

    #[test]
    fn generated_columns_are_recognised_but_default_expressions_are_not() {
        assert!(is_generated("VIRTUAL GENERATED"));
        assert!(is_generated("STORED GENERATED"));
        assert!(is_generated("PERSISTENT"));
        assert!(!is_generated("DEFAULT_GENERATED"));
        assert!(!is_generated("auto_increment"));
        assert!(!is_generated("INVISIBLE"));
    }

    #[test]
    fn load_statement_names_columns_and_uses_binary_charset() {
        let sql = load_data_sql(
            "mysql/d/t/000001.tsv",
            "d",
            "t",
            &["a".into(), "b c".into()],
        );
        assert_eq!(
            sql,
            "LOAD DATA LOCAL INFILE 'mysql/d/t/000001.tsv' INTO TABLE `d`.`t` CHARACTER SET binary FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (`a`, `b c`)"
        );
    }
}
