//! A snapshot is untrusted input: whoever can write the bucket can edit `schema.json` and
//! recompute every hash. This module proves, on the tokens [`crate::mysql::sqlparse::lex`]
//! read, that a view, routine, trigger or event is exactly one `CREATE` statement of the
//! object's kind, creating the object it names in the database being restored, and nothing
//! else. Statements are split by the server only at `;`, so tokens without a `;` are one
//! statement; compound bodies (`BEGIN … END`) are followed block by block, and anything
//! ambiguous is refused rather than guessed. What runs is then written from these tokens, so
//! the server reads what was checked.

use std::collections::BTreeSet;

use super::super::catalog::{ObjectKind, SchemaObject};
use crate::mysql::sqlparse::lex::{Tok as L, Token};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A bare word: a keyword or an unquoted identifier (`after_dot` when it follows a `.`).
    Word {
        upper: String,
        raw: String,
    },
    /// A quoted identifier, unquoted.
    Ident(String),
    Str,
    /// `@name`, `@@name`.
    Var,
    Punct(char),
    /// `:=` and other multi-character operators we never need to tell apart.
    Op,
}

/// The checker's view of the shared tokenizer's tokens ([`crate::mysql::sqlparse::lex`]).
fn tokens(toks: &[Token]) -> Vec<Tok> {
    toks.iter()
        .map(|t| match &t.tok {
            L::Word(w) => Tok::Word {
                upper: w.to_ascii_uppercase(),
                raw: w.clone(),
            },
            L::Ident(s) => Tok::Ident(s.clone()),
            L::Str(_) | L::Prefixed(..) => Tok::Str,
            L::Number(n) => Tok::Word {
                upper: n.clone(),
                raw: n.clone(),
            },
            L::Var(_) => Tok::Var,
            L::Op(o) if o.len() == 1 && ";(),.=:@".contains(*o) => {
                Tok::Punct(o.chars().next().expect("one char"))
            }
            L::Op(_) => Tok::Op,
        })
        .collect()
}

struct Cursor<'a> {
    toks: &'a [Tok],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<&'a Tok> {
        self.toks.get(self.i)
    }

    /// The keyword at the cursor: a bare word that does not follow a `.`.
    fn kw(&self) -> Option<&'a str> {
        kw_at(self.toks, self.i)
    }

    fn eat(&mut self, word: &str) -> bool {
        if self.kw() == Some(word) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, word: &str) -> Result<(), String> {
        if self.eat(word) {
            Ok(())
        } else {
            Err(format!("expected {word} {}", self.here()))
        }
    }

    fn punct(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Punct(c)) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn here(&self) -> String {
        match self.peek() {
            None => "at the end".into(),
            Some(Tok::Word { raw, .. }) => format!("at {raw}"),
            Some(Tok::Ident(s)) => format!("at `{s}`"),
            Some(Tok::Punct(c)) => format!("at {c}"),
            Some(_) => format!("at token {}", self.i + 1),
        }
    }

    /// An identifier (quoted or bare) and advance.
    fn name(&mut self) -> Option<String> {
        let n = match self.peek()? {
            Tok::Ident(s) => s.clone(),
            Tok::Word { raw, .. } => raw.clone(),
            _ => return None,
        };
        self.i += 1;
        Some(n)
    }

    /// `name` or `db`.`name`, returning (db, name).
    fn qualified_name(&mut self) -> Option<(Option<String>, String)> {
        let first = self.name()?;
        if self.punct('.') {
            let second = self.name()?;
            Some((Some(first), second))
        } else {
            Some((None, first))
        }
    }

    /// Skips a balanced `( … )` group starting at the cursor.
    fn skip_parens(&mut self) -> Result<(), String> {
        if !self.punct('(') {
            return Err(format!("expected ( {}", self.here()));
        }
        let mut depth = 1;
        while let Some(t) = self.peek() {
            self.i += 1;
            match t {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                Tok::Punct(';') => return Err("it holds a ; inside parentheses".into()),
                _ => {}
            }
        }
        Err("it has unbalanced parentheses".into())
    }
}

fn kw_at(toks: &[Tok], i: usize) -> Option<&str> {
    match toks.get(i)? {
        Tok::Word { upper, .. } if i == 0 || toks[i - 1] != Tok::Punct('.') => Some(upper),
        _ => None,
    }
}

/// Checks that `toks` (the object's statement, tokenized) is exactly one statement creating
/// `o` in database `db`; a trigger must be on one of `tables`. The error says why, to be shown
/// with the object's name.
pub fn check_object(
    o: &SchemaObject,
    toks: &[Token],
    db: &str,
    tables: &BTreeSet<String>,
) -> Result<(), String> {
    let toks = tokens(toks);
    let mut c = Cursor { toks: &toks, i: 0 };
    c.expect("CREATE")?;
    if c.eat("OR") {
        c.expect("REPLACE")?;
    }
    head_options(&mut c)?;
    if o.kind == ObjectKind::Function {
        c.eat("AGGREGATE");
    }
    if !c.eat(o.kind.keyword()) {
        return Err(format!(
            "it does not create a {} ({})",
            o.kind.keyword().to_lowercase(),
            c.here()
        ));
    }
    if c.eat("IF") {
        c.expect("NOT")?;
        c.expect("EXISTS")?;
    }
    let (qual, name) = c
        .qualified_name()
        .ok_or_else(|| format!("no object name {}", c.here()))?;
    if name != o.name {
        return Err(format!("it creates `{name}` instead"));
    }
    if let Some(q) = qual
        && q != db
    {
        return Err(format!("it creates the object in database `{q}`"));
    }
    match o.kind {
        ObjectKind::Table => table_rest(&mut c),
        ObjectKind::View => {
            c.expect("AS")?;
            no_semicolon(&c)
        }
        ObjectKind::Trigger => {
            if !(c.eat("BEFORE") || c.eat("AFTER")) {
                return Err(format!("expected BEFORE or AFTER {}", c.here()));
            }
            if !(c.eat("INSERT") || c.eat("UPDATE") || c.eat("DELETE")) {
                return Err(format!("expected INSERT, UPDATE or DELETE {}", c.here()));
            }
            c.expect("ON")?;
            let (q, table) = c
                .qualified_name()
                .ok_or_else(|| format!("no table name {}", c.here()))?;
            if q.is_some_and(|q| q != db) || !tables.contains(&table) {
                return Err(format!(
                    "it is on `{table}`, which is not a table of this database in the snapshot"
                ));
            }
            c.expect("FOR")?;
            c.expect("EACH")?;
            c.expect("ROW")?;
            if c.eat("FOLLOWS") || c.eat("PRECEDES") {
                c.name()
                    .ok_or_else(|| format!("expected a trigger name {}", c.here()))?;
            }
            body(&mut c, false)
        }
        ObjectKind::Procedure | ObjectKind::Function => {
            c.skip_parens()?;
            body(&mut c, true)
        }
        ObjectKind::Event => {
            while c.peek().is_some() && !c.eat("DO") {
                if c.peek() == Some(&Tok::Punct(';')) {
                    return Err("it holds more than one statement".into());
                }
                c.i += 1;
            }
            if c.peek().is_none() {
                return Err("it has no DO body".into());
            }
            body(&mut c, false)
        }
    }
}

/// `ALGORITHM=…`, `DEFINER=…`, `SQL SECURITY …` between `CREATE` and the kind.
fn head_options(c: &mut Cursor<'_>) -> Result<(), String> {
    loop {
        if c.eat("ALGORITHM") {
            if !c.punct('=') || c.name().is_none() {
                return Err(format!("malformed ALGORITHM {}", c.here()));
            }
        } else if c.eat("DEFINER") {
            if !c.punct('=') {
                return Err(format!("malformed DEFINER {}", c.here()));
            }
            if c.eat("CURRENT_USER") {
                if c.punct('(') && !c.punct(')') {
                    return Err(format!("malformed DEFINER {}", c.here()));
                }
                continue;
            }
            match c.peek() {
                Some(Tok::Ident(_) | Tok::Word { .. } | Tok::Str) => c.i += 1,
                _ => return Err(format!("malformed DEFINER {}", c.here())),
            }
            match c.peek() {
                Some(Tok::Var) => c.i += 1,
                Some(Tok::Punct('@')) => {
                    c.i += 1;
                    match c.peek() {
                        Some(Tok::Ident(_) | Tok::Word { .. } | Tok::Str) => c.i += 1,
                        _ => return Err(format!("malformed DEFINER {}", c.here())),
                    }
                }
                _ => {}
            }
        } else if c.kw() == Some("SQL") && kw_at(c.toks, c.i + 1) == Some("SECURITY") {
            c.i += 2;
            if !(c.eat("DEFINER") || c.eat("INVOKER")) {
                return Err(format!("malformed SQL SECURITY {}", c.here()));
            }
        } else {
            return Ok(());
        }
    }
}

/// After a table's name: the definition in parentheses and table options, never rows from a
/// query (`CREATE TABLE t (…) SELECT … FROM mysql.user` would copy another database's rows).
fn table_rest(c: &mut Cursor<'_>) -> Result<(), String> {
    c.skip_parens()?;
    let mut depth = 0i32;
    while let Some(t) = c.peek() {
        match t {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => depth -= 1,
            Tok::Punct(';') => return Err("it holds more than one statement".into()),
            _ => {
                if depth == 0
                    && let Some(k) = c.kw()
                    && matches!(
                        k,
                        "SELECT"
                            | "WITH"
                            | "VALUES"
                            | "TABLE"
                            | "LIKE"
                            | "AS"
                            | "IGNORE"
                            | "REPLACE"
                    )
                {
                    return Err(format!("it fills the table from a query ({})", c.here()));
                }
            }
        }
        c.i += 1;
    }
    Ok(())
}

fn no_semicolon(c: &Cursor<'_>) -> Result<(), String> {
    if c.toks[c.i..].contains(&Tok::Punct(';')) {
        Err("it holds more than one statement".into())
    } else {
        Ok(())
    }
}

/// Words that may come between a routine's parameters and its body: `RETURNS` and the type,
/// and the characteristics.
const ROUTINE_HEAD_WORDS: &[&str] = &[
    "RETURNS",
    "COMMENT",
    "LANGUAGE",
    "SQL",
    "NOT",
    "DETERMINISTIC",
    "CONTAINS",
    "NO",
    "READS",
    "MODIFIES",
    "DATA",
    "SECURITY",
    "DEFINER",
    "INVOKER",
    "CHARSET",
    "CHARACTER",
    "SET",
    "COLLATE",
    "UNSIGNED",
    "SIGNED",
    "ZEROFILL",
    "BINARY",
    "ASCII",
    "UNICODE",
    "BYTE",
    "PRECISION",
    "VARYING",
    "NATIONAL",
];

const OPENERS: &[&str] = &["BEGIN", "LOOP", "WHILE", "REPEAT", "IF", "CASE"];

/// The body of a routine, trigger or event: one statement, simple or compound.
fn body(c: &mut Cursor<'_>, routine: bool) -> Result<(), String> {
    if !c.toks[c.i..].contains(&Tok::Punct(';')) {
        // The server splits statements only at `;`.
        return Ok(());
    }
    if routine {
        // Skip RETURNS type and characteristics: every word is a known one, or the one word
        // after RETURNS, CHARSET, COLLATE or SET (a type, character set or collation).
        let mut free_word = false;
        loop {
            if is_label(c.toks, c.i) || c.kw().is_some_and(|k| OPENERS.contains(&k)) {
                break;
            }
            match c.peek() {
                Some(Tok::Punct('(')) => c.skip_parens()?,
                Some(Tok::Str | Tok::Punct(',') | Tok::Punct('=')) => c.i += 1,
                Some(Tok::Word { upper, .. }) => {
                    let known = ROUTINE_HEAD_WORDS.contains(&upper.as_str());
                    if !known && !free_word {
                        return Err(format!(
                            "its body is more than one statement ({})",
                            c.here()
                        ));
                    }
                    free_word = matches!(upper.as_str(), "RETURNS" | "CHARSET" | "COLLATE" | "SET");
                    c.i += 1;
                    continue;
                }
                _ => {
                    return Err(format!(
                        "its body is more than one statement ({})",
                        c.here()
                    ));
                }
            }
            free_word = false;
        }
    }
    compound(c)
}

fn is_label(toks: &[Tok], i: usize) -> bool {
    matches!(toks.get(i), Some(Tok::Word { .. } | Tok::Ident(_)))
        && toks.get(i + 1) == Some(&Tok::Punct(':'))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Begin,
    If,
    CaseStmt,
    CaseExpr,
    Loop,
    While,
    Repeat,
}

/// Follows a compound statement block by block; it must start at the cursor and end exactly at
/// the last token. Whatever the server could read otherwise is refused.
fn compound(c: &mut Cursor<'_>) -> Result<(), String> {
    let more = || "its body is more than one statement".to_string();
    let unclear = |c: &Cursor<'_>| format!("its body cannot be followed safely ({})", c.here());
    let mut stack: Vec<Block> = Vec::new();
    let mut parens = 0i32;
    let mut start = true;
    let mut first = true;
    while let Some(t) = c.peek() {
        if !first && stack.is_empty() {
            return Err(more());
        }
        first = false;
        let kw = c.kw();
        if start && parens == 0 {
            if is_label(c.toks, c.i) {
                c.i += 2;
                if !matches!(c.kw(), Some("BEGIN" | "LOOP" | "WHILE" | "REPEAT")) {
                    return Err(unclear(c));
                }
                first = true;
                continue;
            }
            let opened = match kw {
                Some("BEGIN") => Some((Block::Begin, true)),
                Some("IF") => Some((Block::If, false)),
                Some("CASE") => Some((Block::CaseStmt, false)),
                Some("LOOP") => Some((Block::Loop, true)),
                Some("REPEAT") => Some((Block::Repeat, true)),
                Some("WHILE") => Some((Block::While, false)),
                _ => None,
            };
            if let Some((b, starts)) = opened {
                stack.push(b);
                start = starts;
                c.i += 1;
                continue;
            }
            if kw == Some("DECLARE") && handler(c)? {
                // The handler's own statement follows its conditions.
                start = true;
                continue;
            }
        }
        start = false;
        match (t, kw) {
            (Tok::Punct(';'), _) => {
                if parens != 0 || !matches!(stack.last(), Some(b) if *b != Block::CaseExpr) {
                    return Err(more());
                }
                start = true;
            }
            (Tok::Punct('('), _) => parens += 1,
            (Tok::Punct(')'), _) => {
                parens -= 1;
                if parens < 0 {
                    return Err(unclear(c));
                }
            }
            (_, Some("END")) => {
                let closes = match kw_at(c.toks, c.i + 1) {
                    Some("IF") => Some(Block::If),
                    Some("CASE") => Some(Block::CaseStmt),
                    Some("LOOP") => Some(Block::Loop),
                    Some("WHILE") => Some(Block::While),
                    Some("REPEAT") => Some(Block::Repeat),
                    _ => None,
                };
                let top = stack.pop().ok_or_else(more)?;
                match closes {
                    Some(b) if b == top => c.i += 1,
                    None if matches!(top, Block::Begin | Block::CaseExpr) => {}
                    _ => return Err(unclear(c)),
                }
                if top == Block::CaseExpr {
                    c.i += 1;
                    continue;
                }
                if parens != 0 {
                    return Err(unclear(c));
                }
                // An optional label, then `;` or the end.
                if matches!(
                    top,
                    Block::Begin | Block::Loop | Block::While | Block::Repeat
                ) && matches!(c.toks.get(c.i + 1), Some(Tok::Word { .. } | Tok::Ident(_)))
                {
                    c.i += 1;
                }
                match c.toks.get(c.i + 1) {
                    None | Some(Tok::Punct(';')) => {}
                    _ => return Err(unclear(c)),
                }
            }
            (_, Some("CASE")) => stack.push(Block::CaseExpr),
            (_, Some("IF")) => match c.toks.get(c.i + 1) {
                Some(Tok::Punct('(')) => {}
                _ if matches!(kw_at(c.toks, c.i + 1), Some("EXISTS" | "NOT")) => {}
                _ => return Err(unclear(c)),
            },
            (_, Some("REPEAT")) if c.toks.get(c.i + 1) == Some(&Tok::Punct('(')) => {}
            (_, Some("LOOP" | "WHILE" | "REPEAT")) => return Err(unclear(c)),
            (_, Some("THEN" | "ELSE"))
                if parens == 0 && matches!(stack.last(), Some(Block::If | Block::CaseStmt)) =>
            {
                start = true
            }
            (_, Some("DO")) if parens == 0 && stack.last() == Some(&Block::While) => start = true,
            _ => {}
        }
        c.i += 1;
    }
    if !stack.is_empty() || parens != 0 {
        return Err("its body is not a complete statement".into());
    }
    Ok(())
}

/// `DECLARE {CONTINUE|EXIT|UNDO} HANDLER FOR cond[, cond…]`: moves past the conditions and
/// returns true; anything else returns false with the cursor unmoved.
fn handler(c: &mut Cursor<'_>) -> Result<bool, String> {
    let t = c.toks;
    let i = c.i;
    if !(matches!(kw_at(t, i + 1), Some("CONTINUE" | "EXIT" | "UNDO"))
        && kw_at(t, i + 2) == Some("HANDLER")
        && kw_at(t, i + 3) == Some("FOR"))
    {
        return Ok(false);
    }
    c.i += 4;
    loop {
        match c.kw() {
            Some("SQLSTATE") => {
                c.i += 1;
                c.eat("VALUE");
                if c.peek() != Some(&Tok::Str) {
                    return Err(format!("malformed handler condition {}", c.here()));
                }
                c.i += 1;
            }
            Some("NOT") => {
                c.i += 1;
                c.expect("FOUND")?;
            }
            _ => match c.peek() {
                Some(Tok::Word { .. } | Tok::Ident(_)) => c.i += 1,
                _ => return Err(format!("malformed handler condition {}", c.here())),
            },
        }
        if !c.punct(',') {
            return Ok(true);
        }
    }
}

/// A character set or collation name from a snapshot, checked against the names the server
/// itself lists, so it can be placed in `CREATE DATABASE` as a quoted identifier.
pub fn check_server_name(what: &str, name: &str, known: &BTreeSet<String>) -> Result<(), String> {
    if name.is_empty() || known.contains(name) {
        Ok(())
    } else {
        let shown: String = name.chars().take(64).collect();
        Err(format!(
            "{what} {shown:?} is not one the target server knows"
        ))
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
