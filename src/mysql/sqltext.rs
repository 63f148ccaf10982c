//! Small pieces of SQL text: quoting, archive path names.

/// `name` as a MySQL identifier in backticks.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A name as it may appear inside a `-- ` comment line of a `.sql` file: backticks, and every
/// control character written as an escape, so that no name ends the comment (a newline would
/// start a statement the mysql client runs).
pub fn comment_name(name: &str) -> String {
    let mut out = String::from("`");
    for c in name.chars() {
        match c {
            '`' => out.push_str("``"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('`');
    out
}

/// `db`.`name`.
pub fn qualified(db: &str, name: &str) -> String {
    format!("{}.{}", ident(db), ident(name))
}

/// A single-quoted SQL string literal (valid whatever the sql_mode: quotes are doubled and
/// backslashes escaped, and NO_BACKSLASH_ESCAPES is never set by amlmigrate).
pub fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A database or table name as one archive path segment: readable where possible, never a
/// separator, never `.`/`..`, never a name that collides with the part's own `*.sql` files.
pub fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, c) in name.chars().enumerate() {
        let keep = c.is_alphanumeric() || matches!(c, '_' | '-' | ' ' | '$') || (c == '.' && i > 0);
        if keep {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    if out.ends_with(".sql") || out.ends_with(".json") {
        out = out.replacen('.', "%2E", 1);
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_quote_their_delimiters() {
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(qualified("d b", "select"), "`d b`.`select`");
        assert_eq!(literal("it's \\N"), "'it''s \\\\N'");
        assert_eq!(
            comment_name("q\nCREATE DATABASE x;#\r\u{1}`"),
            "`q\\nCREATE DATABASE x;#\\r\\u{1}```"
        );
    }

    #[test]
    fn path_segments_are_safe_and_readable() {
        assert_eq!(path_segment("metrics"), "metrics");
        assert_eq!(path_segment("a/b"), "a%2Fb");
        assert_eq!(path_segment("..x"), "%2E.x");
        assert_eq!(path_segment("schema.sql"), "schema%2Esql");
        assert_eq!(path_segment("表 1"), "表 1");
        assert_eq!(path_segment("semi;colon`tick"), "semi%3Bcolon%60tick");
    }
}
