//! The schema stages of a restore: parse each object of `schema.json` into a typed statement,
//! check it, map its collations and database name, and write the SQL that will be sent. Every
//! database's objects go through these stages before the first write, dry run included.

use std::collections::BTreeSet;

use super::validate;
use crate::error::{Error, Result};
use crate::mysql::catalog::{DbSchema, ObjectKind, SchemaObject};
use crate::mysql::sqlparse::lex::{Tok, Token};
use crate::mysql::sqlparse::{self, Scope, Statement};
use crate::mysql::sqltext::{ident, qualified};

use super::DbContext;

/// One object ready to run: the statement written by the tool, and the session settings it
/// was created under.
#[derive(Debug, Clone)]
pub(super) struct Ready {
    pub kind: ObjectKind,
    pub name: String,
    pub sql: String,
    pub sql_mode: Option<String>,
    pub time_zone: Option<String>,
}

/// A database's schema after every check: what runs before the rows, and after them.
#[derive(Debug, Clone)]
pub(super) struct ReadySchema {
    pub create_database: String,
    pub pre_data: Vec<Ready>,
    pub post_data: Vec<Ready>,
}

impl ReadySchema {
    pub fn triggers(&self) -> impl Iterator<Item = &Ready> {
        self.post_data
            .iter()
            .filter(|o| o.kind == ObjectKind::Trigger)
    }
}

/// Parses, checks and writes every object of `schema` for the database `ctx` restores into.
/// An object that fails is refused naming it and the clause.
pub(super) fn prepare(ctx: &DbContext<'_>, schema: &DbSchema) -> Result<ReadySchema> {
    let plan = ctx.plan;
    let target = plan.target.as_str();
    let refuse = |what: String, why: String| {
        Error::Refused(format!(
            "snapshot {}: {what} of database {} in part {}: {why}. A snapshot holds only what \
             amlmigrate backup wrote, so it was edited after the backup; nothing was run. \
             Restore from another snapshot, and check who can write to the repository",
            ctx.manifest.id,
            ident(&plan.db.name),
            plan.db.part
        ))
    };
    if schema.name != plan.db.name {
        return Err(refuse(
            "schema.json".into(),
            format!("it describes database {} instead", ident(&schema.name)),
        ));
    }
    let collation = ctx
        .collation_map
        .get(&schema.collation)
        .map_or(schema.collation.as_str(), String::as_str);
    validate::check_server_name("character set", &schema.charset, ctx.charsets)
        .map_err(|why| refuse("the database's default character set".into(), why))?;
    validate::check_server_name("collation", collation, ctx.collations)
        .map_err(|why| refuse("the database's default collation".into(), why))?;
    let tables: BTreeSet<String> = schema
        .pre_data
        .iter()
        .filter(|o| o.kind == ObjectKind::Table)
        .map(|o| o.name.clone())
        .collect();
    let scope = Scope {
        source: &plan.db.name,
        tables: &tables,
        databases: ctx.databases,
        server: ctx.server,
    };
    let map = |w: &str| {
        ctx.collation_map
            .get(w)
            .or_else(|| ctx.collation_map.get(&w.to_ascii_lowercase()))
            .cloned()
    };
    let ready = |o: &SchemaObject| -> Result<Ready> {
        let what = format!(
            "{} {}",
            o.kind.keyword().to_lowercase(),
            qualified(target, &o.name)
        );
        let sql = write(o, &scope, target, &map).map_err(|why| refuse(what, why))?;
        let table = o.kind == ObjectKind::Table;
        Ok(Ready {
            kind: o.kind,
            name: o.name.clone(),
            sql,
            // A table is written in the tool's own mode; the snapshot's says nothing about it.
            sql_mode: o.sql_mode.clone().filter(|_| !table),
            time_zone: o.time_zone.clone().filter(|_| !table),
        })
    };
    Ok(ReadySchema {
        create_database: schema.create_database_sql(target, &schema.charset, collation),
        pre_data: schema.pre_data.iter().map(ready).collect::<Result<_>>()?,
        post_data: schema.post_data.iter().map(ready).collect::<Result<_>>()?,
    })
}

/// The statement restore sends for `o` restored into database `target`: parsed, checked,
/// adapted (database renamed, collations mapped by `map`) and written by the tool.
pub fn write(
    o: &SchemaObject,
    scope: &Scope<'_>,
    target: &str,
    map: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<String, String> {
    let mut stmt = parse(o, scope)?;
    stmt.adapt(scope.source, target, map);
    if o.kind == ObjectKind::View
        && let Statement::Code { tokens, .. } = &mut stmt
    {
        or_replace(tokens);
    }
    Ok(stmt.sql(target))
}

/// Parses and checks one object: the typed statement, or why it is refused.
pub(super) fn parse(o: &SchemaObject, scope: &Scope<'_>) -> std::result::Result<Statement, String> {
    let (toks, mode) = sqlparse::tokens(&o.sql, o.sql_mode.as_deref(), scope.server)?;
    if o.kind == ObjectKind::Table {
        return sqlparse::parse_table(&toks, &o.name, scope.source);
    }
    validate::check_object(o, &toks, scope.source, scope.tables)?;
    sqlparse::check_code(&toks, scope)?;
    Ok(Statement::Code { tokens: toks, mode })
}

/// `CREATE VIEW` → `CREATE OR REPLACE VIEW`: the view may exist from an earlier restore.
fn or_replace(tokens: &mut Vec<Token>) {
    if tokens.get(1).is_some_and(|t| t.is("OR")) {
        return;
    }
    let word = |w: &str| Token {
        tok: Tok::Word(w.into()),
        spaced: true,
    };
    tokens.splice(1..1, [word("OR"), word("REPLACE")]);
}
