//! Row shapes shared by migrate and verify: which columns move, their PostgreSQL types, how a
//! MySQL value is written for COPY, and an order-independent checksum of normalised rows.

use mysql_async::Value;
use sha2::{Digest, Sha256};

use crate::postgres::copy_escape_into;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgType {
    Bool,
    Int4,
    Int8,
    Float8,
    Text,
}

impl PgType {
    pub fn from_data_type(t: &str) -> Option<Self> {
        Some(match t {
            "boolean" => PgType::Bool,
            "integer" | "smallint" => PgType::Int4,
            "bigint" => PgType::Int8,
            "double precision" | "real" => PgType::Float8,
            "character varying" | "text" | "character" => PgType::Text,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub pg: PgType,
    /// The target's `character varying(n)` limit, in characters.
    pub max_chars: Option<u32>,
    /// Holds an artifact URI that `--rewrite-artifact-uri` rewrites by prefix.
    pub artifact_uri: bool,
}

/// The columns that hold artifact locations.
pub const ARTIFACT_URI_COLUMNS: &[(&str, &str)] = &[
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
];

/// The value with its first matching `(old prefix, new prefix)` rule applied, if any applies.
pub fn rewrite_prefix(v: &Value, rules: &[(String, String)]) -> Option<Value> {
    let Value::Bytes(b) = v else { return None };
    rules
        .iter()
        .find(|(from, _)| b.starts_with(from.as_bytes()))
        .map(|(from, to)| {
            let mut out = to.as_bytes().to_vec();
            out.extend_from_slice(&b[from.len()..]);
            Value::Bytes(out)
        })
}

/// One table as it moves: the columns both sides have, and the source primary key (for
/// messages that name a row).
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub name: String,
    pub columns: Vec<Column>,
    pub key: Vec<usize>,
}

/// Why a value cannot move unchanged.
#[derive(Debug)]
pub enum ValueProblem {
    NulByte,
    NotUtf8,
    NotFinite,
    Unexpected(String),
}

/// Appends one value in COPY text format for a column of type `pg`.
pub fn write_copy_value(out: &mut Vec<u8>, v: &Value, pg: PgType) -> Result<(), ValueProblem> {
    match (v, pg) {
        (Value::NULL, _) => out.extend_from_slice(b"\\N"),
        (Value::Int(i), PgType::Bool) => out.push(if *i != 0 { b't' } else { b'f' }),
        (Value::UInt(u), PgType::Bool) => out.push(if *u != 0 { b't' } else { b'f' }),
        (Value::Int(i), _) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        (Value::UInt(u), _) => out.extend_from_slice(itoa::Buffer::new().format(*u).as_bytes()),
        (Value::Double(d), _) => push_double(out, *d)?,
        (Value::Float(f), _) => push_double(out, f64::from(*f))?,
        (Value::Bytes(b), _) => {
            if b.contains(&0) {
                return Err(ValueProblem::NulByte);
            }
            if std::str::from_utf8(b).is_err() {
                return Err(ValueProblem::NotUtf8);
            }
            copy_escape_into(out, b)
        }
        (other, _) => return Err(ValueProblem::Unexpected(format!("{other:?}"))),
    }
    Ok(())
}

fn push_double(out: &mut Vec<u8>, d: f64) -> Result<(), ValueProblem> {
    if !d.is_finite() {
        return Err(ValueProblem::NotFinite);
    }
    out.extend_from_slice(ryu::Buffer::new().format_finite(d).as_bytes());
    Ok(())
}

/// A value normalised for comparison across servers.
#[derive(Debug, Clone, PartialEq)]
pub enum Norm<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(&'a [u8]),
}

pub fn norm_mysql(v: &Value, pg: PgType) -> Norm<'_> {
    match (v, pg) {
        (Value::NULL, _) => Norm::Null,
        (Value::Int(i), PgType::Bool) => Norm::Bool(*i != 0),
        (Value::UInt(u), PgType::Bool) => Norm::Bool(*u != 0),
        (Value::Int(i), _) => Norm::Int(*i),
        (Value::UInt(u), _) => Norm::Int(*u as i64),
        (Value::Double(d), _) => Norm::Float(*d),
        (Value::Float(f), _) => Norm::Float(f64::from(*f)),
        // Values read back from a snapshot chunk are text; parse what the column holds.
        (Value::Bytes(b), PgType::Bool) => Norm::Bool(b.as_slice() != b"0"),
        (Value::Bytes(b), PgType::Int4 | PgType::Int8) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(Norm::Text(b), Norm::Int),
        (Value::Bytes(b), PgType::Float8) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(Norm::Text(b), Norm::Float),
        (Value::Bytes(b), PgType::Text) => Norm::Text(b),
        _ => Norm::Null,
    }
}

/// Order-independent checksum of a table: the wrapping sum of a 128-bit hash of each row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableSum {
    pub rows: u64,
    pub sum: u128,
}

impl TableSum {
    pub fn add<'a>(&mut self, row: impl IntoIterator<Item = Norm<'a>>) {
        let mut h = Sha256::new();
        for v in row {
            match v {
                Norm::Null => h.update([0u8]),
                Norm::Bool(b) => h.update([1u8, b as u8]),
                Norm::Int(i) => {
                    h.update([2u8]);
                    h.update(i.to_le_bytes());
                }
                Norm::Float(f) => {
                    h.update([3u8]);
                    h.update(f.to_bits().to_le_bytes());
                }
                Norm::Text(t) => {
                    h.update([4u8]);
                    h.update((t.len() as u64).to_le_bytes());
                    h.update(t);
                }
            }
        }
        let d = h.finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&d[..16]);
        self.sum = self.sum.wrapping_add(u128::from_le_bytes(first));
        self.rows += 1;
    }

    pub fn hex(&self) -> String {
        format!("{:032x}", self.sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_values_convert_types_and_refuse_nul() {
        let mut out = Vec::new();
        write_copy_value(&mut out, &Value::Int(1), PgType::Bool).unwrap();
        out.push(b' ');
        write_copy_value(
            &mut out,
            &Value::Double(-1.7976931348623157e308),
            PgType::Float8,
        )
        .unwrap();
        out.push(b' ');
        write_copy_value(
            &mut out,
            &Value::Bytes("中\t文".as_bytes().to_vec()),
            PgType::Text,
        )
        .unwrap();
        out.push(b' ');
        write_copy_value(&mut out, &Value::NULL, PgType::Text).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "t -1.7976931348623157e308 中\\t文 \\N"
        );
        let mut out = Vec::new();
        assert!(matches!(
            write_copy_value(&mut out, &Value::Bytes(b"a\0b".to_vec()), PgType::Text),
            Err(ValueProblem::NulByte)
        ));
    }

    #[test]
    fn artifact_uris_are_rewritten_by_their_first_matching_prefix() {
        let rules = vec![
            (
                "mlflow-artifacts:/".to_string(),
                "s3://bucket/mlflow/".to_string(),
            ),
            ("/mnt/".to_string(), "file:///data/".to_string()),
        ];
        let v = Value::Bytes(b"mlflow-artifacts:/3/abc/artifacts".to_vec());
        assert_eq!(
            rewrite_prefix(&v, &rules),
            Some(Value::Bytes(b"s3://bucket/mlflow/3/abc/artifacts".to_vec()))
        );
        assert_eq!(
            rewrite_prefix(&Value::Bytes(b"runs:/x".to_vec()), &rules),
            None
        );
        assert_eq!(rewrite_prefix(&Value::NULL, &rules), None);
    }

    #[test]
    fn table_sums_ignore_order_but_not_content() {
        let a = [Norm::Int(1), Norm::Text(b"x")];
        let b = [Norm::Int(2), Norm::Null];
        let (mut s1, mut s2, mut s3) = (
            TableSum::default(),
            TableSum::default(),
            TableSum::default(),
        );
        s1.add(a.clone());
        s1.add(b.clone());
        s2.add(b.clone());
        s2.add(a.clone());
        s3.add(a.clone());
        s3.add([Norm::Int(2), Norm::Text(b"")]);
        assert_eq!(s1, s2);
        assert_ne!(s1, s3);
        let mut f1 = TableSum::default();
        f1.add([Norm::Float(0.0)]);
        let mut f2 = TableSum::default();
        f2.add([Norm::Float(-0.0)]);
        assert_ne!(f1, f2, "the sign of zero is part of the value");
    }
}
