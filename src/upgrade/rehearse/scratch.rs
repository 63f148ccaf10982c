//! Scratch copies of a rehearsal: their names (`amlrehearse_<repo>_<run>_<db>`), dropping
//! them, and the sweep of what an earlier rehearsal of the same repository left behind.

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use sha2::{Digest, Sha256};

use super::PREFIX;
use crate::error::{Error, Result};
use crate::mysql::MysqlUrl;
use crate::postgres::PgUrl;
use crate::repo::Repository;

/// MySQL's limit for a database name.
const MYSQL_NAME_MAX: usize = 64;

/// The copies this rehearsal made, to drop at its end.
#[derive(Default)]
pub(super) struct Scratch {
    pub mysql: Vec<(MysqlUrl, String)>,
    pub pg: Vec<(PgUrl, String)>,
}

impl Scratch {
    /// `(dropped, (copy, why not))`.
    pub async fn drop_all(&mut self) -> (Vec<String>, Vec<(String, String)>) {
        let (mut dropped, mut left) = (Vec::new(), Vec::new());
        for (url, name) in self.mysql.drain(..) {
            let what = format!("MySQL {name} on {}", url.redacted());
            match drop_mysql(&url, &[name]).await {
                Ok(n) if n.is_empty() => {} // never created
                Ok(_) => dropped.push(what),
                Err(e) => left.push((what, e.to_string())),
            }
        }
        for (url, name) in self.pg.drain(..) {
            let what = format!("PostgreSQL {name} on {}", url.redacted());
            match drop_pg(&url, &[name]).await {
                Ok(n) if n.is_empty() => {}
                Ok(_) => dropped.push(what),
                Err(e) => left.push((what, e.to_string())),
            }
        }
        (dropped, left)
    }
}

/// Drops those of `names` that exist (a user that may not create a database may not drop a
/// missing one either); returns the ones it dropped.
async fn drop_mysql(url: &MysqlUrl, names: &[String]) -> Result<Vec<String>> {
    let mut conn = crate::mysql::connect(url).await?;
    let mut dropped = Vec::new();
    for n in names {
        let exists: Option<String> = conn
            .exec_first(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (n,),
            )
            .await
            .map_err(|e| Error::mysql(format!("looking for scratch copy {n}"), e))?;
        if exists.is_none() {
            continue;
        }
        conn.query_drop(format!(
            "DROP DATABASE IF EXISTS {}",
            crate::mysql::sqltext::ident(n)
        ))
        .await
        .map_err(|e| Error::mysql(format!("dropping scratch copy {n}"), e))?;
        dropped.push(n.clone());
    }
    let _ = conn.disconnect().await;
    Ok(dropped)
}

async fn drop_pg(url: &PgUrl, names: &[String]) -> Result<Vec<String>> {
    let client = url.connect().await?;
    let mut dropped = Vec::new();
    for n in names {
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[n])
            .await
            .map_err(|e| {
                Error::Other(format!(
                    "looking for scratch database {n}: {}",
                    crate::postgres::describe(&e)
                ))
            })?;
        if exists.is_none() {
            continue;
        }
        // FORCE: a connection of the interrupted migration may not have closed yet.
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                pg_ident(n)
            ))
            .await
            .map_err(|e| {
                Error::Other(format!(
                    "dropping scratch database {n}: {}",
                    crate::postgres::describe(&e)
                ))
            })?;
        dropped.push(n.clone());
    }
    Ok(dropped)
}

/// Drops the copies named `prefix…` on a MySQL server; returns what it dropped.
pub(super) async fn sweep_mysql(url: &MysqlUrl, prefix: &str) -> Result<Vec<String>> {
    let mut conn = crate::mysql::connect(url).await?;
    let found: Vec<String> = conn
        .exec(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?",
            (format!("{}%", like_escape(prefix)),),
        )
        .await
        .map_err(|e| Error::mysql("listing scratch copies of earlier rehearsals", e))?;
    let _ = conn.disconnect().await;
    let found = drop_mysql(url, &found).await?;
    Ok(found
        .into_iter()
        .map(|n| format!("MySQL {n} on {}", url.redacted()))
        .collect())
}

pub(super) async fn sweep_pg(url: &PgUrl, prefix: &str) -> Result<Vec<String>> {
    let client = url.connect().await?;
    let found: Vec<String> = client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE $1",
            &[&format!("{}%", like_escape(prefix))],
        )
        .await
        .map_err(|e| {
            Error::Other(format!(
                "listing scratch databases of earlier rehearsals on {}: {}",
                url.redacted(),
                crate::postgres::describe(&e)
            ))
        })?
        .iter()
        .map(|r| r.get(0))
        .collect();
    drop(client);
    let found = drop_pg(url, &found).await?;
    Ok(found
        .into_iter()
        .map(|n| format!("PostgreSQL {n} on {}", url.redacted()))
        .collect())
}

pub(super) async fn table_counts(url: &MysqlUrl, db: &str) -> Result<BTreeMap<String, u64>> {
    let mut conn = crate::mysql::connect(url).await?;
    let tables: Vec<String> = conn
        .exec("SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE'", (db,))
        .await
        .map_err(|e| Error::mysql(format!("listing the tables of scratch copy {db}"), e))?;
    let mut out = BTreeMap::new();
    for t in tables {
        let n: Option<u64> = conn
            .query_first(format!(
                "SELECT COUNT(*) FROM {}",
                crate::mysql::sqltext::qualified(db, &t)
            ))
            .await
            .map_err(|e| Error::mysql(format!("counting rows of {db}.{t}"), e))?;
        out.insert(t, n.unwrap_or(0));
    }
    let _ = conn.disconnect().await;
    Ok(out)
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('_', "\\_")
        .replace('%', "\\%")
}

pub(super) fn pg_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Scratch names: `amlrehearse_<repo>_<run>_<db>`, `<repo>` six hex digits of the repository's
/// location, `<run>` the rehearsal id's last six.
pub(super) struct Names {
    repo: String,
    run: String,
}

impl Names {
    pub fn new(repo: &Repository, id: &str) -> Names {
        let h = Sha256::digest(repo.location().as_bytes());
        Names {
            repo: hex::encode(&h[..3]),
            run: id
                .rsplit('-')
                .next()
                .unwrap_or(id)
                .to_ascii_lowercase()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect(),
        }
    }

    pub fn repo_prefix(&self) -> String {
        format!("{PREFIX}{}_", self.repo)
    }

    pub fn mysql(&self, db: &str) -> String {
        let clean: String = db
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let head = format!("{}{}_", self.repo_prefix(), self.run);
        let name = format!("{head}{clean}");
        if name.len() <= MYSQL_NAME_MAX {
            return name;
        }
        // Too long: a cut name plus a hash of the whole keeps two long names apart.
        let h = hex::encode(&Sha256::digest(db.as_bytes())[..3]);
        let room = MYSQL_NAME_MAX - head.len() - h.len() - 1;
        format!("{head}{}_{h}", &clean[..room])
    }

    pub fn pg(&self) -> String {
        format!("{}{}_mlflow", self.repo_prefix(), self.run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            repo: "a1b2c3".into(),
            run: "0f3abc".into(),
        }
    }

    #[test]
    fn scratch_names_carry_the_prefix_repo_and_run_and_fit_mysqls_limit() {
        let n = names();
        assert_eq!(n.mysql("aml"), "amlrehearse_a1b2c3_0f3abc_aml");
        assert_eq!(n.mysql("my-db.x"), "amlrehearse_a1b2c3_0f3abc_my_db_x");
        assert_eq!(n.pg(), "amlrehearse_a1b2c3_0f3abc_mlflow");
        let long_a = n.mysql(&"a".repeat(80));
        let long_b = n.mysql(&format!("{}b", "a".repeat(79)));
        assert!(long_a.len() <= MYSQL_NAME_MAX && long_b.len() <= MYSQL_NAME_MAX);
        assert_ne!(long_a, long_b);
        assert!(long_a.starts_with(&n.repo_prefix()));
    }

    #[test]
    fn the_sweep_pattern_matches_only_this_repositorys_copies() {
        let p = format!("{}%", like_escape(&names().repo_prefix()));
        assert_eq!(p, "amlrehearse\\_a1b2c3\\_%");
    }
}
