//! The chunk format: `LOAD DATA` defaults (fields separated by tab, rows by newline, backslash
//! escapes, `\N` for NULL), read with `CHARACTER SET binary` so that bytes are never converted.
//!
//! Values come from the binary protocol and are written so that loading them gives back the same
//! bits: floats as the shortest decimal that parses to the same double (a FLOAT is widened to
//! double first, which is exact), temporal values at the column's own precision, YEAR with four
//! digits (a bare `0` would load as 2000).

use mysql_async::Column;
use mysql_async::Value;
use mysql_async::consts::ColumnType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Date,
    DateTime,
    Time,
    Year,
    Other,
}

#[derive(Debug, Clone, Copy)]
pub struct ColumnFormat {
    pub kind: Kind,
    /// Fractional-second digits (0..=6).
    pub decimals: u8,
}

impl ColumnFormat {
    pub fn of(col: &Column) -> Self {
        use ColumnType::*;
        let kind = match col.column_type() {
            MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => Kind::Date,
            MYSQL_TYPE_DATETIME
            | MYSQL_TYPE_DATETIME2
            | MYSQL_TYPE_TIMESTAMP
            | MYSQL_TYPE_TIMESTAMP2 => Kind::DateTime,
            MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => Kind::Time,
            MYSQL_TYPE_YEAR => Kind::Year,
            _ => Kind::Other,
        };
        let decimals = match col.decimals() {
            d @ 0..=6 => d,
            _ => 6,
        };
        ColumnFormat { kind, decimals }
    }
}

/// Appends `b` escaped for `LOAD DATA ... ESCAPED BY '\\'`.
#[inline]
pub fn escape_into(out: &mut Vec<u8>, b: &[u8]) {
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc = match c {
            b'\\' => b'\\',
            b'\t' => b't',
            b'\n' => b'n',
            b'\r' => b'r',
            0 => b'0',
            0x1a => b'Z',
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        out.push(b'\\');
        out.push(esc);
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

fn push_frac(out: &mut Vec<u8>, micros: u32, decimals: u8) {
    if decimals == 0 {
        return;
    }
    let scaled = micros / 10u32.pow(6 - decimals as u32);
    out.push(b'.');
    let mut digits = [b'0'; 6];
    let mut v = scaled;
    for i in (0..decimals as usize).rev() {
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&digits[..decimals as usize]);
}

fn push_padded(out: &mut Vec<u8>, v: u32, width: usize) {
    let mut buf = itoa::Buffer::new();
    let s = buf.format(v);
    for _ in s.len()..width {
        out.push(b'0');
    }
    out.extend_from_slice(s.as_bytes());
}

/// Appends one value. Errors name what cannot be represented (NaN or infinity, which MySQL
/// columns cannot hold).
pub fn write_value(out: &mut Vec<u8>, v: &Value, fmt: ColumnFormat) -> Result<(), String> {
    match v {
        Value::NULL => out.extend_from_slice(b"\\N"),
        Value::Bytes(b) => escape_into(out, b),
        Value::Int(i) => {
            if fmt.kind == Kind::Year {
                push_padded(out, *i as u32, 4);
            } else {
                out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes());
            }
        }
        Value::UInt(u) => {
            if fmt.kind == Kind::Year {
                push_padded(out, *u as u32, 4);
            } else {
                out.extend_from_slice(itoa::Buffer::new().format(*u).as_bytes());
            }
        }
        Value::Float(f) => push_double(out, f64::from(*f))?,
        Value::Double(d) => push_double(out, *d)?,
        Value::Date(y, mo, d, h, mi, s, us) => {
            push_padded(out, *y as u32, 4);
            out.push(b'-');
            push_padded(out, *mo as u32, 2);
            out.push(b'-');
            push_padded(out, *d as u32, 2);
            if fmt.kind != Kind::Date {
                out.push(b' ');
                push_padded(out, *h as u32, 2);
                out.push(b':');
                push_padded(out, *mi as u32, 2);
                out.push(b':');
                push_padded(out, *s as u32, 2);
                push_frac(out, *us, fmt.decimals);
            }
        }
        Value::Time(neg, days, h, mi, s, us) => {
            if *neg {
                out.push(b'-');
            }
            push_padded(out, days * 24 + *h as u32, 2);
            out.push(b':');
            push_padded(out, *mi as u32, 2);
            out.push(b':');
            push_padded(out, *s as u32, 2);
            push_frac(out, *us, fmt.decimals);
        }
    }
    Ok(())
}

fn push_double(out: &mut Vec<u8>, d: f64) -> Result<(), String> {
    if !d.is_finite() {
        return Err(format!("value {d} cannot be stored in a MySQL column"));
    }
    let mut buf = ryu::Buffer::new();
    out.extend_from_slice(buf.format_finite(d).as_bytes());
    Ok(())
}

/// Number of rows in a chunk: every row ends with one unescaped newline.
pub fn count_rows(chunk: &[u8]) -> u64 {
    chunk.iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(kind: Kind, decimals: u8) -> ColumnFormat {
        ColumnFormat { kind, decimals }
    }

    fn one(v: Value, f: ColumnFormat) -> String {
        let mut out = Vec::new();
        write_value(&mut out, &v, f).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_every_byte_load_data_would_misread() {
        let mut out = Vec::new();
        escape_into(&mut out, b"a\tb\nc\\d\0e\rf\x1ag'\"");
        assert_eq!(out, b"a\\tb\\nc\\\\d\\0e\\rf\\Zg'\"");
    }

    #[test]
    fn null_empty_and_the_strings_null_and_backslash_n_stay_distinct() {
        let o = fmt(Kind::Other, 0);
        assert_eq!(one(Value::NULL, o), "\\N");
        assert_eq!(one(Value::Bytes(b"".to_vec()), o), "");
        assert_eq!(one(Value::Bytes(b"NULL".to_vec()), o), "NULL");
        assert_eq!(one(Value::Bytes(b"\\N".to_vec()), o), "\\\\N");
    }

    #[test]
    fn doubles_are_shortest_round_trip_and_floats_widen_exactly() {
        let o = fmt(Kind::Other, 0);
        assert_eq!(one(Value::Double(-0.0), o), "-0.0");
        assert_eq!(one(Value::Double(f64::MAX), o), "1.7976931348623157e308");
        assert_eq!(one(Value::Double(5e-324), o), "5e-324");
        let f = 0.1f32;
        let s = one(Value::Float(f), o);
        assert_eq!(s.parse::<f64>().unwrap() as f32, f);
        assert_eq!(s.parse::<f64>().unwrap(), f64::from(f));
        let mut out = Vec::new();
        assert!(write_value(&mut out, &Value::Double(f64::NAN), o).is_err());
    }

    #[test]
    fn temporal_values_use_the_column_precision() {
        assert_eq!(
            one(Value::Date(2026, 11, 28, 0, 0, 0, 0), fmt(Kind::Date, 0)),
            "2026-11-28"
        );
        assert_eq!(
            one(Value::Date(0, 0, 0, 0, 0, 0, 0), fmt(Kind::DateTime, 0)),
            "0000-00-00 00:00:00"
        );
        assert_eq!(
            one(
                Value::Date(2026, 1, 2, 3, 4, 5, 123456),
                fmt(Kind::DateTime, 6)
            ),
            "2026-01-02 03:04:05.123456"
        );
        assert_eq!(
            one(
                Value::Date(2026, 1, 2, 3, 4, 5, 120000),
                fmt(Kind::DateTime, 2)
            ),
            "2026-01-02 03:04:05.12"
        );
        assert_eq!(
            one(Value::Time(true, 34, 22, 59, 59, 0), fmt(Kind::Time, 0)),
            "-838:59:59"
        );
        assert_eq!(
            one(Value::Time(false, 0, 1, 2, 3, 5), fmt(Kind::Time, 6)),
            "01:02:03.000005"
        );
    }

    #[test]
    fn year_zero_keeps_four_digits() {
        assert_eq!(one(Value::Int(0), fmt(Kind::Year, 0)), "0000");
        assert_eq!(one(Value::UInt(2155), fmt(Kind::Year, 0)), "2155");
    }

    #[test]
    fn integers_at_their_extremes() {
        let o = fmt(Kind::Other, 0);
        assert_eq!(one(Value::Int(i64::MIN), o), "-9223372036854775808");
        assert_eq!(one(Value::UInt(u64::MAX), o), "18446744073709551615");
    }

    #[test]
    fn rows_are_counted_by_unescaped_newlines() {
        let mut out = Vec::new();
        escape_into(&mut out, b"multi\nline");
        out.push(b'\n');
        out.extend_from_slice(b"x\n");
        assert_eq!(count_rows(&out), 2);
    }
}
