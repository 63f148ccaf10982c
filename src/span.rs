//! Durations, parsed one way everywhere (flags, the upgrade config, retention): `humantime`'s
//! units, where `m` is minutes. Months are taken only when spelled (`6months`), never as `M`,
//! so that `m` and `M` cannot be mistaken for each other; spans beyond [`MAX`] are refused, so
//! no date arithmetic downstream can overflow.

use std::time::Duration;

/// The longest span accepted: 200 years.
pub const MAX: Duration = Duration::from_secs(200 * 366 * 24 * 3600);

/// Parses `30s`, `10m`, `12h`, `30d`, `2w`, `1y 6months`, `1h30m`; the error says why and
/// gives examples.
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let examples = "e.g. 30s, 10m (minutes), 12h, 30d, 2w, 6months, 1y";
    if has_bare_capital_m(t) {
        return Err(format!(
            "{s:?}: write months as \"months\" (M is ambiguous with m, which means minutes); {examples}"
        ));
    }
    let d = humantime::parse_duration(t)
        .map_err(|e| format!("{s:?} is not a duration ({e}); {examples}"))?;
    if d > MAX {
        return Err(format!(
            "{s:?} is out of range: at most 200 years ({}d)",
            MAX.as_secs() / 86400
        ));
    }
    Ok(d)
}

/// A unit written as a lone `M` after a number.
fn has_bare_capital_m(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c == b'M'
            && i > 0
            && (b[i - 1].is_ascii_digit() || b[i - 1] == b' ')
            && b.get(i + 1).is_none_or(|n| !n.is_ascii_alphabetic())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn m_is_minutes_months_are_spelled_and_huge_spans_are_refused() {
        assert_eq!(parse("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse("30d").unwrap(), Duration::from_secs(30 * 86400));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse("6months").unwrap() > Duration::from_secs(180 * 86400));
        assert!(parse("6M").unwrap_err().contains("months"));
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
        for bad in ["", "30", "d", "3x", "99999999d", "999999999999999999999d"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("99999999d").unwrap_err().contains("out of range"));
    }
}
