//! A snapshot's schema objects as typed values. Each object's text is read once by [`lex`],
//! parsed (tables into [`table::CreateTable`], code objects into checked token lists), checked,
//! adapted (database renamed, collations mapped) and written back by the tool: the server never
//! receives text from a snapshot, only what was checked, with names and literals quoted here and
//! no comment of any kind.

pub mod lex;
pub mod table;

use std::collections::BTreeSet;

use lex::{Mode, Tok, Token};

use super::catalog::ObjectKind;

/// Words a code object's body may not hold, whoever vouched for the snapshot: they grant,
/// create users, run dynamic SQL, or read and write files on the server.
const FORBIDDEN_WORDS: &[&str] = &[
    "GRANT",
    "REVOKE",
    "PREPARE",
    "EXECUTE",
    "DEALLOCATE",
    "OUTFILE",
    "DUMPFILE",
    "LOAD_FILE",
    "INSTALL",
    "UNINSTALL",
    "SHUTDOWN",
];

/// Two-word phrases refused in code bodies (`SET PASSWORD`, `CREATE USER`, …).
const FORBIDDEN_PAIRS: &[(&str, &str)] = &[
    ("CREATE", "USER"),
    ("ALTER", "USER"),
    ("DROP", "USER"),
    ("RENAME", "USER"),
    ("CREATE", "ROLE"),
    ("DROP", "ROLE"),
    ("SET", "PASSWORD"),
    ("SET", "ROLE"),
    ("SET", "GLOBAL"),
    ("SET", "DEFAULT"),
    ("LOAD", "DATA"),
    ("LOAD", "XML"),
];

/// The statement of one object, typed.
#[derive(Debug, Clone)]
pub enum Statement {
    Table(table::CreateTable),
    /// A view, routine, trigger or event: its checked tokens and the mode they are written in.
    Code {
        tokens: Vec<Token>,
        mode: Mode,
    },
}

/// What an object may refer to.
pub struct Scope<'a> {
    /// The database the object was backed up from.
    pub source: &'a str,
    /// Tables of the snapshot's database (a trigger must be on one).
    pub tables: &'a BTreeSet<String>,
    /// Databases known to exist (the server's, the snapshot's, the system ones): a code object
    /// naming one other than `source` reaches outside the snapshot.
    pub databases: &'a BTreeSet<String>,
    /// The target's version as a number (`110402`), for versioned comments.
    pub server: u32,
}

/// Reads an object's SQL under its own `sql_mode`.
pub fn tokens(
    sql: &str,
    sql_mode: Option<&str>,
    server: u32,
) -> Result<(Vec<Token>, Mode), String> {
    let mode = Mode::of(sql_mode)?;
    Ok((lex::lex(sql, mode, server)?, mode))
}

/// The first part of every qualified name (`x` of `x.y`, `x.y.z`), with its index.
fn qualifiers(toks: &[Token]) -> impl Iterator<Item = (usize, &str)> {
    toks.iter().enumerate().filter_map(|(i, t)| {
        let after_dot = i > 0 && toks[i - 1].is_op(".");
        let before_dot = toks.get(i + 1).is_some_and(|n| n.is_op("."));
        (before_dot && !after_dot)
            .then(|| t.name().map(|n| (i, n)))
            .flatten()
    })
}

/// Refuses a code body that reaches outside the snapshot's database or holds a statement that
/// grants, creates users, runs dynamic SQL or touches files.
pub fn check_code(toks: &[Token], scope: &Scope<'_>) -> Result<(), String> {
    for (_, q) in qualifiers(toks) {
        let other = scope.databases.iter().any(|d| d.eq_ignore_ascii_case(q));
        if other && q != scope.source {
            return Err(format!("it names another database, `{q}`"));
        }
    }
    for (i, t) in toks.iter().enumerate() {
        let Some(w) = t.word() else {
            if let Tok::Var(v) = &t.tok
                && v.to_ascii_lowercase().starts_with("@global.")
            {
                return Err(format!("clause @{v}: it changes the server's settings"));
            }
            continue;
        };
        let up = w.to_ascii_uppercase();
        if FORBIDDEN_WORDS.contains(&up.as_str()) {
            return Err(format!("clause {up}: a restored object may not run it"));
        }
        if let Some(n) = toks.get(i + 1).and_then(Token::word)
            && let Some((a, b)) = FORBIDDEN_PAIRS
                .iter()
                .find(|(a, b)| *a == up && n.eq_ignore_ascii_case(b))
        {
            return Err(format!("clause {a} {b}: a restored object may not run it"));
        }
    }
    Ok(())
}

impl Statement {
    /// Renames the source database to `target` where it qualifies a name, and replaces bare
    /// words `map` knows (collation names).
    pub fn adapt(&mut self, source: &str, target: &str, map: &dyn Fn(&str) -> Option<String>) {
        match self {
            Statement::Table(t) => t.map_words(map),
            Statement::Code { tokens, .. } => {
                let quals: Vec<usize> = qualifiers(tokens)
                    .filter(|(_, q)| *q == source)
                    .map(|(i, _)| i)
                    .collect();
                for i in quals {
                    tokens[i].tok = Tok::Ident(target.to_string());
                }
                for t in tokens.iter_mut() {
                    if let Tok::Word(w) = &t.tok
                        && let Some(n) = map(w)
                    {
                        t.tok = Tok::Word(n);
                    }
                }
            }
        }
    }

    /// The statement as sent to the server, creating the object in database `db`.
    pub fn sql(&self, db: &str) -> String {
        match self {
            Statement::Table(t) => t.sql(db),
            Statement::Code { tokens, mode } => lex::emit(tokens, *mode),
        }
    }
}

/// Parses a table's statement.
pub fn parse_table(toks: &[Token], name: &str, source: &str) -> Result<Statement, String> {
    table::CreateTable::parse(toks, name, source).map(Statement::Table)
}

/// The range of `DEFINER=user@host` in a code object's head.
pub fn definer_range(toks: &[Token]) -> Option<(usize, usize)> {
    let at = toks.iter().position(|t| t.is("DEFINER"))?;
    if !toks.get(at + 1).is_some_and(|t| t.is_op("=")) {
        return None;
    }
    let mut end = at + 2;
    match toks.get(end).map(|t| &t.tok) {
        Some(Tok::Word(w)) if w.eq_ignore_ascii_case("CURRENT_USER") => {
            end += 1;
            if toks.get(end).is_some_and(|t| t.is_op("(")) {
                end += 2;
            }
            return Some((at, end));
        }
        Some(_) => end += 1,
        None => return None,
    }
    match toks.get(end).map(|t| &t.tok) {
        Some(Tok::Var(_)) => end += 1,
        Some(Tok::Op("@")) => end += 2,
        _ => {}
    }
    Some((at, end))
}

/// Makes `user@host` the definer of a code object: replaces its `DEFINER=` clause, or adds one
/// after `CREATE` (and `OR REPLACE`, `ALGORITHM=…`).
pub fn set_definer(toks: &mut Vec<Token>, user: &str, host: &str) {
    let clause = |spaced| {
        vec![
            Token {
                tok: Tok::Word("DEFINER".into()),
                spaced,
            },
            Token {
                tok: Tok::Op("="),
                spaced: false,
            },
            Token {
                tok: Tok::Ident(user.into()),
                spaced: false,
            },
            Token {
                tok: Tok::Op("@"),
                spaced: false,
            },
            Token {
                tok: Tok::Ident(host.into()),
                spaced: false,
            },
        ]
    };
    if let Some((at, end)) = definer_range(toks) {
        let spaced = toks[at].spaced;
        toks.splice(at..end, clause(spaced));
    } else {
        toks.splice(1..1, clause(true));
    }
}

/// Whether a code object runs with its definer's privileges: every routine, trigger and event,
/// and a view unless it says `SQL SECURITY INVOKER`.
pub fn runs_as_definer(kind: ObjectKind, toks: &[Token]) -> bool {
    if kind != ObjectKind::View {
        return true;
    }
    let head_end = toks.iter().position(|t| t.is("VIEW")).unwrap_or(toks.len());
    !toks[..head_end]
        .windows(3)
        .any(|w| w[0].is("SQL") && w[1].is("SECURITY") && w[2].is("INVOKER"))
}

#[cfg(test)]
mod tests;
