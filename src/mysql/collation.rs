//! Mapping a collation the target server lacks to the nearest one it has. MySQL 8 defaults to
//! `utf8mb4_0900_ai_ci`, which MariaDB and MySQL 5.7 do not know; MariaDB 10.10+ has
//! `utf8mb4_uca1400_ai_ci`, which MySQL lacks.

use std::collections::BTreeSet;

/// The nearest collation of the same character set that `available` holds, or `None`.
pub fn nearest(missing: &str, available: &BTreeSet<String>) -> Option<String> {
    let (charset, variant) = split(missing)?;
    let ai_ci = [
        "uca1400_ai_ci",
        "0900_ai_ci",
        "unicode_520_ci",
        "unicode_ci",
        "general_ci",
    ];
    let as_ci = [
        "uca1400_as_ci",
        "0900_as_ci",
        "unicode_520_ci",
        "unicode_ci",
        "general_ci",
    ];
    let as_cs = ["uca1400_as_cs", "0900_as_cs", "bin"];
    let candidates: Vec<&str> = match variant {
        v if v.ends_with("_bin") || v == "bin" => vec!["bin"],
        v if v.ends_with("as_cs") || v.ends_with("_cs") => as_cs.to_vec(),
        v if v.ends_with("as_ci") => as_ci.to_vec(),
        _ => ai_ci.to_vec(),
    };
    // Language-specific collations (`utf8mb4_0900_as_cs` vs `utf8mb4_de_pb_0900_ai_ci`) fall
    // back to the generic ones of their strength.
    candidates
        .iter()
        .map(|v| format!("{charset}_{v}"))
        .find(|c| available.contains(c) && c != missing)
}

/// Splits `utf8mb4_0900_ai_ci` into (`utf8mb4`, `0900_ai_ci`).
fn split(collation: &str) -> Option<(&str, &str)> {
    let (cs, rest) = collation.split_once('_')?;
    Some((cs, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn mysql8_default_maps_to_uca1400_on_mariadb_and_unicode_520_on_57() {
        let mariadb = set(&[
            "utf8mb4_uca1400_ai_ci",
            "utf8mb4_unicode_520_ci",
            "utf8mb4_general_ci",
        ]);
        assert_eq!(
            nearest("utf8mb4_0900_ai_ci", &mariadb).unwrap(),
            "utf8mb4_uca1400_ai_ci"
        );
        let mysql57 = set(&[
            "utf8mb4_unicode_520_ci",
            "utf8mb4_unicode_ci",
            "utf8mb4_general_ci",
        ]);
        assert_eq!(
            nearest("utf8mb4_0900_ai_ci", &mysql57).unwrap(),
            "utf8mb4_unicode_520_ci"
        );
    }

    #[test]
    fn case_sensitive_and_binary_collations_keep_their_strength() {
        let t = set(&["utf8mb4_bin", "utf8mb4_general_ci"]);
        assert_eq!(nearest("utf8mb4_0900_as_cs", &t).unwrap(), "utf8mb4_bin");
        assert_eq!(nearest("utf8mb4_0900_bin", &t).unwrap(), "utf8mb4_bin");
        assert_eq!(
            nearest("utf8mb4_uca1400_ai_ci", &set(&["utf8mb4_0900_ai_ci"])).unwrap(),
            "utf8mb4_0900_ai_ci"
        );
    }

    #[test]
    fn no_candidate_of_the_same_charset_is_none() {
        assert_eq!(
            nearest("utf8mb4_0900_ai_ci", &set(&["latin1_swedish_ci"])),
            None
        );
    }
}
