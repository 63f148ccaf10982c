//! The creation context of a view, trigger, routine or event: the `sql_mode`, `time_zone`,
//! client character set, connection collation and database collation it was created under
//! (what mysqldump writes around each object). The server stores each object with them, and
//! they change what the object does: a literal in a body created under `latin1` is a `latin1`
//! string, and `LENGTH('é')` is 1 there and 2 under `utf8mb4`.
//!
//! Values come from a snapshot, so each is checked to be well formed before the tool writes it
//! into a statement of its own ([`Context::set_sql`]).

use std::collections::BTreeSet;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::sqltext::{ident, literal};

/// Every `sql_mode` flag MariaDB or MySQL knows (combination modes included).
const SQL_MODES: &[&str] = &[
    "REAL_AS_FLOAT",
    "PIPES_AS_CONCAT",
    "ANSI_QUOTES",
    "IGNORE_SPACE",
    "IGNORE_BAD_TABLE_OPTIONS",
    "ONLY_FULL_GROUP_BY",
    "NO_UNSIGNED_SUBTRACTION",
    "NO_DIR_IN_CREATE",
    "POSTGRESQL",
    "ORACLE",
    "MSSQL",
    "DB2",
    "MAXDB",
    "NO_KEY_OPTIONS",
    "NO_TABLE_OPTIONS",
    "NO_FIELD_OPTIONS",
    "MYSQL323",
    "MYSQL40",
    "ANSI",
    "NO_AUTO_VALUE_ON_ZERO",
    "NO_BACKSLASH_ESCAPES",
    "STRICT_TRANS_TABLES",
    "STRICT_ALL_TABLES",
    "NO_ZERO_IN_DATE",
    "NO_ZERO_DATE",
    "ALLOW_INVALID_DATES",
    "ERROR_FOR_DIVISION_BY_ZERO",
    "TRADITIONAL",
    "NO_AUTO_CREATE_USER",
    "HIGH_NOT_PRECEDENCE",
    "NO_ENGINE_SUBSTITUTION",
    "PAD_CHAR_TO_FULL_LENGTH",
    "EMPTY_STRING_IS_NULL",
    "SIMULTANEOUS_ASSIGNMENT",
    "TIME_ROUND_FRACTIONAL",
    "TIME_TRUNCATE_FRACTIONAL",
];

/// Client character sets whose bytes are the UTF-8 the tool holds (for `utf8mb3`, as long as
/// the text has no 4-byte character, which a `utf8mb3` body cannot hold).
fn is_utf8(charset: &str) -> bool {
    matches!(
        charset.to_ascii_lowercase().as_str(),
        "utf8mb4" | "utf8mb3" | "utf8"
    )
}

/// The checked creation context of one object. `None` fields were not recorded (a snapshot
/// from before they were, or a table): the object is created in the restore session's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    pub sql_mode: Option<String>,
    pub time_zone: Option<String>,
    pub charset: Option<String>,
    pub collation: Option<String>,
    pub database_collation: Option<String>,
}

/// A `sql_mode` value: comma-separated flags the server knows, nothing else.
pub fn check_sql_mode(mode: &str) -> Result<String, String> {
    if mode.is_empty() {
        return Ok(String::new());
    }
    let mut flags = Vec::new();
    for part in mode.split(',') {
        let up = part.to_ascii_uppercase();
        if !SQL_MODES.contains(&up.as_str()) {
            return Err(format!(
                "its sql_mode holds {:?}, not a sql_mode flag",
                shown(part)
            ));
        }
        flags.push(up);
    }
    Ok(flags.join(","))
}

/// A `time_zone` value: `SYSTEM`, an offset `±HH:MM`, or a zone name such as `Europe/Berlin`.
pub fn check_time_zone(tz: &str) -> Result<String, String> {
    let bad = || format!("its time_zone {:?} is not a time zone", shown(tz));
    let b = tz.as_bytes();
    if matches!(b.first(), Some(b'+' | b'-')) {
        let ok = b.len() == 6
            && b[3] == b':'
            && [1, 2, 4, 5].iter().all(|&i| b[i].is_ascii_digit())
            && tz[1..3].parse::<u32>().is_ok_and(|h| h <= 14)
            && tz[4..6].parse::<u32>().is_ok_and(|m| m <= 59);
        return if ok { Ok(tz.to_string()) } else { Err(bad()) };
    }
    let named = !tz.is_empty()
        && tz.len() <= 64
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'/' | b'+' | b'-'))
        && !tz.contains("//");
    if named {
        Ok(tz.to_string())
    } else {
        Err(bad())
    }
}

/// A character set or collation name the target server knows.
pub fn check_name(what: &str, name: &str, known: &BTreeSet<String>) -> Result<String, String> {
    let well_formed = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
    if well_formed && known.contains(name) {
        Ok(name.to_string())
    } else {
        Err(format!(
            "its {what} {:?} is not one the target server knows",
            shown(name)
        ))
    }
}

fn shown(s: &str) -> String {
    s.chars().take(64).collect()
}

impl Context {
    pub fn is_empty(&self) -> bool {
        *self == Context::default()
    }

    /// The one `SET SESSION` statement that puts a session in this context, written from the
    /// checked values; `None` when nothing was recorded.
    pub fn set_sql(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(m) = &self.sql_mode {
            parts.push(format!("sql_mode = {}", literal(m)));
        }
        if let Some(tz) = &self.time_zone {
            parts.push(format!("time_zone = {}", literal(tz)));
        }
        if let Some(cs) = &self.charset {
            parts.push(format!("character_set_client = {}", literal(cs)));
        }
        if let Some(c) = &self.collation {
            parts.push(format!("collation_connection = {}", literal(c)));
        }
        (!parts.is_empty()).then(|| format!("SET SESSION {}", parts.join(", ")))
    }

    /// Whether a statement in this context must be sent in another encoding than UTF-8.
    pub fn needs_encoding(&self, sql: &str) -> bool {
        self.charset
            .as_deref()
            .is_some_and(|cs| !sql.is_ascii() && !is_utf8(cs))
    }
}

/// `ALTER DATABASE` to a collation, as mysqldump does around a routine created under another
/// database collation than the database's current one.
pub fn alter_database_sql(db: &str, collation: &str) -> String {
    format!(
        "ALTER DATABASE {} COLLATE {}",
        ident(db),
        literal(collation)
    )
}

/// `text` in the character set `charset` (a checked name), converted by the server itself so
/// that the bytes are exactly what a client of that character set would send. A text the
/// character set cannot hold is refused: the server would store `?` in its place.
pub async fn encode(
    conn: &mut Conn,
    text: &str,
    charset: &str,
) -> std::result::Result<Vec<u8>, EncodeError> {
    if !charset
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'_')
    {
        return Err(EncodeError::Lossy);
    }
    let row: Option<(Vec<u8>, Vec<u8>)> = conn
        .exec_first(
            format!(
                "SELECT CAST(CONVERT(? USING {charset}) AS BINARY), \
                 CAST(CONVERT(CONVERT(? USING {charset}) USING utf8mb4) AS BINARY)"
            ),
            (text, text),
        )
        .await
        .map_err(EncodeError::Server)?;
    match row {
        Some((bytes, back)) if back == text.as_bytes() => Ok(bytes),
        _ => Err(EncodeError::Lossy),
    }
}

#[derive(Debug)]
pub enum EncodeError {
    /// The character set cannot hold every character of the text.
    Lossy,
    Server(mysql_async::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_modes_are_known_flags_only() {
        assert_eq!(
            check_sql_mode("strict_trans_tables,NO_ENGINE_SUBSTITUTION").unwrap(),
            "STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION"
        );
        assert_eq!(check_sql_mode("").unwrap(), "");
        for bad in ["STRICT', sql_log_bin = 0 -- ", "ANSI,,", "X"] {
            assert!(check_sql_mode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_zones_are_offsets_system_or_zone_names() {
        for good in [
            "+00:00",
            "-05:30",
            "+14:00",
            "SYSTEM",
            "Europe/Berlin",
            "Etc/GMT+3",
        ] {
            assert_eq!(check_time_zone(good).unwrap(), good);
        }
        for bad in [
            "+15:00",
            "+1:00",
            "",
            "x'; DROP",
            "/etc/passwd",
            "a//b",
            "+00:60",
        ] {
            assert!(check_time_zone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_must_be_well_formed_and_known_to_the_server() {
        let known: BTreeSet<String> = ["latin1".to_string(), "x y".to_string()].into();
        assert_eq!(
            check_name("character set", "latin1", &known).unwrap(),
            "latin1"
        );
        assert!(check_name("character set", "x y", &known).is_err());
        assert!(check_name("character set", "cp1251", &known).is_err());
    }

    #[test]
    fn the_set_statement_is_written_from_the_checked_values() {
        let c = Context {
            sql_mode: Some("ANSI_QUOTES".into()),
            time_zone: Some("+03:00".into()),
            charset: Some("latin1".into()),
            collation: Some("latin1_swedish_ci".into()),
            database_collation: None,
        };
        assert_eq!(
            c.set_sql().unwrap(),
            "SET SESSION sql_mode = 'ANSI_QUOTES', time_zone = '+03:00', \
             character_set_client = 'latin1', collation_connection = 'latin1_swedish_ci'"
        );
        assert!(Context::default().set_sql().is_none());
        assert!(c.needs_encoding("SELECT 'é'"));
        assert!(!c.needs_encoding("SELECT 'e'"));
    }
}
