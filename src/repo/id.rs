//! Snapshot ids: `20261128T120000Z-3f9a1c`, UTC time first so that ids sort by time.

use chrono::{DateTime, Utc};
use rand::Rng;

/// The suffix is the milliseconds (3 hex digits) then 3 random hex digits, so that ids taken
/// in the same second still sort by time and two concurrent backups do not collide.
pub fn new_snapshot_id(now: DateTime<Utc>) -> String {
    let millis = now.timestamp_subsec_millis().min(999);
    let random: u32 = rand::rng().random_range(0..0x1000);
    format!("{}-{millis:03x}{random:03x}", now.format("%Y%m%dT%H%M%SZ"))
}

/// True when `s` has the shape of a snapshot id; used to ignore foreign folders in a repository.
pub fn is_snapshot_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 23
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[17..].iter().all(|c| c.is_ascii_hexdigit())
}

/// The time a snapshot id was taken at (`20261128T120000Z-…`).
pub fn id_time(id: &str) -> Option<DateTime<Utc>> {
    let stamp = id.get(..16)?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

/// Resolves `latest`, a full id or a unique prefix against the committed ids (sorted ascending).
pub fn resolve<'a>(ids: &'a [String], wanted: &str) -> Result<&'a str, ResolveError> {
    if wanted == "latest" {
        return ids.last().map(String::as_str).ok_or(ResolveError::Empty);
    }
    if let Some(id) = ids.iter().find(|id| *id == wanted) {
        return Ok(id);
    }
    let matches: Vec<&String> = ids.iter().filter(|id| id.starts_with(wanted)).collect();
    match matches.as_slice() {
        [] => Err(ResolveError::NotFound),
        [one] => Ok(one),
        many => Err(ResolveError::Ambiguous(
            many.iter().map(|s| s.to_string()).collect(),
        )),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum ResolveError {
    Empty,
    NotFound,
    Ambiguous(Vec<String>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        vec![
            "20261127T010000Z-aaaaaa".into(),
            "20261128T010000Z-bbbbbb".into(),
            "20261128T020000Z-cccccc".into(),
        ]
    }

    #[test]
    fn new_ids_have_the_documented_shape_and_sort_by_time() {
        let a = new_snapshot_id("2026-11-28T12:00:00Z".parse().unwrap());
        let b = new_snapshot_id("2026-11-28T12:00:00.001Z".parse().unwrap());
        let c = new_snapshot_id("2026-11-28T12:00:00.999Z".parse().unwrap());
        let d = new_snapshot_id("2026-11-28T12:00:01Z".parse().unwrap());
        assert!(is_snapshot_id(&a), "{a}");
        assert!(a.starts_with("20261128T120000Z-000"));
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
    }

    #[test]
    fn latest_is_the_newest_id() {
        assert_eq!(
            resolve(&ids(), "latest").unwrap(),
            "20261128T020000Z-cccccc"
        );
        assert_eq!(resolve(&[], "latest"), Err(ResolveError::Empty));
    }

    #[test]
    fn a_unique_prefix_resolves_and_an_ambiguous_one_lists_candidates() {
        assert_eq!(
            resolve(&ids(), "20261127").unwrap(),
            "20261127T010000Z-aaaaaa"
        );
        match resolve(&ids(), "20261128") {
            Err(ResolveError::Ambiguous(c)) => assert_eq!(c.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(resolve(&ids(), "2025"), Err(ResolveError::NotFound));
    }

    #[test]
    fn foreign_names_are_not_snapshot_ids() {
        assert!(!is_snapshot_id("tmp"));
        assert!(!is_snapshot_id("20261128T120000Z-3f9a1"));
    }
}
