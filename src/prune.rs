//! Retention: which snapshots a policy keeps and why (restic-style reasons: "last 3",
//! "daily 2026-11-27", "weekly 2026-W48", "within 30d"), and removing the rest.
//!
//! [`plan`] is a pure function of the snapshot list, the policy and the time; [`prune`] applies
//! it to a repository. The newest committed snapshot is always kept. Uncommitted leftovers
//! (a snapshot folder without `manifest.json`) are removed once they are older than a day;
//! younger ones may belong to a backup that is still running. A snapshot is removed manifest
//! first, so a half-removed snapshot never looks complete.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::repo::lock::LockKind;
use crate::repo::sweep::SweepReport;

pub use crate::repo::LEFTOVER_AGE_HOURS;

pub use crate::repo::SnapshotInfo;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub keep_last: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    /// Keep everything taken within this span before now, with its text ("30d") for reasons.
    pub keep_within: Option<(Duration, String)>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        self.keep_last.is_none()
            && self.keep_daily.is_none()
            && self.keep_weekly.is_none()
            && self.keep_within.is_none()
    }

    /// The policy as prune flags (`--keep-last 3 --keep-within 30d`), for messages and jobs.
    pub fn to_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (flag, v) in [
            ("--keep-last", self.keep_last),
            ("--keep-daily", self.keep_daily),
            ("--keep-weekly", self.keep_weekly),
        ] {
            if let Some(n) = v {
                out.push(flag.to_string());
                out.push(n.to_string());
            }
        }
        if let Some((_, text)) = &self.keep_within {
            out.push("--keep-within".into());
            out.push(text.clone());
        }
        out
    }
}

/// Parses a retention span (`30d`, `12h`, `2w`, `6months`; `m` is minutes) as
/// [`crate::span::parse`] does every duration.
pub fn parse_span(s: &str) -> std::result::Result<Duration, String> {
    let d = crate::span::parse(s)?;
    if d.is_zero() {
        return Err(format!("{s:?} keeps nothing: give a span such as 30d"));
    }
    Duration::from_std(d).map_err(|_| format!("{s:?} is out of range"))
}

pub use crate::repo::id::id_time;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub id: String,
    pub time: DateTime<Utc>,
    pub committed: bool,
    pub keep: bool,
    /// Why it is kept (every rule that keeps it), or why it goes.
    pub reasons: Vec<String>,
}

/// Decides, newest first, which snapshots the policy keeps. An empty policy is refused.
pub fn plan(
    snapshots: &[SnapshotInfo],
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Vec<Decision>> {
    if policy.is_empty() {
        return Err(Error::input(
            "prune: no retention rule given, which would keep nothing; give at least one of \
             --keep-last N, --keep-daily N, --keep-weekly N, --keep-within SPAN (nothing was deleted)",
        ));
    }
    let mut sorted: Vec<&SnapshotInfo> = snapshots.iter().collect();
    sorted.sort_by(|a, b| (b.time, &b.id).cmp(&(a.time, &a.id)));

    let mut out = Vec::with_capacity(sorted.len());
    let (mut last, mut days, mut weeks) = (0u32, BTreeSet::new(), BTreeSet::new());
    let (mut newest_seen, mut newest_verified_seen) = (false, false);
    for s in sorted {
        let mut reasons = Vec::new();
        if !s.committed {
            let old = now - s.last_modified >= Duration::hours(LEFTOVER_AGE_HOURS);
            reasons.push(if old {
                "uncommitted leftover older than a day".to_string()
            } else {
                "uncommitted, younger than a day: a backup may still be writing it".to_string()
            });
            out.push(Decision {
                id: s.id.clone(),
                time: s.time,
                committed: false,
                keep: !old,
                reasons,
            });
            continue;
        }
        if !newest_seen {
            newest_seen = true;
            reasons.push("newest".to_string());
        }
        if s.verified && !newest_verified_seen {
            newest_verified_seen = true;
            reasons.push("newest verified".to_string());
        }
        if let Some(n) = policy.keep_last
            && last < n
        {
            last += 1;
            reasons.push(format!("last {n}"));
        }
        if let Some(n) = policy.keep_daily {
            let day = s.time.format("%Y-%m-%d").to_string();
            if !days.contains(&day) && days.len() < n as usize {
                reasons.push(format!("daily {day}"));
                days.insert(day);
            }
        }
        if let Some(n) = policy.keep_weekly {
            let week = s.time.format("%G-W%V").to_string();
            if !weeks.contains(&week) && weeks.len() < n as usize {
                reasons.push(format!("weekly {week}"));
                weeks.insert(week);
            }
        }
        if let Some((span, text)) = &policy.keep_within
            && s.time >= now - *span
        {
            reasons.push(format!("within {text}"));
        }
        let keep = !reasons.is_empty();
        if !keep {
            reasons.push("no rule keeps it".to_string());
        }
        out.push(Decision {
            id: s.id.clone(),
            time: s.time,
            committed: true,
            keep,
            reasons,
        });
    }
    Ok(out)
}

/// Keeps what is pinned in the repository (an unfinished upgrade run pins its snapshot),
/// whatever the policy says; the pin's reason becomes the decision's.
fn pin(decisions: &mut [Decision], pins: &BTreeMap<String, Vec<String>>) {
    for d in decisions.iter_mut() {
        if let Some(reasons) = pins.get(&d.id) {
            if !d.keep {
                d.reasons.clear();
            }
            d.keep = true;
            d.reasons.extend(reasons.iter().cloned());
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub repository: String,
    pub dry_run: bool,
    /// Newest first.
    pub decisions: Vec<Decision>,
    /// Ids removed (none in a dry run).
    pub removed: Vec<String>,
    /// Incomplete S3 multipart uploads (none for a folder repository).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multipart: Option<crate::repo::multipart::UploadCleanup>,
    /// What the sweep of unused chunks did (or, in a dry run, would do); format 2 only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepReport>,
}

/// How long prune waits for running backups to finish.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Applies `policy` to the repository; in a dry run only plans. In a deduplicated repository
/// it holds the exclusive lock (waiting up to `lock_wait` for running backups and readers),
/// removes the snapshots the policy lets go, then sweeps the chunks no kept snapshot uses. A
/// dry run changes nothing and holds only a shared lock, so it never blocks a backup.
pub async fn prune(
    repo: &Repository,
    policy: &Policy,
    now: DateTime<Utc>,
    dry_run: bool,
    lock_wait: std::time::Duration,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<PruneReport> {
    let (kind, what) = if dry_run {
        (LockKind::Shared, "prune --dry-run")
    } else {
        (LockKind::Exclusive, "prune")
    };
    let lock = if repo.format() >= 2 {
        Some(repo.lock(kind, what, lock_wait, cancel).await?)
    } else {
        None
    };
    let result = prune_locked(repo, policy, now, dry_run).await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    result
}

async fn prune_locked(
    repo: &Repository,
    policy: &Policy,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<PruneReport> {
    let folders = repo.snapshot_folders().await?;
    let mut decisions = plan(&folders, policy, now)?;
    pin(&mut decisions, &repo.pins().await?);
    for d in &decisions {
        tracing::debug!(
            snapshot = d.id,
            keep = d.keep,
            reasons = ?d.reasons,
            "prune: {} {} ({})",
            if d.keep { "keeps" } else { "removes" },
            d.id,
            d.reasons.join(", ")
        );
    }
    let mut removed = Vec::new();
    if !dry_run {
        for d in decisions.iter().filter(|d| !d.keep) {
            repo.delete_snapshot(&d.id).await?;
            tracing::info!(snapshot = d.id, "prune: removed snapshot {}", d.id);
            removed.push(d.id.clone());
        }
    }
    let sweep = if repo.format() >= 2 {
        let kept: Vec<&SnapshotInfo> = folders
            .iter()
            .filter(|f| f.committed && decisions.iter().any(|d| d.keep && d.id == f.id))
            .collect();
        let live = mark(repo, &kept).await?;
        Some(repo.sweep(&live, dry_run).await?)
    } else {
        None
    };
    Ok(PruneReport {
        repository: repo.location().to_string(),
        dry_run,
        decisions,
        removed,
        multipart: repo.clean_stale_uploads(now, dry_run).await,
        sweep,
    })
}

/// Every chunk id a kept snapshot uses: its chunk list and, where the manifest can be read
/// (and its signature checked, when the handle trusts a key), the manifest's own chunks too.
/// More marked chunks only keep more packs, so the two are united, never intersected.
async fn mark(repo: &Repository, kept: &[&SnapshotInfo]) -> Result<HashSet<String>> {
    let mut live = HashSet::new();
    for s in kept {
        if s.chunked {
            live.extend(repo.snapshot_refs(&s.id).await?);
        }
        let m = match repo.manifest(&s.id).await {
            Ok(m) => m,
            // An encrypted repository without --identity, or a signature prune cannot check:
            // the chunk list alone, which a backup wrote before its manifest.
            Err(_) if s.chunked => continue,
            Err(e) => {
                return Err(Error::other(format!(
                    "prune cannot tell which chunks snapshot {} uses (it has no chunk list and \
                     its manifest is unreadable: {e}); nothing was swept",
                    s.id
                )));
            }
        };
        live.extend(
            m.parts
                .iter()
                .flat_map(|p| &p.entries)
                .flat_map(|e| e.chunks.iter().cloned()),
        );
    }
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// A committed snapshot taken at `time` (RFC 3339).
    fn snap(time: &str) -> SnapshotInfo {
        let at = t(time);
        SnapshotInfo {
            id: format!("{}-000abc", at.format("%Y%m%dT%H%M%SZ")),
            time: at,
            committed: true,
            verified: false,
            last_modified: at,
            chunked: false,
        }
    }

    #[test]
    fn the_newest_verified_snapshot_is_kept_even_when_newer_ones_are_not_verified() {
        let mut old = snap("2026-11-20T10:00:00Z");
        old.verified = true;
        let mut older = snap("2026-11-10T10:00:00Z");
        older.verified = true;
        let snaps = [older, old, snap("2026-11-28T10:00:00Z")];
        let d = plan(
            &snaps,
            &policy(Some(1), None, None, None),
            t("2026-11-29T00:00:00Z"),
        )
        .unwrap();
        let by_time = |x: &str| d.iter().find(|d| d.time == t(x)).unwrap().clone();
        assert_eq!(
            by_time("2026-11-28T10:00:00Z").reasons,
            ["newest", "last 1"]
        );
        assert!(by_time("2026-11-20T10:00:00Z").keep);
        assert_eq!(by_time("2026-11-20T10:00:00Z").reasons, ["newest verified"]);
        assert!(!by_time("2026-11-10T10:00:00Z").keep);
    }

    #[test]
    fn the_snapshot_of_an_unfinished_upgrade_is_kept_whatever_the_policy() {
        let snaps = [snap("2026-11-01T10:00:00Z"), snap("2026-11-28T10:00:00Z")];
        let mut d = plan(
            &snaps,
            &policy(Some(1), None, None, None),
            t("2026-11-29T00:00:00Z"),
        )
        .unwrap();
        assert!(!d[1].keep);
        let pins = BTreeMap::from([(
            d[1].id.clone(),
            vec!["snapshot of upgrade run 20261101T100500Z-000001, not finished".to_string()],
        )]);
        pin(&mut d, &pins);
        assert!(d[1].keep);
        assert_eq!(
            d[1].reasons,
            ["snapshot of upgrade run 20261101T100500Z-000001, not finished"]
        );
        assert!(d[0].keep);
    }

    fn leftover(time: &str) -> SnapshotInfo {
        SnapshotInfo {
            committed: false,
            ..snap(time)
        }
    }

    fn policy(
        last: Option<u32>,
        daily: Option<u32>,
        weekly: Option<u32>,
        within: Option<&str>,
    ) -> Policy {
        Policy {
            keep_last: last,
            keep_daily: daily,
            keep_weekly: weekly,
            keep_within: within.map(|w| (parse_span(w).unwrap(), w.to_string())),
        }
    }

    /// Kept snapshots (time → reasons), newest first.
    fn kept(snaps: &[SnapshotInfo], p: &Policy, now: &str) -> Vec<(String, Vec<String>)> {
        plan(snaps, p, t(now))
            .unwrap()
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| (d.time.format("%m-%d %H:%M").to_string(), d.reasons))
            .collect()
    }

    fn week_of_snapshots() -> Vec<SnapshotInfo> {
        // Two a day from Nov 22 to Nov 28 (Sunday 22nd ends ISO week 47).
        let mut v = Vec::new();
        for day in 22..=28 {
            v.push(snap(&format!("2026-11-{day}T02:00:00Z")));
            v.push(snap(&format!("2026-11-{day}T14:00:00Z")));
        }
        v
    }

    #[test]
    fn policies_keep_what_their_rules_name_with_reasons() {
        let now = "2026-11-28T15:00:00Z";
        let snaps = week_of_snapshots();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        type Case<'a> = (&'a str, Policy, Vec<(&'a str, Vec<String>)>);
        let cases: Vec<Case> = vec![
            (
                "keep-last 3",
                policy(Some(3), None, None, None),
                vec![
                    ("11-28 14:00", s(&["newest", "last 3"])),
                    ("11-28 02:00", s(&["last 3"])),
                    ("11-27 14:00", s(&["last 3"])),
                ],
            ),
            (
                "keep-daily 2 keeps the newest of each of the two newest days",
                policy(None, Some(2), None, None),
                vec![
                    ("11-28 14:00", s(&["newest", "daily 2026-11-28"])),
                    ("11-27 14:00", s(&["daily 2026-11-27"])),
                ],
            ),
            (
                "keep-weekly 2 spans ISO weeks",
                policy(None, None, Some(2), None),
                vec![
                    ("11-28 14:00", s(&["newest", "weekly 2026-W48"])),
                    ("11-22 14:00", s(&["weekly 2026-W47"])),
                ],
            ),
            (
                "keep-within 1d",
                policy(None, None, None, Some("1d")),
                // now is 11-28 15:00: 11-27 14:00 is 25 hours old.
                vec![
                    ("11-28 14:00", s(&["newest", "within 1d"])),
                    ("11-28 02:00", s(&["within 1d"])),
                ],
            ),
            (
                "rules combine; each reason is listed",
                policy(Some(1), Some(2), None, None),
                vec![
                    ("11-28 14:00", s(&["newest", "last 1", "daily 2026-11-28"])),
                    ("11-27 14:00", s(&["daily 2026-11-27"])),
                ],
            ),
        ];
        for (name, p, want) in cases {
            let got = kept(&snaps, &p, now);
            let want: Vec<(String, Vec<String>)> =
                want.into_iter().map(|(a, b)| (a.to_string(), b)).collect();
            assert_eq!(got, want, "case {name}");
        }
    }

    #[test]
    fn the_newest_snapshot_is_kept_even_when_no_rule_keeps_it() {
        let snaps = vec![snap("2026-01-01T00:00:00Z"), snap("2026-01-02T00:00:00Z")];
        let got = kept(
            &snaps,
            &policy(None, None, None, Some("1d")),
            "2026-11-28T00:00:00Z",
        );
        assert_eq!(
            got,
            vec![("01-02 00:00".to_string(), vec!["newest".to_string()])]
        );
    }

    #[test]
    fn uncommitted_leftovers_go_only_when_older_than_a_day() {
        let now = "2026-11-28T12:00:00Z";
        let snaps = vec![
            snap("2026-11-28T10:00:00Z"),
            leftover("2026-11-28T11:00:00Z"),
            leftover("2026-11-26T11:00:00Z"),
        ];
        let d = plan(&snaps, &policy(Some(5), None, None, None), t(now)).unwrap();
        let by_time = |h: &str| d.iter().find(|x| x.time == t(h)).unwrap();
        assert!(by_time("2026-11-28T11:00:00Z").keep, "{d:?}");
        assert!(!by_time("2026-11-26T11:00:00Z").keep, "{d:?}");
        assert!(by_time("2026-11-28T10:00:00Z").keep);
        // A leftover is newer than the newest committed snapshot, yet "newest" is the latter.
        assert_eq!(by_time("2026-11-28T10:00:00Z").reasons[0], "newest");
    }

    #[test]
    fn a_policy_that_keeps_nothing_is_refused() {
        let err = plan(
            &[snap("2026-11-28T10:00:00Z")],
            &Policy::default(),
            Utc::now(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Input);
        assert!(err.to_string().contains("--keep-last"), "{err}");
    }

    #[test]
    fn spans_and_id_times_parse() {
        assert_eq!(parse_span("30d").unwrap(), Duration::days(30));
        assert_eq!(
            parse_span("1h30m").unwrap(),
            Duration::minutes(90),
            "m is minutes, as in --lock-wait"
        );
        assert_eq!(parse_span("12h").unwrap(), Duration::hours(12));
        for bad in ["", "30", "d", "3x", "0d", "1y6M", "99999999d"] {
            assert!(parse_span(bad).is_err(), "{bad}");
        }
        assert_eq!(
            id_time("20261128T120000Z-3f9a1c").unwrap(),
            t("2026-11-28T12:00:00Z")
        );
        assert_eq!(
            Policy {
                keep_last: Some(3),
                keep_within: Some((Duration::days(30), "30d".into())),
                ..Default::default()
            }
            .to_args(),
            vec!["--keep-last", "3", "--keep-within", "30d"]
        );
    }
}
