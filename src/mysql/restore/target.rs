//! The target server before anything is written: what it is and holds, which collations
//! the snapshot needs mapped, which databases and tables the restore goes into and whether
//! they may be filled; and, when a restore stops, dropping what it created there.

use std::collections::{BTreeMap, BTreeSet};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::{RestoreOptions, parallel};
use crate::error::{Error, MysqlContext, Result};
use crate::mysql::sqltext::{ident, qualified};
use crate::mysql::{MysqlUrl, SYSTEM_DATABASES, collation, connect, server_version};
use crate::progress::{Event, ProgressRef};
use crate::repo::manifest::{Manifest, MysqlDatabase};

pub(super) struct Plan<'a> {
    pub db: &'a MysqlDatabase,
    pub target: String,
    /// Tables of the snapshot that already exist in the target.
    pub existing: BTreeSet<String>,
}

/// What the target server is and holds, read before anything is written.
pub(super) struct Target {
    pub version: String,
    pub collations: BTreeSet<String>,
    pub charsets: BTreeSet<String>,
    /// Every database name known (the target's, the snapshot's, the system ones).
    pub databases: BTreeSet<String>,
    /// Databases this restore did not create, and so never drops when it stops.
    pub existed: BTreeSet<String>,
}

/// Connects to the target, checks it accepts `LOAD DATA LOCAL`, and reads what it knows.
pub(super) async fn survey(
    opts: &RestoreOptions,
    manifest: &Manifest,
    selected: &[(&MysqlDatabase, String)],
) -> Result<(Conn, Target)> {
    let mut conn = connect(&opts.mysql).await?;
    let version = server_version(&mut conn).await?;
    let local_infile: Option<i64> = conn
        .query_first("SELECT @@GLOBAL.local_infile + 0")
        .await
        .ctx(|| "reading local_infile".into())?;
    if local_infile == Some(0) {
        return Err(Error::Refused(format!(
            "{} has local_infile=OFF, which restore needs for LOAD DATA LOCAL; enable it with SET GLOBAL local_infile = 1 (nothing was changed)",
            opts.mysql
        )));
    }
    conn.query_drop("SET NAMES utf8mb4")
        .await
        .ctx(|| "setting utf8mb4".into())?;

    let mut have: BTreeSet<String> = conn
        .query::<String, _>("SELECT COLLATION_NAME FROM information_schema.COLLATIONS")
        .await
        .ctx(|| "listing the target's collations".into())?
        .into_iter()
        .collect();
    // MariaDB 10.10+ lists UCA 14 collations without their charset there; the full names
    // (utf8mb4_uca1400_ai_ci) are in this column, which older servers lack.
    if let Ok(full) = conn
        .query::<String, _>(
            "SELECT FULL_COLLATION_NAME FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY",
        )
        .await
    {
        have.extend(full);
    }
    let mut databases: BTreeSet<String> = conn
        .query::<String, _>("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
        .await
        .ctx(|| "listing the target's databases".into())?
        .into_iter()
        .collect();
    // What this restore did not create, and so never drops when it stops.
    let existed = databases.clone();
    databases.extend(SYSTEM_DATABASES.iter().map(|s| s.to_string()));
    databases.extend(manifest.mysql.iter().map(|d| d.name.clone()));
    databases.extend(selected.iter().map(|(_, t)| t.clone()));
    let charsets: BTreeSet<String> = conn
        .query::<String, _>("SELECT CHARACTER_SET_NAME FROM information_schema.CHARACTER_SETS")
        .await
        .ctx(|| "listing the target's character sets".into())?
        .into_iter()
        .collect();
    Ok((
        conn,
        Target {
            version,
            collations: have,
            charsets,
            databases,
            existed,
        },
    ))
}

/// The collations the snapshot uses that the target lacks, each mapped to the nearest one it
/// has; refused when none is close.
pub(super) fn map_collations(
    selected: &[(&MysqlDatabase, String)],
    t: &Target,
    opts: &RestoreOptions,
    progress: &ProgressRef,
    notices: &mut Vec<String>,
) -> Result<BTreeMap<String, String>> {
    let mut collation_map = BTreeMap::new();
    for (db, _) in selected {
        for c in &db.collations {
            if t.collations.contains(c) || collation_map.contains_key(c) {
                continue;
            }
            match collation::nearest(c, &t.collations) {
                Some(n) => {
                    let msg = format!(
                        "collation {c} (database {}) does not exist on {}; using {n} instead",
                        db.name, t.version
                    );
                    progress.event(Event::Notice(msg.clone()));
                    notices.push(msg);
                    collation_map.insert(c.clone(), n);
                }
                None => {
                    return Err(Error::Refused(format!(
                        "collation {c} used by database {} does not exist on {} ({}) and no collation of the same character set is close; nothing was changed",
                        db.name, opts.mysql, t.version
                    )));
                }
            }
        }
    }

    Ok(collation_map)
}

/// Which snapshot tables exist in the target, and whether any holds rows (refused without
/// `--replace`) or a trigger that would fire on restored rows (refused).
pub(super) async fn preflight<'a>(
    conn: &mut Conn,
    selected: &[(&'a MysqlDatabase, String)],
    runs_code: bool,
    opts: &RestoreOptions,
) -> Result<(Vec<Plan<'a>>, Vec<String>)> {
    let mut plans = Vec::new();
    let mut non_empty = Vec::new();
    // Said after the rows a target holds, which is the first thing to fix.
    let mut trigger_refusal = None;
    for (db, target) in selected {
        let present: BTreeSet<String> = conn
            .exec::<String, _, _>(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE <> 'VIEW'",
                (target,),
            )
            .await
            .ctx(|| format!("listing tables of {}", ident(target)))?
            .into_iter()
            .collect();
        let mut existing = BTreeSet::new();
        for t in &db.tables {
            if present.contains(&t.name) {
                existing.insert(t.name.clone());
                let any: Option<i64> = conn
                    .query_first(format!(
                        "SELECT 1 FROM {} LIMIT 1",
                        qualified(target, &t.name)
                    ))
                    .await
                    .ctx(|| format!("checking {}", qualified(target, &t.name)))?;
                if any.is_some() {
                    non_empty.push(qualified(target, &t.name));
                }
            }
        }
        // A trigger on a table we fill would fire on every loaded row. The snapshot's own
        // triggers are dropped before the data and created again after it; others are refused.
        let foreign: Vec<(String, String)> = conn
            .exec::<(String, String), _, _>(
                "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?",
                (target,),
            )
            .await
            .ctx(|| format!("listing triggers of {}", ident(target)))?
            .into_iter()
            .filter(|(name, table)| existing.contains(table) && !(runs_code && db.triggers.contains(name)))
            .collect();
        if let Some((name, table)) = foreign.first() {
            let why = if db.triggers.contains(name) {
                "would fire on every restored row, and the snapshot's trigger of that name is not restored (no trusted key signed it; --trust-unsigned-code replaces it)"
            } else {
                "is not part of the snapshot and would fire on every restored row"
            };
            trigger_refusal.get_or_insert(Error::Refused(format!(
                "trigger {} on {} {why}; drop it first (nothing was changed)",
                ident(name),
                qualified(target, table)
            )));
        }
        plans.push(Plan {
            db,
            target: target.clone(),
            existing,
        });
    }
    if !non_empty.is_empty() && !opts.replace {
        let shown: Vec<&str> = non_empty.iter().take(5).map(String::as_str).collect();
        let more = if non_empty.len() > 5 {
            format!(" and {} more", non_empty.len() - 5)
        } else {
            String::new()
        };
        return Err(Error::Refused(format!(
            "the target is not empty: {}{more} already hold rows on {}; nothing was changed. \
             Restore into another database with --rename SRC=DST, or pass --replace to replace their rows",
            shown.join(", "),
            opts.mysql
        )));
    }
    if let Some(e) = trigger_refusal {
        return Err(e);
    }

    Ok((plans, non_empty))
}

pub(super) fn select<'a>(
    manifest: &'a Manifest,
    opts: &RestoreOptions,
) -> Result<Vec<(&'a MysqlDatabase, String)>> {
    if manifest.mysql.is_empty() {
        return Err(Error::input(format!(
            "snapshot {} holds no MySQL databases",
            manifest.id
        )));
    }
    let available = || {
        manifest
            .mysql
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen: Vec<&MysqlDatabase> = match &opts.databases {
        None => manifest.mysql.iter().collect(),
        Some(list) => {
            let mut v = Vec::new();
            for name in list {
                match manifest.mysql.iter().find(|d| &d.name == name) {
                    Some(d) => v.push(d),
                    None => {
                        return Err(Error::input(format!(
                            "database {name} is not in snapshot {}; it holds: {}",
                            manifest.id,
                            available()
                        )));
                    }
                }
            }
            v
        }
    };
    let mut renames: BTreeMap<&str, &str> = BTreeMap::new();
    for (from, to) in &opts.renames {
        if !chosen.iter().any(|d| &d.name == from) {
            return Err(Error::input(format!(
                "--rename {from}={to}: database {from} is not being restored (snapshot holds: {})",
                available()
            )));
        }
        renames.insert(from, to);
    }
    if let Some(url_db) = &opts.mysql.database {
        match chosen.as_slice() {
            [only] if !renames.contains_key(only.name.as_str()) => {
                renames.insert(only.name.as_str(), url_db.as_str());
            }
            [_] => {}
            _ => {
                return Err(Error::input(format!(
                    "the target URL names database {url_db}, but {} databases are being restored; use --rename SRC=DST instead",
                    chosen.len()
                )));
            }
        }
    }
    let mut targets = BTreeSet::new();
    let mut out = Vec::new();
    for d in chosen {
        let target = renames
            .get(d.name.as_str())
            .map(|s| s.to_string())
            .unwrap_or_else(|| d.name.clone());
        for (what, name) in [
            ("a snapshot database", &d.name),
            ("a restore target", &target),
        ] {
            if SYSTEM_DATABASES
                .iter()
                .any(|sys| sys.eq_ignore_ascii_case(name))
            {
                return Err(Error::Refused(format!(
                    "{} is a system database of the server and cannot be {what} of snapshot {}; nothing was run",
                    ident(name),
                    manifest.id
                )));
            }
        }
        if !targets.insert(target.clone()) {
            return Err(Error::input(format!(
                "two databases would be restored into {target}"
            )));
        }
        out.push((d, target));
    }
    Ok(out)
}

/// A restore that stops leaves nothing it created: databases it created are dropped, and in
/// databases that existed, the tables it created (tables that existed keep their rows, rolled
/// back per table). Best effort on a fresh connection: the error that stopped the restore is
/// what the caller reports.
pub(super) async fn undo(
    url: &MysqlUrl,
    plans: &[Plan<'_>],
    existed: &BTreeSet<String>,
    progress: &ProgressRef,
) {
    let Ok(mut conn) = connect(url).await else {
        return;
    };
    let _ = conn.query_drop("SET SESSION foreign_key_checks = 0").await;
    for plan in plans {
        // A loader whose load failed may have lost its connection before dropping its
        // staging table: they all go here.
        let staging: Vec<String> = (0..plan.db.tables.len())
            .map(parallel::staging_name)
            .flat_map(|s| [format!("{s}_old"), s])
            .map(|s| qualified(&plan.target, &s))
            .collect();
        if existed.contains(&plan.target) && !staging.is_empty() {
            let _ = conn
                .query_drop(format!("DROP TABLE IF EXISTS {}", staging.join(", ")))
                .await;
        }
        let dropped = if !existed.contains(&plan.target) {
            let q = format!("DROP DATABASE IF EXISTS {}", ident(&plan.target));
            conn.query_drop(q)
                .await
                .map(|_| format!("database {}", ident(&plan.target)))
        } else {
            let created: Vec<String> = plan
                .db
                .tables
                .iter()
                .filter(|t| !plan.existing.contains(&t.name))
                .map(|t| qualified(&plan.target, &t.name))
                .collect();
            if created.is_empty() {
                continue;
            }
            let q = format!("DROP TABLE IF EXISTS {}", created.join(", "));
            conn.query_drop(q)
                .await
                .map(|_| format!("tables {}", created.join(", ")))
        };
        let msg = match dropped {
            Ok(what) => format!("restore stopped: dropped the {what} it had created"),
            Err(e) => format!(
                "restore stopped, and dropping what it created in {} failed too: {e}",
                ident(&plan.target)
            ),
        };
        progress.event(Event::Notice(msg));
    }
    let _ = conn.disconnect().await;
}
