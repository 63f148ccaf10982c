//! The MySQL/MariaDB tokenizer: object text from a snapshot becomes tokens read the way the
//! server reads them, and [`emit`] writes tokens back as text the tool chose (identifiers in
//! backticks, literals quoted by [`literal_in`], no comments, one space where one is needed).
//!
//! Reading rules, after MariaDB's `sql_lex.cc`: `#` and `-- ` comments end at `\n` only; `--`
//! starts a comment before a space, any control character or the end of the text; `/*! … */`,
//! `/*!NNNNN … */` and `/*M!NNNNNN … */` hold code when their version (5 or 6 digits) is at most
//! the target server's, and are skipped otherwise; `/*+ … */` (optimizer hints, which MariaDB
//! reads as a comment outside SELECT) and `/* … */` are comments. Strings follow the object's
//! `sql_mode` (`NO_BACKSLASH_ESCAPES`, `ANSI_QUOTES`). Since nothing is sent as it was read,
//! a difference between this reading and the server's can only make restore refuse or create
//! what this reading saw, never let text hide from the checks.

/// One token. Words keep their spelling; quoted things keep their value (unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A bare word: a keyword, an unquoted identifier, a number such as `0x1F` or `1e5`.
    Word(String),
    /// A quoted identifier (backticks, or double quotes under `ANSI_QUOTES`), unquoted.
    Ident(String),
    /// A string literal's value.
    Str(String),
    /// `X'…'`, `B'…'` (letter upper-cased) with their digits, `N'…'` with its value.
    Prefixed(char, String),
    /// A decimal number with a fraction or exponent: `1.5`, `.5`, `2e-3`.
    Number(String),
    /// `@name` or `@@name` (the text after the `@`s; `@@` keeps one `@`).
    Var(String),
    /// An operator or punctuation: `(`, `,`, `<=`, `:=`, `@` before a quoted name …
    Op(&'static str),
}

/// A token and whether whitespace or a comment came before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub spaced: bool,
}

impl Token {
    pub fn word(&self) -> Option<&str> {
        match &self.tok {
            Tok::Word(w) => Some(w),
            _ => None,
        }
    }

    /// A bare word compared case-insensitively with `kw` (upper case).
    pub fn is(&self, kw: &str) -> bool {
        self.word().is_some_and(|w| w.eq_ignore_ascii_case(kw))
    }

    pub fn is_op(&self, op: &str) -> bool {
        matches!(self.tok, Tok::Op(o) if o == op)
    }

    /// An identifier, bare or quoted.
    pub fn name(&self) -> Option<&str> {
        match &self.tok {
            Tok::Word(w) | Tok::Ident(w) => Some(w),
            _ => None,
        }
    }
}

/// How strings and double quotes read under an object's `sql_mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mode {
    pub no_backslash_escapes: bool,
    pub ansi_quotes: bool,
}

impl Mode {
    pub fn of(sql_mode: Option<&str>) -> Result<Mode, String> {
        let mut m = Mode::default();
        for part in sql_mode.unwrap_or("").split(',') {
            match part.trim().to_ascii_uppercase().as_str() {
                "NO_BACKSLASH_ESCAPES" => m.no_backslash_escapes = true,
                "ANSI_QUOTES" | "ANSI" | "DB2" | "MAXDB" | "MSSQL" | "POSTGRESQL" => {
                    m.ansi_quotes = true
                }
                // MariaDB's Oracle mode parses another language.
                "ORACLE" => return Err("its sql_mode ORACLE is not supported".into()),
                _ => {}
            }
        }
        Ok(m)
    }
}

const OPS: &[&str] = &[
    "<=>", "->>", "<=", ">=", "<>", "!=", "<<", ">>", "&&", "||", ":=", "->", "(", ")", ",", ".",
    ";", "=", "<", ">", "+", "-", "*", "/", "%", "!", "~", "^", "&", "|", ":", "@", "{", "}",
];

fn word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// The server's whitespace (`my_isspace` on ASCII).
fn space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Reads `sql` as the target server would; `server` is its version as a number (`110402`).
pub fn lex(sql: &str, mode: Mode, server: u32) -> Result<Vec<Token>, String> {
    let b = sql.as_bytes();
    let mut out: Vec<Token> = Vec::new();
    let mut i = 0;
    let mut spaced = false;
    let mut in_exec = false;
    let push = |out: &mut Vec<Token>, tok: Tok, spaced: &mut bool| {
        out.push(Token {
            tok,
            spaced: *spaced,
        });
        *spaced = false;
    };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if space(c) {
            spaced = true;
            i += 1;
            continue;
        }
        match c {
            b'#' => {
                i = line_end(b, i);
                spaced = true;
            }
            b'-' if next == Some(b'-') && b.get(i + 2).is_none_or(|&d| d <= 0x20 || d == 0x7f) => {
                i = line_end(b, i);
                spaced = true;
            }
            b'/' if next == Some(b'*') => {
                let (end, code) = comment(b, i, server, in_exec)?;
                i = end;
                spaced = true;
                if code {
                    in_exec = true;
                }
            }
            b'*' if next == Some(b'/') && in_exec => {
                in_exec = false;
                spaced = true;
                i += 2;
            }
            b'`' => {
                let (s, end) = quoted(sql, i, b'`', false)?;
                push(&mut out, Tok::Ident(s), &mut spaced);
                i = end;
            }
            b'"' if mode.ansi_quotes => {
                let (s, end) = quoted(sql, i, b'"', false)?;
                push(&mut out, Tok::Ident(s), &mut spaced);
                i = end;
            }
            b'\'' | b'"' => {
                let (s, end) = quoted(sql, i, c, !mode.no_backslash_escapes)?;
                push(&mut out, Tok::Str(s), &mut spaced);
                i = end;
            }
            b'@' => {
                let (tok, end) = var(sql, i)?;
                push(&mut out, tok, &mut spaced);
                i = end;
            }
            b'.' if next.is_some_and(|d| d.is_ascii_digit())
                && !out.last().is_some_and(|t| !spaced && t.name().is_some()) =>
            {
                let end = number_end(b, i);
                push(&mut out, Tok::Number(sql[i..end].into()), &mut spaced);
                i = end;
            }
            c if c.is_ascii_digit() => {
                let (tok, end) = digits(sql, i);
                push(&mut out, tok, &mut spaced);
                i = end;
            }
            c if word_byte(c) => {
                let start = i;
                while i < b.len() && word_byte(b[i]) {
                    i += 1;
                }
                let w = &sql[start..i];
                if b.get(i) == Some(&b'\'') && matches!(w, "x" | "X" | "b" | "B" | "n" | "N") {
                    let letter = w.as_bytes()[0].to_ascii_uppercase() as char;
                    let (s, end) =
                        quoted(sql, i, b'\'', letter == 'N' && !mode.no_backslash_escapes)?;
                    let digits_ok = match letter {
                        'X' => s.bytes().all(|d| d.is_ascii_hexdigit()) && s.len() % 2 == 0,
                        'B' => s.bytes().all(|d| d == b'0' || d == b'1'),
                        _ => true,
                    };
                    if !digits_ok {
                        return Err(format!("it has a malformed {letter}'…' literal"));
                    }
                    push(&mut out, Tok::Prefixed(letter, s), &mut spaced);
                    i = end;
                } else {
                    push(&mut out, Tok::Word(w.into()), &mut spaced);
                }
            }
            _ => {
                let rest = &sql[i..];
                let Some(op) = OPS.iter().find(|o| rest.starts_with(**o)) else {
                    return Err(format!(
                        "it holds the character {:?} outside a string",
                        rest.chars().next().unwrap_or('?')
                    ));
                };
                push(&mut out, Tok::Op(op), &mut spaced);
                i += op.len();
            }
        }
    }
    if in_exec {
        return Err("it has an unterminated /*! comment".into());
    }
    Ok(out)
}

fn line_end(b: &[u8], from: usize) -> usize {
    b[from..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| from + p + 1)
}

/// A comment starting at `start` (`/*`): returns where reading goes on, and whether what
/// follows is code (an executable comment the server runs, closed later by `*/`).
fn comment(b: &[u8], start: usize, server: u32, in_exec: bool) -> Result<(usize, bool), String> {
    let mut i = start + 2;
    let exec = match (b.get(i), b.get(i + 1)) {
        (Some(b'!'), _) => {
            i += 1;
            true
        }
        (Some(b'M'), Some(b'!')) => {
            i += 2;
            true
        }
        _ => false,
    };
    if exec {
        if in_exec {
            return Err("it nests executable comments".into());
        }
        let digits = b[i..]
            .iter()
            .take(6)
            .take_while(|c| c.is_ascii_digit())
            .count();
        let version = match digits {
            5 | 6 => std::str::from_utf8(&b[i..i + digits])
                .ok()
                .and_then(|s| s.parse::<u32>().ok()),
            _ => None,
        };
        if version.is_some() {
            i += digits;
        }
        if version.is_none_or(|v| v <= server) {
            return Ok((i, true));
        }
    }
    let body = &b[start + 2..];
    let end = body
        .windows(2)
        .position(|w| w == b"*/")
        .ok_or("it has an unterminated comment")?;
    if body[..end].windows(2).any(|w| w == b"/*") {
        return Err("it nests comments".into());
    }
    Ok((start + 2 + end + 2, false))
}

/// A quoted run starting at `start` (the opening quote); returns its value and the index after
/// it. With `backslash`, `\x` escapes as the server reads them (`\%` and `\_` keep theirs).
fn quoted(sql: &str, start: usize, q: u8, backslash: bool) -> Result<(String, usize), String> {
    let b = sql.as_bytes();
    let mut out: Vec<u8> = Vec::new();
    let mut i = start + 1;
    while i < b.len() {
        let c = b[i];
        if backslash && c == b'\\' {
            let Some(&n) = b.get(i + 1) else { break };
            match n {
                b'0' => out.push(0),
                b'b' => out.push(8),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'Z' => out.push(26),
                b'%' | b'_' => out.extend_from_slice(&[b'\\', n]),
                _ => out.push(n),
            }
            i += 2;
            continue;
        }
        if c == q {
            if b.get(i + 1) == Some(&q) {
                out.push(q);
                i += 2;
                continue;
            }
            let s = String::from_utf8(out).map_err(|_| "it holds a string that is not UTF-8")?;
            return Ok((s, i + 1));
        }
        out.push(c);
        i += 1;
    }
    Err("it has an unterminated quoted string or name".into())
}

fn var(sql: &str, start: usize) -> Result<(Tok, usize), String> {
    let b = sql.as_bytes();
    let mut i = start + 1;
    let mut name = String::new();
    if b.get(i) == Some(&b'@') {
        name.push('@');
        i += 1;
    }
    let from = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'$' | b'.')) {
        i += 1;
    }
    if i == from {
        if !name.is_empty() {
            return Err("it has a malformed @@ variable".into());
        }
        return Ok((Tok::Op("@"), start + 1));
    }
    if b.get(i).is_some_and(|&c| c >= 0x80) {
        return Err("it has a variable name that is not ASCII".into());
    }
    name.push_str(&sql[from..i]);
    Ok((Tok::Var(name), i))
}

fn number_end(b: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if b.get(j).is_some_and(|c| c.is_ascii_digit()) {
            i = j;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

/// A token starting with a digit: an integer or `0x1F`-like word, a decimal number, or an
/// identifier such as `1abc` (the server reads those as names).
fn digits(sql: &str, start: usize) -> (Tok, usize) {
    let b = sql.as_bytes();
    let end = number_end(b, start);
    let word_end = {
        let mut i = start;
        while i < b.len() && word_byte(b[i]) {
            i += 1;
        }
        i
    };
    if word_end > end || (word_end == end && !sql[start..end].contains(['.', 'e', 'E'])) {
        (Tok::Word(sql[start..word_end].into()), word_end)
    } else {
        (Tok::Number(sql[start..end].into()), end)
    }
}

/// A string literal the server reads back as `s` under `mode`.
pub fn literal_in(s: &str, mode: Mode) -> String {
    if mode.no_backslash_escapes {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        super::super::sqltext::literal(s)
    }
}

fn is_quoted(t: &Tok) -> bool {
    matches!(t, Tok::Ident(_) | Tok::Str(_) | Tok::Prefixed(..))
}

fn is_symbol(t: &Tok) -> bool {
    matches!(t, Tok::Op(o) if !matches!(*o, "(" | ")" | "," | ";" | "."))
}

/// Writes tokens as SQL text: names in backticks, literals quoted for `mode`, no comments.
/// A space goes where the source had whitespace or a comment, and between two operators or two
/// quoted tokens so they never read as one.
pub fn emit(tokens: &[Token], mode: Mode) -> String {
    let mut out = String::new();
    let mut prev: Option<&Tok> = None;
    for t in tokens {
        if let Some(p) = prev
            && (t.spaced
                || (is_symbol(p) && is_symbol(&t.tok))
                || (is_quoted(p) && is_quoted(&t.tok)))
        {
            out.push(' ');
        }
        emit_one(&mut out, &t.tok, mode);
        prev = Some(&t.tok);
    }
    out
}

pub fn emit_one(out: &mut String, t: &Tok, mode: Mode) {
    use super::super::sqltext::ident;
    match t {
        Tok::Word(w) => out.push_str(w),
        Tok::Ident(s) => out.push_str(&ident(s)),
        Tok::Str(s) => out.push_str(&literal_in(s, mode)),
        Tok::Prefixed('N', s) => {
            out.push('N');
            out.push_str(&literal_in(s, mode));
        }
        Tok::Prefixed(c, s) => {
            out.push(*c);
            out.push('\'');
            out.push_str(s);
            out.push('\'');
        }
        Tok::Number(n) => out.push_str(n),
        Tok::Var(v) => {
            out.push('@');
            out.push_str(v);
        }
        Tok::Op(o) => out.push_str(o),
    }
}

/// `VERSION()` as the number versioned comments compare with: `11.4.2-MariaDB` → `110402`.
pub fn version_id(version: &str) -> u32 {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b, c) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    a * 10000 + b * 100 + c
}
