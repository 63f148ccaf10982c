//! Small pieces of SQL text: quoting, archive path names, rewriting qualified names.

/// `name` as a MySQL identifier in backticks.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
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

/// Replaces references qualified with database `from` (`` `from`. ``) by `to`, outside string
/// literals. Views are stored by the server with every table qualified, so renaming a database
/// must rewrite them.
pub fn rewrite_db_qualifier(sql: &str, from: &str, to: &str) -> String {
    let needle = format!("{}.", ident(from));
    let replacement = format!("{}.", ident(to));
    let mut out = String::with_capacity(sql.len());
    let bytes = sql.as_bytes();
    let mut i = 0;
    let mut in_str: Option<u8> = None;
    while i < bytes.len() {
        let c = bytes[i];
        match in_str {
            Some(q) => {
                if c == b'\\' && i + 1 < bytes.len() {
                    out.push_str(&sql[i..i + 2]);
                    i += 2;
                    continue;
                }
                if c == q {
                    in_str = None;
                }
            }
            None => {
                if c == b'\'' || c == b'"' {
                    in_str = Some(c);
                } else if c == b'`' {
                    if sql[i..].starts_with(&needle) {
                        out.push_str(&replacement);
                        i += needle.len();
                        continue;
                    }
                    // Copy the whole quoted identifier so a match never starts inside one.
                    let mut j = i + 1;
                    while j < bytes.len() {
                        if bytes[j] == b'`' {
                            if bytes.get(j + 1) == Some(&b'`') {
                                j += 2;
                                continue;
                            }
                            break;
                        }
                        j += 1;
                    }
                    let end = (j + 1).min(bytes.len());
                    out.push_str(&sql[i..end]);
                    i = end;
                    continue;
                }
            }
        }
        let ch_len = utf8_len(c);
        out.push_str(&sql[i..i + ch_len]);
        i += ch_len;
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_quote_their_delimiters() {
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(qualified("d b", "select"), "`d b`.`select`");
        assert_eq!(literal("it's \\N"), "'it''s \\\\N'");
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

    #[test]
    fn rewrites_qualified_names_but_not_strings_or_longer_identifiers() {
        let sql = "select `db`.`t`.`a` AS `a`,'`db`.x' from `db`.`t` join `db2`.`u` join `xdb`.`v`";
        assert_eq!(
            rewrite_db_qualifier(sql, "db", "new"),
            "select `new`.`t`.`a` AS `a`,'`db`.x' from `new`.`t` join `db2`.`u` join `xdb`.`v`"
        );
        assert_eq!(rewrite_db_qualifier("`a``b`.`t`", "a`b", "c"), "`c`.`t`");
        assert_eq!(
            rewrite_db_qualifier("select '表' from `d`.`表`", "d", "e"),
            "select '表' from `e`.`表`"
        );
    }
}
