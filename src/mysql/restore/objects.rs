//! The schema stages of a restore: parse each object of `schema.json` into a typed statement,
//! check it, map its collations and database name, and write the SQL that will be sent. Every
//! database's objects go through these stages before the first write, dry run included.

use std::collections::BTreeSet;

use super::validate;
use crate::error::{Error, Result};
use crate::mysql::catalog::{DbSchema, ObjectKind, SchemaObject};
use crate::mysql::context::{self, Context};
use crate::mysql::sqlparse::lex::{Tok, Token};
use crate::mysql::sqlparse::{self, Scope, Statement};
use crate::mysql::sqltext::{ident, qualified};

use super::DbContext;

/// One object ready to run: the statement written by the tool, and the checked creation
/// context it is created in.
#[derive(Debug, Clone)]
pub(super) struct Ready {
    pub kind: ObjectKind,
    pub name: String,
    pub sql: String,
    pub context: Context,
}

/// A database's schema after every check: what runs before the rows, and after them.
#[derive(Debug, Clone)]
pub(super) struct ReadySchema {
    pub create_database: String,
    pub pre_data: Vec<Ready>,
    pub post_data: Vec<Ready>,
    /// Code objects left out by the [`CodePolicy`], as `kind db.name`.
    pub skipped: Vec<String>,
}

/// Which code objects run: triggers, routines, events and definer views run with their
/// definer's privileges, so they are created only from a snapshot someone vouched for.
#[derive(Debug, Clone, Default)]
pub(super) struct CodePolicy {
    /// A trusted key signed the snapshot, or the operator said to trust it.
    pub run: bool,
    /// `(user, host)` replacing every object's definer.
    pub definer: Option<(String, String)>,
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
    let mut skipped = Vec::new();
    // Names of objects left out: an invoker view reading one of them is left out too.
    let mut left_out: BTreeSet<String> = BTreeSet::new();
    let mut ready = |o: &SchemaObject| -> Result<Option<Ready>> {
        let what = format!(
            "{} {}",
            o.kind.keyword().to_lowercase(),
            qualified(target, &o.name)
        );
        let mut stmt = parse(o, &scope).map_err(|why| refuse(what.clone(), why))?;
        if let Statement::Code { tokens, .. } = &mut stmt {
            let privileged = sqlparse::runs_as_definer(o.kind, tokens);
            let reads_left_out = tokens
                .iter()
                .any(|t| t.name().is_some_and(|n| left_out.contains(n)));
            if !ctx.code.run && (privileged || reads_left_out) {
                skipped.push(what);
                left_out.insert(o.name.clone());
                return Ok(None);
            }
            if let Some((user, host)) = &ctx.code.definer {
                sqlparse::set_definer(tokens, user, host);
            }
        }
        // A table is written in the tool's own session; the snapshot's says nothing about it.
        let context = if o.kind == ObjectKind::Table {
            Context::default()
        } else {
            creation_context(o, ctx, &map).map_err(|why| refuse(what.clone(), why))?
        };
        let sql = emit(o, stmt, &plan.db.name, target, &map);
        Ok(Some(Ready {
            kind: o.kind,
            name: o.name.clone(),
            sql,
            context,
        }))
    };
    let mut pre_data = Vec::new();
    for o in &schema.pre_data {
        pre_data.extend(ready(o)?);
    }
    let mut post_data = Vec::new();
    for o in &schema.post_data {
        post_data.extend(ready(o)?);
    }
    Ok(ReadySchema {
        create_database: schema.create_database_sql(target, &schema.charset, collation),
        pre_data,
        post_data,
        skipped,
    })
}

/// The creation context of a code object, each value checked: known `sql_mode` flags, a time
/// zone, and a character set and collations (mapped like the tables' ones) the target knows.
fn creation_context(
    o: &SchemaObject,
    ctx: &DbContext<'_>,
    map: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<Context, String> {
    let collation = |what: &str, c: &Option<String>| {
        c.as_deref()
            .map(|c| {
                let mapped = map(c).unwrap_or_else(|| c.to_string());
                context::check_name(what, &mapped, ctx.collations)
            })
            .transpose()
    };
    Ok(Context {
        sql_mode: o
            .sql_mode
            .as_deref()
            .map(context::check_sql_mode)
            .transpose()?,
        time_zone: o
            .time_zone
            .as_deref()
            .map(context::check_time_zone)
            .transpose()?,
        charset: o
            .character_set_client
            .as_deref()
            .map(|cs| context::check_name("character_set_client", cs, ctx.charsets))
            .transpose()?,
        collation: collation("collation_connection", &o.collation_connection)?,
        database_collation: collation("database collation", &o.database_collation)?,
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
    Ok(emit(o, parse(o, scope)?, scope.source, target, map))
}

/// The emit stage: database renamed, collations mapped, a view made `CREATE OR REPLACE`, and
/// the text written by the tool.
fn emit(
    o: &SchemaObject,
    mut stmt: Statement,
    source: &str,
    target: &str,
    map: &dyn Fn(&str) -> Option<String>,
) -> String {
    stmt.adapt(source, target, map);
    if o.kind == ObjectKind::View
        && let Statement::Code { tokens, .. } = &mut stmt
    {
        or_replace(tokens);
    }
    stmt.sql(target)
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
