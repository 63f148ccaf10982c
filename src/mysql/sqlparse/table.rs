//! `CREATE TABLE` as a typed value: the forms `SHOW CREATE TABLE` writes for a normal table
//! (columns, keys, constraints, generated columns, table options, partitions) and nothing else.
//! The statement restore sends is written from this value, never from the snapshot's text.

use super::lex::{Mode, Tok, Token, emit};
use crate::mysql::sqltext::{ident, qualified};

/// Engines whose tables keep their rows in this server's data directory.
pub const ENGINES: &[&str] = &[
    "InnoDB", "Aria", "MyISAM", "MEMORY", "HEAP", "ARCHIVE", "CSV", "ROCKSDB",
];

/// Table options `SHOW CREATE TABLE` writes for tables of [`ENGINES`] (after `DEFAULT`).
const OPTIONS: &[&str] = &[
    "ENGINE",
    "AUTO_INCREMENT",
    "AVG_ROW_LENGTH",
    "CHARSET",
    "CHECKSUM",
    "TABLE_CHECKSUM",
    "COLLATE",
    "COMMENT",
    "COMPRESSION",
    "DELAY_KEY_WRITE",
    "ENCRYPTED",
    "ENCRYPTION",
    "ENCRYPTION_KEY_ID",
    "IETF_QUOTES",
    "KEY_BLOCK_SIZE",
    "MAX_ROWS",
    "MIN_ROWS",
    "PACK_KEYS",
    "PAGE_CHECKSUM",
    "PAGE_COMPRESSED",
    "PAGE_COMPRESSION_LEVEL",
    "ROW_FORMAT",
    "STATS_AUTO_RECALC",
    "STATS_PERSISTENT",
    "STATS_SAMPLE_PAGES",
    "TRANSACTIONAL",
    "AUTOEXTEND_SIZE",
];

/// Words that start a query inside a table definition (a table filled from other tables).
const QUERY_WORDS: &[&str] = &[
    "SELECT", "VALUES", "TABLE", "WITH", "LIKE", "AS", "IGNORE", "REPLACE",
];

/// Words never allowed in a column, key, constraint or partition of a restored table.
const FORBIDDEN: &[&str] = &[
    "SELECT",
    "VALUES",
    "TABLE",
    "INTO",
    "LOAD_FILE",
    "DIRECTORY",
    "CONNECTION",
    "UNION",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefKind {
    Column,
    /// Keys, constraints and periods: written as their keywords, then the rest.
    Other,
}

/// One entry of the parenthesised list.
#[derive(Debug, Clone)]
pub struct Definition {
    pub kind: DefKind,
    /// A column's name; for others the tokens are the whole definition.
    pub name: Option<String>,
    pub tokens: Vec<Token>,
}

#[derive(Debug, Clone)]
pub struct TableOption {
    /// Upper case: `ENGINE`, `CHARSET` (for `CHARACTER SET` too), `COLLATE`, …
    pub key: String,
    /// `None` for `WITH SYSTEM VERSIONING`.
    pub value: Option<Token>,
}

#[derive(Debug, Clone)]
pub struct CreateTable {
    pub name: String,
    pub definitions: Vec<Definition>,
    pub options: Vec<TableOption>,
    /// `PARTITION BY …` to the end, empty when not partitioned.
    pub partition: Vec<Token>,
}

/// `toks` split at `,` outside parentheses.
fn split_commas(toks: &[Token]) -> Vec<&[Token]> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        match &t.tok {
            Tok::Op("(") => depth += 1,
            Tok::Op(")") => depth -= 1,
            Tok::Op(",") if depth == 0 => {
                out.push(&toks[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&toks[start..]);
    out
}

/// Index of the `)` closing the `(` at `open`.
fn closing(toks: &[Token], open: usize) -> Result<usize, String> {
    let mut depth = 0i32;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match &t.tok {
            Tok::Op("(") => depth += 1,
            Tok::Op(")") => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
            }
            _ => {}
        }
    }
    Err("it has unbalanced parentheses".into())
}

fn shown(t: Option<&Token>) -> String {
    match t.map(|t| &t.tok) {
        None => "the end".into(),
        Some(Tok::Word(w)) => w.clone(),
        Some(Tok::Ident(s)) => format!("`{s}`"),
        Some(Tok::Op(o)) => (*o).into(),
        Some(Tok::Str(_)) => "a string".into(),
        Some(_) => "a literal".into(),
    }
}

impl CreateTable {
    /// Parses `toks` (a whole statement) as a table named `name` in database `db`.
    pub fn parse(toks: &[Token], name: &str, db: &str) -> Result<CreateTable, String> {
        let mut i = 0;
        let word = |i: usize, kw: &str| toks.get(i).is_some_and(|t| t.is(kw));
        if !word(0, "CREATE") {
            return Err(format!(
                "it does not start with CREATE ({})",
                shown(toks.first())
            ));
        }
        i += 1;
        if word(i, "OR") {
            return Err("clause OR REPLACE: it would replace a live table".into());
        }
        if !word(i, "TABLE") {
            return Err(format!(
                "it does not create a table ({})",
                shown(toks.get(i))
            ));
        }
        i += 1;
        if word(i, "IF") {
            return Err("clause IF NOT EXISTS: it would keep a live table of that name".into());
        }
        let first = toks.get(i).and_then(Token::name).ok_or("no table name")?;
        i += 1;
        let created = if toks.get(i).is_some_and(|t| t.is_op(".")) {
            let second = toks
                .get(i + 1)
                .and_then(Token::name)
                .ok_or("no table name")?;
            if first != db {
                return Err(format!("it creates the object in database `{first}`"));
            }
            i += 2;
            second
        } else {
            first
        };
        if created != name {
            return Err(format!("it creates `{created}` instead"));
        }
        match toks.get(i) {
            Some(t) if t.is_op("(") => {}
            Some(t) if QUERY_WORDS.iter().any(|w| t.is(w)) => {
                return Err(format!(
                    "clause {}: it fills the table from a query or another table",
                    shown(Some(t))
                ));
            }
            other => return Err(format!("expected ( at {}", shown(other))),
        }
        let close = closing(toks, i)?;
        let definitions = split_commas(&toks[i + 1..close])
            .into_iter()
            .map(definition)
            .collect::<Result<Vec<_>, _>>()?;
        let (options, partition) = options(&toks[close + 1..])?;
        let t = CreateTable {
            name: name.to_string(),
            definitions,
            options,
            partition,
        };
        t.check()?;
        Ok(t)
    }

    /// What a table of this database may hold: allowed engines, no file placement, no
    /// connection, nothing read from elsewhere.
    fn check(&self) -> Result<(), String> {
        for d in &self.definitions {
            let what = match &d.name {
                Some(n) => format!("column `{n}`"),
                None => format!("definition {}", shown(d.tokens.first())),
            };
            check_tokens(&d.tokens, &what, false)?;
        }
        for o in &self.options {
            if o.key == "ENGINE" {
                check_engine(o.value.as_ref())?;
            }
        }
        check_tokens(&self.partition, "PARTITION BY", true)?;
        for (i, t) in self.partition.iter().enumerate() {
            if t.is("ENGINE") || t.is("STORAGE") {
                let mut j = i + 1;
                while self
                    .partition
                    .get(j)
                    .is_some_and(|t| t.is("ENGINE") || t.is_op("="))
                {
                    j += 1;
                }
                check_engine(self.partition.get(j))?;
            }
        }
        Ok(())
    }

    /// Replaces collation names (bare words) found in `map`.
    pub fn map_words(&mut self, f: &dyn Fn(&str) -> Option<String>) {
        let mut all: Vec<&mut Token> = Vec::new();
        for d in &mut self.definitions {
            all.extend(d.tokens.iter_mut());
        }
        all.extend(self.partition.iter_mut());
        for o in &mut self.options {
            all.extend(o.value.iter_mut());
        }
        for t in all {
            if let Tok::Word(w) = &t.tok
                && let Some(n) = f(w)
            {
                t.tok = Tok::Word(n);
            }
        }
    }

    /// The statement restore sends: `CREATE TABLE` in database `db`, written from this value.
    pub fn sql(&self, db: &str) -> String {
        let mode = Mode::default();
        let mut out = format!("CREATE TABLE {} (\n", qualified(db, &self.name));
        let defs: Vec<String> = self
            .definitions
            .iter()
            .map(|d| match &d.name {
                Some(n) => format!("  {} {}", ident(n), emit(&d.tokens, mode)),
                None => format!("  {}", emit(&d.tokens, mode)),
            })
            .collect();
        out.push_str(&defs.join(",\n"));
        out.push_str("\n)");
        for o in &self.options {
            match (&o.key[..], &o.value) {
                ("WITH SYSTEM VERSIONING", _) => out.push_str(" WITH SYSTEM VERSIONING"),
                (k, Some(v)) => {
                    let key = if k == "CHARSET" { "DEFAULT CHARSET" } else { k };
                    out.push_str(&format!(" {key}={}", emit(std::slice::from_ref(v), mode)));
                }
                (k, None) => out.push_str(&format!(" {k}")),
            }
        }
        if !self.partition.is_empty() {
            out.push('\n');
            out.push_str(&emit(&self.partition, mode));
        }
        out
    }
}

fn check_engine(value: Option<&Token>) -> Result<(), String> {
    let name = value.and_then(Token::name).unwrap_or("");
    if ENGINES.iter().any(|e| e.eq_ignore_ascii_case(name)) {
        Ok(())
    } else {
        Err(format!(
            "clause ENGINE={name}: only tables of the engines {} keep their rows in this database",
            ENGINES.join(", ")
        ))
    }
}

/// Checks a column, key, constraint or partition clause: nothing that reads or writes outside
/// the table. A partition clause holds `VALUES LESS THAN`/`VALUES IN`.
fn check_tokens(toks: &[Token], what: &str, partition: bool) -> Result<(), String> {
    for (i, t) in toks.iter().enumerate() {
        let next = toks.get(i + 1);
        match &t.tok {
            Tok::Op(";") => return Err(format!("{what}: it holds more than one statement")),
            Tok::Op(".") => {
                return Err(format!(
                    "{what}: a qualified name (a reference to another database or table) at {}",
                    shown(toks.get(i.wrapping_sub(1)))
                ));
            }
            Tok::Var(_) | Tok::Op("@") => {
                return Err(format!(
                    "{what}: a variable, which a table definition never holds"
                ));
            }
            Tok::Word(w) => {
                let up = w.to_ascii_uppercase();
                if up == "WITH" && !next.is_some_and(|n| n.is("PARSER") || n.is("SYSTEM")) {
                    return Err(format!(
                        "{what}: clause WITH: a query in a table definition"
                    ));
                }
                if FORBIDDEN.contains(&up.as_str()) && !(partition && up == "VALUES") {
                    return Err(format!(
                        "{what}: clause {up} is not allowed in a table definition"
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn definition(toks: &[Token]) -> Result<Definition, String> {
    let first = toks
        .first()
        .ok_or("an empty definition in the column list")?;
    if first.is_op("(") || QUERY_WORDS.iter().any(|w| first.is(w)) {
        return Err(format!(
            "clause {}: it fills the table from a query or another table",
            shown(Some(first))
        ));
    }
    const KEYS: &[&str] = &[
        "PRIMARY",
        "UNIQUE",
        "KEY",
        "INDEX",
        "FULLTEXT",
        "SPATIAL",
        "CONSTRAINT",
        "FOREIGN",
        "CHECK",
        "PERIOD",
    ];
    if KEYS.iter().any(|k| first.is(k)) {
        return Ok(Definition {
            kind: DefKind::Other,
            name: None,
            tokens: toks.to_vec(),
        });
    }
    let name = first
        .name()
        .ok_or_else(|| format!("expected a column name at {}", shown(Some(first))))?;
    if toks.len() < 2 {
        return Err(format!("column `{name}` has no type"));
    }
    Ok(Definition {
        kind: DefKind::Column,
        name: Some(name.to_string()),
        tokens: toks[1..].to_vec(),
    })
}

/// Table options after the column list, then the partition clause.
fn options(toks: &[Token]) -> Result<(Vec<TableOption>, Vec<Token>), String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        if t.is_op(",") {
            i += 1;
            continue;
        }
        if t.is_op(";") {
            return Err("it holds more than one statement".into());
        }
        if t.is("PARTITION") {
            return Ok((out, toks[i..].to_vec()));
        }
        if t.is("WITH")
            && toks.get(i + 1).is_some_and(|t| t.is("SYSTEM"))
            && toks.get(i + 2).is_some_and(|t| t.is("VERSIONING"))
        {
            out.push(TableOption {
                key: "WITH SYSTEM VERSIONING".into(),
                value: None,
            });
            i += 3;
            continue;
        }
        if t.is("DEFAULT") {
            i += 1;
        }
        let Some(key) = toks.get(i).and_then(Token::word) else {
            return Err(format!("expected a table option at {}", shown(toks.get(i))));
        };
        let mut key = key.to_ascii_uppercase();
        i += 1;
        if key == "CHARACTER" && toks.get(i).is_some_and(|t| t.is("SET")) {
            key = "CHARSET".into();
            i += 1;
        }
        if QUERY_WORDS.contains(&key.as_str()) {
            return Err(format!(
                "clause {key}: it fills the table from a query or another table"
            ));
        }
        if matches!(key.as_str(), "DATA" | "INDEX") {
            return Err(format!(
                "clause {key} DIRECTORY: it places the table's files outside the data directory"
            ));
        }
        if !OPTIONS.contains(&key.as_str()) {
            let why = match key.as_str() {
                "CONNECTION" => "it connects the table to another server",
                "UNION" | "INSERT_METHOD" => "it makes the table a view of other tables",
                "TABLESPACE" | "STORAGE" => "it places the table outside its own files",
                _ => "not a table option of a normal table",
            };
            return Err(format!("clause {key}: {why}"));
        }
        if toks.get(i).is_some_and(|t| t.is_op("=")) {
            i += 1;
        }
        let value = toks
            .get(i)
            .filter(|t| {
                matches!(
                    t.tok,
                    Tok::Word(_) | Tok::Ident(_) | Tok::Str(_) | Tok::Number(_)
                )
            })
            .ok_or_else(|| format!("clause {key}: no value"))?;
        out.push(TableOption {
            key,
            value: Some(Token {
                tok: value.tok.clone(),
                spaced: false,
            }),
        });
        i += 1;
    }
    Ok((out, Vec::new()))
}
